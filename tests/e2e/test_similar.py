"""End to end, "find similar" on the review card: the real app in headless Chromium.

The demo dataset, audited for real. Annotator anna opens the Review page, turns on "Show rows like this one"
under the card, picks the correction "Keep (their label is right)", ticks the first two rows that can take it
and applies it; the page says what was done, and the database then holds a pending keep for each ticked row
(and nothing for the card's own row, which is decided with the card's buttons). Screenshots go to artifacts/.
"""

from __future__ import annotations

import re

import pytest

from review import auth, demo, store, trail
from tests.e2e.helpers import choose, go, see, shot, shot_on_failure, sign_in, wait_idle

pytestmark = pytest.mark.e2e

PASSWORD = "e2e password 123"


def test_an_annotator_applies_a_correction_to_ticked_similar_rows(app, pages):
    db = store.connect(app.db_path)
    admin = auth.create_user(db, "ada", "admin", PASSWORD, None)
    lead = auth.create_user(db, "lea", "lead", PASSWORD, admin)
    auth.create_user(db, "anna", "annotator", PASSWORD, admin)
    ds_id = demo.load_demo(db, lead)
    current: dict = {}
    ticked: list[int] = []
    try:
        with shot_on_failure(app, current, "similar"):
            anna = pages("anna")
            current.update(page=anna, name="review")
            sign_in(anna, app.url, "anna", PASSWORD)
            go(anna, "Review")
            main = anna.locator('[data-testid="stMain"]')
            main.get_by_text("Show rows like this one").first.click()
            wait_idle(anna)
            see(anna, re.compile(r"^Rows like this one \(\d+\)$"))
            held = store.scalar(
                db, "SELECT idx FROM states WHERE dataset_id=? AND claimed_by='anna' AND state='open'", [ds_id]
            )
            choose(anna, main, "Correction for the ticked rows", "Keep (their label is right)")
            wait_idle(anna)
            boxes = main.get_by_role("checkbox", name=re.compile(r"^Tick row \d+$"))
            boxes.first.wait_for()
            for k in range(boxes.count()):
                box = boxes.nth(k)
                if box.is_enabled() and len(ticked) < 2:
                    ticked.append(int(box.get_attribute("aria-label").split()[-1]))
                    box.check(force=True)
                    wait_idle(anna)
            assert len(ticked) == 2 and held not in ticked
            shot(anna, "similar-01-ticked")
            main.get_by_role("button", name="Apply this correction to the 2 ticked rows").click()
            wait_idle(anna)
            see(anna, re.compile(rf"^2 rows like row {held} kept, awaiting verification\."))
            shot(anna, "similar-02-applied")
    finally:
        decided = {
            r["idx"]: (r["decision"], r["status"], r["reviewer"])
            for r in store.rows(db, "SELECT idx, decision, status, reviewer FROM reviews WHERE dataset_id=?", [ds_id])
        }
        ok = trail.verify_trail(db)[0]
        db.conn.close()
    assert decided == {i: ("keep", "pending", "anna") for i in ticked}
    assert ok
