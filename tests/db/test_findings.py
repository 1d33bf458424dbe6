"""review.findings after a real run_audit on the demo dataset plus rows added for each check: an exact copy
in another split (leakage), a near copy, a conflicting copy, out-of-domain texts; the reads of summary;
the approximate neighbour path on synthetic vectors; imbalance and non-IID on labels made for them."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from review import audit, auth, demo, store
from review.errors import NotFound
from review.findings import imbalance, neighbours, non_iid, summary
from review.text import ingest
from tests.helpers import PASSWORD

OOD = [
    "The sonnet's volta turns on the image of a heron standing in reeds while the tide recedes over "
    "mudflats; Petrarch and Wyatt both favoured the octave's slow unfolding before the sestet answers.",
    "Titrate the sulfuric acid solution against sodium hydroxide with phenolphthalein indicator until "
    "the faint pink endpoint persists for thirty seconds, then record the burette volume in millilitres.",
]


def _other(label: str) -> str:
    return next(c for c in ("account", "billing", "shipping", "technical") if c != label)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """(db, dataset id, run id, frame): the demo's 400 rows + 400 exact copy of 0 in split "test", 401 near
    copy of 5, 402 copy of 10 with another label, 403-404 out of domain; audited once for the module."""
    db = store.connect(tmp_path_factory.mktemp("findings") / "f.db")
    admin = auth.create_user(db, "alice", "admin", PASSWORD, None)
    lead = auth.create_user(db, "lena", "lead", PASSWORD, admin)
    df = pd.read_csv(io.BytesIO(demo.demo_csv_bytes()))
    df["Split"] = "train"
    words = df.loc[5, "text"].split(" ")
    extra = [
        {"id": "X400", "text": df.loc[0, "text"], "label": df.loc[0, "label"], "channel": "chat", "Split": "test"},
        {"id": "X401", "text": " ".join(words[:3] + words[4:]), "label": df.loc[5, "label"], "channel": "chat"},
        {"id": "X402", "text": df.loc[10, "text"], "label": _other(df.loc[10, "label"]), "channel": "chat"},
    ] + [{"id": f"X40{3 + i}", "text": t, "label": "technical", "channel": "chat"} for i, t in enumerate(OOD)]
    df = pd.concat([df, pd.DataFrame(extra)], ignore_index=True)
    df["Split"] = df["Split"].fillna("train")
    buf = io.BytesIO()
    df.to_csv(buf, index=False)
    mapping = ingest.Mapping(text=["text"], label="label", id="id")
    ds_id = ingest.ingest_bytes(db, buf.getvalue(), "demo_plus.csv", "demo_plus", lead, mapping=mapping)
    run_id = audit.run_audit(db, ds_id, lead)
    yield db, ds_id, run_id, df
    db.conn.close()


def _set_of(sets, row):
    return next((s for s in sets if row in s.rows), None)


def test_run_records_each_check(run):
    db, _, run_id, df = run
    metrics = json.loads(store.scalar(db, "SELECT metrics FROM runs WHERE id=?", [run_id]))
    checks = metrics["checks"]
    assert checks["method"] == "exact" and checks["near_duplicate_sets"] >= 3 and checks["conflicting_sets"] >= 1
    assert checks["leakage_sets"] == 1
    kinds = [k.kind for k in summary.summary(db, run_id)]
    assert kinds == ["outliers", "near_duplicates", "ambiguous", "class_imbalance", "non_iid"]
    by = {k.kind: k for k in summary.summary(db, run_id)}
    assert by["outliers"].count == checks["outliers"] and by["near_duplicates"].count == checks["near_duplicates"]
    for k in by.values():
        assert 0.0 <= k.score <= 1.0 and k.method and k.message
    assert "Split" in by["near_duplicates"].message and by["near_duplicates"].detail["leakage_sets"] == 1
    # the balanced demo: no minority class, the rarest named with its share
    assert by["class_imbalance"].detail["minority"] == [] and "class account is" in by["class_imbalance"].message
    # what the pages and the manifest report is what the run's metrics counted, for every kind
    assert {k: by[k].found for k in by} == {k: checks[k] for k in by}
    assert by["class_imbalance"].figure == "no warning" and not by["class_imbalance"].warns
    assert by["non_iid"].warns == bool(checks["non_iid"]) and by["non_iid"].figure in ("warning", "no warning")
    found = store.rows(db, "SELECT n_rows, rows FROM findings WHERE run_id=? AND kind='outliers'", [run_id])
    assert found[0]["n_rows"] == checks["outliers"] == len(json.loads(found[0]["rows"]))


def test_near_duplicate_sets(run):
    db, ds_id, run_id, df = run
    sets = summary.dup_sets(db, run_id, limit=100)
    exact, near, conflict = _set_of(sets, 400), _set_of(sets, 401), _set_of(sets, 402)
    assert exact and 0 in exact.rows and exact.leakage and exact.n_labels == 1
    assert near and 5 in near.rows and not near.leakage
    assert conflict and 10 in conflict.rows and conflict.n_labels == 2 and conflict.conflicting
    # conflicting sets first, each group by id; keyset paging gives the same order
    flags = [s.conflicting for s in sets]
    assert flags == sorted(flags, reverse=True)
    paged, after = [], 0
    while page := summary.dup_sets(db, run_id, after_id=after, limit=2):
        paged += [s.id for s in page]
        after = page[-1].id
    assert paged == [s.id for s in sets]
    one = summary.dup_set(db, conflict.id)
    labels = {m.idx: m.current_label for m in one.members}
    assert labels[402] == _other(df.loc[10, "label"]) and labels[10] == df.loc[10, "label"]
    assert all(m.state == "open" and m.text for m in one.members)
    rows = {r.idx: r for r in summary.rows(db, run_id, "near_duplicate", limit=1000)}
    assert rows[400].set_id == exact.id and rows[400].score == pytest.approx(0.0, abs=1e-3)
    assert rows[400].detail["similarity"] == pytest.approx(1.0, abs=1e-3)
    assert 0.85 <= rows[401].detail["similarity"] < 1.0
    with pytest.raises(NotFound, match="near-duplicate set 999999"):
        summary.dup_set(db, 999999)


def test_row_neighbours_for_every_row(run):
    db, _, run_id, df = run
    assert store.scalar(db, "SELECT count(*) FROM row_neighbours WHERE run_id=?", [run_id]) == len(df)
    nbs = {
        r["idx"]: json.loads(r["neighbours"])
        for r in store.rows(
            db, "SELECT idx, neighbours FROM row_neighbours WHERE run_id=? AND idx IN (0, 400, 401)", [run_id]
        )
    }
    assert nbs[400][0][0] == 0 and nbs[400][0][1] == pytest.approx(1.0, abs=1e-3)
    assert nbs[0][0][0] == 400 and nbs[401][0][0] == 5
    assert len(nbs[401]) == 10 and all(a[1] >= b[1] for a, b in zip(nbs[401], nbs[401][1:]))


def test_outlier_and_ambiguous_rows(run):
    db, _, run_id, _ = run
    out = summary.rows(db, run_id, "outliers", limit=1000)
    found = json.loads(store.scalar(db, "SELECT rows FROM findings WHERE run_id=? AND kind='outliers'", [run_id]))
    assert sorted(r.idx for r in out) == sorted(found)
    for r in out:
        assert r.detail["distance"] > 0 and 0 <= r.score < 1
    # the out-of-domain texts are far from the tickets: the two largest average distances of all rows
    dist = {r.idx: r.detail["distance"] for r in out}
    nbs = {
        r["idx"]: json.loads(r["neighbours"])
        for r in store.rows(
            db, "SELECT idx, neighbours FROM row_neighbours WHERE run_id=? AND idx IN (403, 404, 0)", [run_id]
        )
    }
    assert all(
        dist.get(i, 1 - np.mean([s for _, s in nbs[i]])) > 1 - np.mean([s for _, s in nbs[0]]) for i in (403, 404)
    )
    amb = summary.rows(db, run_id, "ambiguous", limit=1000)
    assert amb, "the demo has tickets between two classes"
    for r in amb:
        (a, b), (pa, pb) = r.detail["classes"], r.detail["probs"]
        assert a != b and pa >= pb >= 0.3 and pa - pb <= 0.15 + 1e-6 and r.score == pytest.approx(pa - pb, abs=2e-4)
    with pytest.raises(NotFound, match="Unknown kind"):
        summary.rows(db, run_id, "typo")


def test_a_run_before_the_checks_has_no_summary(db, lead):
    assert summary.summary(db, 12345) == []
    with pytest.raises(NotFound, match="no audit run 12345"):
        summary.rows(db, 12345, "outlier")


def test_approximate_neighbours_recall():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(300, 50)).astype(np.float32)
    X = centers[rng.integers(0, 300, 30_000)] + rng.normal(size=(30_000, 50)).astype(np.float32) * 0.9
    X /= np.linalg.norm(X, axis=1)[:, None]
    approx = neighbours.knn(X, exact_up_to=10_000)
    assert approx.method.startswith("approximate (k-means IVF")
    sample = rng.choice(len(X), 300, replace=False)
    hits = 0
    for i in sample:
        s = X @ X[i]
        s[i] = -np.inf
        hits += len(set(np.argpartition(-s, 10)[:10].tolist()) & set(approx.idx[i].tolist()))
    assert hits / (10 * len(sample)) >= 0.9
    assert not (approx.idx == np.arange(len(X))[:, None]).any()  # never its own neighbour


def test_class_imbalance_names_the_minority():
    labels = np.array([0] * 895 + [1] * 100 + [2] * 5)
    imb = imbalance.find(labels, ["big", "mid", "tiny"])
    assert imb.minority == ["tiny"] and imb.rarest == "tiny" and imb.score == pytest.approx(0.005)
    assert imbalance.find(np.array([0, 1, 2] * 100), ["a", "b", "c"]).minority == []


def test_non_iid_labels_and_features():
    rng = np.random.default_rng(1)
    n = 2000
    X = rng.normal(size=(n, 20)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1)[:, None]
    shuffled = non_iid.find(neighbours.exact(X), rng.integers(0, 3, n))
    assert shuffled.labels_p > 0.05
    ps = []  # the features' p-value (a KDE over 25 permutations, as cleanlab) is noisy: most random sets pass
    for seed in range(2, 7):
        r = np.random.default_rng(seed)
        Y = r.normal(size=(n, 20)).astype(np.float32)
        Y /= np.linalg.norm(Y, axis=1)[:, None]
        ps.append(non_iid.find(neighbours.exact(Y), r.integers(0, 3, n)).features_p)
    assert sum(p < 0.05 for p in ps) <= 1
    drift = np.sort(rng.integers(0, 3, n))  # labels in blocks by row order
    Xd = np.repeat(rng.normal(size=(20, 20)), n // 20, axis=0).astype(np.float32) + 0.1 * X  # features too
    Xd /= np.linalg.norm(Xd, axis=1)[:, None]
    ordered = non_iid.find(neighbours.exact(Xd), drift)
    assert ordered.flagged and ordered.labels_p < 1e-6 and ordered.features_p < 0.05
    assert ordered.labels_drift and ordered.score == pytest.approx(
        min(1.0, 2 * min(ordered.features_p, ordered.labels_p))
    )


def test_non_iid_holds_each_of_its_two_tests_to_half_the_significance(monkeypatch):
    """Two tests at 0.05 each would warn on up to 10 % of random orders: each is held to 0.025 (Bonferroni)."""
    nb = neighbours.Neighbours(np.zeros((40, 1), dtype=np.int32), np.zeros((40, 1), dtype=np.float32), "exact")
    labels = np.array([0, 1] * 20)

    def with_p(features_p, labels_p):
        monkeypatch.setattr(non_iid, "_features_p", lambda nb, seed: (features_p, 0.3))
        monkeypatch.setattr(non_iid, "_labels_p", lambda labels: (labels_p, (0, 9)))
        return non_iid.find(nb, labels)

    r = with_p(0.03, 0.6)  # below 0.05, not below 0.025: no warning
    assert not r.flagged and not r.features_drift and r.score == pytest.approx(0.06) and r.cutoff == 0.025
    r = with_p(0.02, 0.6)
    assert r.flagged and r.features_drift and not r.labels_drift and r.score == pytest.approx(0.04)
    r = with_p(0.9, 0.001)
    assert r.flagged and r.labels_drift and not r.features_drift and r.score == pytest.approx(0.002)
    assert with_p(0.7, 0.8).score == 1.0  # an adjusted p-value is at most 1


def test_too_few_rows_skip_the_checks(db, lead):
    from review import findings

    ds = ingest.ingest_bytes(
        db, ("text,label\n" + "".join(f"row {i},{'ab'[i % 2]}\n" for i in range(20))).encode(), "s.csv", "small", lead
    )
    run_id = audit.run_audit(db, ds, lead, n_folds=2)
    assert "checks" not in json.loads(store.scalar(db, "SELECT metrics FROM runs WHERE id=?", [run_id]))
    assert summary.summary(db, run_id) == [] and findings.MIN_ROWS > 20
    assert store.scalar(db, "SELECT count(*) FROM row_neighbours WHERE run_id=?", [run_id]) == 0
    assert (
        summary.skipped(db, run_id)
        == "20 rows: the checks beyond label errors need at least 50 (nearest rows of a handful mean nothing)."
    )


def test_more_rows_than_the_budget_allows_skip_the_checks_and_say_why(db, db_path, lead, monkeypatch):
    """Above findings.MAX_ROWS (1,000,000, the largest size measured within the budget) the audit runs without the checks and records why; the
    Audit page's tab says it instead of asking for a new run."""
    from review import findings
    from tests.builders import open_page, run

    monkeypatch.setattr(findings, "MAX_ROWS", 100)
    monkeypatch.setenv("REVIEW_DB", str(db_path))  # the page opens this file
    ds_id = demo.load_demo(db, lead)
    run_id = store.scalar(db, "SELECT MAX(id) FROM runs WHERE dataset_id=? AND kind='audit'", [ds_id])
    assert summary.summary(db, run_id) == []
    why = summary.skipped(db, run_id)
    assert why.startswith("400 rows: the checks beyond label errors run up to 100 rows, the largest size measured")
    at = open_page("pages/2_Audit.py", lead, dataset=demo.DEMO_NAME)
    run(at)
    assert any("run up to 100 rows, the largest size measured" in i.value for i in at.info)


def test_dataset_level_checks_report_a_warning_not_a_row_count():
    def kind(k, score, detail, count=0):
        return summary.KindSummary(k, summary.TITLES[k], count, score, "", "exact", detail)

    drift = kind("non_iid", 0.01, {"threshold": 0.05})
    assert drift.warns and drift.found == 1 and drift.figure == "warning"
    calm = kind("non_iid", 0.2, {"threshold": 0.05})
    assert not calm.warns and calm.found == 0 and calm.figure == "no warning"
    rare = kind("class_imbalance", 0.01, {"minority": ["a", "b"]})
    assert rare.warns and rare.found == 2 and rare.figure == "warning"
    rows = kind("outliers", 0.9, {}, count=1234)
    assert rows.warns and rows.found == 1234 and rows.figure == "1,234"
