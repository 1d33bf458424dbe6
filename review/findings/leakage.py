"""Leakage across two uploads: rows of one dataset with a near copy in another (a train split and its test
split uploaded as two datasets). The near-duplicate check (review.findings.near_duplicates) runs on the two
datasets' texts together, on the same features (word TF-IDF -> SVD, review.findings.features) and nearest rows
(review.findings.neighbours); the pairs that join a row of one to a row of the other are the leakage.

A check is asked for (the Audit page's tab Beyond label errors, or `review leakage NAME --against OTHER`),
not part of every audit: it needs a second dataset named. :func:`check` computes, stores and logs one
(``leakage_checks`` and ``leakage_pairs``, one transaction, the trail row ``leakage_check``); :func:`latest`
and :func:`pairs_page` read them back, with each side's current label and state at the time of reading.
:func:`exclude_rows` excludes the rows here that have a copy there from training, a decision per row pending
verification (as a near-duplicate set's resolution writes them, review.findings.resolve)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import sqlite_utils

from review import store, trail
from review.auth import User, require_active
from review.datasets import Dataset
from review.errors import NotFound, ReviewError
from review.findings import MAX_ROWS, features, near_duplicates, neighbours
from review.findings.summary import snippet


def _noop(fraction: float, message: str) -> None:
    pass


@dataclass(frozen=True)
class LeakageCheck:
    """One check of dataset ``dataset_id`` against ``other_id``: rows (of this dataset with a near copy in the
    other), other_rows (of the other with one here), pairs, conflicting (pairs whose two current labels differ
    when checked), threshold (the words' cosine a pair needs), method (how the nearest rows were found)."""

    id: int
    dataset_id: int
    other_id: int
    other_name: str
    created_at: str
    created_by: str
    rows: int
    other_rows: int
    pairs: int
    conflicting: int
    threshold: float
    method: str
    seconds: float


@dataclass(frozen=True)
class LeakPair:
    """A row here and its near copy in the other dataset, each with its text (SNIPPET characters), current
    label and state as they are now, and the cosine of their words."""

    idx: int
    key: str | None
    text: str
    label: str | None
    state: str
    other_idx: int
    other_key: str | None
    other_text: str
    other_label: str | None
    other_state: str
    similarity: float

    @property
    def conflicting(self) -> bool:
        return self.label != self.other_label


@dataclass(frozen=True)
class Exclusion:
    """What exclude_rows did: the check, the rows excluded (each a decision pending verification: {row: review
    id}) and the rows left alone by reason (review.findings.resolve.SKIP_REASONS)."""

    check_id: int
    reviews: dict[int, int]
    skipped: dict[str, list[int]]

    def message(self) -> str:
        """What was done, in words (plain text: escape it where drawn)."""
        n = len(self.reviews)
        msg = (
            f"Leakage check {self.check_id}: {n:,} row{'s' if n != 1 else ''} excluded from training;"
            " the decisions await verification."
        )
        if self.skipped:
            from review.findings.resolve import SKIP_REASONS

            msg += " Left alone: " + "; ".join(f"{len(v):,} {SKIP_REASONS[k]}" for k, v in self.skipped.items()) + "."
        return msg


def candidates(db: sqlite_utils.Database, ds: Dataset) -> list[tuple[int, str]]:
    """The other text datasets ``ds`` can be checked against: (id, name), by name."""
    return [
        (r[0], r[1])
        for r in db.execute("SELECT id, name FROM datasets WHERE task='text' AND id<>? ORDER BY name", [ds.id])
    ]


def _texts(db: sqlite_utils.Database, ds: Dataset) -> list[str]:
    return [r[0] or "" for r in db.execute("SELECT text FROM items WHERE dataset_id=? ORDER BY idx", [ds.id])]


def _current(db: sqlite_utils.Database, ds: Dataset) -> list[str | None]:
    return [
        r[0]
        for r in db.execute(
            "SELECT COALESCE(st.current_label, i.given_label) FROM items i LEFT JOIN states st"
            " ON st.dataset_id=i.dataset_id AND st.idx=i.idx WHERE i.dataset_id=? ORDER BY i.idx",
            [ds.id],
        )
    ]


def find_pairs(
    texts: list[str], other_texts: list[str], progress: Callable = _noop
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """-> (rows here, rows there, cosine of their words, how the nearest rows were found): every near-duplicate
    pair that joins a text of ``texts`` to one of ``other_texts`` (computed on the two together)."""
    n = len(texts)
    progress(0.05, "Leakage: features of both datasets")
    feats = features.dense_features(list(texts) + list(other_texts))
    progress(0.3, "Leakage: nearest rows")
    nb = neighbours.knn(feats.X, progress=lambda f, m: progress(0.3 + 0.6 * f, m))
    progress(0.9, "Leakage: comparing the words of each pair")
    a, b, s = near_duplicates.pairs(nb, feats.sparse)
    cross = (a < n) & (b >= n)  # a < b: a pair across has its row here first
    return a[cross], b[cross] - n, s[cross], nb.method


def check(
    db: sqlite_utils.Database, ds: Dataset, other: Dataset, user: User, progress: Callable = _noop
) -> LeakageCheck:
    """Look for near copies of ``ds``'s rows in ``other``; store the pairs and log the check (a lead)."""
    require_active(db, user, "lead", "check datasets for leakage")
    if other.id == ds.id:
        raise ReviewError(f"Pick another dataset than {ds.name!r}: leakage is between two uploads.")
    for d in (ds, other):
        if d.task != "text":
            raise ReviewError(
                f"Dataset {d.name!r} is {d.task.upper()}: the leakage check compares texts of two text datasets."
            )
    if ds.n_items + other.n_items > MAX_ROWS:
        raise ReviewError(
            f"{ds.name!r} and {other.name!r} have {ds.n_items + other.n_items:,} rows together: the leakage check"
            f" runs up to {MAX_ROWS:,} (the checks' measured budget). Check a sample of the larger one."
        )
    t0 = time.perf_counter()
    a, b, s, method = find_pairs(_texts(db, ds), _texts(db, other), progress)
    here, there = _current(db, ds), _current(db, other)
    conflicting = int(sum(here[i] != there[j] for i, j in zip(a.tolist(), b.tolist())))
    n_here, n_there = len(np.unique(a)), len(np.unique(b))
    seconds = round(time.perf_counter() - t0, 2)
    with store.transaction(db):
        cur = db.execute(
            "INSERT INTO leakage_checks(dataset_id, other_id, created_at, created_by, rows, other_rows, pairs,"
            " conflicting, threshold, method, seconds) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            [
                ds.id,
                other.id,
                store.now_iso(),
                user.name,
                n_here,
                n_there,
                len(a),
                conflicting,
                near_duplicates.THRESHOLD,
                method,
                seconds,
            ],
        )
        check_id = cur.lastrowid
        db.conn.executemany(
            "INSERT INTO leakage_pairs(check_id, idx, other_idx, similarity) VALUES (?,?,?,?)",
            ((check_id, int(i), int(j), round(float(min(v, 1.0)), 4)) for i, j, v in zip(a, b, s)),
        )
        trail.log(
            db,
            user.name,
            "leakage_check",
            ds.id,
            None,
            against=other.name,
            against_id=other.id,
            pairs=len(a),
            rows=n_here,
            conflicting=conflicting,
        )
    progress(1.0, "Leakage check done")
    return get(db, check_id)


_COLS = (
    "c.id, c.dataset_id, c.other_id, d.name AS other_name, c.created_at, c.created_by, c.rows, c.other_rows,"
    " c.pairs, c.conflicting, c.threshold, c.method, c.seconds"
)


def _check(r) -> LeakageCheck:
    return LeakageCheck(*(r[k] for k in LeakageCheck.__dataclass_fields__))


def get(db: sqlite_utils.Database, check_id: int) -> LeakageCheck:
    r = store.fetch_one(
        db, f"SELECT {_COLS} FROM leakage_checks c JOIN datasets d ON d.id=c.other_id WHERE c.id=?", [check_id]
    )
    if r is None:
        raise NotFound(f"There is no leakage check {check_id}: run one from the Audit page.")
    return _check(r)


def latest(db: sqlite_utils.Database, ds: Dataset) -> list[LeakageCheck]:
    """The newest check of ``ds`` against each other dataset (still there), newest first."""
    return [
        _check(r)
        for r in store.rows(
            db,
            f"SELECT {_COLS} FROM leakage_checks c JOIN datasets d ON d.id=c.other_id WHERE c.id IN"
            " (SELECT MAX(id) FROM leakage_checks WHERE dataset_id=? GROUP BY other_id) ORDER BY c.id DESC",
            [ds.id],
        )
    ]


def pairs_page(
    db: sqlite_utils.Database, chk: LeakageCheck, after: tuple[int, int] = (-1, -1), limit: int = 50
) -> list[LeakPair]:
    """A page of a check's pairs by (row here, row there) after ``after`` (keyset), each side as it is now."""
    sql = (
        "SELECT p.idx, p.other_idx, p.similarity, i.key, i.text, COALESCE(s.current_label, i.given_label) AS label,"
        " COALESCE(s.state, 'open') AS state, o.key AS okey, o.text AS otext,"
        " COALESCE(os.current_label, o.given_label) AS olabel, COALESCE(os.state, 'open') AS ostate"
        " FROM leakage_pairs p"
        " JOIN items i ON i.dataset_id=? AND i.idx=p.idx LEFT JOIN states s ON s.dataset_id=? AND s.idx=p.idx"
        " JOIN items o ON o.dataset_id=? AND o.idx=p.other_idx"
        " LEFT JOIN states os ON os.dataset_id=? AND os.idx=p.other_idx"
        " WHERE p.check_id=? AND (p.idx, p.other_idx) > (?, ?) ORDER BY p.idx, p.other_idx LIMIT ?"
    )
    d, o = chk.dataset_id, chk.other_id
    return [
        LeakPair(
            r["idx"],
            r["key"],
            snippet(r["text"]),
            r["label"],
            r["state"],
            r["other_idx"],
            r["okey"],
            snippet(r["otext"]),
            r["olabel"],
            r["ostate"],
            r["similarity"],
        )
        for r in store.rows(db, sql, [d, d, o, o, chk.id, after[0], after[1], limit])
    ]


def has_copies(db: sqlite_utils.Database, dataset_id: int) -> bool:
    """Whether the newest check of the dataset against some other one found a pair (the review queue's filter)."""
    return bool(
        store.scalar(
            db,
            "SELECT 1 FROM leakage_checks WHERE id IN (SELECT MAX(id) FROM leakage_checks WHERE dataset_id=?"
            " GROUP BY other_id) AND pairs>0 LIMIT 1",
            [dataset_id],
        )
    )


def open_here(db: sqlite_utils.Database, chk: LeakageCheck) -> int:
    """How many of the rows here that the check found are still open (exclude_rows would decide them): its
    rows less those decided, found from the decided rows' side (each a lookup in leakage_pairs' key), so a
    check of many pairs costs no more than the dataset's decisions."""
    decided = store.scalar(
        db,
        "SELECT COUNT(*) FROM states st WHERE st.dataset_id=? AND st.state!='open'"
        " AND EXISTS (SELECT 1 FROM leakage_pairs p WHERE p.check_id=? AND p.idx=st.idx)",
        [chk.dataset_id, chk.id],
    )
    return chk.rows - decided


@dataclass(frozen=True)
class Copy:
    """A near copy of a row in another dataset, from the newest check against it."""

    check_id: int
    other_name: str
    other_idx: int
    other_key: str | None
    other_label: str | None
    similarity: float


def copies_of(db: sqlite_utils.Database, ds: Dataset, idx: int) -> list[Copy]:
    """The near copies of row ``idx`` of ``ds`` in other datasets, by the newest check against each (the review
    card's reasons). One indexed read (the checks' ids, then leakage_pairs by its key)."""
    return [
        Copy(r["check_id"], r["name"], r["other_idx"], r["key"], r["label"], r["similarity"])
        for r in store.rows(
            db,
            "SELECT p.check_id, d.name, p.other_idx, o.key, COALESCE(st.current_label, o.given_label) AS label,"
            " p.similarity FROM leakage_pairs p JOIN leakage_checks c ON c.id=p.check_id"
            " JOIN datasets d ON d.id=c.other_id JOIN items o ON o.dataset_id=c.other_id AND o.idx=p.other_idx"
            " LEFT JOIN states st ON st.dataset_id=c.other_id AND st.idx=p.other_idx"
            " WHERE p.check_id IN (SELECT MAX(id) FROM leakage_checks WHERE dataset_id=? GROUP BY other_id)"
            " AND p.idx=? ORDER BY p.similarity DESC, p.other_idx LIMIT 10",
            [ds.id, idx],
        )
    ]


def rows_here(db: sqlite_utils.Database, chk: LeakageCheck) -> list[int]:
    """The rows of the checked dataset with a near copy in the other (for a filter or an exclusion)."""
    return [r[0] for r in db.execute("SELECT DISTINCT idx FROM leakage_pairs WHERE check_id=? ORDER BY idx", [chk.id])]


def exclude_rows(db: sqlite_utils.Database, ds: Dataset, user: User, check_id: int, note: str = "") -> Exclusion:
    """Exclude from training every row of ``ds`` that check ``check_id`` found a near copy of in the other
    dataset: one "exclude" decision per open row, pending verification; rows decided already or held by another
    reviewer are left alone and counted. One transaction, with a ``leakage_exclude`` trail row. An annotator or
    a lead (a set of decisions, as resolving a near-duplicate set). Refused: a check of another dataset, and a
    check none of whose rows is open."""
    from review.datasets import latest_run
    from review.findings.resolve import SKIP_REASONS, open_rows, write_decisions

    user = require_active(db, user, "annotator", "exclude leaked rows from training")
    chk = get(db, int(check_id))
    if chk.dataset_id != ds.id:
        raise NotFound(f"{ds.name!r} has no leakage check {check_id}: open the check from this dataset's Audit page.")
    note = (note or "").strip()
    if len(note) > 5000:
        raise ReviewError("The note is too long: keep it under 5,000 characters.")
    with store.transaction(db):
        rows = rows_here(db, chk)
        run = latest_run(db, ds.id)
        run_id = run["id"] if run else None
        skipped: dict[str, list[int]] = {}
        todo = []
        for a in range(0, len(rows), 500):  # the IN list of open_rows, a block at a time
            todo += [(r, "exclude", None) for r in open_rows(db, ds, user, rows[a : a + 500], run_id, skipped)]
        if not todo:
            raise ReviewError(
                f"None of the {len(rows):,} rows leakage check {chk.id} found is open for a decision ("
                + "; ".join(f"{len(v):,} {SKIP_REASONS[k]}" for k, v in skipped.items())
                + "): nothing was changed. Verify or reject their decisions first."
            )
        row_note = f"Leakage check {chk.id}: a near copy in {chk.other_name}; excluded from training" + (
            f". {note}" if note else ""
        )
        _, reviews = write_decisions(db, ds, user, todo, run_id, row_note, store.now_iso(), leakage_check=chk.id)
        trail.log(
            db,
            user.name,
            "leakage_exclude",
            ds.id,
            None,
            check=chk.id,
            against=chk.other_name,
            excluded=len(reviews),
            skipped={k: len(v) for k, v in skipped.items()},
            note=note,
        )
    return Exclusion(chk.id, reviews, skipped)
