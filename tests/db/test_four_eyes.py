"""Four eyes and the last admin: who may verify a decision, the per-dataset self-approval
setting (stored with the dataset, audited, shown in the export), the export of pending and
re-decided rows, and an admin who cannot remove the last admin. Real SQLite, real demo audit;
the pages through streamlit's AppTest."""

from __future__ import annotations

import csv
import io
import json
import time

import pytest
from streamlit.testing.v1 import AppTest

from review import auth, datasets, export, store, trail, workflow
from review.crowd import annotators
from review.errors import PermissionDenied, ReviewError
from tests.helpers import PASSWORD, ROOT, other_label

APP = ROOT / "app.py"


@pytest.fixture
def leo(db, admin):
    """A second lead."""
    return auth.create_user(db, "leo", "lead", PASSWORD, admin)


def audit_rows(db, action: str) -> list[tuple[str, dict]]:
    return [
        (a, json.loads(p))
        for a, p in db.execute("SELECT actor, payload FROM audit_log WHERE action=? ORDER BY id", [action])
    ]


def version(db, ds, idx: int) -> int:
    return store.scalar(db, "SELECT version FROM states WHERE dataset_id=? AND idx=?", [ds.id, idx])


def decide(db, ds, user, decision="relabel"):
    """``user`` decides on their next suspect; returns (suspect, review id, new label)."""
    s = workflow.claim_next(db, ds, user)
    new = other_label(ds, s.current_label) if decision == "relabel" else None
    return s, workflow.decide(db, ds, s.idx, user, decision, s.version, new_label=new), new


def cleaned(db, ds, user, **kw) -> dict[str, dict]:
    return {r["id"]: r for r in csv.DictReader(io.StringIO("".join(export.export_cleaned(db, ds, user, **kw))))}


# ----------------------------------------------------------------------------- the last admin


def test_the_last_active_admin_cannot_be_demoted_or_deactivated(db, admin, lead):
    before = "\n".join(db.conn.iterdump())
    for role in ("lead", "annotator"):
        with pytest.raises(
            ReviewError, match=f"alice is the last active admin: making alice {role} would leave nobody"
        ):
            auth.set_role(db, "alice", role, admin)
    with pytest.raises(ReviewError, match="alice is the last active admin: deactivating alice"):
        auth.set_active(db, "alice", False, auth.SYSTEM)  # the `review` command is an admin too
    assert "\n".join(db.conn.iterdump()) == before  # refused: nothing written, not even an audit row


def test_a_second_admin_makes_the_change_possible_and_it_is_audited(db, admin, lead):
    auth.set_role(db, "lena", "admin", admin)
    assert auth.set_role(db, "alice", "lead", auth.User("lena", "admin")) == "admin"  # returns the old role
    assert auth.get_user(db, "alice").role == "lead"
    actor, p = audit_rows(db, "user_role")[-1]
    assert (actor, p["user"], p["role"], p["previous_role"]) == ("lena", "alice", "lead", "admin")
    # now lena is the last one
    with pytest.raises(ReviewError, match="lena is the last active admin"):
        auth.set_role(db, "lena", "annotator", auth.User("lena", "admin"))
    with pytest.raises(ReviewError, match="lena is already admin: nothing was changed"):
        auth.set_role(db, "lena", "admin", auth.User("lena", "admin"))


def test_a_deactivated_admin_does_not_count_as_the_other_admin(db, admin):
    auth.create_user(db, "bob", "admin", PASSWORD, admin)
    auth.set_active(db, "bob", False, admin)
    with pytest.raises(ReviewError, match="alice is the last active admin"):
        auth.set_role(db, "alice", "lead", admin)
    auth.set_role(db, "bob", "lead", admin)  # demoting an inactive admin is fine
    assert auth.last_admin_refusal(db, "alice", "x") and auth.last_admin_refusal(db, "bob", "x") is None


# ----------------------------------------------------------------------------- four eyes in workflow.verify


def test_a_lead_cannot_verify_their_own_decision_another_lead_can(db, demo_ds, lead, leo):
    s, rid, new = decide(db, demo_ds, lead)
    v = version(db, demo_ds, s.idx)
    n_audit = store.scalar(db, "SELECT COUNT(*) FROM audit_log")
    for action, kw in (("approve", {}), ("reject", {"note": "no"}), ("override", {"label": demo_ds.labels[0]})):
        with pytest.raises(
            ReviewError,
            match=rf"You \(lena\) made this decision on row {s.idx}: a decision is verified"
            r" by someone other than its author \(four eyes\)",
        ):
            workflow.verify(db, rid, lead, action, v, **kw)
    assert store.scalar(db, "SELECT status FROM reviews WHERE id=?", [rid]) == "pending"
    assert version(db, demo_ds, s.idx) == v and store.scalar(db, "SELECT COUNT(*) FROM audit_log") == n_audit
    workflow.verify(db, rid, leo, "approve", v)
    assert db.execute("SELECT status, verified_by FROM reviews WHERE id=?", [rid]).fetchone() == ("approved", "leo")
    _, p = audit_rows(db, "verify")[-1]
    assert "self_approved" not in p and p["reviewer"] == "lena"
    row = cleaned(db, demo_ds, leo)[s.key]
    assert (row["cleaned_label"], row["reviewer"], row["verified_by"], row["self_approved"]) == (
        new,
        "lena",
        "leo",
        "no",
    )
    [r] = annotators.reviewer_table(db, demo_ds)
    assert r["reviewer"] == "lena" and r["approved"] == 1 and "self-verified" not in r


def test_self_approval_setting_is_stored_with_the_dataset_and_audited(db, demo_ds, lead, annotator, admin):
    assert demo_ds.settings == {"allow_self_approval": False, "blind_first_look": False}
    mapping_before = demo_ds.mapping
    with pytest.raises(PermissionDenied):
        datasets.set_setting(db, demo_ds, "allow_self_approval", True, annotator)
    with pytest.raises(ReviewError, match="Unknown setting 'colour'"):
        datasets.set_setting(db, demo_ds, "colour", True, lead)
    with pytest.raises(ReviewError, match="takes a bool"):
        datasets.set_setting(db, demo_ds, "allow_self_approval", "yes", lead)
    assert datasets.set_setting(db, demo_ds, "allow_self_approval", True, lead) is True
    assert datasets.set_setting(db, demo_ds, "allow_self_approval", True, admin) is False  # no change, no audit row
    again = datasets.get(db, demo_ds.id)
    assert (
        again.settings == {"allow_self_approval": True, "blind_first_look": False}
        and datasets.settings(db, demo_ds.id)["allow_self_approval"]
    )
    assert again.mapping == mapping_before  # the column mapping reads as before
    assert json.loads(store.scalar(db, "SELECT mapping FROM datasets WHERE id=?", [demo_ds.id]))["settings"] == {
        "allow_self_approval": True
    }
    changes = audit_rows(db, "dataset_setting")
    assert changes == [("lena", {"setting": "allow_self_approval", "value": True, "previous": False})]
    datasets.set_setting(db, demo_ds, "allow_self_approval", False, admin)
    assert audit_rows(db, "dataset_setting")[-1] == (
        "alice",
        {"setting": "allow_self_approval", "value": False, "previous": True},
    )
    ok, _, msg = trail.verify_trail(db)
    assert ok, msg


def test_allowed_self_approval_is_recorded_as_such(db, demo_ds, lead, annotator):
    datasets.set_setting(db, demo_ds, "allow_self_approval", True, lead)
    s, rid, new = decide(db, demo_ds, lead)
    workflow.verify(db, rid, lead, "approve", version(db, demo_ds, s.idx))
    _, p = audit_rows(db, "verify")[-1]
    assert p["self_approved"] is True and p["reviewer"] == "lena"
    t, rid2, _ = decide(db, demo_ds, annotator, "keep")
    workflow.verify(db, rid2, lead, "approve", version(db, demo_ds, t.idx))
    assert "self_approved" not in audit_rows(db, "verify")[-1][1]
    rows = cleaned(db, demo_ds, lead)
    assert (rows[s.key]["verified_by"], rows[s.key]["self_approved"], rows[s.key]["cleaned_label"]) == (
        "lena",
        "yes",
        new,
    )
    assert rows[t.key]["self_approved"] == "no"
    assert export.self_approved_count(db, demo_ds) == 1
    # the Reviewers table does not count a self-approval as an approval
    table = {r["reviewer"]: r for r in annotators.reviewer_table(db, datasets.get(db, demo_ds.id))}
    assert (table["lena"]["approved"], table["lena"]["self-verified"], table["lena"]["share approved"]) == (0, 1, None)
    assert (table["anna"]["approved"], table["anna"]["self-verified"], table["anna"]["share approved"]) == (1, 0, 1.0)
    # switched off again: the next own decision waits for another lead
    datasets.set_setting(db, demo_ds, "allow_self_approval", False, lead)
    u, rid3, _ = decide(db, demo_ds, lead)
    with pytest.raises(ReviewError, match="four eyes"):
        workflow.verify(db, rid3, lead, "approve", version(db, demo_ds, u.idx))


def test_older_trails_self_approvals_are_recognised_by_name(db, demo_ds, lead):
    """A self-approval written before the four-eyes rule (no self_approved flag) still counts as one."""
    s, rid, _ = decide(db, demo_ds, lead)
    with store.transaction(db):
        trail.log(db, "lena", "verify", demo_ds.id, s.idx, review=rid, action="approve", reviewer="lena")
    [r] = annotators.reviewer_table(db, demo_ds)
    assert r["approved"] == 0 and r["self-verified"] == 1


# ----------------------------------------------------------------------------- the export of what is pending


def test_export_shows_proposed_labels_and_only_the_decision_in_force(db, demo_ds, annotator, lead, leo, admin):
    ben = auth.create_user(db, "ben", "annotator", PASSWORD, admin)
    a, ra, new_a = decide(db, demo_ds, annotator)  # relabel, pending
    k, rk, _ = decide(db, demo_ds, annotator, "keep")  # keep, pending
    u, ru, _ = decide(db, demo_ds, annotator, "unsure")  # unsure, pending
    assert workflow.awaiting_verification(db, demo_ds) == 3 and workflow.awaiting_verification(db, demo_ds, "anna") == 3
    rows = cleaned(db, demo_ds, lead)
    assert (rows[a.key]["status"], rows[a.key]["cleaned_label"], rows[a.key]["proposed_label"]) == (
        "relabelled",
        a.given_label,
        new_a,
    )
    assert (rows[k.key]["status"], rows[k.key]["proposed_label"]) == ("kept", k.given_label)
    assert (rows[u.key]["status"], rows[u.key]["proposed_label"]) == ("unsure", "")
    # rejected by lena: the row is open again, nothing is in force, no verifier shown
    workflow.verify(db, ra, lead, "reject", version(db, demo_ds, a.idx), note="look again")
    row = cleaned(db, demo_ds, lead)[a.key]
    assert (row["status"], row["reviewer"], row["verified_by"], row["proposed_label"], row["cleaned_label"]) == (
        "unreviewed",
        "",
        "",
        "",
        a.given_label,
    )
    # ben decides it again: his pending decision is in force, lena's rejection is not its verification
    again = workflow.claim_next(db, demo_ds, ben)
    assert again.idx == a.idx
    other = next(lab for lab in demo_ds.labels if lab not in (a.given_label, new_a))
    rb = workflow.decide(db, demo_ds, a.idx, ben, "relabel", again.version, new_label=other)
    row = cleaned(db, demo_ds, lead)[a.key]
    assert (row["status"], row["reviewer"], row["verified_by"], row["proposed_label"]) == (
        "relabelled",
        "ben",
        "",
        other,
    )
    workflow.verify(db, rb, leo, "approve", version(db, demo_ds, a.idx))
    row = cleaned(db, demo_ds, lead)[a.key]
    assert (row["status"], row["cleaned_label"], row["reviewer"], row["verified_by"], row["proposed_label"]) == (
        "approved",
        other,
        "ben",
        "leo",
        "",
    )
    # the export says in the trail how many decisions still waited
    list(export.export_cleaned(db, demo_ds, lead))
    assert audit_rows(db, "export")[-1][1]["awaiting_verification"] == 2


# ----------------------------------------------------------------------------- the pages


def open_page(page: str, who: auth.User) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.session_state["user"] = (who.name, who.role, time.time())
    at.switch_page(page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def run(at: AppTest) -> AppTest:
    at = at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(elements) -> list[str]:
    return [e.value for e in elements]


@pytest.fixture
def app_db(db_path, monkeypatch):
    monkeypatch.setenv("REVIEW_DB", str(db_path))


def test_users_page_preselects_nobody_refuses_the_last_admin_and_confirms_a_change(db, app_db, admin, lead):
    at = open_page("pages/7_Users.py", admin)
    assert at.selectbox(key="edit_user").value is None
    assert "set_role" not in [b.key for b in at.button]  # nothing to click before choosing a user
    at.selectbox(key="edit_user").set_value("alice")
    at = run(at)
    assert at.button(key="set_role").disabled  # the same role: nothing to set
    at.selectbox(key="edit_role_alice").set_value("annotator")
    at = run(at)
    assert texts(at.warning) == [
        "alice is the last active admin: making alice annotator would leave nobody able to"
        " manage users. Make another user admin first."
    ]
    assert at.button(key="set_role").disabled and not at.checkbox
    assert "You cannot deactivate your own account." in texts(at.caption)
    assert auth.get_user(db, "alice").role == "admin"
    # lena to admin: the button waits for the confirmation
    at.selectbox(key="edit_user").set_value("lena")
    at = run(at)
    at.selectbox(key="edit_role_lena").set_value("admin")
    at = run(at)
    assert at.button(key="set_role").disabled
    assert at.checkbox(key="confirm_role_lena_admin").label == "Yes, change lena from lead to admin."
    at.checkbox(key="confirm_role_lena_admin").check()
    at = run(at)
    at = run(at.button(key="set_role").click())
    assert texts(at.success) == ["Changed the role of lena from lead to admin."]
    assert auth.get_user(db, "lena").role == "admin"
    # deactivating someone also needs a tick
    assert at.button(key="toggle_active").disabled
    at.checkbox(key="confirm_deactivate_lena").check()
    at = run(at)
    at = run(at.button(key="toggle_active").click())
    assert texts(at.success) == ["Deactivated lena (admin)."]
    assert store.scalar(db, "SELECT active FROM users WHERE name='lena'") == 0


def test_verify_page_offers_no_approve_on_ones_own_decision_until_allowed(db, app_db, demo_ds, lead, leo):
    s, rid, new = decide(db, demo_ds, lead)
    at = open_page("pages/4_Verify.py", lead)
    keys = {b.key for b in at.button}
    assert not {f"approve_{rid}", f"reject_{rid}", f"override_{rid}"} & keys
    assert "Your own decision: it waits for another lead to verify it (four eyes)." in texts(at.caption)
    assert any(
        i.startswith("1 decision awaiting verification is yours: another lead verifies it (four eyes).")
        for i in texts(at.info)
    )
    other = open_page("pages/4_Verify.py", leo)
    assert {f"approve_{rid}", f"reject_{rid}", f"override_{rid}"} <= {b.key for b in other.button}
    # a one-person team: lena allows self-approval for this dataset, then approves her own decision
    at = run(at.button(key="self_approval_toggle").click())
    assert any(m.startswith("Self-approval is now allowed on") for m in texts(at.success))
    assert audit_rows(db, "dataset_setting")[-1][0] == "lena"
    assert "Your own decision: verifying it is recorded as a self-approval." in texts(at.caption)
    at = run(at.button(key=f"approve_{rid}").click())
    assert db.execute("SELECT status, verified_by FROM reviews WHERE id=?", [rid]).fetchone() == ("approved", "lena")
    assert audit_rows(db, "verify")[-1][1]["self_approved"] is True


def test_export_page_says_how_many_decisions_await_verification(db, app_db, demo_ds, lead, annotator):
    at = open_page("pages/5_Export.py", lead)
    assert texts(at.success) == ["No decision awaits verification."]
    decide(db, demo_ds, annotator)
    decide(db, demo_ds, annotator, "keep")
    at = run(at)
    [w] = texts(at.warning)
    assert w.startswith(
        "2 decisions await verification: their rows export with their current label as cleaned_label,"
        " the label the decision proposes in proposed_label"
    )
    assert any("proposed_label" in c and "self_approved" in c for c in texts(at.caption))
    assert not at.info  # self-approval is off and never happened
