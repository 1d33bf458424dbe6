"""review.charts: labels are categories, counts are whole numbers, annotators sort naturally."""

from review import charts


def test_numeric_labels_are_categories_in_charts():
    fig = charts.class_probabilities(["0", "1"], [0.3, 0.7], "0", "1")
    assert fig.layout.yaxis.type == "category"
    fig = charts.confusion(["0", "1"], [("0", "1", 3)])
    assert fig.layout.xaxis.type == "category" and fig.layout.yaxis.type == "category"
    assert charts.given_vs_cleaned([("0", 5, 4), ("1", 3, 4)]).layout.xaxis.type == "category"


def test_counts_have_whole_number_ticks_and_start_at_zero():
    fig = charts.given_vs_cleaned([("a", 2, 1), ("b", 1, 2)])
    assert (
        fig.layout.yaxis.dtick == 1 and fig.layout.yaxis.tickformat == ",d" and fig.layout.yaxis.rangemode == "tozero"
    )
    big = charts.given_vs_cleaned([("a", 2000, 1900)])
    assert big.layout.yaxis.dtick is None and big.layout.yaxis.tickformat == ",d"
    assert charts.review_progress({"open": 3, "kept": 1}).layout.xaxis.dtick == 1
    assert (
        charts.tag_swaps(
            [{"given_tag": "B-PER", "predicted_tag": "B-ORG", "tokens": 4, "examples": "x"}]
        ).layout.xaxis.dtick
        == 1
    )


def test_annotators_sorted_naturally_and_every_one_labelled():
    pairs = [{"a": a, "b": b, "shared": 3, "agreement": 0.5} for a, b in (("0", "10"), ("2", "193"), ("1", "2"))]
    fig = charts.pairwise_agreement(pairs)
    assert list(fig.data[0].x) == ["0", "1", "2", "10", "193"]
    assert list(fig.layout.xaxis.tickvals) == ["0", "1", "2", "10", "193"]  # every name shown, none skipped
    assert charts.natural_key("ann10") > charts.natural_key("ann2")


def test_log_axis_ticks_are_powers_of_ten_written_out():
    fig = charts.annotator_quality(
        [{"annotator": "a", "quality": 0.9, "n_labels": 5}, {"annotator": "b", "quality": 0.7, "n_labels": 400}]
    )
    assert fig.layout.xaxis.type == "log" and fig.layout.xaxis.dtick == 1 and fig.layout.xaxis.tickformat == ",d"
