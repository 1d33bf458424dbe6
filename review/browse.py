"""Search and filter the rows of a dataset, a page at a time (keyset on the row number).

A :class:`RowFilter` names what a user picked (text contains, given / current / predicted label, action,
score band, state, reviewer, annotator, metadata column); :func:`page` reads one page of the rows it
matches after a row number, :func:`count` counts them up to a cap, :func:`matching` yields every row
number (bulk actions, a subset export). Labels and scores are the latest run's unless a run is named.

"Text contains" reads ``items_fts`` (an FTS5 trigram index, contentless: any substring of three
characters or more, without regard to case), built for a dataset on its first search
(:func:`ensure_index`, with progress); a shorter text is matched by a scan (``instr``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

import sqlite_utils

from review import store
from review.datasets import Dataset, latest_run
from review.errors import ReviewError
from review.stats import BANDS

ROWID_BASE = 2**32  # items_fts rowid = dataset_id * ROWID_BASE + idx
INDEX_CHUNK = 20_000  # rows written to items_fts per transaction while it is built
PAGE_MAX = 500
SNIPPET = 300  # characters of text a page carries per row
STATES = ("open", "kept", "relabelled", "unsure", "approved", "overridden")
MIN_INDEXED = 3  # the trigram index finds substrings of at least this many characters


@dataclass(frozen=True)
class RowFilter:
    """What a user filters the rows by; every field left empty matches every row. Lists match any of
    their values; fields combine with AND. ``band``: an index into stats.BANDS (flagged rows' label
    quality); ``flagged``: True only the latest run's suspects, False only the rest; ``meta``: pairs
    (metadata column, value), the value compared as text; ``reviewer``: rows with a decision by that
    user; ``annotator``: rows that annotator labelled (several annotators per row)."""

    text: str = ""
    given: tuple[str, ...] = ()
    current: tuple[str, ...] = ()
    predicted: tuple[str, ...] = ()
    action: tuple[str, ...] = ()
    band: int | None = None
    state: tuple[str, ...] = ()
    reviewer: str | None = None
    annotator: str | None = None
    meta: tuple[tuple[str, str], ...] = ()
    flagged: bool | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_json(cls, raw: str | dict) -> RowFilter:
        data = json.loads(raw) if isinstance(raw, str) else dict(raw)
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for k in ("given", "current", "predicted", "action", "state"):
            if k in known:
                known[k] = tuple(known[k] or ())
        if "meta" in known:
            known["meta"] = tuple((str(a), str(b)) for a, b in known["meta"] or ())
        return cls(**known)

    def empty(self) -> bool:
        return self == RowFilter()

    def describe(self) -> str:
        """The filter in words, for a page heading or a bulk action's record."""
        parts = []
        if self.text:
            parts.append(f"text contains {self.text!r}")
        for name in ("given", "current", "predicted", "action", "state"):
            values = getattr(self, name)
            if values:
                parts.append(f"{name} {' or '.join(values)}")
        if self.band is not None:
            lo, hi = BANDS[self.band]
            parts.append(f"label quality {lo:.2f}–{hi:.2f}")
        if self.flagged is not None:
            parts.append("flagged" if self.flagged else "not flagged")
        if self.reviewer:
            parts.append(f"decided by {self.reviewer}")
        if self.annotator:
            parts.append(f"labelled by {self.annotator}")
        parts += [f"{k} = {v!r}" for k, v in self.meta]
        return ", ".join(parts) or "all rows"


@dataclass
class BrowseRow:
    """One row of a page: the item, its state and the run's view of it (text cut to SNIPPET characters)."""

    idx: int
    key: str
    text: str | None
    given_label: str | None
    current_label: str | None
    state: str
    predicted_label: str | None = None
    confidence: float | None = None
    quality: float | None = None
    action: str | None = None
    is_issue: bool = False
    rank: int | None = None


@dataclass
class Page:
    """One page of rows and the row number to pass as ``after`` for the next (None: the last page)."""

    rows: list[BrowseRow] = field(default_factory=list)
    next_after: int | None = None


def check(ds: Dataset, f: RowFilter) -> None:
    """ReviewError naming a value the dataset does not have (a label, a state, a band)."""
    for name in ("given", "current", "predicted"):
        bad = [v for v in getattr(f, name) if v not in ds.labels]
        if bad and ds.task == "text":
            raise ReviewError(
                f"{', '.join(map(repr, bad))} is not a label of {ds.name!r}: choose among {', '.join(ds.labels)}."
            )
    bad = [s for s in f.state if s not in STATES]
    if bad:
        raise ReviewError(f"Unknown state {', '.join(map(repr, bad))}: the states are {', '.join(STATES)}.")
    if f.band is not None and not 0 <= f.band < len(BANDS):
        raise ReviewError(f"Unknown score band {f.band}: there are {len(BANDS)} (0 to {len(BANDS) - 1}).")


def _in(column: str, values, params: list) -> str:
    params.extend(values)
    return f"{column} IN ({','.join('?' * len(values))})"


def _query(ds: Dataset, f: RowFilter, run_id: int | None, after: int, limit: int | None, select: str):
    """The SQL and parameters of the rows matching ``f`` after row ``after``, in row order."""
    check(ds, f)
    text = f.text.strip()
    indexed = len(text) >= MIN_INDEXED
    params: list = []
    joins = (
        " LEFT JOIN states st ON st.dataset_id=i.dataset_id AND st.idx=i.idx"
        " LEFT JOIN scores s ON s.run_id=? AND s.idx=i.idx"
    )
    if indexed:  # the index drives: its rows come in rowid (= row) order, so a page stops early
        base = ds.id * ROWID_BASE
        sql = f"SELECT {select} FROM items_fts f CROSS JOIN items i ON i.dataset_id=? AND i.idx=f.rowid-?{joins}"
        params += [ds.id, base, run_id]
        phrase = '"' + text.replace('"', '""') + '"'
        where = ["items_fts MATCH ?", "f.rowid > ?", "f.rowid < ?"]
        params += [phrase, base + after, base + ROWID_BASE]
        order = "f.rowid"
    else:
        sql = f"SELECT {select} FROM items i{joins}"
        params.append(run_id)
        where = ["i.dataset_id=?", "i.idx > ?"]
        params += [ds.id, after]
        order = "i.idx"
        if text:
            where.append("instr(lower(i.text), lower(?)) > 0")
            params.append(text)
    if f.given:
        where.append(_in("i.given_label", f.given, params))
    if f.current:
        where.append(_in("COALESCE(st.current_label, i.given_label)", f.current, params))
    if f.predicted:
        where.append(_in("s.predicted_label", f.predicted, params))
    if f.action:
        where.append(_in("COALESCE(s.fused_action, s.action)", f.action, params))
    if f.band is not None:
        lo, hi = BANDS[f.band]
        where.append("s.is_issue=1 AND s.quality >= ? AND s.quality < ?")
        params += [lo, hi if f.band < len(BANDS) - 1 else 1.0000001]
    if f.flagged is not None:
        where.append("s.is_issue=1" if f.flagged else "COALESCE(s.is_issue, 0)=0")
    if f.state:
        conds = []
        if "open" in f.state:
            conds.append("st.state IS NULL")
        conds.append(_in("st.state", f.state, params))
        where.append("(" + " OR ".join(conds) + ")")
    if f.reviewer:
        where.append("i.idx IN (SELECT r.idx FROM reviews r WHERE r.dataset_id=? AND r.reviewer=?)")
        params += [ds.id, f.reviewer]
    if f.annotator:
        where.append("i.idx IN (SELECT a.idx FROM annotations a WHERE a.dataset_id=? AND a.annotator=?)")
        params += [ds.id, f.annotator]
    for column, value in f.meta:
        where.append("CAST(json_extract(i.meta, ?) AS TEXT) = ?")
        params += ["$." + json.dumps(str(column)), str(value)]
    sql += " WHERE " + " AND ".join(where) + f" ORDER BY {order}"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return sql, params


def _run_id(db, ds: Dataset, run_id: int | None) -> int | None:
    if run_id is not None:
        return run_id
    run = latest_run(db, ds.id)
    return run["id"] if run else None


def _needs_index(f: RowFilter) -> bool:
    return len(f.text.strip()) >= MIN_INDEXED


def _require_index(db, ds: Dataset, f: RowFilter) -> None:
    if _needs_index(f) and not is_indexed(db, ds):
        raise ReviewError(
            f"The text of {ds.name!r} is not indexed for search yet: build the index first (browse.ensure_index)."
        )


_COLUMNS = (
    "i.idx AS idx, i.key AS key, substr(i.text, 1, ?) AS text, i.given_label AS given_label,"
    " COALESCE(st.current_label, i.given_label) AS current_label, COALESCE(st.state, 'open') AS state,"
    " s.predicted_label AS predicted_label, s.confidence AS confidence, s.quality AS quality,"
    " COALESCE(s.fused_action, s.action) AS action, COALESCE(s.is_issue, 0) AS is_issue, s.rank AS rank"
)


def page(
    db: sqlite_utils.Database,
    ds: Dataset,
    f: RowFilter,
    after: int = -1,
    limit: int = 50,
    run_id: int | None = None,
) -> Page:
    """The rows matching ``f`` with a row number above ``after``, at most ``limit`` (PAGE_MAX)."""
    _require_index(db, ds, f)
    limit = max(1, min(int(limit), PAGE_MAX))
    sql, params = _query(ds, f, _run_id(db, ds, run_id), after, limit + 1, _COLUMNS.replace("?", str(SNIPPET)))
    got = store.rows(db, sql, params)
    rows = [
        BrowseRow(**{k: r[k] for k in r.keys() if k != "is_issue"}, is_issue=bool(r["is_issue"])) for r in got[:limit]
    ]
    return Page(rows, rows[-1].idx if len(got) > limit else None)


def count(
    db: sqlite_utils.Database, ds: Dataset, f: RowFilter, cap: int | None = 100_000, run_id: int | None = None
) -> int:
    """How many rows match ``f``; with ``cap``, at most cap + 1 (more than cap: say so, "cap+")."""
    _require_index(db, ds, f)
    sql, params = _query(ds, f, _run_id(db, ds, run_id), -1, None if cap is None else cap + 1, "1")
    return store.scalar(db, f"SELECT COUNT(*) FROM ({sql})", params)


def matching(
    db: sqlite_utils.Database, ds: Dataset, f: RowFilter, run_id: int | None = None, chunk: int = 5000
) -> Iterator[int]:
    """Every row number matching ``f``, in order, read ``chunk`` at a time."""
    _require_index(db, ds, f)
    rid = _run_id(db, ds, run_id)
    after = -1
    while True:
        sql, params = _query(ds, f, rid, after, chunk, "i.idx")
        got = [r[0] for r in db.execute(sql, params).fetchall()]
        yield from got
        if len(got) < chunk:
            return
        after = got[-1]


# ----------------------------------------------------------------------------- the text index


def is_indexed(db: sqlite_utils.Database, ds: Dataset) -> bool:
    return store.scalar(db, "SELECT 1 FROM search_index WHERE dataset_id=?", [ds.id]) is not None


def ensure_index(db: sqlite_utils.Database, ds: Dataset, progress: Callable[[float, str], None] | None = None) -> bool:
    """Put the dataset's texts in items_fts (once; items never change after upload). True when it was
    built now, False when it already was. A stopped build leaves no half index: each chunk is written
    in its own transaction and the rows of a dataset are cleared before a build starts over."""
    if is_indexed(db, ds):
        return False
    base = ds.id * ROWID_BASE
    n = store.scalar(db, "SELECT COUNT(*) FROM items WHERE dataset_id=?", [ds.id]) or 0
    with store.transaction(db):  # a build stopped half-way left rows: take them out with their own text
        db.execute(
            "INSERT INTO items_fts(items_fts, rowid, text) SELECT 'delete', f.rowid, i.text"
            " FROM items_fts f JOIN items i ON i.dataset_id=? AND i.idx=f.rowid-?"
            " WHERE f.rowid >= ? AND f.rowid < ?",
            [ds.id, base, base, base + ROWID_BASE],
        )
    done, after = 0, -1
    while True:
        with store.transaction(db):
            last = store.scalar(
                db,
                "SELECT MAX(idx) FROM (SELECT idx FROM items WHERE dataset_id=? AND idx > ? ORDER BY idx LIMIT ?)",
                [ds.id, after, INDEX_CHUNK],
            )
            if last is None:
                db.execute(
                    "INSERT INTO search_index(dataset_id, n_rows, built_at) VALUES (?,?,?)",
                    [ds.id, n, store.now_iso()],
                )
                break
            db.execute(
                "INSERT INTO items_fts(rowid, text) SELECT ? + idx, text FROM items"
                " WHERE dataset_id=? AND idx > ? AND idx <= ? AND text IS NOT NULL",
                [base, ds.id, after, last],
            )
            done += store.scalar(
                db, "SELECT COUNT(*) FROM items WHERE dataset_id=? AND idx > ? AND idx <= ?", [ds.id, after, last]
            )
        after = last
        if progress:
            progress(min(done / max(n, 1), 1.0), f"Indexing the text for search: {done:,} of {n:,} rows")
    if progress:
        progress(1.0, f"Indexed {n:,} rows for search")
    return True
