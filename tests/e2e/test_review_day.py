"""End to end, a review day with four eyes: the real app in headless Chromium.

The admin cannot demote themself, the only admin, on the Users page (the page says why and
offers no Set role), and a role change of someone else needs a tick and says what changed.
Lead leo relabels a suspect on the Review page; on the Verify page his own decision offers no
Approve (it waits for another lead); lead lea approves it. With one decision rejected and
decided again and another pending, the Export page says how many decisions await
verification, and the downloaded CSV has proposed_label and the verifier of the decision in
force only. Screenshots go to artifacts/.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from review import auth, datasets, demo, store, workflow
from tests.e2e.helpers import RUN_TIMEOUT, choose, go, see, shot, shot_on_failure, sign_in, wait_idle

pytestmark = pytest.mark.e2e

PASSWORD = "e2e password 123"
ADMIN, LEO, LEA, ANN, TOM = "ada", "leo", "lea", "ann", "tom"


def snap(page, name: str) -> Path:
    return shot(page, f"review-day-{name}")


def test_review_day_four_eyes_last_admin_and_export(app, pages, tmp_path):
    db = store.connect(app.db_path)
    admin = auth.create_user(db, ADMIN, "admin", PASSWORD, None)
    for name, role in ((LEO, "lead"), (LEA, "lead"), (ANN, "annotator"), (TOM, "annotator")):
        auth.create_user(db, name, role, PASSWORD, admin)
    ds = datasets.get(db, demo.load_demo(db, auth.User(LEO, "lead")))
    current = {}
    try:
        with shot_on_failure(app, current, "review-day"):
            _day(app, pages, tmp_path, db, ds, current)
    finally:
        db.conn.close()


def _day(app, pages, tmp_path, db, ds, current):
    # ---------------------------------------------------------------- the admin and the last admin
    adm = pages("admin")
    current.update(page=adm, name="users")
    sign_in(adm, app.url, ADMIN, PASSWORD)
    go(adm, "Users")
    main = adm.locator('[data-testid="stMain"]')
    see(adm, "Choose a user to change their role")
    assert main.get_by_role("button", name="Set role").count() == 0  # nobody preselected
    choose(adm, main, "User", ADMIN)
    wait_idle(adm)
    see(adm, f"{ADMIN} is admin, active.")
    choose(adm, main, "New role", "annotator")
    wait_idle(adm)
    refusal = (
        f"{ADMIN} is the last active admin: making {ADMIN} annotator would leave nobody able to manage users."
        " Make another user admin first."
    )
    see(adm, refusal)
    wait_idle(adm)
    assert main.get_by_role("button", name="Set role").is_disabled()
    see(adm, "You cannot deactivate your own account.")
    snap(adm, "01-users-last-admin-refused")
    assert auth.get_user(db, ADMIN).role == "admin"

    # a change for someone else: tick, then Set role, then the page says what changed
    choose(adm, main, "User", TOM)
    wait_idle(adm)
    choose(adm, main, "New role", "lead")
    wait_idle(adm)
    assert main.get_by_role("button", name="Set role").is_disabled()
    main.get_by_text(f"Yes, change {TOM} from annotator to lead.").click()
    wait_idle(adm)
    main.get_by_role("button", name="Set role").click()
    see(adm, f"Changed the role of {TOM} from annotator to lead.")
    wait_idle(adm)
    snap(adm, "02-users-role-changed")
    assert auth.get_user(db, TOM).role == "lead"

    # ---------------------------------------------------------------- leo relabels a suspect
    leo = pages("leo")
    current.update(page=leo, name="leo-review")
    sign_in(leo, app.url, LEO, PASSWORD)
    go(leo, "Review")
    see(leo, "Decide")
    [(idx,)] = db.execute(
        "SELECT idx FROM states WHERE dataset_id=? AND claimed_by=? AND state='open'", [ds.id, LEO]
    ).fetchall()
    key, given = db.execute("SELECT key, given_label FROM items WHERE dataset_id=? AND idx=?", [ds.id, idx]).fetchone()
    new_label = next(lab for lab in ds.labels if lab != given)
    leo.locator('[data-testid="stMain"] button', has_text=re.compile(rf"^{re.escape(new_label)}")).first.click()
    see(leo, f"Row {key}: relabelled to {new_label}.")
    wait_idle(leo)
    [rid] = [r[0] for r in db.execute("SELECT id FROM reviews WHERE dataset_id=? AND reviewer=?", [ds.id, LEO])]

    # ---------------------------------------------------------------- his own decision: no approve for him
    current["name"] = "leo-verify"
    go(leo, "Verify")
    see(leo, "1 decision awaiting verification")
    see(leo, "Your own decision: it waits for another lead to verify it (four eyes).")
    see(leo, "1 decision awaiting verification is yours: another lead verifies it (four eyes).")
    wait_idle(leo)
    assert leo.get_by_role("button", name="Approve").count() == 0
    assert leo.get_by_role("button", name="Reject").count() == 0
    snap(leo, "03-verify-own-decision")

    # ---------------------------------------------------------------- another lead approves it
    lea = pages("lea", downloads=True)
    current.update(page=lea, name="lea-verify")
    sign_in(lea, app.url, LEA, PASSWORD)
    go(lea, "Verify")
    card = (
        lea.locator('[data-testid="stVerticalBlock"]')
        .filter(has_text=f"relabel → {new_label}")
        .filter(has=lea.get_by_role("button", name="Approve"))
        .last
    )
    card.get_by_text(f"by {LEO}").wait_for()
    snap(lea, "04-verify-other-lead")
    card.get_by_role("button", name="Approve").click()
    see(lea, f"Row {key}: approved.")
    wait_idle(lea)
    assert db.execute("SELECT status, verified_by FROM reviews WHERE id=?", [rid]).fetchone() == ("approved", LEA)

    # ---------------------------------------------------------------- meanwhile (through review itself)
    # ann relabels a row, lea rejects it, ann decides it again (pending); ann keeps another (pending)
    ann = auth.User(ANN, "annotator")
    s = workflow.claim_next(db, ds, ann)
    first_try = next(lab for lab in ds.labels if lab != s.given_label)
    r1 = workflow.decide(db, ds, s.idx, ann, "relabel", s.version, new_label=first_try)
    v = store.scalar(db, "SELECT version FROM states WHERE dataset_id=? AND idx=?", [ds.id, s.idx])
    workflow.verify(db, r1, auth.User(LEA, "lead"), "reject", v, note="read the last sentence")
    again = workflow.claim_next(db, ds, ann)
    assert again.idx == s.idx
    second_try = next(lab for lab in ds.labels if lab not in (s.given_label, first_try))
    workflow.decide(db, ds, s.idx, ann, "relabel", again.version, new_label=second_try)
    k = workflow.claim_next(db, ds, ann)
    workflow.decide(db, ds, k.idx, ann, "keep", k.version)

    # ---------------------------------------------------------------- the export says what is pending
    current["name"] = "lea-export"
    go(lea, "Export")
    see(
        lea, re.compile(r"^2 decisions await verification: their rows export with their current label as cleaned_label")
    )
    wait_idle(lea)
    snap(lea, "05-export-pending")
    with lea.expect_download(timeout=RUN_TIMEOUT) as dl:
        lea.get_by_role("button", name="Download cleaned labels (CSV)").click()
    saved = tmp_path / "cleaned.csv"
    dl.value.save_as(saved)
    with open(saved, newline="", encoding="utf-8") as f:
        rows = {r["id"]: r for r in csv.DictReader(f)}
    header = list(next(iter(rows.values())))
    assert header[:5] == ["id", "text", "given_label", "cleaned_label", "proposed_label"]
    assert {"status", "reviewer", "verified_by", "self_approved"} <= set(header)
    fixed = rows[key]
    assert (
        fixed["status"],
        fixed["cleaned_label"],
        fixed["proposed_label"],
        fixed["reviewer"],
        fixed["verified_by"],
        fixed["self_approved"],
    ) == ("approved", new_label, "", LEO, LEA, "no"), fixed
    redo = rows[s.key]  # rejected by lea, then decided again: lea did not verify the decision in force
    assert (redo["status"], redo["cleaned_label"], redo["proposed_label"], redo["reviewer"], redo["verified_by"]) == (
        "relabelled",
        s.given_label,
        second_try,
        ANN,
        "",
    ), redo
    kept = rows[k.key]
    assert (kept["status"], kept["cleaned_label"], kept["proposed_label"], kept["verified_by"]) == (
        "kept",
        k.given_label,
        k.given_label,
        "",
    ), kept

    # ---------------------------------------------------------------- the setting a one-person team would use
    current.update(page=leo, name="leo-setting")
    go(leo, "Verify")
    leo.get_by_text("Four eyes: self-approval off").click()
    see(leo, "A decision is verified by a lead other than its author.")
    assert leo.get_by_role("button", name="Allow self-approval on this dataset").is_visible()
    snap(leo, "06-verify-four-eyes-setting")
    assert datasets.settings(db, ds.id)["allow_self_approval"] is False  # looking changes nothing
    print(
        f"\nexport: {len(rows)} rows; {key} approved by {LEA} ({LEO}'s own decision); {s.key} re-decided, "
        f"proposes {second_try}; {k.key} kept, pending\nscreenshots in artifacts/"
    )
