"""Shared fixtures: a real SQLite file per test, real users, the real demo dataset. Helpers that tests
import (paths, the password, table counts, copies) are in tests/helpers.py."""

from __future__ import annotations

import os
import tempfile

import pytest

from review import auth, datasets, demo, store
from tests.helpers import PASSWORD

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
