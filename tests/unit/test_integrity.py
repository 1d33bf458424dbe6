"""Tests for review.text.integrity: item checks, off-by-one (shifted block) detector."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pandas as pd
import pytest

from review.text.integrity import Finding, check_items, detect_shifted_blocks
from tests.helpers import DATA

AG_NEWS = DATA / "ag_news" / "test.csv"
AG_CLASSES = ["World", "Sports", "Business", "Sci/Tech"]


def _by_kind(findings: list[Finding], kind: str) -> list[Finding]:
    return [f for f in findings if f.kind == kind]


# ----------------------------------------------------------------------------- check_items


def test_empty_texts_one_finding_listing_all_rows():
    texts = ["fine", None, "", "   \t\n ", float("nan"), "also fine"]
    labels = ["a", "a", "b", "a", "b", "b"]
    findings = check_items(texts, labels)
    empty = _by_kind(findings, "empty_text")
    assert len(empty) == 1
    assert empty[0].rows == [1, 2, 3, 4]
    assert empty[0].reason_for(3) == "empty text"
    assert "1–4" in empty[0].message
    assert not _by_kind(findings, "null_label")
    with pytest.raises(ValueError):
        empty[0].reason_for(0)


def test_clean_items_give_no_findings():
    assert check_items(["one", "two", "three"], ["a", "b", "a"], ["a", "b"]) == []


def test_null_labels_one_finding():
    texts = ["t0", "t1", "t2", "t3", "t4"]
    labels = ["a", None, float("nan"), "  ", "b"]
    findings = check_items(texts, labels)
    nulls = _by_kind(findings, "null_label")
    assert len(nulls) == 1
    assert nulls[0].rows == [1, 2, 3]
    assert nulls[0].reason_for(2) == "no label"
    assert not _by_kind(findings, "unknown_label")


def test_unknown_labels_one_finding_per_value():
    texts = [f"text {i}" for i in range(7)]
    labels = ["Sports", "Foo", "World", "Foo", "sports", "World", None]
    findings = check_items(texts, labels, label_set=["World", "Sports"])
    unknown = {f.detail["label"]: f for f in _by_kind(findings, "unknown_label")}
    assert set(unknown) == {"Foo", "sports"}
    assert unknown["Foo"].rows == [1, 3]
    assert unknown["sports"].rows == [4]
    assert unknown["Foo"].reason_for(3) == "label 'Foo' is not in the label set"
    assert unknown["sports"].detail["suggestion"] == "Sports"
    assert "'Sports'" in unknown["sports"].reason_for(4)
    assert "Foo" in unknown["Foo"].message and "1, 3" in unknown["Foo"].message
    # a missing label is a null label, not an unknown one; no label_set -> no unknown check
    assert [f.rows for f in _by_kind(findings, "null_label")] == [[6]]
    assert not _by_kind(check_items(texts, labels), "unknown_label")


def test_conflicting_duplicates_one_finding_per_group():
    texts = [
        "The cat sat",  # 0  group A
        "the  CAT sat ",  # 1  group A (case + whitespace)
        "dog",  # 2  group B
        "\tThe cat\nsat",  # 3  group A
        "Dog",  # 4  group B
        "same label",  # 5  duplicate with the same label: fine
        "SAME label",  # 6
        "unique",  # 7
        "dog",  # 8  group B but no label -> left out
    ]
    labels = ["pos", "neg", "x", "pos", "y", "z", "z", "pos", None]
    dups = _by_kind(check_items(texts, labels), "conflicting_duplicates")
    assert len(dups) == 2
    a, b = dups
    assert a.rows == [0, 1, 3]
    assert a.detail["labels"] == {"pos": [0, 3], "neg": [1]}
    assert a.detail["text"] == "The cat sat"
    assert b.rows == [2, 4]
    assert b.detail["labels"] == {"x": [2], "y": [4]}
    assert a.reason_for(1) == "same text as rows 0, 3 with labels pos/neg"
    assert b.reason_for(4) == "same text as row 2 with labels x/y"
    assert "0, 1, 3" in a.message


def test_findings_are_json_serialisable():
    findings = check_items(["a", "a", "", "b"], ["x", "y", "x", None], ["x"])
    assert {f.kind for f in findings} == {"empty_text", "null_label", "unknown_label", "conflicting_duplicates"}
    for f in findings:
        for r in f.rows:
            f.reason_for(r)  # fills the row cache; it must stay out of asdict()
        json.dumps(dataclasses.asdict(f))


def test_check_items_length_mismatch():
    with pytest.raises(ValueError):
        check_items(["a", "b"], ["x"])


def test_check_items_finds_every_duplicate_at_scale():
    n = 200_000  # its speed: benchmarks/scale.py
    rng = np.random.default_rng(0)
    # mostly unique short texts; every 40th row repeats an earlier text (25,000 duplicate pairs)
    texts = [f"Item {i // 40 * 40 if i % 40 == 39 else i}  text" for i in range(n)]
    labels = np.array(["a", "b", "c"])[rng.integers(0, 3, n)].tolist()
    findings = check_items(texts, labels, ["a", "b", "c"])
    dups = _by_kind(findings, "conflicting_duplicates")
    expected = sum(labels[i] != labels[i - 39] for i in range(39, n, 40))
    assert len(dups) == expected > 2_000


# text length per label is an SQL aggregate (review.stats.length_by_class): tests/db/test_crowd_loop.py


# ----------------------------------------------------------------------------- shifted blocks (synthetic)


def _synthetic(n=2000, k=4, seed=0, noise=1.2, flip=0.03):
    """true classes, noisy labels (flip share flipped), pred_probs peaked on the true class."""
    rng = np.random.default_rng(seed)
    true = rng.integers(0, k, n)
    logits = rng.normal(0.0, noise, (n, k))
    logits[np.arange(n), true] += 3.0
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    y = true.copy()
    idx = rng.choice(n, int(flip * n), replace=False)
    y[idx] = (y[idx] + rng.integers(1, k, len(idx))) % k
    return true, y, p


NAMES4 = ["A", "B", "C", "D"]


def test_synthetic_model_is_realistic():
    true, _, p = _synthetic()
    assert 0.85 < (p.argmax(1) == true).mean() < 0.97


@pytest.mark.parametrize("direction", ["prev", "next"])
def test_shifted_block_found_in_synthetic_data(direction):
    _, y, p = _synthetic()
    shifted = y.copy()
    if direction == "prev":  # labels moved down: row i carries row i-1's label
        shifted[500:560] = y[499:559]
    else:  # labels moved up: row i carries row i+1's label
        shifted[500:560] = y[501:561]
    findings = detect_shifted_blocks(shifted, p, NAMES4)
    assert len(findings) == 1, [(f.detail["start"], f.detail["end"]) for f in findings]
    f = findings[0]
    assert f.kind == "shifted_block"
    assert abs(f.detail["start"] - 500) <= 2 and abs(f.detail["end"] - 559) <= 2
    assert f.rows == list(range(f.detail["start"], f.detail["end"] + 1))
    assert f.detail["direction"] == direction
    good = sum(f.detail["suggested"][str(i)] == NAMES4[y[i]] for i in f.rows)
    assert good >= 0.9 * len(f.rows)
    json.dumps(dataclasses.asdict(f))
    assert f"Rows {f.detail['start']}–{f.detail['end']}" in f.message
    row = f.rows[5]
    neighbour = row - 1 if direction == "prev" else row + 1
    assert f.reason_for(row) == (
        f"in shifted block rows {f.detail['start']}–{f.detail['end']}; its label fits row {neighbour}'s text"
    )


@pytest.mark.parametrize("seed", range(5))
def test_no_block_on_clean_data_with_label_noise(seed):
    _, y, p = _synthetic(seed=seed, flip=0.03)
    assert detect_shifted_blocks(y, p, NAMES4) == []


def test_no_block_with_a_weak_model():
    """~60% accurate, noisy probabilities: chance runs must not pass as blocks."""
    found = []
    for seed in range(20):
        true, y, p = _synthetic(seed=seed, noise=2.5)
        found += [(seed, f.detail["start"], f.detail["end"]) for f in detect_shifted_blocks(y, p, NAMES4)]
    assert (p.argmax(1) == true).mean() < 0.7
    assert found == []


def test_block_edges_are_accurate_over_many_seeds():
    """Edge error (max of |start-500|, |end-559|) over 100 shifted blocks. Edges are noisy by nature
    (a row whose neighbour has the same class carries no evidence), but mostly within 2 rows."""
    errors = []
    for seed in range(50):
        _, y, p = _synthetic(seed=seed)
        for step in (-1, 1):
            shifted = y.copy()
            shifted[500:560] = y[500 + step : 560 + step]
            hits = [f for f in detect_shifted_blocks(shifted, p, NAMES4) if f.detail["start"] <= 530 <= f.detail["end"]]
            assert hits, (seed, step)
            errors.append(max(abs(hits[0].detail["start"] - 500), abs(hits[0].detail["end"] - 559)))
    errors = np.array(errors)
    assert (errors <= 2).mean() >= 0.85 and errors.mean() <= 1.0, errors


def test_no_block_on_data_sorted_by_class():
    true, y, p = _synthetic(seed=3)
    order = np.argsort(true, kind="stable")  # neighbours share a class: scores are pure noise
    assert detect_shifted_blocks(y[order], p[order], NAMES4) == []


def test_block_in_alternating_classes_is_one_finding():
    """Classes alternate A/B/A/B in rows 300-699: there a shift down equals a shift up (and a shift
    by three), so both directions score; the block must still be reported once."""
    rng = np.random.default_rng(7)
    n = 2000
    true = rng.integers(0, 4, n)
    true[300:700] = np.arange(400) % 2
    logits = rng.normal(0.0, 1.2, (n, 4))
    logits[np.arange(n), true] += 3.0
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    shifted = true.copy()
    shifted[450:550] = true[449:549]
    findings = detect_shifted_blocks(shifted, p, NAMES4)
    assert len(findings) == 1, [(f.detail["start"], f.detail["end"], f.detail["direction"]) for f in findings]
    f = findings[0]
    assert abs(f.detail["start"] - 450) <= 2 and abs(f.detail["end"] - 549) <= 2
    good = sum(f.detail["suggested"][str(i)] == NAMES4[true[i]] for i in f.rows)
    assert good >= 0.9 * len(f.rows)


def test_block_with_same_class_neighbours_and_unlabelled_rows_is_one_range():
    _, y, p = _synthetic(seed=1)
    shifted = y.copy()
    shifted[300:400] = y[299:399]
    shifted[340:346] = -1  # unlabelled rows inside the block
    findings = detect_shifted_blocks(shifted, p, NAMES4)
    assert len(findings) == 1
    assert findings[0].detail["start"] <= 302 and findings[0].detail["end"] >= 397


def test_two_separate_blocks():
    _, y, p = _synthetic(n=3000, seed=2)
    shifted = y.copy()
    shifted[400:480] = y[399:479]
    shifted[2000:2100] = y[2001:2101]
    findings = detect_shifted_blocks(shifted, p, NAMES4)
    spans = [(f.detail["start"], f.detail["end"], f.detail["direction"]) for f in findings]
    assert len(spans) == 2, spans
    assert abs(spans[0][0] - 400) <= 2 and abs(spans[0][1] - 479) <= 2 and spans[0][2] == "prev"
    assert abs(spans[1][0] - 2000) <= 2 and abs(spans[1][1] - 2099) <= 2 and spans[1][2] == "next"


def test_block_shorter_than_min_rows_is_not_reported():
    _, y, p = _synthetic(seed=4)
    shifted = y.copy()
    shifted[700:760] = y[699:759]
    assert len(detect_shifted_blocks(shifted, p, NAMES4)) == 1
    assert detect_shifted_blocks(shifted, p, NAMES4, min_rows=100) == []


def test_detect_shifted_blocks_rejects_bad_shapes():
    p = np.full((5, 2), 0.5)
    with pytest.raises(ValueError):
        detect_shifted_blocks(np.zeros(4, dtype=int), p, ["a", "b"])
    with pytest.raises(ValueError):
        detect_shifted_blocks(np.zeros(5, dtype=int), p, ["a", "b", "c"])
    with pytest.raises(ValueError):
        detect_shifted_blocks(np.array([0, 1, 2, 0, 1]), p, ["a", "b"])
    assert detect_shifted_blocks(np.zeros(0, dtype=int), np.zeros((0, 2)), ["a", "b"]) == []


# ----------------------------------------------------------------------------- shifted blocks (AG News)


@pytest.fixture(scope="module")
def ag_news():
    """(labels (n,) int 0..3, out-of-sample pred_probs (n, 4)) for the AG News test split."""
    if not AG_NEWS.exists():
        if os.environ.get("CI"):
            pytest.fail(f"AG News test data not found at {AG_NEWS}; CI must provide shared/data/ag_news/test.csv.")
        pytest.skip(f"AG News test data not found at {AG_NEWS}")
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import SGDClassifier
    from sklearn.model_selection import cross_val_predict

    df = pd.read_csv(AG_NEWS, header=None, names=["cls", "title", "description"], dtype=str, keep_default_na=False)
    labels = df["cls"].astype(int).to_numpy() - 1
    texts = (df["title"] + " " + df["description"]).tolist()
    x = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2).fit_transform(texts)
    # SGD logistic regression: same accuracy (~0.87) and same findings as LogisticRegression(max_iter=200)
    # here, but 0.3 s instead of 5-20 s on a busy machine.
    model = SGDClassifier(loss="log_loss", random_state=0)
    probs = cross_val_predict(model, x, labels, method="predict_proba", cv=5)
    return labels, probs


def test_ag_news_no_block_on_original_labels(ag_news):
    labels, probs = ag_news
    assert len(labels) == 7600 and (probs.argmax(1) == labels).mean() > 0.8
    assert detect_shifted_blocks(labels, probs, AG_CLASSES) == []


def test_ag_news_no_block_when_sorted_by_class(ag_news):
    labels, probs = ag_news
    order = np.argsort(labels, kind="stable")
    assert detect_shifted_blocks(labels[order], probs[order], AG_CLASSES) == []


@pytest.mark.parametrize("direction", ["prev", "next"])
def test_ag_news_shifted_block_found(ag_news, direction):
    labels, probs = ag_news
    start, size = 3000, 228  # 3% of 7600 rows
    step = -1 if direction == "prev" else 1  # prev: labels moved down one row
    shifted = labels.copy()
    shifted[start : start + size] = labels[start + step : start + size + step]
    findings = detect_shifted_blocks(shifted, probs, AG_CLASSES)
    assert len(findings) == 1, [(f.detail["start"], f.detail["end"]) for f in findings]
    f = findings[0]
    assert f.detail["direction"] == direction
    covered = len(set(f.rows) & set(range(start, start + size)))
    assert covered >= 0.95 * size
    assert len(f.rows) <= size + 10  # and not much more
    suggested = f.detail["suggested"]
    right = sum(suggested.get(str(i)) == AG_CLASSES[labels[i]] for i in range(start, start + size))
    assert right >= 0.9 * size
