"""End to end, a near-duplicate set resolved on the Audit page: the real app in headless Chromium.

The dataset is the demo's 400 rows plus a copy of row 7 with another label, ingested and audited for real
(the checks beyond label errors find the copy and its original as a conflicting set). Lead lea opens the
Audit page's tab "Beyond label errors", sees a line per kind, opens the set, presses "Keep this one, exclude
the rest" on row 7 and sees the set marked resolved; the database then holds the set resolved and both rows
pending decisions (row 7 kept, the copy excluded). Screenshots go to artifacts/.
"""

from __future__ import annotations

import csv
import io
import re

import pytest

from review import audit, auth, datasets, demo, store, trail
from review.findings import summary as fs
from review.text import ingest
from review.text.ingest import Mapping
from tests.e2e.helpers import go, see, shot, shot_on_failure, sign_in, wait_idle

pytestmark = pytest.mark.e2e

PASSWORD = "e2e password 123"
ADMIN, LEA = "ada", "lea"
SOURCE = 7  # the row copied with another label


def dataset_with_a_conflicting_copy(db, lead: auth.User) -> datasets.Dataset:
    rows = list(csv.DictReader(io.StringIO(demo.demo_csv_bytes().decode("utf-8"))))
    src = rows[SOURCE]
    rows.append({**src, "id": "copy-of-7", "label": next(r["label"] for r in rows if r["label"] != src["label"])})
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    ds_id = ingest.ingest_bytes(
        db,
        out.getvalue().encode("utf-8"),
        "dups.csv",
        "dups",
        lead,
        mapping=Mapping(text=["text"], label="label", id="id"),
    )
    audit.run_audit(db, ds_id, lead, progress=lambda f, m: None)
    return datasets.get(db, ds_id)


def test_a_lead_opens_a_conflicting_set_and_resolves_it(app, pages):
    db = store.connect(app.db_path)
    admin = auth.create_user(db, ADMIN, "admin", PASSWORD, None)
    auth.create_user(db, LEA, "lead", PASSWORD, admin)
    ds = dataset_with_a_conflicting_copy(db, auth.User(LEA, "lead"))
    rid = datasets.latest_run(db, ds.id, "audit")["id"]
    copy = store.scalar(db, "SELECT MAX(idx) FROM items WHERE dataset_id=?", [ds.id])
    [the_set] = [d for d in fs.dup_sets(db, rid, limit=100) if SOURCE in d.rows]
    assert the_set.conflicting and copy in the_set.rows
    current: dict = {}
    try:
        with shot_on_failure(app, current, "findings"):
            lea = pages(LEA)
            current.update(page=lea, name="audit")
            sign_in(lea, app.url, LEA, PASSWORD)
            go(lea, "Audit")
            main = lea.locator('[data-testid="stMain"]')
            main.get_by_role("tab", name="Beyond label errors").click()
            see(lea, re.compile(r"^Near duplicates"))
            see(lea, "Near-duplicate sets")
            title = re.compile(rf"^Set {the_set.id}: {the_set.n_rows} rows \(.*\) · conflicting labels$")
            main.get_by_text(title).first.click()
            wait_idle(lea)
            panel = main.locator(f".st-key-dupset_{the_set.id}")
            panel.get_by_text(f"row {SOURCE}", exact=False).first.wait_for()
            panel.get_by_text(f"row {copy}", exact=False).first.wait_for()
            shot(lea, "findings-01-set-opened")
            keep = panel.get_by_role("button", name="Keep this one, exclude the rest")
            assert keep.count() == the_set.n_rows
            keep.first.click()  # the rows are in row order: row 7 first
            wait_idle(lea)
            see(lea, f"Near-duplicate set {the_set.id} resolved: row {SOURCE} kept")
            panel = main.locator(f".st-key-dupset_{the_set.id}")
            panel.get_by_text(re.compile(r"^Resolved")).first.wait_for()
            assert panel.get_by_role("button", name="Keep this one, exclude the rest").count() == 0
            shot(lea, "findings-02-set-resolved")
    finally:
        got = fs.dup_set(db, the_set.id)
        decisions = {
            r["idx"]: (r["decision"], r["status"])
            for r in store.rows(db, "SELECT idx, decision, status FROM reviews WHERE dataset_id=?", [ds.id])
        }
        ok = trail.verify_trail(db)[0]
        db.conn.close()
    assert got.status == "resolved"
    assert decisions == {SOURCE: ("keep", "pending"), copy: ("exclude", "pending")}
    assert ok
