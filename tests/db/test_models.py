"""The text model portfolio and the score built on it: chosen from the data, recorded, reproducible,
forced on request; the per-class balance of the queue; the self-check. Real sklearn, cleanlab, SQLite."""

from __future__ import annotations

import numpy as np
import pytest

from review import audit, datasets, selfcheck, store
from review.errors import PermissionDenied, ReviewError
from review.text import issues, models
from tests.helpers import counts


def _ranking(db, run_id):
    return [r[0] for r in db.execute("SELECT idx FROM scores WHERE run_id=? ORDER BY rank", [run_id])]


def test_the_choice_is_recorded_and_reproducible(db, lead, demo_ds):
    first = datasets.latest_run(db, demo_ds.id)
    again = audit.run_audit(db, demo_ds.id, lead)
    second = datasets.latest_run(db, demo_ds.id)
    assert second["id"] == again != first["id"]
    assert second["params"]["model"] == first["params"]["model"]
    assert second["params"]["candidates"] == [
        {**c, "seconds": s["seconds"]} for c, s in zip(first["params"]["candidates"], second["params"]["candidates"])
    ]
    assert _ranking(db, first["id"]) == _ranking(db, again)
    p = first["params"]
    assert p["selection"] == "auto" and p["choice"] and p["log loss"] > 0
    finalists = [c for c in p["candidates"] if c["nll"] is not None]
    assert 1 <= len(finalists) <= models.text.FINALISTS
    # a finalist is the best of its family on fold 1
    for f in finalists:
        same = [c for c in p["candidates"] if c["family"] == f["family"] and c["view"] == f["view"]]
        assert f["fold1_nll"] == min(c["fold1_nll"] for c in same)
    assert p["log loss"] <= min(c["nll"] for c in finalists) + 0.01  # the mixture is no worse than its best member


def test_a_forced_model_is_honoured(db, lead, demo_ds):
    run_id = audit.run_audit(db, demo_ds.id, lead, model="logreg")
    p = datasets.latest_run(db, demo_ds.id)["params"]
    assert p["selection"] == "logreg" and p["model"].startswith("logreg(alpha=") and p["model"].endswith("on words")
    assert {c["family"] for c in p["candidates"]} == {"logreg"} and {c["view"] for c in p["candidates"]} == {"words"}
    assert "--model logreg forced" in p["choice"]
    assert store.scalar(db, "SELECT COUNT(*) FROM scores WHERE run_id=?", [run_id]) == demo_ds.n_items


def test_an_unknown_or_misplaced_model_is_refused_and_writes_nothing(db, lead, demo_ds):
    before = counts(db)
    with pytest.raises(ReviewError, match="Unknown model 'bert'"):
        audit.run_audit(db, demo_ds.id, lead, model="bert")
    assert counts(db) == before


def test_character_ngrams_only_where_texts_are_short():
    assert models.text.chars_view_reason(["short text"] * 10) is None
    why = models.text.chars_view_reason(["word " * 200] * 10)
    assert why and "long" in why
    rng = np.random.default_rng(0)
    vocab = [f"w{i}" for i in range(50)]
    texts = [" ".join(rng.choice(vocab, 300)) for _ in range(60)]
    labels = np.array([0, 1] * 30)
    res = models.text_probs(texts, labels, 2)
    assert res.params["chars"].startswith("texts are long") and {c.view for c in res.candidates} == {"words"}
    with pytest.raises(ReviewError, match="needs character n-grams"):
        models.text_probs(texts, labels, 2, model="nb-chars")


def test_the_portfolio_picks_the_model_that_predicts_the_given_labels():
    """A dataset where one family is clearly right: two classes told apart by a word pair only
    (each word alone is balanced across the classes), many rows. The choice must follow the log loss."""
    rng = np.random.default_rng(1)
    texts, labels = [], []
    for _i in range(600):
        a, b = rng.integers(0, 2, size=2)
        texts.append(f"{'red' if a else 'blue'} {'car' if b else 'boat'} " + " ".join(rng.choice(["x", "y", "z"], 5)))
        labels.append(int(a == b))
    res = models.text_probs(texts, np.array(labels), 2)
    chosen = [c for c in res.candidates if c.weight > 0]
    best = min((c for c in res.candidates if c.nll is not None), key=lambda c: c.nll)
    assert best in chosen
    assert res.params["log loss"] < 0.3  # the word pairs make it learnable


def test_fast_nb_matches_sklearn():
    from scipy import sparse
    from sklearn.naive_bayes import MultinomialNB

    rng = np.random.default_rng(0)
    X = sparse.random(200, 50, density=0.2, random_state=0, format="csr")
    y = rng.integers(0, 3, 200)
    ours = models.FastNB(0.5).fit(X, y).predict_proba(X)
    ref = MultinomialNB(alpha=0.5).fit(X, y).predict_proba(X)
    assert np.allclose(ours, ref, atol=1e-5)


def test_class_balance_warns_when_one_class_fills_the_queue():
    n, k = 1000, 4
    rng = np.random.default_rng(0)
    labels = rng.integers(0, k, n)
    P = np.full((n, k), 0.02)
    P[np.arange(n), labels] = 0.94
    weak = np.flatnonzero(labels == 3)[:120]  # the model fails on class 3: low probability for its label
    P[weak] = 0.25
    is_issue = np.zeros(n, dtype=bool)
    is_issue[weak] = True
    rank = np.arange(1, n + 1)
    rank[weak], rank[: len(weak)] = rank[: len(weak)].copy(), rank[weak].copy()
    res = issues.class_balance(labels, P, is_issue, rank, ["a", "b", "c", "d"])
    assert res.top == 120
    d = next(c for c in res.classes if c.label == "d")
    assert d.top_share == 1.0 and d.flagged == 120
    assert sum(c.rows for c in res.classes) == n
    # spread evenly, nothing to warn about
    spread = np.flatnonzero(np.isin(np.arange(n), rng.choice(n, 120, replace=False)))
    is_issue2 = np.zeros(n, dtype=bool)
    is_issue2[spread] = True
    P2 = np.full((n, k), 0.02)
    P2[np.arange(n), labels] = 0.94
    P2[spread] = 0.25
    calm = issues.class_balance(labels, P2, is_issue2, np.arange(1, n + 1), ["a", "b", "c", "d"])
    assert calm.warning is None
    assert d.error_share < 0.5 and res.warning and "Class 'd' holds 100% of the first 120 suspects" in res.warning


def test_selfcheck_finds_the_injected_errors_and_changes_nothing(db, lead, demo_ds):
    before = counts(db)
    res = selfcheck.run_selfcheck(db, demo_ds.id, lead, seed=3)
    assert [k.kind for k in res.kinds] == list(selfcheck.KINDS)
    assert all(k.injected > 0 for k in res.kinds)
    assert res.recall >= 0.6 and all(0 <= k.recall <= 1 for k in res.kinds)
    assert set(res.pair) <= set(demo_ds.labels) and res.pair[0] != res.pair[1]
    after = counts(db)
    assert after["audit_log"] == before["audit_log"] + 1
    assert {k: v for k, v in after.items() if k != "audit_log"} == {k: v for k, v in before.items() if k != "audit_log"}
    kept = selfcheck.self_checks(db, demo_ds)
    assert [r.id for r in kept] == [res.id] and kept[0].kinds == res.kinds
    again = selfcheck.run_selfcheck(db, demo_ds.id, lead, seed=3)
    assert again.kinds == res.kinds  # same seed, same data: same result


def test_selfcheck_is_for_leads_and_refuses_bad_rates(db, lead, annotator, demo_ds):
    with pytest.raises(PermissionDenied):
        selfcheck.run_selfcheck(db, demo_ds.id, annotator)
    with pytest.raises(ReviewError, match="--rate 0.5"):
        selfcheck.run_selfcheck(db, demo_ds.id, lead, rate=0.5)
    assert store.scalar(db, "SELECT COUNT(*) FROM self_checks") == 0


def test_inject_keeps_kinds_disjoint_and_changes_labels():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 1000)
    noisy, parts = selfcheck.inject(labels, 3, (0, 1), seed=0)
    rows = np.concatenate(list(parts.values()))
    assert len(rows) == len(set(rows.tolist()))
    assert (noisy[parts["flips"]] != labels[parts["flips"]]).all()
    assert set(labels[parts["swaps"]]) <= {0, 1} and (noisy[parts["swaps"]] != labels[parts["swaps"]]).all()
    b = parts["shifted block"]
    assert (np.diff(b) == 1).all() and (noisy[b] == labels[b - 1]).all()
    untouched = np.setdiff1d(np.arange(1000), rows)
    assert (noisy[untouched] == labels[untouched]).all()


def test_second_pass_trains_without_the_first_pass_suspects(db, lead, demo_ds):
    audit.run_audit(db, demo_ds.id, lead, second_pass=True)
    p = datasets.latest_run(db, demo_ds.id)["params"]
    first = store.scalar(
        db, "SELECT COUNT(*) FROM scores WHERE run_id=(SELECT MIN(id) FROM runs WHERE kind='audit') AND is_issue=1"
    )
    assert p["excluded from training"] > 0 and p["second pass"].startswith("trained without the")
    assert abs(p["excluded from training"] - first) <= 0.5 * first  # about the suspects of one pass


def test_exclude_keeps_rows_out_of_training_but_predicts_them():
    seen = []

    class Recorder(models.FastNB):
        def fit(self, X, y, sample_weight=None):
            seen.append(np.asarray(X[:, 0].todense()).ravel().copy())  # column 0 carries the row number
            return super().fit(X, y, sample_weight)

    from scipy import sparse

    n = 100
    X = sparse.csr_matrix(np.column_stack([np.arange(n), np.ones(n)]).astype(float))
    labels = np.array([i % 2 for i in range(n)])
    exclude = np.zeros(n, dtype=bool)
    exclude[[3, 40, 77]] = True
    P = models.cross_val_probs(X, labels, 2, Recorder, n_folds=5, exclude=exclude)
    trained = set(np.concatenate(seen).astype(int).tolist())
    assert len(seen) == 5 and trained == set(range(n)) - {3, 40, 77}
    assert P.shape == (n, 2) and np.allclose(P.sum(axis=1), 1)  # the excluded rows are still predicted
