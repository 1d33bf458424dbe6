"""workflow: claims, decisions, stale views, verification, progress, concurrent deciders."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from review import auth, datasets, store, trail, workflow
from review.errors import PermissionDenied, ReviewError, StaleViewError
from tests.helpers import PASSWORD, other_label


@pytest.fixture
def ben(db, admin):
    return auth.create_user(db, "ben", "annotator", PASSWORD, admin)


def flagged_by_rank(db, ds) -> list[int]:
    run = datasets.latest_run(db, ds.id)
    return [r[0] for r in db.execute("SELECT idx FROM scores WHERE run_id=? AND is_issue=1 ORDER BY rank", [run["id"]])]


def state(db, ds, idx) -> dict:
    rows = list(db.query("SELECT * FROM states WHERE dataset_id=? AND idx=?", [ds.id, idx]))
    return rows[0] if rows else {}


def test_claim_next_two_annotators_get_different_suspects(db, demo_ds, annotator, ben):
    order = flagged_by_rank(db, demo_ds)
    a = workflow.claim_next(db, demo_ds, annotator)
    b = workflow.claim_next(db, demo_ds, ben)
    assert a.idx == order[0] and b.idx == order[1]  # most suspect first
    assert a.rank == 1 and b.rank == 2
    assert state(db, demo_ds, a.idx)["claimed_by"] == annotator.name
    assert state(db, demo_ds, b.idx)["claimed_by"] == ben.name
    # the suspect carries what the review page shows
    assert a.text and a.given_label in demo_ds.labels and a.predicted_label in demo_ds.labels
    assert a.state == "open" and a.version == 0 and len(a.probs) == len(demo_ds.labels)
    assert a.key.startswith("T") and a.meta == {"channel": a.meta["channel"]}


def test_claim_next_rerun_returns_the_same_suspect(db, demo_ds, annotator, ben):
    a = workflow.claim_next(db, demo_ds, annotator)
    b = workflow.claim_next(db, demo_ds, ben)
    for _ in range(3):
        assert workflow.claim_next(db, demo_ds, annotator).idx == a.idx
        assert workflow.claim_next(db, demo_ds, ben).idx == b.idx


def test_skip_with_exclude_and_release(db, demo_ds, annotator, ben):
    order = flagged_by_rank(db, demo_ds)
    a = workflow.claim_next(db, demo_ds, annotator)
    nxt = workflow.claim_next(db, demo_ds, annotator, exclude=[a.idx])
    assert nxt.idx == order[1]
    assert state(db, demo_ds, a.idx)["claimed_by"] is None  # the skipped row is free again
    assert workflow.claim_next(db, demo_ds, ben).idx == a.idx  # and someone else can take it
    third = workflow.claim_next(db, demo_ds, annotator, exclude=[a.idx, nxt.idx])
    assert third.idx == order[2]
    workflow.release(db, demo_ds, third.idx, annotator)
    assert state(db, demo_ds, third.idx)["claimed_by"] is None


def test_decide_keep_relabel_unsure(db, demo_ds, annotator):
    s1 = workflow.claim_next(db, demo_ds, annotator)
    r1 = workflow.decide(db, demo_ds, s1.idx, annotator, "keep", s1.version, note="fine as is")
    s2 = workflow.claim_next(db, demo_ds, annotator)
    new = other_label(demo_ds, s2.given_label)
    r2 = workflow.decide(db, demo_ds, s2.idx, annotator, "relabel", s2.version, new_label=new)
    s3 = workflow.claim_next(db, demo_ds, annotator)
    r3 = workflow.decide(db, demo_ds, s3.idx, annotator, "unsure", s3.version, new_label=new, note="ambiguous")
    assert len({s1.idx, s2.idx, s3.idx}) == 3
    for s, want in ((s1, "kept"), (s2, "relabelled"), (s3, "unsure")):
        st = state(db, demo_ds, s.idx)
        assert st["state"] == want and st["version"] == 1 and st["claimed_by"] is None
        assert st["current_label"] is None  # nothing approved yet: the given label stands
    reviews = {r["id"]: r for r in db.query("SELECT * FROM reviews")}
    assert (
        reviews[r1]["decision"] == "keep" and reviews[r1]["note"] == "fine as is" and reviews[r1]["new_label"] is None
    )
    assert reviews[r2]["decision"] == "relabel" and reviews[r2]["new_label"] == new
    assert reviews[r3]["decision"] == "unsure" and reviews[r3]["new_label"] is None
    assert all(r["status"] == "pending" and r["reviewer"] == annotator.name for r in reviews.values())
    log = db.execute("SELECT actor, idx FROM audit_log WHERE action='decision' ORDER BY id").fetchall()
    assert log == [(annotator.name, s1.idx), (annotator.name, s2.idx), (annotator.name, s3.idx)]
    # decided rows are no longer handed out
    assert workflow.claim_next(db, demo_ds, annotator).idx not in {s1.idx, s2.idx, s3.idx}


def test_decide_refuses_bad_input(db, demo_ds, annotator):
    s = workflow.claim_next(db, demo_ds, annotator)
    with pytest.raises(ReviewError, match="Unknown decision 'maybe'"):
        workflow.decide(db, demo_ds, s.idx, annotator, "maybe", s.version)
    with pytest.raises(ReviewError, match="'nonsense' is not a label"):
        workflow.decide(db, demo_ds, s.idx, annotator, "relabel", s.version, new_label="nonsense")
    with pytest.raises(ReviewError, match="already labelled"):
        workflow.decide(db, demo_ds, s.idx, annotator, "relabel", s.version, new_label=s.given_label)
    with pytest.raises(ReviewError, match="has no row 99999"):
        workflow.decide(db, demo_ds, 99999, annotator, "keep", 0)
    assert store.scalar(db, "SELECT COUNT(*) FROM reviews") == 0
    assert state(db, demo_ds, s.idx)["state"] == "open"


def test_stale_view_refused(db, demo_ds, annotator, ben):
    s = workflow.claim_next(db, demo_ds, annotator)
    seen_by_ben = workflow.get_suspect(db, demo_ds, s.idx)  # ben opened the same row
    assert seen_by_ben.version == 0
    workflow.decide(db, demo_ds, s.idx, annotator, "keep", s.version)
    n_reviews = store.scalar(db, "SELECT COUNT(*) FROM reviews")
    with pytest.raises(StaleViewError, match=f"Row {s.idx} was changed by {annotator.name}"):
        workflow.decide(
            db, demo_ds, s.idx, ben, "relabel", seen_by_ben.version, new_label=other_label(demo_ds, s.given_label)
        )
    assert store.scalar(db, "SELECT COUNT(*) FROM reviews") == n_reviews
    assert state(db, demo_ds, s.idx)["state"] == "kept"


def test_decision_on_row_claimed_by_another_refused(db, demo_ds, annotator, ben):
    s = workflow.claim_next(db, demo_ds, annotator)
    with pytest.raises(StaleViewError, match=f"being reviewed by {annotator.name}"):
        workflow.decide(db, demo_ds, s.idx, ben, "keep", s.version)
    assert store.scalar(db, "SELECT COUNT(*) FROM reviews") == 0
    assert state(db, demo_ds, s.idx)["claimed_by"] == annotator.name
    workflow.decide(db, demo_ds, s.idx, annotator, "keep", s.version)  # the holder still can


def test_expired_claim_can_be_taken_over(db, db_path, demo_ds, annotator, ben):
    s = workflow.claim_next(db, demo_ds, annotator)
    # the claim runs out (as if CLAIM_SECONDS had passed)
    db.execute("UPDATE states SET claimed_until=? WHERE dataset_id=? AND idx=?", [1.0, demo_ds.id, s.idx])
    assert workflow.get_suspect(db, demo_ds, s.idx).claimed_by is None
    taken = workflow.claim_next(db, demo_ds, ben)
    assert taken.idx == s.idx
    with pytest.raises(StaleViewError, match=f"being reviewed by {ben.name}"):
        workflow.decide(db, demo_ds, s.idx, annotator, "keep", s.version)
    workflow.decide(db, demo_ds, s.idx, ben, "keep", taken.version)
    assert db.execute("SELECT reviewer FROM reviews").fetchall() == [(ben.name,)]


def test_revise_own_pending_decision(db, demo_ds, annotator, ben):
    s = workflow.claim_next(db, demo_ds, annotator)
    first = workflow.decide(db, demo_ds, s.idx, annotator, "keep", s.version)
    v = workflow.get_suspect(db, demo_ds, s.idx).version
    new = other_label(demo_ds, s.given_label)
    second = workflow.decide(db, demo_ds, s.idx, annotator, "relabel", v, new_label=new, note="on second thought")
    statuses = dict(db.execute("SELECT id, status FROM reviews").fetchall())
    assert statuses == {first: "superseded", second: "pending"}
    st = state(db, demo_ds, s.idx)
    assert st["state"] == "relabelled" and st["version"] == 2
    payload = db.execute("SELECT payload FROM audit_log WHERE action='decision' ORDER BY id DESC LIMIT 1").fetchone()[0]
    assert f'"revises":{first}' in payload
    # someone else cannot revise it
    with pytest.raises(StaleViewError, match="already relabelled"):
        workflow.decide(db, demo_ds, s.idx, ben, "keep", 2)


def _pending(db, ds, lead) -> dict[int, dict]:
    return {r["idx"]: r for r in workflow.pending(db, ds, lead)}


def _three_decisions(db, ds, annotator):
    a = workflow.claim_next(db, ds, annotator)
    label_a = other_label(ds, a.given_label)
    ra = workflow.decide(db, ds, a.idx, annotator, "relabel", a.version, new_label=label_a)
    b = workflow.claim_next(db, ds, annotator)
    rb = workflow.decide(db, ds, b.idx, annotator, "keep", b.version)
    c = workflow.claim_next(db, ds, annotator)
    rc = workflow.decide(db, ds, c.idx, annotator, "keep", c.version)
    return (a, ra, label_a), (b, rb), (c, rc)


def test_pending_queue_lists_decisions_with_versions(db, demo_ds, annotator, lead):
    (a, ra, label_a), (b, rb), (c, rc) = _three_decisions(db, demo_ds, annotator)
    rows = workflow.pending(db, demo_ds, lead)
    assert [r["id"] for r in rows] == [ra, rb, rc]
    pend = {r["idx"]: r for r in rows}
    assert pend[a.idx]["new_label"] == label_a and pend[a.idx]["version"] == 1
    assert pend[a.idx]["predicted_label"] in demo_ds.labels
    assert [r["id"] for r in workflow.pending(db, demo_ds, lead, limit=1, after_id=ra)] == [rb]


def test_verify_approve_relabel(db, demo_ds, annotator, lead):
    (a, ra, label_a), _, _ = _three_decisions(db, demo_ds, annotator)
    workflow.verify(db, ra, lead, "approve", _pending(db, demo_ds, lead)[a.idx]["version"])
    st = state(db, demo_ds, a.idx)
    assert st["state"] == "approved" and st["current_label"] == label_a and st["version"] == 2
    assert workflow.get_suspect(db, demo_ds, a.idx).current_label == label_a
    rev = db.execute("SELECT status, verified_by, final_label FROM reviews WHERE id=?", [ra]).fetchone()
    assert rev == ("approved", lead.name, label_a)
    log = db.execute("SELECT actor, idx, payload FROM audit_log WHERE action='verify'").fetchall()
    assert len(log) == 1 and log[0][:2] == (lead.name, a.idx) and "approve" in log[0][2]
    with pytest.raises(StaleViewError, match="already approved"):
        workflow.verify(db, ra, lead, "approve", 2)
    ok, _, msg = trail.verify_trail(db)
    assert ok, msg


def test_reject_without_note_refused(db, demo_ds, annotator, lead):
    _, (b, rb), _ = _three_decisions(db, demo_ds, annotator)
    with pytest.raises(ReviewError, match="Say why"):
        workflow.verify(db, rb, lead, "reject", _pending(db, demo_ds, lead)[b.idx]["version"], note="   ")
    assert state(db, demo_ds, b.idx)["state"] == "kept"
    assert store.scalar(db, "SELECT status FROM reviews WHERE id=?", [rb]) == "pending"


def test_verify_reject_reopens_row_for_claiming(db, demo_ds, annotator, ben, lead):
    _, (b, rb), _ = _three_decisions(db, demo_ds, annotator)
    workflow.verify(
        db, rb, lead, "reject", _pending(db, demo_ds, lead)[b.idx]["version"], note="the text is about a refund"
    )
    st = state(db, demo_ds, b.idx)
    assert st["state"] == "open" and st["version"] == 2 and st["current_label"] is None
    assert db.execute("SELECT status, verify_note FROM reviews WHERE id=?", [rb]).fetchone() == (
        "rejected",
        "the text is about a refund",
    )
    again = workflow.claim_next(db, demo_ds, ben)
    assert again.idx == b.idx and again.version == 2 and again.state == "open"
    assert again.latest_review["verify_note"] == "the text is about a refund"
    workflow.decide(db, demo_ds, b.idx, ben, "relabel", again.version, new_label=other_label(demo_ds, b.given_label))
    assert state(db, demo_ds, b.idx)["state"] == "relabelled"


def test_override_with_unknown_label_refused(db, demo_ds, annotator, lead):
    _, _, (c, rc) = _three_decisions(db, demo_ds, annotator)
    with pytest.raises(ReviewError, match="'bogus' is not a label"):
        workflow.verify(db, rc, lead, "override", _pending(db, demo_ds, lead)[c.idx]["version"], label="bogus")
    with pytest.raises(ReviewError, match="Unknown action"):
        workflow.verify(db, rc, lead, "delete", 1)
    assert store.scalar(db, "SELECT status FROM reviews WHERE id=?", [rc]) == "pending"


def test_verify_override(db, demo_ds, annotator, lead):
    _, _, (c, rc) = _three_decisions(db, demo_ds, annotator)
    own = [lab for lab in demo_ds.labels if lab != c.given_label][-1]
    workflow.verify(db, rc, lead, "override", _pending(db, demo_ds, lead)[c.idx]["version"], label=own, note="neither")
    st = state(db, demo_ds, c.idx)
    assert st["state"] == "overridden" and st["current_label"] == own
    assert db.execute("SELECT status, final_label, verified_by FROM reviews WHERE id=?", [rc]).fetchone() == (
        "overridden",
        own,
        lead.name,
    )


def test_verify_with_stale_version_refused(db, demo_ds, annotator, lead):
    s = workflow.claim_next(db, demo_ds, annotator)
    rid = workflow.decide(db, demo_ds, s.idx, annotator, "keep", s.version)
    seen = _pending(db, demo_ds, lead)[s.idx]["version"]
    rid2 = workflow.decide(
        db, demo_ds, s.idx, annotator, "relabel", seen, new_label=other_label(demo_ds, s.given_label)
    )  # the annotator revises meanwhile
    with pytest.raises(StaleViewError, match="already superseded"):
        workflow.verify(db, rid, lead, "approve", seen)
    with pytest.raises(StaleViewError, match="changed while you looked"):
        workflow.verify(db, rid2, lead, "approve", seen)
    assert state(db, demo_ds, s.idx)["state"] == "relabelled"
    assert store.scalar(db, "SELECT status FROM reviews WHERE id=?", [rid2]) == "pending"


def test_approving_unsure_refused(db, demo_ds, annotator, lead):
    s = workflow.claim_next(db, demo_ds, annotator)
    rid = workflow.decide(db, demo_ds, s.idx, annotator, "unsure", s.version, note="can't tell")
    v = _pending(db, demo_ds, lead)[s.idx]["version"]
    with pytest.raises(
        ReviewError, match=f"{annotator.name} was unsure about row {s.idx}.*override with a label, or reject"
    ):
        workflow.verify(db, rid, lead, "approve", v)
    assert state(db, demo_ds, s.idx)["state"] == "unsure"
    assert store.scalar(db, "SELECT status FROM reviews WHERE id=?", [rid]) == "pending"


def test_override_unsure_with_the_given_label(db, demo_ds, annotator, lead):
    s = workflow.claim_next(db, demo_ds, annotator)
    rid = workflow.decide(db, demo_ds, s.idx, annotator, "unsure", s.version)
    workflow.verify(db, rid, lead, "override", _pending(db, demo_ds, lead)[s.idx]["version"], label=s.given_label)
    st = state(db, demo_ds, s.idx)
    assert st["state"] == "overridden" and st["current_label"] is None  # the given label, confirmed
    assert workflow.get_suspect(db, demo_ds, s.idx).current_label == s.given_label


def test_annotator_cannot_verify(db, demo_ds, annotator, lead):
    s = workflow.claim_next(db, demo_ds, annotator)
    rid = workflow.decide(db, demo_ds, s.idx, annotator, "keep", s.version)
    with pytest.raises(PermissionDenied):
        workflow.verify(db, rid, annotator, "approve", 1)
    with pytest.raises(PermissionDenied):
        workflow.pending(db, demo_ds, annotator)
    with pytest.raises(PermissionDenied):
        workflow.claim_next(db, demo_ds, None)
    assert store.scalar(db, "SELECT status FROM reviews WHERE id=?", [rid]) == "pending"
    assert state(db, demo_ds, s.idx)["state"] == "kept"


def _four_decisions(db, ds, annotator):
    decided = []
    for decision in ("keep", "keep", "unsure", "relabel"):
        s = workflow.claim_next(db, ds, annotator)
        new = other_label(ds, s.given_label) if decision == "relabel" else None
        decided.append(workflow.decide(db, ds, s.idx, annotator, decision, s.version, new_label=new))
    workflow.claim_next(db, ds, annotator)  # a claim alone is not a decision
    return decided


def test_progress_counts(db, demo_ds, annotator):
    flagged = len(flagged_by_rank(db, demo_ds))
    p = workflow.progress(db, demo_ds)
    assert (p.flagged, p.open, p.decided, p.pending) == (flagged, flagged, 0, 0)
    _four_decisions(db, demo_ds, annotator)
    p = workflow.progress(db, demo_ds)
    assert (p.decided, p.pending, p.open, p.approved, p.overridden) == (4, 4, flagged - 4, 0, 0)
    assert p.states == {"kept": 2, "unsure": 1, "relabelled": 1, "open": 1}


def test_progress_counts_after_verification(db, demo_ds, annotator, lead):
    flagged = len(flagged_by_rank(db, demo_ds))
    decided = _four_decisions(db, demo_ds, annotator)
    pend = {r["id"]: r for r in workflow.pending(db, demo_ds, lead)}
    workflow.verify(db, decided[0], lead, "approve", pend[decided[0]]["version"])
    workflow.verify(db, decided[2], lead, "override", pend[decided[2]]["version"], label=demo_ds.labels[0])
    workflow.verify(db, decided[1], lead, "reject", pend[decided[1]]["version"], note="no")
    p = workflow.progress(db, demo_ds)
    assert (p.decided, p.pending, p.open, p.approved, p.overridden) == (3, 1, flagged - 3, 1, 1)


def test_concurrent_deciders_exactly_one_wins(db, db_path, demo_ds, admin):
    users = [auth.create_user(db, f"t{i}", "annotator", PASSWORD, admin) for i in range(8)]
    idx = flagged_by_rank(db, demo_ds)[0]
    seen = workflow.get_suspect(db, demo_ds, idx).version
    barrier = threading.Barrier(len(users))
    results: dict[str, object] = {}

    def run(user):
        conn = store.connect(db_path)
        try:
            ds = datasets.get(conn, demo_ds.id)
            barrier.wait(timeout=30)
            results[user.name] = workflow.decide(conn, ds, idx, user, "keep", seen, note=user.name)
        except Exception as exc:
            results[user.name] = exc
        finally:
            conn.conn.close()

    threads = [threading.Thread(target=run, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == 8
    wins = [k for k, v in results.items() if isinstance(v, int)]
    stale = [k for k, v in results.items() if isinstance(v, StaleViewError)]
    others = {k: repr(v) for k, v in results.items() if not isinstance(v, (int, StaleViewError))}
    assert not others, others  # in particular no sqlite3 'database is locked'
    assert len(wins) == 1 and len(stale) == 7
    assert all(not isinstance(v, sqlite3.OperationalError) for v in results.values())
    rows = db.execute("SELECT reviewer, note FROM reviews WHERE dataset_id=? AND idx=?", [demo_ds.id, idx]).fetchall()
    assert rows == [(wins[0], wins[0])]
    assert state(db, demo_ds, idx)["version"] == seen + 1
    ok, _, msg = trail.verify_trail(db)
    assert ok, msg


def test_concurrent_claims_are_distinct(db, db_path, demo_ds, admin):
    users = [auth.create_user(db, f"c{i}", "annotator", PASSWORD, admin) for i in range(6)]
    barrier = threading.Barrier(len(users))
    got: dict[str, object] = {}

    def run(user):
        conn = store.connect(db_path)
        try:
            ds = datasets.get(conn, demo_ds.id)
            barrier.wait(timeout=30)
            got[user.name] = workflow.claim_next(conn, ds, user).idx
        except Exception as exc:
            got[user.name] = exc
        finally:
            conn.conn.close()

    threads = [threading.Thread(target=run, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert all(isinstance(v, int) for v in got.values()), got
    assert len(set(got.values())) == len(users)
    assert set(got.values()) == set(flagged_by_rank(db, demo_ds)[: len(users)])
