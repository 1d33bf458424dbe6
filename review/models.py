"""Out-of-sample predicted probabilities by cross-validation (never in-sample).

Text: the texts are vectorised once (hashed TF-IDF of words and word pairs), then a
fast linear model (multinomial Naive Bayes) is cross-validated on the matrix and its
out-of-sample probabilities are temperature-scaled (one parameter, fitted to the given
labels), so that cleanlab's per-class thresholds and noise counts see calibrated
probabilities. Tabular: gradient-boosted trees on numeric and categorical columns.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
from sklearn.model_selection import StratifiedKFold
from sklearn.naive_bayes import MultinomialNB

Progress = Callable[[float, str], None]
HASH_FEATURES = 2**20        # hashing buckets for words and word pairs
NB_ALPHA = 1.0               # MultinomialNB smoothing; on AG News (benchmarks/ag_news_audit.py) it ranks
                             # wrong labels better than ComplementNB(0.3) and the TF-IDF+LogisticRegression recipe


@dataclass
class ModelResult:
    """pred_probs: (n, K) out-of-sample probabilities, rows sum to 1; params: what was fitted."""

    pred_probs: np.ndarray
    params: dict
    seconds: float


def _noop(fraction: float, message: str) -> None:
    pass


def vectorise_text(texts: Sequence[str | None]):
    """texts (n,) -> sparse TF-IDF matrix (n, V). Fitted once, unsupervised, on all rows.

    Words and word pairs are hashed into 2**20 buckets (no vocabulary to build: about
    twice as fast as TfidfVectorizer, and memory stays flat on large data); buckets seen
    in a single document are dropped (like min_df=2) unless that would drop them all.
    """
    docs = [t or "" for t in texts]
    hv = HashingVectorizer(n_features=HASH_FEATURES, alternate_sign=False, ngram_range=(1, 2), norm=None,
                           dtype=np.float32)
    counts = hv.transform(docs)
    df = np.bincount(counts.indices, minlength=HASH_FEATURES)   # documents per bucket (indices unique per row)
    keep = np.flatnonzero(df >= 2)
    if len(keep) == 0:                                            # tiny data: every n-gram occurs once
        keep = np.flatnonzero(df) if df.any() else np.zeros(1, dtype=np.int64)   # (no words at all: one empty column)
    X = TfidfTransformer(sublinear_tf=True).fit_transform(counts[:, keep])
    return X, {"vectoriser": "hashing-tfidf-1-2gram", "features": int(len(keep))}


def tabular_matrix(features: list[dict]) -> tuple[pd.DataFrame, list[str]]:
    """list of {column: value} (n,) -> DataFrame (n, F) with numeric columns as float and
    the rest as pandas categoricals; returns the categorical column names too."""
    df = pd.DataFrame.from_records(features)
    cats = []
    for c in df.columns:
        num = pd.to_numeric(df[c], errors="coerce")
        if num.notna().sum() >= 0.9 * df[c].notna().sum():
            df[c] = num.astype(float)
        else:
            df[c] = df[c].astype("category")
            cats.append(c)
    return df, cats


def cross_val_probs(X, labels: np.ndarray, n_classes: int, make_model: Callable, n_folds: int = 5,
                    seed: int = 0, progress: Progress = _noop) -> np.ndarray:
    """X (n, d) features, labels (n,) ints in [0, K) or -1 for unlabelled.

    Returns (n, K) out-of-sample probabilities: each labelled row is predicted by the
    fold model that did not see it; unlabelled rows by the mean of the fold models.
    """
    labelled = np.flatnonzero(labels >= 0)
    unl = np.flatnonzero(labels < 0)
    y = labels[labelled]
    probs = np.zeros((len(labels), n_classes), dtype=np.float64)
    counts = np.bincount(y, minlength=n_classes)
    folds = int(min(n_folds, max(2, counts[counts > 0].min())))
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for k, (tr, te) in enumerate(skf.split(np.zeros(len(y)), y), start=1):
        progress((k - 1) / folds, f"Fold {k} of {folds}: training on {len(tr):,} rows")
        model = make_model()
        model.fit(X[labelled[tr]], y[tr])
        cls = model.classes_
        probs[np.ix_(labelled[te], cls)] = model.predict_proba(X[labelled[te]])
        if len(unl):
            probs[np.ix_(unl, cls)] += model.predict_proba(X[unl]) / folds
        progress(k / folds, f"Fold {k} of {folds} done")
    probs = np.clip(probs, 1e-6, None)
    return probs / probs.sum(axis=1, keepdims=True)


def text_probs(texts: Sequence[str | None], labels: np.ndarray, n_classes: int, n_folds: int = 5,
               progress: Progress = _noop) -> ModelResult:
    """texts (n,), labels (n,) ints (-1 unlabelled) -> ModelResult with (n, K) probabilities."""
    t0 = time.perf_counter()
    progress(0.0, f"Vectorising {len(texts):,} texts")
    X, vinfo = vectorise_text(texts)
    P = cross_val_probs(X, labels, n_classes, lambda: MultinomialNB(alpha=NB_ALPHA), n_folds, progress=progress)
    P, temperature = temperature_scale(P, labels)
    return ModelResult(P, {"model": f"MultinomialNB(alpha={NB_ALPHA})", "folds": n_folds, **vinfo,
                           "temperature": round(temperature, 3)}, time.perf_counter() - t0)


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

    lo, hi = 0.1, 10.0                                # separable data would push t to infinity
    grid = np.exp(np.linspace(np.log(lo), np.log(hi), 25))
    best = grid[int(np.argmin([nll(t) for t in grid]))]
    for step in (2 ** 0.25, 2 ** 0.0625):            # refine around the grid point
        cand = np.clip(best * step ** np.arange(-4, 5), lo, hi)
        best = cand[int(np.argmin([nll(t) for t in cand]))]
    z = logp * best
    z = z - z.max(axis=1, keepdims=True)
    out = np.exp(z)
    out = np.clip(out / out.sum(axis=1, keepdims=True), 1e-6, None)
    return out / out.sum(axis=1, keepdims=True), float(best)


def tabular_probs(features: list[dict], labels: np.ndarray, n_classes: int, n_folds: int = 5,
                  progress: Progress = _noop) -> ModelResult:
    """features (n,) dicts, labels (n,) -> ModelResult; gradient-boosted trees."""
    t0 = time.perf_counter()
    X, cats = tabular_matrix(features)
    make = lambda: HistGradientBoostingClassifier(max_iter=200, categorical_features=cats or None,
                                                  early_stopping=False, random_state=0)
    P = cross_val_probs(_Rows(X), labels, n_classes, make, n_folds, progress=progress)
    return ModelResult(P, {"model": "HistGradientBoostingClassifier(max_iter=200)", "folds": n_folds,
                           "features": list(X.columns), "categorical": cats}, time.perf_counter() - t0)


class _Rows:
    """Row-indexable view of a DataFrame, so cross_val_probs can slice it like an array."""

    def __init__(self, df: pd.DataFrame):
        self.df = df

    def __getitem__(self, rows):
        return self.df.iloc[rows]


def given_probs(probs_json: Sequence[str | None], n_classes: int) -> np.ndarray:
    """The user's own probabilities (one JSON list per row) -> (n, K)."""
    P = np.array([json.loads(p) for p in probs_json], dtype=np.float64).reshape(len(probs_json), n_classes)
    P = np.clip(P, 1e-6, None)
    return P / P.sum(axis=1, keepdims=True)
