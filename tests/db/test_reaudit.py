"""Re-audit on the current labels, and two runs compared (review.audit.current_labels, review.rundiff).

One database built once per module: the audited demo (400 rows, 8% injected errors, demo.demo_truth),
then reviewers correct part of run 1's suspects (approved relabels to the true label, approved keeps,
relabels still pending, an unsure), then run 2. Each test copies it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from review import audit, auth, datasets, demo, rundiff, store, workflow
from review.errors import NotFound, ReviewError
from review.precision import wilson
from tests.builders import open_page, run
from tests.helpers import PASSWORD, ROOT, copy_db

N_FIXED, N_KEPT, N_PENDING = 12, 2, 3  # approved relabels, approved keeps, pending relabels (+1 unsure)


def _decide(db, ds, idx, who, decision, label=None) -> int:
    s = workflow.get_suspect(db, ds, idx)
    return workflow.decide(db, ds, idx, who, decision, s.version, new_label=label)


def _approve(db, ds, rid, idx, lead) -> None:
    workflow.verify(db, rid, lead, "approve", workflow.get_suspect(db, ds, idx).version)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """{'before': the file before run 2, 'after': after it, and what was decided}."""
    base = tmp_path_factory.mktemp("reaudit")
    db = store.connect(base / "after.db")
    admin = auth.create_user(db, "alice", "admin", PASSWORD, None)
    lead = auth.create_user(db, "lena", "lead", PASSWORD, admin)
    anna = auth.create_user(db, "anna", "annotator", PASSWORD, admin)
    ds = datasets.get(db, demo.load_demo(db, lead))
    truth = demo.demo_truth()
    run1 = datasets.latest_run(db, ds.id, "audit")["id"]
    flagged = store.rows(
        db,
        "SELECT s.idx, i.key FROM scores s JOIN items i ON i.dataset_id=? AND i.idx=s.idx"
        " WHERE s.run_id=? AND s.is_issue=1 ORDER BY s.rank",
        [ds.id, run1],
    )
    real = [(r["idx"], truth[r["key"]]) for r in flagged if r["key"] in truth]
    right = [r["idx"] for r in flagged if r["key"] not in truth]
    assert len(real) >= N_FIXED + N_PENDING + 1 and len(right) >= N_KEPT, (len(real), len(right))
    fixed = dict(real[:N_FIXED])
    for idx, label in fixed.items():
        _approve(db, ds, _decide(db, ds, idx, anna, "relabel", label), idx, lead)
    kept = right[:N_KEPT]
    for idx in kept:
        _approve(db, ds, _decide(db, ds, idx, anna, "keep"), idx, lead)
    pending = dict(real[N_FIXED : N_FIXED + N_PENDING])
    for idx, label in pending.items():
        _decide(db, ds, idx, anna, "relabel", label)
    unsure = real[N_FIXED + N_PENDING][0]
    _decide(db, ds, unsure, anna, "unsure")
    plan = rundiff.reaudit_plan(db, ds)
    db.conn.close()
    copy_db(base / "after.db", base / "before.db")
    db = store.connect(base / "after.db")
    run2 = audit.run_audit(db, ds.id, lead)
    db.conn.close()
    return {
        "before": base / "before.db",
        "after": base / "after.db",
        "run1": run1,
        "run2": run2,
        "fixed": fixed,
        "kept": kept,
        "pending": pending,
        "unsure": unsure,
        "plan": plan,
        "lead": lead,
    }


@pytest.fixture
def conn(built, tmp_path, monkeypatch):
    """A copy of the re-audited file (REVIEW_DB names it, for the pages)."""
    path = copy_db(built["after"], tmp_path / "review.db")
    monkeypatch.setenv("REVIEW_DB", str(path))
    database = store.connect(path)
    yield database
    database.conn.close()


def _ds(db):
    return datasets.get(db, demo.DEMO_NAME)


def test_the_plan_before_the_re_audit_counts_what_it_will_train_on(built):
    plan = built["plan"]
    assert plan.due and plan.last_run == built["run1"]
    assert plan.verified_since == N_FIXED + N_KEPT
    assert plan.corrections == N_FIXED  # an approved keep leaves the given label
    assert plan.left_out == N_PENDING + 1  # pending relabels and the unsure


def test_the_re_audit_trained_on_the_current_labels_and_says_so(built, conn):
    ds = _ds(conn)
    first = datasets.latest_run(conn, ds.id, "audit")
    assert first["id"] == built["run2"]
    p = first["params"]
    assert p["labels"] == "current" and p["previous_run"] == built["run1"]
    assert p["corrected_rows"] == N_FIXED and p["left_out_rows"] == N_PENDING + 1
    assert p["excluded from training"] == N_PENDING + 1  # the text model itself says it left them out
    assert rundiff.scored_labels(first) == built["fixed"]  # exactly the verified corrections, true labels
    # the first audit of the dataset: the given labels, nothing left out, no previous run
    one = rundiff._run(conn, ds, built["run1"])["params"]
    assert one["corrected_rows"] == 0 and one["left_out_rows"] == 0 and one["previous_run"] is None
    assert "excluded from training" not in one


def test_corrected_rows_are_mostly_no_longer_flagged(built, conn):
    fixed = built["fixed"]
    marks = ",".join("?" * len(fixed))
    flagged_before = store.scalar(
        conn, f"SELECT SUM(is_issue) FROM scores WHERE run_id=? AND idx IN ({marks})", [built["run1"], *fixed]
    )
    flagged_now = store.scalar(
        conn, f"SELECT SUM(is_issue) FROM scores WHERE run_id=? AND idx IN ({marks})", [built["run2"], *fixed]
    )
    assert flagged_before == N_FIXED
    assert flagged_now <= N_FIXED // 4, flagged_now  # a clear majority cleared (the demo: all of them)


def test_doubtful_rows_are_left_out_of_training_but_scored(built, conn):
    doubted = [*built["pending"], built["unsure"]]
    got = store.rows(
        conn,
        f"SELECT idx, quality, predicted_label, probs FROM scores WHERE run_id=? AND idx IN ({','.join('?' * len(doubted))})",
        [built["run2"], *doubted],
    )
    assert sorted(r["idx"] for r in got) == sorted(doubted)
    assert all(r["quality"] is not None and r["predicted_label"] and r["probs"] for r in got)
    # scored on their current (given) label, which the model doubts as it did: still flagged
    assert (
        store.scalar(
            conn,
            f"SELECT SUM(is_issue) FROM scores WHERE run_id=? AND idx IN ({','.join('?' * len(built['pending']))})",
            [built["run2"], *built["pending"]],
        )
        >= len(built["pending"]) - 1
    )


def test_both_runs_are_kept_whole(built, conn):
    ds = _ds(conn)
    audits = [r for r in datasets.runs(conn, ds.id) if r["kind"] == "audit"]
    assert [r["id"] for r in audits] == [built["run2"], built["run1"]]
    assert all(r["status"] == "done" for r in audits)
    for rid in (built["run1"], built["run2"]):
        assert store.scalar(conn, "SELECT COUNT(*) FROM scores WHERE run_id=?", [rid]) == ds.n_items


def _direct(conn, a, b, where):
    return store.scalar(
        conn,
        f"SELECT COUNT(*) FROM scores a JOIN scores b ON b.run_id=? AND b.idx=a.idx WHERE a.run_id=? AND {where}",
        [b, a],
    )


def test_compare_runs_counts_agree_with_direct_sql(built, conn):
    ds, a, b = _ds(conn), built["run1"], built["run2"]
    d = rundiff.compare_runs(conn, ds, a, b)
    assert (d.run_a, d.run_b, d.rows) == (a, b, ds.n_items)
    assert d.flagged_a == store.scalar(conn, "SELECT SUM(is_issue) FROM scores WHERE run_id=?", [a])
    assert d.flagged_b == store.scalar(conn, "SELECT SUM(is_issue) FROM scores WHERE run_id=?", [b])
    assert d.new == _direct(conn, a, b, "b.is_issue=1 AND a.is_issue=0")
    assert d.cleared == _direct(conn, a, b, "a.is_issue=1 AND b.is_issue=0")
    assert d.kept == _direct(conn, a, b, "a.is_issue=1 AND b.is_issue=1")
    assert d.predictions_changed == _direct(conn, a, b, "a.predicted_label != b.predicted_label")
    assert d.flagged_a - d.cleared + d.new == d.flagged_b
    assert d.cleared >= N_FIXED - N_FIXED // 4 and d.flagged_b < d.flagged_a
    assert d.labels_changed == N_FIXED  # the rows corrected between the runs
    assert (d.corrected_a, d.corrected_b, d.left_out_a, d.left_out_b) == (0, N_FIXED, 0, N_PENDING + 1)


def test_per_class_counts_use_the_label_each_run_scored_and_sum_up(built, conn):
    ds, a, b = _ds(conn), built["run1"], built["run2"]
    d = rundiff.compare_runs(conn, ds, a, b)
    assert sum(c.flagged_a for c in d.classes) == d.flagged_a
    assert sum(c.flagged_b for c in d.classes) == d.flagged_b
    assert sum(c.new for c in d.classes) == d.new
    assert sum(c.cleared for c in d.classes) == d.cleared
    assert all(min(c.flagged_a, c.flagged_b, c.new, c.cleared) >= 0 for c in d.classes)
    # run b's class is the corrected label: count it row by row
    fixed = built["fixed"]
    now: dict[str, int] = {}
    for r in store.rows(
        conn,
        "SELECT s.idx, i.given_label FROM scores s JOIN items i ON i.dataset_id=? AND i.idx=s.idx"
        " WHERE s.run_id=? AND s.is_issue=1",
        [ds.id, b],
    ):
        lab = fixed.get(r["idx"], r["given_label"])
        now[lab] = now.get(lab, 0) + 1
    assert {c.label: c.flagged_b for c in d.classes if c.flagged_b} == now
    before = dict(
        conn.execute(
            "SELECT i.given_label, COUNT(*) FROM scores s JOIN items i ON i.dataset_id=? AND i.idx=s.idx"
            " WHERE s.run_id=? AND s.is_issue=1 GROUP BY 1",
            [ds.id, a],
        ).fetchall()
    )
    assert {c.label: c.flagged_a for c in d.classes if c.flagged_a} == before


def test_diff_rows_pages_cover_each_group_exactly_once(built, conn):
    ds, a, b = _ds(conn), built["run1"], built["run2"]
    d = rundiff.compare_runs(conn, ds, a, b)
    want = {
        "new": "b.is_issue=1 AND a.is_issue=0",
        "cleared": "a.is_issue=1 AND b.is_issue=0",
        "kept": "a.is_issue=1 AND b.is_issue=1",
        "predicted": "a.predicted_label != b.predicted_label",
    }
    for group in rundiff.GROUPS:
        seen, after = [], -1
        while True:
            page = rundiff.diff_rows(conn, ds, a, b, group, after=after, limit=4)
            assert len(page) <= 4
            if not page:
                break
            seen += [r.idx for r in page]
            after = page[-1].idx
        assert seen == sorted(set(seen)), group  # in row order, none twice
        assert len(seen) == d.count(group), group
        if group == "relabelled":
            assert set(seen) == set(built["fixed"])
        else:
            direct = conn.execute(
                f"SELECT a.idx FROM scores a JOIN scores b ON b.run_id=? AND b.idx=a.idx WHERE a.run_id=? AND {want[group]}",
                [b, a],
            ).fetchall()
            assert set(seen) == {r[0] for r in direct}, group
    row = rundiff.diff_rows(conn, ds, a, b, "relabelled", limit=1)[0]
    assert row.label_b == built["fixed"][row.idx] and row.label_a != row.label_b and row.state == "approved"


def test_precision_of_each_run_from_the_decisions(built, conn):
    ds, a, b = _ds(conn), built["run1"], built["run2"]
    d = rundiff.compare_runs(conn, ds, a, b)
    # run 1 flagged every decided row: the relabels (approved and pending) say its label was wrong, keeps right
    pa = d.precision_a
    assert (pa.decided, pa.wrong) == (N_FIXED + N_KEPT + N_PENDING, N_FIXED + N_PENDING)
    assert (pa.precision, pa.low, pa.high) == wilson(pa.wrong, pa.decided)
    # run 2 scored the corrected labels: an approved correction it still flags is a wrong flag, a pending relabel a right one
    flagged_b = {r[0] for r in conn.execute("SELECT idx FROM scores WHERE run_id=? AND is_issue=1", [b]).fetchall()}
    decided = (set(built["fixed"]) | set(built["kept"]) | set(built["pending"])) & flagged_b
    right = set(built["pending"]) & flagged_b
    pb = d.precision_b
    assert (pb.decided, pb.wrong) == (len(decided), len(right))
    with pytest.raises(ReviewError, match="integrity"):
        rundiff.compare_runs(conn, ds, _integrity_run(conn, ds), b)


def _integrity_run(conn, ds) -> int:
    return store.scalar(
        conn, "SELECT id FROM runs WHERE dataset_id=? AND kind='integrity'", [ds.id]
    ) or audit.run_integrity(conn, ds.id, auth.User("lena", "lead"))


def test_the_run_keeps_its_comparison_and_refusals_name_the_run(built, conn):
    ds, a, b = _ds(conn), built["run1"], built["run2"]
    assert rundiff.since_previous(conn, ds) == rundiff.compare_runs(conn, ds, a, b)
    lines = rundiff.format_run_diff(rundiff.compare_runs(conn, ds, a, b))
    d = rundiff.compare_runs(conn, ds, a, b)
    assert lines[0].startswith(f"run {a} -> run {b}: flagged {d.flagged_a:,} -> {d.flagged_b:,}; {d.new:,} new")
    assert any(f"{N_FIXED:,} corrected labels" in line for line in lines)
    assert not rundiff.reaudit_plan(conn, ds).due  # nothing verified since run 2
    with pytest.raises(NotFound, match="has no run 999"):
        rundiff.compare_runs(conn, ds, a, 999)
    with pytest.raises(ReviewError, match="Unknown group"):
        rundiff.diff_rows(conn, ds, a, b, "moved")


def test_cli_audit_prints_the_change_against_the_previous_run(built, tmp_path):
    path = copy_db(built["before"], tmp_path / "cli.db")
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    env.pop("REVIEW_DB", None)
    res = subprocess.run(
        [sys.executable, "-m", "review.cli", "audit", demo.DEMO_NAME, "--db", str(path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    db = store.connect(path)
    try:
        ds = _ds(db)
        d = rundiff.since_previous(db, ds)
    finally:
        db.conn.close()
    assert f"trained on the current labels: {N_FIXED:,} corrected, {N_PENDING + 1:,} rows" in res.stdout
    assert (
        f"since run {built['run1']}: flagged {d.flagged_a:,} -> {d.flagged_b:,}, {d.new:,} new, {d.cleared:,} cleared"
        in res.stdout
    )


def test_audit_page_offers_the_re_audit_then_shows_the_changes(built, tmp_path, monkeypatch):
    path = copy_db(built["before"], tmp_path / "review.db")
    monkeypatch.setenv("REVIEW_DB", str(path))
    at = open_page("pages/2_Audit.py", built["lead"], demo.DEMO_NAME)
    assert not at.expander or not any(e.label.startswith("Changes since") for e in at.expander)
    caption = " ".join(c.value for c in at.caption)
    assert f"{N_FIXED + N_KEPT} decisions verified since run {built['run1']}" in caption
    assert f"trains on {N_FIXED} corrected labels and leaves out {N_PENDING + 1} rows" in caption
    at.button(key="reaudit").click()
    run(at)
    db = store.connect(path)
    try:
        ds = _ds(db)
        d = rundiff.since_previous(db, ds)
        cleared = [r.idx for r in rundiff.diff_rows(db, ds, d.run_a, d.run_b, "cleared")]
    finally:
        db.conn.close()
    assert d.run_a == built["run1"] and d.run_b > built["run1"]
    assert [e.label for e in at.expander if e.label.startswith("Changes")] == [f"Changes since run {d.run_a}"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics[f"Flagged in run {d.run_a}"] == f"{d.flagged_a:,}" and metrics["Flagged now"] == f"{d.flagged_b:,}"
    assert metrics["New suspects"] == f"{d.new:,}" and metrics["Cleared"] == f"{d.cleared:,}"
    assert metrics["Labels changed"] == f"{N_FIXED}"
    changes = next(e for e in at.expander if e.label.startswith("Changes"))
    assert len(changes.dataframe) == 1  # the per-class table; no rows read until a group is opened
    classes = changes.dataframe[0].value
    assert classes["flagged before"].sum() == d.flagged_a and classes["cleared"].sum() == d.cleared
    at.selectbox(key="changes_group").set_value("cleared")
    run(at)
    shown = next(e for e in at.expander if e.label.startswith("Changes")).dataframe[1].value
    assert len(shown) == min(50, d.cleared) and shown["flagged before"].all() and not shown["flagged now"].any()
    assert set(shown["id"]) == _keys(path, cleared)
    assert not any(b.key == "reaudit" for b in at.button)  # nothing verified since the new run


def _keys(path, rows) -> set:
    db = store.connect(path)
    try:
        ds = _ds(db)
        return {
            r["key"]
            for r in store.rows(
                db,
                f"SELECT key FROM items WHERE dataset_id=? AND idx IN ({','.join('?' * len(rows))})",
                [ds.id, *rows],
            )
        }
    finally:
        db.conn.close()
