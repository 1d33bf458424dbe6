"""End to end, blind first look: the real app in headless Chromium.

Lead lea turns blind first look on for the demo dataset. Annotator ann sees the text and its label only
(no model pill, no probabilities), says "looks right" with K, then sees the model's view with her first
call; she changes her mind and relabels to the model's suggestion. The database keeps both calls; lea's
Reviewers tab shows the changed-mind table. Screenshots (step 1, step 2, the Reviewers tab) go to artifacts/.
"""

from __future__ import annotations

import re

import pytest

from review import auth, blind, datasets, demo, store, workflow
from tests.e2e.helpers import go, press_shortcut, see, shot, shot_on_failure, sign_in, wait_idle

pytestmark = pytest.mark.e2e

PASSWORD = "e2e password 123"
ADMIN, LEA, ANN = "ada", "lea", "ann"


def test_first_call_then_the_model_view_and_the_changed_mind_rate(app, pages):
    db = store.connect(app.db_path)
    admin = auth.create_user(db, ADMIN, "admin", PASSWORD, None)
    lea_user = auth.create_user(db, LEA, "lead", PASSWORD, admin)
    auth.create_user(db, ANN, "annotator", PASSWORD, admin)
    ds = datasets.get(db, demo.load_demo(db, lea_user))
    blind.set_blind_first_look(db, ds, True, lea_user)
    current = {}
    try:
        with shot_on_failure(app, current, "blind"):
            _run(app, pages, db, ds, current)
    finally:
        db.conn.close()


def _run(app, pages, db, ds, current):
    ann = pages("ann")
    current.update(page=ann, name="step1")
    sign_in(ann, app.url, ANN, PASSWORD)
    go(ann, "Review")
    see(ann, "Your first call: is the label right?")
    main = ann.locator('[data-testid="stMain"]')
    [idx] = [r[0] for r in db.execute("SELECT idx FROM states WHERE claimed_by=? AND state='open'", [ANN])]
    s = workflow.get_suspect(db, ds, idx)
    sugg = s.suggested_label
    assert sugg and sugg != s.current_label, (sugg, s.current_label)  # the top suspect: the model disagrees
    see(ann, f"given: {s.current_label}")
    assert main.get_by_text(re.compile(r"^model: ")).count() == 0
    assert main.get_by_text("Why it is flagged").count() == 0
    assert main.locator('[data-testid="stPlotlyChart"]').count() == 0
    shot(ann, "blind-01-first-call")

    press_shortcut(ann, "k")  # Looks right
    current["name"] = "step2"
    see(ann, "Your first call: looks right")
    wait_idle(ann)
    see(ann, re.compile(rf"^model: {re.escape(s.predicted_label)} \(\d+%\)$"))
    see(ann, "Why it is flagged")
    main.locator('[data-testid="stPlotlyChart"]').first.wait_for()
    shot(ann, "blind-02-model-view")
    main.locator("button", has_text=re.compile(rf"^{re.escape(sugg)}")).first.click()  # changed: the model's label
    see(ann, f"relabelled to {sugg} (your first call: looks right).")
    wait_idle(ann)
    r = store.fetch_one(db, "SELECT * FROM reviews WHERE idx=? AND dataset_id=?", [idx, ds.id])
    assert (r["decision"], r["new_label"], r["blind_decision"], r["blind_label"]) == ("relabel", sugg, "keep", None)
    see(ann, "Your first call: is the label right?")  # the next row starts blind again

    lea = pages("lea")
    current.update(page=lea, name="reviewers")
    sign_in(lea, app.url, LEA, PASSWORD)
    go(lea, "Annotators")
    lea.get_by_role("tab", name="Reviewers").click()
    see(lea, "Blind first look: how often the model's view changed their mind")
    [m] = blind.changed_mind_stats(db, ds)
    assert (m.reviewer, m.blind_calls, m.changed, m.toward_model, m.rate) == (ANN, 1, 1, 1, 1.0)
    grid = lea.locator('[data-testid="stDataFrame"]').last  # the changed-mind table, drawn after the reviewers'
    grid.wait_for()
    grid.locator('[role="gridcell"]').first.wait_for(state="attached")  # the grid's accessible cells
    cells = [t.strip() for t in grid.locator('[role="gridcell"]').all_inner_texts()]
    # reviewer, first calls, changed, rate (the cell's value; drawn as 100%), interval, toward, away, to unsure
    assert cells[:8] == [ANN, "1", "1", cells[3], "21% – 100%", "1", "0", "0"] and cells[3] in ("1", "100%"), cells
    shot(lea, "blind-03-reviewers")
