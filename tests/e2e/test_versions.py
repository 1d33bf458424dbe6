"""End to end, versions: the real app in headless Chromium.

Lead lea downloads the cleaned labels of the demo dataset, a correction is approved (ann relabels a row,
lea approves it), lea downloads them again: two versions. After a reload, the manifest download holds
the second version's hash; the Compare page says "1 label changed" and names the row. Screenshots go to artifacts/.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from review import auth, datasets, demo, store, workflow
from tests.e2e.helpers import RUN_TIMEOUT, go, see, shot, shot_on_failure, sign_in, wait_idle

pytestmark = pytest.mark.e2e

PASSWORD = "e2e password 123"


def download(page, name: str, path):
    with page.expect_download(timeout=RUN_TIMEOUT) as dl:
        page.get_by_role("button", name=name, exact=True).click()
    dl.value.save_as(path)
    return path.read_bytes()


def test_export_twice_then_compare(app, pages, tmp_path):
    db = store.connect(app.db_path)
    admin = auth.create_user(db, "ada", "admin", PASSWORD, None)
    lea = auth.create_user(db, "lea", "lead", PASSWORD, admin)
    ann = auth.create_user(db, "ann", "annotator", PASSWORD, admin)
    ds = datasets.get(db, demo.load_demo(db, lea))
    page = pages("lea", downloads=True)
    current = {"page": page, "name": "export"}
    try:
        with shot_on_failure(app, current, "versions"):
            sign_in(page, app.url, "lea", PASSWORD)
            go(page, "Export")
            first = download(page, "Download cleaned labels (CSV)", tmp_path / "v1.csv")

            s = workflow.claim_next(db, ds, ann)  # the correction between the two exports
            new = next(lab for lab in ds.labels if lab != s.current_label)
            rid = workflow.decide(db, ds, s.idx, ann, "relabel", s.version, new_label=new)
            version = store.scalar(db, "SELECT version FROM states WHERE dataset_id=? AND idx=?", [ds.id, s.idx])
            workflow.verify(db, rid, lea, "approve", version)

            second = download(page, "Download cleaned labels (CSV)", tmp_path / "v2.csv")
            assert first != second

            page.reload()  # the versions as they are now
            wait_idle(page)
            see(page, "Versions")
            manifest = json.loads(download(page, "Download the manifest of version 2 (JSON)", tmp_path / "v2.json"))
            assert manifest["version"] == 2 and manifest["sha256"] == hashlib.sha256(second).hexdigest()
            assert manifest["approvals"]["leads"]["lea"]["approved"] == 1
            shot(page, "versions-export")
            current["name"] = "compare"
            page.locator('[data-testid="stMain"]').get_by_role("link", name="Compare two versions").click()
            page.wait_for_url("**/Compare*")
            wait_idle(page)
            see(page, "1 label changed")
            key = store.scalar(db, "SELECT key FROM items WHERE dataset_id=? AND idx=?", [ds.id, s.idx])
            see(page, "Rows changed")
            assert page.locator('[data-testid="stDataFrame"]').count() == 3
            shot(page, "versions-compare")
            print(f"\nrow {key}: {s.current_label} -> {new}; versions 1 and 2 compared")
    finally:
        db.conn.close()
