"""AG News label-error benchmark: `review audit` against the plain notebook recipe.

Takes the AG News test split (../shared/data/ag_news/test.csv from the repository root),
injects three seeded corruptions on disjoint rows --

* flips:  3% of rows get a random other class;
* swaps:  3% of rows among Sports and Business get the other one of the two;
* block:  a contiguous block of 3% of rows (228 of 7,600) at a random start whose labels
          are shifted by one (row i gets row i-1's original label) --

then runs our pipeline as the real commands (`review ingest`, `review audit`,
`review suspects --format csv`, each a subprocess on a temporary SQLite file) and the
plain recipe (TfidfVectorizer + LogisticRegression, cross_val_predict(cv=5,
method='predict_proba'), cleanlab.filter.find_label_issues) on the same labels, and prints
recall per corruption, precision of the flagged set, time and peak memory for each, and
PASS/FAIL against the targets.

Measurements:
* recall per corruption = flagged rows of that corruption whose label really changed /
  rows of that corruption whose label really changed (in the shifted block about a quarter
  of the rows keep their label because the row above has the same class; those are not
  errors, and flagging them counts against precision);
* precision = flagged rows whose label differs from the original / flagged rows;
* wall time: time.perf_counter around (a) the `review audit` subprocess (interpreter start,
  imports, loading from SQLite, saving the run), (b) the in-process call
  `review.audit.run_audit` alone (modules imported beforehand), (c) the recipe in this
  process (vectorise + cross_val_predict + find_label_issues, modules imported beforehand),
  (d) the recipe re-run in a fresh Python subprocess (interpreter start, imports, reading
  the CSV included) for a like-for-like comparison with (a);
* peak memory: one measure for both methods -- the peak resident set size (ru_maxrss from
  os.wait4 on that one child) of the fresh subprocess that runs it, so interpreter and
  imports are included for both.
* control: review.text.models.text_probs + review.text.integrity.detect_shifted_blocks on the original
  (clean) labels, as given and sorted by class, must find no shifted block.

--repeat N times every measured step N times (both methods) and keeps the fastest, which
helps on a shared, busy machine.

Usage:  python benchmarks/ag_news_audit.py [--seed 0] [--rows N] [--repeat 1] [--keep DIR]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the review package of this checkout
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
AG_NEWS = DATA / "ag_news" / "test.csv"
CLASSES = ["World", "Sports", "Business", "Sci/Tech"]  # class 1..4
SPORTS, BUSINESS = 1, 2  # 0-based
RATE = 0.03
KINDS = ("flips", "swaps", "shifted block")


# ----------------------------------------------------------------------------- data


def read_ag_news(path: Path, rows: int | None) -> tuple[np.ndarray, list[list[str]]]:
    """-> labels (n,) ints 0..3, records (n,) [class, title, description] as strings."""
    if not path.is_file():
        sys.exit(
            f"error: {path} is missing. The benchmark needs the AG News test split at "
            f"<repo root>/../shared/data/ag_news/test.csv (see shared/data/README.md)."
        )
    with path.open(newline="", encoding="utf-8") as fh:
        records = [r for r in csv.reader(fh) if r]
    if rows is not None:
        records = records[:rows]
    bad = [i for i, r in enumerate(records) if len(r) != 3 or r[0] not in {"1", "2", "3", "4"}]
    if bad:
        sys.exit(f"error: {path}: row {bad[0]} is not 'class,title,description' with class 1..4: {records[bad[0]]!r}")
    labels = np.array([int(r[0]) - 1 for r in records], dtype=np.int64)
    return labels, records


def corrupt(orig: np.ndarray, seed: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """orig (n,) -> (noisy (n,), {kind: rows (sorted)}) with the three corruptions on disjoint rows.

    The app's own self-check injection (review.selfcheck.inject) with the Sports/Business pair:
    the block is placed first (rows start..start+m-1, each gets the original label of the row
    above); swaps and flips are then drawn from the rows outside [start-1, start+m-1].
    """
    from review.selfcheck import inject

    m = int(round(RATE * len(orig)))
    if len(orig) < 4 * m + 2 or m < 1:
        sys.exit(f"error: {len(orig)} rows are too few for three corruptions of {m} rows each.")
    return inject(orig, len(CLASSES), (SPORTS, BUSINESS), seed, RATE)


def write_csv(path: Path, records: list[list[str]], labels: np.ndarray) -> None:
    """Headerless CSV in the original layout: "class","title","description", every field quoted."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, quoting=csv.QUOTE_ALL, lineterminator="\n")
        for r, y in zip(records, labels):
            w.writerow([str(int(y) + 1), r[1], r[2]])


# ----------------------------------------------------------------------------- running things


def run_measured(cmd: list[str], cwd: Path | None = None) -> tuple[str, str, float, float]:
    """Run cmd as a child; -> (stdout, stderr, wall seconds, peak RSS in MiB of that child).

    The peak is ru_maxrss from os.wait4 on this child (Linux: KiB), so earlier children
    do not leak into it.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=cwd)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        so, se = out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace")
    if p.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} exited with {p.returncode}\n{so}\n{se}")
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024
    return so, se, wall, ru.ru_maxrss * scale / 2**20


def review_cmd() -> list[str]:
    exe = shutil.which("review")
    return [exe] if exe else [sys.executable, "-m", "review.cli"]


def texts_of(records: list[list[str]]) -> list[str]:
    """title + ' ' + description, as `--text-col 2,3` joins them."""
    return [" ".join(p for p in (r[1], r[2]) if p) for r in records]


def recipe(texts: list[str], labels: np.ndarray) -> np.ndarray:
    """The plain notebook recipe -> flagged (n,) bool."""
    from cleanlab.filter import find_label_issues
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict
    from sklearn.pipeline import make_pipeline

    pipe = make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=1000))
    pred_probs = cross_val_predict(pipe, texts, labels, cv=5, method="predict_proba")
    return find_label_issues(labels, pred_probs)


def recipe_worker(csv_path: str) -> None:
    """Subprocess entry: imports, read the corrupted CSV, run the recipe; print JSON."""
    import cleanlab.filter  # noqa: F401  (imports are part of what a fresh process pays)
    import sklearn.linear_model  # noqa: F401

    with open(csv_path, newline="", encoding="utf-8") as fh:
        records = [r for r in csv.reader(fh) if r]
    labels = np.array([int(r[0]) - 1 for r in records], dtype=np.int64)
    t0 = time.perf_counter()
    flagged = recipe(texts_of(records), labels)
    print(json.dumps({"seconds": time.perf_counter() - t0, "flagged": np.flatnonzero(flagged).tolist()}))


# ----------------------------------------------------------------------------- scoring


def score(flagged: np.ndarray, orig: np.ndarray, noisy: np.ndarray, parts: dict[str, np.ndarray]) -> dict:
    wrong = noisy != orig
    out = {}
    for kind in KINDS:
        rows = parts[kind][wrong[parts[kind]]]
        out[kind] = float(flagged[rows].mean()) if len(rows) else float("nan")
    out["block rows flagged"] = float(flagged[parts["shifted block"]].mean())
    out["flagged"] = int(flagged.sum())
    out["precision"] = float(wrong[flagged].mean()) if flagged.any() else float("nan")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0, help="corruption seed (default 0)")
    ap.add_argument("--rows", type=int, help="use only the first N rows (quick check)")
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="time every measured step this many times and keep the fastest (default 1)",
    )
    ap.add_argument("--keep", help="write the corrupted CSV and the database here instead of a temp dir")
    ap.add_argument("--recipe-worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    if args.recipe_worker:
        recipe_worker(args.recipe_worker)
        return 0

    orig, records = read_ag_news(AG_NEWS, args.rows)
    noisy, parts = corrupt(orig, args.seed)
    n = len(orig)
    wrong = noisy != orig
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"AG News test split: {n:,} rows; seed {args.seed}; python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"load average {load:.2f} at start; timings: fastest of {args.repeat}"
    )
    b = parts["shifted block"]
    print(
        f"injected: flips {len(parts['flips'])} rows, Sports/Business swaps {len(parts['swaps'])} rows, "
        f"shifted block rows {b[0]}-{b[-1]} ({len(b)} rows, {int(wrong[b].sum())} of them change label); "
        f"{int(wrong.sum())} wrong labels in all ({wrong.mean():.1%})"
    )

    tmp_ctx = tempfile.TemporaryDirectory(prefix="ag_news_audit_") if not args.keep else None
    tmp = Path(args.keep or tmp_ctx.name)
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        csv_path = tmp / "ag_news_corrupted.csv"
        db_path = tmp / "review.db"
        if db_path.exists():
            sys.exit(f"error: {db_path} exists already; give --keep an empty directory.")
        write_csv(csv_path, records, noisy)

        # --- our pipeline, as the real commands
        rv = review_cmd()
        _, _, ingest_s, _ = run_measured(
            rv
            + [
                "ingest",
                str(csv_path),
                "--name",
                "agnews",
                "--no-header",
                "--text-col",
                "2,3",
                "--label-col",
                "1",
                "--db",
                str(db_path),
            ]
        )
        audit_runs = [run_measured(rv + ["audit", "agnews", "--db", str(db_path)]) for _ in range(args.repeat)]
        audit_out = audit_runs[0][0]
        audit_s, audit_mb = min(r[2] for r in audit_runs), max(r[3] for r in audit_runs)
        sus_out, _, _, _ = run_measured(rv + ["suspects", "agnews", "--db", str(db_path), "--format", "csv"])
        sus = list(csv.DictReader(io.StringIO(sus_out)))
        ours = np.zeros(n, dtype=bool)
        ours[[int(r["id"]) for r in sus if r["is_issue"] == "1"]] = True

        # --- run_audit alone, in this process, on the same database (a new run)
        import cleanlab.filter  # noqa: F401,E401

        from review import audit as review_audit
        from review import auth, store

        db = store.connect(str(db_path))
        inproc_s = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            run_id = review_audit.run_audit(db, "agnews", auth.SYSTEM)
            inproc_s = min(inproc_s, time.perf_counter() - t0)
        again = np.zeros(n, dtype=bool)
        again[[r[0] for r in db.execute("SELECT idx FROM scores WHERE run_id=? AND is_issue=1", [run_id])]] = True
        db.conn.close()

        # --- the plain recipe, in this process, then in a fresh subprocess for its peak memory
        texts = texts_of(records)
        recipe_s = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            theirs = np.asarray(recipe(texts, noisy), dtype=bool)
            recipe_s = min(recipe_s, time.perf_counter() - t0)
        worker_runs = [
            run_measured([sys.executable, str(Path(__file__).resolve()), "--recipe-worker", str(csv_path)])
            for _ in range(args.repeat)
        ]
        recipe_sub_s, recipe_mb = min(r[2] for r in worker_runs), max(r[3] for r in worker_runs)
        worker = json.loads(worker_runs[0][0].strip().splitlines()[-1])
    finally:
        if tmp_ctx is not None:
            tmp_ctx.cleanup()

    print()
    print("`review audit` said:")
    for line in audit_out.strip().splitlines():
        print("  " + line)
    if not np.array_equal(again, ours):
        print(f"note: the in-process run flagged {int(again.sum())} rows, the command {int(ours.sum())}")
    wset = np.zeros(n, dtype=bool)
    wset[worker["flagged"]] = True
    if not np.array_equal(wset, theirs):
        print(f"note: the recipe subprocess flagged {int(wset.sum())} rows, in-process {int(theirs.sum())}")

    # --- control: the same model + shift detector on the original (clean) labels, and on them sorted by class
    from review.text import integrity, models

    clean_p = models.text_probs(texts, orig, len(CLASSES)).pred_probs
    order = np.argsort(orig, kind="stable")
    false_blocks = len(integrity.detect_shifted_blocks(orig, clean_p, CLASSES)) + len(
        integrity.detect_shifted_blocks(orig[order], clean_p[order], CLASSES)
    )

    so, st = score(ours, orig, noisy, parts), score(theirs, orig, noisy, parts)
    print()
    hdr = (
        f"{'method':<14}{'flips':>7}{'swaps':>7}{'block':>7}{'block*':>8}{'precision':>11}{'flagged':>9}"
        f"{'wall s':>9}{'wall s':>9}{'peak MiB':>10}"
    )
    sub = f"{'':<14}{'recall':>7}{'recall':>7}{'recall':>7}{'rows':>8}{'':>11}{'':>9}{'in-proc':>9}{'subproc':>9}{'subproc':>10}"
    print(hdr)
    print(sub)
    print("-" * len(hdr))
    for name, s, t_in, t_sub, mb in (
        ("review audit", so, inproc_s, audit_s, audit_mb),
        ("recipe", st, recipe_s, recipe_sub_s, recipe_mb),
    ):
        print(
            f"{name:<14}{s['flips']:>7.3f}{s['swaps']:>7.3f}{s['shifted block']:>7.3f}{s['block rows flagged']:>8.3f}"
            f"{s['precision']:>11.3f}{s['flagged']:>9,}{t_in:>9.2f}{t_sub:>9.2f}{mb:>10.0f}"
        )
    print("recall counts rows whose label really changed; block* = share of all block rows flagged.")
    print("wall in-proc: run_audit() alone / the recipe cell alone (imports done beforehand); wall subproc:")
    print("`review audit` command / the recipe in a fresh python (interpreter, imports, reading included);")
    print(f"peak MiB: ru_maxrss of that subprocess (via os.wait4). `review ingest` took {ingest_s:.2f} s.")

    print()
    checks = [
        (f"shifted-block recall >= 0.95 (ours {so['shifted block']:.3f})", so["shifted block"] >= 0.95),
        (f"flips recall ours > recipe ({so['flips']:.3f} vs {st['flips']:.3f})", so["flips"] > st["flips"]),
        (f"swaps recall ours > recipe ({so['swaps']:.3f} vs {st['swaps']:.3f})", so["swaps"] > st["swaps"]),
        (
            f"precision ours >= recipe ({so['precision']:.3f} vs {st['precision']:.3f})",
            so["precision"] >= st["precision"],
        ),
        (
            f"in-process: run_audit <= 1/5 of recipe ({inproc_s:.2f} s vs {recipe_s:.2f} s, ratio {inproc_s / recipe_s:.2f})",
            inproc_s <= recipe_s / 5,
        ),
        (
            f"subprocess: `review audit` <= 1/5 of recipe ({audit_s:.2f} s vs {recipe_sub_s:.2f} s, ratio {audit_s / recipe_sub_s:.2f})",
            audit_s <= recipe_sub_s / 5,
        ),
    ]
    checks.insert(
        1,
        (
            f"no shifted block on the original labels, as given or sorted by class ({false_blocks} found)",
            false_blocks == 0,
        ),
    )
    for text, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
