"""Near duplicates: rows connected by a cosine similarity of at least ``THRESHOLD``, in sets.

Candidates are each row's nearest rows (review.findings.neighbours) at ``CANDIDATE`` or more in the dense
features; a pair counts when the cosine of its words (the sparse TF-IDF rows, when there are some; else the
dense similarity) is at least ``THRESHOLD``. Connected pairs form a set (union-find). A row's score is
1 - its highest similarity inside its set (0 for an exact copy; lower = more of an issue). Sets with more
than one current label (conflicting) come first; a set whose rows carry different values of a metadata
column named split / fold / subset is leakage."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from review.findings.features import sparse_cosine
from review.findings.neighbours import Neighbours

THRESHOLD = 0.85  # chosen on AG News with injected copies and on news20 (benchmarks/findings.py)
CANDIDATE = 0.8
SPLIT_NAMES = ("split", "fold", "subset")


@dataclass
class DupSetFound:
    rows: list[int]
    n_labels: int
    leakage: bool
    similarity: float  # the lowest similarity of the pairs that join the set


@dataclass
class NearDuplicates:
    sets: list[DupSetFound] = field(default_factory=list)
    row_similarity: dict[int, float] = field(default_factory=dict)  # row -> highest similarity in its set
    row_set: dict[int, int] = field(default_factory=dict)  # row -> index into sets
    threshold: float = THRESHOLD
    pairs: int = 0


def _find(parent: np.ndarray, i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def pairs(
    nb: Neighbours, sparse, threshold: float = THRESHOLD, candidate: float = CANDIDATE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The near-duplicate pairs among the neighbour lists -> (a, b, similarity), a < b, each pair once:
    candidates at ``candidate`` or more in the dense features, kept at ``threshold`` or more in the words."""
    rows, cols = np.nonzero((nb.idx >= 0) & (nb.sim >= min(candidate, threshold)))
    a, b = rows.astype(np.int64), nb.idx[rows, cols].astype(np.int64)
    keep = a < b
    a, b = np.concatenate([a[keep], b[~keep]]), np.concatenate([b[keep], a[~keep]])
    if len(a):
        pair = np.unique(np.stack([a, b], axis=1), axis=0)
        a, b = pair[:, 0], pair[:, 1]
    s = sparse_cosine(sparse, a, b) if sparse is not None else _dense_pairs(nb, a, b)
    ok = s >= threshold
    return a[ok], b[ok], s[ok]


def find(
    nb: Neighbours,
    sparse,
    labels: np.ndarray,
    splits: dict[int, str] | None = None,
    threshold: float = THRESHOLD,
    candidate: float = CANDIDATE,
) -> NearDuplicates:
    """labels (n,) int codes (-1 none); splits: row -> its split value (rows without one left out)."""
    n = len(nb.idx)
    a, b, s = pairs(nb, sparse, threshold, candidate)
    out = NearDuplicates(threshold=threshold, pairs=int(len(a)))
    if not len(a):
        return out
    parent = np.arange(n)
    for x, y in zip(a.tolist(), b.tolist()):
        rx, ry = _find(parent, x), _find(parent, y)
        if rx != ry:
            parent[max(rx, ry)] = min(rx, ry)
    best: dict[int, float] = {}
    low: dict[int, float] = {}
    for x, y, v in zip(a.tolist(), b.tolist(), s.tolist()):
        v = min(1.0, float(v))
        best[x], best[y] = max(best.get(x, 0.0), v), max(best.get(y, 0.0), v)
        r = _find(parent, x)
        low[r] = min(low.get(r, 1.0), v)
    groups: dict[int, list[int]] = {}
    for x in sorted(best):
        groups.setdefault(_find(parent, x), []).append(x)
    order = sorted(groups, key=lambda r: (-(len({int(labels[i]) for i in groups[r] if labels[i] >= 0}) > 1), r))
    for r in order:
        members = groups[r]
        labs = {int(labels[i]) for i in members if labels[i] >= 0}
        sp = {splits[i] for i in members if splits and i in splits}
        out.row_set.update({i: len(out.sets) for i in members})
        out.sets.append(DupSetFound(members, len(labs), len(sp) > 1, round(low[r], 4)))
    out.row_similarity = best
    return out


def _dense_pairs(nb: Neighbours, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The dense similarity of pairs (a, b) read back from the neighbour lists (either direction)."""
    out = np.zeros(len(a), dtype=np.float32)
    for t, (x, y) in enumerate(zip(a.tolist(), b.tolist())):
        hit = np.nonzero(nb.idx[x] == y)[0]
        out[t] = nb.sim[x, hit[0]] if len(hit) else nb.sim[y, np.nonzero(nb.idx[y] == x)[0][0]]
    return out
