"""Bulk fix by pattern: one correction for a filtered set, a random sample decided first, one undo.

A lead picks a set (a :class:`review.browse.RowFilter`, e.g. given A and predicted B in the latest run)
and the label every row of it should get. :func:`start` draws a random sample of the set's rows that are
open and not labelled so already (status ``sampling``); reviewers decide those rows one by one, as any
decision (:func:`decide_sample` calls :func:`review.workflow.decide`); :func:`sample_status` gives the
sample's precision (rows relabelled to the label / rows decided) with its Wilson interval. Once every
sample row is decided, :func:`apply` relabels the rest of the set in one transaction: per row a reviews
row (decision relabel, reviewer the lead, ``bulk_id``), states as decide (and verify, when the lead
approves them at once) would leave them, a ``bulk_rows`` row with what it was before, and the trail rows
``decision`` (and ``verify``) with ``bulk``; one ``bulk_apply`` row with the counts. :func:`undo` puts every
row back as ``bulk_rows`` recorded, except rows changed since (their version differs), which it keeps and
names. Text datasets only (a NER correction is a sentence's whole tag sequence, not one label).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import sqlite_utils

from review import browse, store, trail, workflow
from review.auth import User, require_active
from review.blind import BlindCall
from review.browse import RowFilter
from review.datasets import Dataset, latest_run
from review.datasets import get as get_dataset
from review.errors import NotFound, ReviewError, StaleViewError
from review.precision import wilson

SAMPLE_DEFAULT = 20
SAMPLE_MAX = 500
CHUNK = 900  # rows read per query (under SQLite's 999 host parameters)
STATUSES = ("sampling", "applied", "undone", "cancelled")
SKIP_REASONS = {
    "not_open": "decided or verified since the set was drawn (not open)",
    "claimed": "held by another reviewer in the Review queue",
    "already": "already labelled with the target label",
}
SNIPPET = 600  # characters of a sample row's text
# the blind first look (review.blind): a sample row is decided with the model's view shown, the bulk rows unseen
SAMPLE_EXEMPT, APPLY_EXEMPT = "bulk sample", "bulk action"


@dataclass(frozen=True)
class BulkAction:
    """One bulk action as stored (``bulk_actions``)."""

    id: int
    dataset_id: int
    run_id: int | None
    created_by: str
    created_at: str
    filter: RowFilter
    label: str
    n_matched: int
    sample: list[int]
    status: str
    approve: bool | None = None
    n_applied: int | None = None
    applied_by: str | None = None
    applied_at: str | None = None
    undone_by: str | None = None
    undone_at: str | None = None

    @property
    def describe(self) -> str:
        return f"{self.filter.describe()} → {self.label}"


@dataclass(frozen=True)
class SampleRow:
    """One row of the sample as a reviewer sees it, and the decision in force on it (None: still open)."""

    idx: int
    key: str
    text: str | None
    given_label: str | None
    current_label: str | None
    predicted_label: str | None
    confidence: float | None
    state: str
    version: int
    claimed_by: str | None = None
    decision: str | None = None  # keep | relabel | unsure, the decision in force
    decided_label: str | None = None  # the label it gives (a keep: the label kept; unsure: None)
    status: str | None = None  # of that decision: pending | approved | overridden
    reviewer: str | None = None

    @property
    def decided(self) -> bool:
        return self.decision is not None


@dataclass(frozen=True)
class SampleStatus:
    """The sample of a bulk action: its rows, how many are decided, how many of those a reviewer relabelled
    to the action's label (``relabelled``), the precision relabelled / decided and its 95 % Wilson interval."""

    action: BulkAction
    rows: list[SampleRow]
    decided: int
    relabelled: int
    precision: float | None
    low: float
    high: float

    @property
    def open(self) -> int:
        return len(self.rows) - self.decided

    @property
    def complete(self) -> bool:
        return self.decided == len(self.rows)


@dataclass(frozen=True)
class BulkResult:
    """What :func:`apply` did: rows relabelled (``applied``), whether approved at once, rows of the set left
    alone by reason (SKIP_REASONS keys), the sample rows (decided one by one), the rows in the set now."""

    action_id: int
    applied: int
    approved: bool
    skipped: dict[str, int]
    sample: int
    matched: int
    seconds: float

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())


@dataclass(frozen=True)
class UndoResult:
    """What :func:`undo` did: rows put back, and the rows kept because they changed since (row numbers, keys)."""

    action_id: int
    undone: int
    kept: list[int] = field(default_factory=list)
    kept_keys: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class BulkActionSummary:
    """One line of the bulk actions list."""

    id: int
    status: str
    filter_text: str
    label: str
    n_matched: int
    n_sample: int
    n_applied: int | None
    approve: bool | None
    created_by: str
    created_at: str
    applied_by: str | None
    applied_at: str | None
    undone_by: str | None
    undone_at: str | None
    n_pending: int = 0  # applied rows whose bulk decision still awaits verification


# ----------------------------------------------------------------------------- reads


def _action(row) -> BulkAction:
    return BulkAction(
        id=row["id"],
        dataset_id=row["dataset_id"],
        run_id=row["run_id"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        filter=RowFilter.from_json(row["filter"]),
        label=row["label"],
        n_matched=row["n_matched"],
        sample=[int(i) for i in json.loads(row["sample"])],
        status=row["status"],
        approve=None if row["approve"] is None else bool(row["approve"]),
        n_applied=row["n_applied"],
        applied_by=row["applied_by"],
        applied_at=row["applied_at"],
        undone_by=row["undone_by"],
        undone_at=row["undone_at"],
    )


def get(db: sqlite_utils.Database, action_id: int) -> BulkAction:
    """A bulk action by id; NotFound naming it."""
    row = store.fetch_one(db, "SELECT * FROM bulk_actions WHERE id=?", [int(action_id)])
    if row is None:
        raise NotFound(f"There is no bulk action {action_id}: see the list of bulk actions (review bulk NAME --list).")
    return _action(row)


def actions(db: sqlite_utils.Database, ds: Dataset, limit: int = 50) -> list[BulkActionSummary]:
    """The dataset's bulk actions, newest first (at most ``limit``), with the bulk decisions still pending."""
    got = store.rows(
        db,
        "SELECT b.*, (SELECT COUNT(*) FROM reviews r WHERE r.bulk_id=b.id AND r.status='pending') AS n_pending"
        " FROM bulk_actions b WHERE b.dataset_id=? ORDER BY b.id DESC LIMIT ?",
        [ds.id, int(limit)],
    )
    out = []
    for r in got:
        a = _action(r)
        out.append(
            BulkActionSummary(
                id=a.id,
                status=a.status,
                filter_text=a.filter.describe(),
                label=a.label,
                n_matched=a.n_matched,
                n_sample=len(a.sample),
                n_applied=a.n_applied,
                approve=a.approve,
                created_by=a.created_by,
                created_at=a.created_at,
                applied_by=a.applied_by,
                applied_at=a.applied_at,
                undone_by=a.undone_by,
                undone_at=a.undone_at,
                n_pending=r["n_pending"],
            )
        )
    return out


def open_action(db: sqlite_utils.Database, ds: Dataset) -> BulkAction | None:
    """The dataset's newest bulk action still sampling, or None."""
    row = store.fetch_one(
        db, "SELECT * FROM bulk_actions WHERE dataset_id=? AND status='sampling' ORDER BY id DESC LIMIT 1", [ds.id]
    )
    return _action(row) if row else None


def confusion_pairs(db: sqlite_utils.Database, ds: Dataset) -> list[tuple[str, str, int]]:
    """(given, predicted, flagged rows) of the latest run where the model disagrees, most rows first: the
    picker's pairs (stats.flagged_confusion without given == predicted)."""
    from review.stats import flagged_confusion

    pairs = [(g, p, n) for g, p, n in flagged_confusion(db, ds) if g != p]
    return sorted(pairs, key=lambda t: (-t[2], str(t[0]), str(t[1])))


def pair_filter(given: str, predicted: str, flagged_only: bool = True) -> RowFilter:
    """The set of a confusion pair: given ``given``, predicted ``predicted`` in the latest run (only the
    flagged rows unless ``flagged_only`` is False)."""
    return RowFilter(given=(given,), predicted=(predicted,), flagged=True if flagged_only else None)


def _check(ds: Dataset, label: str) -> None:
    if ds.task != "text":
        raise ReviewError(
            f"{ds.name!r} is a NER dataset: a bulk fix gives rows one label, and a sentence's correction is its"
            " whole tag sequence. Correct sentences on the Review page."
        )
    if label not in ds.labels:
        raise ReviewError(f"{label!r} is not a label of {ds.name!r}: choose one of {', '.join(ds.labels)}.")


def _chunks(it: Iterator[int] | Sequence[int], n: int = CHUNK) -> Iterator[list[int]]:
    buf: list[int] = []
    for i in it:
        buf.append(i)
        if len(buf) == n:
            yield buf
            buf = []
    if buf:
        yield buf


_ROW_SQL = (
    "SELECT i.idx AS idx, i.given_label AS given_label, st.state AS state, st.version AS version,"
    " st.current_label AS current_label, st.claimed_by AS claimed_by, st.claimed_until AS claimed_until,"
    " sc.suggested_label AS suggested_label"
    " FROM items i LEFT JOIN states st ON st.dataset_id=i.dataset_id AND st.idx=i.idx"
    " LEFT JOIN scores sc ON sc.run_id=? AND sc.idx=i.idx"
    " WHERE i.dataset_id=? AND i.idx IN ({})"
)


def _classify(db, ds: Dataset, rows: Iterator[int], label: str, user: User, run_id: int | None, exclude=frozenset()):
    """Yield (reason, row) for every row number of ``rows`` not in ``exclude``: reason None when the row
    can take the bulk correction (open, not held by someone else, not labelled ``label`` already)."""
    now = time.time()
    for chunk in _chunks(i for i in rows if i not in exclude):
        got = store.rows(db, _ROW_SQL.format(",".join("?" * len(chunk))), [run_id or -1, ds.id, *chunk])
        for r in got:
            current = r["current_label"] or r["given_label"]
            if r["state"] not in (None, "open"):
                yield "not_open", r
            elif r["claimed_by"] and r["claimed_by"] != user.name and (r["claimed_until"] or 0) > now:
                yield "claimed", r
            elif current == label:
                yield "already", r
            else:
                yield None, r


def _run_id(db, ds: Dataset) -> int | None:
    run = latest_run(db, ds.id)
    return run["id"] if run else None


def eligible_count(db: sqlite_utils.Database, ds: Dataset, f: RowFilter, label: str, user: User) -> tuple[int, int]:
    """(rows in the set, rows of it a bulk fix to ``label`` would change now), for the page before a sample
    is drawn. Reads row numbers only, CHUNK at a time."""
    _check(ds, label)
    run_id = _run_id(db, ds)
    total = eligible = 0
    for reason, _ in _classify(db, ds, browse.matching(db, ds, f, run_id), label, user, run_id):
        total += 1
        eligible += reason is None
    return total, eligible


def remaining(db: sqlite_utils.Database, action_id: int, user: User) -> int:
    """How many rows :func:`apply` would relabel now (the set re-drawn, sample rows and skipped rows aside)."""
    a = get(db, action_id)
    ds = get_dataset(db, a.dataset_id)
    run_id = _run_id(db, ds)
    rows = browse.matching(db, ds, a.filter, run_id)
    return sum(reason is None for reason, _ in _classify(db, ds, rows, a.label, user, run_id, frozenset(a.sample)))


_SAMPLE_SQL = (
    "SELECT i.idx AS idx, i.key AS key, substr(i.text, 1, ?) AS text, i.given_label AS given_label,"
    " COALESCE(st.current_label, i.given_label) AS current_label, COALESCE(st.state, 'open') AS state,"
    " COALESCE(st.version, 0) AS version, CASE WHEN st.claimed_until > ? THEN st.claimed_by END AS claimed_by,"
    " sc.predicted_label AS predicted_label, sc.confidence AS confidence,"
    " r.decision AS decision, r.status AS status, r.reviewer AS reviewer, r.new_label AS new_label,"
    " r.final_label AS final_label"
    " FROM items i LEFT JOIN states st ON st.dataset_id=i.dataset_id AND st.idx=i.idx"
    " LEFT JOIN scores sc ON sc.run_id=? AND sc.idx=i.idx"
    " LEFT JOIN reviews r ON r.id = CASE WHEN st.state IS NOT NULL AND st.state != 'open' THEN"
    " (SELECT r2.id FROM reviews r2 WHERE r2.dataset_id=i.dataset_id AND r2.idx=i.idx"
    " AND r2.status IN ('pending', 'approved', 'overridden') ORDER BY r2.id DESC LIMIT 1) END"
    " WHERE i.dataset_id=? AND i.idx IN ({})"
)


def sample_status(db: sqlite_utils.Database, action_id: int) -> SampleStatus:
    """The action's sample rows in the order drawn, each open or with the decision in force on it, and the
    precision: rows whose decision gives the action's label / rows decided (an unsure counts as decided)."""
    a = get(db, action_id)
    rows: list[SampleRow] = []
    if a.sample:
        got = {
            r["idx"]: r
            for r in store.rows(
                db,
                _SAMPLE_SQL.format(",".join("?" * len(a.sample))),
                [SNIPPET, time.time(), a.run_id or -1, a.dataset_id, *a.sample],
            )
        }
        for idx in a.sample:
            r = got.get(idx)
            if r is None:
                continue
            decision = r["decision"]
            if decision is None:
                label = None
            elif r["status"] in ("approved", "overridden"):
                label = r["final_label"]
            elif decision == "relabel":
                label = r["new_label"]
            elif decision == "keep":
                label = r["current_label"]
            else:
                label = None
            rows.append(
                SampleRow(
                    idx=idx,
                    key=r["key"],
                    text=r["text"],
                    given_label=r["given_label"],
                    current_label=r["current_label"],
                    predicted_label=r["predicted_label"],
                    confidence=r["confidence"],
                    state=r["state"],
                    version=r["version"],
                    claimed_by=r["claimed_by"],
                    decision=decision,
                    decided_label=label,
                    status=r["status"],
                    reviewer=r["reviewer"],
                )
            )
    decided = sum(r.decided for r in rows)
    hits = sum(r.decided and r.decided_label == a.label for r in rows)
    p, lo, hi = wilson(hits, decided)
    return SampleStatus(a, rows, decided, hits, p, lo, hi)


# ----------------------------------------------------------------------------- writes


def start(
    db: sqlite_utils.Database,
    ds: Dataset,
    user: User,
    f: RowFilter,
    label: str,
    sample_size: int = SAMPLE_DEFAULT,
    seed: int | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> BulkAction:
    """A lead starts a bulk fix of the rows ``f`` matches to ``label``: counts the set and draws a random
    sample of ``sample_size`` of its rows that are open, not held by another reviewer and not labelled
    ``label`` already (seeded; the seed is recorded). Status ``sampling``; trail row ``bulk_start``.
    ReviewError when no row of the set would change."""
    user = require_active(db, user, "lead", "start a bulk fix")
    _check(ds, label)
    if not 1 <= int(sample_size) <= SAMPLE_MAX:
        raise ReviewError(f"A sample is 1 to {SAMPLE_MAX} rows, not {sample_size}.")
    browse.check(ds, f)
    if len(f.text.strip()) >= browse.MIN_INDEXED:
        browse.ensure_index(db, ds, progress)
    seed = random.SystemRandom().randrange(2**31) if seed is None else int(seed)
    with store.transaction(db):
        run_id = _run_id(db, ds)
        n = 0
        eligible: list[int] = []
        for reason, r in _classify(db, ds, browse.matching(db, ds, f, run_id), label, user, run_id):
            n += 1
            if reason is None:
                eligible.append(r["idx"])
        if not eligible:
            raise ReviewError(
                f"No row to fix: of the {n:,} rows where {f.describe()}, none is open and labelled other than"
                f" {label!r}. Change the filter or the label."
            )
        sample = sorted(random.Random(seed).sample(eligible, min(int(sample_size), len(eligible))))
        cur = db.execute(
            "INSERT INTO bulk_actions(dataset_id, run_id, created_by, created_at, filter, label, n_matched, sample,"
            " status) VALUES (?,?,?,?,?,?,?,?,'sampling')",
            [ds.id, run_id, user.name, store.now_iso(), f.to_json(), label, n, json.dumps(sample)],
        )
        trail.log(
            db,
            user.name,
            "bulk_start",
            ds.id,
            None,
            bulk=cur.lastrowid,
            filter=json.loads(f.to_json()),
            described=f.describe(),
            label=label,
            matched=n,
            eligible=len(eligible),
            sample=sample,
            seed=seed,
            run=run_id,
        )
        return get(db, cur.lastrowid)


def _sampling(db, action_id: int) -> BulkAction:
    a = get(db, action_id)
    if a.status != "sampling":
        raise StaleViewError(f"Bulk action {a.id} is already {a.status}: nothing was changed.")
    return a


def decide_sample(
    db: sqlite_utils.Database,
    action_id: int,
    idx: int,
    user: User,
    wrong: bool,
    seen_version: int,
    note: str = "",
) -> int:
    """A reviewer (annotator or lead) decides one sample row, as any decision (workflow.decide): ``wrong``
    relabels it to the action's label, else keeps it as labelled. Returns the review id."""
    a = _sampling(db, action_id)
    if int(idx) not in a.sample:
        raise ReviewError(f"Row {idx} is not in the sample of bulk action {a.id}: decide it on the Review page.")
    ds = get_dataset(db, a.dataset_id)
    return workflow.decide(
        db,
        ds,
        int(idx),
        user,
        "relabel" if wrong else "keep",
        seen_version,
        new_label=a.label if wrong else None,
        note=note,
        blind=BlindCall.not_applicable(SAMPLE_EXEMPT),
    )


def cancel(db: sqlite_utils.Database, action_id: int, user: User) -> None:
    """A lead drops a bulk action still sampling (its sample decisions stay, as any decision); ``bulk_cancel``."""
    user = require_active(db, user, "lead", "cancel a bulk fix")
    with store.transaction(db):
        a = _sampling(db, action_id)
        db.execute("UPDATE bulk_actions SET status='cancelled' WHERE id=?", [a.id])
        trail.log(db, user.name, "bulk_cancel", a.dataset_id, None, bulk=a.id, label=a.label)


def apply(
    db: sqlite_utils.Database,
    action_id: int,
    user: User,
    approve: bool,
    progress: Callable[[float, str], None] | None = None,
) -> BulkResult:
    """A lead applies the action's correction to the rest of its set, once every sample row is decided.

    The set is re-drawn (browse.matching); a row is relabelled when it is open, not held by another
    reviewer, not labelled so already, and not in the sample (decided one by one). Per row, one
    transaction for all: a reviews row (relabel to the label, reviewer the lead, ``bulk_id``; status
    pending, or approved with verified_by the lead when ``approve``), states as workflow.decide (+ verify)
    leave them (version bumped once, or twice), a bulk_rows row with what it was before, trail rows
    ``decision`` (+ ``verify``) with ``bulk`` (and ``approved_by_bulk``). One ``bulk_apply`` trail row
    with the counts."""
    user = require_active(db, user, "lead", "apply a bulk fix")
    approve = bool(approve)
    t0 = time.perf_counter()
    with store.transaction(db):
        a = _sampling(db, action_id)
        ds = get_dataset(db, a.dataset_id)
        if a.label not in ds.labels:  # the label set changed since the sample was drawn (review.taxonomy)
            raise ReviewError(
                f"{a.label!r} is no longer a label of {ds.name!r} (the label set changed since bulk action {a.id}"
                f" was started): cancel it and start again with one of {', '.join(ds.labels)}. Nothing was changed."
            )
        s = sample_status(db, a.id)
        if not s.complete:
            raise ReviewError(
                f"{s.open:,} of the {len(s.rows):,} sample rows of bulk action {a.id} are not decided yet: decide"
                " them first (the sample says how often the correction is right). Nothing was changed."
            )
        run_id = _run_id(db, ds)
        skipped = dict.fromkeys(SKIP_REASONS, 0)
        todo = []
        seen = [0]

        def counted(rows: Iterator[int]) -> Iterator[int]:
            for i in rows:
                seen[0] += 1
                yield i

        rows_now = counted(browse.matching(db, ds, a.filter, run_id))
        for reason, r in _classify(db, ds, rows_now, a.label, user, run_id, frozenset(a.sample)):
            if reason is None:
                todo.append(r)
            else:
                skipped[reason] += 1
        matched = seen[0]  # the rows in the set now, the sample rows that still match included
        now = store.now_iso()
        next_id = (store.scalar(db, "SELECT MAX(id) FROM reviews") or 0) + 1
        note = f"Bulk action {a.id}: {a.filter.describe()}; sample {s.relabelled}/{s.decided} relabelled"
        reviews, states, rows = [], [], []
        for k, r in enumerate(todo):
            rid = next_id + k
            v0 = r["version"] or 0
            given = r["given_label"]
            v1 = v0 + 1 + approve
            took = int(r["suggested_label"] is not None and r["suggested_label"] == a.label)
            reviews.append(
                [
                    rid,
                    ds.id,
                    r["idx"],
                    run_id,
                    a.label,
                    note,
                    user.name,
                    now,
                    took,
                    "approved" if approve else "pending",
                    user.name if approve else None,
                    now if approve else None,
                    "" if approve else None,
                    a.label if approve else None,
                    v0 + 1,
                    a.id,
                ]
            )
            if approve:
                states.append([ds.id, r["idx"], "approved", v1, None if a.label == given else a.label, now])
            else:
                states.append([ds.id, r["idx"], "relabelled", v1, r["current_label"], now])
            rows.append([a.id, r["idx"], rid, r["state"], v0, r["current_label"], v1])
        db.conn.executemany(
            "INSERT INTO reviews(id, dataset_id, idx, run_id, decision, new_label, note, reviewer, created_at,"
            " took_suggestion, status, verified_by, verified_at, verify_note, final_label, version, bulk_id)"
            " VALUES (?,?,?,?,'relabel',?,?,?,?,?,?,?,?,?,?,?,?)",
            reviews,
        )
        db.conn.executemany(
            "INSERT INTO states(dataset_id, idx, state, version, current_label, updated_at) VALUES (?,?,?,?,?,?)"
            " ON CONFLICT(dataset_id, idx) DO UPDATE SET state=excluded.state, version=excluded.version,"
            " current_label=excluded.current_label, claimed_by=NULL, claimed_until=NULL, updated_at=excluded.updated_at",
            states,
        )
        db.conn.executemany(
            "INSERT INTO bulk_rows(bulk_id, idx, review_id, prev_state, prev_version, prev_label, version)"
            " VALUES (?,?,?,?,?,?,?)",
            rows,
        )
        extra = {"approved_by_bulk": True} if approve else {}
        entries = []
        for k, r in enumerate(todo):
            rid = next_id + k
            entries.append(
                (
                    "decision",
                    ds.id,
                    r["idx"],
                    dict(
                        review=rid,
                        decision="relabel",
                        new_label=a.label,
                        previous_label=r["current_label"] or r["given_label"],
                        note=note,
                        revises=None,
                        took_suggestion=bool(reviews[k][8]),
                        bulk=a.id,
                        blind_exempt=APPLY_EXEMPT,
                    ),
                )
            )
            if approve:
                entries.append(
                    (
                        "verify",
                        ds.id,
                        r["idx"],
                        dict(
                            review=rid,
                            action="approve",
                            final_label=a.label,
                            decision="relabel",
                            reviewer=user.name,
                            note="",
                            self_approved=True,
                            bulk=a.id,
                            **extra,
                        ),
                    )
                )
        if progress:
            progress(0.5, f"Writing {len(entries):,} audit-trail rows")
        trail.log_many(db, user.name, entries)  # one row per change, chained and sealed as trail.log would
        db.execute(
            "UPDATE bulk_actions SET status='applied', approve=?, n_applied=?, applied_by=?, applied_at=? WHERE id=?",
            [int(approve), len(todo), user.name, now, a.id],
        )
        seconds = round(time.perf_counter() - t0, 3)
        trail.log(
            db,
            user.name,
            "bulk_apply",
            ds.id,
            None,
            bulk=a.id,
            label=a.label,
            approve=approve,
            applied=len(todo),
            skipped=skipped,
            sample=len(a.sample),
            sample_relabelled=s.relabelled,
            sample_decided=s.decided,
            matched=matched,
        )
    if progress:
        progress(1.0, f"Relabelled {len(todo):,} rows")
    return BulkResult(a.id, len(todo), approve, skipped, len(a.sample), matched, seconds)


def undo(db: sqlite_utils.Database, action_id: int, user: User) -> UndoResult:
    """A lead undoes an applied bulk action in one go: every row it changed is put back as bulk_rows
    recorded (open, its label before, version bumped), its bulk decision marked ``undone``, a
    ``decision_undone`` trail row each; a row changed since (its version is not the one the action left:
    another decision, a verification) is kept as it is and named. One ``bulk_undo`` trail row with the
    counts. The sample rows, decided one by one, are not touched. ReviewError when every row changed."""
    user = require_active(db, user, "lead", "undo a bulk fix")
    with store.transaction(db):
        a = get(db, action_id)
        if a.status == "sampling":
            raise ReviewError(f"Bulk action {a.id} was not applied: nothing to undo (cancel it instead).")
        if a.status != "applied":
            raise StaleViewError(f"Bulk action {a.id} is already {a.status}: nothing was changed.")
        got = store.rows(
            db,
            "SELECT b.idx AS idx, b.review_id AS review_id, b.prev_state AS prev_state, b.prev_label AS prev_label,"
            " b.version AS version, st.version AS now_version, i.key AS key, i.given_label AS given_label"
            " FROM bulk_rows b JOIN items i ON i.dataset_id=? AND i.idx=b.idx"
            " LEFT JOIN states st ON st.dataset_id=? AND st.idx=b.idx WHERE b.bulk_id=? ORDER BY b.idx",
            [a.dataset_id, a.dataset_id, a.id],
        )
        back = [r for r in got if r["now_version"] == r["version"]]
        kept = [r for r in got if r["now_version"] != r["version"]]
        if got and not back:
            raise ReviewError(
                f"Every one of the {len(got):,} rows of bulk action {a.id} changed since it was applied (decided or"
                " verified again): nothing was undone. Correct them one by one on the Review or Verify page."
            )
        now = store.now_iso()
        db.conn.executemany(
            "UPDATE states SET state='open', version=?, current_label=?, claimed_by=NULL, claimed_until=NULL,"
            " updated_at=? WHERE dataset_id=? AND idx=?",
            [[r["version"] + 1, r["prev_label"], now, a.dataset_id, r["idx"]] for r in back],
        )
        db.conn.executemany("UPDATE reviews SET status='undone' WHERE id=?", [[r["review_id"]] for r in back])
        trail.log_many(
            db,
            user.name,
            [
                (
                    "decision_undone",
                    a.dataset_id,
                    r["idx"],
                    dict(
                        review=r["review_id"],
                        bulk=a.id,
                        label=r["prev_label"] or r["given_label"],
                        state="open",
                        previous_state=r["prev_state"],
                    ),
                )
                for r in back
            ],
        )
        db.execute(
            "UPDATE bulk_actions SET status='undone', undone_by=?, undone_at=? WHERE id=?", [user.name, now, a.id]
        )
        trail.log(
            db,
            user.name,
            "bulk_undo",
            a.dataset_id,
            None,
            bulk=a.id,
            undone=len(back),
            kept=len(kept),
            kept_rows=[r["idx"] for r in kept[:200]],
        )
    return UndoResult(a.id, len(back), [r["idx"] for r in kept], [r["key"] for r in kept])


def undo_message(res: UndoResult) -> str:
    """What undo did, in words (the page and the CLI)."""
    msg = f"Bulk action {res.action_id} undone: {res.undone:,} rows put back as they were."
    if res.kept:
        keys = ", ".join(res.kept_keys[:10]) + (f" and {len(res.kept) - 10:,} more" if len(res.kept) > 10 else "")
        msg += f" {len(res.kept):,} rows changed since it was applied and were kept as they are (row {keys})."
    return msg


def apply_message(res: BulkResult, label: str) -> str:
    """What apply did, in words (the page and the CLI)."""
    how = "approved by this bulk action" if res.approved else "sent to verification"
    msg = f"Bulk action {res.action_id}: relabelled {res.applied:,} rows to {label} ({how}) in {res.seconds:.1f} s."
    if res.n_skipped:
        msg += " Left alone: " + "; ".join(f"{n:,} {SKIP_REASONS[k]}" for k, n in res.skipped.items() if n) + "."
    return msg
