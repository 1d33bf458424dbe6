"""The row-order check (review.findings.non_iid) on the panel: how often it warns when the order is random,
and how often it catches drift injected into a random order.

    python benchmarks/non_iid.py [--shuffles 100] [--drifts 20] [--sets ag_news,news20,imdb,sentiment]
                                 [--permutations 25]

Per set (AG News test, news20_train, imdb_train, sentiment by majority vote: read as benchmarks/detection.py
reads them), the features and the ten
nearest rows are computed once, as the audit computes them (review.findings.features.dense_features,
review.findings.neighbours.knn); a new row order is then a relabelling of the rows, so each order costs only
the two tests. Printed per set:

* the file's own order: both p-values and whether the check warns;
* false alarms: the share of ``--shuffles`` random orders the check warns on (the order is random by
  construction, so every warning is false), for the rule shipped (review.findings.non_iid: each of the two
  tests against half the significance, Bonferroni) and for the earlier one (the lower p-value against the
  whole significance);
* detection: the share of ``--drifts`` random orders with drift injected that the check catches, for two
  kinds at two sizes (DRIFTS): ``labels`` (1 % or 3 % of the rows, all of one class taken at random, put
  together in one place: a batch of one class) and ``features`` (a random row and the 1 % or 5 % of rows most
  like it, by cosine, put together in one place in random order: a batch from one source), for both rules.

A measurement: the exit status is 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import ag_news_audit as A  # noqa: E402
import detection as D  # noqa: E402

from review.findings import features, neighbours, non_iid  # noqa: E402


def _ag_news():
    labels, records = A.read_ag_news(A.AG_NEWS, None)
    return A.texts_of(records), labels


def _csv(name: str):
    df = pd.read_csv(D.SOURCES[name])
    return df["text"].astype(str).tolist(), pd.factorize(df["label"])[0]


def _sentiment():
    _, texts, majority, _ = D.sentiment_items()  # the detection panel's majority vote
    return texts, majority


DRIFTS = [("labels", 0.01), ("labels", 0.03), ("features", 0.01), ("features", 0.05)]
SETS = {
    "ag_news": _ag_news,
    "news20": lambda: _csv("news20_train"),
    "imdb": lambda: _csv("imdb_train"),
    "sentiment": _sentiment,
}


def reorder(nb: neighbours.Neighbours, labels: np.ndarray, order: np.ndarray):
    """order[p] = the row at position p -> the neighbours and labels as if the rows came in that order."""
    pos = np.empty_like(order)
    pos[order] = np.arange(len(order))
    idx = nb.idx[order]
    idx = np.where(idx >= 0, pos[np.maximum(idx, 0)], -1).astype(nb.idx.dtype)
    return neighbours.Neighbours(idx, nb.sim[order], nb.method), labels[order]


def warns(r: non_iid.NonIID) -> tuple[bool, bool]:
    """(the rule shipped, the earlier rule: the lower p-value below the whole significance)."""
    return r.flagged, min(r.features_p, r.labels_p) < r.significance


def label_drift(rng, labels: np.ndarray, share: float) -> np.ndarray:
    n = len(labels)
    m = max(2, int(share * n))
    classes = [c for c in np.unique(labels) if (labels == c).sum() >= m]
    batch = rng.choice(np.nonzero(labels == rng.choice(classes))[0], m, replace=False)
    rest = rng.permutation(np.setdiff1d(np.arange(n), batch))
    at = rng.integers(0, len(rest) + 1)
    return np.concatenate([rest[:at], batch, rest[at:]])


def feature_drift(rng, X: np.ndarray, share: float) -> np.ndarray:
    n = len(X)
    m = max(2, int(share * n))
    seed = rng.integers(n)
    near = np.argsort(-(X @ X[seed]))[:m]
    rng.shuffle(near)
    rest = rng.permutation(np.setdiff1d(np.arange(n), near))
    at = rng.integers(0, len(rest) + 1)
    return np.concatenate([rest[:at], near, rest[at:]])


def drift(rng, kind: str, share: float, labels: np.ndarray, X: np.ndarray) -> np.ndarray:
    return label_drift(rng, labels, share) if kind == "labels" else feature_drift(rng, X, share)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shuffles", type=int, default=100)
    ap.add_argument("--drifts", type=int, default=20)
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument(
        "--permutations", type=int, default=non_iid.PERMUTATIONS, help="random orders behind the features' p-value"
    )
    args = ap.parse_args()
    non_iid.PERMUTATIONS = args.permutations
    rows = []
    for name in args.sets.split(","):
        t0 = time.perf_counter()
        texts, labels = SETS[name]()
        labels = np.asarray(labels)
        feats = features.dense_features(texts)
        nb = neighbours.knn(feats.X)
        own = non_iid.find(nb, labels)
        rng = np.random.default_rng(0)
        fa = np.array(
            [
                warns(non_iid.find(*reorder(nb, labels, rng.permutation(len(labels))), seed=s + 1))
                for s in range(args.shuffles)
            ]
        )
        det = []
        for kind, share in DRIFTS:
            det.append(
                np.array(
                    [
                        warns(non_iid.find(*reorder(nb, labels, drift(rng, kind, share, labels, feats.X)), seed=s + 1))
                        for s in range(args.drifts)
                    ]
                )
            )
        rows.append((name, fa.mean(axis=0), *[d.mean(axis=0) for d in det]))
        print(
            f"{name}: {len(labels):,} rows; file order: features p {own.features_p:.3g}, labels p {own.labels_p:.3g},"
            f" warns {own.flagged}; {time.perf_counter() - t0:.0f} s",
            flush=True,
        )
    heads = ["false alarms"] + [f"{kind} drift {share:.0%} caught" for kind, share in DRIFTS]
    print("\nEach cell: the rule shipped / the earlier rule.")
    print(f"{'set':<10}" + "".join(f"{h:>26}" for h in heads))
    table = np.array([r[1:] for r in rows])  # (sets, columns, 2)
    for name, *cells in rows:
        print(f"{name:<10}" + "".join(f"{c[0]:>19.2f} / {c[1]:.2f}" for c in cells))
    best = [np.max, *[np.min] * len(DRIFTS)]  # the worst set: the most false alarms, the least drift caught
    print(f"{'mean':<10}" + "".join(f"{c[0]:>19.2f} / {c[1]:.2f}" for c in table.mean(axis=0)))
    print(
        f"{'worst':<10}" + "".join(f"{f(table[:, j, 0]):>19.2f} / {f(table[:, j, 1]):.2f}" for j, f in enumerate(best))
    )


if __name__ == "__main__":
    main()
