"""Outliers: rows unlike any other row, and rows unlike any class. Two rules, one finding kind; a row is an
outlier when either holds.

**Isolated** (cleanlab's OutOfDistribution on features, its scores and threshold): the average cosine
distance d to the k nearest rows, score exp(-d / median d); a row is isolated when d > Q3 + (1 / threshold -
1) * IQR of d, as cleanlab.datalab's outlier issue manager. It finds a lone row; it misses rows of another
kind that came in together (texts of another domain mixed in): each has its own kind for nearest rows.

**Unlike any class** (needs labels and out-of-sample pred_probs): texts of another domain forced into the
classes carry labels the model cannot learn. For each row, its own and its k nearest rows' confidence in
their given labels (pred_probs[j, label_j]) is set against what a label drawn at random from the dataset's
label shares would get (sum_c pred_probs[j, c] * share_c): lift = (confidence - chance) / (1 - chance),
1 where the model is sure of every label, 0 where the labels look random to it, below 0 where they are
systematically wrong. A lone mislabelled row keeps a high lift (its neighbours are right); a region where
two classes overlap keeps a clear one (its labels are hard, not random). The lift is then averaged over
the row and its mutual nearest rows (each in the other's k nearest), twice: that steadies it, and a row of the
data that lists one of the foreign rows among its nearest (long texts draw many rows to them) is not pulled
down with them. A row is unlike any class when that average lift is below ``UNLIKE_ANY_CLASS`` and the model
is not sure of the row's own label (its own lift below ``OWN_LABEL_SURE``): a row of the data whose nearest
rows are mostly the foreign ones (an opinion piece among injected reviews) is still like its class when the
model places it there with near certainty.

Measured with the audit's own probabilities (the constants chosen on the whole panel, not one set; the
figures for every set are in the issue notes): AG News + 100 IMDB reviews at seeds 0, 1, 2: recall 0.96,
0.93, 0.95 at precision 0.81, 0.89, 0.86 (the rows still wrongly flagged are news whose nearest rows are
90-100% the injected reviews: opinion pieces and blog posts); nothing injected: AG News 7,600 rows 0 flagged,
news20 8,000 rows 0, IMDB 8,000 rows (two classes) 10 at two seeds. Without the own-label veto: recall 0.96,
0.94, 0.95 at precision 0.79, 0.86, 0.85; a veto at 0.8: recall 0.95, 0.91, 0.94 at precision 0.83, 0.92,
0.88, IMDB 8 and 10. One round of smoothing: recall 0.95-0.97, precision 0.78-0.84, IMDB 11 and 19; a cutoff
of 0.1: recall 0.81-0.94."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from review.findings.neighbours import Neighbours

THRESHOLD = 0.37037  # cleanlab.datalab OutlierIssueManager.DEFAULT_THRESHOLDS["features"]
UNLIKE_ANY_CLASS = 0.15  # average lift over chance below which a row's labels are ones the model cannot learn
SMOOTHING_ROUNDS = 2  # times the lift is averaged over the row and its mutual nearest rows
OWN_LABEL_SURE = 0.9  # a row's own lift at or above which it is like its class, whatever its neighbourhood


@dataclass
class Outliers:
    """score (n,) in [0, 1] (lower: more of an outlier; the lower of the two rules' scores), distance (n,)
    average cosine distance, flagged (n,) bool (isolated or unlike any class), cutoff: the distance above
    which a row is isolated, dataset_score: the mean score; isolated (n,) bool: the distance rule; class_fit
    (n,) the averaged lift over chance (nan without labels); own_fit (n,) the row's own lift (nan without a
    label); unplaced (n,) bool: class_fit below ``fit_cutoff`` and own_fit below ``own_sure``."""

    score: np.ndarray
    distance: np.ndarray
    flagged: np.ndarray
    cutoff: float
    dataset_score: float
    isolated: np.ndarray
    class_fit: np.ndarray
    own_fit: np.ndarray
    unplaced: np.ndarray
    threshold: float = THRESHOLD
    fit_cutoff: float = UNLIKE_ANY_CLASS
    own_sure: float = OWN_LABEL_SURE

    def rules(self, i: int) -> list[str]:
        """The rules that flag row i: "isolated", "unlike any class" (empty for a row not flagged)."""
        return [name for name, hit in (("isolated", self.isolated[i]), ("unlike any class", self.unplaced[i])) if hit]


def _mean_around(values: np.ndarray, ok: np.ndarray, safe: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per row, the mean of ``values`` over the row and the neighbours ``mask`` (n, k) selects (``safe``: their
    indices), counting only rows where ``ok``; nan where none counts."""
    okf = ok.astype(np.float64)
    v = np.where(ok, values, 0.0)
    w = mask * okf[safe]
    den = okf + w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (v + (v[safe] * w).sum(axis=1)) / den
    out[den == 0] = np.nan
    return out


def _lifts(labels: np.ndarray, P: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> (has a label, the model's confidence in it, what a label drawn from the label shares would get)."""
    n, K = P.shape
    has = labels >= 0
    share = np.bincount(labels[has], minlength=K)[:K] / max(int(has.sum()), 1)
    conf = np.where(has, P[np.arange(n), np.where(has, labels, 0)], 0.0)
    chance = np.where(has, P @ share, 0.0)
    return has, conf, chance


def own_fit(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """(n,) each row's own lift over chance: (confidence in its label - chance) / (1 - chance); nan unlabelled."""
    has, conf, chance = _lifts(np.asarray(labels), np.asarray(pred_probs, dtype=np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(has, (conf - chance) / np.maximum(1.0 - chance, 1e-6), np.nan)


def class_fit(nb: Neighbours, labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """(n,) the lift over chance of the model's confidence in the given labels of each row's neighbourhood,
    averaged over the row and its mutual nearest rows (see the module's doc); nan for a row whose
    neighbourhood has no labelled row. labels: codes, -1 for none."""
    labels = np.asarray(labels)
    P = np.asarray(pred_probs, dtype=np.float64)
    n = len(P)
    has, conf, chance = _lifts(labels, P)
    idx = nb.idx
    valid = idx >= 0
    safe = np.where(valid, idx, 0)
    c_mean, ch_mean = _mean_around(conf, has, safe, valid), _mean_around(chance, has, safe, valid)
    lift = (c_mean - ch_mean) / np.maximum(1.0 - ch_mean, 1e-6)

    # mutual nearest rows: j among i's k nearest and i among j's (an (n, k, k) comparison, no graph built)
    mutual = np.zeros(idx.shape, dtype=bool)
    for a in range(0, n, 100_000):  # in blocks: the (block, k, k) comparison stays small
        b = min(n, a + 100_000)
        mutual[a:b] = valid[a:b] & (idx[safe[a:b]] == np.arange(a, b)[:, None, None]).any(axis=2)
    out = lift
    for _ in range(SMOOTHING_ROUNDS):
        out = _mean_around(out, ~np.isnan(out), safe, mutual)
    return out


def find(
    nb: Neighbours,
    labels: np.ndarray | None = None,
    pred_probs: np.ndarray | None = None,
    threshold: float = THRESHOLD,
    fit_cutoff: float = UNLIKE_ANY_CLASS,
    own_sure: float = OWN_LABEL_SURE,
) -> Outliers:
    """Both rules (see the module's doc); without labels and pred_probs only the isolated rows."""
    sim = np.where(nb.idx >= 0, nb.sim, 0.0)
    d = np.clip(1.0 - sim, 0.0, 2.0).mean(axis=1).astype(np.float64)
    scale = max(float(np.median(d)), 100 * np.finfo(np.float64).eps)
    score = np.exp(-d / scale)
    q1, q3 = np.percentile(d, [25, 75]) if len(d) else (0.0, 0.0)
    cutoff = float(q3 + (1 / threshold - 1) * (q3 - q1))
    isolated = d > cutoff
    n = len(d)
    fit, own = np.full(n, np.nan), np.full(n, np.nan)
    unplaced = np.zeros(n, dtype=bool)
    if labels is not None and pred_probs is not None and n:
        fit, own = class_fit(nb, labels, pred_probs), own_fit(labels, pred_probs)
        sure = np.nan_to_num(own, nan=-1.0) >= own_sure  # like its class, whatever its neighbourhood
        unplaced = (np.nan_to_num(fit, nan=1.0) < fit_cutoff) & ~sure
        score = np.minimum(score, np.where(sure, 1.0, np.clip(np.nan_to_num(fit, nan=1.0), 0.0, 1.0)))
    flagged = isolated | unplaced
    return Outliers(
        score,
        d,
        flagged,
        cutoff,
        float(score.mean()) if n else 1.0,
        isolated,
        fit,
        own,
        unplaced,
        threshold,
        fit_cutoff,
        own_sure,
    )
