"""End to end: with classes named 0 and 1, the key pressed is the label chosen (issue 13, item 1).

A lead's dataset of short texts labelled 0/1 is ingested and audited through the `review`
command; an annotator opens the Review page in headless Chromium; the buttons carry the keys 0
and 1 (the digit the label is), and pressing the other label's digit relabels the card to
exactly that label.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from review import auth, store
from tests.e2e.helpers import ROOT, go, press_shortcut, see, shot, sign_in, wait_idle

pytestmark = pytest.mark.e2e
PASSWORD = "e2e password 123"


def _review(*args, db) -> None:
    p = subprocess.run(
        [sys.executable, "-m", "review.cli", *args, "--db", str(db)], cwd=ROOT, capture_output=True, text=True
    )
    assert p.returncode == 0, p.stderr


def test_number_keys_pick_the_label_they_name(app, pages, tmp_path):
    words = {"0": ["dull", "slow", "bad", "weak"], "1": ["fine", "great", "good", "fun"]}
    rows = ["text,label"] + [
        f"{words[l][i % 4]} film number {i},{l if i % 9 else '01'[l == '0']}" for i in range(120) for l in "01"
    ]
    src = tmp_path / "nums.csv"
    src.write_text("\n".join(rows) + "\n", encoding="utf-8")
    db = store.connect(app.db_path)
    admin = auth.create_user(db, "ada", "admin", PASSWORD, None)
    auth.create_user(db, "anna", "annotator", PASSWORD, admin)
    _review("ingest", str(src), "--name", "nums", "--text-col", "text", "--label-col", "label", db=app.db_path)
    _review("audit", "nums", db=app.db_path)

    page = pages("annotator")
    sign_in(page, app.url, "anna", PASSWORD)
    go(page, "Review")
    see(page, "relabel to the label showing that key")
    ds_id = store.scalar(db, "SELECT id FROM datasets WHERE name='nums'")
    idx, current = db.execute(
        "SELECT st.idx, COALESCE(st.current_label, i.given_label) FROM states st JOIN items i"
        " ON i.dataset_id=st.dataset_id AND i.idx=st.idx WHERE st.dataset_id=? AND st.claimed_by='anna'"
        " AND st.state='open'",
        [ds_id],
    ).fetchone()
    other = "1" if current == "0" else "0"
    shot(page, "keys-01-numeric-labels")
    press_shortcut(page, other)
    deadline = time.monotonic() + 30
    row = None
    while time.monotonic() < deadline and row is None:
        row = db.execute(
            "SELECT decision, new_label FROM reviews WHERE dataset_id=? AND idx=?", [ds_id, idx]
        ).fetchone()
        time.sleep(0.2)
    assert row == ("relabel", other), (row, current)
    wait_idle(page)
    see(page, f"relabelled to {other}")
