"""Non-IID: features or labels that drift with row order.

Features (cleanlab.datalab's NonIIDIssueManager): on the kNN graph, the distribution of the row-order
distance |i - j| between a row and its neighbours against that of random pairs (the KS statistic between
the two); a p-value from ``PERMUTATIONS`` random orders of the rows (the statistic of each permuted graph,
a Gaussian KDE over them, as cleanlab). Labels: a chi-square test of the labels against ``BLOCKS`` row-order
blocks. Two tests, so each is held to half of ``SIGNIFICANCE`` (Bonferroni): a random order then warns at
most about 5 % of the time, where the lower of the two p-values against the whole 0.05 warned on more (the
figures: benchmarks/non_iid.py). The dataset score is the lower p-value so adjusted (twice it, at most 1);
below ``SIGNIFICANCE`` the order matters (one dataset-level finding; no row is flagged: drift belongs to the
order, not to a row)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from review.findings.neighbours import Neighbours

PERMUTATIONS = 25
BLOCKS = 20
SIGNIFICANCE = 0.05
BINS = 100
TESTS = 2  # the features' test and the labels' test: each is held to SIGNIFICANCE / TESTS


@dataclass
class NonIID:
    score: float  # the lower of the two p-values, Bonferroni-adjusted: min(1, TESTS * min(features_p, labels_p))
    features_p: float
    labels_p: float
    ks: float
    worst_block: tuple[int, int] | None  # rows [first, last] of the block whose labels differ most
    significance: float = SIGNIFICANCE

    @property
    def cutoff(self) -> float:
        """The level each of the two p-values is held to."""
        return self.significance / TESTS

    @property
    def flagged(self) -> bool:
        return self.score < self.significance

    @property
    def features_drift(self) -> bool:
        return self.features_p < self.cutoff

    @property
    def labels_drift(self) -> bool:
        return self.labels_p < self.cutoff


def _ks(dist: np.ndarray, n: int) -> float:
    """KS statistic of row-order distances against random pairs (P(|i-j| <= d) = 1 - ((n-d-1)/n)^2 roughly)."""
    edges = np.linspace(0, n, BINS + 1)
    hist = np.histogram(dist, bins=edges)[0].astype(np.float64)
    hist /= max(hist.sum(), 1)
    ref = 1 - ((n - edges[1:]) / n) ** 2
    return float(np.max(np.abs(np.cumsum(hist) - ref)))


def _features_p(nb: Neighbours, seed: int) -> tuple[float, float]:
    from scipy.stats import gaussian_kde

    n = len(nb.idx)
    ok = nb.idx >= 0
    rows = np.nonzero(ok)[0]
    cols = nb.idx[ok]
    if len(rows) == 0 or n < 20:
        return 1.0, 0.0
    ks = _ks(np.abs(rows - cols), n)
    rng = np.random.default_rng(seed)
    null = []
    for _ in range(PERMUTATIONS):
        perm = rng.permutation(n)
        null.append(_ks(np.abs(perm[rows] - perm[cols]), n))
    null = np.array(null)
    if np.ptp(null) == 0:
        return (1.0 if ks <= null[0] else 0.0), ks
    return float(np.clip(gaussian_kde(null).integrate_box_1d(ks, 100), 0.0, 1.0)), ks


def _labels_p(labels: np.ndarray) -> tuple[float, tuple[int, int] | None]:
    from scipy.stats import chi2_contingency

    n = len(labels)
    lab = labels >= 0
    k = int(labels.max()) + 1 if lab.any() else 0
    blocks = min(BLOCKS, n // 20)
    if k < 2 or blocks < 2:
        return 1.0, None
    block = np.minimum((np.arange(n) * blocks) // n, blocks - 1)
    table = np.zeros((blocks, k))
    np.add.at(table, (block[lab], labels[lab]), 1)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 1.0, None
    chi = chi2_contingency(table)
    resid = ((table - chi.expected_freq) ** 2 / np.maximum(chi.expected_freq, 1e-9)).sum(axis=1)
    w = int(np.argmax(resid))
    first = int(np.searchsorted(block, w))
    last = int(np.searchsorted(block, w, side="right")) - 1
    return float(chi.pvalue), (first, last)


def find(nb: Neighbours, labels: np.ndarray, seed: int = 0) -> NonIID:
    fp, ks = _features_p(nb, seed)
    lp, worst = _labels_p(labels)
    return NonIID(min(1.0, TESTS * min(fp, lp)), fp, lp, ks, worst)
