"""End to end, in Chromium: a sign-in survives F5, a new tab, a typed URL; the Review queue keeps a
skip across the reload; signing out in one tab signs the other out at its next action.

The session lives in a cookie holding a random token (review.auth: the database keeps its SHA-256
only); no password and no token in the URL. Screenshots go to artifacts/.
"""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path

import pytest

from review import auth, demo, store
from tests.e2e.helpers import (
    go,
    launch,
    need_chromium,
    new_page,
    open_app,
    see,
    shot,
    sign_in,
    start_app,
    stop_app,
    wait_idle,
)

pytestmark = pytest.mark.e2e
PASSWORD = "e2e password 123"


def _shot(page, name: str) -> Path:
    page.bring_to_front()  # this test keeps several tabs: the one shot comes first
    page.wait_for_timeout(800)  # lazily loaded widgets draw a placeholder first
    return shot(page, f"sessions-{name}")


def _row_shown(page) -> int:
    """The upload row the Review page shows (its heading: '… · row N of the upload · rank R')."""
    head = see(page, re.compile(r" · row \d+ of the upload"))
    return int(re.search(r"row (\d+) of the upload", head.inner_text()).group(1))


def _signed_in(page, name: str) -> None:
    page.locator('[data-testid="stSidebar"]').get_by_text(f"Signed in as {name}").wait_for()


def _signed_out(page) -> None:
    page.locator('[data-testid="stForm"]').get_by_role("button", name="Sign in").wait_for()
    assert page.locator('[data-testid="stSidebar"]').get_by_text("Signed in as").count() == 0


def _session_cookie(ctx) -> dict | None:
    found = [c for c in ctx.cookies() if c["name"].startswith("review_session_")]
    assert len(found) <= 1, found
    return found[0] if found else None


def test_reload_new_tab_typed_url_and_sign_out_everywhere(tmp_path):
    need_chromium()
    from playwright.sync_api import sync_playwright

    app = start_app(tmp_path)
    db = store.connect(app.db_path)
    try:
        admin = auth.create_user(db, "ada", "admin", PASSWORD, None)
        demo.load_demo(db, auth.create_user(db, "leo", "lead", PASSWORD, admin))
        auth.create_user(db, "ann", "annotator", PASSWORD, admin)
        ds_id = store.scalar(db, "SELECT id FROM datasets WHERE name=?", [demo.DEMO_NAME])
        with sync_playwright() as pw:
            browser = launch(pw)
            ctx, tab1 = new_page(browser)
            try:
                # ------------------------------------------------ sign in: the cookie holds a token, not a secret
                sign_in(tab1, app.url, "ann", PASSWORD)
                deadline = time.monotonic() + 10
                while _session_cookie(ctx) is None:
                    assert time.monotonic() < deadline, "the page did not set the session cookie"
                    tab1.wait_for_timeout(100)
                cookie = _session_cookie(ctx)
                token = cookie["value"]
                assert auth.TOKEN_RE.match(token) and PASSWORD.replace(" ", "") not in token
                assert cookie["sameSite"] == "Strict" and cookie["path"] == "/" and not cookie["httpOnly"]
                expires_at = store.scalar(
                    db,
                    "SELECT expires_at FROM sessions WHERE token_hash=?",
                    [hashlib.sha256(token.encode()).hexdigest()],
                )
                assert expires_at is not None and abs(cookie["expires"] - expires_at) < 2
                assert abs(expires_at - time.time() - auth.SESSION_LIFETIME) < 120
                assert store.scalar(db, "SELECT COUNT(*) FROM sessions WHERE token_hash=?", [token]) == 0
                _shot(tab1, "signed-in")

                # ------------------------------------------------ Review: skip a row
                go(tab1, "Review")
                see(tab1, "Decide")
                skipped = _row_shown(tab1)
                tab1.locator('[data-testid="stMain"]').get_by_role("button", name="Skip").click()
                wait_idle(tab1)
                deadline = time.monotonic() + 10
                while _row_shown(tab1) == skipped:
                    assert time.monotonic() < deadline, "Skip did not move on"
                    tab1.wait_for_timeout(100)
                next_row = _row_shown(tab1)
                assert auth.load_queue_state(db, auth.User("ann", "annotator"), ds_id)["skipped"] == [skipped]

                # ------------------------------------------------ F5: same page, still signed in, the skip kept
                tab1.reload()
                tab1.wait_for_selector('[data-testid="stApp"]')
                wait_idle(tab1)
                _signed_in(tab1, "ann")
                assert re.search(r"/Review/?(\?dataset=[^&]+)?$", tab1.url), (
                    tab1.url
                )  # the URL names the dataset, never a secret
                see(tab1, "Decide")
                assert _row_shown(tab1) == next_row != skipped
                assert tab1.locator('[data-testid="stForm"]').count() == 0
                _shot(tab1, "after-F5-review")
                assert token not in tab1.url and "password" not in tab1.url.lower()

                # ------------------------------------------------ a new tab of the same browser, a typed URL
                tab2 = ctx.new_page()
                open_app(tab2, app.url)
                _signed_in(tab2, "ann")
                see(tab2, "Datasets")
                tab3 = ctx.new_page()
                tab3.goto(f"{app.url}/Review")
                tab3.wait_for_selector('[data-testid="stApp"]')
                wait_idle(tab3)
                _signed_in(tab3, "ann")
                see(tab3, "Decide")
                assert _row_shown(tab3) != skipped
                _shot(tab3, "typed-url-review")
                assert store.scalar(db, "SELECT COUNT(*) FROM sessions") == 1  # one sign-in, one session

                # ------------------------------------------------ sign out in tab 1: tab 2 is out at its next action
                tab1.locator('[data-testid="stSidebar"]').get_by_role("button", name="Sign out").click()
                wait_idle(tab1)
                _signed_out(tab1)
                see(tab1, "You are signed out.")
                deadline = time.monotonic() + 10
                while _session_cookie(ctx) is not None:
                    assert time.monotonic() < deadline, "sign-out left the session cookie in the browser"
                    tab1.wait_for_timeout(100)
                assert store.scalar(db, "SELECT revoked_reason FROM sessions") == "sign_out"
                tab2.locator('[data-testid="stSidebar"]').get_by_role("link", name="Review", exact=True).click()
                wait_idle(tab2)
                _signed_out(tab2)
                see(tab2, "You signed out")
                _shot(tab2, "other-tab-signed-out")
                tab3.reload()  # and a reload anywhere stays signed out
                tab3.wait_for_selector('[data-testid="stApp"]')
                wait_idle(tab3)
                _signed_out(tab3)
                for p in (tab1, tab2, tab3):
                    assert p.locator('[data-testid="stException"]').count() == 0

                # ------------------------------------------------ a new sign-in is a new session; the skip is still kept
                sign_in(tab3, app.url, "ann", PASSWORD)
                go(tab3, "Review")
                see(tab3, "Decide")
                assert _row_shown(tab3) != skipped
                assert store.scalar(db, "SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL") == 1
            finally:
                ctx.close()
                browser.close()
    except Exception:
        print(f"\n--- streamlit log ---\n{app.log_tail(60)}")
        raise
    finally:
        db.conn.close()
        stop_app(app)
