"""audit: runs with real sklearn + cleanlab; history kept; findings; probability and tabular paths."""

from __future__ import annotations

import json

import cleanlab
import numpy as np
import pandas as pd
import pytest
import sklearn
from threadpoolctl import threadpool_limits

from review import audit, datasets, demo, stats, store, workflow
from review.errors import PermissionDenied
from review.text import ingest
from tests.helpers import counts


def scores(db, run_id) -> list[dict]:
    return list(db.query("SELECT * FROM scores WHERE run_id=? ORDER BY idx", [run_id]))


def test_rerun_creates_new_run_and_keeps_earlier_scores_and_reviews(db, lead, annotator, demo_ds):
    run1 = datasets.latest_run(db, demo_ds.id)["id"]
    before = scores(db, run1)
    s = workflow.claim_next(db, demo_ds, annotator)
    rid = workflow.decide(db, demo_ds, s.idx, annotator, "keep", s.version, note="looks right")
    review_before = list(db.query("SELECT * FROM reviews"))
    state_before = list(db.query("SELECT * FROM states"))

    run2 = audit.run_audit(db, demo_ds.id, lead)
    run3 = audit.run_audit(db, demo_ds.name, lead)
    assert len({run1, run2, run3}) == 3
    assert datasets.latest_run(db, demo_ds.id)["id"] == run3
    assert [r["id"] for r in datasets.runs(db, demo_ds.id)] == [run3, run2, run1]
    assert scores(db, run1) == before  # untouched, row for row
    assert len(scores(db, run2)) == len(scores(db, run3)) == demo_ds.n_items
    assert list(db.query("SELECT * FROM reviews")) == review_before
    assert list(db.query("SELECT * FROM states")) == state_before
    assert review_before[0]["id"] == rid and review_before[0]["run_id"] == run1
    logged = [r[0] for r in db.execute("SELECT payload FROM audit_log WHERE action='audit_run' ORDER BY id")]
    assert [json.loads(p)["run"] for p in logged] == [run1, run2, run3]


def test_ranks_unique_flagged_first(db, demo_ds):
    run = datasets.latest_run(db, demo_ds.id)
    rows = scores(db, run["id"])
    n = demo_ds.n_items
    assert sorted(r["rank"] for r in rows) == list(range(1, n + 1))
    flagged = [r for r in rows if r["is_issue"]]
    assert 0 < len(flagged) < n
    assert len(flagged) == run["metrics"]["flagged"]
    assert max(r["rank"] for r in flagged) == len(flagged)  # every flagged row before every other row
    by_rank = sorted(flagged, key=lambda r: r["rank"])
    trusts = [r["trust"] for r in by_rank]
    assert trusts == sorted(trusts)  # least trusted first
    for r in rows:
        assert 0.0 <= r["quality"] <= 1.0
        p = json.loads(r["probs"])
        assert len(p) == len(demo_ds.labels) and sum(p) == pytest.approx(1.0, abs=1e-3)
        assert r["predicted_label"] == demo_ds.labels[int(np.argmax(p))]
        assert r["action"] in ("relabel", "needs review", "keep")
        assert (r["action"] == "keep") == (not r["is_issue"])


def test_audit_finds_the_injected_demo_errors(db, demo_ds):
    run = datasets.latest_run(db, demo_ds.id)
    truth = demo.demo_truth()
    flagged = {
        r[0]
        for r in db.execute(
            "SELECT i.key FROM scores s JOIN items i ON i.dataset_id=? AND i.idx=s.idx WHERE s.run_id=? AND s.is_issue=1",
            [demo_ds.id, run["id"]],
        )
    }
    hits = flagged & set(truth)
    assert len(hits) >= 0.6 * len(truth)
    assert len(hits) >= 0.6 * len(flagged)


def test_library_versions_recorded(db, demo_ds):
    run = datasets.latest_run(db, demo_ds.id)
    versions = json.loads(run["versions"])
    assert versions["cleanlab"] == cleanlab.__version__
    assert versions["scikit-learn"] == sklearn.__version__
    assert versions["numpy"] == np.__version__
    assert versions["pandas"] == pd.__version__
    assert versions["python"].count(".") == 2
    params = run["params"]
    assert params["folds"] == 5 and params["selection"] == "auto"
    kept = [c for c in params["candidates"] if c["weight"] > 0]
    assert kept and abs(sum(c["weight"] for c in kept) - 1) < 1e-9
    assert all(c["name"] in params["model"] for c in kept)
    assert all(c["fold1_nll"] > 0 for c in params["candidates"])
    assert run["status"] == "done" and run["finished_at"] >= run["started_at"]


def _integrity_frame() -> pd.DataFrame:
    rows = []
    for i in range(10):
        rows.append({"text": f"great lovely wonderful product number {i}", "label": "pos"})
        rows.append({"text": f"awful broken terrible product number {i}", "label": "neg"})
    rows.append({"text": "", "label": "pos"})  # row 20: empty text
    rows.append({"text": "Arrived on time, works fine", "label": "pos"})  # rows 21, 22: same text,
    rows.append({"text": "arrived on  time, works fine ", "label": "neg"})  # conflicting labels
    return pd.DataFrame(rows)


def test_integrity_findings_stored_and_flagged(db, lead):
    ds_id = ingest.ingest_bytes(db, _integrity_frame().to_csv(index=False).encode(), "i.csv", "integrity", lead)
    run_id = audit.run_audit(db, ds_id, lead)
    found = {f["kind"]: f for f in stats.findings(db, run_id)}
    assert found["empty_text"]["rows"] == [20]
    assert "row 20" in found["empty_text"]["message"]
    assert found["conflicting_duplicates"]["rows"] == [21, 22]
    assert found["conflicting_duplicates"]["first_row"] == 21 and found["conflicting_duplicates"]["n_rows"] == 2
    assert (
        "'pos'" in found["conflicting_duplicates"]["message"] and "'neg'" in found["conflicting_duplicates"]["message"]
    )
    by_idx = {r["idx"]: r for r in scores(db, run_id)}
    for i in (20, 21, 22):
        assert by_idx[i]["is_issue"] == 1
        assert by_idx[i]["rank"] <= 5
    assert "empty text" in by_idx[20]["reason"]
    assert "same text as row 22" in by_idx[21]["reason"]
    metrics = datasets.latest_run(db, ds_id)["metrics"]
    assert metrics["findings"] == {"empty_text": 1, "conflicting_duplicates": 2}


def test_unlabelled_and_undeclared_labels_are_suspects(db, lead):
    df = _integrity_frame().iloc[:20].copy()
    df.loc[20] = {"text": "lovely wonderful but no label", "label": None}
    df.loc[21] = {"text": "something else entirely", "label": "other"}
    ds_id = ingest.ingest_bytes(
        db, df.to_csv(index=False).encode(), "u.csv", "unlabelled", lead, label_set=["pos", "neg"]
    )
    assert datasets.get(db, ds_id).labels == ["pos", "neg"]
    run_id = audit.run_audit(db, ds_id, lead)
    got = {r["idx"]: r for r in scores(db, run_id)}
    assert got[20]["is_issue"] == 1 and got[20]["reason"] == "no label" and got[20]["predicted_label"] == "pos"
    assert got[21]["is_issue"] == 1 and "not in the label set" in got[21]["reason"]
    assert {got[20]["rank"], got[21]["rank"]} == {1, 2}
    kinds = {f["kind"]: f["rows"] for f in stats.findings(db, run_id)}
    assert kinds == {"null_label": [20], "unknown_label": [21]}


def test_user_probability_columns_path(db, lead):
    rows = []
    for i in range(20):
        rows.append({"text": f"t{i}", "label": "a", "prob_a": 0.95, "prob_b": 0.05})
        rows.append({"text": f"u{i}", "label": "b", "prob_a": 0.05, "prob_b": 0.95})
    rows[4]["prob_a"], rows[4]["prob_b"] = 0.01, 0.99  # labelled a, the user's model says b
    rows[7]["prob_a"], rows[7]["prob_b"] = 0.98, 0.02  # labelled b, the user's model says a
    df = pd.DataFrame(rows)
    ds_id = ingest.ingest_bytes(db, df.to_csv(index=False).encode(), "p.csv", "given-probs", lead)
    run_id = audit.run_audit(db, ds_id, lead)
    run = datasets.latest_run(db, ds_id)
    assert run["params"] == {"model": "given probabilities"}
    got = {r["idx"]: r for r in scores(db, run_id)}
    assert json.loads(got[4]["probs"]) == pytest.approx([0.01, 0.99], abs=1e-3)
    assert got[4]["predicted_label"] == "b" and got[7]["predicted_label"] == "a"
    flagged = {i for i, r in got.items() if r["is_issue"]}
    assert flagged == {4, 7}
    assert {got[4]["rank"], got[7]["rank"]} == {1, 2}
    assert got[4]["action"] == "relabel" and got[4]["suggested_label"] == "b"


def test_tabular_features_path(db, lead):
    rng = np.random.default_rng(0)
    n = 120
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    color = rng.choice(["red", "green", "blue"], size=n)
    label = np.where(x1 + 2.0 * (color == "red") > 0.5, "yes", "no")
    flipped = [0, 1, 2, 3, 4]
    label[flipped] = np.where(label[flipped] == "yes", "no", "yes")
    df = pd.DataFrame({"age": x1.round(3), "income": x2.round(3), "color": color, "label": label})
    ds_id = ingest.ingest_bytes(db, df.to_csv(index=False).encode(), "tab.csv", "tabular", lead)
    ds = datasets.get(db, ds_id)
    assert ds.mapping.features == ["age", "income", "color"] and ds.mapping.text == []
    assert db.execute("SELECT text FROM items WHERE dataset_id=? AND idx=0", [ds_id]).fetchone()[0].startswith("age=")
    # one OpenMP thread: on a busy machine HistGradientBoosting's thread pool is ~20x slower
    with threadpool_limits(1):
        run_id = audit.run_audit(db, ds_id, lead)
    params = datasets.latest_run(db, ds_id)["params"]
    assert params["model"].startswith("HistGradientBoostingClassifier")
    assert params["categorical"] == ["color"]
    assert params["features"] == ["age", "income", "color"]
    got = {r["idx"]: r for r in scores(db, run_id)}
    flagged = {i for i, r in got.items() if r["is_issue"]}
    assert len(flagged & set(flipped)) >= 4
    assert len(flagged) <= 20
    agreement = datasets.latest_run(db, ds_id)["metrics"]["model agreement with given labels"]
    assert agreement >= 0.75


def test_annotator_cannot_run_audits(db, annotator, demo_ds):
    before = counts(db)
    with pytest.raises(PermissionDenied):
        audit.run_audit(db, demo_ds.id, annotator)
    with pytest.raises(PermissionDenied):
        audit.run_integrity(db, demo_ds.id, annotator)
    assert counts(db) == before


def test_progress_called_per_step_and_fold(db, lead, demo_ds):
    calls: list[tuple[float, str]] = []
    audit.run_audit(db, demo_ds.id, lead, progress=lambda f, m: calls.append((f, m)), n_folds=5)
    fractions = [f for f, _ in calls]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert all(b >= a for a, b in zip(fractions, fractions[1:])), fractions
    assert len(set(fractions)) >= 8
    params = datasets.latest_run(db, demo_ds.id)["params"]
    trials = [m for _, m in calls if m.startswith("Fold 1: trying ")]
    assert len(trials) == len(params["candidates"])  # every candidate on the first fold
    finalists = [c["name"] for c in params["candidates"] if c["nll"] is not None]
    for name in finalists:  # each finalist finishes folds 2..5
        done = [f for f, m in calls if m.startswith(f"{name}: Fold ") and m.endswith("done")]
        assert [m for _, m in calls if m.startswith(f"{name}: Fold ") and m.endswith("done")] == [
            f"{name}: Fold {k} of 5 done" for k in range(2, 6)
        ]
        assert all(b > a for a, b in zip(done, done[1:]))
        assert all(0.0 < f < 1.0 for f in done)
    assert all(isinstance(m, str) and m for _, m in calls)


def test_failed_run_is_recorded_and_leaves_no_scores(db, lead, demo_ds):
    good = datasets.latest_run(db, demo_ds.id)["id"]
    n_scores = store.scalar(db, "SELECT COUNT(*) FROM scores")
    with pytest.raises(Exception):  # noqa: B017  (whatever sklearn raises: the point is what is left behind)
        audit.run_audit(db, demo_ds.id, lead, n_folds=1)  # cross-validation needs 2 folds
    failed = db.execute("SELECT id, status, error FROM runs ORDER BY id DESC LIMIT 1").fetchone()
    assert failed[1] == "failed" and failed[2]
    assert store.scalar(db, "SELECT COUNT(*) FROM scores WHERE run_id=?", [failed[0]]) == 0
    assert store.scalar(db, "SELECT COUNT(*) FROM scores") == n_scores
    assert datasets.latest_run(db, demo_ds.id)["id"] == good  # the failed run is not "latest"
