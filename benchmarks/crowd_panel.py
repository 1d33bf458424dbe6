"""Several annotators per item on a panel of crowds: consensus accuracy, annotator-quality
ranking, and how the default chose its method.

The panel (truth is used ONLY to measure; every method sees texts, annotator ids and labels):

* sentiment -- ../shared/data/sentiment_mturk/sentiment_mturk_long.csv (4,999 movie-review
  sentences, 203 MTurk workers, 2 classes; truth = the `gold` column);
* synthetic crowds on real texts, the truth being the dataset's class, every simulated
  annotator with its own noise matrix from cleanlab.benchmarking.noise_generation
  (`generate_noise_matrix_from_trace` with trace = accuracy x K, `generate_noisy_labels`
  applied to the crowd's whole true-label vector, then kept only on the items the
  annotator was given). Most annotators draw an accuracy in [0.60, 0.95]; a few are
  near-random (accuracy 1/K + U(0, 0.05)). Coverage is sparse: each item gets a random
  number of annotators in [lo, hi], drawn without replacement with probability proportional
  to a per-annotator activity weight (lognormal, sigma 0.75), so some annotators label
  many items and some few:
    ag2       AG News World vs Sports, 3,000 items, 30 annotators, 1-5 labels per item;
    ag3       AG News World / Sports / Business, 3,000 items, 40 annotators, 1-5;
    ag4       AG News, all 4 classes, 3,000 items, 40 annotators, 1-5;
    ag4-sparse AG News, 4 classes, 4,000 items, 50 annotators (12 near-random), 1-3;
    news10    20 Newsgroups train, 10 of its 20 classes (true_label), 3,000 items,
              50 annotators, 1-5.
  Each crowd is seeded (--seed) and described in one line of the output.

Part 1. For every crowd and every method of review.crowd.consensus.consensus (crowd.METHODS):
* accuracy -- share of items whose consensus equals the truth;
* Spearman -- rank correlation between the method's annotator quality
  (annotator_stats["quality"]) and each annotator's true accuracy (share of their labels
  equal to the truth), over annotators with >= 20 labels. For 'majority' crowd.py itself
  fills quality with the annotator's agreement with the majority vote (marked *);
* seconds -- time.perf_counter around the consensus call (modules imported beforehand).
Then per method the mean and the worst accuracy (and Spearman) over the crowds, the best
method per crowd, and whether 'default' is at least the best other method on every crowd.

Part 2. How 'default' chose (crowd.select_method, inside crowd.consensus): 20% of the
(item, annotator, label) entries held out, every other method fitted on the rest, each scored
by the mean log-likelihood of the held-out labels given its consensus and the annotators'
confusion matrices from their training labels; the picked method's margin over the runner-up
(± its paired standard error), and the default's shortfall against the best method per crowd.

Usage:  python benchmarks/crowd_panel.py [--crowds sentiment,ag2,ag3,ag4,ag4-sparse,news10] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import review.text.models  # noqa: E402,F401  (imported before any timing)
from review.crowd import consensus as crowd  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SENTIMENT = DATA / "sentiment_mturk" / "sentiment_mturk_long.csv"
AG_NEWS = DATA / "ag_news" / "test.csv"
NEWS20 = DATA / "news20_train" / "data.csv"
AG_CLASSES = ["World", "Sports", "Business", "Sci/Tech"]
NEWS10_CLASSES = [
    "alt.atheism",
    "comp.graphics",
    "comp.sys.mac.hardware",
    "misc.forsale",
    "rec.autos",
    "rec.sport.hockey",
    "sci.crypt",
    "sci.med",
    "sci.space",
    "talk.politics.mideast",
]
MIN_LABELS = 20  # annotators with fewer labels are left out of the Spearman
GOOD_ACC = (0.60, 0.95)  # accuracy range of the ordinary simulated annotators
RANDOM_EXTRA = 0.05  # near-random annotators: accuracy 1/K + U(0, RANDOM_EXTRA)
ACTIVITY_SIGMA = 0.75  # lognormal spread of the annotators' activity weights
VALID_MAX_ITER = 2000  # tries of generate_noise_matrix_from_trace for a valid matrix before falling back


# ----------------------------------------------------------------------------- data


@dataclass
class CrowdSpec:
    """A synthetic crowd: which texts and classes, how many items and annotators, how sparse."""

    name: str
    source: str  # 'ag' or 'news20'
    classes: list[str]
    n_items: int
    n_annotators: int
    n_random: int  # near-random annotators among them
    labels_per_item: tuple[int, int]


@dataclass
class Crowd:
    """A crowd ready for crowd.consensus, with the truth kept aside for measuring only."""

    name: str
    L: np.ndarray  # (n, M) class indices, -1 = not labelled
    texts: list[str]
    truth: np.ndarray  # (n,) measuring only
    class_names: list[str]
    description: str
    notes: list[str] = field(default_factory=list)


SPECS = {
    "ag2": CrowdSpec("ag2", "ag", ["World", "Sports"], 3000, 30, 4, (1, 5)),
    "ag3": CrowdSpec("ag3", "ag", ["World", "Sports", "Business"], 3000, 40, 6, (1, 5)),
    "ag4": CrowdSpec("ag4", "ag", AG_CLASSES, 3000, 40, 6, (1, 5)),
    "ag4-sparse": CrowdSpec("ag4-sparse", "ag", AG_CLASSES, 4000, 50, 12, (1, 3)),
    "news10": CrowdSpec("news10", "news20", NEWS10_CLASSES, 3000, 50, 8, (1, 5)),
}
ALL_CROWDS = ("sentiment", *SPECS)


def load_sentiment() -> Crowd:
    """sentiment_mturk as a Crowd (gold = truth)."""
    d = pd.read_csv(SENTIMENT)
    classes = ["0", "1"]
    L, items, annotators = crowd.to_matrix(
        d["item_id"].tolist(), d["annotator_id"].tolist(), d["label"].tolist(), classes
    )
    first = d.drop_duplicates("item_id").set_index("item_id").loc[items]
    truth = first["gold"].to_numpy().astype(int)
    return Crowd(
        "sentiment",
        L,
        first["text"].tolist(),
        truth,
        classes,
        describe("sentiment", "sentiment_mturk, real MTurk workers", L, truth, classes),
    )


def load_texts(source: str) -> tuple[list[str], np.ndarray, list[str]]:
    """-> (texts, class index, class names) of a whole text set."""
    if source == "ag":
        d = pd.read_csv(AG_NEWS, header=None, names=["cls", "title", "description"])
        texts = (d["title"].fillna("") + " " + d["description"].fillna("")).tolist()
        return texts, d["cls"].to_numpy() - 1, AG_CLASSES
    d = pd.read_csv(NEWS20)
    names = sorted(d["true_label"].unique())
    idx = {c: k for k, c in enumerate(names)}
    return d["text"].fillna("").tolist(), d["true_label"].map(idx).to_numpy(), names


def annotator_noise_matrix(
    K: int, accuracy: float, py: np.ndarray, seed: int, near_random: bool
) -> tuple[np.ndarray, bool]:
    """-> (noise matrix (K, K), columns = true class, rows = given label; fell_back).

    trace = accuracy * K. Ordinary annotators ask for a 'valid' (learnable) matrix; if the
    sampler finds none in VALID_MAX_ITER tries it is asked again without the constraint
    (fell_back=True). Near-random annotators (trace about 1) cannot have a valid matrix
    (cleanlab needs trace > 1, and at K=10 trace 1.2 finds none in 10,000 tries), so
    they are drawn without it from the start.
    """
    from cleanlab.benchmarking.noise_generation import generate_noise_matrix_from_trace

    trace = float(np.clip(accuracy * K, 1e-3, K - 1e-3))
    if not near_random:
        nm = generate_noise_matrix_from_trace(
            K, trace, py=py, valid_noise_matrix=True, seed=seed, max_iter=VALID_MAX_ITER
        )
        if nm is not None:
            return nm, False
    nm = generate_noise_matrix_from_trace(K, trace, py=py, valid_noise_matrix=False, seed=seed)
    return nm, not near_random


def make_synthetic(spec: CrowdSpec, seed: int) -> Crowd:
    """Sample items of spec.classes, give each annotator a noise matrix and each item 1..5 annotators."""
    from cleanlab.benchmarking.noise_generation import generate_noisy_labels

    all_texts, all_y, names = load_texts(spec.source)
    rng = np.random.default_rng(seed)
    keep = [names.index(c) for c in spec.classes]
    rows = np.flatnonzero(np.isin(all_y, keep))
    rows = np.sort(rng.choice(rows, size=min(spec.n_items, len(rows)), replace=False))
    remap = {c: k for k, c in enumerate(keep)}
    truth = np.array([remap[c] for c in all_y[rows]])
    texts = [all_texts[r] for r in rows]
    n, M, K = len(rows), spec.n_annotators, len(spec.classes)
    py = np.bincount(truth, minlength=K) / n

    # annotators: accuracy -> noise matrix -> noisy labels for every item (only some are kept)
    is_random = np.zeros(M, dtype=bool)
    is_random[rng.choice(M, spec.n_random, replace=False)] = True
    acc = np.where(is_random, 1.0 / K + rng.uniform(0, RANDOM_EXTRA, M), rng.uniform(*GOOD_ACC, M))
    noisy = np.empty((n, M), dtype=np.int64)
    fell_back = 0
    for m in range(M):
        nm, fb = annotator_noise_matrix(K, acc[m], py, seed * 1000 + m, bool(is_random[m]))
        fell_back += fb
        np.random.seed(seed * 1000 + m)  # generate_noisy_labels draws from numpy's global state
        noisy[:, m] = generate_noisy_labels(truth, nm)

    # sparse coverage: each item gets lo..hi annotators, chosen by activity weight
    activity = rng.lognormal(0.0, ACTIVITY_SIGMA, M)
    activity /= activity.sum()
    lo, hi = spec.labels_per_item
    L = np.full((n, M), -1, dtype=np.int64)
    for i in range(n):
        who = rng.choice(M, size=rng.integers(lo, hi + 1), replace=False, p=activity)
        L[i, who] = noisy[i, who]

    notes = []
    if fell_back:
        notes.append(
            f"{fell_back} ordinary annotator(s) got no valid noise matrix in {VALID_MAX_ITER} tries: "
            "drawn with valid_noise_matrix=False"
        )
    notes.append(
        f"the {spec.n_random} near-random annotators: valid_noise_matrix=False (trace about 1, "
        "cleanlab's 'valid' needs trace > 1)"
    )
    source = "AG News" if spec.source == "ag" else "20 Newsgroups"
    what = (
        f"{source} {'/'.join(spec.classes) if K <= 4 else f'{K} of 20 groups'}, {spec.n_random} near-random annotators"
    )
    return Crowd(
        spec.name, L, texts, truth, list(spec.classes), describe(spec.name, what, L, truth, spec.classes), notes
    )


def describe(name: str, what: str, L: np.ndarray, truth: np.ndarray, classes) -> str:
    """One line: items, annotators, classes, labels per item, annotator accuracy."""
    acc, n_lab = true_annotator_accuracy(L, truth)
    per_item = (L >= 0).sum(axis=1)
    has = n_lab > 0
    return (
        f"{name:11s} {what}: {len(L):,} items, {L.shape[1]} annotators, {len(classes)} classes, "
        f"{per_item.min()}-{per_item.max()} labels per item (mean {per_item.mean():.2f}, "
        f"{np.mean(per_item == 1):.0%} with one), labels per annotator {n_lab[has].min()}-{n_lab.max()}; "
        f"true annotator accuracy mean {acc[has].mean():.3f} (label-weighted {np.average(acc, weights=n_lab):.3f}, "
        f"range {acc[has].min():.2f}-{acc[has].max():.2f})"
    )


def load_crowd(name: str, seed: int) -> Crowd:
    if name == "sentiment":
        return load_sentiment()
    return make_synthetic(SPECS[name], seed * 7919 + 1 + list(SPECS).index(name))


# ----------------------------------------------------------------------------- measures


def true_annotator_accuracy(L: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """-> (accuracy (M,) of each annotator's labels against the truth, n_labels (M,))."""
    i, m = np.nonzero(L >= 0)
    n_lab = np.bincount(m, minlength=L.shape[1])
    right = np.bincount(m, weights=(L[i, m] == truth[i]).astype(float), minlength=L.shape[1])
    return right / np.maximum(n_lab, 1), n_lab


def quality_spearman(quality: np.ndarray, L: np.ndarray, truth: np.ndarray) -> float:
    """Spearman of quality (M,) against true accuracy, annotators with >= MIN_LABELS labels and a quality."""
    acc, n_lab = true_annotator_accuracy(L, truth)
    q = np.asarray(quality, dtype=float)
    ok = (n_lab >= MIN_LABELS) & np.isfinite(q)
    if ok.sum() < 3 or np.ptp(q[ok]) == 0:
        return float("nan")
    return float(spearmanr(q[ok], acc[ok]).statistic)


@dataclass
class MethodResult:
    """One method on one crowd (full data)."""

    crowd: str
    method: str
    accuracy: float
    spearman: float
    seconds: float
    quality_from: str  # 'method' or 'agreement with majority' (crowd.py's own fallback)
    selection: dict | None = None  # 'default' only: how it chose (crowd.MethodSelection.as_dict())


def run_method(c: Crowd, method: str, seed: int) -> MethodResult:
    t0 = time.perf_counter()
    res = crowd.consensus(c.L, c.class_names, c.texts, method=method, seed=seed)
    seconds = time.perf_counter() - t0
    return MethodResult(
        c.name,
        method,
        float(np.mean(res.consensus == c.truth)),
        quality_spearman(res.annotator_stats["quality"].to_numpy(), c.L, c.truth),
        seconds,
        "agreement with majority" if method == "majority" else "method",
        res.details["selection"].as_dict() if "selection" in res.details else None,
    )


# ----------------------------------------------------------------------------- report


def fmt(x: float, digits: int = 4) -> str:
    return "" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def best_of(rows: list[MethodResult], key: str) -> tuple[list[str], float]:
    vals = {r.method: getattr(r, key) for r in rows if np.isfinite(getattr(r, key))}
    top = max(vals.values())
    return [k for k, v in vals.items() if v >= top - 1e-12], top


def report_part1(results: dict[str, list[MethodResult]], methods) -> None:
    print(f"\n{'crowd':11s} {'method':12s} {'accuracy':>8s} {'Spearman':>9s} {'seconds':>8s}")
    for name, rows in results.items():
        for r in rows:
            mark = "*" if r.quality_from != "method" and np.isfinite(r.spearman) else " "
            print(f"{name:11s} {r.method:12s} {r.accuracy:8.4f} {fmt(r.spearman):>8s}{mark} {r.seconds:8.2f}")
    print("  * majority's annotator quality = agreement with the majority vote (crowd.py fills it so)")

    print(f"\nper method over {len(results)} crowds: mean / worst accuracy, mean / worst Spearman")
    for method in methods:
        rs = [r for rows in results.values() for r in rows if r.method == method]
        accs = np.array([r.accuracy for r in rs])
        rhos = np.array([r.spearman for r in rs])
        w = int(np.argmin(accs))
        fin = np.isfinite(rhos)
        wr = int(np.nanargmin(rhos)) if fin.any() else None
        print(
            f"  {method:12s} accuracy mean {accs.mean():.4f}, worst {accs[w]:.4f} ({rs[w].crowd}); "
            f"Spearman mean {fmt(np.nanmean(rhos) if fin.any() else np.nan)}, "
            f"worst {fmt(rhos[wr]) if wr is not None else ''} ({rs[wr].crowd if wr is not None else '-'})"
        )

    print("\nbest method per crowd (accuracy; Spearman)")
    for name, rows in results.items():
        ba, va = best_of(rows, "accuracy")
        bs, vs = best_of(rows, "spearman")
        print(f"  {name:11s} accuracy: {', '.join(ba)} {va:.4f};  Spearman: {', '.join(bs)} {vs:.4f}")

    print("\n'default' minus the best other method per crowd (accuracy; Spearman)")
    ok_acc = ok_rho = True
    for name, rows in results.items():
        d = next(r for r in rows if r.method == "default")
        others = [r for r in rows if r.method != "default"]
        oa, va = best_of(others, "accuracy")
        os_, vs = best_of(others, "spearman")
        ma, mr = d.accuracy - va, d.spearman - vs
        ok_acc &= ma >= 0
        ok_rho &= mr >= 0
        print(f"  {name:11s} accuracy {ma:+.4f} (vs {', '.join(oa)}); Spearman {mr:+.4f} (vs {', '.join(os_)})")
    print(
        f"=> 'default' is at least the best single method on every crowd: accuracy {'YES' if ok_acc else 'NO'}, "
        f"Spearman {'YES' if ok_rho else 'NO'}"
    )


def report_part2(results: dict[str, list[MethodResult]], methods) -> None:
    print("\nhow 'default' chose (held-out labels; mean log-likelihood per held-out label, higher is better)")
    cands = [m for m in methods if m != "default"]
    head = " ".join(f"{m[:11]:>11s}" for m in cands)
    print(
        f"{'crowd':11s} {'held out':>8s} {head}  {'picked':12s} {'margin ± se':>17s}  {'acc loss':>8s} {'rho loss':>8s}"
    )
    losses, rho_losses, names = [], [], []
    for name, rows in results.items():
        d = next(r for r in rows if r.method == "default")
        s = d.selection
        others = [r for r in rows if r.method != "default"]
        _, va = best_of(others, "accuracy")
        _, vs = best_of(others, "spearman")
        lls = " ".join(f"{s['loglik'].get(m, float('nan')):11.4f}" for m in cands)
        losses.append(va - d.accuracy)
        rho_losses.append(vs - d.spearman)
        names.append(name)
        print(
            f"{name:11s} {s['n_heldout']:8d} {lls}  {s['picked']:12s} {s['margin']:+.4f} ± {s['margin_se']:.4f}  "
            f"{losses[-1]:8.4f} {rho_losses[-1]:8.4f}"
        )
    losses, rho_losses = np.array(losses), np.array(rho_losses)
    w, wr = int(np.argmax(losses)), int(np.nanargmax(rho_losses))
    print(
        f"  default's shortfall against the best method: accuracy mean {losses.mean():.4f}, worst {losses[w]:.4f} "
        f"({names[w]}); Spearman mean {np.nanmean(rho_losses):.4f}, worst {rho_losses[wr]:.4f} ({names[wr]})"
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--crowds", default=",".join(ALL_CROWDS), help=f"comma list of {', '.join(ALL_CROWDS)}")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    names = [s.strip() for s in args.crowds.split(",") if s.strip()]
    bad = [s for s in names if s not in ALL_CROWDS]
    if bad:
        ap.error(f"unknown crowd(s) {bad}; choose from {', '.join(ALL_CROWDS)}")
    warnings.filterwarnings("ignore")
    t_start = time.perf_counter()
    methods = list(crowd.METHODS)

    crowds = []
    print("crowds:")
    for name in names:
        c = load_crowd(name, args.seed)
        crowds.append(c)
        print(f"  {c.description}")
        for note in c.notes:
            print(f"  {'':11s} note: {note}")

    results = {c.name: [run_method(c, m, args.seed) for m in methods] for c in crowds}
    report_part1(results, methods)
    report_part2(results, methods)
    print(f"\nwhole run {time.perf_counter() - t_start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
