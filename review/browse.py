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
import secrets
import time
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
STATES = ("open", "kept", "relabelled", "unsure", "excluded", "ambiguous", "approved", "overridden")
ACTIONS = ("relabel", "needs review", "keep but ambiguous", "keep")  # issues.score_rows and the judge's fused action
META_SAMPLE = 50  # rows read for the metadata columns' names (and META_VALUES for a column's values)
META_VALUES = 500
COUNT_WINDOW = 20_000  # rows count_within reads first (then twice as many each time)
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
    bad = [a for a in f.action if a not in ACTIONS]
    if bad:
        raise ReviewError(f"Unknown action {', '.join(map(repr, bad))}: the actions are {', '.join(ACTIONS)}.")
    bad = [s for s in f.state if s not in STATES]
    if bad:
        raise ReviewError(f"Unknown state {', '.join(map(repr, bad))}: the states are {', '.join(STATES)}.")
    if f.band is not None and not 0 <= f.band < len(BANDS):
        raise ReviewError(f"Unknown score band {f.band}: there are {len(BANDS)} (0 to {len(BANDS) - 1}).")


def _in(column: str, values, params: list) -> str:
    params.extend(values)
    return f"{column} IN ({','.join('?' * len(values))})"


def _driver(f: RowFilter, ordered: bool) -> str:
    """Which table a query reads first, so that it reads few rows beyond those it returns: the text
    index, the states of the rows decided (a state filter without "open": states_state holds them in
    row order per state), one reviewer's decisions, or (a count, in no order) the flagged rows of the
    run (scores_issue_rank); else the items in row order."""
    if needs_index(f):
        return "text"
    if f.state and "open" not in f.state:
        return "states"
    if f.reviewer:
        return "reviewer"
    if not ordered and (f.flagged or f.band is not None):
        return "flagged"
    return "items"


def _query(
    ds: Dataset,
    f: RowFilter,
    run_id: int | None,
    after: int,
    limit: int | None,
    select: str,
    ordered: bool = True,
    until: int | None = None,
):
    """The SQL and parameters of the rows matching ``f`` after row ``after`` (and, read from the items,
    up to row ``until``), in row order (``ordered``; a count needs none)."""
    check(ds, f)
    text = f.text.strip()
    driver = _driver(f, ordered)
    params: list = []
    states = " LEFT JOIN states st ON st.dataset_id=i.dataset_id AND st.idx=i.idx"
    scores = " LEFT JOIN scores s ON s.run_id=? AND s.idx=i.idx"
    if driver == "text":  # the index drives: its rows come in rowid (= row) order, so a page stops early
        base = ds.id * ROWID_BASE
        sql = (
            f"SELECT {select} FROM items_fts f CROSS JOIN items i ON i.dataset_id=? AND i.idx=f.rowid-?{states}{scores}"
        )
        params += [ds.id, base, run_id]
        phrase = '"' + text.replace('"', '""') + '"'
        where = ["items_fts MATCH ?", "f.rowid > ?", "f.rowid < ?"]
        params += [phrase, base + after, base + ROWID_BASE]
        order = "f.rowid"
    elif driver == "states":  # the decided rows of those states, in row order (the state filter is below)
        sql = (
            f"SELECT {select} FROM states st CROSS JOIN items i ON i.dataset_id=st.dataset_id AND i.idx=st.idx{scores}"
        )
        params.append(run_id)
        where = ["st.dataset_id=?", "st.idx > ?"]
        params += [ds.id, after]
        order = "st.idx"
    elif driver == "reviewer":  # the items, looked up by the row numbers this reviewer decided, in row order
        sql = f"SELECT {select} FROM items i{states}{scores}"
        params.append(run_id)
        where = [
            "i.dataset_id=?",
            "i.idx IN (SELECT r.idx FROM reviews r INDEXED BY reviews_reviewer"
            " WHERE r.dataset_id=? AND r.reviewer=? AND r.idx > ?)",
            "+i.idx > ?",  # + : the row numbers come from the list above, not from a range of the key
        ]
        params += [ds.id, ds.id, f.reviewer, after, after]
        order = "i.idx"
    elif driver == "flagged":  # the run's flagged rows (a count: no order)
        sql = f"SELECT {select} FROM scores s CROSS JOIN items i ON i.dataset_id=? AND i.idx=s.idx{states}"
        params.append(ds.id)
        where = ["s.run_id=?", "s.is_issue=1", "s.idx > ?"]
        params += [run_id, after]
        order = "s.idx"
    else:
        sql = f"SELECT {select} FROM items i{states}{scores}"
        params.append(run_id)
        where = ["i.dataset_id=?", "i.idx > ?"]
        params += [ds.id, after]
        if until is not None:
            where.append("i.idx <= ?")
            params.append(until)
        order = "i.idx"
    if text and driver != "text":
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
    if f.reviewer and driver != "reviewer":
        where.append("i.idx IN (SELECT r.idx FROM reviews r WHERE r.dataset_id=? AND r.reviewer=?)")
        params += [ds.id, f.reviewer]
    if f.annotator:
        where.append("i.idx IN (SELECT a.idx FROM annotations a WHERE a.dataset_id=? AND a.annotator=?)")
        params += [ds.id, f.annotator]
    for column, value in f.meta:
        where.append("CAST(json_extract(i.meta, ?) AS TEXT) = ?")
        params += ["$." + json.dumps(str(column)), str(value)]
    sql += (" WHERE " + " AND ".join(where) if where else "") + (f" ORDER BY {order}" if ordered else "")
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return sql, params


def _run_id(db, ds: Dataset, run_id: int | None) -> int | None:
    if run_id is not None:
        return run_id
    run = latest_run(db, ds.id)
    return run["id"] if run else None


def needs_index(f: RowFilter) -> bool:
    """Whether ``f`` searches the text through items_fts (a text of MIN_INDEXED characters or more)."""
    return len(f.text.strip()) >= MIN_INDEXED


def _require_index(db, ds: Dataset, f: RowFilter) -> None:
    if needs_index(f) and not is_indexed(db, ds):
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
    sql, params = _query(ds, f, _run_id(db, ds, run_id), -1, None if cap is None else cap + 1, "1", ordered=False)
    return store.scalar(db, f"SELECT COUNT(*) FROM ({sql})", params)


@dataclass(frozen=True)
class Count:
    """A count for a page heading: ``n`` rows (more than ``cap`` when n > cap); ``through`` None when every
    row was counted, else the row number the count stopped after (its time was up: n is at least)."""

    n: int
    cap: int
    through: int | None = None

    def text(self) -> str:
        if self.n > self.cap:
            return f"{self.cap:,}+"
        return f"{self.n:,}" if self.through is None else f"at least {self.n:,}"


def count_within(
    db: sqlite_utils.Database,
    ds: Dataset,
    f: RowFilter,
    cap: int = 10_000,
    seconds: float = 0.15,
    run_id: int | None = None,
) -> Count:
    """count() for a page that must draw quickly: a filter read from the items in row order (no index
    narrows it) is counted a range of rows at a time until ``cap`` is passed or ``seconds`` are up
    (then Count.through says how far it got); any other filter is counted whole (its index is small)."""
    if _driver(f, ordered=False) != "items":
        return Count(count(db, ds, f, cap, run_id), cap)
    rid, t0 = _run_id(db, ds, run_id), time.perf_counter()
    last = store.scalar(db, "SELECT MAX(idx) FROM items WHERE dataset_id=?", [ds.id]) or 0
    n, after, window = 0, -1, COUNT_WINDOW
    while after < last:
        until = after + window
        sql, params = _query(ds, f, rid, after, cap + 1 - n, "1", ordered=False, until=until)
        n += store.scalar(db, f"SELECT COUNT(*) FROM ({sql})", params)
        after = until
        if n > cap:
            return Count(n, cap)
        if after < last and time.perf_counter() - t0 > seconds:
            return Count(n, cap, after)
        window = min(window * 2, 8 * COUNT_WINDOW)
    return Count(n, cap)


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


# ----------------------------------------------------------------------------- the filter's options


def meta_keys(db: sqlite_utils.Database, ds: Dataset, sample: int = META_SAMPLE) -> list[str]:
    """The metadata columns (keys of items.meta, the columns not mapped at upload), read from the first
    ``sample`` rows only (an upload gives every row the same columns), in the order they come."""
    keys: dict[str, None] = {}
    for r in store.rows(db, "SELECT meta FROM items WHERE dataset_id=? ORDER BY idx LIMIT ?", [ds.id, sample]):
        try:
            meta = json.loads(r["meta"]) if r["meta"] else {}
        except ValueError:
            continue
        if isinstance(meta, dict):
            keys.update(dict.fromkeys(str(k) for k in meta))
    return list(keys)


def meta_values(db: sqlite_utils.Database, ds: Dataset, column: str, sample: int = META_VALUES) -> list[str]:
    """The values of metadata ``column`` among the first ``sample`` rows, as the filter compares them
    (text), most frequent first: options to pick from (a user may type another)."""
    got = store.rows(
        db,
        "SELECT v, COUNT(*) AS n FROM (SELECT CAST(json_extract(meta, ?) AS TEXT) AS v FROM items"
        " WHERE dataset_id=? ORDER BY idx LIMIT ?) WHERE v IS NOT NULL GROUP BY v ORDER BY n DESC, v LIMIT 100",
        ["$." + json.dumps(str(column)), ds.id, sample],
    )
    return [r["v"] for r in got]


def reviewers(db: sqlite_utils.Database, ds: Dataset) -> list[str]:
    """The users who made a decision on this dataset (the reviewer filter's options), by name."""
    return [
        r["reviewer"]
        for r in store.rows(db, "SELECT DISTINCT reviewer FROM reviews WHERE dataset_id=? ORDER BY reviewer", [ds.id])
    ]


def annotators(db: sqlite_utils.Database, ds: Dataset) -> list[str]:
    """The annotators whose labels the dataset holds (several annotators per row; else none)."""
    return [
        r["annotator"]
        for r in store.rows(
            db, "SELECT DISTINCT annotator FROM annotations WHERE dataset_id=? ORDER BY annotator", [ds.id]
        )
    ]


# ----------------------------------------------------------------------------- the text index


def is_indexed(db: sqlite_utils.Database, ds: Dataset) -> bool:
    return store.scalar(db, "SELECT 1 FROM search_index WHERE dataset_id=?", [ds.id]) is not None


BUILD_KEY = "search_index_build:"  # meta_info key of a build under way: {"token", "at"} (Unix seconds)
BUILD_STALE = 60  # seconds without a chunk written after which a build counts as stopped


def _builder(db, marker: str) -> tuple[str, float] | None:
    raw = store.scalar(db, "SELECT value FROM meta_info WHERE key=?", [marker])
    try:
        got = json.loads(raw) if raw else None
        return (str(got["token"]), float(got["at"])) if got else None
    except (ValueError, KeyError, TypeError):
        return None


def _claim_build(db, marker: str, token: str) -> None:
    db.execute(
        "INSERT OR REPLACE INTO meta_info(key, value) VALUES (?, ?)",
        [marker, json.dumps({"token": token, "at": time.time()})],
    )


def ensure_index(db: sqlite_utils.Database, ds: Dataset, progress: Callable[[float, str], None] | None = None) -> bool:
    """Put the dataset's texts in items_fts (once; items never change after upload). True when it was
    built now, False when it already was. A stopped build leaves no half index: each chunk is written
    in its own transaction and the rows of a dataset are cleared before a build starts over."""
    if is_indexed(db, ds):
        return False
    base = ds.id * ROWID_BASE
    n = store.scalar(db, "SELECT COUNT(*) FROM items WHERE dataset_id=?", [ds.id]) or 0
    marker, token = f"{BUILD_KEY}{ds.id}", secrets.token_hex(8)
    with store.transaction(db):
        if is_indexed(db, ds):  # built by another session since the look above
            return False
        other = _builder(db, marker)
        if other is not None and time.time() - other[1] < BUILD_STALE:
            raise ReviewError(
                f"The text of {ds.name!r} is being indexed for search in another session right now: search again"
                " in a minute (the other filters work meanwhile)."
            )
        _claim_build(db, marker, token)
        # a build stopped half-way left rows: take them out with their own text
        db.execute(
            "INSERT INTO items_fts(items_fts, rowid, text) SELECT 'delete', f.rowid, i.text"
            " FROM items_fts f JOIN items i ON i.dataset_id=? AND i.idx=f.rowid-?"
            " WHERE f.rowid >= ? AND f.rowid < ?",
            [ds.id, base, base, base + ROWID_BASE],
        )
    done, after = 0, -1
    try:
        while True:
            with store.transaction(db):
                mine = _builder(db, marker)
                if mine is None or mine[0] != token:  # this build stalled and another session took it over
                    raise ReviewError(
                        f"Indexing {ds.name!r} for search was taken over by another session: search again."
                    )
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
                    db.execute("DELETE FROM meta_info WHERE key=?", [marker])
                    break
                db.execute(
                    "INSERT INTO items_fts(rowid, text) SELECT ? + idx, text FROM items"
                    " WHERE dataset_id=? AND idx > ? AND idx <= ? AND text IS NOT NULL",
                    [base, ds.id, after, last],
                )
                done += store.scalar(
                    db, "SELECT COUNT(*) FROM items WHERE dataset_id=? AND idx > ? AND idx <= ?", [ds.id, after, last]
                )
                _claim_build(db, marker, token)  # still at it
            after = last
            if progress:
                progress(min(done / max(n, 1), 1.0), f"Indexing the text for search: {done:,} of {n:,} rows")
    except BaseException:  # stopped (the user left the page, an error): the next search starts over at once
        with store.transaction(db):
            if (_builder(db, marker) or ("",))[0] == token:
                db.execute("DELETE FROM meta_info WHERE key=?", [marker])
        raise
    if progress:
        progress(1.0, f"Indexed {n:,} rows for search")
    return True
