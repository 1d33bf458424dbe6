"""End to end: a lead drops the first 300 lines of AG News (no header line) on the Upload page.

The real app (`streamlit run app.py`) in headless Chromium. The page ticks "The first line is
data" by itself and says why; the preview has 300 rows with the first line as data; the lead
names the classes with AG News' own classes.txt, ingests and runs the audit; the Review page's
buttons read World, Sports, Business, Sci/Tech; the database holds the named labels and the
title and description joined with a newline (datasets.TEXT_SEP). Screenshots go to artifacts/.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from review import auth, datasets, store
from tests.e2e.helpers import (
    CHROMIUM,
    RUN_TIMEOUT,
    go,
    launch,
    new_page,
    see,
    shot,
    sign_in,
    start_app,
    stop_app,
    wait_idle,
)
from tests.helpers import DATA

pytestmark = pytest.mark.e2e

AG_DIR = DATA / "ag_news"
ADMIN, LEAD, PASSWORD = "ada", "leo", "e2e password 123"
AG_NAMES = ["World", "Sports", "Business", "Sci/Tech"]


def _need(path: Path) -> None:
    if not path.exists():
        msg = f"{path} is missing"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


@pytest.fixture
def app(tmp_path):
    _need(Path(CHROMIUM))
    _need(AG_DIR / "test.csv")
    db = store.connect(tmp_path / "app.db")  # the accounts, made before the server starts
    try:
        admin = auth.create_user(db, ADMIN, "admin", PASSWORD, None)
        auth.create_user(db, LEAD, "lead", PASSWORD, admin)
    finally:
        db.conn.close()
    server = start_app(tmp_path)
    yield server
    stop_app(server)


@pytest.fixture
def page(app):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"playwright is not installed: {exc}")
    with sync_playwright() as pw:
        browser = launch(pw)
        ctx, pg = new_page(browser)
        yield pg
        ctx.close()
        browser.close()


def test_headerless_ag_news_upload_named_classes_review_buttons(app, page, tmp_path):
    upload = tmp_path / "test.csv"
    with open(AG_DIR / "test.csv", "rb") as f:
        upload.write_bytes(b"".join(next(f) for _ in range(300)))
    first_title = "Fears for T N pension after talks"
    try:
        sign_in(page, app.url, LEAD, PASSWORD)
        go(page, "Upload")
        page.locator('[data-testid="stFileUploader"]').filter(has_text="Data file").locator(
            'input[type="file"]'
        ).set_input_files(str(upload))
        see(page, "Preview: 300 rows, 3 columns", timeout=RUN_TIMEOUT)  # 300 lines, 300 rows: line 1 is data
        wait_idle(page)
        box = page.get_by_role("checkbox", name=re.compile(r"^The first line is data"))
        assert box.is_checked()
        see(page, re.compile(r"The first line looks like data, not a header \(column 1: '3' is one of its values"))
        label = page.get_by_role("combobox", name="Label column")
        assert label.input_value() == "1"
        text_box = page.locator('[data-testid="stMultiSelect"]').filter(has_text="Text column(s)")
        tags = text_box.locator(".react-aria-ComboBox [data-tag]")
        tags.first.wait_for()
        assert [t.get_attribute("aria-label") for t in tags.all()] == ["2", "3"]
        # the preview's first row is the file's first line (the grid's accessible cells: column, row)
        grid = page.locator('[data-testid="stDataFrame"]')
        for col, want in ((0, "3"), (1, first_title)):
            cell = grid.locator(f'[data-testid="glide-cell-{col}-0"]')
            cell.wait_for(state="attached")
            assert cell.text_content() == want
        see(page, "Values in the label column, in this order: 1, 2, 3, 4")
        shot(page, "upload-headerless-1-preview")

        # the classes, as AG News ships them
        page.locator('[data-testid="stFileUploader"]').filter(has_text="classes.txt").locator(
            'input[type="file"]'
        ).set_input_files(str(AG_DIR / "classes.txt"))
        see(page, "The labels will be: 1 → World · 2 → Sports · 3 → Business · 4 → Sci/Tech")
        wait_idle(page)
        name_box = page.get_by_role("textbox", name="Dataset name", exact=True)
        name_box.fill("agnews")
        name_box.press("Enter")
        wait_idle(page)
        page.get_by_role("button", name="Check and ingest").click()
        see(
            page,
            "Dataset 'agnews' ingested: 300 rows, classes World, Sports, Business, Sci/Tech "
            "(named from the values 1=World, 2=Sports, 3=Business, 4=Sci/Tech)",
            timeout=RUN_TIMEOUT,
        )
        wait_idle(page)
        shot(page, "upload-headerless-2-ingested")

        go(page, "Audit")
        page.get_by_role("button", name="Run the audit").click()
        see(page, re.compile(r"Run 2 \(audit\)"), timeout=RUN_TIMEOUT)
        wait_idle(page)

        go(page, "Review")
        see(page, "Decide")
        wait_idle(page)
        main = page.locator('[data-testid="stMain"]')
        relabel = [main.locator(f".st-key-relabel_{i} button").first for i in range(4)]  # the page's relabel buttons
        relabel[0].wait_for()
        shown = [b.inner_text().strip() for b in relabel]
        assert [t.split()[0] if t else t for t in shown] == AG_NAMES, shown  # not "1 2 3 4"
        assert main.locator(".st-key-relabel_4").count() == 0
        shot(page, "upload-headerless-3-review")
    except Exception:
        try:
            shot(page, "FAILED-upload-headerless")
        except Exception as exc:
            print(f"(no failure screenshot: {exc})")
        print(f"\n--- streamlit log ---\n{app.log_tail(80)}")
        raise

    db = store.connect(app.db_path)
    try:
        ds = datasets.get(db, "agnews")
        assert ds.labels == AG_NAMES and ds.n_items == 300
        assert ds.mapping.class_names == dict(zip("1234", AG_NAMES))  # the values as uploaded
        assert ds.mapping.text == ["2", "3"] and ds.mapping.text_sep == datasets.TEXT_SEP == "\n"
        rows = db.execute("SELECT text, given_label FROM items WHERE dataset_id=? ORDER BY idx", [ds.id]).fetchall()
        lines = upload.read_text(encoding="utf-8").splitlines()
        assert rows[0][0].startswith(f"{first_title}\nUnions representing workers at Turner")
        assert rows[0][1] == "Business"  # line 1's label 3, named
        assert [r[1] for r in rows] == [AG_NAMES[int(line[1]) - 1] for line in lines]
    finally:
        db.conn.close()
