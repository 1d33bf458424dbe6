"""People where they don't belong: every lead or admin action of `review` refuses an annotator
(whatever a page shows), nothing is written by the refusal, sessions expire, a demoted or
deactivated user loses access at the next click."""

from __future__ import annotations

import time

import pytest
from streamlit.testing.v1 import AppTest

from review import audit, auth, export, judge, precision, workflow
from review.errors import PermissionDenied
from review.ner import store as ner_store
from review.text import ingest
from review.trail import export as trail_export
from review.ui import shell
from tests.helpers import PASSWORD, ROOT

APP = ROOT / "app.py"
CONLL = b"EU B-ORG\nrejects O\n\nPeter B-PER\nsaid O\n"


def lead_actions(db, ds, rid: int, version: int):
    """(name, callable(user)) for every action that needs at least a lead."""
    import pandas as pd

    frame = pd.DataFrame({"text": [f"t {i}" for i in range(10)], "label": ["a", "b"] * 5})
    prep = ingest.prepare(frame, ingest.Mapping(text=["text"], label="label"), "f.csv", None)
    corpus = ner_store.read_corpus(CONLL, "f.conll")
    cfg = judge.JudgeConfig("http://127.0.0.1:9", "m")
    return [
        ("upload", lambda u: ingest.write_dataset(db, prep, "new", u)),
        ("upload NER", lambda u: ner_store.write_ner_dataset(db, corpus, CONLL, "new ner", u)),
        ("integrity run", lambda u: audit.run_integrity(db, ds.id, u)),
        ("audit run", lambda u: audit.run_audit(db, ds.id, u)),
        ("judge run", lambda u: judge.run_judge(db, ds, u, cfg, 1)),
        ("spot checks", lambda u: precision.add_spot_checks(db, ds, u, 3)),
        ("verify", lambda u: workflow.verify(db, rid, u, "approve", version)),
        ("pending queue", lambda u: workflow.pending(db, ds, u)),
        ("export cleaned", lambda u: "".join(export.export_cleaned(db, ds, u))),
        ("export audit trail", lambda u: "".join(trail_export.export_csv(db, u, ds.id))),
        ("export NER", lambda u: export.export_ner(db, ds, u)),
    ]


def admin_actions(db):
    return [
        ("add user", lambda u: auth.create_user(db, "mallory", "admin", PASSWORD, u)),
        ("set role", lambda u: auth.set_role(db, "anna", "admin", u)),
        ("deactivate", lambda u: auth.set_active(db, "alice", False, u)),
        ("list users", lambda u: auth.list_users(db, u)),
    ]


def test_annotator_is_refused_every_lead_and_admin_action_and_nothing_changes(db, demo_ds, annotator, lead):
    s = workflow.claim_next(db, demo_ds, annotator)
    rid = workflow.decide(db, demo_ds, s.idx, annotator, "keep", s.version)
    before = "\n".join(db.conn.iterdump())
    refused = []
    for name, act in lead_actions(db, demo_ds, rid, s.version + 1) + admin_actions(db):
        with pytest.raises(PermissionDenied):
            act(annotator)
        refused.append(name)
    assert len(refused) == 15
    after = "\n".join(db.conn.iterdump())
    assert after == before
    for _name, act in admin_actions(db)[:2]:  # a lead is no admin either
        with pytest.raises(PermissionDenied):
            act(lead)


def test_session_expires_and_role_changes_take_effect_at_the_next_click(db_path, db, demo_ds, admin, lead, monkeypatch):
    monkeypatch.setenv("REVIEW_DB", str(db_path))
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.session_state["user"] = ("lena", "lead", time.time() - shell.SESSION_SECONDS - 5)
    at.switch_page("pages/5_Export.py")
    at.run()
    assert any("session expired" in i.value for i in at.info)
    assert not at.get("download_button")
    # signed in as a lead, then demoted by the admin: the next run of a lead page refuses
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.session_state["user"] = ("lena", "lead", time.time())
    at.switch_page("pages/5_Export.py")
    at.run()
    assert at.get("download_button")
    auth.set_role(db, "lena", "annotator", admin)
    at.run()
    assert not at.get("download_button") and (at.error or at.warning)
    auth.set_active(db, "lena", False, admin)
    at.run()
    assert "user" not in at.session_state or not at.session_state["user"]
