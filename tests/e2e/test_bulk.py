"""End to end, the Bulk fix page: the real app in headless Chromium.

Lead lea opens the page, picks the demo's second confusion pair (given A, the model says B), draws a
sample of 3, decides it (two wrong, one correct: precision 67 %), applies the correction to the other
rows of the set (sent to verification), sees the count, and undoes the whole action in one click. The
database then holds the bulk decisions undone and the rows open again. Screenshots go to artifacts/.
"""

from __future__ import annotations

import re

import pytest

from review import auth, bulk, datasets, demo, store, trail
from tests.e2e.helpers import choose, see, shot, shot_on_failure, sign_in, wait_idle

pytestmark = pytest.mark.e2e

PASSWORD = "e2e password 123"
ADMIN, LEA = "ada", "lea"


def test_bulk_fix_sample_apply_undo(app, pages):
    db = store.connect(app.db_path)
    admin = auth.create_user(db, ADMIN, "admin", PASSWORD, None)
    auth.create_user(db, LEA, "lead", PASSWORD, admin)
    ds = datasets.get(db, demo.load_demo(db, auth.User(LEA, "lead")))
    g, p, n = bulk.confusion_pairs(db, ds)[1]  # not the one shown first: the lead picks it
    current = {}
    try:
        with shot_on_failure(app, current, "bulk"):
            lea = pages(LEA)
            current.update(page=lea, name="bulk")
            sign_in(lea, app.url, LEA, PASSWORD)
            lea.goto(f"{app.url}/Bulk_fix")  # the session cookie signs the new connection in
            wait_idle(lea)
            main = lea.locator('[data-testid="stMain"]')
            see(lea, "1. The set and its correction")
            choose(lea, main, "Confusion pair (given → the model says)", f"{g} → {p} ({n} flagged rows)")
            wait_idle(lea)
            assert main.get_by_role("combobox", name="Relabel every row of the set to").input_value() == p
            see(lea, f"{n} rows in the set; {n} of them open and not labelled {p} yet")
            size = main.get_by_label("Sample size")
            size.fill("3")
            size.press("Enter")
            wait_idle(lea)
            main.get_by_role("button", name="Draw a sample").click()
            see(lea, f"drew 3 sample rows out of {n}")
            wait_idle(lea)
            a = bulk.open_action(db, ds)
            assert a is not None and len(a.sample) == 3
            shot(lea, "bulk-01-sample")
            for k, idx in enumerate(a.sample):  # two wrong, then one correct
                # Each row's own button by its key: a decided row's buttons linger in the page until its script
                # run ends, so "the first button of that name" can be the stale one of the row just decided.
                key = f"bulk_wrong_{a.id}_{idx}" if k < 2 else f"bulk_right_{a.id}_{idx}"
                main.locator(f".st-key-{key} button").click()
                wait_idle(lea)
                see(lea, re.compile(rf"{k + 1} of {k + 1} decided sample rows|{k + 1} decided sample rows"))
                wait_idle(lea)
            see(lea, "Precision 67% (95 % interval")
            apply_button = main.get_by_role("button", name=f"Apply to the other {n - 3} rows")
            assert apply_button.is_enabled()
            shot(lea, "bulk-02-decided")
            apply_button.click()
            see(lea, f"relabelled {n - 3} rows to {p} (sent to verification)")
            wait_idle(lea)
            shot(lea, "bulk-03-applied")
            assert (
                store.scalar(db, "SELECT COUNT(*) FROM reviews WHERE bulk_id=? AND status='pending'", [a.id]) == n - 3
            )
            main.get_by_role("button", name="Undo").first.click()
            see(lea, f"Bulk action {a.id} undone: {n - 3} rows put back as they were.")
            wait_idle(lea)
            shot(lea, "bulk-04-undone")
            assert bulk.get(db, a.id).status == "undone"
            assert store.scalar(db, "SELECT COUNT(*) FROM reviews WHERE bulk_id=? AND status='undone'", [a.id]) == n - 3
            assert trail.verify_trail(db)[0]
    finally:
        db.conn.close()
