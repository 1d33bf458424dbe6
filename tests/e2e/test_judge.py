"""End to end, the judge: the real app in headless Chromium and a local chat-completions server
(tests/llm_server.py). The lead loads the demo, enters the endpoint on the Audit page's Judge
tab (the key in the app's environment belongs to no URL there, so a URL typed on the tab is called
without it), sees the cost, runs the judge on a few rows, and
finds the verdicts and actions in the review queue. Screenshots go to artifacts/."""

from __future__ import annotations

import re

import pytest

from review import auth, datasets, demo, judge, store  # noqa: E402
from tests.e2e.helpers import RUN_TIMEOUT, go, launch, need_chromium, new_page, see, shot, sign_in, start_app, stop_app  # noqa: E402
from tests.llm_server import FakeLLM

pytestmark = pytest.mark.e2e
LEAD, PASSWORD, KEY = "leo", "e2e password 123", "sk-e2e-secret-77"


def test_configure_run_judge_and_see_verdicts_in_the_queue(tmp_path, monkeypatch):
    need_chromium()
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv(judge.ENV_KEY, KEY)
    monkeypatch.delenv(judge.ENV_URL, raising=False)
    monkeypatch.delenv(judge.ENV_MODEL, raising=False)
    truth = demo.demo_truth()
    app = start_app(tmp_path)
    db = store.connect(app.db_path)
    try:
        admin = auth.create_user(db, "ada", "admin", PASSWORD, None)
        auth.create_user(db, LEAD, "lead", PASSWORD, admin)
        key_of_text = {}

        def behave(text, given, labels):  # a judge that knows the demo's injected errors
            key = key_of_text.get(text)
            return f"no:{truth[key]}" if key in truth and truth[key] != given else "yes"

        with FakeLLM(behave) as llm, sync_playwright() as pw:
            browser = launch(pw)
            ctx, page = new_page(browser)
            try:
                sign_in(page, app.url, LEAD, PASSWORD)
                page.get_by_role("button", name="Load the demo dataset").click()
                see(page, "Next steps", timeout=RUN_TIMEOUT)
                ds = datasets.get(db, demo.DEMO_NAME)
                key_of_text.update(
                    {t: k for k, t in db.execute("SELECT key, text FROM items WHERE dataset_id=?", [ds.id])}
                )
                go(page, "Audit")
                page.get_by_role("tab", name="Judge").click()
                see(page, "LLM_BASE_URL")
                main = page.locator('[data-testid="stMain"]')
                main.get_by_role("textbox", name="Base URL").fill(llm.url)
                main.get_by_role("textbox", name="Base URL").press("Enter")
                main.get_by_role("textbox", name="Model").fill("e2e-model")
                main.get_by_role("textbox", name="Model").press("Enter")
                limit = main.get_by_role("spinbutton", name="Rows to judge, most suspect first")
                limit.fill("6")
                limit.press("Enter")
                run = page.get_by_role("button", name="Run the judge on 6 rows (6 calls, 0 cached)")
                run.wait_for()
                assert llm.total_calls == 0
                shot(page, "judge-01-cost")
                run.click()
                see(page, re.compile(r"Judged 6 rows: 6 calls, 0 cached"), timeout=RUN_TIMEOUT)
                page.get_by_role("button", name="Run the judge on 6 rows (0 calls, 6 cached)").wait_for()
                page.locator('[data-testid="stPlotlyChart"]:visible').first.wait_for()
                page.wait_for_timeout(500)
                shot(page, "judge-02-verdicts")
                assert llm.total_calls == 6 and set(llm.auth_headers) == {""}  # the key stays home

                go(page, "Review")
                page.get_by_text("Relabel", exact=True).first.click()
                see(page, re.compile(r"^judge: \w+"))
                see(page, "recommended: relabel")
                shot(page, "judge-03-queue")
            finally:
                ctx.close()
                browser.close()
        assert KEY not in "\n".join(db.conn.iterdump())
        assert KEY not in app.log_path.read_text(errors="replace")
    except Exception:
        print(f"\n--- streamlit log ---\n{app.log_tail(80)}")
        raise
    finally:
        db.conn.close()
        stop_app(app)
