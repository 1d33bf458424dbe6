"""End to end, NER: the real app in headless Chromium. A lead uploads a small CoNLL file (the first
documents of CoNLL-2003 dev) and runs the audit; an annotator sees the coloured token view and
changes one token's tag; the lead approves it and downloads the cleaned CoNLL, which equals the
upload line by line except that one tag. Screenshots go to artifacts/."""

from __future__ import annotations

import json
import re

import pytest

from review import auth, datasets, store
from tests.builders import CONLL, E2E_CONLL_DOCS, conll_slice
from tests.e2e.helpers import RUN_TIMEOUT, go, pick_option, press_shortcut, see, shot, sign_in, wait_idle

pytestmark = pytest.mark.e2e

LEAD, ANN, PASSWORD = "leo", "ann", "e2e password 123"


def test_conll_upload_token_fix_verify_export(app, pages, tmp_path):
    if not CONLL.is_file():
        pytest.fail(f"{CONLL} is missing: this test uploads a slice of it")
    data = conll_slice(E2E_CONLL_DOCS)
    upload = tmp_path / "dev.conll"
    upload.write_bytes(data)
    db = store.connect(app.db_path)
    admin = auth.create_user(db, "ada", "admin", PASSWORD, None)
    auth.create_user(db, LEAD, "lead", PASSWORD, admin)
    auth.create_user(db, ANN, "annotator", PASSWORD, admin)
    lead = pages("lead", downloads=True)
    current = lead
    try:
        sign_in(lead, app.url, LEAD, PASSWORD)
        go(lead, "Upload")
        lead.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(upload))
        see(lead, re.compile(r"NER file: conll, [\d,]+ sentences"), timeout=RUN_TIMEOUT)
        see(lead, "Scheme IOB1")
        lead.get_by_role("button", name="Check and ingest").click()
        see(lead, "Dataset 'dev' ingested", timeout=RUN_TIMEOUT)
        shot(lead, "ner-01-upload")
        go(lead, "Audit")
        lead.get_by_role("button", name="Run the audit").click()
        see(lead, re.compile(r"Run 2 \(audit\)"), timeout=RUN_TIMEOUT)
        lead.get_by_role("tab", name="Tag swaps").click()
        lead.locator('[data-testid="stPlotlyChart"]').first.wait_for()
        lead.wait_for_timeout(800)
        shot(lead, "ner-02-swaps")

        ann = pages("annotator")
        current = ann
        sign_in(ann, app.url, ANN, PASSWORD)
        go(ann, "Review")
        see(ann, re.compile(r"^Sentence \d+ · rank 1 · "))
        for css in (".ner-legend", ".ner-entity", ".ner-suspect"):
            ann.locator(css).first.wait_for()  # the coloured view, with suspects marked
        wait_idle(ann)
        assert ann.locator(".ner-legend").count() == 1
        shot(ann, "ner-03-review")
        ds = datasets.get(db, "dev")
        idx = db.execute(
            "SELECT idx FROM states WHERE dataset_id=? AND claimed_by=? AND state='open'", [ds.id, ANN]
        ).fetchone()[0]
        tokens = json.loads(store.scalar(db, "SELECT tokens FROM items WHERE dataset_id=? AND idx=?", [ds.id, idx]))
        tags = json.loads(store.scalar(db, "SELECT given_tags FROM items WHERE dataset_id=? AND idx=?", [ds.id, idx]))
        j = next((k for k, t in enumerate(tags) if t == "O"), None)
        assert j is not None, tags
        pick_option(ann, "Token", re.compile(rf"^{j}: {re.escape(tokens[j])}\s"), f"{j}: {tokens[j]}")
        pick_option(ann, "New tag", re.compile(r"^I-MISC$"), "I-MISC")
        ann.get_by_role("button", name="Set this tag").click()
        see(ann, f"{j} {tokens[j]}: O → I-MISC")
        shot(ann, "ner-04-changed")
        ann.get_by_role("button", name="Save my changes").click()
        see(ann, f"Sentence {idx}: 1 tag changed.")

        current = lead
        go(lead, "Verify")
        see(lead, "1 decision awaiting verification")
        see(lead, f"{j} {tokens[j]}: O → I-MISC")
        shot(lead, "ner-05-verify")
        press_shortcut(lead, "a")  # A approves the NER card too

        see(lead, f"Sentence {idx}: approved.")
        go(lead, "Export")
        with lead.expect_download(timeout=RUN_TIMEOUT) as dl:
            lead.get_by_role("button", name="Download the cleaned corpus (CONLL)").click()
        saved = tmp_path / "cleaned.conll"
        dl.value.save_as(saved)
        shot(lead, "ner-06-export")
    except Exception:
        if not current.is_closed():
            shot(current, "ner-FAILED")
        print(f"\n--- streamlit log ---\n{app.log_tail(80)}")
        raise
    finally:
        db.conn.close()

    before, after = data.split(b"\n"), saved.read_bytes().split(b"\n")
    assert len(before) == len(after)
    diff = [k for k, (a, b) in enumerate(zip(before, after)) if a != b]
    assert len(diff) == 1, diff
    k = diff[0]
    assert before[k].split()[0] == tokens[j].encode()
    assert after[k] == before[k].rsplit(b" ", 1)[0] + b" I-MISC" and before[k].endswith(b" O")
