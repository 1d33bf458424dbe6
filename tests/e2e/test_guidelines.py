"""End to end, the guidelines: the real app in headless Chromium.

Lead lea opens the Guidelines page, writes a page (with hostile bits:
an <img onerror>, a javascript: link, a remote image), adds a section drafted from the most flagged
confusion pair and saves it. Annotator ann, in another browser context, opens the Review page and reads
the text in the sidebar panel beside the card: drawn as Markdown, the hostile bits inert (no image
element, no javascript: link, nothing ran). Screenshots go to artifacts/.
"""

from __future__ import annotations

import re

import pytest

from review import auth, datasets, demo, guidelines, stats, store
from tests.e2e.helpers import go, see, shot, shot_on_failure, sign_in, wait_idle

pytestmark = pytest.mark.e2e

PASSWORD = "e2e password 123"
ADMIN, LEA, ANN = "ada", "lea", "ann"
RULE = "A charge, refund or invoice is billing, even when a parcel is mentioned."
BODY = (
    "### Billing first\n\n"
    f"**Rule:** {RULE}\n\n"
    "- my card was charged twice → billing\n"
    "- where is my parcel → shipping\n\n"
    'Hostile bits: <img src=x onerror="window.__pwned=1"> [click me](javascript:window.__pwned=2) '
    "![pixel](http://127.0.0.1:9/pixel.png)"
)


def test_lead_saves_guidelines_annotator_reads_them_beside_the_card(app, pages):
    db = store.connect(app.db_path)
    admin = auth.create_user(db, ADMIN, "admin", PASSWORD, None)
    auth.create_user(db, LEA, "lead", PASSWORD, admin)
    auth.create_user(db, ANN, "annotator", PASSWORD, admin)
    ds = datasets.get(db, demo.load_demo(db, auth.User(LEA, "lead")))
    g, p, _ = max(stats.flagged_confusion(db, ds), key=lambda t: t[2])
    current = {}
    try:
        with shot_on_failure(app, current, "guidelines"):
            _run(app, pages, db, ds, g, p, current)
    finally:
        db.conn.close()


def _run(app, pages, db, ds, g, p, current):
    # ---------------------------------------------------------------- the lead writes and saves
    lea = pages(LEA)
    current.update(page=lea, name="lead")
    sign_in(lea, app.url, LEA, PASSWORD)
    lea.goto(f"{app.url}/Guidelines")  # a new tab's load: the session cookie keeps her signed in
    wait_idle(lea)
    see(lea, "No guidelines for this dataset yet")
    main = lea.locator('[data-testid="stMain"]')
    main.get_by_role("tab", name="Edit").click()
    box = main.get_by_role("textbox", name="Guidelines (Markdown)")
    box.fill(BODY)
    box.press("Control+Enter")  # commit the text (as a blur would)
    wait_idle(lea)
    main.get_by_role("button", name="Add to the editor").click()  # the most flagged pair is preselected
    see(lea, f"Added a section {g} vs {p} at the end of the editor")
    wait_idle(lea)
    assert box.input_value().startswith(BODY + f"\n\n### {g} vs {p}")
    assert main.get_by_text(RULE).count() >= 1  # the live preview draws it
    main.get_by_role("textbox", name="What changed (note, optional)").fill("first rules")
    shot(lea, "guidelines-01-editor")
    main.get_by_role("button", name="Save", exact=True).click()
    see(lea, f"Saved version 1 of the guidelines of {ds.name}.")
    wait_idle(lea)
    saved = guidelines.current(db, ds)
    assert saved.version == 1 and saved.note == "first rules" and saved.body.startswith(BODY)
    assert f"### {g} vs {p}" in saved.body

    # ---------------------------------------------------------------- the annotator reads it beside the card
    ann = pages(ANN)
    current.update(page=ann, name="annotator")
    sign_in(ann, app.url, ANN, PASSWORD)
    go(ann, "Review")
    main = ann.locator('[data-testid="stMain"]')
    main.get_by_role("button", name="Keep").wait_for()  # the card is there
    panel = ann.locator('[data-testid="stSidebar"] .st-key-guidelines_panel_body')
    ann.locator('[data-testid="stSidebar"]').get_by_text("Guidelines (version 1)").wait_for()
    panel.get_by_text(RULE).wait_for()
    assert panel.locator("h3").filter(has_text=f"{g} vs {p}").count() == 1  # drawn as Markdown
    assert panel.get_by_text('<img src=x onerror="window.__pwned=1">').count() == 1  # shown as text
    assert panel.locator("img").count() == 0  # neither the <img> nor the remote pixel is an image
    assert panel.locator('a[href^="javascript"], a[href*="javascript:"]').count() == 0
    assert panel.locator('a[href="http://127.0.0.1:9/pixel.png"]').count() == 1  # the image: a link, not fetched
    assert ann.evaluate("() => window.__pwned === undefined")
    card = main.get_by_role("button", name="Keep").bounding_box()
    side = ann.locator('[data-testid="stSidebar"]').bounding_box()
    assert side["x"] + side["width"] <= card["x"]  # beside the card, not over it
    link = ann.locator('[data-testid="stSidebar"]').get_by_role("link", name="Open the Guidelines page")
    href = link.get_attribute("href") or ""
    assert re.search(r"(^|/)Guidelines/?(\?|$)", href), href
    shot(ann, "guidelines-02-review-panel")
    print(f"\nguidelines version 1 saved by {LEA}; {ANN} reads it beside the card; screenshots in artifacts/")
