"""Tabular data: gradient-boosted trees on numeric and categorical feature columns."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier

from review.text.models.base import ModelResult, Progress, noop
from review.text.models.crossval import cross_val_probs


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


def tabular_probs(
    features: list[dict], labels: np.ndarray, n_classes: int, n_folds: int = 5, progress: Progress = noop
) -> ModelResult:
    """features (n,) dicts, labels (n,) -> ModelResult; gradient-boosted trees."""
    t0 = time.perf_counter()
    X, cats = tabular_matrix(features)
    make = lambda: HistGradientBoostingClassifier(
        max_iter=200, categorical_features=cats or None, early_stopping=False, random_state=0
    )
    P = cross_val_probs(_Rows(X), labels, n_classes, make, n_folds, progress=progress)
    return ModelResult(
        P,
        {
            "model": "HistGradientBoostingClassifier(max_iter=200)",
            "folds": n_folds,
            "features": list(X.columns),
            "categorical": cats,
        },
        time.perf_counter() - t0,
    )


class _Rows:
    """Row-indexable view of a DataFrame, so cross_val_probs can slice it like an array."""

    def __init__(self, df: pd.DataFrame):
        self.df = df

    def __getitem__(self, rows):
        return self.df.iloc[rows]
