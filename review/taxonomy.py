"""Changes of a text dataset's label set: rename a label, merge one label into another, add a label.

Each change is a versioned event (``taxonomy_events``: version 1, 2, ... per dataset, the label list
before and after, the rows it changed) and one ``taxonomy`` row in the audit trail, written in one
transaction together with what it changes:

* ``datasets.labels``: a rename keeps the label's position, a merge drops the label, an add appends;
* the current labels: every row whose current label (COALESCE(states.current_label, items.given_label))
  is the label that goes gets the new one in ``states.current_label`` (a row without a states row gets
  one, open), and the version of each such row goes up, so a review or verify card drawn before the
  change is stale instead of saving a decision about a label that no longer exists;
* pending decisions proposing the label that goes propose the new one (their rows' versions go up too);
* the golden set's labels.

The upload is never touched (items.given_label, annotations keep the names as uploaded), nor is the
history: scores of past runs, approved decisions, the trail. Where those old names come in again
(the annotators' labels of the next audit, a past run's suggestion on the review card) they are read
through :func:`label_map`. Every statement is set-based (UPDATE / INSERT ... SELECT): no loop per row.
A change of the label set asks for a new audit, so the model learns the new set.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import sqlite_utils

from review import store, trail
from review.auth import User, require_active
from review.datasets import Dataset
from review.datasets import get as get_dataset
from review.errors import NotFound, ReviewError, StaleViewError

MAX_LABEL_CHARS = 200  # as for a dataset name (review.text.ingest.check_name)
KINDS = ("rename", "merge", "add")
REAUDIT = "run a new audit so the model learns the new label set"


@dataclass(frozen=True)
class Rename:
    """Give ``label`` the name ``new_name`` (its rows, pending decisions and gold labels follow)."""

    label: str
    new_name: str


@dataclass(frozen=True)
class Merge:
    """Fold ``label`` into ``into``: its rows take ``into``, and ``label`` leaves the label set."""

    label: str
    into: str


@dataclass(frozen=True)
class Add:
    """A new label at the end of the label set (no row changes)."""

    label: str


Change = Rename | Merge | Add


@dataclass(frozen=True)
class TaxonomyPreview:
    """What a change would do, counted now: ``n_rows`` rows whose current label changes,
    ``n_pending`` pending decisions whose proposed label changes, ``n_gold`` gold labels;
    ``version`` the label set's version after it (``seen_version`` for :func:`apply`: ``version - 1``)."""

    kind: str
    label: str
    into: str | None
    labels_before: list[str]
    labels_after: list[str]
    n_rows: int
    n_pending: int
    n_gold: int
    version: int

    @property
    def summary(self) -> str:
        """One sentence: what the change does and how many rows it touches."""
        rows = f"{self.n_rows:,} row{'' if self.n_rows == 1 else 's'}"
        extra = []
        if self.n_pending:
            extra.append(f"{self.n_pending:,} pending decision{'' if self.n_pending == 1 else 's'}")
        if self.n_gold:
            extra.append(f"{self.n_gold:,} gold label{'' if self.n_gold == 1 else 's'}")
        more = f" (and {' and '.join(extra)})" if extra else ""
        if self.kind == "rename":
            return f"Renaming {self.label!r} to {self.into!r} changes the current label of {rows}{more}."
        if self.kind == "merge":
            return f"Merging {self.label!r} into {self.into!r} changes the current label of {rows}{more}."
        return f"Adding {self.label!r} changes no row: the label set gets a label number {len(self.labels_after)}."


@dataclass(frozen=True)
class TaxonomyEvent:
    """One change of the label set, as stored in ``taxonomy_events``."""

    id: int
    dataset_id: int
    version: int
    kind: str
    label: str
    into: str | None
    labels_before: list[str]
    labels_after: list[str]
    n_rows: int
    created_by: str
    created_at: str

    @property
    def summary(self) -> str:
        """'rename 'a' to 'b'', 'merge 'a' into 'b'', 'add 'c''."""
        if self.kind == "rename":
            return f"rename {self.label!r} to {self.into!r}"
        if self.kind == "merge":
            return f"merge {self.label!r} into {self.into!r}"
        return f"add {self.label!r}"


@dataclass(frozen=True)
class LabelCount:
    """A label and the rows whose current label it is; ``in_set`` False for a current label outside
    the label set (an upload with a declared label set can hold such rows)."""

    label: str
    rows: int
    in_set: bool = True


@dataclass(frozen=True)
class RunLabels:
    """How a past run's outputs read in the current label set: ``labels`` the set the run scored
    (the order of its probabilities), ``current`` the set now, ``names`` :func:`label_map`."""

    labels: list[str]
    current: list[str]
    names: dict[str, str]

    def label(self, name: str | None) -> str | None:
        """A label name of the run -> its name now (a name the map does not know stays as it is)."""
        return None if name is None else self.names.get(name, name)

    def probs(self, probs: list[float] | None) -> list[float] | None:
        """The run's probabilities (in ``labels`` order) -> one per current label: a merged label's
        probability joins the label it went into, an added label gets 0. Unchanged when they do not
        have one value per label of the run (nothing to map them by)."""
        if probs is None or len(probs) != len(self.labels) or self.labels == self.current:
            return probs
        at = {c: i for i, c in enumerate(self.current)}
        out = [0.0] * len(self.current)
        for name, p in zip(self.labels, probs):
            j = at.get(self.label(name))
            if j is not None:
                out[j] += float(p)
        return out


# ----------------------------------------------------------------------------- reads


def _event(r) -> TaxonomyEvent:
    return TaxonomyEvent(
        id=r["id"],
        dataset_id=r["dataset_id"],
        version=r["version"],
        kind=r["kind"],
        label=r["label"],
        into=r["into_label"],
        labels_before=json.loads(r["labels_before"]),
        labels_after=json.loads(r["labels_after"]),
        n_rows=r["n_rows"],
        created_by=r["created_by"],
        created_at=r["created_at"],
    )


def events(db: sqlite_utils.Database, ds: Dataset) -> list[TaxonomyEvent]:
    """Every change of the dataset's label set, oldest first (version 1, 2, ...)."""
    return [
        _event(r)
        for r in store.rows(
            db,
            "SELECT id, dataset_id, version, kind, label, into_label, labels_before, labels_after, n_rows,"
            " created_by, created_at FROM taxonomy_events WHERE dataset_id=? ORDER BY version",
            [ds.id],
        )
    ]


def version(db: sqlite_utils.Database, ds: Dataset) -> int:
    """The label set's version: 0 as uploaded, then 1, 2, ... one per change."""
    return store.scalar(db, "SELECT COALESCE(MAX(version), 0) FROM taxonomy_events WHERE dataset_id=?", [ds.id])


def _compose(evs: list[TaxonomyEvent], labels: list[str]) -> dict[str, str]:
    """label_map() over ``evs`` (oldest first); ``labels``: the label set now."""
    names = {c: c for c in (evs[0].labels_before if evs else labels)}
    for e in evs:
        if e.kind in ("rename", "merge"):
            for k, v in names.items():
                if v == e.label:
                    names[k] = e.into
            names.setdefault(e.label, e.into)
            names[e.into] = e.into
        else:
            names.setdefault(e.label, e.label)
    for c in labels:
        names.setdefault(c, c)
    return names


def label_map(db: sqlite_utils.Database, ds: Dataset) -> dict[str, str]:
    """Every label name the dataset ever used (the upload's, names given by earlier renames, merged
    labels) -> the name it has now, composed over the events in order. The identity on the label set
    while it never changed. A name outside it (an unknown label of the upload) is not a key: read
    names with ``label_map(...).get(name, name)``."""
    return _compose(events(db, ds), ds.labels)


def labels_at(db: sqlite_utils.Database, ds: Dataset, at: str) -> list[str]:
    """The label set as it was at ``at`` (ISO time, as store.now_iso writes): after the last change
    made by then, else as uploaded."""
    evs = events(db, ds)
    if not evs:
        return list(ds.labels)
    before = [e for e in evs if e.created_at <= at]
    return list(before[-1].labels_after if before else evs[0].labels_before)


def run_labels(db: sqlite_utils.Database, ds: Dataset, run_id: int | None) -> RunLabels | None:
    """How the outputs of run ``run_id`` (its predicted and suggested labels, probabilities) read in the
    current label set; None when the label set did not change since that run started (nothing to map)."""
    if run_id is None or ds.task != "text":
        return None
    evs = events(db, ds)
    if not evs:
        return None
    started = store.scalar(db, "SELECT started_at FROM runs WHERE id=?", [run_id])
    if started is None or started >= evs[-1].created_at:
        return None
    before = [e for e in evs if e.created_at <= started]
    labels = list(before[-1].labels_after if before else evs[0].labels_before)
    return RunLabels(labels, list(ds.labels), _compose(evs, ds.labels))


_CURRENT = "COALESCE(st.current_label, i.given_label)"


def label_counts(db: sqlite_utils.Database, ds: Dataset) -> list[LabelCount]:
    """Each label of the set with the rows whose current label it is (0 for a label no row has), in
    label-set order, then any current label outside the set. One GROUP BY over the dataset's rows."""
    got = dict(
        db.execute(
            f"SELECT {_CURRENT}, COUNT(*) FROM items i LEFT JOIN states st ON st.dataset_id=i.dataset_id"
            " AND st.idx=i.idx WHERE i.dataset_id=? GROUP BY 1",
            [ds.id],
        ).fetchall()
    )
    out = [LabelCount(c, got.pop(c, 0)) for c in ds.labels]
    out += [LabelCount(c, n, False) for c, n in sorted(got.items(), key=lambda kv: (kv[0] is None, str(kv[0])))]
    return out


def _rows_with(db, ds_id: int, label: str) -> int:
    """Rows whose current label is ``label`` (the given label where no current label is stored, by index)."""
    return store.scalar(
        db,
        "SELECT (SELECT COUNT(*) FROM items i WHERE i.dataset_id=? AND i.given_label=? AND NOT EXISTS"
        " (SELECT 1 FROM states st WHERE st.dataset_id=i.dataset_id AND st.idx=i.idx AND st.current_label IS NOT NULL))"
        " + (SELECT COUNT(*) FROM states st WHERE st.dataset_id=? AND st.current_label=?)",
        [ds_id, label, ds_id, label],
    )


# ----------------------------------------------------------------------------- checks


def check_label_name(name, what: str = "The new label") -> str:
    """A label name, stripped, as the upload reads label values (stripped, a blank one is no label);
    ReviewError when it is empty, longer than MAX_LABEL_CHARS or holds a line break or control character."""
    text = "" if name is None else str(name).strip()
    if not text:
        raise ReviewError(f"{what} has no name: type one.")
    if len(text) > MAX_LABEL_CHARS:
        raise ReviewError(
            f"{what} {text[:40]!r}… is {len(text):,} characters long: use at most {MAX_LABEL_CHARS} characters."
        )
    bad = next((c for c in text if ord(c) < 32 or ord(c) == 127), None)
    if bad is not None:
        raise ReviewError(f"{what} {text!r} holds a line break or control character ({bad!r}): use one line of text.")
    return text


def _known(ds: Dataset, label, what: str) -> str:
    """``label`` as a label of the set (as typed, else stripped); ReviewError naming the set otherwise."""
    text = "" if label is None else str(label)
    if text in ds.labels:
        return text
    if text.strip() in ds.labels:
        return text.strip()
    if not text.strip():
        raise ReviewError(f"Choose {what}: one of {', '.join(map(repr, ds.labels))}.")
    raise ReviewError(
        f"{text!r} is not a label of {ds.name!r}: its labels are {', '.join(map(repr, ds.labels))}. Choose one of them."
    )


def _fresh_name(ds: Dataset, names: dict[str, str], new: str, label: str | None) -> None:
    """Refuse ``new`` as the name of ``label`` (None: a new label) when it is a label already, or an
    older name that now reads as another label (the upload's rows and annotations still carry it)."""
    if new in ds.labels:
        hint = f" To join the two, merge {label!r} into {new!r}." if label is not None and new != label else ""
        raise ReviewError(f"{new!r} is already a label of {ds.name!r}: choose another name.{hint}")
    now = names.get(new)
    if now is not None and now != label:
        raise ReviewError(
            f"{new!r} was a name of the label {now!r} before (an earlier rename or merge): the uploaded rows and"
            f" annotations still carry it and read as {now!r}, so it cannot name "
            + ("a new label" if label is None else f"{label!r}")
            + ". Choose another name."
        )


def _plan(db, ds: Dataset, change: Change) -> tuple[str, str, str | None, list[str]]:
    """(kind, label, into, labels after) of a valid change; ReviewError naming what is wrong."""
    if ds.task != "text":
        raise ReviewError(
            f"{ds.name!r} is a {ds.task.upper()} corpus: its labels are tag sequences, and its tag set cannot be"
            " changed here. Renaming, merging and adding labels is for text-classification datasets."
        )
    labels = list(ds.labels)
    if isinstance(change, Rename):
        old = _known(ds, change.label, "the label to rename")
        new = check_label_name(change.new_name, "The new name")
        if new == old:
            raise ReviewError(f"{old!r} already has that name: type a different one.")
        _fresh_name(ds, label_map(db, ds), new, old)
        return "rename", old, new, [new if c == old else c for c in labels]
    if isinstance(change, Merge):
        old = _known(ds, change.label, "the label to merge")
        into = _known(ds, change.into, "the label to merge it into")
        if old == into:
            raise ReviewError(f"{old!r} cannot be merged into itself: choose another label to merge it into.")
        if len(labels) <= 2:
            raise ReviewError(
                f"{ds.name!r} has only {len(labels)} labels: merging {old!r} into {into!r} would leave one, and an"
                " audit needs at least two. Add a label first, or rename one."
            )
        return "merge", old, into, [c for c in labels if c != old]
    if isinstance(change, Add):
        new = check_label_name(change.label)
        _fresh_name(ds, label_map(db, ds), new, None)
        return "add", new, None, [*labels, new]
    raise ReviewError(f"Unknown change {change!r}: rename, merge or add a label.")


def _counts(db, ds_id: int, kind: str, label: str) -> tuple[int, int, int]:
    """(rows, pending decisions, gold labels) that a rename or merge of ``label`` changes."""
    if kind == "add":
        return 0, 0, 0
    pending = store.scalar(
        db, "SELECT COUNT(*) FROM reviews WHERE dataset_id=? AND status='pending' AND new_label=?", [ds_id, label]
    )
    gold = store.scalar(db, "SELECT COUNT(*) FROM gold WHERE dataset_id=? AND label=?", [ds_id, label])
    return _rows_with(db, ds_id, label), pending, gold


def preview(db: sqlite_utils.Database, ds: Dataset, change: Change) -> TaxonomyPreview:
    """What ``change`` would do on the dataset now, counted (writes nothing). ReviewError, naming the
    label or name, for a change that apply() would refuse."""
    kind, label, into, after = _plan(db, ds, change)
    n_rows, n_pending, n_gold = _counts(db, ds.id, kind, label)
    return TaxonomyPreview(kind, label, into, list(ds.labels), after, n_rows, n_pending, n_gold, version(db, ds) + 1)


# ----------------------------------------------------------------------------- the change


def apply(
    db: sqlite_utils.Database, ds: Dataset, user: User, change: Change, *, seen_version: int | None = None
) -> TaxonomyEvent:
    """Make ``change`` (a lead), in one transaction: the label set, the current labels of the rows that
    carry the label (their versions up), pending decisions, gold labels, the event and its trail row
    (action ``taxonomy``). ``seen_version``: the label set's version the caller's preview was drawn on;
    StaleViewError (nothing written) when the set changed since, as when ``ds`` is older than the stored
    label set. Returns the event."""
    user = require_active(db, user, "lead", "change the label set")
    with store.transaction(db):
        try:
            fresh = get_dataset(db, ds.id)
        except NotFound:
            raise NotFound(f"There is no dataset {ds.name!r} any more: nothing was changed.") from None
        v = version(db, fresh)
        if fresh.labels != list(ds.labels) or (seen_version is not None and seen_version != v):
            raise StaleViewError(
                f"The label set of {ds.name!r} changed since this was drawn (it is now version {v}:"
                f" {', '.join(map(repr, fresh.labels))}): nothing was changed. Look at the preview again."
            )
        kind, label, into, after = _plan(db, fresh, change)
        now = store.now_iso()
        n_rows, n_pending, n_gold = _relabel(db, ds.id, label, into, now) if kind != "add" else (0, 0, 0)
        db.execute("UPDATE datasets SET labels=? WHERE id=?", [json.dumps(after, ensure_ascii=False), ds.id])
        cur = db.execute(
            "INSERT INTO taxonomy_events(dataset_id, version, kind, label, into_label, labels_before, labels_after,"
            " n_rows, created_by, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            [
                ds.id,
                v + 1,
                kind,
                label,
                into,
                json.dumps(fresh.labels, ensure_ascii=False),
                json.dumps(after, ensure_ascii=False),
                n_rows,
                user.name,
                now,
            ],
        )
        trail.log(
            db,
            user.name,
            "taxonomy",
            ds.id,
            None,
            event=cur.lastrowid,
            version=v + 1,
            kind=kind,
            label=label,
            into=into,
            n_rows=n_rows,
            n_pending=n_pending,
            n_gold=n_gold,
            labels_before=fresh.labels,
            labels_after=after,
        )
        return TaxonomyEvent(
            cur.lastrowid, ds.id, v + 1, kind, label, into, list(fresh.labels), after, n_rows, user.name, now
        )


def _relabel(db, ds_id: int, old: str, new: str, now: str) -> tuple[int, int, int]:
    """Every current label ``old`` -> ``new``, set-based, inside apply()'s transaction (see the module).
    Returns what changed: (rows, pending decisions, gold labels)."""
    # rows with a decision pending on ``old`` whose own label is another one: their version up (first,
    # so that the rows carrying ``old`` are not counted twice)
    db.execute(
        "UPDATE states SET version=version+1, updated_at=? WHERE dataset_id=? AND idx IN"
        " (SELECT r.idx FROM reviews r WHERE r.dataset_id=? AND r.status='pending' AND r.new_label=?)"
        " AND COALESCE(current_label, (SELECT i.given_label FROM items i WHERE i.dataset_id=states.dataset_id"
        " AND i.idx=states.idx)) IS NOT ?",
        [now, ds_id, ds_id, old, old],
    )
    # rows with a states row that carry ``old``: the new label (NULL where it is the given one), version up
    given_new = store.scalar(db, "SELECT 1 FROM items WHERE dataset_id=? AND given_label=? LIMIT 1", [ds_id, new])
    label = (
        "CASE WHEN (SELECT i.given_label FROM items i WHERE i.dataset_id=states.dataset_id AND i.idx=states.idx)"
        " IS ? THEN NULL ELSE ? END"
        if given_new
        else "?"  # no row was given ``new``: none can get its given label back
    )
    n = db.execute(
        f"UPDATE states SET current_label = {label}, version=version+1, updated_at=? WHERE dataset_id=? AND"
        " (current_label=? OR (current_label IS NULL AND idx IN (SELECT i.idx FROM items i WHERE i.dataset_id=?"
        " AND i.given_label=?)))",
        [*([new, new] if given_new else [new]), now, ds_id, old, ds_id, old],
    ).rowcount
    # rows without one that were given ``old``: a states row, open, at version 1 (a view of version 0 is stale)
    n += db.execute(
        "INSERT INTO states(dataset_id, idx, state, version, current_label, updated_at)"
        " SELECT i.dataset_id, i.idx, 'open', 1, ?, ? FROM items i WHERE i.dataset_id=? AND i.given_label=?"
        " AND NOT EXISTS (SELECT 1 FROM states st WHERE st.dataset_id=i.dataset_id AND st.idx=i.idx)",
        [new, now, ds_id, old],
    ).rowcount
    pending = db.execute(
        "UPDATE reviews SET new_label=? WHERE dataset_id=? AND status='pending' AND new_label=?", [new, ds_id, old]
    ).rowcount
    gold = db.execute("UPDATE gold SET label=? WHERE dataset_id=? AND label=?", [new, ds_id, old]).rowcount
    return n, pending, gold
