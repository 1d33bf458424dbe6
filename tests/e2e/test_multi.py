"""End to end, several annotators: the real app in headless Chromium. A lead uploads a small
long-form file (item_id, text, annotator_id, label; a slice of sentiment_mturk), runs the
audit, opens the Annotators page (table and charts), picks the annotator who disagrees most
with the consensus and opens their disagreements in the review queue, where every annotator's
label is shown. Screenshots go to artifacts/.
"""

from __future__ import annotations

import re

import pandas as pd
import pytest

from review import auth, datasets, store
from review.crowd import annotators
from tests.e2e.helpers import RUN_TIMEOUT, go, pick_option, see, shot, sign_in
from tests.helpers import DATA

pytestmark = pytest.mark.e2e

SENTIMENT = DATA / "sentiment_mturk" / "sentiment_mturk_long.csv"
LEAD, PASSWORD = "leo", "e2e password 123"
N_ITEMS = 150


def test_long_form_upload_annotators_page_and_disagreements(app, pages, tmp_path):
    if not SENTIMENT.is_file():
        pytest.fail(f"{SENTIMENT} is missing: this test uploads a slice of it")
    df = pd.read_csv(SENTIMENT, dtype=str)
    df = df[df["item_id"].isin(df["item_id"].drop_duplicates().iloc[:N_ITEMS])].drop(columns=["gold"])
    df["label"] = df["label"].map({"0": "negative", "1": "positive"})
    upload = tmp_path / "crowd.csv"
    df.to_csv(upload, index=False)
    n_ann = df["annotator_id"].nunique()

    db = store.connect(app.db_path)
    admin = auth.create_user(db, "ada", "admin", PASSWORD, None)
    auth.create_user(db, LEAD, "lead", PASSWORD, admin)

    page = pages("lead")
    try:
        sign_in(page, app.url, LEAD, PASSWORD)
        go(page, "Upload")
        page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(upload))
        see(page, f"Preview: {len(df):,} rows", timeout=RUN_TIMEOUT)
        assert page.get_by_role("combobox", name=re.compile("^Annotator column")).input_value() == "annotator_id"
        page.get_by_role("button", name="Check and ingest").click()
        see(
            page,
            f"Dataset 'crowd' ingested: {N_ITEMS} items with {len(df):,} labels from {n_ann} annotators",
            timeout=RUN_TIMEOUT,
        )

        go(page, "Audit")
        page.get_by_role("button", name="Run the audit").click()
        see(page, re.compile(r"Run 2 \(audit\)"), timeout=RUN_TIMEOUT)

        go(page, "Annotators")
        see(page, f"{n_ann} annotators.")
        page.locator('[data-testid="stPlotlyChart"]').nth(2).wait_for()
        page.locator(".js-plotly-plot .main-svg").first.wait_for()
        page.wait_for_timeout(800)
        shot(page, "multi-01-annotators")

        ds = datasets.get(db, "crowd")
        table = annotators.annotator_table(db, ds)
        # a click on the third row of the table (its selection marker, left of the first column) picks that annotator
        grid = page.locator('[data-testid="stDataFrame"]').first
        box = grid.bounding_box()
        page.mouse.click(box["x"] + 12, box["y"] + 35 * 3 + 17)
        combo = page.locator('[data-testid="stMain"]').get_by_role(
            "combobox", name="Annotator (or click a row of the table)"
        )
        page.wait_for_function("([el, v]) => el.value === v", arg=[combo.element_handle(), table[2]["annotator"]])
        who = max(annotators.annotator_table(db, ds), key=lambda r: annotators.disagreements(db, ds, r["annotator"]))[
            "annotator"
        ]
        n = annotators.disagreements(db, ds, who)
        assert n >= 1
        # a long list is virtualised: type to filter, as a user would, then pick the option
        pick_option(page, "Annotator (or click a row of the table)", re.compile(rf"^{re.escape(who)}$"), who)
        page.wait_for_function("([el, v]) => el.value === v", arg=[combo.element_handle(), who])
        see(page, "Labels that differ from the consensus")
        value = (
            page.locator('[data-testid="stMetric"]')
            .filter(has_text="Labels that differ")
            .locator('[data-testid="stMetricValue"]')
        )
        value.filter(has_text=re.compile(rf"^{n:,}$")).wait_for()
        page.get_by_role("button", name=f"Review the items where {who} disagrees").click()
        page.wait_for_url(re.compile(r"/Review/?(\?.*)?$"))
        see(page, f"Showing the items where annotator {who} disagrees with the consensus")
        see(page, "Every annotator's label")
        shot(page, "multi-02-review-disagreements")

        # the item shown is one where that annotator's label differs from the consensus
        run = datasets.latest_run(db, ds.id)
        held = db.execute(
            "SELECT idx FROM states WHERE dataset_id=? AND claimed_by=? AND state='open'", [ds.id, LEAD]
        ).fetchall()
        assert len(held) == 1
        idx = held[0][0]
        mine = store.scalar(
            db, "SELECT label FROM annotations WHERE dataset_id=? AND idx=? AND annotator=?", [ds.id, idx, who]
        )
        cons = store.scalar(db, "SELECT consensus_label FROM scores WHERE run_id=? AND idx=?", [run["id"], idx])
        assert mine is not None and mine != cons
        key = store.scalar(db, "SELECT key FROM items WHERE dataset_id=? AND idx=?", [ds.id, idx])
        see(page, re.compile(rf"^{re.escape(key)} · row "))
    except Exception:
        if not page.is_closed():
            shot(page, "multi-FAILED")
        print(f"\n--- streamlit log ---\n{app.log_tail(80)}")
        raise
    finally:
        db.conn.close()
