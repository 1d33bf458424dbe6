"""What tests import: the repository's paths, the shared data, the fixtures' password, and small helpers
over a database file (row counts, a copy, a raw connection for tampering)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from review import store

ROOT = Path(__file__).resolve().parents[1]  # the repository
APP = ROOT / "app.py"
DATA = ROOT.parent / "shared" / "data"  # the shared datasets (../shared/data/README.md), never copied here
PASSWORD = "correct horse battery"  # of the fixtures' users (tests/conftest.py)


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


def other_label(ds, label) -> str:
    """A label of ``ds`` that is not ``label``."""
    return next(lab for lab in ds.labels if lab != label)
