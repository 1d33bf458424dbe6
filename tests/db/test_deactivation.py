"""A user deactivated (or demoted) while a page is open is refused at the action, whatever path it
comes by: the User object a page drew with is checked against the users table when the action runs
(review.auth.require_active), and a download built on click checks the tab's session again
(review.ui.shell.download_connection)."""

from __future__ import annotations

import pytest

from review import audit, auth, datasets, export, store, workflow
from review.crowd import gold
from review.errors import AuthError, PermissionDenied
from review.trail import export as trail_export
from review.ui import shell


def _trail(db, actor: str, action: str) -> int:
    return store.scalar(db, "SELECT COUNT(*) FROM audit_log WHERE actor=? AND action=?", [actor, action])


@pytest.fixture
def pending(db, demo_ds, annotator):
    s = workflow.claim_next(db, demo_ds, annotator)
    rid = workflow.decide(
        db,
        demo_ds,
        s.idx,
        annotator,
        "relabel",
        s.version,
        new_label=next(l for l in demo_ds.labels if l != s.given_label),
    )
    return rid, s


def test_every_lead_action_refuses_a_lead_deactivated_since_the_page_drew(db, admin, lead, demo_ds, pending):
    rid, s = pending
    drawn_as = auth.User(lead.name, lead.role)  # what the open page holds
    auth.set_active(db, lead.name, False, admin)
    before = store.scalar(db, "SELECT COUNT(*) FROM audit_log")
    actions = {
        "export the cleaned labels": lambda: "".join(export.export_cleaned(db, demo_ds, drawn_as)),
        "export the trail": lambda: "".join(trail_export.export_csv(db, drawn_as, demo_ds.id)),
        "verify": lambda: workflow.verify(
            db, rid, drawn_as, "approve", workflow.pending(db, demo_ds, admin)[0]["version"]
        ),
        "verify many": lambda: workflow.verify_many(db, demo_ds, drawn_as, [(rid, 1)]),
        "run the audit": lambda: audit.run_audit(db, demo_ds.id, drawn_as),
        "set gold": lambda: gold.set_gold(db, demo_ds, s.idx, demo_ds.labels[0], drawn_as),
        "change a setting": lambda: datasets.set_setting(db, demo_ds, "allow_self_approval", True, drawn_as),
    }
    for what, act in actions.items():
        with pytest.raises(PermissionDenied, match="deactivated") as exc:
            act()
        assert repr(lead.name) in str(exc.value), what
    assert store.scalar(db, "SELECT COUNT(*) FROM audit_log") == before + 0  # nothing written, no export logged
    assert _trail(db, lead.name, "export") == 0
    assert workflow.awaiting_verification(db, demo_ds) == 1  # the decision still waits


def test_an_annotator_deactivated_mid_review_cannot_decide(db, admin, annotator, demo_ds):
    s = workflow.claim_next(db, demo_ds, annotator)
    auth.set_active(db, annotator.name, False, admin)
    with pytest.raises(PermissionDenied, match="deactivated"):
        workflow.decide(db, demo_ds, s.idx, annotator, "keep", s.version)
    assert workflow.awaiting_verification(db, demo_ds) == 0


def test_a_lead_demoted_since_the_page_drew_is_refused_as_annotator(db, admin, lead, demo_ds, pending):
    drawn_as = auth.User(lead.name, lead.role)
    auth.set_role(db, lead.name, "annotator", admin)
    with pytest.raises(PermissionDenied, match="annotator; only a lead"):
        "".join(export.export_cleaned(db, demo_ds, drawn_as))


def test_a_deactivated_admin_cannot_manage_users(db, admin, lead):
    auth.create_user(db, "ada2", "admin", "another long password", admin)
    drawn_as = auth.User(admin.name, admin.role)
    auth.set_active(db, admin.name, False, auth.User("ada2", "admin"))
    with pytest.raises(PermissionDenied, match="deactivated"):
        auth.set_active(db, lead.name, False, drawn_as)
    with pytest.raises(PermissionDenied, match="deactivated"):
        auth.create_user(db, "mallory", "admin", "mallory's long password", drawn_as)
    assert auth.get_user(db, lead.name).role == "lead"
    assert store.scalar(db, "SELECT COUNT(*) FROM users WHERE name='mallory'") == 0


def test_the_cli_actor_is_not_an_account(db, demo_ds, lead, admin):
    # `review export` runs as whoever can open the file; a web account named like it changes nothing
    assert "".join(export.export_cleaned(db, demo_ds, auth.SYSTEM)).startswith("id,")


def test_a_download_built_after_sign_out_or_deactivation_is_refused(db_path, db, admin, lead, demo_ds, monkeypatch):
    monkeypatch.setenv("REVIEW_DB", str(db_path))
    token = auth.start_session(db, lead)
    conn = shell.download_connection(token)  # live session: a connection
    assert "".join(export.export_cleaned(conn, demo_ds, lead)).startswith("id,")
    auth.end_session(db, token)  # signed out in another tab
    with pytest.raises(AuthError, match="signed out"):
        shell.download_connection(token)
    token = auth.start_session(db, lead)
    auth.set_active(db, lead.name, False, admin)
    with pytest.raises(AuthError, match="deactivated"):
        shell.download_connection(token)
