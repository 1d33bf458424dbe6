"""Cross-fitting: every labelled row is predicted by a model that did not see it."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.model_selection import StratifiedKFold

from review.text.models.base import Progress, noop


def fold_splits(labels: np.ndarray, n_folds: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """labels (n,) ints, -1 unlabelled -> [(train rows, test rows)] over the labelled rows (row numbers
    into labels), stratified, at most n_folds and no more than the rarest present class allows."""
    labelled = np.flatnonzero(labels >= 0)
    y = labels[labelled]
    counts = np.bincount(y, minlength=1)
    folds = int(min(n_folds, max(2, counts[counts > 0].min())))
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [(labelled[tr], labelled[te]) for tr, te in skf.split(np.zeros(len(y)), y)]


def predict_fold(
    X, labels: np.ndarray, n_classes: int, make_model: Callable, train: np.ndarray, test: np.ndarray
) -> np.ndarray:
    """Fit make_model() on rows `train`, -> (len(test), K) probabilities for rows `test`."""
    model = make_model()
    model.fit(X[train], labels[train])
    out = np.zeros((len(test), n_classes))
    if len(test):
        out[:, model.classes_] = model.predict_proba(X[test])
    return out


def fold_rows(test: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The rows a fold model predicts: its test rows, then every unlabelled row."""
    return np.concatenate([test, np.flatnonzero(labels < 0)])


def cross_val_probs(
    X,
    labels: np.ndarray,
    n_classes: int,
    make_model: Callable,
    n_folds: int = 5,
    seed: int = 0,
    progress: Progress = noop,
    splits: list | None = None,
    done: dict[int, np.ndarray] | None = None,
    exclude: np.ndarray | None = None,
) -> np.ndarray:
    """X (n, d) features, labels (n,) ints in [0, K) or -1 for unlabelled.

    Returns (n, K) out-of-sample probabilities: each labelled row is predicted by the
    fold model that did not see it; unlabelled rows by the mean of the fold models.
    splits: the folds (default fold_splits(labels, n_folds, seed)); done: {fold number:
    its test rows' probabilities} already computed (not fitted again); exclude (n,) bool:
    rows never trained on (still predicted out of sample).
    """
    splits = splits if splits is not None else fold_splits(labels, n_folds, seed)
    done = done or {}
    unl = np.flatnonzero(labels < 0)
    probs = np.zeros((len(labels), n_classes), dtype=np.float64)
    folds = len(splits)
    for k, (tr, te) in enumerate(splits):
        if exclude is not None:
            tr = tr[~exclude[tr]]
        if k in done:
            pred = done[k]
        else:
            progress(k / folds, f"Fold {k + 1} of {folds}: training on {len(tr):,} rows")
            pred = predict_fold(X, labels, n_classes, make_model, tr, fold_rows(te, labels))
            progress((k + 1) / folds, f"Fold {k + 1} of {folds} done")
        probs[te] = pred[: len(te)]
        if len(unl):
            probs[unl] += pred[len(te) :] / folds
    probs = np.clip(probs, 1e-6, None)
    return probs / probs.sum(axis=1, keepdims=True)


def mean_nll(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the given labels (rows with labels >= 0)."""
    lab = np.flatnonzero(labels >= 0)
    if not len(lab):
        return float("nan")
    return float(-np.log(np.clip(probs[lab, labels[lab]], 1e-12, 1.0)).mean())


def temperature_scale(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, float]:
    """probs (n, K) out-of-sample, labels (n,) ints (-1 unlabelled) -> (probs ** t renormalised, t).

    t is the single exponent (inverse temperature) maximising the log-likelihood of the
    given labels, searched on a log grid and then refined; it keeps every row's ranking of
    classes and only makes the probabilities as sharp or as soft as the model deserves.
    """
    lab = np.flatnonzero(labels >= 0)
    if len(lab) == 0 or probs.shape[1] < 2:
        return probs, 1.0
    logp = np.log(np.clip(probs, 1e-12, 1.0))
    L, y = logp[lab], labels[lab]

    def nll(t: float) -> float:
        z = L * t
        z = z - z.max(axis=1, keepdims=True)
        return float(np.log(np.exp(z).sum(axis=1)).mean() - z[np.arange(len(y)), y].mean())

    lo, hi = 0.1, 10.0  # separable data would push t to infinity
    grid = np.exp(np.linspace(np.log(lo), np.log(hi), 25))
    best = grid[int(np.argmin([nll(t) for t in grid]))]
    for step in (2**0.25, 2**0.0625):  # refine around the grid point
        cand = np.clip(best * step ** np.arange(-4, 5), lo, hi)
        best = cand[int(np.argmin([nll(t) for t in cand]))]
    z = logp * best
    z = z - z.max(axis=1, keepdims=True)
    out = np.exp(z)
    out = np.clip(out / out.sum(axis=1, keepdims=True), 1e-6, None)
    return out / out.sum(axis=1, keepdims=True), float(best)
