"""Class imbalance (cleanlab.datalab's ClassImbalanceIssueManager): the rarest class is an issue when its
share of the rows is below ``THRESHOLD`` x 1 / K. Dataset score: the rarest class's share (lower: worse).
It names the minority class and its share, and flags no row: a rare class is no noise (the audit's queue
warning about the flagged rows' classes stays as it is)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

THRESHOLD = 0.1


@dataclass
class Imbalance:
    """shares: class name -> share of labelled rows; minority: the classes below the cutoff (rarest first;
    empty when balanced), rarest: the rarest class, score: its share, cutoff: threshold / K."""

    shares: dict[str, float]
    minority: list[str]
    rarest: str | None
    score: float
    cutoff: float
    threshold: float = THRESHOLD


def find(labels: np.ndarray, names: list[str], threshold: float = THRESHOLD) -> Imbalance:
    lab = labels[labels >= 0]
    k = len(names)
    counts = np.bincount(lab, minlength=k)[:k] if len(lab) else np.zeros(k, dtype=int)
    total = max(int(counts.sum()), 1)
    shares = {names[i]: float(counts[i]) / total for i in range(k)}
    order = np.argsort(counts, kind="stable")
    cutoff = threshold / max(k, 1)
    minority = [names[i] for i in order if counts[i] / total < cutoff]
    rarest = names[order[0]] if k else None
    return Imbalance(shares, minority, rarest, float(counts[order[0]] / total) if k else 1.0, cutoff, threshold)
