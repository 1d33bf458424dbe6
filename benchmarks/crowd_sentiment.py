"""Several annotators per item: consensus and annotator quality on real MTurk labels.

Data: ../shared/data/sentiment_mturk/sentiment_mturk_long.csv from the repository root
(columns item_id, text, annotator_id, label, gold; 4,999 movie-review sentences, 27,746
labels from 203 Mechanical Turk workers; Rodrigues et al. 2013). `gold` is used ONLY to
measure: every method sees the item ids, texts, annotator ids and their labels.

For each method of review.crowd.consensus.consensus (majority, dawid_skene, crowdlab, default) it
prints
* accuracy: share of items whose consensus equals gold;
* Spearman: rank correlation between the method's annotator quality and each
  annotator's true accuracy against gold, over annotators with >= 20 labels;
* wall time (time.perf_counter around the consensus call, modules imported beforehand)
  and peak memory (tracemalloc peak of a second, traced run of the same call: tracing
  itself slows allocation-heavy code, so it is kept out of the timing);
then PASS/FAIL against the targets: default accuracy >= 0.92, default Spearman >= 0.88,
whole run (loading included) < 30 s, and `review ingest` + `review audit` of the file
through the app's own path (subprocesses, a fresh SQLite file) < 30 s.

--ablations also prints the variants tried on the way to the default (same measures).

Usage:  python benchmarks/crowd_sentiment.py [--seed 0] [--ablations]
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

T_START = time.perf_counter()

import numpy as np  # noqa: E402  (after the clock starts: the import time counts)
import pandas as pd  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from review.crowd import consensus as crowd  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "sentiment_mturk" / "sentiment_mturk_long.csv"
CLASSES = ["0", "1"]
MIN_LABELS = 20
TARGET_ACC, TARGET_SPEARMAN, TARGET_SECONDS = 0.92, 0.88, 30.0
REFERENCE = {"majority": (0.886, None), "dawid_skene": (0.915, 0.87), "crowdlab": (0.899, 0.83)}  # team, TF-IDF+LR


def load(path: Path = DATA):
    """-> (L (n, M), texts (n,), gold (n,), annotators (M,)); gold aligned to L's rows."""
    d = pd.read_csv(path)
    L, items, annotators = crowd.to_matrix(
        d["item_id"].tolist(), d["annotator_id"].tolist(), d["label"].tolist(), CLASSES
    )
    first = d.drop_duplicates("item_id").set_index("item_id").loc[items]
    return L, first["text"].tolist(), first["gold"].to_numpy().astype(int), annotators


def true_annotator_accuracy(L: np.ndarray, gold: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """-> (accuracy (M,) of each annotator's labels against gold, n_labels (M,))."""
    i, m = np.nonzero(L >= 0)
    n_lab = np.bincount(m, minlength=L.shape[1])
    right = np.bincount(m, weights=(L[i, m] == gold[i]).astype(float), minlength=L.shape[1])
    return right / np.maximum(n_lab, 1), n_lab


def measure(fn):
    """Run fn() twice -> (result, seconds of the untraced run, peak MiB of the traced run).

    tracemalloc slows allocation-heavy code (CROWDLAB about 4x), so time and memory are
    taken on separate runs of the same deterministic call.
    """
    t0 = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - t0
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return out, seconds, peak


def ablations(L, texts, seed):
    """The variants tried for 'default' -> [(name, consensus (n,), annotator quality (M,), fn)]."""
    K = len(CLASSES)
    n_ann = (L >= 0).sum(axis=1)
    from review.text.models import text_probs

    def ds_with(P, symmetric):
        post, conf, pri = crowd.dawid_skene(L, K, item_prior=P, symmetric=symmetric)
        return post.argmax(axis=1), crowd.expected_accuracy(conf, pri)

    def mv_model():
        return text_probs(texts, crowd.majority_vote(L, K, seed)[0], K).pred_probs

    def soft_model(repeats):
        first, _, _ = crowd.dawid_skene(L, K)
        return crowd.soft_text_probs(texts, first, train=n_ann > 0, repeats=repeats, seed=seed)

    return [
        ("one-coin DS, no text model", lambda: ds_with(None, True)),
        ("DS x text model (trained on majority)", lambda: ds_with(mv_model(), False)),
        ("DS x text model (DS soft labels, 1 split)", lambda: ds_with(soft_model(1), False)),
        ("DS x text model (DS soft labels, 10 splits)", lambda: ds_with(soft_model(10), False)),
        ("one-coin DS x text model (majority)", lambda: ds_with(mv_model(), True)),
        ("one-coin DS x text model (DS soft, 1 split)", lambda: ds_with(soft_model(1), True)),
        (
            "CROWDLAB fed DS x text model posteriors",
            lambda: (lambda r: (r["consensus"], r["annotator_quality"]))(
                crowd.crowdlab(L, crowd.dawid_skene(L, K, item_prior=soft_model(10))[0])
            ),
        ),
    ]


def whole_audit() -> tuple[float, float, float, float]:
    """`review ingest` and `review audit` of the whole file in subprocesses (imports included), then the
    stored consensus and majority vote against gold -> (seconds, consensus accuracy, majority accuracy)."""
    import subprocess
    import tempfile

    from review import datasets, store

    with tempfile.TemporaryDirectory() as tmp:
        db_path = Path(tmp) / "bench.db"
        t0 = time.perf_counter()
        for args in (["ingest", str(DATA), "--name", "mturk", "--annotator-col", "annotator_id"], ["audit", "mturk"]):
            subprocess.run(
                [sys.executable, "-m", "review.cli", *args, "--db", str(db_path)],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        seconds = time.perf_counter() - t0
        db = store.connect(db_path)
        ds = datasets.get(db, "mturk")
        run = datasets.latest_run(db, ds.id)
        rows = db.execute(
            "SELECT s.consensus_label, i.given_label, json_extract(i.meta, '$.gold') FROM scores s"
            " JOIN items i ON i.dataset_id=? AND i.idx=s.idx WHERE s.run_id=?",
            [ds.id, run["id"]],
        ).fetchall()
        db.conn.close()
    cons = float(np.mean([str(c) == str(g) for c, _, g in rows]))
    major = float(np.mean([str(m) == str(g) for _, m, g in rows]))
    import resource

    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux -> MiB, largest child
    return seconds, cons, major, peak


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ablations", action="store_true", help="also print the variants tried for 'default'")
    args = ap.parse_args(argv)
    if not DATA.exists():
        print(f"missing {DATA}", file=sys.stderr)
        return 2
    (L, texts, gold, annotators), load_s, load_mem = measure(load)
    acc_true, n_lab = true_annotator_accuracy(L, gold)
    rated = n_lab >= MIN_LABELS
    print(
        f"{len(L):,} items, {int((L >= 0).sum()):,} labels, {L.shape[1]} annotators "
        f"({int(rated.sum())} with >= {MIN_LABELS} labels); loaded in {load_s:.2f} s"
    )
    print(f"\n{'method':46s} {'accuracy':>8s} {'Spearman':>8s} {'seconds':>8s} {'peak MiB':>8s}   reference (acc, rho)")
    rows = {}
    for method in crowd.METHODS:
        res, sec, mem = measure(lambda method=method: crowd.consensus(L, CLASSES, texts, method=method, seed=args.seed))
        acc = float(np.mean(res.consensus == gold))
        rho = float(spearmanr(res.annotator_stats["quality"].to_numpy()[rated], acc_true[rated]).statistic)
        rows[method] = (acc, rho, sec)
        ref = REFERENCE.get(method)
        ref_s = "" if ref is None else f"   {ref[0]:.3f}, " + ("-" if ref[1] is None else f"{ref[1]:.2f}")
        print(f"{method:46s} {acc:8.4f} {rho:8.4f} {sec:8.2f} {mem:8.1f}{ref_s}")
    if args.ablations:
        print("\nvariants tried for 'default':")
        for name, fn in ablations(L, texts, args.seed):
            (cons, q), sec, mem = measure(fn)
            rho = float(spearmanr(q[rated], acc_true[rated]).statistic)
            print(f"  {name:44s} {np.mean(cons == gold):8.4f} {rho:8.4f} {sec:8.2f} {mem:8.1f}")
    total = time.perf_counter() - T_START
    app_s, app_acc, app_major, app_mem = whole_audit()
    print(
        f"\nthe app's path, `review ingest` + `review audit` as subprocesses on a fresh SQLite file: {app_s:.1f} s, "
        f"peak RSS {app_mem:.0f} MiB; "
        f"stored consensus accuracy {app_acc:.4f} (majority vote stored as given label {app_major:.4f})"
    )
    acc, rho, _ = rows["default"]
    checks = [
        (f"default accuracy {acc:.4f} >= {TARGET_ACC}", acc >= TARGET_ACC),
        (f"default annotator Spearman {rho:.4f} >= {TARGET_SPEARMAN}", rho >= TARGET_SPEARMAN),
        (f"whole run {total:.1f} s < {TARGET_SECONDS:.0f} s (imports and loading included)", total < TARGET_SECONDS),
        (f"review ingest + review audit {app_s:.1f} s < {TARGET_SECONDS:.0f} s", app_s < TARGET_SECONDS),
    ]
    print()
    for text, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
