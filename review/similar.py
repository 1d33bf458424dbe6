"""Find similar: the rows nearest to a row in an audit run's features, and one correction applied to the
ones a reviewer ticks.

The audit's checks (review.findings) write ``row_neighbours(run_id, idx, neighbours)``: each row's nearest
rows by cosine similarity on the run's features, JSON ``[[row, similarity], ...]`` nearest first, 10 per
row; for every row up to ``ALL_ROWS_UP_TO`` rows, above that only for flagged rows and rows with findings.
:func:`similar` reads one row of it and then the rows it names (items, states, the run's scores) by
``idx IN (...)``: two reads, whatever the size of the dataset. A row without neighbours (a run from before
the checks, a NER dataset, a row above the size limit) gives ``available=False`` and the reason.

:func:`apply_to_similar` gives the ticked rows the decision the reviewer makes on the row they look at
(keep, relabel to a label, unsure, ... -- any of workflow.DECISIONS), each through
:func:`review.workflow.decide`: pending verification, four eyes, stale versions refused, claims, the blind
first look (``BlindCall.not_applicable("find similar")``: the model's view was on the card by then). All
rows in one transaction, each inside a savepoint: a row decide refuses is rolled back alone and reported
with decide's message, the others are kept. Rows not open, held by another reviewer or already labelled so
are skipped and counted (``SKIP_REASONS``). Each ``decision`` trail row carries ``similar_to`` (the source
row); one ``apply_to_similar`` trail row on the source row holds the counts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import sqlite_utils

from review import store, taxonomy, trail, workflow
from review.auth import User, require_active
from review.blind import BlindCall
from review.datasets import Dataset, latest_run
from review.errors import NotFound, ReviewError, StorageError

K = 10  # neighbours the audit keeps per row (and the panel draws)
ALL_ROWS_UP_TO = (
    200_000  # as review.findings.store: every row has neighbours up to this many rows; above, flagged / findings only
)
SNIPPET = 300  # characters of a row's text shown beside it
MAX_ROWS = 50  # rows apply_to_similar takes at once
EXEMPT = "find similar"  # the blind-first-look exemption the decisions carry (review.blind)
SKIP_REASONS = {
    "not_open": "decided or verified already (not open)",
    "held": "being reviewed by someone else",
    "has_label": "already labelled so",
    "source": "the row itself (decide it on its card)",
}


@dataclass(frozen=True)
class SimilarRow:
    """One row like the source row: its number and key, the first ``SNIPPET`` characters of its text
    (whitespace runs as one space), the given and current label, its state and version, who holds it now
    (a live claim, else None), the run's predicted label (in the current label names) and the cosine
    similarity to the source row."""

    idx: int
    key: str
    snippet: str
    given_label: str | None
    current_label: str | None
    state: str
    version: int
    claimed_by: str | None
    predicted_label: str | None
    similarity: float

    def why_not(self, user: str, decision: str, new_label: str | None = None) -> str | None:
        """Why this row cannot take ``decision`` (a SKIP_REASONS key) from ``user``, or None when it can."""
        return _why_not(self.state, self.claimed_by, self.current_label, user, decision, new_label)


def _why_not(
    state: str, claimed_by: str | None, current: str | None, user: str, decision: str, new_label
) -> str | None:
    if state != "open":
        return "not_open"
    if claimed_by is not None and claimed_by != user:
        return "held"
    if decision == "relabel" and new_label is not None and current == new_label:
        return "has_label"
    return None


@dataclass(frozen=True)
class SimilarRows:
    """The rows like row ``idx`` in audit run ``run_id``, nearest first. ``available`` False (and
    ``reason``, a sentence for a user) when the run recorded no neighbours for the row."""

    dataset_id: int
    idx: int
    run_id: int | None
    rows: list[SimilarRow]
    available: bool
    reason: str | None = None

    def __len__(self) -> int:
        return len(self.rows)


@dataclass(frozen=True)
class SimilarApplied:
    """What apply_to_similar did: ``applied`` the rows decided (``reviews``: their review ids, in the same
    order), ``skipped`` rows by reason (SKIP_REASONS keys), ``refused`` (row, decide's message) rolled back,
    ``trail_id`` the ``apply_to_similar`` trail row (None when nothing was applied: nothing was written)."""

    source_idx: int
    decision: str
    new_label: str | None
    applied: list[int] = field(default_factory=list)
    reviews: list[int] = field(default_factory=list)
    skipped: dict[str, list[int]] = field(default_factory=dict)
    refused: list[tuple[int, str]] = field(default_factory=list)
    run_id: int | None = None
    trail_id: int | None = None

    @property
    def n_applied(self) -> int:
        return len(self.applied)

    @property
    def n_skipped(self) -> int:
        return sum(len(v) for v in self.skipped.values())

    def describe(self) -> str:
        """One plain sentence (escape it where drawn as Markdown)."""
        what = {"keep": "kept", "unsure": "marked unsure"}.get(self.decision, self.decision)
        if self.decision == "relabel":
            what = f"relabelled to {self.new_label}"
        n = self.n_applied
        out = f"{n} row{'' if n == 1 else 's'} like row {self.source_idx} {what}, awaiting verification."
        for reason, rows in self.skipped.items():
            out += f" Skipped {len(rows)} ({SKIP_REASONS[reason]}): row {', '.join(map(str, rows))}."
        for idx, msg in self.refused:
            out += f" Row {idx} refused: {msg}"
        return out


def _run_of(db: sqlite_utils.Database, ds: Dataset, run_id: int | None) -> int | None:
    """The audit run to read: ``run_id`` (it must be one of ``ds``'s), else the latest finished audit."""
    if run_id is None:
        run = latest_run(db, ds.id, "audit")
        return run["id"] if run else None
    if store.scalar(db, "SELECT dataset_id FROM runs WHERE id=?", [run_id]) != ds.id:
        raise NotFound(f"Dataset {ds.name!r} has no run {run_id}: pick one of its audit runs.")
    return run_id


def _no_neighbours(db: sqlite_utils.Database, ds: Dataset, idx: int, run_id: int) -> str:
    """Why run ``run_id`` has no neighbours for row ``idx`` (read only when it has none)."""
    if store.scalar(db, "SELECT 1 FROM row_neighbours WHERE run_id=? LIMIT 1", [run_id]) is None:
        return (
            f"Audit run {run_id} recorded no rows like these: it ran before find similar existed, or its checks "
            "did not run. A lead runs a new audit on the Audit page to find them."
        )
    return (
        f"Audit run {run_id} recorded rows like these only for flagged rows and rows with findings ({ds.name!r} "
        f"has {ds.n_items:,} rows; above {ALL_ROWS_UP_TO:,} the audit does not record them for every row), "
        f"and row {idx} is neither."
    )


def _neighbours(raw: str, idx: int, k: int) -> list[tuple[int, float]]:
    """The stored JSON -> up to ``k`` (row, similarity), nearest first, without the row itself or repeats."""
    out: list[tuple[int, float]] = []
    seen = {idx}
    for row, sim in json.loads(raw):
        row = int(row)
        if row not in seen:
            seen.add(row)
            out.append((row, float(sim)))
        if len(out) >= k:
            break
    return out


def _snippet(text: str | None) -> str:
    s = " ".join(str(text or "").split())
    return s if len(s) <= SNIPPET else s[: SNIPPET - 1].rstrip() + "…"


def similar(db: sqlite_utils.Database, ds: Dataset, idx: int, run_id: int | None = None, k: int = K) -> SimilarRows:
    """The rows nearest to row ``idx`` in audit run ``run_id`` (default: the latest finished audit), at most
    ``k``, nearest first, with their labels, states and the run's predicted label. One read of
    row_neighbours, one of the rows (items, states, scores) by ``idx IN (...)``. ``available`` False with
    the reason when there is nothing to read (NER, no audit, no neighbours recorded for the row)."""
    if ds.task != "text":
        return SimilarRows(
            ds.id, idx, None, [], False, f"{ds.name!r} is a NER dataset: find similar compares rows of text datasets."
        )
    run_id = _run_of(db, ds, run_id)
    if run_id is None:
        return SimilarRows(ds.id, idx, None, [], False, f"{ds.name!r} has no audit run yet: a lead runs the audit.")
    raw = store.scalar(db, "SELECT neighbours FROM row_neighbours WHERE run_id=? AND idx=?", [run_id, idx])
    if raw is None:
        return SimilarRows(ds.id, idx, run_id, [], False, _no_neighbours(db, ds, idx, run_id))
    near = _neighbours(raw, idx, max(0, int(k)))
    if not near:
        return SimilarRows(ds.id, idx, run_id, [], True)
    rows = store.rows(
        db,
        "SELECT i.idx AS idx, i.key AS key, substr(i.text, 1, ?) AS text, i.given_label AS given_label,"
        " COALESCE(st.current_label, i.given_label) AS current_label, COALESCE(st.state, 'open') AS state,"
        " COALESCE(st.version, 0) AS version,"
        " CASE WHEN st.claimed_until > ? THEN st.claimed_by END AS claimed_by, sc.predicted_label AS predicted"
        " FROM items i LEFT JOIN states st ON st.dataset_id=i.dataset_id AND st.idx=i.idx"
        " LEFT JOIN scores sc ON sc.run_id=? AND sc.idx=i.idx"
        f" WHERE i.dataset_id=? AND i.idx IN ({','.join('?' * len(near))})",
        [SNIPPET * 4, time.time(), run_id, ds.id, *(r for r, _ in near)],  # *4: whitespace collapses
    )
    by_idx = {r["idx"]: r for r in rows}
    names = taxonomy.run_labels(db, ds, run_id)  # a run from before a rename predicts the old names
    out = []
    for row, sim in near:
        r = by_idx.get(row)
        if r is None:
            continue
        pred = r["predicted"]
        out.append(
            SimilarRow(
                idx=row,
                key=str(r["key"]),
                snippet=_snippet(r["text"]),
                given_label=r["given_label"],
                current_label=r["current_label"],
                state=r["state"],
                version=int(r["version"]),
                claimed_by=r["claimed_by"],
                predicted_label=names.label(pred) if names and pred is not None else pred,
                similarity=sim,
            )
        )
    return SimilarRows(ds.id, idx, run_id, out, True)


def _check_decision(ds: Dataset, decision: str, new_label: str | None) -> str | None:
    if ds.task != "text":
        raise ReviewError(f"{ds.name!r} is a NER dataset: find similar applies corrections on text datasets only.")
    if decision not in workflow.DECISIONS:
        raise ReviewError(f"Unknown decision {decision!r}: choose one of {', '.join(workflow.DECISIONS)}.")
    if decision != "relabel":
        return None
    if new_label not in ds.labels:
        raise ReviewError(f"{new_label!r} is not a label of {ds.name!r}: choose one of {', '.join(ds.labels)}.")
    return new_label


def apply_to_similar(
    db: sqlite_utils.Database,
    ds: Dataset,
    user: User,
    source_idx: int,
    rows: Sequence[tuple[int, int]],
    decision: str,
    new_label: str | None = None,
    note: str = "",
) -> SimilarApplied:
    """Give each ticked row ``rows`` ((row, version seen), rows like ``source_idx`` in the latest audit run)
    ``decision`` (with ``new_label`` for a relabel) and ``note``, each through workflow.decide, in one
    transaction with a savepoint per row. Skipped and counted: rows not open, held by someone else, already
    labelled ``new_label``, the source row itself. Refused (rolled back alone, decide's message kept): a row
    that changed since it was shown (stale version), one that is not among the source row's similar rows in
    the latest run. An annotator or a lead; the decisions await verification as any other."""
    user = require_active(db, user, "annotator", "apply a correction to rows like this one")
    new_label = _check_decision(ds, decision, new_label)
    seen: dict[int, int] = {}
    for row, version in rows:
        seen.setdefault(int(row), int(version))
    if not seen:
        raise ReviewError(f"Tick at least one row like row {source_idx} to apply the correction to: nothing was done.")
    if len(seen) > MAX_ROWS:
        raise ReviewError(f"Apply a correction to at most {MAX_ROWS} rows at once, not {len(seen):,}.")
    done = SimilarApplied(source_idx, decision, new_label)
    exempt = BlindCall.not_applicable(EXEMPT)
    with store.transaction(db):
        run_id = _run_of(db, ds, None)
        raw = (
            store.scalar(db, "SELECT neighbours FROM row_neighbours WHERE run_id=? AND idx=?", [run_id, source_idx])
            if run_id is not None
            else None
        )
        if raw is None:
            raise ReviewError(
                f"The latest audit run of {ds.name!r} recorded no rows like row {source_idx}: nothing was changed. "
                "Reload the row to see its similar rows."
            )
        listed = {int(r) for r, _ in json.loads(raw)}
        now = [r for r in seen if r != source_idx]
        found = {
            r["idx"]: r
            for r in store.rows(
                db,
                "SELECT i.idx AS idx, COALESCE(st.current_label, i.given_label) AS current_label,"
                " COALESCE(st.state, 'open') AS state, COALESCE(st.version, 0) AS version,"
                " CASE WHEN st.claimed_until > ? THEN st.claimed_by END AS claimed_by"
                " FROM items i LEFT JOIN states st ON st.dataset_id=i.dataset_id AND st.idx=i.idx"
                f" WHERE i.dataset_id=? AND i.idx IN ({','.join('?' * len(now)) or 'NULL'})",
                [time.time(), ds.id, *now],
            )
        }
        for row, version in seen.items():
            if row == source_idx:
                done.skipped.setdefault("source", []).append(row)
                continue
            r = found.get(row)
            if r is None:
                done.refused.append((row, f"{ds.name!r} has no row {row}."))
                continue
            if row not in listed:
                done.refused.append(
                    (row, f"row {row} is not among the rows like row {source_idx} in audit run {run_id}: reload them.")
                )
                continue
            why = _why_not(r["state"], r["claimed_by"], r["current_label"], user.name, decision, new_label)
            if why is not None:
                done.skipped.setdefault(why, []).append(row)
                continue
            db.execute("SAVEPOINT similar_row")
            try:
                rid = workflow.decide(
                    db,
                    ds,
                    row,
                    user,
                    decision,
                    version,
                    new_label=new_label,
                    note=note,
                    blind=exempt,
                    trail_extra={"similar_to": source_idx},
                )
            except StorageError:
                raise
            except ReviewError as exc:
                db.execute("ROLLBACK TO similar_row")
                db.execute("RELEASE similar_row")
                done.refused.append((row, str(exc)))
                continue
            db.execute("RELEASE similar_row")
            done.applied.append(row)
            done.reviews.append(rid)
        if done.applied:
            tid = trail.log(
                db,
                user.name,
                "apply_to_similar",
                ds.id,
                source_idx,
                run=run_id,
                decision=decision,
                new_label=new_label,
                note=(note or "").strip(),
                applied=done.n_applied,
                rows=done.applied,
                reviews=done.reviews,
                skipped={k: len(v) for k, v in done.skipped.items()},
                refused=len(done.refused),
                refused_rows=[r for r, _ in done.refused],
            )
            return replace(done, run_id=run_id, trail_id=tid)
    return replace(done, run_id=run_id)
