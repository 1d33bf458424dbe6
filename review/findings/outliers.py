"""Outliers: rows far from their nearest rows (cleanlab's OutOfDistribution on features, its scores and
threshold: the average cosine distance d to the k nearest rows, score exp(-d / median d); a row is an
outlier when d > Q3 + (1 / threshold - 1) * IQR of d, as cleanlab.datalab's outlier issue manager)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from review.findings.neighbours import Neighbours

THRESHOLD = 0.37037  # cleanlab.datalab OutlierIssueManager.DEFAULT_THRESHOLDS["features"]


@dataclass
class Outliers:
    """score (n,) in [0, 1] (lower: farther), distance (n,) average cosine distance, flagged (n,) bool,
    cutoff: the distance above which a row is flagged, dataset_score: the mean score."""

    score: np.ndarray
    distance: np.ndarray
    flagged: np.ndarray
    cutoff: float
    dataset_score: float
    threshold: float = THRESHOLD


def find(nb: Neighbours, threshold: float = THRESHOLD) -> Outliers:
    sim = np.where(nb.idx >= 0, nb.sim, 0.0)
    d = np.clip(1.0 - sim, 0.0, 2.0).mean(axis=1).astype(np.float64)
    scale = max(float(np.median(d)), 100 * np.finfo(np.float64).eps)
    score = np.exp(-d / scale)
    q1, q3 = np.percentile(d, [25, 75])
    cutoff = float(q3 + (1 / threshold - 1) * (q3 - q1))
    return Outliers(score, d, d > cutoff, cutoff, float(score.mean()) if len(score) else 1.0, threshold)
