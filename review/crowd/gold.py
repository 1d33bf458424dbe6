"""The golden set: items a lead marks with a trusted label, to check the annotators.

Gold is an independent check of the annotators' estimated quality: it is never an input of
the consensus (review.crowd.consensus never sees it) and annotators never see which items are gold (the
Review and Label pages do not read this table; every function here is for a lead or above).
Per annotator, accuracy on gold = their labels equal to the gold label / their labels on gold
items (`accuracy`), shown beside the estimated quality in the annotator table.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import sqlite_utils

from review import store, trail
from review.auth import User, require_active
from review.crowd.labeling import row_number as _row
from review.datasets import Dataset
from review.errors import NotFound, ReviewError

CSV_COLUMNS = ("row", "label")
MAX_CSV_BYTES = 20_000_000
PREVIEW_CHARS = 120  # characters of an item's text in the gold list


class GoldError(ReviewError):
    """A gold CSV that cannot be imported; nothing was written."""


def _label(ds: Dataset, label) -> str:
    if label not in ds.labels:
        raise ReviewError(f"{label!r} is not a label of {ds.name!r}: choose one of {', '.join(ds.labels)}.")
    return label


def set_gold(db: sqlite_utils.Database, ds: Dataset, idx, label: str, user: User) -> str | None:
    """Mark row ``idx`` with the trusted ``label`` (replacing an earlier gold label). Returns the
    earlier gold label (None: the item was not gold). Logged in the audit trail. Leads only."""
    require_active(db, user, "lead", "set gold labels")
    i, label = _row(ds, idx), _label(ds, label)
    with store.transaction(db):
        before = _put(db, ds, i, label, user)
        if before != label:
            trail.log(db, user.name, "gold_set", ds.id, i, label=label, previous_label=before)
    return before


def _put(db, ds: Dataset, i: int, label: str, user: User) -> str | None:
    before = store.scalar(db, "SELECT label FROM gold WHERE dataset_id=? AND idx=?", [ds.id, i])
    if before != label:
        db.execute(
            "INSERT INTO gold(dataset_id, idx, label, set_by, at) VALUES (?,?,?,?,?)"
            " ON CONFLICT(dataset_id, idx) DO UPDATE SET label=excluded.label, set_by=excluded.set_by, at=excluded.at",
            [ds.id, i, label, user.name, store.now_iso()],
        )
    return before


def remove_gold(db: sqlite_utils.Database, ds: Dataset, idx, user: User) -> str:
    """Take row ``idx`` out of the golden set; returns the gold label it had. NotFound if it was not gold."""
    require_active(db, user, "lead", "remove gold labels")
    i = _row(ds, idx)
    with store.transaction(db):
        before = store.scalar(db, "SELECT label FROM gold WHERE dataset_id=? AND idx=?", [ds.id, i])
        if before is None:
            raise NotFound(f"Row {i} of {ds.name!r} is not in the golden set: nothing was removed.")
        db.execute("DELETE FROM gold WHERE dataset_id=? AND idx=?", [ds.id, i])
        trail.log(db, user.name, "gold_removed", ds.id, i, label=before)
    return before


def gold_label(db: sqlite_utils.Database, ds: Dataset, idx: int, user: User) -> str | None:
    """The gold label of one row (None: not gold). Leads only."""
    require_active(db, user, "lead", "see gold labels")
    return store.scalar(db, "SELECT label FROM gold WHERE dataset_id=? AND idx=?", [ds.id, int(idx)])


def item(db: sqlite_utils.Database, ds: Dataset, idx, user: User) -> dict:
    """One row for marking it: row, id, text, its gold label (None: not gold). Leads only."""
    require_active(db, user, "lead", "set gold labels")
    i = _row(ds, idx)
    key, text, label = db.execute(
        "SELECT i.key, i.text, g.label FROM items i LEFT JOIN gold g ON g.dataset_id=i.dataset_id AND g.idx=i.idx"
        " WHERE i.dataset_id=? AND i.idx=?",
        [ds.id, i],
    ).fetchone()
    return {"row": i, "id": key, "text": text, "gold_label": label}


def count(db: sqlite_utils.Database, ds: Dataset, user: User) -> int:
    require_active(db, user, "lead", "see gold labels")
    return store.scalar(db, "SELECT COUNT(*) FROM gold WHERE dataset_id=?", [ds.id]) or 0


def list_gold(db: sqlite_utils.Database, ds: Dataset, user: User, limit: int = 100, after: int = -1) -> list[dict]:
    """One page of gold items in row order (keyset on the row): row, id, gold label, set by, at, the
    start of the text, and how many annotators labelled it. Leads only."""
    require_active(db, user, "lead", "see gold labels")
    return list(
        db.query(
            "SELECT g.idx AS row, i.key AS id, g.label AS gold_label, g.set_by AS set_by, g.at AS at,"
            f" substr(i.text, 1, {PREVIEW_CHARS}) AS text,"
            " (SELECT COUNT(*) FROM annotations a WHERE a.dataset_id=g.dataset_id AND a.idx=g.idx) AS annotators"
            " FROM gold g JOIN items i ON i.dataset_id=g.dataset_id AND i.idx=g.idx"
            " WHERE g.dataset_id=? AND g.idx>? ORDER BY g.idx LIMIT ?",
            [ds.id, int(after), int(limit)],
        )
    )


def accuracy(db: sqlite_utils.Database, ds: Dataset) -> dict[str, tuple[int, int]]:
    """Per annotator: (labels equal to the gold label, labels on gold items), over the labels they
    gave gold items (current annotations, so labels added in the label queue count). One query."""
    return {
        a: (int(right), int(n))
        for a, right, n in db.execute(
            "SELECT a.annotator, SUM(a.label = g.label), COUNT(*) FROM annotations a"
            " JOIN gold g ON g.dataset_id=a.dataset_id AND g.idx=a.idx"
            " WHERE a.dataset_id=? GROUP BY a.annotator",
            [ds.id],
        )
    }


def has_gold(db: sqlite_utils.Database, ds: Dataset) -> bool:
    return db.execute("SELECT 1 FROM gold WHERE dataset_id=? LIMIT 1", [ds.id]).fetchone() is not None


# ----------------------------------------------------------------------------- CSV upload


@dataclass
class ImportResult:
    added: int  # rows that were not gold before
    changed: int  # rows whose gold label changed
    unchanged: int  # rows already gold with that label


def parse_csv(ds: Dataset, data: bytes, filename: str = "gold.csv") -> list[tuple[int, str]]:
    """A CSV of ``row,label`` (a header line ``row,label`` optional; rows 0-based as the app shows
    them) -> [(row, label)], every line checked. Raises GoldError naming the file, line, row and
    value of the first problem (and how many more there are)."""
    if len(data) > MAX_CSV_BYTES:
        raise GoldError(f"{filename} is {len(data):,} bytes: a gold CSV holds at most {MAX_CSV_BYTES:,}.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise GoldError(f"{filename} is not UTF-8 text (byte {exc.start}): save it as CSV in UTF-8.") from None
    lines = list(csv.reader(io.StringIO(text)))
    numbered = [(k + 1, r) for k, r in enumerate(lines) if any(c.strip() for c in r)]
    if not numbered:
        raise GoldError(
            f"{filename} is empty: it needs one line per gold item, `row,label` (the row as the app shows it)."
        )
    first = [c.strip().lower() for c in numbered[0][1]]
    if first[:2] == list(CSV_COLUMNS):
        numbered = numbered[1:]
    elif first and not first[0].lstrip("-").isdigit():
        raise GoldError(
            f"{filename}, line {numbered[0][0]}: the header must be `row,label`, not {','.join(numbered[0][1])!r}."
        )
    if not numbered:
        raise GoldError(f"{filename} has a header but no gold item: add one line per item, `row,label`.")
    problems: list[str] = []
    out: dict[int, tuple[str, int]] = {}
    for line, cells in numbered:
        where = f"{filename}, line {line}: "
        if len(cells) != 2:
            problems.append(f"{where}expected 2 values (row,label), found {len(cells)} ({','.join(cells)!r})")
            continue
        row, label = cells[0].strip(), cells[1].strip()
        try:
            i = _row(ds, row)
        except NotFound:
            problems.append(f"{where}row {row!r} is not a row of {ds.name!r} (rows are 0 to {ds.n_items - 1})")
            continue
        if label not in ds.labels:
            problems.append(
                f"{where}row {i}: label {label!r} is not a label of {ds.name!r} (labels: {', '.join(ds.labels)})"
            )
            continue
        if i in out and out[i][0] != label:
            problems.append(f"{where}row {i} is labelled {label!r} here and {out[i][0]!r} on line {out[i][1]}")
            continue
        out[i] = (label, line)
    if problems:
        more = (
            f" ({len(problems) - 1:,} more problem{'s' if len(problems) > 2 else ''} after it)"
            if len(problems) > 1
            else ""
        )
        raise GoldError(f"{problems[0]}{more}. Nothing was imported: fix the file and upload it again.")
    return [(i, lab) for i, (lab, _) in sorted(out.items())]


def import_csv(db: sqlite_utils.Database, ds: Dataset, data: bytes, filename: str, user: User) -> ImportResult:
    """Check a ``row,label`` CSV as a whole (parse_csv), then write every gold label and its audit
    row in one transaction. A refused file writes nothing. Leads only."""
    require_active(db, user, "lead", "set gold labels")
    pairs = parse_csv(ds, data, filename)
    added = changed = unchanged = 0
    with store.transaction(db):
        for i, label in pairs:
            before = _put(db, ds, i, label, user)
            if before == label:
                unchanged += 1
                continue
            added += before is None
            changed += before is not None
            trail.log(db, user.name, "gold_set", ds.id, i, label=label, previous_label=before, source=filename)
    return ImportResult(added, changed, unchanged)
