"""The audit trail as CSV: rows in id order, read a page at a time, never the whole table in memory."""

from __future__ import annotations

from collections.abc import Iterator

import sqlite_utils

from review import export
from review.auth import User, require_active
from review.trail.write import log

COLUMNS = ["id", "at", "actor", "action", "dataset_id", "idx", "payload", "prev_hash", "hash"]


def audit_rows(
    db: sqlite_utils.Database,
    dataset_id: int | None = None,
    actor: str | None = None,
    action: str | None = None,
    after_id: int = 0,
    limit: int | None = None,
) -> Iterator[list]:
    """Audit-trail rows in id order, filtered, read PAGE at a time."""
    cond, params = [], []
    for col, val in (("dataset_id", dataset_id), ("actor", actor), ("action", action)):
        if val is not None:
            cond.append(f"{col}=?")
            params.append(val)
    where = (" AND " + " AND ".join(cond)) if cond else ""
    last, sent = after_id, 0
    while True:
        page = export.PAGE if limit is None else min(export.PAGE, limit - sent)
        if page <= 0:
            return
        rows = db.execute(
            f"SELECT {', '.join(COLUMNS)} FROM audit_log WHERE id>?{where} ORDER BY id LIMIT ?",
            [last, *params, page],
        ).fetchall()
        if not rows:
            return
        yield from (list(r) for r in rows)
        sent += len(rows)
        last = rows[-1][0]


def export_csv(
    db: sqlite_utils.Database, user: User, dataset_id: int | None = None, *, spreadsheet_safe: bool = False
) -> Iterator[str]:
    """The audit trail (of one dataset, or all) as CSV chunks, cells as stored or (spreadsheet_safe)
    formula-guarded, as for export_cleaned. Leads only."""
    require_active(db, user, "lead", "export the audit trail")
    log(db, user.name, "export", dataset_id, what="audit trail", spreadsheet_safe=spreadsheet_safe)
    return export.csv_chunks(COLUMNS, audit_rows(db, dataset_id), spreadsheet_safe)
