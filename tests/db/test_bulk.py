"""Bulk fix by pattern (review.bulk): start draws a sample of the set's open rows, reviewers decide it,
its precision (Wilson interval), apply relabels the rest in one transaction (pending, or approved by the
action), undo puts it all back except the rows changed since. Roles, the trail, the Verify queue, the
export, rows claimed by someone else; the CLI verb in a subprocess; the page through AppTest. Real SQLite,
the real audited demo dataset (400 support tickets)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from review import auth, bulk, export, store, trail, workflow
from review.browse import RowFilter
from review.errors import PermissionDenied, ReviewError, StaleViewError
from tests.builders import html_of, open_page, run
from tests.helpers import PASSWORD, ROOT

PAGE = "pages/11_Bulk_fix.py"


@pytest.fixture
def leo(db, admin):
    return auth.create_user(db, "leo", "lead", PASSWORD, admin)


def biggest_pair(db, ds) -> tuple[str, str, int]:
    return bulk.confusion_pairs(db, ds)[0]


def set_of(db, ds, f: RowFilter) -> list[int]:
    from review import browse

    return list(browse.matching(db, ds, f))


def state_of(db, ds, idx: int):
    return store.fetch_one(
        db, "SELECT state, version, current_label, claimed_by FROM states WHERE dataset_id=? AND idx=?", [ds.id, idx]
    )


def decide_all(db, action, who, wrong=lambda i, r: True) -> None:
    s = bulk.sample_status(db, action.id)
    for i, r in enumerate(s.rows):
        bulk.decide_sample(db, action.id, r.idx, who, wrong(i, r), r.version)


def trail_rows(db, action: str, bulk_id: int) -> list[dict]:
    return [
        {"idx": r["idx"], "actor": r["actor"], **json.loads(r["payload"])}
        for r in store.rows(db, "SELECT idx, actor, payload FROM audit_log WHERE action=? ORDER BY id", [action])
        if json.loads(r["payload"]).get("bulk") == bulk_id
    ]


# ----------------------------------------------------------------------------- start and the sample


def test_start_draws_an_open_sample_and_records_it(db, demo_ds, lead):
    g, p, n = biggest_pair(db, demo_ds)
    f = bulk.pair_filter(g, p)
    rows = set_of(db, demo_ds, f)
    assert len(rows) == n  # the picker's count is the set's
    a = bulk.start(db, demo_ds, lead, f, p, sample_size=3, seed=7)
    assert a.status == "sampling" and a.n_matched == n and a.label == p and len(a.sample) == 3
    assert set(a.sample) <= set(rows)
    again = bulk.start(db, demo_ds, lead, f, p, sample_size=3, seed=7)  # seeded: the same draw
    assert again.sample == a.sample and again.id != a.id
    start_rows = trail_rows(db, "bulk_start", a.id)
    assert len(start_rows) == 1 and start_rows[0]["sample"] == a.sample and start_rows[0]["seed"] == 7
    assert start_rows[0]["matched"] == n and start_rows[0]["label"] == p
    s = bulk.sample_status(db, a.id)
    assert [r.idx for r in s.rows] == a.sample and s.decided == 0 and s.precision is None and not s.complete
    assert all(r.given_label == g and r.predicted_label == p and r.state == "open" for r in s.rows)


def test_sample_skips_rows_already_decided_or_labelled(db, demo_ds, lead, annotator):
    g, p, n = biggest_pair(db, demo_ds)
    f = bulk.pair_filter(g, p)
    rows = set_of(db, demo_ds, f)
    workflow.decide(db, demo_ds, rows[0], annotator, "keep", 0)  # decided: not open
    a = bulk.start(db, demo_ds, lead, f, p, sample_size=bulk.SAMPLE_MAX)
    assert rows[0] not in a.sample and sorted(a.sample) == rows[1:]
    bulk.cancel(db, a.id, lead)
    with pytest.raises(ReviewError, match="none is open and labelled other than"):
        bulk.start(db, demo_ds, lead, f, g)  # every row is labelled g already (or decided)


def test_precision_counts_relabelled_to_the_label_among_decided(db, demo_ds, lead, annotator):
    g, p, n = biggest_pair(db, demo_ds)
    a = bulk.start(db, demo_ds, lead, bulk.pair_filter(g, p), p, sample_size=4, seed=1)
    s = bulk.sample_status(db, a.id)
    other = next(lab for lab in demo_ds.labels if lab not in (g, p))
    bulk.decide_sample(db, a.id, s.rows[0].idx, annotator, True, s.rows[0].version)  # relabel to p
    bulk.decide_sample(db, a.id, s.rows[1].idx, annotator, False, s.rows[1].version)  # keep
    workflow.decide(db, demo_ds, s.rows[2].idx, annotator, "relabel", s.rows[2].version, new_label=other)
    s = bulk.sample_status(db, a.id)
    assert (s.decided, s.relabelled, s.open) == (3, 1, 1) and not s.complete
    assert [r.decision for r in s.rows[:3]] == ["relabel", "keep", "relabel"]
    assert [r.decided_label for r in s.rows[:3]] == [p, g, other]
    assert s.rows[0].reviewer == annotator.name and s.rows[3].decision is None
    lo, hi = s.low, s.high
    assert s.precision == pytest.approx(1 / 3) and 0.0 < lo < 1 / 3 < hi < 1.0
    with pytest.raises(ReviewError, match="1 of the 4 sample rows of bulk action"):
        bulk.apply(db, a.id, lead, approve=False)  # refused while a sample row is open
    with pytest.raises(ReviewError, match="not in the sample"):
        outside = next(i for i in set_of(db, demo_ds, a.filter) if i not in a.sample)
        bulk.decide_sample(db, a.id, outside, annotator, True, 0)


def test_annotator_decides_the_sample_but_cannot_start_apply_or_undo(db, demo_ds, lead, annotator):
    g, p, _ = biggest_pair(db, demo_ds)
    f = bulk.pair_filter(g, p)
    with pytest.raises(PermissionDenied, match="start a bulk fix"):
        bulk.start(db, demo_ds, annotator, f, p)
    a = bulk.start(db, demo_ds, lead, f, p, sample_size=2, seed=3)
    decide_all(db, a, annotator)
    with pytest.raises(PermissionDenied, match="apply a bulk fix"):
        bulk.apply(db, a.id, annotator, approve=False)
    with pytest.raises(PermissionDenied, match="cancel a bulk fix"):
        bulk.cancel(db, a.id, annotator)
    bulk.apply(db, a.id, lead, approve=False)
    with pytest.raises(PermissionDenied, match="undo a bulk fix"):
        bulk.undo(db, a.id, annotator)
    assert bulk.get(db, a.id).status == "applied"


# ----------------------------------------------------------------------------- apply


def test_apply_pending_leaves_what_decide_would_and_verify_approves(db, demo_ds, lead, annotator, leo):
    g, p, n = biggest_pair(db, demo_ds)
    f = bulk.pair_filter(g, p)
    rows = set_of(db, demo_ds, f)
    a = bulk.start(db, demo_ds, lead, f, p, sample_size=2, seed=5)
    decide_all(db, a, annotator)
    before = {i: state_of(db, demo_ds, i) for i in rows}
    res = bulk.apply(db, a.id, lead, approve=False)
    rest = [i for i in rows if i not in a.sample]
    assert res.applied == len(rest) == n - 2 and res.n_skipped == 0 and not res.approved and res.matched == n
    revs = store.rows(db, "SELECT * FROM reviews WHERE bulk_id=? ORDER BY idx", [a.id])
    assert [r["idx"] for r in revs] == rest
    for r in revs:
        prev_version = before[r["idx"]]["version"] if before[r["idx"]] else 0
        assert (r["decision"], r["new_label"], r["reviewer"], r["status"]) == ("relabel", p, lead.name, "pending")
        assert r["version"] == prev_version + 1 and r["verified_by"] is None and r["final_label"] is None
        st = state_of(db, demo_ds, r["idx"])
        assert (st["state"], st["version"], st["current_label"]) == ("relabelled", prev_version + 1, None)
    # the Verify queue lists them; the lead who applied them may not verify them (four eyes), another lead may
    listed = workflow.pending(db, demo_ds, leo, limit=100, pair=(g, p))
    assert {r["id"] for r in revs} <= {r["id"] for r in listed}
    first = next(r for r in listed if r["id"] == revs[0]["id"])
    with pytest.raises(ReviewError, match="four eyes"):
        workflow.verify(db, first["id"], lead, "approve", first["version"])
    workflow.verify(db, first["id"], leo, "approve", first["version"])
    st = state_of(db, demo_ds, first["idx"])
    assert st["state"] == "approved" and st["current_label"] == p
    out = workflow.verify_many(db, demo_ds, leo, [(r["id"], r["version"]) for r in listed if r["id"] != first["id"]])
    assert set(out["approved"]) >= {r["id"] for r in revs[1:]}
    # the trail: one decision row per changed row, with the bulk id; one bulk_apply with the counts
    decisions = trail_rows(db, "decision", a.id)
    assert sorted(d["idx"] for d in decisions) == rest
    assert all(d["actor"] == lead.name and d["new_label"] == p and d["decision"] == "relabel" for d in decisions)
    assert {d["review"] for d in decisions} == {r["id"] for r in revs}
    assert trail_rows(db, "verify", a.id) == []  # the verifications came from leo, not the bulk action
    summary = trail_rows(db, "bulk_apply", a.id)
    assert len(summary) == 1 and summary[0]["applied"] == len(rest) and summary[0]["approve"] is False
    assert summary[0]["skipped"] == {"not_open": 0, "claimed": 0, "already": 0}
    assert trail.verify_trail(db)[0]
    assert bulk.get(db, a.id).status == "applied" and bulk.get(db, a.id).n_applied == len(rest)


def test_apply_approved_and_the_export_shows_the_new_labels(db, demo_ds, lead, annotator):
    g, p, n = biggest_pair(db, demo_ds)
    f = bulk.pair_filter(g, p)
    rows = set_of(db, demo_ds, f)
    a = bulk.start(db, demo_ds, lead, f, p, sample_size=2, seed=2)
    decide_all(db, a, annotator)
    res = bulk.apply(db, a.id, lead, approve=True)
    rest = [i for i in rows if i not in a.sample]
    assert res.approved and res.applied == len(rest)
    for r in store.rows(db, "SELECT * FROM reviews WHERE bulk_id=?", [a.id]):
        assert (r["status"], r["verified_by"], r["final_label"]) == ("approved", lead.name, p)
        st = state_of(db, demo_ds, r["idx"])
        assert (st["state"], st["current_label"], st["version"]) == ("approved", p, r["version"] + 1)
    verifies = trail_rows(db, "verify", a.id)
    assert sorted(v["idx"] for v in verifies) == rest
    assert all(v["approved_by_bulk"] and v["action"] == "approve" and v["final_label"] == p for v in verifies)
    assert len(trail_rows(db, "decision", a.id)) == len(rest)
    cols = export.cleaned_columns(demo_ds)
    by_row = {int(r[0][1:]) - 1: dict(zip(cols, r)) for r in export.cleaned_rows(db, demo_ds)}  # keys T0001..
    key = store.scalar(db, "SELECT key FROM items WHERE dataset_id=? AND idx=?", [demo_ds.id, rest[0]])
    assert int(key[1:]) - 1 == rest[0]
    for i in rest:
        assert by_row[i]["cleaned_label"] == p and by_row[i]["status"] == "approved"
        assert by_row[i]["verified_by"] == lead.name and by_row[i]["self_approved"] == "yes"
    for i in a.sample:  # decided one by one, pending: not changed by the action
        assert by_row[i]["cleaned_label"] == g
    assert trail.verify_trail(db)[0]


def test_rows_claimed_by_someone_else_are_skipped(db, demo_ds, lead, annotator):
    g, p, n = biggest_pair(db, demo_ds)
    f = bulk.pair_filter(g, p)
    a = bulk.start(db, demo_ds, lead, f, p, sample_size=1, seed=4)
    decide_all(db, a, lead)
    rest = [i for i in set_of(db, demo_ds, f) if i not in a.sample]
    target = rest[0]  # the Review queue hands anna this row (every other row skipped): she holds it
    held = workflow.claim_next(db, demo_ds, annotator, exclude=[i for i in range(demo_ds.n_items) if i != target])
    assert held is not None and held.idx == target
    res = bulk.apply(db, a.id, lead, approve=False)
    assert res.skipped["claimed"] == 1 and res.applied == len(rest) - 1
    st = state_of(db, demo_ds, held.idx)
    assert st["state"] == "open" and st["claimed_by"] == annotator.name
    assert store.scalar(db, "SELECT COUNT(*) FROM reviews WHERE bulk_id=? AND idx=?", [a.id, held.idx]) == 0
    assert trail_rows(db, "bulk_apply", a.id)[0]["skipped"]["claimed"] == 1


def test_apply_redraws_the_set_and_skips_rows_decided_since(db, demo_ds, lead, annotator):
    g, p, n = biggest_pair(db, demo_ds)
    f = bulk.pair_filter(g, p)
    a = bulk.start(db, demo_ds, lead, f, p, sample_size=1, seed=9)
    decide_all(db, a, annotator)
    rest = [i for i in set_of(db, demo_ds, f) if i not in a.sample]
    workflow.decide(db, demo_ds, rest[0], annotator, "keep", 0)
    res = bulk.apply(db, a.id, lead, approve=False)
    assert res.skipped["not_open"] == 1 and res.applied == len(rest) - 1
    with pytest.raises(StaleViewError, match="already applied"):
        bulk.apply(db, a.id, lead, approve=False)


# ----------------------------------------------------------------------------- undo


def test_undo_puts_rows_back_and_keeps_the_ones_changed_since(db, demo_ds, lead, annotator, leo):
    g, p, n = biggest_pair(db, demo_ds)
    f = bulk.pair_filter(g, p)
    rows = set_of(db, demo_ds, f)
    a = bulk.start(db, demo_ds, lead, f, p, sample_size=1, seed=11)
    decide_all(db, a, annotator)
    rest = [i for i in rows if i not in a.sample]
    assert len(rest) >= 3
    before = {i: state_of(db, demo_ds, i) for i in rest}
    bulk.apply(db, a.id, lead, approve=False)
    revs = {r["idx"]: r for r in store.rows(db, "SELECT id, idx, version FROM reviews WHERE bulk_id=?", [a.id])}
    verified, revised = rest[0], rest[1]
    workflow.verify(db, revs[verified]["id"], leo, "approve", revs[verified]["version"])  # another lead verified
    other = next(lab for lab in demo_ds.labels if lab not in (g, p))
    workflow.decide(db, demo_ds, revised, lead, "relabel", revs[revised]["version"], new_label=other)  # revised
    res = bulk.undo(db, a.id, lead)
    assert res.undone == len(rest) - 2 and sorted(res.kept) == sorted([verified, revised])
    assert "2 rows changed since it was applied and were kept" in bulk.undo_message(res)
    for i in rest[2:]:
        st = state_of(db, demo_ds, i)
        v0 = before[i]["version"] if before[i] else 0
        assert (st["state"], st["current_label"]) == ("open", None) and st["version"] == v0 + 2  # bumped, not reused
        assert store.scalar(db, "SELECT status FROM reviews WHERE id=?", [revs[i]["id"]]) == "undone"
    assert state_of(db, demo_ds, verified)["state"] == "approved"
    assert state_of(db, demo_ds, verified)["current_label"] == p
    assert store.scalar(db, "SELECT status FROM reviews WHERE id=?", [revs[verified]["id"]]) == "approved"
    assert state_of(db, demo_ds, revised)["state"] == "relabelled"
    for i in a.sample:  # decided one by one: untouched
        assert state_of(db, demo_ds, i)["state"] == "kept" or state_of(db, demo_ds, i)["state"] == "relabelled"
    undone = trail_rows(db, "decision_undone", a.id)
    assert sorted(u["idx"] for u in undone) == sorted(rest[2:]) and all(u["actor"] == lead.name for u in undone)
    summary = trail_rows(db, "bulk_undo", a.id)
    assert len(summary) == 1 and summary[0]["undone"] == len(rest) - 2 and summary[0]["kept"] == 2
    assert sorted(summary[0]["kept_rows"]) == sorted([verified, revised])
    assert bulk.get(db, a.id).status == "undone" and bulk.get(db, a.id).undone_by == lead.name
    assert trail.verify_trail(db)[0]
    # the undone rows are open again: the Review queue and a new decision take them
    workflow.decide(db, demo_ds, rest[2], annotator, "keep", state_of(db, demo_ds, rest[2])["version"])
    with pytest.raises(StaleViewError, match="already undone"):
        bulk.undo(db, a.id, lead)


def test_undo_approved_action_restores_the_labels_and_the_export(db, demo_ds, lead, annotator):
    g, p, _ = biggest_pair(db, demo_ds)
    f = bulk.pair_filter(g, p)
    a = bulk.start(db, demo_ds, lead, f, p, sample_size=1, seed=12)
    decide_all(db, a, annotator)
    res = bulk.apply(db, a.id, lead, approve=True)
    u = bulk.undo(db, a.id, lead)
    assert u.undone == res.applied and u.kept == []
    rest = [i for i in set_of(db, demo_ds, f) if i not in a.sample]
    cols = export.cleaned_columns(demo_ds)
    cleaned = {int(r[0][1:]) - 1: dict(zip(cols, r)) for r in export.cleaned_rows(db, demo_ds)}
    assert all(cleaned[i]["cleaned_label"] == g and cleaned[i]["status"] == "unreviewed" for i in rest)


def test_undo_refused_when_every_row_changed_and_cancel(db, demo_ds, lead, annotator, leo):
    g, p, _ = biggest_pair(db, demo_ds)
    f = bulk.pair_filter(g, p)
    a = bulk.start(db, demo_ds, lead, f, p, sample_size=1, seed=13)
    with pytest.raises(ReviewError, match="not applied: nothing to undo"):
        bulk.undo(db, a.id, lead)
    decide_all(db, a, annotator)
    bulk.apply(db, a.id, lead, approve=False)
    listed = store.rows(
        db,
        "SELECT r.id, st.version FROM reviews r JOIN states st ON st.dataset_id=r.dataset_id"
        " AND st.idx=r.idx WHERE r.bulk_id=?",
        [a.id],
    )
    workflow.verify_many(db, demo_ds, leo, [(r["id"], r["version"]) for r in listed])
    n_trail = store.scalar(db, "SELECT COUNT(*) FROM audit_log")
    with pytest.raises(ReviewError, match="changed since it was applied"):
        bulk.undo(db, a.id, lead)
    assert store.scalar(db, "SELECT COUNT(*) FROM audit_log") == n_trail and bulk.get(db, a.id).status == "applied"
    g2, p2, _ = bulk.confusion_pairs(db, demo_ds)[1]  # another pair: every row of the first one is verified
    b = bulk.start(db, demo_ds, lead, bulk.pair_filter(g2, p2), p2, sample_size=1)
    bulk.cancel(db, b.id, lead)
    assert bulk.get(db, b.id).status == "cancelled" and len(trail_rows(db, "bulk_cancel", b.id)) == 1
    with pytest.raises(StaleViewError):
        bulk.cancel(db, b.id, lead)
    listed = bulk.actions(db, demo_ds)
    assert [x.id for x in listed] == [b.id, a.id] and listed[1].n_pending == 0 and listed[1].status == "applied"


def test_a_rows_filter_and_a_ner_or_unknown_label_refused(db, demo_ds, lead, annotator):
    f = RowFilter(given=(demo_ds.labels[0],), flagged=True)
    with pytest.raises(ReviewError, match="is not a label of"):
        bulk.start(db, demo_ds, lead, f, "no such label")
    a = bulk.start(db, demo_ds, lead, f, demo_ds.labels[1], sample_size=2, seed=0)
    assert a.filter == f and a.n_matched == len(set_of(db, demo_ds, f))
    total, eligible = bulk.eligible_count(db, demo_ds, f, demo_ds.labels[1], lead)
    assert total == a.n_matched and eligible == total
    assert bulk.remaining(db, a.id, lead) == total - 2


# ----------------------------------------------------------------------------- the CLI


def cli(db_path, *args, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "review.cli", *args, "--db", str(db_path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        input=stdin,
        timeout=120,
    )


def test_cli_start_show_decide_apply_list_undo(db, db_path, demo_ds, lead, annotator):
    g, p, n = biggest_pair(db, demo_ds)
    name = demo_ds.name
    r = cli(db_path, "bulk", name, "--user", annotator.name, "--given", g, "--predicted", p)
    assert r.returncode == 2 and "only a lead or above can start a bulk fix" in r.stderr
    r = cli(db_path, "bulk", name, "--user", lead.name, "--given", g, "--predicted", p, "--sample", "2", "--seed", "1")
    assert r.returncode == 0, r.stderr
    assert "started bulk action 1: 2 sample rows" in r.stdout and f"{n:,} rows in the set" in r.stdout
    sample = [int(line.split("\t")[0]) for line in r.stdout.splitlines() if line[:1].isdigit() and "\t" in line]
    assert sample == bulk.get(db, 1).sample
    r = cli(db_path, "bulk", name, "--user", lead.name, "--apply")
    assert r.returncode == 2 and "2 of the 2 sample rows of bulk action 1 are not decided yet" in r.stderr
    r = cli(
        db_path,
        "bulk",
        name,
        "--user",
        annotator.name,
        "--decide",
        f"{sample[0]}=wrong",
        "--decide",
        f"{sample[1]}=right",
    )
    assert r.returncode == 0, r.stderr
    assert "2 of 2 rows decided, 1 relabelled" in r.stdout and "precision 50%" in r.stdout
    r = cli(db_path, "bulk", name, "--user", lead.name, "--apply", "--approve")
    assert r.returncode == 0, r.stderr
    assert f"relabelled {n - 2:,} rows to {p} (approved by this bulk action)" in r.stdout
    r = cli(db_path, "bulk", name, "--list")
    assert r.returncode == 0 and r.stdout.splitlines()[1].startswith("1\tapplied\t")
    r = cli(db_path, "bulk", name, "--user", lead.name, "--undo", "1")
    assert r.returncode == 0 and f"{n - 2:,} rows put back" in r.stdout
    r = cli(db_path, "bulk", name, "--user", lead.name, "--undo", "1")
    assert r.returncode == 2 and "already undone" in r.stderr
    r = cli(db_path, "bulk", name, "--user", lead.name, "--apply")
    assert r.returncode == 2 and "No bulk action" in r.stderr
    assert trail.verify_trail(db)[0]


# ----------------------------------------------------------------------------- the page (AppTest)


def test_page_draws_decides_applies_and_undoes(db, db_path, demo_ds, lead, monkeypatch):
    monkeypatch.setenv("REVIEW_DB", str(db_path))
    g, p, n = biggest_pair(db, demo_ds)
    at = open_page(PAGE, lead, demo_ds.name)
    assert at.selectbox(key=f"bulk_pair_{demo_ds.id}").value[:2] == (g, p)
    at.number_input(key=f"bulk_size_{demo_ds.id}").set_value(2)
    run(at)
    at.button(key="bulk_draw").click()
    run(at)
    a = bulk.open_action(db, demo_ds)
    assert a is not None and len(a.sample) == 2
    assert any("drew 2 sample rows" in s.value for s in at.success)
    for idx in a.sample:
        at.button(key=f"bulk_wrong_{a.id}_{idx}").click()
        run(at)
    assert "Precision **100%**" in "\n".join(m.value for m in at.markdown)
    apply_button = at.button(key=f"bulk_apply_{a.id}")
    assert apply_button.label == f"Apply to the other {n - 2:,} rows" and not apply_button.disabled
    apply_button.click()
    run(at)
    assert any(f"relabelled {n - 2:,} rows" in s.value for s in at.success)
    assert bulk.get(db, a.id).status == "applied"
    at.button(key=f"bulk_undo_{a.id}").click()
    run(at)
    assert bulk.get(db, a.id).status == "undone"
    assert f"{n - 2:,} rows put back" in "\n".join(s.value for s in at.success) + html_of(at)


def test_page_annotator_decides_a_sample_row_and_cannot_apply(db, db_path, demo_ds, lead, annotator, monkeypatch):
    monkeypatch.setenv("REVIEW_DB", str(db_path))
    g, p, n = biggest_pair(db, demo_ds)
    a = bulk.start(db, demo_ds, lead, bulk.pair_filter(g, p), p, sample_size=2, seed=3)
    at = open_page(PAGE, annotator, demo_ds.name)
    keys = {b.key for b in at.button}
    assert "bulk_draw" not in keys and f"bulk_apply_{a.id}" not in keys and f"bulk_cancel_{a.id}" not in keys
    at.button(key=f"bulk_right_{a.id}_{a.sample[0]}").click()
    run(at)
    s = bulk.sample_status(db, a.id)
    assert (s.rows[0].decision, s.rows[0].reviewer, s.decided, s.relabelled) == ("keep", annotator.name, 1, 0)
    assert "Precision **0%**" in "\n".join(m.value for m in at.markdown)
    assert "A lead applies the correction once the sample is decided." in "\n".join(c.value for c in at.caption)


def test_page_takes_the_rows_page_filter(db, db_path, demo_ds, lead, monkeypatch):
    monkeypatch.setenv("REVIEW_DB", str(db_path))
    f = RowFilter(given=(demo_ds.labels[0],), flagged=True)
    at = open_page(PAGE, lead, demo_ds.name)
    at.session_state["rows_filter"] = f.to_json()  # as the Rows page keeps it
    at.session_state["rows_filter_dataset"] = demo_ds.id
    run(at)
    assert at.radio(key=f"bulk_source_{demo_ds.id}").value == "The Rows page's filter"
    n = len(set_of(db, demo_ds, f))
    assert any(c.value.startswith(f"{n:,} rows in the set; 0 of them open") for c in at.caption)  # labelled so
    at.selectbox(key=f"bulk_label_{demo_ds.id}_None").set_value(demo_ds.labels[1])
    at.number_input(key=f"bulk_size_{demo_ds.id}").set_value(3)
    run(at)
    assert any(c.value.startswith(f"{n:,} rows in the set; {n:,} of them open") for c in at.caption)
    at.button(key="bulk_draw").click()
    run(at)
    a = bulk.open_action(db, demo_ds)
    assert a.filter == f and a.label == demo_ds.labels[1] and len(a.sample) == 3 and a.n_matched == n


def test_verify_page_lists_bulk_decisions(db, db_path, demo_ds, lead, annotator, leo, monkeypatch):
    monkeypatch.setenv("REVIEW_DB", str(db_path))
    g, p, n = biggest_pair(db, demo_ds)
    a = bulk.start(db, demo_ds, lead, bulk.pair_filter(g, p), p, sample_size=1, seed=3)
    decide_all(db, a, annotator)
    bulk.apply(db, a.id, lead, approve=False)
    at = open_page("pages/4_Verify.py", leo, demo_ds.name)
    shown = "\n".join(m.value for m in at.markdown) + html_of(at) + "\n".join(c.value for c in at.caption)
    assert f"{n:,} decisions awaiting verification" in shown  # n - 1 bulk decisions + the sample row's
    at.button(key="verify_bulk").click()  # "Approve all N listed": the bulk decisions with the sample row's
    run(at)
    assert store.scalar(db, "SELECT COUNT(*) FROM reviews WHERE bulk_id=? AND status='approved'", [a.id]) == n - 1
    assert store.scalar(db, "SELECT COUNT(*) FROM reviews WHERE bulk_id=? AND verified_by=?", [a.id, leo.name]) == n - 1
