"""Reads of the audit trail for its page: filter options and one page, newest first (keyset)."""
from __future__ import annotations

import sqlite_utils


def filter_options(db: sqlite_utils.Database) -> dict:
    """{'datasets': {name: id}, 'actors': [...], 'actions': [...]} for the filters."""
    return {
        "datasets": {n: i for i, n in db.execute("SELECT id, name FROM datasets ORDER BY name")},
        "actors": [r[0] for r in db.execute("SELECT DISTINCT actor FROM audit_log ORDER BY actor LIMIT 500")],
        "actions": [r[0] for r in db.execute("SELECT DISTINCT action FROM audit_log ORDER BY action")],
    }


def page(db: sqlite_utils.Database, before_id: int | None = None, limit: int = 50, dataset_id: int | None = None,
         actor: str | None = None, action: str | None = None) -> list[dict]:
    """Up to ``limit`` audit rows with id < before_id (newest first), filtered."""
    cond, params = ["id < ?"], [before_id if before_id is not None else 2**62]
    for col, val in (("dataset_id", dataset_id), ("actor", actor), ("action", action)):
        if val is not None:
            cond.append(f"{col} = ?")
            params.append(val)
    return list(db.query(
        f"SELECT id, at, actor, action, dataset_id, idx AS row, payload FROM audit_log WHERE {' AND '.join(cond)} ORDER BY id DESC LIMIT ?",
        [*params, limit]))
