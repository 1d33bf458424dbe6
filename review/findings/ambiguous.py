"""Ambiguous rows: the model finds two classes both likely (out-of-sample probabilities): the top two
probabilities are both at least ``MIN_PROB`` and at most ``MAX_GAP`` apart. Score: the gap p1 - p2
(0: a tie; lower = more ambiguous)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_PROB = 0.3
MAX_GAP = 0.15


@dataclass
class Ambiguous:
    """flagged (n,) bool; first, second (n,) class codes; p1, p2 (n,) their probabilities; score (n,)."""

    flagged: np.ndarray
    first: np.ndarray
    second: np.ndarray
    p1: np.ndarray
    p2: np.ndarray
    score: np.ndarray
    min_prob: float = MIN_PROB
    max_gap: float = MAX_GAP


def find(pred_probs: np.ndarray, min_prob: float = MIN_PROB, max_gap: float = MAX_GAP) -> Ambiguous:
    P = np.asarray(pred_probs, dtype=np.float64)
    n = len(P)
    if P.ndim != 2 or P.shape[1] < 2 or n == 0:
        z = np.zeros(n)
        return Ambiguous(z.astype(bool), z.astype(int), z.astype(int), z, z, np.ones(n), min_prob, max_gap)
    top = np.argsort(-P, axis=1, kind="stable")[:, :2]
    p1, p2 = P[np.arange(n), top[:, 0]], P[np.arange(n), top[:, 1]]
    gap = np.clip(p1 - p2, 0.0, 1.0)
    return Ambiguous((p2 >= min_prob) & (gap <= max_gap), top[:, 0], top[:, 1], p1, p2, gap, min_prob, max_gap)
