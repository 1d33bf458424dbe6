"""Several reviewers at once in the browser: four annotators, each in their own Chromium context,
press Keep at the same moment, round after round. Every click is one decision on a distinct
suspect: none lost, none duplicated, no error on any page."""

from __future__ import annotations

import re
import time

import pytest

from review import auth, datasets, demo, store, trail
from tests.e2e.helpers import launch, need_chromium, new_page, see, sign_in, start_app, stop_app, wait_idle

pytestmark = pytest.mark.e2e
PASSWORD = "e2e password 123"
N, ROUNDS = 4, 5


def test_four_reviewers_clicking_at_once(tmp_path):
    need_chromium()
    from playwright.sync_api import sync_playwright

    app = start_app(tmp_path)
    db = store.connect(app.db_path)
    try:
        admin = auth.create_user(db, "ada", "admin", PASSWORD, None)
        lead = auth.create_user(db, "leo", "lead", PASSWORD, admin)
        demo.load_demo(db, lead)
        names = [f"rev{k}" for k in range(N)]
        for n in names:
            auth.create_user(db, n, "annotator", PASSWORD, admin)
        with sync_playwright() as pw:
            browser = launch(pw)
            pages = []
            try:
                for n in names:
                    ctx, page = new_page(browser)
                    pages.append((ctx, page))
                    sign_in(page, app.url, n, PASSWORD)
                    page.locator('[data-testid="stSidebar"]').get_by_role("link", name="Review", exact=True).click()
                    see(page, "Decide")
                    wait_idle(page)
                for r in range(ROUNDS):
                    keeps = [
                        p.locator('[data-testid="stMain"]').get_by_role("button", name=re.compile(r"^Keep"))
                        for _, p in pages
                    ]
                    for k in keeps:  # all four clicks go out before any answer comes back
                        k.dispatch_event("click")
                    for n, (_, p) in zip(names, pages):
                        # the click is done when its decision is stored and the page has drawn the next suspect
                        deadline = time.monotonic() + 30
                        while store.scalar(db, "SELECT COUNT(*) FROM reviews WHERE reviewer=?", [n]) < r + 1:
                            assert time.monotonic() < deadline, f"{n}'s click of round {r + 1} was not stored"
                            time.sleep(0.05)
                        see(p, re.compile(r"^Row \S+: kept\.$"))
                        wait_idle(p)
                for _, p in pages:
                    assert p.locator('[data-testid="stException"]').count() == 0
                    assert p.get_by_text(re.compile("locked|Traceback")).count() == 0
            finally:
                for ctx, _ in pages:
                    ctx.close()
                browser.close()
        ds = datasets.get(db, demo.DEMO_NAME)
        rows = db.execute("SELECT reviewer, idx FROM reviews WHERE dataset_id=?", [ds.id]).fetchall()
        assert len(rows) == N * ROUNDS
        assert len({idx for _, idx in rows}) == N * ROUNDS  # distinct suspects: nothing decided twice
        assert sorted({r for r, _ in rows}) == names and all(sum(1 for r, _ in rows if r == n) == ROUNDS for n in names)
        ok, _, msg = trail.verify_trail(db)
        assert ok, msg
    except Exception:
        print(f"\n--- streamlit log ---\n{app.log_tail(60)}")
        raise
    finally:
        db.conn.close()
        stop_app(app)
