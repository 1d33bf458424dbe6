"""End to end, a near-duplicate set resolved on the Audit page: the real app in headless Chromium.

The dataset is the demo's 400 rows plus a copy of row 7 with another label, ingested and audited for real
(the checks beyond label errors find the copy and its original as a conflicting set). Lead lea opens the
Audit page's tab "Beyond label errors", sees a line per kind, opens the set, presses "Keep this one, exclude
the rest" on row 7 and sees the set marked resolved; the database then holds the set resolved and both rows
pending decisions (row 7 kept, the copy excluded).

Leakage across two uploads: a second dataset, "heldout", holds edited copies of LEAKED demo rows beside other
texts. The lead picks it under "Leakage against another upload", runs the check and sees the pairs; the Review
page's Leakage filter shows a leaked row whose card says where its copy is; back on the Audit page the lead
excludes the leaked rows from training; the database then holds one pending exclude per leaked row.
Screenshots go to artifacts/.
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
LEAKED = (11, 40, 101, 222)  # demo rows copied, edited, into the held-out upload


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


def heldout_with_copies(db, lead: auth.User) -> datasets.Dataset:
    """A second upload: the demo's last 60 rows reversed word by word (no copies of anything) and an edited
    copy (first word dropped) of each LEAKED row."""
    rows = list(csv.DictReader(io.StringIO(demo.demo_csv_bytes().decode("utf-8"))))
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=["id", "text", "label"])
    w.writeheader()
    for k, r in enumerate(rows[-60:]):
        w.writerow({"id": f"h{k}", "text": " ".join(reversed(r["text"].split())), "label": r["label"]})
    for i in LEAKED:
        w.writerow({"id": f"leak{i}", "text": " ".join(rows[i]["text"].split()[1:]), "label": rows[i]["label"]})
    ds_id = ingest.ingest_bytes(
        db,
        out.getvalue().encode("utf-8"),
        "heldout.csv",
        "heldout",
        lead,
        mapping=Mapping(text=["text"], label="label", id="id"),
    )
    return datasets.get(db, ds_id)


def test_a_lead_checks_leakage_against_a_held_out_upload_and_excludes_the_rows(app, pages):
    db = store.connect(app.db_path)
    admin = auth.create_user(db, ADMIN, "admin", PASSWORD, None)
    auth.create_user(db, LEA, "lead", PASSWORD, admin)
    lead = auth.User(LEA, "lead")
    heldout_with_copies(db, lead)  # the older upload: "dups" is the newest, the page's default
    ds = dataset_with_a_conflicting_copy(db, lead)
    current: dict = {}
    try:
        with shot_on_failure(app, current, "leakage"):
            lea = pages(LEA)
            current.update(page=lea, name="audit")
            sign_in(lea, app.url, LEA, PASSWORD)
            go(lea, "Audit")
            main = lea.locator('[data-testid="stMain"]')
            main.get_by_role("tab", name="Beyond label errors").click()
            see(lea, "Leakage against another upload")
            assert main.get_by_role("combobox", name="Compare with").input_value() == "heldout"
            main.get_by_role("button", name="Look for copies in heldout").click()
            wait_idle(lea)
            see(lea, f"Leakage check against heldout: {len(LEAKED)} rows here have a near copy there")
            see(lea, re.compile(rf"^Against heldout: {len(LEAKED)} rows here with a near copy there"))
            shot(lea, "leakage-01-checked")
            # the review queue's Leakage filter: a leaked row on the card, which says where its copy is
            go(lea, "Review")
            main = lea.locator('[data-testid="stMain"]')
            main.get_by_text("Leakage", exact=True).first.click()
            wait_idle(lea)
            see(lea, re.compile(r"^Leakage: a near copy in heldout, row \d+ \(similarity"))
            shot(lea, "leakage-02-review-filter")
            go(lea, "Audit")
            main = lea.locator('[data-testid="stMain"]')
            main.get_by_role("tab", name="Beyond label errors").click()
            see(lea, re.compile(rf"^Against heldout: {len(LEAKED)} rows here with a near copy there"))
            main.get_by_role("button", name=f"Exclude the {len(LEAKED)} open rows here from training").click()
            wait_idle(lea)
            see(lea, f"{len(LEAKED)} rows excluded from training; the decisions await verification")
            shot(lea, "leakage-03-excluded")
    finally:
        pairs = sorted(
            r[0] for r in db.execute("SELECT idx FROM leakage_pairs p JOIN leakage_checks c ON c.id=p.check_id")
        )
        decisions = {
            r["idx"]: (r["decision"], r["status"])
            for r in store.rows(db, "SELECT idx, decision, status FROM reviews WHERE dataset_id=?", [ds.id])
        }
        ok = trail.verify_trail(db)[0]
        db.conn.close()
    assert pairs == list(LEAKED)
    assert decisions == {i: ("exclude", "pending") for i in LEAKED}
    assert ok
