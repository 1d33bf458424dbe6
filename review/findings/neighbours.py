"""k nearest rows by cosine similarity (features of unit length: a dot product).

Exact up to ``EXACT_UP_TO`` rows: blocked matrix products, each block of queries against every row, the
top k kept by argpartition. Above it approximate: a coarse k-means quantiser (an inverted file, as FAISS's
IVF): rows are put in ``nlist`` cells by their nearest centroid; the rows of a cell are searched against
the rows of the ``nprobe`` cells whose centroids lie nearest that cell's centroid, one matrix product per
cell. ``method`` records which ("exact" or "approximate (k-means IVF, nlist=..., nprobe=...)").
Measured (2 cores, benchmarks/findings.py --scale): exact 50,000 x 100 in 41 s, approximate (nprobe 12) 8 s, recall
1.0 on clustered vectors; 200,000 x 100 approximate (nprobe 6) 39 s; 1,000,000 x 100 (nprobe 6, nlist 2,449) 169 s
under load, recall of the true 10 nearest 1.0 (nprobe 12: 407 s). In a whole 1M-row audit on a quieter machine
(benchmarks/scale.py --audit) the neighbours took 19-29 s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

K = 10
EXACT_UP_TO = 20_000
NPROBE = 6
BLOCK = 2048


@dataclass
class Neighbours:
    """idx (n, k) int32 nearest first (-1 where a row has fewer than k others), sim (n, k) float32 cosine
    similarities (-inf where idx is -1), method: "exact" or "approximate (...)"."""

    idx: np.ndarray
    sim: np.ndarray
    method: str


def _noop(fraction: float, message: str) -> None:
    pass


def _top_k(S: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of S, the columns of the k largest values, largest first."""
    k = min(k, S.shape[1])
    part = np.argpartition(-S, k - 1, axis=1)[:, :k] if k < S.shape[1] else np.tile(np.arange(S.shape[1]), (len(S), 1))
    vals = np.take_along_axis(S, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(vals, order, axis=1)


def _empty(n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full((n, k), -1, dtype=np.int32), np.full((n, k), -np.inf, dtype=np.float32)


def exact(X: np.ndarray, k: int = K, progress: Callable = _noop) -> Neighbours:
    """Every row against every row, a block of queries at a time; a row is never its own neighbour."""
    n = len(X)
    idx, sim = _empty(n, k)
    for a in range(0, n, BLOCK):
        b = min(n, a + BLOCK)
        S = X[a:b] @ X.T
        S[np.arange(b - a), np.arange(a, b)] = -np.inf
        i, s = _top_k(S, k)
        idx[a:b, : i.shape[1]], sim[a:b, : i.shape[1]] = i, s
        progress(b / n, f"Nearest rows: {b:,} of {n:,}")
    sim[idx < 0] = -np.inf
    return Neighbours(idx, sim, "exact")


def _kmeans(X: np.ndarray, nlist: int, seed: int) -> np.ndarray:
    """Centroids (nlist, d) of unit length, fitted on a sample (spherical k-means, a few rounds)."""
    rng = np.random.default_rng(seed)
    sample = X[np.sort(rng.choice(len(X), min(len(X), nlist * 40), replace=False))]
    C = sample[rng.choice(len(sample), nlist, replace=False)].copy()
    for _ in range(8):
        assign = _assign(sample, C)
        sums = np.zeros_like(C)
        np.add.at(sums, assign, sample)
        empty = np.bincount(assign, minlength=nlist) == 0
        sums[empty] = sample[rng.choice(len(sample), int(empty.sum()))]
        norms = np.linalg.norm(sums, axis=1)
        norms[norms == 0] = 1
        C = (sums / norms[:, None]).astype(np.float32)
    return C


def _assign(X: np.ndarray, C: np.ndarray) -> np.ndarray:
    out = np.empty(len(X), dtype=np.int32)
    for a in range(0, len(X), 16_384):
        out[a : a + 16_384] = np.argmax(X[a : a + 16_384] @ C.T, axis=1)
    return out


def approximate(
    X: np.ndarray, k: int = K, nlist: int | None = None, nprobe: int = NPROBE, progress: Callable = _noop, seed: int = 0
) -> Neighbours:
    """Inverted-file search (see the module's doc); nlist defaults to sqrt(nprobe * n), the size at which
    the quantiser's cost and the search's cost balance."""
    n = len(X)
    nlist = nlist or max(2, min(n // 20, int(np.sqrt(nprobe * n))))
    nprobe = min(nprobe, nlist)
    C = _kmeans(X, nlist, seed)
    assign = _assign(X, C)
    order = np.argsort(assign, kind="stable")
    starts = np.searchsorted(assign[order], np.arange(nlist + 1))
    G = C @ C.T
    np.fill_diagonal(G, np.inf)  # each cell's nprobe nearest cells, itself first
    near_cells = _top_k(G, nprobe)[0]
    idx, sim = _empty(n, k)
    for c in range(nlist):
        q = order[starts[c] : starts[c + 1]]
        if len(q) == 0:
            continue
        cand = np.concatenate([order[starts[j] : starts[j + 1]] for j in near_cells[c]])
        for a in range(0, len(q), BLOCK):
            qq = q[a : a + BLOCK]
            S = X[qq] @ X[cand].T
            S[np.arange(len(qq)), a + np.arange(len(qq))] = -np.inf  # the cell's own rows come first in cand
            i, s = _top_k(S, k)
            idx[qq, : i.shape[1]], sim[qq, : i.shape[1]] = cand[i], s
        if c % 64 == 0:
            progress(starts[c + 1] / n, f"Nearest rows (approximate): {starts[c + 1]:,} of {n:,}")
    sim[~np.isfinite(sim)] = -np.inf
    idx[~np.isfinite(sim)] = -1
    return Neighbours(idx, sim, f"approximate (k-means IVF, nlist={nlist}, nprobe={nprobe})")


def knn(X: np.ndarray, k: int = K, progress: Callable = _noop, exact_up_to: int = EXACT_UP_TO) -> Neighbours:
    """Exact while the rows are at most ``exact_up_to``, else approximate."""
    if len(X) <= exact_up_to:
        return exact(X, k, progress)
    return approximate(X, k, progress=progress)
