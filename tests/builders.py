"""What several test modules build or drive the same way (plain helpers, no fixtures: those are in
tests/conftest.py and tests/db/conftest.py).

NER (the real CoNLL-2003 dev file):
* ``CONLL``: the path of eng.testa in the shared data;
* ``conll_slice(n_docs)``: its first ``n_docs`` documents, byte for byte (``CONLL_DOCS`` for the
  database tests' template, ``E2E_CONLL_DOCS`` for the browser tests, which audit it live);
* ``LEAD``, ``ANNA``: the lead and the annotator of the NER template (tests/db/conftest.py ``audited``).

The crowd (multi-annotator text, three annotators):
* ``crowd_frame()``: the long-form labels (item_id, text, annotator, label) of ``ANNOTATORS`` over
  30 clear texts (words from ``POS`` / ``NEG``, 10% of their labels flipped, seeded) and the neutral
  item ``CONTESTED`` they split on;
* ``build_crowd_db(path)``: a database file at ``path`` with users alice (admin), lena (lead), anna
  and ben (annotators) and that crowd ingested as dataset 'crowd' (audited unless ``audit_it=False``).

Pages through Streamlit's AppTest (no browser; the database is the one ``REVIEW_DB`` names):
* ``open_page(page, who, dataset)``: an AppTest of app.py signed in as ``who``, switched to ``page``
  and run; ``run(at)``: one more run; both assert the page raised nothing;
* ``html_of(at)``: the page's st.html bodies, joined;
* ``held(db, ds)``: the row anna holds open in ``ds`` (asserting she holds exactly one).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from review import audit, auth, store
from review.text import ingest
from tests.helpers import APP, DATA, PASSWORD

# ----------------------------------------------------------------------------- NER

CONLL = DATA / "conll2003" / "eng.testa"
CONLL_DOCS = 40
E2E_CONLL_DOCS = 20
LEAD, ANNA = auth.User("lena", "lead"), auth.User("anna", "annotator")


def conll_slice(n_docs: int = CONLL_DOCS) -> bytes:
    """The first ``n_docs`` documents of eng.testa, byte for byte."""
    if not CONLL.is_file():
        pytest.fail(f"{CONLL} is missing: the NER tests read the real CoNLL-2003 data")
    data = CONLL.read_bytes()
    starts = [
        i for i in range(len(data)) if data.startswith(b"-DOCSTART-", i) and (i == 0 or data[i - 1 : i] == b"\n")
    ][: n_docs + 1]
    return data[: starts[n_docs]] if len(starts) > n_docs else data


# ----------------------------------------------------------------------------- the crowd

POS = ["great", "lovely", "superb", "wonderful", "fine", "excellent"]
NEG = ["awful", "broken", "horrid", "terrible", "bad", "dreadful"]
CONTESTED = "contested"
ANNOTATORS = ("ann1", "ann2", "ann3")


def crowd_frame(n_per_class: int = 15, seed: int = 0) -> pd.DataFrame:
    """Long form (item_id, text, annotator, label): three annotators label every clear text (10% of
    their labels flipped, seeded); the neutral item 'contested' has two labels, ann1 pos, ann2 neg."""
    rng = np.random.default_rng(seed)
    rows, k = [], 0
    for lab, vocab in (("pos", POS), ("neg", NEG)):
        for i in range(n_per_class):
            text = f"{vocab[i % 6]} and {vocab[(i + 2) % 6]} product number {k}"
            for a in ANNOTATORS:
                said = {"pos": "neg", "neg": "pos"}[lab] if rng.random() < 0.1 else lab
                rows.append({"item_id": f"t{k}", "text": text, "annotator": a, "label": said})
            k += 1
    for a, lab in (("ann1", "pos"), ("ann2", "neg")):
        rows.append({"item_id": CONTESTED, "text": "the parcel came on a tuesday", "annotator": a, "label": lab})
    return pd.DataFrame(rows)


def build_crowd_db(path, audit_it: bool = True) -> None:
    """users alice (admin), lena (lead), anna and ben (annotators); dataset 'crowd' (audited)."""
    db = store.connect(path)
    admin = auth.create_user(db, "alice", "admin", PASSWORD, None)
    lead = auth.create_user(db, "lena", "lead", PASSWORD, admin)
    auth.create_user(db, "anna", "annotator", PASSWORD, admin)
    auth.create_user(db, "ben", "annotator", PASSWORD, admin)
    ds_id = ingest.ingest_bytes(db, crowd_frame().to_csv(index=False).encode(), "crowd.csv", "crowd", lead)
    if audit_it:
        audit.run_audit(db, ds_id, lead)
    db.conn.close()


# ----------------------------------------------------------------------------- pages (AppTest)


def open_page(page: str, who: auth.User, dataset: str | None = "dev") -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=90)
    at.session_state["user"] = (who.name, who.role, time.time())
    if dataset:
        at.session_state["dataset_name"] = dataset
    at.switch_page(page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def html_of(at: AppTest) -> str:
    return "\n".join(h.proto.body for h in at.get("html"))


def held(db, ds) -> int:
    rows = db.execute(
        "SELECT idx FROM states WHERE dataset_id=? AND claimed_by='anna' AND state='open'", [ds.id]
    ).fetchall()
    assert len(rows) == 1, rows
    return rows[0][0]
