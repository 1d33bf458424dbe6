import io
import re

import numpy as np
import pandas as pd
import pytest
from cleanlab.filter import find_label_issues
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict
from sklearn.pipeline import make_pipeline

from review.demo import DEMO_NAME, demo_csv_bytes, demo_frame, demo_truth


def test_name():
    assert DEMO_NAME == "demo-support-tickets"


def test_deterministic_same_seed():
    a, b = demo_frame(), demo_frame(400, 7)
    pd.testing.assert_frame_equal(a, b)
    assert demo_truth() == demo_truth(400, 7)
    assert demo_csv_bytes() == demo_csv_bytes(400, 7)


def test_different_seed_differs():
    assert not demo_frame(seed=7)["text"].equals(demo_frame(seed=8)["text"])


def test_returned_frame_is_a_copy():
    df = demo_frame()
    df.loc[0, "label"] = "changed"
    assert demo_frame().loc[0, "label"] != "changed"


def test_columns_and_sizes():
    df = demo_frame()
    assert list(df.columns) == ["id", "text", "label", "channel"]
    assert len(df) == 400
    assert df["id"].is_unique
    assert all(re.fullmatch(r"T\d{4}", i) for i in df["id"])
    assert df["id"].iloc[0] == "T0001"
    assert df["text"].map(lambda t: isinstance(t, str) and t.strip() != "").all()
    assert set(df["channel"]) <= {"email", "chat", "phone", "web form"}
    assert df["channel"].nunique() >= 3
    assert len(demo_frame(n=120)) == 120


def test_four_classes_each_at_least_50():
    counts = demo_frame()["label"].value_counts()
    assert len(counts) == 4
    assert set(counts.index) == {"billing", "shipping", "technical", "account"}
    assert counts.min() >= 50


def test_texts_vary():
    df = demo_frame()
    assert df["text"].nunique() >= 390
    words = {w for t in df["text"] for w in re.findall(r"[a-z]+", t.lower())}
    assert len(words) >= 200


def test_injected_errors_match_truth():
    df = demo_frame()
    truth = demo_truth()
    assert 0.06 * len(df) <= len(truth) <= 0.10 * len(df)
    assert set(truth) <= set(df["id"])
    given = df.set_index("id")["label"]
    classes = set(df["label"])
    for rid, true_label in truth.items():
        assert true_label in classes
        assert given[rid] != true_label


def test_duplicate_texts_with_different_labels():
    df = demo_frame()
    dups = df[df["text"].duplicated(keep=False)]
    assert len(dups) >= 2
    conflicting = dups.groupby("text")["label"].nunique()
    assert (conflicting > 1).sum() >= 1
    # the wrong copy of each conflicting duplicate is a recorded injected error
    truth = demo_truth()
    for _, group in dups.groupby("text"):
        if group["label"].nunique() > 1:
            assert any(rid in truth for rid in group["id"])


def test_csv_bytes_round_trip():
    raw = demo_csv_bytes()
    assert isinstance(raw, bytes)
    assert raw.decode("utf-8").splitlines()[0] == "id,text,label,channel"
    back = pd.read_csv(io.BytesIO(raw), dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(back, demo_frame().astype(str), check_dtype=False)


def _measure(seed: int):
    df = demo_frame(seed=seed)
    truth = demo_truth(seed=seed)
    classes = sorted(df["label"].unique())
    labels = df["label"].map({c: i for i, c in enumerate(classes)}).to_numpy()
    model = make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=1000))
    pred_probs = cross_val_predict(model, df["text"], labels, cv=5, method="predict_proba")
    issues = find_label_issues(labels, pred_probs)
    flagged = set(df["id"][np.asarray(issues)])
    injected = set(truth)
    hits = len(flagged & injected)
    recall = hits / len(injected)
    precision = hits / max(1, len(flagged))
    accuracy = float((pred_probs.argmax(axis=1) == labels).mean())
    return recall, precision, accuracy


@pytest.mark.parametrize("seed", [7, 8])
def test_injected_errors_are_findable(seed):
    recall, precision, accuracy = _measure(seed)
    assert recall >= 0.7, recall
    assert precision >= 0.5, precision
    # not trivial, not hopeless: out-of-sample accuracy against the given labels
    assert 0.8 <= accuracy <= 0.97, accuracy
