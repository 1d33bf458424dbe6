"""The label queue: the items of a multi-annotator dataset that most need another label.

At audit time (audit._crowd_scores) cleanlab's ActiveLab scores every item
(`activelab_scores`; lower = another label tells more) and the score is stored with the run
(`scores.activelab`). The Label page shows the latest audit run's items in that order, one at
a time, to each signed-in user, skipping the items they already labelled; their label joins
the `annotations` table as their own (a second label of theirs on an item replaces the first)
and the audit trail. The consensus takes the new labels into account on the next audit run.

The queue never reads the gold table (review.crowd.gold) and never returns other annotators'
labels: an annotator labels from the text alone.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import sqlite_utils

from review import store, trail
from review.auth import User, require_active
from review.datasets import Dataset, latest_run
from review.errors import NotFound, ReviewError

ACTION = "label"  # audit-trail action of a label added through the queue


# ----------------------------------------------------------------------------- scores (pure, at audit time)


def model_probs(res) -> tuple[np.ndarray, str]:
    """A crowd.CrowdResult -> (pred_probs (n, K), where they come from).

    The consensus method's out-of-sample model probabilities when it kept them
    (``res.details['pred_probs']``: the text model of CROWDLAB or of the text prior), else the
    consensus posteriors (methods without model evidence: majority vote, Dawid-Skene)."""
    n, k = np.asarray(res.posteriors).shape
    P = (res.details or {}).get("pred_probs")
    if P is not None:
        P = np.asarray(P, dtype=float)
        if P.shape == (n, k) and np.isfinite(P).all():
            return P, "the consensus model's out-of-sample probabilities"
    return np.asarray(res.posteriors, dtype=float), "the consensus posteriors (no model evidence)"


def activelab_scores(L: np.ndarray, pred_probs: np.ndarray, seed: int = 0) -> np.ndarray:
    """L (n, M) class indices, -1 where an annotator did not label an item; pred_probs (n, K)
    -> (n,) cleanlab ActiveLab scores in [0, 1]: lower = the item needs another label more.

    cleanlab.multiannotator.get_active_learning_scores on the labelled items (labels as a frame
    with NaN for missing) and, for items nobody labelled, from pred_probs alone
    (``pred_probs_unlabeled``; the two kinds of score are comparable). Seeded: cleanlab breaks
    ties of its majority vote at random, so the same labels give the same scores. Raises
    ValueError on inconsistent input, naming it."""
    from cleanlab.multiannotator import get_active_learning_scores

    L = np.asarray(L)
    P = np.asarray(pred_probs, dtype=float)
    if L.ndim != 2 or P.ndim != 2:
        raise ValueError(
            f"labels must be (items, annotators) and pred_probs (items, classes), not {L.shape} and {P.shape}"
        )
    if len(L) != len(P):
        raise ValueError(f"labels have {len(L)} items but pred_probs {len(P)}")
    n, K = P.shape
    if K < 2:
        raise ValueError(f"ActiveLab needs at least 2 classes, pred_probs has {K}")
    if not np.isfinite(P).all() or (P < 0).any():
        raise ValueError("pred_probs must be finite and non-negative")
    if L.size and (L.max() >= K or L.min() < -1):
        raise ValueError(
            f"labels must be class indices 0..{K - 1} or -1 (not labelled), found {int(L.min())}..{int(L.max())}"
        )
    P = np.clip(P, 1e-6, None)
    P = P / P.sum(axis=1, keepdims=True)
    has = (L >= 0).any(axis=1)
    who = (L >= 0).any(axis=0)
    out = np.empty(n)
    frame = None
    if has.any():
        sub = L[np.ix_(has, who)]
        frame = pd.DataFrame(np.where(sub >= 0, sub, np.nan).astype(float))
    rng = np.random.get_state()  # cleanlab breaks ties of its majority vote with np.random: seed it, then restore
    np.random.seed(seed)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "annotators do not agree on any example", ties broken: scores still hold
            labelled, unlabelled = get_active_learning_scores(
                frame, P[has] if frame is not None else None, P[~has] if (~has).any() else None
            )
    finally:
        np.random.set_state(rng)
    if has.any():
        out[has] = labelled
    if (~has).any():
        out[~has] = unlabelled
    return np.clip(out, 0.0, 1.0)


# ----------------------------------------------------------------------------- the queue (SQL)


@dataclass
class QueueStatus:
    """Where the label queue of a dataset stands for one user.

    run_id: the audit run whose scores order the queue (None: no audit yet); scored: the run
    has ActiveLab scores; reason: why not, for a person; total: items in the queue; mine: items
    this user has labelled."""

    run_id: int | None
    scored: bool
    total: int
    mine: int
    reason: str | None = None


@dataclass
class LabelItem:
    """One item as the Label page draws it: no other annotator's label, no consensus, no gold."""

    dataset_id: int
    idx: int
    key: str
    text: str | None
    run_id: int
    score: float | None
    my_label: str | None = None  # the user's own label, when they come back to an item they labelled


def _check_dataset(ds: Dataset) -> None:
    if not ds.mapping.multi or ds.task != "text":
        raise ReviewError(
            f"Dataset {ds.name!r} has one label per item: the label queue is for text datasets labelled "
            "by several annotators. Use the Review page to correct its labels."
        )


def queue_status(db: sqlite_utils.Database, ds: Dataset, user: User) -> QueueStatus:
    """The latest audit run of ``ds`` and whether it can order the queue (aggregates only)."""
    require_active(db, user, "annotator", "label items")
    _check_dataset(ds)
    run = latest_run(db, ds.id, "audit")
    mine = (
        store.scalar(db, "SELECT COUNT(*) FROM annotations WHERE dataset_id=? AND annotator=?", [ds.id, user.name]) or 0
    )
    if run is None:
        return QueueStatus(None, False, 0, mine, "No audit run yet: the queue is ordered by the audit's scores.")
    scored = db.execute("SELECT 1 FROM scores WHERE run_id=? AND activelab IS NOT NULL LIMIT 1", [run["id"]]).fetchone()
    if not scored:
        why = (run["params"] or {}).get("label queue error")
        reason = (
            f"The latest audit (run {run['id']}) could not score the items for labelling ({why})."
            if why
            else f"The latest audit (run {run['id']}) was made before the label queue existed."
        ) + " Run the audit again."
        return QueueStatus(run["id"], False, 0, mine, reason)
    return QueueStatus(run["id"], True, int(run["metrics"].get("rows") or ds.n_items), mine)


def next_item(db: sqlite_utils.Database, ds: Dataset, user: User, exclude: Sequence[int] = ()) -> LabelItem | None:
    """The item of the latest audit run with the lowest ActiveLab score that ``user`` has not
    labelled and not skipped (``exclude``); None when there is none. One indexed read."""
    status = queue_status(db, ds, user)
    if not status.scored:
        return None
    excl = sorted({int(i) for i in exclude})
    sql = (
        "SELECT s.idx, s.activelab, i.key, i.text FROM scores s JOIN items i ON i.dataset_id=? AND i.idx=s.idx"
        " WHERE s.run_id=? AND s.activelab IS NOT NULL"
        " AND NOT EXISTS (SELECT 1 FROM annotations a WHERE a.dataset_id=? AND a.annotator=? AND a.idx=s.idx)"
    )
    params: list = [ds.id, status.run_id, ds.id, user.name]
    if excl:
        sql += f" AND s.idx NOT IN ({','.join('?' * len(excl))})"
        params += excl
    row = db.execute(sql + " ORDER BY s.activelab, s.idx LIMIT 1", params).fetchone()
    if row is None:
        return None
    idx, score, key, text = row
    return LabelItem(ds.id, idx, key, text, status.run_id, score)


def get_item(db: sqlite_utils.Database, ds: Dataset, idx: int, user: User) -> LabelItem:
    """One item for ``user`` (to change the label they gave it): the text and their own label only."""
    require_active(db, user, "annotator", "label items")
    _check_dataset(ds)
    idx = row_number(ds, idx)
    run = latest_run(db, ds.id, "audit")
    row = db.execute(
        "SELECT i.key, i.text, s.activelab FROM items i LEFT JOIN scores s ON s.run_id=? AND s.idx=i.idx"
        " WHERE i.dataset_id=? AND i.idx=?",
        [run["id"] if run else -1, ds.id, idx],
    ).fetchone()
    key, text, score = row
    return LabelItem(ds.id, idx, key, text, run["id"] if run else None, score, my_label(db, ds, idx, user))


def my_label(db: sqlite_utils.Database, ds: Dataset, idx: int, user: User) -> str | None:
    """The label ``user`` gave item ``idx`` (None: they did not label it)."""
    return store.scalar(
        db,
        "SELECT label FROM annotations WHERE dataset_id=? AND idx=? AND annotator=? ORDER BY rowid DESC LIMIT 1",
        [ds.id, int(idx), user.name],
    )


def row_number(ds: Dataset, value) -> int:
    """A row number (0-based, as the app shows rows; an int or its text) -> int. NotFound naming
    the value and the range when it is not a whole number or not a row of ``ds``."""
    text = str(value).strip()
    try:
        i = int(text)
    except ValueError:
        raise NotFound(f"{text!r} is not a row number: rows of {ds.name!r} are 0 to {ds.n_items - 1}.") from None
    if not 0 <= i < ds.n_items:
        raise NotFound(f"Dataset {ds.name!r} has no row {i}: rows are 0 to {ds.n_items - 1}.")
    return i


def add_label(
    db: sqlite_utils.Database, ds: Dataset, idx: int, user: User, label: str, run_id: int | None = None
) -> str:
    """``user`` labels item ``idx`` as ``label``: one row in ``annotations`` under their name
    (replacing the label they gave it before, never a second one) and one audit row, in one
    transaction. Returns 'added', 'replaced' or 'unchanged' (the same label again: nothing
    written). ``run_id``: the run whose queue showed the item, for the audit trail."""
    require_active(db, user, "annotator", "label items")
    _check_dataset(ds)
    idx = row_number(ds, idx)
    if label not in ds.labels:
        raise ReviewError(f"{label!r} is not a label of {ds.name!r}: choose one of {', '.join(ds.labels)}.")
    with store.transaction(db):
        old = [
            r[0]
            for r in db.execute(
                "SELECT label FROM annotations WHERE dataset_id=? AND idx=? AND annotator=? ORDER BY rowid",
                [ds.id, idx, user.name],
            )
        ]
        if len(old) == 1 and old[0] == label:
            return "unchanged"
        if old:
            db.execute("DELETE FROM annotations WHERE dataset_id=? AND idx=? AND annotator=?", [ds.id, idx, user.name])
        db.execute(
            "INSERT INTO annotations(dataset_id, idx, annotator, label) VALUES (?,?,?,?)",
            [ds.id, idx, user.name, label],
        )
        outcome = "replaced" if old else "added"
        trail.log(
            db,
            user.name,
            ACTION,
            ds.id,
            idx,
            label=label,
            previous_label=old[-1] if old else None,
            outcome=outcome,
            run=run_id,
        )
    return outcome
