"""End to end, in Chromium: a lead deactivated while the Export page (or the Verify page) is open gets
no file and changes nothing. The download buttons build their file on click, in a thread of their
own: that build checks the session and the account again (review.ui.shell.download_connection, then
review.auth.require_active in the export functions). Screenshots go to artifacts/."""

from __future__ import annotations

import pytest

from review import auth, datasets, demo, store, workflow
from tests.e2e.helpers import go, launch, need_chromium, new_page, see, shot, sign_in, start_app, stop_app, wait_idle

pytestmark = pytest.mark.e2e
PASSWORD = "e2e password 123"


def _exports(db, who: str) -> int:
    return store.scalar(db, "SELECT COUNT(*) FROM audit_log WHERE actor=? AND action LIKE 'export%'", [who])


def _no_download(page, button: str) -> None:
    """Click ``button`` and wait: no file may arrive."""
    got = []
    page.on("download", lambda d: got.append(d))
    page.get_by_role("button", name=button).click()
    page.wait_for_timeout(4000)
    page.get_by_text("Failed to generate file for download").first.wait_for()  # Streamlit's words, beside it
    assert got == [], f"{button!r} still downloaded {[d.suggested_filename for d in got]}"


def test_a_deactivated_lead_downloads_nothing_and_verifies_nothing(tmp_path):
    need_chromium()
    from playwright.sync_api import sync_playwright

    app = start_app(tmp_path)
    db = store.connect(app.db_path)
    try:
        admin = auth.create_user(db, "ada", "admin", PASSWORD, None)
        leo = auth.create_user(db, "leo", "lead", PASSWORD, admin)
        ann = auth.create_user(db, "ann", "annotator", PASSWORD, admin)
        ds = datasets.get(db, demo.load_demo(db, leo))
        s = workflow.claim_next(db, ds, ann)
        workflow.decide(
            db, ds, s.idx, ann, "relabel", s.version, new_label=next(l for l in ds.labels if l != s.given_label)
        )
        with sync_playwright() as pw:
            browser = launch(pw)
            try:
                ctx, page = new_page(browser, downloads=True)
                sign_in(page, app.url, "leo", PASSWORD)
                go(page, "Export")
                with page.expect_download() as dl:  # while active, the download works
                    page.get_by_role("button", name="Download cleaned labels (CSV)").click()
                assert dl.value.suggested_filename == f"{demo.DEMO_NAME}-cleaned.csv"
                wait_idle(page)
                exported = _exports(db, "leo")
                assert exported == 2  # the export and the version it recorded (export, export_version)

                auth.set_active(db, "leo", False, admin)  # the admin, elsewhere; leo's page stays open
                _no_download(page, "Download cleaned labels (CSV)")
                _no_download(page, "Download the audit trail (CSV)")
                shot(page, "deactivated-01-export-refused")
                assert _exports(db, "leo") == exported  # nothing logged as an export by leo

                auth.set_active(db, "leo", True, admin)
                sign_in(page, app.url, "leo", PASSWORD)
                go(page, "Verify")
                approve = page.get_by_role("button", name="Approve")
                approve.wait_for()
                assert approve.count() == 1
                auth.set_active(db, "leo", False, admin)
                approve.click()
                wait_idle(page)
                see(page, "deactivated")
                shot(page, "deactivated-02-verify-refused")
                assert workflow.awaiting_verification(db, ds) == 1
                assert store.scalar(db, "SELECT COUNT(*) FROM audit_log WHERE actor='leo' AND action='verify'") == 0
                ctx.close()
            finally:
                browser.close()
    finally:
        db.conn.close()
        stop_app(app)
