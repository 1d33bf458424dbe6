"""review.shortcuts: label keys that cannot be misread; charts draw labels as categories."""
from review import charts
from review.shortcuts import RESERVED, describe, label_keys


def test_digit_labels_get_their_own_digit():
    assert label_keys(["0", "1"]) == ["0", "1"]
    assert label_keys(["1", "2", "3", "4"]) == ["1", "2", "3", "4"]
    assert label_keys(["0 negative", "1 positive"]) == ["0", "1"]
    assert describe(label_keys(["1", "2", "3", "4"])) == "1–4" and describe(["0", "1"]) == "0, 1"


def test_names_without_digits_keep_positions():
    assert label_keys(["neg", "pos"]) == ["1", "2"]
    assert label_keys([f"c{i}" for i in range(11)])[9:] == [None, None]


def test_ambiguous_digits_fall_back_to_letters_never_the_reserved_ones():
    for labels in (["1", "10", "11"], ["0", "1", "x"], [str(i) for i in range(12)]):
        keys = label_keys(labels)
        assert all(k and k.isalpha() and k not in RESERVED for k in keys), keys
        assert len(set(keys)) == len(keys)
    assert label_keys(["Sports", "1 World", "Sci"]) == ["A", "W", "C"]      # own first letter unless reserved (S)


def test_numeric_labels_are_categories_in_charts():
    fig = charts.class_probabilities(["0", "1"], [0.3, 0.7], "0", "1")
    assert fig.layout.yaxis.type == "category"
    fig = charts.confusion(["0", "1"], [("0", "1", 3)])
    assert fig.layout.xaxis.type == "category" and fig.layout.yaxis.type == "category"
    assert charts.given_vs_cleaned([("0", 5, 4), ("1", 3, 4)]).layout.xaxis.type == "category"
