"""End to end, the Verify page one card at a time: the real app in headless Chromium.

Annotators ann and tom have decisions waiting. Lead lea filters the queue by reviewer ann and
approves the filtered list in one click: the database then holds exactly ann's decisions
approved (her unsure one left out, as the page says), tom's still pending. On tom's card a
Reject without a reason shows its error inside the card, right under the reason box; the
keyboard's A approves the shown card and N shows the next one. Screenshots go to artifacts/.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from review import auth, datasets, demo, store, trail, workflow
from tests.e2e.helpers import choose, go, press_shortcut, see, shot, shot_on_failure, sign_in, wait_idle

pytestmark = pytest.mark.e2e

PASSWORD = "e2e password 123"
ADMIN, LEA, ANN, TOM = "ada", "lea", "ann", "tom"
REASON_ERROR = "Say why you reject the decision: the note goes back to the annotator."


def snap(page, name: str) -> Path:
    return shot(page, f"verify-bulk-{name}")


def decide(db, ds, who: auth.User, decision: str, pick: int = 0) -> int:
    s = workflow.claim_next(db, ds, who)
    new = [lab for lab in ds.labels if lab != s.current_label][pick] if decision == "relabel" else None
    return workflow.decide(db, ds, s.idx, who, decision, s.version, new_label=new)


def status(db, rid: int) -> str:
    return store.scalar(db, "SELECT status FROM reviews WHERE id=?", [rid])


def key_of(db, rid: int) -> str:
    return store.scalar(
        db, "SELECT i.key FROM reviews r JOIN items i ON i.dataset_id=r.dataset_id AND i.idx=r.idx WHERE r.id=?", [rid]
    )


def test_filter_bulk_approve_error_in_card_and_keyboard(app, pages):
    db = store.connect(app.db_path)
    admin = auth.create_user(db, ADMIN, "admin", PASSWORD, None)
    for name, role in ((LEA, "lead"), (ANN, "annotator"), (TOM, "annotator")):
        auth.create_user(db, name, role, PASSWORD, admin)
    ds = datasets.get(db, demo.load_demo(db, auth.User(LEA, "lead")))
    ann, tom = auth.User(ANN, "annotator"), auth.User(TOM, "annotator")
    anns = [
        decide(db, ds, ann, "relabel", 0),
        decide(db, ds, ann, "relabel", 1),
        decide(db, ds, ann, "keep"),
        decide(db, ds, ann, "unsure"),
    ]
    toms = [decide(db, ds, tom, "relabel", 2), decide(db, ds, tom, "keep"), decide(db, ds, tom, "relabel", 0)]
    current = {}
    try:
        with shot_on_failure(app, current, "verify-bulk"):
            _verify(app, pages, db, anns, toms, current)
    finally:
        db.conn.close()


def _card(page):
    """The shown card: the innermost block holding the reason box and the Reject button."""
    return (
        page.locator('[data-testid="stVerticalBlock"]')
        .filter(has=page.get_by_placeholder(re.compile("^Reason to reject")))
        .filter(has=page.get_by_role("button", name=re.compile(r"^Reject\b")))
        .last
    )


def _verify(app, pages, db, anns, toms, current):
    lea = pages("lea")
    current.update(page=lea, name="verify")
    sign_in(lea, app.url, LEA, PASSWORD)
    go(lea, "Verify")
    see(lea, "7 decisions awaiting verification")
    main = lea.locator('[data-testid="stMain"]')
    see(lea, "keyboard: A approve · X reject (type the reason, Esc, then X) · N next card")

    # ---------------------------------------------------------------- filter by one reviewer
    choose(lea, main, "Reviewer", ANN)
    wait_idle(lea)
    see(lea, "Listed: 4 decisions")
    see(lea, "Left out: 1 unsure (no label to approve: override or reject it on its card).")
    bulk = main.get_by_role("button", name="Approve all 3 listed", exact=True)
    assert bulk.is_visible()
    card = _card(lea)
    card.get_by_text(f"by {ANN}").wait_for()
    assert card.get_by_text(f"by {TOM}").count() == 0
    snap(lea, "01-filtered-by-reviewer")

    # ---------------------------------------------------------------- approve the filtered list in one click
    n_trail = store.scalar(db, "SELECT COUNT(*) FROM audit_log WHERE action='verify'")
    bulk.click()
    see(lea, "Approved 3 decisions in one go, one audit-trail row each. Not approved: 1 unsure")
    wait_idle(lea)
    snap(lea, "02-after-bulk-approve")
    see(lea, "1 of the 4 decisions awaiting verification match these filters.")  # ann's unsure one is left
    see(lea, "Nothing to approve in bulk here. Left out: 1 unsure")
    assert main.get_by_role("combobox", name="Reviewer").input_value() == ANN  # the filter kept its choice
    approved = {r[0] for r in db.execute("SELECT id FROM reviews WHERE status='approved'")}
    assert approved == set(anns[:3])  # exactly ann's, not her unsure, not tom's
    assert [status(db, rid) for rid in [anns[3], *toms]] == ["pending"] * 4
    assert store.scalar(db, "SELECT COUNT(*) FROM audit_log WHERE action='verify'") == n_trail + 3
    assert trail.verify_trail(db)[0]

    # ---------------------------------------------------------------- tom's card: reject without a reason
    current["name"] = "reject-error"
    choose(lea, main, "Reviewer", TOM)
    wait_idle(lea)
    card = _card(lea)
    card.get_by_text(key_of(db, toms[0])).first.wait_for()
    card.get_by_role("button", name=re.compile(r"^Reject\b")).click()
    wait_idle(lea)
    card = _card(lea)
    error = card.locator('[data-testid="stAlert"]').filter(has_text=REASON_ERROR)
    error.wait_for()
    assert main.locator('[data-testid="stAlert"]').filter(has_text=REASON_ERROR).count() == 1
    box = card.get_by_placeholder(re.compile("^Reason to reject")).bounding_box()
    err = error.bounding_box()
    assert 0 <= err["y"] - (box["y"] + box["height"]) < 60, (box, err)  # right under the reason box
    assert abs(err["x"] - box["x"]) < 30, (box, err)  # in its column
    snap(lea, "03-reject-error-in-card")
    assert status(db, toms[0]) == "pending"

    # ---------------------------------------------------------------- A approves the shown card, N shows the next
    current["name"] = "keyboard"
    press_shortcut(lea, "a")
    see(lea, f"Row {key_of(db, toms[0])}: approved.")
    wait_idle(lea)
    assert status(db, toms[0]) == "approved" and status(db, toms[1]) == "pending"
    _card(lea).get_by_text(key_of(db, toms[1])).first.wait_for()
    see(lea, "Card 1 of 2")
    press_shortcut(lea, "n")
    see(lea, "Card 2 of 2")
    wait_idle(lea)
    _card(lea).get_by_text(key_of(db, toms[2])).first.wait_for()
    assert [status(db, rid) for rid in toms[1:]] == ["pending", "pending"]  # N changes nothing
    snap(lea, "04-next-card-by-keyboard")
    print(f"\nbulk approved {sorted(approved)} ({ANN}); {key_of(db, toms[0])} approved by A; screenshots in artifacts/")
