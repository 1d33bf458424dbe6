"""The Verify page's filtered queue and bulk approve: workflow.pending with filters (reviewer,
class pair given -> proposed, decision), pending_groups (the filter options, one grouped query)
and verify_many (one transaction, one audit row per decision, four eyes, all or nothing on a
stale list). Real SQLite, the real audited demo; the page through streamlit's AppTest.

The rule for a stale list: verify_many approves the decisions as the lead saw them (review id,
row version). If any of them is no longer pending or its row changed, nothing is approved
(StaleViewError naming the rows); the lead looks at the fresh list and approves again.
"""

from __future__ import annotations

import json
import time

import pytest
from streamlit.testing.v1 import AppTest

from review import auth, datasets, store, trail, workflow
from review.errors import NotFound, PermissionDenied, ReviewError, StaleViewError
from tests.helpers import PASSWORD, ROOT

APP = ROOT / "app.py"
VERIFY = "pages/4_Verify.py"


@pytest.fixture
def ben(db, admin):
    return auth.create_user(db, "ben", "annotator", PASSWORD, admin)


@pytest.fixture
def leo(db, admin):
    return auth.create_user(db, "leo", "lead", PASSWORD, admin)


def make(db, ds, user, decision: str, pick: int = 0) -> dict:
    """``user`` decides on their next suspect; relabel to the ``pick``-th other label. The pending row."""
    s = workflow.claim_next(db, ds, user)
    new = [lab for lab in ds.labels if lab != s.current_label][pick] if decision == "relabel" else None
    rid = workflow.decide(db, ds, s.idx, user, decision, s.version, new_label=new)
    proposed = new if decision == "relabel" else s.current_label if decision == "keep" else None
    return {
        "id": rid,
        "idx": s.idx,
        "key": s.key,
        "reviewer": user.name,
        "decision": decision,
        "given": s.given_label,
        "proposed": proposed,
    }


@pytest.fixture
def queue(db, demo_ds, annotator, ben, lead):
    """Nine pending decisions: anna 3 relabels (two pairs), 2 keeps, 1 unsure; ben 1 relabel, 1 keep;
    lena (lead) 1 relabel."""
    out = [
        make(db, demo_ds, annotator, "relabel", 0),
        make(db, demo_ds, annotator, "relabel", 1),
        make(db, demo_ds, annotator, "relabel", 0),
        make(db, demo_ds, annotator, "keep"),
        make(db, demo_ds, annotator, "keep"),
        make(db, demo_ds, annotator, "unsure"),
        make(db, demo_ds, ben, "relabel", 2),
        make(db, demo_ds, ben, "keep"),
        make(db, demo_ds, lead, "relabel", 0),
    ]
    assert workflow.awaiting_verification(db, demo_ds) == 9
    return out


def ids(rows) -> list[int]:
    return [r["id"] for r in rows]


def seen(db, ds, lead, **filters) -> list[tuple[int, int]]:
    return [(r["id"], r["version"]) for r in workflow.pending(db, ds, lead, limit=100, **filters)]


def verify_rows(db) -> list[dict]:
    return [
        json.loads(p) | {"actor": a, "idx": i}
        for a, i, p in db.execute("SELECT actor, idx, payload FROM audit_log WHERE action='verify' ORDER BY id")
    ]


def status(db, rid: int) -> str:
    return store.scalar(db, "SELECT status FROM reviews WHERE id=?", [rid])


# ----------------------------------------------------------------------------- filters


def test_filters_give_exactly_those_decisions(db, demo_ds, lead, queue):
    everything = workflow.pending(db, demo_ds, lead, limit=100)
    assert ids(everything) == [q["id"] for q in queue]
    by_id = {r["id"]: r for r in everything}
    assert all(by_id[q["id"]]["proposed_label"] == q["proposed"] for q in queue)
    for name in ("anna", "ben", "lena", "nobody"):
        assert ids(workflow.pending(db, demo_ds, lead, limit=100, reviewer=name)) == [
            q["id"] for q in queue if q["reviewer"] == name
        ]
    for d in workflow.DECISIONS:
        assert ids(workflow.pending(db, demo_ds, lead, limit=100, decision=d)) == [
            q["id"] for q in queue if q["decision"] == d
        ]
    pairs = {(q["given"], q["proposed"]) for q in queue}
    assert any(p[1] is None for p in pairs)  # the unsure one: given -> no proposal
    for pair in pairs:
        assert ids(workflow.pending(db, demo_ds, lead, limit=100, pair=pair)) == [
            q["id"] for q in queue if (q["given"], q["proposed"]) == pair
        ]
    # together, and page by page (keyset): the same rows, none twice
    q0 = queue[0]
    want = [
        q["id"]
        for q in queue
        if q["reviewer"] == "anna"
        and q["decision"] == "relabel"
        and (q["given"], q["proposed"]) == (q0["given"], q0["proposed"])
    ]
    assert (
        ids(
            workflow.pending(
                db, demo_ds, lead, limit=100, reviewer="anna", decision="relabel", pair=(q0["given"], q0["proposed"])
            )
        )
        == want
    )
    anna = [q["id"] for q in queue if q["reviewer"] == "anna"]
    first = workflow.pending(db, demo_ds, lead, limit=4, reviewer="anna")
    rest = workflow.pending(db, demo_ds, lead, limit=4, after_id=first[-1]["id"], reviewer="anna")
    assert ids(first) + ids(rest) == anna and len(first) == 4
    with pytest.raises(ReviewError, match="Unknown decision 'maybe'"):
        workflow.pending(db, demo_ds, lead, decision="maybe")


def test_filter_options_come_from_one_grouped_query_and_count_right(db, demo_ds, lead, queue):
    sql: list[str] = []
    db.conn.set_trace_callback(sql.append)
    try:
        groups = workflow.pending_groups(db, demo_ds, lead)
    finally:
        db.conn.set_trace_callback(None)
    # one grouped query over the decisions (sqlite_utils wraps it in a savepoint); the other SELECT
    # is the check that the lead is still active (auth.require_active), one row by primary key
    [query] = [s for s in sql if s.startswith("SELECT") and "FROM users" not in s]
    assert "GROUP BY" in query and "LIMIT" not in query
    assert sum(g["n"] for g in groups) == 9
    assert {g["reviewer"] for g in groups} == {"anna", "ben", "lena"}
    for reviewer in (None, "anna", "ben"):
        for decision in (None, *workflow.DECISIONS):
            for pair in (None, *{(q["given"], q["proposed"]) for q in queue}):
                got = workflow.pending_count(groups, reviewer=reviewer, pair=pair, decision=decision)
                assert got == len(
                    workflow.pending(db, demo_ds, lead, limit=100, reviewer=reviewer, pair=pair, decision=decision)
                ), (reviewer, pair, decision)


def test_the_page_read_is_a_limited_keyset_query(db, demo_ds, lead, queue):
    sql: list[str] = []
    db.conn.set_trace_callback(sql.append)
    try:
        rows = workflow.pending(db, demo_ds, lead, limit=2, after_id=queue[0]["id"], reviewer="anna")
    finally:
        db.conn.set_trace_callback(None)
    [page_sql] = [s for s in sql if "FROM reviews" in s]
    assert "LIMIT 2" in page_sql and "r.id>" in page_sql and "r.reviewer=" in page_sql
    assert ids(rows) == [queue[1]["id"], queue[2]["id"]]


# ----------------------------------------------------------------------------- bulk approve


def test_bulk_approve_one_transaction_one_trail_row_per_decision(db, demo_ds, lead, queue):
    listed = seen(db, demo_ds, lead, reviewer="anna")
    before = len(verify_rows(db))
    sql: list[str] = []
    db.conn.set_trace_callback(sql.append)
    try:
        res = workflow.verify_many(db, demo_ds, lead, listed)
    finally:
        db.conn.set_trace_callback(None)
    assert [s for s in sql if s.startswith(("BEGIN", "COMMIT", "ROLLBACK"))] == ["BEGIN IMMEDIATE", "COMMIT"]
    anna = [q for q in queue if q["reviewer"] == "anna"]
    ok = [q for q in anna if q["decision"] != "unsure"]
    assert res == {"approved": [q["id"] for q in ok], "own": [], "unsure": [anna[5]["id"]], "self_approved": []}
    rows = verify_rows(db)[before:]
    assert len(rows) == len(ok) == 5  # one row per approved decision, no summary row
    assert [(r["review"], r["idx"], r["action"], r["actor"], r["reviewer"], r["bulk"]) for r in rows] == [
        (q["id"], q["idx"], "approve", "lena", "anna", 5) for q in ok
    ]
    for q in ok:
        assert db.execute("SELECT status, verified_by, final_label FROM reviews WHERE id=?", [q["id"]]).fetchone() == (
            "approved",
            "lena",
            q["proposed"],
        )
        st = db.execute(
            "SELECT state, current_label FROM states WHERE dataset_id=? AND idx=?", [demo_ds.id, q["idx"]]
        ).fetchone()
        assert st == ("approved", q["proposed"] if q["proposed"] != q["given"] else None)
    # the rest waits: anna's unsure, ben's, lena's own
    assert {q["id"] for q in queue if status(db, q["id"]) == "pending"} == {
        anna[5]["id"],
        *(q["id"] for q in queue if q["reviewer"] != "anna"),
    }
    ok_trail, _, msg = trail.verify_trail(db)
    assert ok_trail, msg


def test_bulk_approve_skips_own_decisions_unless_self_approval_is_allowed(db, demo_ds, lead, leo, queue):
    mine = make(db, demo_ds, lead, "keep")
    own = [q["id"] for q in queue if q["reviewer"] == "lena"] + [mine["id"]]
    listed = seen(db, demo_ds, lead, reviewer="lena")
    res = workflow.verify_many(db, demo_ds, lead, listed)
    assert res == {"approved": [], "own": own, "unsure": [], "self_approved": []}
    assert [status(db, rid) for rid in own] == ["pending", "pending"] and not verify_rows(db)
    # with the whole queue listed: her own are left out, the others approved
    res = workflow.verify_many(db, demo_ds, lead, seen(db, demo_ds, lead, decision="relabel"))
    assert res["own"] == own[:1] and queue[-1]["id"] not in res["approved"] and len(res["approved"]) == 4
    # another lead approves hers: no self-approval in the trail
    res = workflow.verify_many(db, demo_ds, leo, seen(db, demo_ds, leo, reviewer="lena"))
    assert res["approved"] == own and res["own"] == [] and res["self_approved"] == []
    assert all("self_approved" not in r for r in verify_rows(db))
    # a one-person team allows self-approval: her own are approved and recorded as such
    datasets.set_setting(db, demo_ds, "allow_self_approval", True, lead)
    again = [make(db, demo_ds, lead, "relabel", 1)["id"], make(db, demo_ds, lead, "keep")["id"]]
    res = workflow.verify_many(db, demo_ds, lead, seen(db, demo_ds, lead, reviewer="lena"))
    assert res["approved"] == res["self_approved"] == again and res["own"] == []
    tail = verify_rows(db)[-2:]
    assert [(r["review"], r["self_approved"], r["bulk"]) for r in tail] == [(again[0], True, 2), (again[1], True, 2)]


def test_a_stale_list_is_refused_whole(db, demo_ds, annotator, lead, leo, queue):
    listed = seen(db, demo_ds, lead, reviewer="anna")
    # meanwhile leo approves one of them and anna revises another
    first, second = queue[0], queue[3]
    workflow.verify(db, first["id"], leo, "approve", dict(listed)[first["id"]])
    s = workflow.get_suspect(db, demo_ds, second["idx"])
    workflow.decide(
        db,
        demo_ds,
        second["idx"],
        annotator,
        "relabel",
        s.version,
        new_label=next(lab for lab in demo_ds.labels if lab != s.current_label),
    )
    dump = "\n".join(db.conn.iterdump())
    with pytest.raises(
        StaleViewError,
        match=rf"2 of the 6 listed decisions changed since the page was drawn \(row "
        rf"{first['key']}, {second['key']}\): nothing was approved",
    ):
        workflow.verify_many(db, demo_ds, lead, listed)
    assert "\n".join(db.conn.iterdump()) == dump  # not one of the other four approved
    # a version the row no longer has is refused the same way
    fresh = seen(db, demo_ds, lead, reviewer="anna")
    wrong = [(rid, v + (1 if i == len(fresh) - 1 else 0)) for i, (rid, v) in enumerate(fresh)]
    with pytest.raises(StaleViewError, match="1 of the 5 listed decisions changed"):  # anna's revision is listed now
        workflow.verify_many(db, demo_ds, lead, wrong)
    assert "\n".join(db.conn.iterdump()) == dump
    # the fresh list goes through (but anna's unsure one)
    assert len(workflow.verify_many(db, demo_ds, lead, fresh)["approved"]) == 4


def test_bulk_approve_refuses_annotators_empty_and_foreign_lists(db, demo_ds, annotator, lead, queue):
    listed = seen(db, demo_ds, lead)
    with pytest.raises(PermissionDenied):
        workflow.verify_many(db, demo_ds, annotator, listed)
    with pytest.raises(ReviewError, match="No decision to approve"):
        workflow.verify_many(db, demo_ds, lead, [])
    with pytest.raises(NotFound, match="has no decision 99999: nothing was approved"):
        workflow.verify_many(db, demo_ds, lead, listed[:2] + [(99999, 1)])
    with pytest.raises(ReviewError, match="at most 500"):
        workflow.verify_many(db, demo_ds, lead, [(i, 1) for i in range(1, 502)])
    assert workflow.awaiting_verification(db, demo_ds) == 9 and not verify_rows(db)


# ----------------------------------------------------------------------------- the page (AppTest)


@pytest.fixture
def app_db(db_path, monkeypatch):
    monkeypatch.setenv("REVIEW_DB", str(db_path))


def open_page(who: auth.User) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.session_state["user"] = (who.name, who.role, time.time())
    at.switch_page(VERIFY)
    return run(at)


def run(at: AppTest) -> AppTest:
    at = at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(elements) -> list[str]:
    return [e.value for e in elements]


def test_page_filters_by_reviewer_and_approves_the_list_in_one_click(db, app_db, demo_ds, lead, queue):
    at = open_page(lead)
    sel = at.selectbox(key=f"verify_reviewer_{demo_ds.id}")
    assert sel.options == ["all reviewers", "anna", "ben", "lena (you)"]
    at = run(sel.set_value("ben"))
    assert list(at.dataframe[0].value["row"]) == [q["key"] for q in queue if q["reviewer"] == "ben"]
    assert at.selectbox(key=f"verify_decision_{demo_ds.id}").options == ["all decisions", "keep", "relabel", "unsure"]
    assert "2 of the 9 decisions awaiting verification match these filters." in texts(at.caption)
    at = run(at.button(key="verify_bulk").click())
    assert "Approved 2 decisions in one go, one audit-trail row each." in texts(at.success)
    assert {q["id"] for q in queue if status(db, q["id"]) == "approved"} == {
        q["id"] for q in queue if q["reviewer"] == "ben"
    }
    # anna's list: her unsure one is left out, and the page says so before and after
    at = run(at.selectbox(key=f"verify_reviewer_{demo_ds.id}").set_value("anna"))
    assert at.button(key="verify_bulk").label == "Approve all 5 listed"
    assert any("Left out: 1 unsure (no label to approve" in c for c in texts(at.caption))
    at = run(at.button(key="verify_bulk").click())
    assert any(s.startswith("Approved 5 decisions") and "Not approved: 1 unsure" in s for s in texts(at.success))
    # what is left is lena's own (four eyes) and anna's unsure: nothing to approve in bulk
    at = run(at.selectbox(key=f"verify_reviewer_{demo_ds.id}").set_value("*"))  # all reviewers
    assert "verify_bulk" not in [b.key for b in at.button]
    assert any(
        "Nothing to approve in bulk here. Left out: 1 of yours (four eyes: another lead verifies it) and 1 unsure" in c
        for c in texts(at.caption)
    )


def test_page_shows_a_reject_error_inside_the_card_under_the_reason(db, app_db, demo_ds, lead, queue):
    at = open_page(lead)
    first = queue[0]
    assert {b.key: b.label for b in at.button if b.key and b.key.endswith(str(first["id"]))} == {
        f"approve_{first['id']}": "Approve",
        f"reject_{first['id']}": "Reject",
        f"override_{first['id']}": "Override",
    }
    at = run(at.button(key=f"reject_{first['id']}").click())
    msg = "Say why you reject the decision: the note goes back to the annotator."
    assert texts(at.error) == [msg]
    # drawn in the card's reason column, right after the reason box (not at the top of the page)
    [col] = [
        c for c in at.columns if any(getattr(w, "key", None) == f"reason_{first['id']}" for w in c.children.values())
    ]
    kids = list(col.children.values())
    assert [type(k).__name__ for k in kids][-2:] == ["TextInput", "Error"] and kids[-1].value == msg
    assert status(db, first["id"]) == "pending"
    # N shows the next card; approving it by its button moves on again
    at = run(at.button(key="verify_next_card").click())
    second = queue[1]
    assert f"approve_{second['id']}" in [b.key for b in at.button] and f"approve_{first['id']}" not in [
        b.key for b in at.button
    ]
    at = run(at.button(key=f"approve_{second['id']}").click())
    assert f"Row {second['key']}: approved." in texts(at.success)
    assert f"approve_{queue[2]['id']}" in [b.key for b in at.button]
