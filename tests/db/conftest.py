"""Fixtures shared by tests under tests/db (on top of tests/conftest.py's).

The NER loop (tests/db/test_ner_loop.py, tests/db/test_keyboard.py):
* ``audited`` (module scope): a template database file with alice (admin), lena (lead) and anna
  (annotator), the first documents of CoNLL-2003 dev ingested as dataset 'dev' and audited;
* ``ndb``: a connection to a copy of that template, one per test;
* ``page_db``: ``ndb``, with ``REVIEW_DB`` naming its file so the pages (AppTest) open it.

A module that defines a fixture of the same name (tests/db/test_crowd_loop.py's ``audited`` and
``page_db``, tests/db/test_headerless.py's ``page_db``) uses its own.
"""

from __future__ import annotations

import pytest
from streamlit.runtime.media_file_manager import MediaFileManager

from review import audit, auth, store
from review.ner import store as ner_store
from tests.builders import conll_slice
from tests.helpers import PASSWORD, copy_db


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    path = tmp_path_factory.mktemp("ner") / "template.db"
    db = store.connect(path)
    admin = auth.create_user(db, "alice", "admin", PASSWORD, None)
    lead = auth.create_user(db, "lena", "lead", PASSWORD, admin)
    auth.create_user(db, "anna", "annotator", PASSWORD, admin)
    data = conll_slice()
    ds_id = ner_store.write_ner_dataset(db, ner_store.read_corpus(data, "dev.conll"), data, "dev", lead)
    audit.run_integrity(db, ds_id, lead)
    audit.run_audit(db, ds_id, lead)
    db.conn.close()
    return path


@pytest.fixture
def ndb(tmp_path, audited):
    db = store.connect(copy_db(audited, tmp_path / "n.db"))
    yield db
    db.conn.close()


@pytest.fixture
def page_db(ndb, monkeypatch):
    monkeypatch.setenv("REVIEW_DB", ndb.conn.execute("PRAGMA database_list").fetchone()[2])
    return ndb


@pytest.fixture
def deferred(monkeypatch):
    """The download buttons' callables by file name (Streamlit runs them when the browser clicks)."""
    got: dict[str, object] = {}
    real = MediaFileManager.add_deferred

    def add(self, data_callable, mimetype, coordinates, file_name=None, **kw):
        got[file_name] = data_callable
        return real(self, data_callable, mimetype, coordinates, file_name=file_name, **kw)

    monkeypatch.setattr(MediaFileManager, "add_deferred", add)
    return got
