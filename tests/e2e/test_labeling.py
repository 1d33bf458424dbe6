"""End to end, the label queue and the golden set: the real app in headless Chromium.

The small audited crowd of tests/builders.py (build_crowd_db) is put in the app's database; an annotator
opens the Label page, labels the item the queue shows first with a button and the next with the
keyboard, and the database then holds both labels as theirs (and the audit trail says so); a
lead opens the Annotators page, marks an item gold on the Golden set tab and sees the gold
columns in the annotator table. Screenshots go to artifacts/.
"""

from __future__ import annotations

import json
import re

import pytest

from review import datasets, store
from review.auth import User
from review.crowd import gold, labeling
from tests.builders import ANNOTATORS, build_crowd_db
from tests.conftest import PASSWORD
from tests.e2e.helpers import choose, go, press_shortcut, see, shot, sign_in, wait_idle

pytestmark = pytest.mark.e2e


def _mine(db, ds, idx: int, who: str) -> list[str]:
    return [
        r[0]
        for r in db.execute(
            "SELECT label FROM annotations WHERE dataset_id=? AND idx=? AND annotator=?", [ds.id, idx, who]
        )
    ]


def test_annotator_labels_from_the_queue_and_lead_marks_gold(app, pages):
    build_crowd_db(app.db_path)
    db = store.connect(app.db_path)
    page = None
    try:
        ds = datasets.get(db, "crowd")
        anna = User("anna", "annotator")
        first = labeling.next_item(db, ds, anna)

        page = pages("anna")
        sign_in(page, app.url, "anna", PASSWORD)
        go(page, "Label")
        see(page, "Needs another label")
        see(page, re.compile(rf"^{re.escape(first.key)} · row {first.idx} of the upload$"))
        see(page, "the consensus updates on the next audit run")
        see(page, first.text)
        main = page.locator('[data-testid="stMain"]')
        assert main.get_by_text(re.compile("gold", re.I)).count() == 0
        for name in ANNOTATORS:  # no other annotator's label on the page
            assert main.get_by_text(name).count() == 0
        shot(page, "label-01-queue")

        main.get_by_role("button", name=re.compile(r"^pos\b")).click()  # its name ends with the shortcut hint
        see(page, f"Row {first.key}: labelled pos. The consensus updates on the next audit run.")
        wait_idle(page)
        assert _mine(db, ds, first.idx, "anna") == ["pos"]
        entry = db.execute(
            "SELECT actor, idx, payload FROM audit_log WHERE action='label' ORDER BY id DESC LIMIT 1"
        ).fetchone()
        assert entry[:2] == ("anna", first.idx) and json.loads(entry[2])["label"] == "pos"

        nxt = labeling.next_item(db, ds, anna)
        assert nxt.idx != first.idx
        see(page, re.compile(rf"^{re.escape(nxt.key)} · row {nxt.idx} of the upload$"))
        press_shortcut(page, "1")  # the first label, neg
        see(page, f"Row {nxt.key}: labelled neg.")
        wait_idle(page)
        assert _mine(db, ds, nxt.idx, "anna") == ["neg"]
        assert labeling.queue_status(db, ds, anna).mine == 2
        shot(page, "label-02-after-two-labels")

        page = pages("lena")
        sign_in(page, app.url, "lena", PASSWORD)
        go(page, "Annotators")
        page.get_by_role("tab", name="Golden set").click()
        see(page, "No gold item yet: mark one above or import a CSV.")
        row = page.get_by_role("spinbutton", name=re.compile(r"^Row number"))
        row.fill("7")
        row.press("Enter")
        wait_idle(page)
        key7 = store.scalar(db, "SELECT key FROM items WHERE dataset_id=? AND idx=7", [ds.id])
        see(page, re.compile(rf"^{re.escape(key7)} · row 7 · not gold$"))
        main = page.locator('[data-testid="stMain"]')
        choose(page, main, "Trusted label", "neg")
        wait_idle(page)
        main.get_by_role("button", name="Mark as gold").click()
        see(page, f"Row 7 ({key7}) is gold: neg.")
        wait_idle(page)
        see(page, "Gold items (1)")
        assert gold.gold_label(db, ds, 7, User("lena", "lead")) == "neg"
        page.wait_for_timeout(500)
        shot(page, "label-03-golden-set")

        page.get_by_role("tab", name="Annotators").click()
        see(page, "gold accuracy: share of their labels on gold items equal to the gold label")
        wait_idle(page)
        shot(page, "label-04-annotator-table-with-gold")
    except Exception:
        if page is not None and not page.is_closed():
            shot(page, "label-FAILED")
        print(f"\n--- streamlit log ---\n{app.log_tail(80)}")
        raise
    finally:
        db.conn.close()
