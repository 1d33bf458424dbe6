"""End to end, where the judge's key goes: the real app in headless Chromium, started with
LLM_BASE_URL / LLM_API_KEY / LLM_MODEL naming one local chat-completions server (the configured
one). The lead types another server's URL on the Judge tab: before the run the tab says that URL
runs WITHOUT the key; the run reaches the typed server with no Authorization header and the
configured one not at all. Cleared again, the field gives the configured server back, with the
key. Screenshots go to artifacts/."""

from __future__ import annotations

import re

import pytest

from review import auth, judge, store  # noqa: E402
from tests.e2e.helpers import (
    RUN_TIMEOUT,
    go,
    launch,
    need_chromium,  # noqa: E402
    new_page,
    see,
    shot,
    shot_on_failure,
    sign_in,
    start_app,
    stop_app,
    wait_idle,
)
from tests.llm_server import FakeLLM

pytestmark = pytest.mark.e2e
LEAD, PASSWORD, KEY = "leo", "e2e password 123", "sk-e2e-configured-SECRET-31"
WITHOUT = re.compile("The judge runs WITHOUT the key")  # the warning (case-sensitive: not the setup help's words)


def test_a_typed_url_runs_without_the_key_and_says_so(tmp_path, monkeypatch):
    need_chromium()
    from playwright.sync_api import sync_playwright

    with FakeLLM(lambda text, given, labels: "yes") as configured, FakeLLM(lambda text, given, labels: "yes") as typed:
        monkeypatch.setenv(judge.ENV_URL, configured.url)
        monkeypatch.setenv(judge.ENV_KEY, KEY)
        monkeypatch.setenv(judge.ENV_MODEL, "e2e-model")
        app = start_app(tmp_path)
        db = store.connect(app.db_path)
        current: dict = {}
        try:
            admin = auth.create_user(db, "ada", "admin", PASSWORD, None)
            auth.create_user(db, LEAD, "lead", PASSWORD, admin)
            with sync_playwright() as pw:
                browser = launch(pw)
                ctx, page = new_page(browser)
                current["page"] = page
                main = page.locator('[data-testid="stMain"]')

                def endpoint_field():
                    """The Base URL field, its expander opened (closed while the configured endpoint is in use)."""
                    url = main.get_by_role("textbox", name="Base URL")
                    if not url.is_visible():
                        main.locator('[data-testid="stExpander"] summary').filter(has_text="Endpoint").first.click()
                        url.wait_for(state="visible")
                    return url

                def set_limit(n: int) -> None:
                    """Type n rows and wait until the Run button counts them: a rerun started by the
                    field before may begin after wait_idle returned and put the old value back."""
                    run = page.get_by_role("button", name=re.compile(rf"^Run the judge on {n} rows"))
                    for _ in range(5):
                        limit = main.get_by_role("spinbutton", name="Rows to judge, most suspect first")
                        limit.fill(str(n))
                        limit.press("Enter")
                        wait_idle(page)
                        try:
                            run.wait_for(timeout=5000)
                            return
                        except Exception:
                            pass
                    run.wait_for()

                try:
                    with shot_on_failure(app, current, "judge-key"):
                        sign_in(page, app.url, LEAD, PASSWORD)
                        page.get_by_role("button", name="Load the demo dataset").click()
                        see(page, "Next steps", timeout=RUN_TIMEOUT)
                        go(page, "Audit")
                        page.get_by_role("tab", name="Judge").click()
                        current["name"] = "configured"
                        endpoint_field()
                        see(page, re.compile(r"sent to http://127\.0\.0\.1:\d+/v1 only"))  # configured: with the key
                        assert main.get_by_text(WITHOUT).count() == 0

                        current["name"] = "typed"
                        url = endpoint_field()
                        url.fill(typed.url)
                        url.press("Enter")
                        wait_idle(page)
                        set_limit(3)
                        warning = see(page, WITHOUT)
                        text = warning.inner_text()
                        assert typed.url in text and configured.url in text, text
                        run = page.get_by_role("button", name="Run the judge on 3 rows (3 calls, 0 cached)")
                        run.wait_for()
                        assert typed.total_calls == 0 and configured.total_calls == 0
                        shot(page, "judge-key-01-typed-url-without-key")
                        run.click()
                        see(page, re.compile(r"Judged 3 rows: 3 calls, 0 cached"), timeout=RUN_TIMEOUT)
                        see(page, WITHOUT)
                        assert typed.total_calls == 3 and typed.auth_headers == ["", "", ""]
                        assert configured.total_calls == 0
                        shot(page, "judge-key-02-after-run")

                        current["name"] = "cleared"
                        url = endpoint_field()
                        url.fill("")
                        url.press("Enter")
                        main.get_by_text(WITHOUT).first.wait_for(state="detached")  # the rerun for the cleared field
                        wait_idle(page)
                        set_limit(5)
                        assert main.get_by_text(WITHOUT).count() == 0
                        page.get_by_role("button", name="Run the judge on 5 rows (2 calls, 3 cached)").click()
                        see(page, re.compile(r"Judged 5 rows: 2 calls, 3 cached"), timeout=RUN_TIMEOUT)
                        assert configured.auth_headers == [f"Bearer {KEY}"] * 2 and typed.total_calls == 3
                        shot(page, "judge-key-03-configured-with-key")
                finally:
                    ctx.close()
                    browser.close()
            dump = "\n".join(db.conn.iterdump())
            assert KEY not in dump
            assert KEY not in app.log_path.read_text(errors="replace")
            trail = [r[0] for r in db.execute("SELECT payload FROM audit_log WHERE action='judge_run' ORDER BY id")]
            assert (
                len(trail) == 2
                and '"key_sent":false' in trail[0].replace(" ", "")
                and '"key_sent":true' in trail[1].replace(" ", "")
            )
        finally:
            db.conn.close()
            stop_app(app)
