"""End to end, the Rows page: the real app in headless Chromium.

Lead lea filters the demo dataset by a confusion pair (given billing, predicted shipping): the page
counts the rows the database holds for that pair and lists them; she opens the first one in the review
card, and the Review page shows that row's text, claimed for her. Screenshots go to artifacts/.
"""

from __future__ import annotations

import re

import pytest

from review import auth, browse, datasets, demo, store
from review.browse import RowFilter
from tests.e2e.helpers import go, see, shot, shot_on_failure, sign_in, wait_idle

pytestmark = pytest.mark.e2e

PASSWORD = "e2e password 123"
GIVEN, PREDICTED = "billing", "shipping"


def pick_many(page, label: str, option: str) -> None:
    """Add ``option`` to the st.multiselect labelled ``label`` in the main area, as a user does."""
    wait_idle(page)
    box = page.locator('[data-testid="stMain"] [data-testid="stMultiSelect"]').filter(has_text=label)
    box.get_by_role("combobox").click()
    page.get_by_role("option", name=option, exact=True).click()
    page.keyboard.press("Escape")
    wait_idle(page)


def test_filter_a_confusion_pair_and_open_a_row_in_the_review_card(app, pages):
    db = store.connect(app.db_path)
    admin = auth.create_user(db, "ada", "admin", PASSWORD, None)
    auth.create_user(db, "lea", "lead", PASSWORD, admin)
    ds = datasets.get(db, demo.load_demo(db, auth.User("lea", "lead")))
    pair = list(browse.matching(db, ds, RowFilter(given=(GIVEN,), predicted=(PREDICTED,))))
    assert pair, "the demo has rows given billing that the model calls shipping"
    first = store.fetch_one(db, "SELECT key, text FROM items WHERE dataset_id=? AND idx=?", [ds.id, pair[0]])
    lea = pages("lea")
    current = {"page": lea, "name": "rows"}
    try:
        with shot_on_failure(app, current, "rows"):
            sign_in(lea, app.url, "lea", PASSWORD)
            go(lea, "Rows")
            see(lea, "400 rows")
            pick_many(lea, "Given label", GIVEN)
            pick_many(lea, "Predicted label", PREDICTED)
            n = len(pair)
            see(lea, re.compile(rf"^{n} rows? match: given {GIVEN}, predicted {PREDICTED}$"))
            see(lea, f"Page 1 · matches 1–{n}")
            shot(lea, "rows-01-confusion-pair")

            current["name"] = "open"
            lea.get_by_role("button", name=f"Open row {pair[0]} in the review card").click()
            lea.wait_for_url(re.compile(r"/Review/?(\?.*)?$"))
            wait_idle(lea)
            see(lea, f"row {pair[0]} of the upload")
            card = lea.locator('[data-testid="stMain"] .item-text').first
            card.wait_for()
            assert card.inner_text().strip() == first["text"].strip()
            assert (
                store.scalar(db, "SELECT claimed_by FROM states WHERE dataset_id=? AND idx=?", [ds.id, pair[0]])
                == "lea"
            )
            shot(lea, "rows-02-opened-in-review-card")
    finally:
        db.conn.close()
