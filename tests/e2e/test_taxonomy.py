"""End to end, the Taxonomy page (pages/12_Taxonomy.py) in headless Chromium: the lead lea renames the
demo's label 'billing' to 'payments'. The preview says how many rows it changes before the button; after
it the page says the rows changed and asks for a new audit (a link to the Audit page), and the label
list holds the new name. The database then holds the event, the renamed current labels and the given
labels as uploaded. Screenshots go to artifacts/."""

from __future__ import annotations

import pytest

from review import auth, datasets, demo, store, taxonomy, trail
from tests.e2e.helpers import choose, open_app, see, shot, shot_on_failure, sign_in, wait_idle

pytestmark = pytest.mark.e2e

PASSWORD = "e2e password 123"


def test_a_lead_renames_a_label(app, pages):
    db = store.connect(app.db_path)
    admin = auth.create_user(db, "ada", "admin", PASSWORD, None)
    auth.create_user(db, "lea", "lead", PASSWORD, admin)
    ds = datasets.get(db, demo.load_demo(db, auth.User("lea", "lead")))
    n = store.scalar(db, "SELECT COUNT(*) FROM items WHERE dataset_id=? AND given_label='billing'", [ds.id])
    current = {}
    try:
        with shot_on_failure(app, current, "taxonomy"):
            lea = pages("lea")
            current.update(page=lea, name="rename")
            sign_in(lea, app.url, "lea", PASSWORD)
            open_app(lea, f"{app.url}/Taxonomy")  # the session cookie signs the new connection in
            see(lea, "Label set version 0")
            main = lea.locator('[data-testid="stMain"]')
            labels = main.locator('[data-testid="stTable"]').first
            labels.wait_for()

            main.get_by_role("tab", name="Rename a label").click()
            choose(lea, main, "Label to rename", "billing")
            wait_idle(lea)
            box = main.get_by_role("textbox", name="New name")
            box.fill("payments")
            box.press("Enter")
            wait_idle(lea)
            see(lea, f"Renaming 'billing' to 'payments' changes the current label of {n} rows.")
            assert store.scalar(db, "SELECT COUNT(*) FROM taxonomy_events") == 0  # a preview only
            shot(lea, "taxonomy-01-preview")

            main.get_by_role("button", name="Rename", exact=True).click()
            wait_idle(lea)
            see(lea, f"{n} rows changed; run a new audit so the model learns the new label set.")
            assert main.get_by_role("link", name="Run a new audit on the Audit page").is_visible()
            see(lea, "Label set version 1")
            ds = datasets.get(db, ds.id)
            assert ds.labels == ["account", "payments", "shipping", "technical"]
            assert {c.label: c.rows for c in taxonomy.label_counts(db, ds)}["payments"] == n
            history = main.locator('[data-testid="stDataFrame"]').first
            history.wait_for()
            shot(lea, "taxonomy-02-renamed")
            labels_text = labels.inner_text()
            assert "payments" in labels_text and "billing" not in labels_text, labels_text

            (ev,) = taxonomy.events(db, ds)
            assert (ev.kind, ev.label, ev.into, ev.n_rows, ev.created_by) == ("rename", "billing", "payments", n, "lea")
            assert (
                store.scalar(db, "SELECT COUNT(*) FROM items WHERE dataset_id=? AND given_label='billing'", [ds.id])
                == n
            )
            assert trail.verify_trail(db)[0]
    finally:
        db.conn.close()
