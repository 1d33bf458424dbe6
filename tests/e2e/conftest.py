"""Fixtures of the end-to-end tests: the real app (`streamlit run app.py` on a free port, a fresh
database) and headless Chromium (Debian's package), one browser context per user."""

from __future__ import annotations

import os

import pytest

from tests.e2e.helpers import launch, need_chromium, new_page, start_app, stop_app


@pytest.fixture
def app(tmp_path):
    need_chromium()
    server = start_app(tmp_path)
    yield server
    stop_app(server)
    if server.proc.returncode not in (0, -15, -9, None):
        print(f"streamlit ended with {server.proc.returncode}:\n{server.log_tail()}")


@pytest.fixture
def browser(app):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # the [test] extra brings it
        if os.environ.get("CI"):
            raise
        pytest.skip(f"playwright is not installed: {exc}")
    with sync_playwright() as pw:
        b = launch(pw)
        yield b
        b.close()


@pytest.fixture
def pages(browser, app):
    """Opens one browser context (one user, one websocket session) per call; closes them all at the end."""
    opened = []

    def open_page(who: str, downloads: bool = False):
        ctx, page = new_page(browser, downloads)
        opened.append((who, ctx, page))
        return page

    yield open_page
    for _who, ctx, _page in opened:
        ctx.close()
