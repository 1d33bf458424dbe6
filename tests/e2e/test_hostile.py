"""Content is data: datasets whose texts, labels, tokens, annotator names and dataset names hold
HTML and script (<script>, <img onerror>, javascript: links) are drawn on every page, in every
tab, in headless Chromium. The test fails on any dialog, on any payload that runs (each sets
window.__pwned), and on any payload element that reaches the page's DOM as markup."""

from __future__ import annotations

import re

import pytest

from review import audit, auth, store, workflow
from review.ner import store as ner_store  # noqa: E402
from review.text import ingest
from tests.e2e.helpers import (
    choose,
    launch,
    need_chromium,
    new_page,
    see,
    shot,
    sign_in,
    start_app,
    stop_app,
    wait_idle,
)  # noqa: E402

pytestmark = pytest.mark.e2e
PASSWORD = "e2e password 123"
PAYLOADS = [
    "<script>window.__pwned=1;alert(1)</script>",
    '<img src=x onerror="window.__pwned=1;alert(2)">',
    '<a href="javascript:window.__pwned=1;alert(3)">click</a>',
    "[click](javascript:alert(4))",
    "<svg/onload=window.__pwned=1>",
    '=HYPERLINK("http://evil")',
]
TOKENS = ["<img/src=x/onerror=window.__pwned=1>", "<script>alert(5)</script>", "javascript:alert(6)"]
PAGES = ["Home", "Upload", "Audit", "Review", "Verify", "Export", "Audit trail", "Annotators", "Users"]


def build(db) -> list[str]:
    """Three hostile datasets (text, several annotators, NER), audited, with a pending decision each."""
    admin = auth.create_user(db, "ada", "admin", PASSWORD, None)
    lead = auth.create_user(db, "leo", "lead", PASSWORD, admin)
    ann = auth.create_user(db, "ann", "annotator", PASSWORD, admin)
    names = ["<b>bold</b><script>alert(7)</script>", "crowd <img src=x onerror=alert(8)>", "ner <svg/onload=alert(9)>"]
    rows = []
    for i in range(60):
        p = PAYLOADS[i % len(PAYLOADS)]
        label = ["<i>good</i>", "bad <img src=x onerror=alert(10)>"][i % 2]
        rows.append(
            {
                "id": f"<u>{i}</u>",
                "text": f"{p} item {i} {'lovely great' if i % 2 == 0 else 'awful broken'}",
                "label": label if i % 11 else ["<i>good</i>", "bad <img src=x onerror=alert(10)>"][(i + 1) % 2],
                "note": p,
            }
        )
    import pandas as pd

    df = pd.DataFrame(rows)
    prep = ingest.prepare(df, ingest.Mapping(text=["text"], label="label", id="id"), "<script>f</script>.csv", None)
    ds1 = ingest.write_dataset(db, prep, names[0], lead)
    audit.run_audit(db, ds1, lead)
    long = [
        {
            "item_id": f"i{i}",
            "text": f"{PAYLOADS[i % 6]} crowd item {i} {'nice' if i % 2 else 'nasty'}",
            "annotator": f"<img src=x onerror=alert({k})>w{k}",
            "label": ["yes<script>", "no<b>"][(i + (k == 2 and i % 5 == 0)) % 2],
        }
        for i in range(40)
        for k in range(3)
    ]
    df = pd.DataFrame(long)
    prep = ingest.prepare(
        df, ingest.Mapping(text=["text"], label="label", id="item_id", annotator="annotator"), "crowd.csv", None
    )
    ds2 = ingest.write_dataset(db, prep, names[1], lead)
    audit.run_audit(db, ds2, lead)
    conll = "".join(
        f"{TOKENS[i % 3]} B-PER\nsays O\nhi O\n\nBob {'B-ORG' if i % 5 == 0 else 'B-PER'}\nwaves O\n\n"
        f"Acme {'B-PER' if i % 7 == 0 else 'B-ORG'}\nsells O\n\n"
        for i in range(30)
    )
    data = conll.encode()
    ds3 = ner_store.write_ner_dataset(db, ner_store.read_corpus(data, "x.conll"), data, names[2], lead)
    audit.run_audit(db, ds3, lead)
    from review.datasets import get

    for ds_id in (ds1, ds2, ds3):
        ds = get(db, ds_id)
        s = workflow.claim_next(db, ds, ann)
        if s is not None:
            workflow.decide(db, ds, s.idx, ann, "unsure", s.version, note='<script>alert("note")</script>')
    return names


def test_every_page_shows_hostile_content_as_text(tmp_path):
    need_chromium()
    from playwright.sync_api import sync_playwright

    app = start_app(tmp_path)
    db = store.connect(app.db_path)
    dialogs: list[str] = []
    visited = 0
    try:
        names = build(db)
        with sync_playwright() as pw:
            browser = launch(pw)
            ctx, page = new_page(browser)
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            try:
                sign_in(page, app.url, "ada", PASSWORD)
                for name in names:
                    for target in PAGES:
                        page.locator('[data-testid="stSidebar"]').get_by_role("link", name=target, exact=True).click()
                        page.wait_for_timeout(200)
                        wait_idle(page)
                        picker = page.locator('[data-testid="stMain"]').get_by_role("combobox", name="Dataset")
                        if picker.count() and picker.input_value() != name:
                            choose(page, page.locator('[data-testid="stMain"]'), "Dataset", name)
                            wait_idle(page)
                        for tab in page.get_by_role("tab").all():
                            tab.click()
                            page.wait_for_timeout(150)
                        wait_idle(page)
                        page.wait_for_timeout(300)
                        visited += 1
                        pwned = page.evaluate("() => window.__pwned === 1")
                        live = page.evaluate("""() => [...document.querySelectorAll('[data-testid="stMain"] script, '
                            + '[data-testid="stMain"] img[onerror], [data-testid="stMain"] svg[onload], '
                            + '[data-testid="stMain"] a[href^="javascript:"]')].length""")
                        assert not dialogs and not pwned and live == 0, (name, target, dialogs, pwned, live)
                        if target == "Review" and name == names[0]:
                            see(
                                page, re.compile(r"^<script>window.__pwned=1;alert\(1\)</script> item")
                            )  # shown, as text
                        if target in ("Review", "Verify"):
                            shot(page, f"hostile-{names.index(name)}-{target.lower()}")
            finally:
                ctx.close()
                browser.close()
    except Exception:
        print(f"\n--- streamlit log ---\n{app.log_tail(60)}")
        raise
    finally:
        db.conn.close()
        stop_app(app)
    assert visited == len(PAGES) * 3 and dialogs == []
    # nobody's password is in the server's log or, in clear, in the database
    assert PASSWORD not in app.log_path.read_text(errors="replace")
    raw = store.connect(app.db_path)
    try:
        assert PASSWORD not in "\n".join(raw.conn.iterdump())
    finally:
        raw.conn.close()
