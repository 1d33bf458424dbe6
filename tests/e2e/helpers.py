"""Helpers for the end-to-end test: start the real streamlit app, drive it in headless Chromium.

Only tests/e2e/test_loop.py imports this module; it holds no test itself.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import ROOT

ARTIFACTS = ROOT / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1440, "height": 1000}

STARTUP_TIMEOUT = 60  # seconds until /_stcore/health answers ok
RUN_TIMEOUT = 60_000  # ms: a script run (the audit is the slowest)
UI_TIMEOUT = 30_000  # ms: an element to appear


# ---------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class App:
    url: str
    db_path: Path
    log_path: Path
    proc: subprocess.Popen

    def log_tail(self, n: int = 60) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no server log)"
        return "\n".join(lines[-n:])


def start_app(tmp_path: Path) -> App:
    """`streamlit run app.py` on a free port with REVIEW_DB in tmp_path; returns once healthy."""
    port = free_port()
    db_path = tmp_path / "app.db"
    log_path = tmp_path / "streamlit.log"
    env = {**os.environ, "REVIEW_DB": str(db_path)}
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "app.py",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )
    log.close()
    app = App(f"http://127.0.0.1:{port}", db_path, log_path, proc)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {proc.returncode} before answering:\n{app.log_tail()}")
        try:
            with urllib.request.urlopen(f"{app.url}/_stcore/health", timeout=2) as r:
                if r.status == 200 and r.read().strip() == b"ok":
                    return app
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        if time.monotonic() > deadline:
            stop_app(app)
            raise RuntimeError(
                f"streamlit did not answer {app.url}/_stcore/health within {STARTUP_TIMEOUT} s:\n{app.log_tail()}"
            )
        time.sleep(0.3)


def stop_app(app: App) -> None:
    """Stop the server we started (its own process group), politely then firmly."""
    if app.proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(app.proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            app.proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


# ---------------------------------------------------------------- the browser


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


def new_page(browser, downloads: bool = False):
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=downloads)
    context.set_default_timeout(UI_TIMEOUT)
    return context, context.new_page()


SETTLE = 250  # ms: a click's script run is reported running only after a round trip to the server


def wait_idle(page, timeout: int = RUN_TIMEOUT) -> None:
    """Wait until the app is connected and no script run is going on. It first lets SETTLE ms pass: right
    after a click the page still says "notRunning" until the server reports the run the click started, and
    acting in that gap met a run that then closed a list, took the focus or left a stale button (three CI
    failures)."""
    page.wait_for_timeout(SETTLE)
    page.wait_for_selector('[data-testid="stApp"][data-test-connection-state="CONNECTED"]', timeout=timeout)
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=timeout)
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="hidden", timeout=timeout)


def see(page, text: str | re.Pattern, timeout: int = UI_TIMEOUT):
    """The first visible element of the main area whose text contains ``text``; waits for it."""
    loc = page.locator('[data-testid="stMain"]').get_by_text(text).first
    loc.wait_for(state="visible", timeout=timeout)
    return loc


def press_shortcut(page, key: str) -> None:
    """Press a keyboard shortcut as a user would, with the focus on the page, not in a text field."""
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    page.keyboard.press(key)


def open_app(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector('[data-testid="stApp"]')
    wait_idle(page)


def go(page, name: str) -> None:
    """Follow the sidebar link to a page (keeps the websocket session, hence the sign-in).

    Works with Streamlit's own page list (stSidebarNav) and with st.page_link entries in the sidebar.
    """
    link = page.locator(f'[data-testid="stSidebar"] a:is([href="{name}"], [href$="/{name}"])').first
    link.click()
    page.wait_for_url(re.compile(rf"/{name}/?(\?.*)?$"))
    wait_idle(page)


def sign_in(page, url: str, name: str, password: str) -> None:
    open_app(page, url)
    form = page.locator('[data-testid="stForm"]')
    see(page, "Sign in")
    form.get_by_role("textbox", name="User name", exact=True).fill(name)
    form.get_by_role("textbox", name="Password", exact=True).fill(password)
    form.get_by_role("button", name="Sign in").click()
    page.locator('[data-testid="stSidebar"]').get_by_text(f"Signed in as {name}").wait_for()
    wait_idle(page)


def _open_and_pick(page, act) -> None:
    """Run ``act`` (open a select box, pick in it) once the page is idle. A rerun still drawing the page can
    close the list just opened; then, as a user would, close it and try again (four tries in all)."""
    for attempt in range(4):
        wait_idle(page)
        try:
            act()
            return
        except Exception:
            if attempt == 3:
                raise
            page.keyboard.press("Escape")
            page.wait_for_timeout(300)


def choose(page, container, label: str, option: str) -> None:
    """Pick ``option`` in the st.selectbox labelled ``label`` inside ``container`` (a combobox)."""

    def act():
        combo = container.get_by_role("combobox", name=label)
        combo.click()
        page.get_by_role("option", name=option, exact=True).click(timeout=5000)
        page.wait_for_function("([el, v]) => el.value === v", arg=[combo.element_handle(), option])

    _open_and_pick(page, act)


def pick_option(page, label: str, option, typed: str) -> None:
    """Choose an option (a name or a pattern) of the st.selectbox labelled ``label`` in the main
    area as a user does with a long list: open it, type to filter, click. The filter text is filled into
    the box itself, not typed on the page's keyboard: keys typed while a rerun has taken the focus away
    would reach the page's shortcuts (S skips the sentence: CI saw it)."""

    def act():
        combo = page.locator('[data-testid="stMain"]').get_by_role("combobox", name=label)
        combo.click()
        combo.fill(typed)
        page.get_by_role("option", name=option).first.click(timeout=5000)
        wait_idle(page)  # the pick reruns the script; the next widget may be new

    _open_and_pick(page, act)


def shot(page, name: str) -> Path:
    """A screenshot of the whole app into artifacts/; prints and returns its path.

    Streamlit scrolls inside its main block, not the document, so full_page alone would cut the
    page at the viewport: the viewport is stretched to the content for the shot, then restored.
    """
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"e2e-{name}.png"
    size = page.viewport_size or VIEWPORT
    height = page.evaluate("""() => Math.max(document.documentElement.scrollHeight,
        ...[...document.querySelectorAll('[data-testid="stMain"], [data-testid="stAppScrollToBottomContainer"]')]
            .map(e => e.scrollHeight))""")
    page.mouse.move(size["width"] - 5, 5)  # no hover tooltip or heading anchor in the picture
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], min(int(height), 8000))})
    try:
        page.wait_for_timeout(300)  # let charts and tables re-layout
        page.screenshot(path=str(path), full_page=True)
    finally:
        page.set_viewport_size(size)
    print(f"screenshot: {path}")
    return path


@contextmanager
def shot_on_failure(app: App, current: dict, prefix: str):
    """Around a browser test whose steps record the page in use in current['page'] (and a name in
    current['name']): on failure, a screenshot of that page and the server log, then the error."""
    try:
        yield
    except Exception:
        page = current.get("page")
        if page is not None and not page.is_closed():
            try:
                shot(page, f"{prefix}-FAILED-{current.get('name', 'page')}")
            except Exception as exc:  # the screenshot must not hide the real failure
                print(f"(no failure screenshot: {exc})")
        print(f"\n--- streamlit log ---\n{app.log_tail(80)}")
        raise


def need_chromium() -> None:
    if not Path(CHROMIUM).exists():
        msg = f"{CHROMIUM} is missing: install the Debian package chromium (apt-get install chromium)."
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
