"""review.charts stays small and inert whatever the data: 1,000 classes, 100,000 rows, long and hostile names.

Every public chart function: at most 31 categories on an axis (the top classes plus one "other"
bucket whose count is the sum of the rest, the title saying "top N of M"), a figure JSON under
200 KB built in well under a second, names cut with … on the axis, and no markup from the data
left in any string of the figure (plotly renders <a href>, <b>, <br> in ticks, titles, hover,
text). Data never enters a hovertemplate (a class named "%{x}" would be substituted).
"""

from __future__ import annotations

import html
import json
import random
import re
import time

import pytest

from review import charts

N_CLASSES = 1_000
N_ROWS = 100_000
MAX_CATEGORIES = 31  # 30 classes + "other" at most, on any axis of any chart
MAX_JSON = 200_000  # bytes of fig.to_json()
MAX_SECONDS = 1.0  # to build one figure and its JSON
TICK_MAX = 30  # characters of a name shown on an axis (after unescaping)
HOVER_MAX = 120  # characters of a name in the hover (the axis value)

LINK = '<a href="http://127.0.0.1:9/x">click</a>'
LONG = "a very long class name that goes on and on " * 8
HOSTILE = [
    LINK,
    "<b>bold</b>",
    "<img src=x onerror=alert(1)>",
    "%{x}",
    "Tom & Jerry",
    "two\nlines<br>three",
    "one: " + LONG,
    "two: " + LONG,
    "quote\"s and 'apostrophes'",
]
# markup of our own: a line break (titles, templates; a newline in the data is a space, a "<br>" in it
# escaped) and the hover's <extra> box (templates only)
ALLOWED_TAGS = re.compile(r"<br>")
TEMPLATE_TAGS = re.compile(r"<br>|<extra>|</extra>")


def class_names(k: int = N_CLASSES) -> list[str]:
    return HOSTILE + [f"class_{i:04d}" for i in range(k - len(HOSTILE))]


def weights(names: list[str], seed: int = 0) -> list[int]:
    """Row counts summing to about N_ROWS; the hostile names the largest, so they are drawn."""
    rnd = random.Random(seed)
    w = [rnd.random() ** 3 for _ in names]
    out = [max(1, int(N_ROWS * x / sum(w))) for x in w]
    for i in range(len(HOSTILE)):
        out[i] = 5_000 - i
    return out


def strings(obj, key=""):
    """(key, string) for every string in the figure's JSON."""
    if isinstance(obj, str):
        yield key, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from strings(v, k)
    elif isinstance(obj, list):
        for v in obj:
            yield from strings(v, key)


def built(make):
    t = time.perf_counter()
    fig = make()
    js = fig.to_json()
    seconds = time.perf_counter() - t
    assert len(js.encode()) < MAX_JSON, f"{len(js):,} bytes of JSON"
    assert seconds < MAX_SECONDS, f"{seconds:.2f} s to build"
    return fig, json.loads(js)


def assert_inert(spec: dict) -> None:
    """No tag from the data in any string, no data in a template."""
    for key, s in strings(spec):
        rest = (TEMPLATE_TAGS if key in ("hovertemplate", "texttemplate") else ALLOWED_TAGS).sub("", s)
        assert "<" not in rest and ">" not in rest, (key, s)
        assert "&quot;" not in s, (key, s)  # plotly knows &lt; &gt; &amp; and numeric ones: it would show &quot;
        if key in ("hovertemplate", "texttemplate"):
            assert not re.search(r"click|class_|worker|bold|Jerry|very long", s), (key, s)


def assert_bounded_axes(spec: dict) -> None:
    for trace in spec["data"]:
        for axis in ("x", "y"):
            vals = trace.get(axis)
            if isinstance(vals, list) and vals and isinstance(vals[0], str):
                assert len(vals) <= MAX_CATEGORIES, (trace["type"], axis, len(vals))
                assert len(set(vals)) == len(vals), "two classes merged into one category"
                assert all(len(html.unescape(v)) <= HOVER_MAX for v in vals)
    for axis in ("xaxis", "yaxis"):
        ax = spec["layout"].get(axis, {})
        ticks = ax.get("ticktext")
        if ticks:
            assert len(ticks) <= MAX_CATEGORIES
            assert all(len(html.unescape(t)) <= TICK_MAX for t in ticks), ticks
    if spec["layout"].get("height"):
        assert spec["layout"]["height"] <= 1_200


def drawn(values: list[str], names: list[str]) -> set[str]:
    """The raw names behind the drawn axis values (escaped, newlines as spaces, cut with …)."""
    out = set()
    for v in values:
        u = html.unescape(v)
        for n in names:
            flat = re.sub(r"[\x00-\x1f]", " ", n)
            if flat == u or (u.endswith("…") and flat.startswith(u[:-1])):
                out.add(n)
    return out


def title(spec: dict) -> str:
    t = spec["layout"].get("title", {})
    return t.get("text", "") if isinstance(t, dict) else t


def shows_escaped(spec: dict, name: str) -> bool:
    """The name appears escaped (as the user typed it, cut to the hover length) somewhere in the figure."""
    want = html.escape(charts.clip(name, 60), quote=False)[:40]
    return any(want in s for _, s in strings(spec))


# ----------------------------------------------------------------------------- per chart


def test_class_probabilities_top_classes_with_given_and_predicted_and_other():
    names = class_names()
    rnd = random.Random(1)
    p = [rnd.random() for _ in names]
    p = [x / sum(p) for x in p]
    given, predicted = names[500], LINK  # the given one improbable, far down the list
    fig, spec = built(lambda: charts.class_probabilities(names, p, given, predicted))
    assert_inert(spec)
    assert_bounded_axes(spec)
    bar = spec["data"][0]
    ys = [html.unescape(y) for y in bar["y"]]
    assert len(ys) <= MAX_CATEGORIES and ys[-1].startswith("other (")
    assert given in ys and LINK in ys  # both always drawn
    shown = drawn(bar["y"][:-1], names)
    assert len(shown) == len(ys) - 1
    rest = sum(x for n, x in zip(names, p) if n not in shown)
    assert bar["x"][-1] == pytest.approx(rest)
    assert f"{len(ys) - 1} of 1,000 classes" in title(spec)
    assert sum(bar["x"]) == pytest.approx(1.0)


def test_given_vs_cleaned_top_classes_and_other_sums_the_rest():
    names = class_names()
    given = weights(names)
    rows = [(n, g, g + (i % 3) - 1) for i, (n, g) in enumerate(zip(names, given))]
    fig, spec = built(lambda: charts.given_vs_cleaned(rows))
    assert_inert(spec)
    assert_bounded_axes(spec)
    g_trace, c_trace = spec["data"]
    xs = [html.unescape(x) for x in g_trace["x"]]
    assert xs[-1] == f"other ({N_CLASSES - len(xs) + 1:,} classes)"
    shown = drawn(g_trace["x"][:-1], names)
    assert len(shown) == len(xs) - 1
    assert g_trace["y"][-1] == sum(r[1] for r in rows if r[0] not in shown)
    assert c_trace["y"][-1] == sum(r[2] for r in rows if r[0] not in shown)
    assert sum(g_trace["y"]) == sum(r[1] for r in rows)  # nothing lost
    assert LINK in xs and shows_escaped(spec, LINK)
    assert f"top {len(xs) - 1} of 1,000 classes" in title(spec)
    # the other pair dwarfs the 20 classes: the axis stops above them, the pair's counts are written
    top = max(max(g_trace["y"][:-1]), max(c_trace["y"][:-1]))
    assert spec["layout"]["yaxis"]["range"][1] < g_trace["y"][-1]
    assert spec["layout"]["yaxis"]["range"][1] >= top
    assert f"{g_trace['y'][-1]:,}" in spec["layout"]["annotations"][0]["text"]


def test_given_vs_cleaned_draws_the_classes_the_cleaning_changed_first():
    names = class_names()
    rows = [(n, 50, 50) for n in names]
    rows[700] = (names[700], 50, 40)  # a small class the cleaning moved rows out of
    rows[701] = (names[701], 50, 60)
    fig, spec = built(lambda: charts.given_vs_cleaned(rows))
    xs = [html.unescape(x) for x in spec["data"][0]["x"]]
    assert set(xs[:2]) == {names[700], names[701]}  # changed by 10 each, then the larger (701) first
    assert xs[0] == names[701]


def _pairs(names: list[str], n_rows: int = N_ROWS, seed: int = 2) -> list[tuple[str, str, int]]:
    rnd = random.Random(seed)
    out: dict[tuple[str, str], int] = {}
    for _ in range(n_rows):
        g = rnd.choice(names[:12]) if rnd.random() < 0.3 else rnd.choice(names)
        p = rnd.choice(names)
        if g != p:
            out[(g, p)] = out.get((g, p), 0) + 1
    return [(g, p, n) for (g, p), n in out.items()]


@pytest.mark.parametrize("which", ["confusion", "annotator_confusion"])
def test_confusion_at_most_31_by_31_with_an_other_row_and_column(which):
    names = class_names()
    pairs = _pairs(names)
    make = (
        (lambda: charts.confusion(names, pairs))
        if which == "confusion"
        else (lambda: charts.annotator_confusion(names, pairs, LINK + LONG))
    )
    fig, spec = built(make)
    assert_inert(spec)
    assert_bounded_axes(spec)
    hm = spec["data"][0]
    z, xs = hm["z"], [html.unescape(x) for x in hm["x"]]
    assert len(z) == len(xs) <= MAX_CATEGORIES and all(len(r) == len(xs) for r in z)
    assert len(z) * len(z[0]) <= MAX_CATEGORIES**2
    assert xs[-1].startswith("other (")
    shown = drawn(hm["x"][:-1], names)
    assert len(shown) == len(xs) - 1
    assert sum(map(sum, z)) == sum(n for _, _, n in pairs)  # every flagged row counted once
    other = sum(z[-1]) + sum(r[-1] for r in z) - z[-1][-1]
    assert other == sum(n for g, p, n in pairs if g not in shown or p not in shown)
    assert "of 1,000 classes" in title(spec)
    if which == "annotator_confusion":
        assert "&lt;a href=" in title(spec) and LONG not in title(spec)


def test_confusion_small_label_sets_unchanged():
    fig = charts.confusion(["0", "1", "2"], [("0", "1", 3), ("2", "0", 1)])
    hm = fig.data[0]
    assert list(hm.x) == ["0", "1", "2"] and hm.z[0][1] == 3 and hm.z[2][0] == 1
    assert "other" not in fig.to_json()


def test_quality_histogram_bounded_bins_and_counts_kept():
    bins = 10_000
    edges = [i / bins for i in range(bins + 1)]
    counts = [N_ROWS // bins] * bins
    flagged = [1] * bins
    fig, spec = built(lambda: charts.quality_histogram(edges, counts, flagged))
    assert_inert(spec)
    for tr in spec["data"]:
        assert len(tr["x"]) <= 100
    assert sum(spec["data"][0]["y"]) == sum(counts) and sum(spec["data"][1]["y"]) == sum(flagged)
    fig, spec = built(lambda: charts.quality_histogram([i / 20 for i in range(21)], [N_ROWS // 20] * 20, [50] * 20))
    assert len(spec["data"][0]["x"]) == 20


def test_review_progress_and_judge_verdicts_bounded():
    fig, spec = built(lambda: charts.review_progress({"open": N_ROWS - 10, "kept": 5, "approved": 5, LINK: 3}))
    assert_inert(spec)
    assert len(spec["data"]) <= 6
    fig, spec = built(
        lambda: charts.judge_verdicts({"YES": N_ROWS // 2, "NO": N_ROWS // 3, "UNKNOWN": 9, "not judged": 1})
    )
    assert_inert(spec)


def test_precision_by_band_escapes_its_band_names():
    bands = [
        {"band": LINK, "precision": 0.5, "low": 0.2, "high": 0.8, "wrong": 5, "decided": 10},
        {"band": "0.05–0.10", "precision": None, "low": 0.0, "high": 1.0, "wrong": 0, "decided": 0},
    ]
    fig, spec = built(lambda: charts.precision_by_band(bands))
    assert_inert(spec)


def test_annotator_quality_bounded_points_title_counts_the_rest():
    rnd = random.Random(3)
    rows = [
        {
            "annotator": (HOSTILE[i] if i < len(HOSTILE) else f"worker{i}"),
            "quality": rnd.random(),
            "n_labels": (10_000 - i) if i < len(HOSTILE) else rnd.randint(1, 50),
        }
        for i in range(N_ROWS)
    ]
    fig, spec = built(lambda: charts.annotator_quality(rows))
    assert_inert(spec)
    sc = spec["data"][0]
    assert len(sc["x"]) <= 500
    shown = len(sc["x"])
    drawn = sorted(rows, key=lambda r: -r["n_labels"])[:shown]
    rest = sum(r["n_labels"] for r in rows) - sum(r["n_labels"] for r in drawn)
    assert f"{N_ROWS - shown:,} more with {rest:,} labels" in title(spec)
    assert shows_escaped(spec, LINK)


def test_pairwise_agreement_bounded_grid():
    names = [HOSTILE[i] if i < len(HOSTILE) else f"worker{i}" for i in range(200)]
    rnd = random.Random(4)
    pairs = [
        {"a": a, "b": b, "shared": rnd.randint(1, 30), "agreement": rnd.random()}
        for i, a in enumerate(names)
        for b in names[i + 1 :]
    ]
    fig, spec = built(lambda: charts.pairwise_agreement(pairs))
    assert_inert(spec)
    assert_bounded_axes(spec)
    hm = spec["data"][0]
    assert len(hm["z"]) <= MAX_CATEGORIES and all(len(r) <= MAX_CATEGORIES for r in hm["z"])
    assert f"of {len(names):,} annotators" in title(spec)


def test_tag_swaps_top_swaps_and_other():
    names = class_names()
    rows = [
        {
            "given_tag": f"B-{names[i]}",
            "predicted_tag": f"I-{names[(i + 1) % len(names)]}",
            "tokens": N_CLASSES - i,
            "sentences": 1,
            "examples": f"{LINK}, {LONG}",
        }
        for i in range(N_CLASSES)
    ]
    fig, spec = built(lambda: charts.tag_swaps(rows))
    assert_inert(spec)
    assert_bounded_axes(spec)
    bar = spec["data"][0]
    ys = [html.unescape(y) for y in bar["y"]]
    assert ys[0].startswith("other (")  # drawn bottom-up: the most frequent on top
    drawn = len(ys) - 1
    assert bar["x"][0] == sum(r["tokens"] for r in rows[drawn:])
    assert sum(bar["x"]) == sum(r["tokens"] for r in rows)
    assert all(len(html.unescape(t)) <= 60 for t in bar["text"])
    assert f"top {drawn} of 1,000 swaps" in title(spec)


def test_every_public_chart_function_is_covered():
    """A new chart function must be added here (and bounded): the list is every public figure builder."""
    import inspect

    public = {
        n
        for n, f in inspect.getmembers(charts, inspect.isfunction)
        if f.__module__ == charts.__name__
        and not n.startswith("_")
        and inspect.signature(f).return_annotation in ("go.Figure",)
    }
    assert public == {
        "class_probabilities",
        "given_vs_cleaned",
        "confusion",
        "annotator_confusion",
        "quality_histogram",
        "review_progress",
        "annotator_quality",
        "pairwise_agreement",
        "tag_swaps",
        "precision_by_band",
        "judge_verdicts",
    }


def test_long_names_alike_stay_distinct_and_are_cut_on_the_axis():
    a, b = LONG + "alpha", LONG + "beta"
    fig, spec = built(lambda: charts.given_vs_cleaned([(a, 5, 5), (b, 4, 4)]))
    xs = spec["data"][0]["x"]
    assert len(set(xs)) == 2
    assert all(t.endswith("…") and len(t) <= TICK_MAX for t in spec["layout"]["xaxis"]["ticktext"])


def test_judge_verdicts_draws_when_no_verdict_was_yes_or_no():
    # agreement is None until the judge said YES or NO once: the chart must still draw
    fig = charts.judge_verdicts({"YES": 0, "NO": 0, "UNKNOWN": 5, "not judged": 3, "agreement": None})
    assert list(fig.data[0].y) == [0, 0, 5, 3]
