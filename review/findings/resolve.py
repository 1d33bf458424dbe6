"""A near-duplicate set resolved in one action: keep one row and exclude the rest from training, or give
every row one label. Each row's decision is written as workflow.decide writes it (a ``reviews`` row pending
verification, the row's state and version, a ``decision`` trail row), so a lead verifies each as any other
decision (four eyes as usual). One transaction for the set: the rows that are not open or are held by another
reviewer are skipped and counted; the set is marked resolved (``dup_sets.status``, ``resolution`` JSON,
``resolved_by`` / ``resolved_at``) with one ``dup_set_resolve`` trail row. Annotators may resolve a set (it
is a set of decisions); a set already resolved is refused (StaleViewError).

The set is read with review.findings.summary.dup_set (imported when called)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import sqlite_utils

from review import store, trail, workflow
from review.auth import User, require_active
from review.datasets import Dataset, latest_run
from review.errors import NotFound, ReviewError, StaleViewError

HOWS = ("keep_one", "one_label")
SKIP_REASONS = {
    "not_open": "decided or verified already (not open)",
    "claimed": "held by another reviewer in the Review queue",
}
EXEMPT = "near-duplicate set"  # the blind first look (review.blind): the set's rows are decided without a card


@dataclass(frozen=True)
class DupSetResolution:
    """What resolve_dup_set did: the set, how (keep_one | one_label), the row kept or the label given, the
    decision written per row ({row: keep | exclude | relabel}) and its review id, the rows skipped by reason
    (SKIP_REASONS)."""

    set_id: int
    how: str
    keep: int | None
    label: str | None
    decided: dict[int, str] = field(default_factory=dict)
    reviews: dict[int, int] = field(default_factory=dict)
    skipped: dict[str, list[int]] = field(default_factory=dict)

    @property
    def n_decided(self) -> int:
        return len(self.decided)

    @property
    def n_skipped(self) -> int:
        return sum(len(v) for v in self.skipped.values())

    def message(self) -> str:
        """What was done, in words (plain text: escape it where drawn)."""
        if self.how == "keep_one":
            n_ex = sum(d == "exclude" for d in self.decided.values())
            kept = f"row {self.keep} kept" if self.decided.get(self.keep) == "keep" else f"row {self.keep} left alone"
            what = f"{kept}, {n_ex:,} row{'s' if n_ex != 1 else ''} excluded from training"
        else:
            n_re = sum(d == "relabel" for d in self.decided.values())
            n_keep = sum(d == "keep" for d in self.decided.values())
            what = f"label {self.label} for all: {n_re:,} relabelled, {n_keep:,} kept (already {self.label})"
        msg = f"Near-duplicate set {self.set_id} resolved: {what}; the decisions await verification."
        if self.n_skipped:
            msg += " Left alone: " + "; ".join(f"{len(v):,} {SKIP_REASONS[k]}" for k, v in self.skipped.items()) + "."
        return msg


_ROWS_SQL = (
    "SELECT i.idx AS idx, i.given_label AS given_label, COALESCE(st.current_label, i.given_label) AS current_label,"
    " COALESCE(st.state, 'open') AS state, COALESCE(st.version, 0) AS version,"
    " CASE WHEN st.claimed_until > ? THEN st.claimed_by END AS claimed_by, sc.suggested_label AS suggested_label"
    " FROM items i LEFT JOIN states st ON st.dataset_id=i.dataset_id AND st.idx=i.idx"
    " LEFT JOIN scores sc ON sc.run_id=? AND sc.idx=i.idx"
    " WHERE i.dataset_id=? AND i.idx IN ({}) ORDER BY i.idx"
)


def open_rows(
    db: sqlite_utils.Database, ds: Dataset, user: User, rows: list[int], run_id: int | None, skipped: dict
) -> list:
    """The rows among ``rows`` that ``user`` may decide now (open, not held by another reviewer), with their
    labels, version and the run's suggestion; the others are added to ``skipped`` by reason (SKIP_REASONS).
    Call inside the transaction that writes the decisions."""
    out = []
    got = store.rows(db, _ROWS_SQL.format(",".join("?" * len(rows))), [time.time(), run_id or -1, ds.id, *rows])
    for r in got:
        if r["state"] != "open":
            skipped.setdefault("not_open", []).append(r["idx"])
        elif r["claimed_by"] and r["claimed_by"] != user.name:
            skipped.setdefault("claimed", []).append(r["idx"])
        else:
            out.append(r)
    return out


def write_decisions(
    db: sqlite_utils.Database,
    ds: Dataset,
    user: User,
    todo: list,
    run_id: int | None,
    row_note: str,
    now: str,
    **trail_extra,
) -> tuple[dict[int, str], dict[int, int]]:
    """Write each (row from open_rows, decision, new label) of ``todo`` as workflow.decide does: a ``reviews``
    row pending verification, the row's state and version, a ``decision`` trail row (with ``trail_extra``, and
    exempt from the blind first look: EXEMPT). Inside the caller's transaction. -> ({row: decision}, {row:
    review id})."""
    decided, reviews, entries = {}, {}, []
    for r, decision, new_label in todo:
        took = int(
            r["suggested_label"] is not None
            and (
                (decision == "relabel" and new_label == r["suggested_label"])
                or (decision == "keep" and r["suggested_label"] == r["current_label"])
            )
        )
        cur = db.execute(
            "INSERT INTO reviews(dataset_id, idx, run_id, decision, new_label, note, reviewer, created_at,"
            " took_suggestion, status, version) VALUES (?,?,?,?,?,?,?,?,?,'pending',?)",
            [ds.id, r["idx"], run_id, decision, new_label, row_note, user.name, now, took, r["version"] + 1],
        )
        db.execute(
            "INSERT INTO states(dataset_id, idx, state, version, updated_at) VALUES (?,?,?,?,?)"
            " ON CONFLICT(dataset_id, idx) DO UPDATE SET state=excluded.state, version=excluded.version,"
            " claimed_by=NULL, claimed_until=NULL, updated_at=excluded.updated_at",
            [ds.id, r["idx"], workflow.DECISION_STATE[decision], r["version"] + 1, now],
        )
        decided[r["idx"]] = decision
        reviews[r["idx"]] = cur.lastrowid
        entries.append(
            (
                "decision",
                ds.id,
                r["idx"],
                dict(
                    review=cur.lastrowid,
                    decision=decision,
                    new_label=new_label,
                    previous_label=r["current_label"],
                    note=row_note,
                    revises=None,
                    took_suggestion=bool(took),
                    blind_exempt=EXEMPT,
                    **trail_extra,
                ),
            )
        )
    trail.log_many(db, user.name, entries)
    return decided, reviews


def resolve_dup_set(
    db: sqlite_utils.Database,
    ds: Dataset,
    user: User,
    set_id: int,
    how: str,
    keep: int | None = None,
    label: str | None = None,
    note: str = "",
) -> DupSetResolution:
    """Resolve near-duplicate set ``set_id`` of ``ds`` in one transaction. ``how``: "keep_one" (row ``keep``
    is kept, every other row excluded from training) or "one_label" (every row gets ``label``: relabelled
    where its current label differs, kept where it already has it). Each decision pends verification; rows
    not open or held by another reviewer are skipped and counted. Refused: NER, an unknown ``how``, ``keep``
    not a row of the set, ``label`` not a label of the dataset, a set of another dataset (NotFound), a set
    already resolved (StaleViewError), a set none of whose rows can be decided. An annotator or a lead."""
    user = require_active(db, user, "annotator", "resolve a near-duplicate set")
    if ds.task == "ner":
        raise ReviewError(
            f"Dataset {ds.name!r} is a NER dataset: near-duplicate sets are found in text datasets. Nothing was changed."
        )
    if how not in HOWS:
        raise ReviewError(
            f"Unknown way to resolve near-duplicate set {set_id}: {how!r}. Choose keep_one (keep one row, exclude "
            "the rest from training) or one_label (one label for every row)."
        )
    note = (note or "").strip()
    if len(note) > 5000:
        raise ReviewError("The note is too long: keep it under 5,000 characters.")
    from review.findings.summary import dup_set  # the checks' own reads (another module of review.findings)

    with store.transaction(db):
        found = dup_set(db, int(set_id))
        if found.dataset_id != ds.id:
            raise NotFound(
                f"{ds.name!r} has no near-duplicate set {set_id}: open the set from this dataset's Audit page."
            )
        if found.status == "resolved":
            by = store.fetch_one(db, "SELECT resolved_by, resolved_at FROM dup_sets WHERE id=?", [found.id])
            raise StaleViewError(
                f"Near-duplicate set {set_id} was already resolved by {by['resolved_by'] or 'someone'} at "
                f"{(by['resolved_at'] or '')[:16].replace('T', ' ')}: nothing was changed. Reload the Audit page."
            )
        rows = [int(i) for i in found.rows]
        if how == "keep_one":
            if keep is None or int(keep) not in rows:
                raise ReviewError(
                    f"Pick the row to keep among the rows of near-duplicate set {set_id} "
                    f"({', '.join(map(str, rows))}), not {keep!r}. Nothing was changed."
                )
            keep, label = int(keep), None
        else:
            if label not in ds.labels:
                raise ReviewError(
                    f"{label!r} is not a label of {ds.name!r}: give near-duplicate set {set_id} one of "
                    f"{', '.join(ds.labels)}. Nothing was changed."
                )
            keep = None
        run = latest_run(db, ds.id)
        run_id = run["id"] if run else None
        res = DupSetResolution(found.id, how, keep, label)
        todo = []
        for r in open_rows(db, ds, user, rows, run_id, res.skipped):
            if how == "keep_one":
                todo.append((r, "keep" if r["idx"] == keep else "exclude", None))
            else:
                todo.append((r, "keep" if r["current_label"] == label else "relabel", label))
        if not todo:
            raise ReviewError(
                f"None of the {len(rows):,} rows of near-duplicate set {set_id} is open for a decision ("
                + "; ".join(f"{len(v):,} {SKIP_REASONS[k]}" for k, v in res.skipped.items())
                + "): nothing was changed. Verify or reject their decisions first."
            )
        how_text = f"keep row {keep}, exclude the rest from training" if how == "keep_one" else f"label {label} for all"
        row_note = f"Near-duplicate set {found.id}: {how_text}" + (f". {note}" if note else "")
        now = store.now_iso()
        decided, reviews = write_decisions(db, ds, user, todo, run_id, row_note, now, dup_set=found.id)
        res.decided.update(decided)
        res.reviews.update(reviews)
        resolution = {
            "how": how,
            "keep": keep,
            "label": label,
            "note": note,
            "decided": {str(i): d for i, d in res.decided.items()},
            "reviews": {str(i): rid for i, rid in res.reviews.items()},
            "skipped": res.skipped,
        }
        changed = db.execute(
            "UPDATE dup_sets SET status='resolved', resolution=?, resolved_by=?, resolved_at=? WHERE id=? AND status='open'",
            [json.dumps(resolution, sort_keys=True), user.name, now, found.id],
        ).rowcount
        if changed != 1:  # resolved meanwhile (the read above is inside this transaction: cannot happen, kept safe)
            raise StaleViewError(f"Near-duplicate set {set_id} was resolved meanwhile: nothing was changed.")
        trail.log(
            db,
            user.name,
            "dup_set_resolve",
            ds.id,
            None,
            set=found.id,
            run=found.run_id,
            how=how,
            keep=keep,
            label=label,
            note=note,
            decided=res.n_decided,
            skipped={k: len(v) for k, v in res.skipped.items()},
            rows=rows,
        )
    return res
