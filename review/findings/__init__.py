"""The checks beyond label errors, computed in the audit run from the same features: outliers, near
duplicates (sets, conflicting and leakage), ambiguous rows, class imbalance and non-IID order; each with
a per-row score (where a row can carry it) and a dataset score, cleanlab's convention: in [0, 1], lower =
more of an issue. One module per concern (features, neighbours, outliers, near_duplicates, ambiguous,
imbalance, non_iid); ``store`` writes a run's results, ``summary`` reads them (the pages and the other
modules call summary). cleanlab.Datalab itself is not used: it needs the ``cleanlab[datalab]`` extra
(Hugging Face ``datasets``); its issue managers' scores and thresholds are followed here on our own kNN
graph, which also scales past what sklearn's exact NearestNeighbors does in the audit's time.

:func:`run_checks` computes and writes nothing; the audit writes the result with
:func:`review.findings.store.write` inside the run's transaction."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import sqlite_utils

from review.datasets import Dataset
from review.findings import ambiguous, features, imbalance, near_duplicates, neighbours, non_iid, outliers

MIN_ROWS = 50  # fewer rows: the checks are skipped
# more rows: skipped too. 1M rows is the largest size measured against the audit's budget (5 min, 4 GB for the
# whole audit): `python benchmarks/scale.py --audit` (the checks took about 55-70 s of it on 2 cores)
MAX_ROWS = 1_000_000


def _noop(fraction: float, message: str) -> None:
    pass


@dataclass
class ChecksResult:
    """Everything one run of the checks found; counts() is what the run's metrics keep under "checks"."""

    n: int
    names: list[str]
    labels: np.ndarray
    source: str
    neighbours: neighbours.Neighbours
    outliers: outliers.Outliers
    duplicates: near_duplicates.NearDuplicates
    ambiguous: ambiguous.Ambiguous
    imbalance: imbalance.Imbalance
    non_iid: non_iid.NonIID
    split_column: str | None
    seconds: float

    def counts(self) -> dict:
        return {
            "outliers": int(self.outliers.flagged.sum()),
            "outliers_unlike_any_class": int(self.outliers.unplaced.sum()),
            "near_duplicates": len(self.duplicates.row_set),
            "near_duplicate_sets": len(self.duplicates.sets),
            "conflicting_sets": sum(1 for s in self.duplicates.sets if s.n_labels > 1),
            "leakage_sets": sum(1 for s in self.duplicates.sets if s.leakage),
            "ambiguous": int(self.ambiguous.flagged.sum()),
            "class_imbalance": len(self.imbalance.minority),
            "non_iid": int(self.non_iid.flagged),
            "method": self.neighbours.method,
            "features": self.source,
            "seconds": round(self.seconds, 2),
        }


def split_values(db: sqlite_utils.Database, ds: Dataset) -> tuple[str | None, dict[int, str]]:
    """The metadata column named split / fold / subset (any case), and each row's value of it."""
    first = db.execute("SELECT meta FROM items WHERE dataset_id=? AND meta IS NOT NULL LIMIT 1", [ds.id]).fetchone()
    try:
        keys = list(json.loads(first[0]) or {}) if first else []
    except (TypeError, ValueError):
        keys = []
    col = next((k for k in keys if str(k).strip().lower() in near_duplicates.SPLIT_NAMES), None)
    if col is None:
        return None, {}
    out = {}
    for idx, meta in db.execute("SELECT idx, meta FROM items WHERE dataset_id=? AND meta IS NOT NULL", [ds.id]):
        v = (json.loads(meta) or {}).get(col)
        if v is not None and str(v) != "":
            out[idx] = str(v)
    return col, out


def skipped_reason(n: int) -> str:
    """Why run_checks skips a dataset of ``n`` rows (a sentence for the run's record and the Audit page)."""
    if n < MIN_ROWS:
        return f"{n:,} rows: the checks beyond label errors need at least {MIN_ROWS} (nearest rows of a handful mean nothing)."
    return (
        f"{n:,} rows: the checks beyond label errors run up to {MAX_ROWS:,} rows, the largest size measured within"
        " the audit's time and memory budget."
    )


def run_checks(
    db: sqlite_utils.Database,
    ds: Dataset,
    run_id: int,
    texts: list,
    labels: np.ndarray,
    pred_probs: np.ndarray,
    embeddings: np.ndarray | None = None,
    progress: Callable[[float, str], None] = _noop,
    words=None,
) -> ChecksResult | None:
    """texts (n,), labels (n,) the current label codes (-1: none), pred_probs (n, K) out of sample,
    embeddings (n, d) the team's own or None -> ChecksResult; None under MIN_ROWS rows (ten nearest rows
    of a handful mean nothing: no check runs, nothing is written) or over MAX_ROWS (not yet within the
    budget). words: the audit's sparse word TF-IDF of the texts (ModelResult.words), if it has one.
    Reads the split column; writes nothing."""
    t0 = time.perf_counter()
    labels = np.asarray(labels)
    if not MIN_ROWS <= len(texts) <= MAX_ROWS:
        return None
    progress(0.0, "Checks: features")
    feats = features.dense_features(texts, embeddings, words=words)
    progress(0.2, "Checks: nearest rows")
    nb = neighbours.knn(feats.X, progress=lambda f, m: progress(0.2 + 0.6 * f, m))
    progress(0.8, "Checks: outliers, near duplicates, ambiguous rows, class balance, row order")
    col, splits = split_values(db, ds)
    result = ChecksResult(
        n=len(texts),
        names=list(ds.labels),
        labels=labels,
        source=feats.source,
        neighbours=nb,
        outliers=outliers.find(nb, labels, pred_probs),
        duplicates=near_duplicates.find(nb, feats.sparse, labels, splits),
        ambiguous=ambiguous.find(pred_probs),
        imbalance=imbalance.find(labels, list(ds.labels)),
        non_iid=non_iid.find(nb, labels),
        split_column=col,
        seconds=0.0,
    )
    result.seconds = time.perf_counter() - t0
    progress(1.0, "Checks done")
    return result
