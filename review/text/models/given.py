"""Signals the team brings: its own predicted probabilities."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np


def given_probs(probs_json: Sequence[str | None], n_classes: int) -> np.ndarray:
    """The user's own probabilities (one JSON list per row) -> (n, K)."""
    P = np.array([json.loads(p) for p in probs_json], dtype=np.float64).reshape(len(probs_json), n_classes)
    P = np.clip(P, 1e-6, None)
    return P / P.sum(axis=1, keepdims=True)
