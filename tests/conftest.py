"""Shared fixtures: a real SQLite file per test, real users, the real demo dataset."""

from __future__ import annotations

import os
import sqlite3
import tempfile

import pytest

from review import auth, datasets, demo, store

PASSWORD = "correct horse battery"

# The trail's key and the pins of each database's trail live per OS user (review/trail_key.py):
# the tests, and the app and workers they start (they inherit the environment), keep theirs in a
# directory of their own instead of the home folder.
os.environ["REVIEW_TRAIL_DIR"] = tempfile.mkdtemp(prefix="review-trail-tests-")


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "t.db"


@pytest.fixture
def db(db_path):
    database = store.connect(db_path)
    yield database
    database.conn.close()


@pytest.fixture
def admin(db):
    # the first account on an empty database must be an admin, created with no actor
    return auth.create_user(db, "alice", "admin", PASSWORD, None)


@pytest.fixture
def lead(db, admin):
    return auth.create_user(db, "lena", "lead", PASSWORD, admin)


@pytest.fixture
def annotator(db, admin):
    return auth.create_user(db, "anna", "annotator", PASSWORD, admin)


@pytest.fixture
def demo_ds(db, lead):
    ds_id = demo.load_demo(db, lead)
    return datasets.get(db, ds_id)


def counts(db) -> dict[str, int]:
    """Row counts of the tables an upload or a run writes to."""
    return {
        t: store.scalar(db, f"SELECT COUNT(*) FROM {t}")
        for t in ("datasets", "items", "annotations", "audit_log", "runs", "scores", "reviews", "states")
    }


def copy_db(src, dest):
    """A copy of the SQLite file ``src`` at ``dest`` (SQLite's online backup, so a template built
    once per module serves every test). Returns ``dest``."""
    s, d = sqlite3.connect(str(src)), sqlite3.connect(str(dest))
    try:
        s.backup(d)
    finally:
        s.close()
        d.close()
    return dest


def raw(path) -> sqlite3.Connection:
    """A plain sqlite3 connection that bypasses the review package (for tampering)."""
    return sqlite3.connect(str(path), isolation_level=None, timeout=30)
