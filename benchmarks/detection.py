"""Detection panel: `review audit` against the plain notebook recipe on several real datasets.

For every set of the panel it runs, in the same run and one after the other,

* our pipeline as the real commands, each a subprocess on a fresh temporary SQLite file:
  `review ingest FILE --name NAME ... --db DB`, `review audit NAME --db DB [--audit-args]`,
  `review suspects NAME --all --format csv --db DB`; rows are mapped back by the `id`
  column (the id column's value, or the 0-based row number for AG News), ranked by the
  `rank` column (1 = most suspect) and flagged where `is_issue` is 1;
* the plain notebook recipe in a fresh Python subprocess: TfidfVectorizer() +
  LogisticRegression(max_iter=1000) in a pipeline, cross_val_predict(cv=5,
  method='predict_proba'), cleanlab.filter.find_label_issues for the flagged set and
  cleanlab.rank.get_label_quality_scores(method='self_confidence') for the ranking (lowest
  quality first). It reads the very CSV that `review ingest` read.

The panel (`--sets`, default all):

* ag_news s<seed> (one set per `--seeds` value, default 0..4): AG News test split
  (../shared/data/ag_news/test.csv) with ag_news_audit.corrupt(orig, seed) -- 3% flips,
  3% Sports/Business swaps, a shifted block of 3%; ingested with `--no-header
  --label-col 1 --text-col 2,3`; errors = noisy label != original label;
* news20_train, imdb_train: ../shared/data/<set>/data.csv; a copy with ONLY id, text, label
  is ingested (`--id-col id --text-col text --label-col label`); errors = label !=
  true_label (true_label and error_kind are never written where the audit can see them);
* sentiment: ../shared/data/sentiment_mturk/sentiment_mturk_long.csv reduced to one row per
  item, label = majority vote of its workers (ties go to the lower class: argmax over the
  vote counts of classes 0, 1), ingested as plain single-label text (not as annotators);
  errors = majority != gold (gold is never written where the audit can see it).

Measurements, per set and method:

* R@k: share of true errors among the k top-ranked rows, k = the number of true errors
  (the top err% of the rows); with this k, recall at k equals precision at k;
* AP: sklearn average_precision_score(errors, -rank) for ours, (errors, -quality) for
  the recipe;
* flag P / flag R: precision and recall of the flagged set (ours: is_issue == 1; the recipe:
  find_label_issues); on AG News also recall per corruption on the flagged set, counted as
  ag_news_audit.score counts it (rows whose label really changed);
* seconds: ours = wall time of the `review ingest` + `review audit` subprocesses (each
  printed too; `review suspects` only reads the results and is not counted); the recipe =
  wall time of its fresh subprocess (interpreter start, imports, reading the CSV, vectorise,
  cross_val_predict, cleanlab);
* peak MiB: ru_maxrss from os.wait4 on each child (ag_news_audit.run_measured); ours = the
  larger of ingest and audit.

Then one table (a row per set, ours and the recipe side by side, margin = ours - recipe),
a `mean` row over all sets (each AG News seed counts as one set) and the `worst` set by
R@k margin and by AP margin, and PASS/FAIL lines for the targets: ours > recipe on R@k and
on AP on every set; mean margin >= +0.05 on R@k and on AP; on news20_train ours (ingest +
audit) <= 1/5 of the recipe's wall time. The exit status is 0 even when a target fails (it is
a measurement); it is non-zero only when something could not be run or data is missing.

Usage:  python benchmarks/detection.py [--sets ag_news,news20_train,imdb_train,sentiment]
            [--seeds 0,1,2,3,4] [--audit-args "--model nb"] [--json FILE] [--keep DIR]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import re
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import lru_cache, partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import ag_news_audit as A  # noqa: E402

SETS = ("ag_news", "news20_train", "imdb_train", "sentiment")
SOURCES = {
    "ag_news": A.AG_NEWS,
    "news20_train": A.DATA / "news20_train" / "data.csv",
    "imdb_train": A.DATA / "imdb_train" / "data.csv",
    "sentiment": A.DATA / "sentiment_mturk" / "sentiment_mturk_long.csv",
}
PLAIN_INGEST = ["--id-col", "id", "--text-col", "text", "--label-col", "label"]
AG_INGEST = ["--no-header", "--label-col", "1", "--text-col", "2,3"]
TARGET_MEAN_MARGIN = 0.05
TARGET_SPEED_SET, TARGET_SPEED_RATIO = "news20_train", 1 / 5
AUDIT_LINES = 6  # lines of `review audit` output shown per set

csv.field_size_limit(2**31 - 1)  # news20 posts can exceed the csv module's default field limit


# ----------------------------------------------------------------------------- the sets


@dataclass
class Prepared:
    """One set, written to disk and ready to run: what ingest and the recipe read, and the truth."""

    name: str
    csv_path: Path
    ingest_args: list[str]
    layout: str  # how the recipe worker reads csv_path: 'ag' or 'plain'
    ids: list[str]  # the `id` review reports for row i
    errors: np.ndarray  # (n,) bool, true label errors
    ag: tuple | None = None  # AG News: (orig, noisy, parts) for A.score


@lru_cache(maxsize=1)
def ag_news_data() -> tuple[np.ndarray, list[list[str]]]:
    """(labels, records) of the AG News test split, read once for all seeds."""
    return A.read_ag_news(A.AG_NEWS, None)


def prepare_ag_news(seed: int, tmp: Path) -> Prepared:
    orig, records = ag_news_data()
    noisy, parts = A.corrupt(orig, seed)
    path = tmp / "ag_news.csv"
    A.write_csv(path, records, noisy)
    return Prepared(
        f"ag_news s{seed}",
        path,
        AG_INGEST,
        "ag",
        [str(i) for i in range(len(orig))],
        noisy != orig,
        (orig, noisy, parts),
    )


def write_plain(path: Path, ids: list[str], texts: list[str], labels: list[str]) -> None:
    """id,text,label CSV with a header -- the only columns the audit may see."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["id", "text", "label"])
        w.writerows(zip(ids, texts, labels))


def prepare_labelled(name: str, tmp: Path) -> Prepared:
    """news20_train / imdb_train: drop true_label and error_kind from the copy the audit reads."""
    with SOURCES[name].open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    need = {"id", "text", "label", "true_label"}
    if not rows or not need <= set(rows[0]):
        sys.exit(f"error: {SOURCES[name]} lacks the columns {sorted(need)}.")
    ids = [r["id"] for r in rows]
    path = tmp / f"{name}.csv"
    write_plain(path, ids, [r["text"] for r in rows], [r["label"] for r in rows])
    errors = np.array([r["label"] != r["true_label"] for r in rows])
    return Prepared(name, path, PLAIN_INGEST, "plain", ids, errors)


def sentiment_items() -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """The MTurk sentiment set, one row per item -> (item ids, texts, majority vote of its workers (ties ->
    class 0), gold)."""
    with SOURCES["sentiment"].open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    pos: dict[str, int] = {}
    texts, gold, votes = [], [], []
    for r in rows:
        i = pos.setdefault(r["item_id"], len(pos))
        if i == len(texts):
            texts.append(r["text"])
            gold.append(int(r["gold"]))
            votes.append([0, 0])
        votes[i][int(r["label"])] += 1
    majority = np.argmax(np.array(votes), axis=1)  # argmax takes the first maximum: ties -> 0
    return list(pos), texts, majority, np.array(gold)


def prepare_sentiment(tmp: Path) -> Prepared:
    """One row per item, label = majority vote of its workers (ties -> class 0); gold kept aside."""
    ids, texts, majority, gold = sentiment_items()
    path = tmp / "sentiment.csv"
    write_plain(path, ids, texts, [str(int(y)) for y in majority])
    return Prepared("sentiment", path, PLAIN_INGEST, "plain", ids, majority != gold)


# ----------------------------------------------------------------------------- the recipe (fresh subprocess)


def recipe(texts: list[str], labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The plain notebook recipe -> (flagged (n,) bool, label quality (n,), lower = more suspect)."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict
    from sklearn.pipeline import make_pipeline

    pipe = make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=1000))
    pred_probs = cross_val_predict(pipe, texts, labels, cv=5, method="predict_proba")
    return (
        np.asarray(find_label_issues(labels, pred_probs), dtype=bool),
        get_label_quality_scores(labels, pred_probs, method="self_confidence"),
    )


def read_for_recipe(path: str, layout: str) -> tuple[list[str], np.ndarray]:
    """The CSV `review ingest` read -> (texts, labels 0..K-1) in row order."""
    with open(path, newline="", encoding="utf-8") as fh:
        if layout == "ag":
            records = [r for r in csv.reader(fh) if r]
            return A.texts_of(records), np.array([int(r[0]) - 1 for r in records], dtype=np.int64)
        rows = list(csv.DictReader(fh))
    _, labels = np.unique([r["label"] for r in rows], return_inverse=True)
    return [r["text"] for r in rows], labels.astype(np.int64)


def recipe_worker(path: str, layout: str) -> None:
    """Subprocess entry: read, run the recipe, print JSON (flagged rows, quality per row)."""
    texts, labels = read_for_recipe(path, layout)
    flagged, quality = recipe(texts, labels)
    print(json.dumps({"flagged": np.flatnonzero(flagged).tolist(), "quality": quality.tolist()}))


# ----------------------------------------------------------------------------- scoring


@dataclass
class MethodResult:
    r_at_k: float
    ap: float
    flag_p: float
    flag_r: float
    flagged: int
    seconds: float
    peak_mib: float
    kinds: dict | None = None  # AG News: A.score on the flagged set


@dataclass
class SetResult:
    name: str
    n: int
    n_errors: int
    ours: MethodResult
    recipe: MethodResult
    ingest_s: float
    audit_s: float
    ingest_said: str
    audit_said: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def err_rate(self) -> float:
        return self.n_errors / self.n

    @property
    def margin_r(self) -> float:
        return self.ours.r_at_k - self.recipe.r_at_k

    @property
    def margin_ap(self) -> float:
        return self.ours.ap - self.recipe.ap


def measure(
    prep: Prepared, order: np.ndarray, score: np.ndarray, flagged: np.ndarray, seconds: float, peak: float
) -> MethodResult:
    """order: rows most suspect first; score: higher = more suspect (for AP)."""
    from sklearn.metrics import average_precision_score

    e = prep.errors
    k = int(e.sum())
    n_flag = int(flagged.sum())
    kinds = A.score(flagged, *prep.ag) if prep.ag else None
    return MethodResult(
        r_at_k=float(e[order[:k]].mean()) if k else math.nan,
        ap=float(average_precision_score(e, score)) if k else math.nan,
        flag_p=float(e[flagged].mean()) if n_flag else math.nan,
        flag_r=float(e[flagged].sum() / k) if k else math.nan,
        flagged=n_flag,
        seconds=seconds,
        peak_mib=peak,
        kinds=kinds,
    )


# ----------------------------------------------------------------------------- running one set


def run_ours(prep: Prepared, tmp: Path, audit_args: list[str]) -> tuple[MethodResult, dict]:
    db = tmp / "review.db"
    if db.exists():
        sys.exit(f"error: {db} exists already; give --keep an empty directory.")
    rv, name, n = A.review_cmd(), "bench", len(prep.ids)
    ingest_out, _, ingest_s, ingest_mb = A.run_measured(
        rv + ["ingest", str(prep.csv_path), "--name", name, *prep.ingest_args, "--db", str(db)]
    )
    audit_out, _, audit_s, audit_mb = A.run_measured(rv + ["audit", name, *audit_args, "--db", str(db)])
    sus_out, _, _, _ = A.run_measured(rv + ["suspects", name, "--all", "--format", "csv", "--db", str(db)])

    row_of = {k: i for i, k in enumerate(prep.ids)}
    rank = np.full(n, np.inf)
    flagged = np.zeros(n, dtype=bool)
    unknown = 0
    for r in csv.DictReader(io.StringIO(sus_out)):
        i = row_of.get(r["id"])
        if i is None:
            unknown += 1
            continue
        rank[i] = float(r["rank"])
        flagged[i] = r["is_issue"] == "1"
    notes = []
    missing = int(np.isinf(rank).sum())
    if missing:
        notes.append(f"`review suspects --all` left out {missing:,} of {n:,} rows (ranked last here)")
        rank[np.isinf(rank)] = n + 1
    if unknown:
        notes.append(f"`review suspects --all` gave {unknown:,} ids that are not in the file")
    said = re.search(r"run \d+: ([\d,]+) suspects", audit_out)
    if said and int(said.group(1).replace(",", "")) != int(flagged.sum()):
        notes.append(
            f"`review audit` reported {said.group(1)} suspects, `review suspects` has {int(flagged.sum()):,} with is_issue=1"
        )

    order = np.argsort(rank, kind="stable")
    res = measure(prep, order, -rank, flagged, ingest_s + audit_s, max(ingest_mb, audit_mb))
    return res, {
        "ingest_s": ingest_s,
        "audit_s": audit_s,
        "ingest_said": ingest_out.strip(),
        "audit_said": audit_out.strip().splitlines(),
        "notes": notes,
    }


def run_recipe(prep: Prepared) -> MethodResult:
    out, _, seconds, peak = A.run_measured(
        [sys.executable, str(Path(__file__).resolve()), "--recipe-worker", str(prep.csv_path), "--layout", prep.layout]
    )
    got = json.loads(out.strip().splitlines()[-1])
    n = len(prep.ids)
    quality = np.asarray(got["quality"], dtype=float)
    if len(quality) != n:
        sys.exit(f"error: the recipe worker returned {len(quality)} scores for {n} rows of {prep.csv_path}")
    flagged = np.zeros(n, dtype=bool)
    flagged[got["flagged"]] = True
    return measure(prep, np.argsort(quality, kind="stable"), -quality, flagged, seconds, peak)


def run_set(prep: Prepared, tmp: Path, audit_args: list[str]) -> SetResult:
    ours, extra = run_ours(prep, tmp, audit_args)
    theirs = run_recipe(prep)
    return SetResult(prep.name, len(prep.ids), int(prep.errors.sum()), ours, theirs, **extra)


def panel(sets: list[str], seeds: list[int]) -> list[tuple[str, Callable[[Path], Prepared]]]:
    """-> [(folder name, function writing the set into a folder -> Prepared)] in run order."""
    out = [(f"ag_news_s{s}", partial(prepare_ag_news, s)) for s in seeds] if "ag_news" in sets else []
    out += [(name, partial(prepare_labelled, name)) for name in ("news20_train", "imdb_train") if name in sets]
    if "sentiment" in sets:
        out.append(("sentiment", prepare_sentiment))
    return out


# ----------------------------------------------------------------------------- report


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def fmt(x: float, spec: str = ".3f") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


COLS = [  # (group, sub-header, width, value of a SetResult, format)
    ("", "n", 7, lambda r: r.n, ",.0f"),
    ("", "err%", 6, lambda r: 100 * r.err_rate, ".1f"),
    ("R@k", "ours", 7, lambda r: r.ours.r_at_k, ".3f"),
    ("R@k", "recipe", 7, lambda r: r.recipe.r_at_k, ".3f"),
    ("R@k", "margin", 7, lambda r: r.margin_r, "+.3f"),
    ("AP", "ours", 7, lambda r: r.ours.ap, ".3f"),
    ("AP", "recipe", 7, lambda r: r.recipe.ap, ".3f"),
    ("AP", "margin", 7, lambda r: r.margin_ap, "+.3f"),
    ("flag P", "ours", 7, lambda r: r.ours.flag_p, ".3f"),
    ("flag P", "recipe", 7, lambda r: r.recipe.flag_p, ".3f"),
    ("flag R", "ours", 7, lambda r: r.ours.flag_r, ".3f"),
    ("flag R", "recipe", 7, lambda r: r.recipe.flag_r, ".3f"),
    ("seconds", "ours", 7, lambda r: r.ours.seconds, ".1f"),
    ("seconds", "recipe", 7, lambda r: r.recipe.seconds, ".1f"),
    ("peak MiB", "ours", 7, lambda r: r.ours.peak_mib, ".0f"),
    ("peak MiB", "recipe", 7, lambda r: r.recipe.peak_mib, ".0f"),
]
NAME_W = 26


def table(results: list[SetResult]) -> list[str]:
    groups, line = [], " " * NAME_W
    for g, _, w, _, _ in COLS:  # centre each group title over its columns
        if groups and groups[-1][0] == g:
            groups[-1][1] += w + 1
        else:
            groups.append([g, w + 1])
    top = line + "".join(f"{g:^{w}}" for g, w in groups)
    sub = f"{'set':<{NAME_W}}" + "".join(f"{s:>{w}} " for _, s, w, _, _ in COLS)
    rule = "-" * len(sub)

    def row(label, values):
        return f"{label:<{NAME_W}}" + "".join(f"{fmt(v, spec):>{w}} " for v, (_, _, w, _, spec) in zip(values, COLS))

    lines = [top, sub, rule]
    lines += [row(r.name, [c[3](r) for c in COLS]) for r in results]
    lines.append(rule)
    means = [float(np.mean([c[3](r) for r in results])) for c in COLS]
    lines.append(row(f"mean ({plural(len(results), 'set')})", means))
    worst_r = min(results, key=lambda r: r.margin_r)
    worst_ap = min(results, key=lambda r: r.margin_ap)
    lines.append(row(f"worst R@k: {worst_r.name}", [c[3](worst_r) for c in COLS]))
    lines.append(row(f"worst AP: {worst_ap.name}", [c[3](worst_ap) for c in COLS]))
    return lines


def details(r: SetResult) -> list[str]:
    out = [
        f"{r.name}: {r.n:,} rows, {r.n_errors:,} true errors ({r.err_rate:.1%}); ingest {r.ingest_s:.1f} s + audit "
        f"{r.audit_s:.1f} s = {r.ours.seconds:.1f} s (recipe {r.recipe.seconds:.1f} s, ratio "
        f"{r.ours.seconds / r.recipe.seconds:.2f}); flagged: ours {r.ours.flagged:,}, recipe {r.recipe.flagged:,}"
    ]
    out.append(f"  `review ingest` said: {r.ingest_said.splitlines()[0] if r.ingest_said else '(nothing)'}")
    out.append("  `review audit` said:")
    out += [f"    {line}" for line in r.audit_said[:AUDIT_LINES]]
    if len(r.audit_said) > AUDIT_LINES:
        out.append(f"    ... ({len(r.audit_said) - AUDIT_LINES} more lines)")
    if r.ours.kinds:
        for label, m in (("ours", r.ours.kinds), ("recipe", r.recipe.kinds)):
            out.append(
                f"  flagged-set recall per corruption, {label:<6}: "
                + ", ".join(f"{k} {fmt(m[k])}" for k in A.KINDS)
                + f"; share of block rows flagged {fmt(m['block rows flagged'])}"
            )
    out += [f"  note: {n}" for n in r.notes]
    return out


def checks(results: list[SetResult]) -> list[tuple[str | None, str]]:
    """-> [(PASS | FAIL | None for SKIP, text)]."""
    out = []
    for label, margin in (("R@k", lambda r: r.margin_r), ("AP", lambda r: r.margin_ap)):
        bad = [f"{r.name} {margin(r):+.3f}" for r in results if not margin(r) > 0]
        out.append(
            (
                "PASS" if not bad else "FAIL",
                f"ours > recipe on {label} on every set"
                + (f" (not on: {', '.join(bad)})" if bad else f" (smallest margin {min(map(margin, results)):+.3f})"),
            )
        )
    for label, margin in (("R@k", lambda r: r.margin_r), ("AP", lambda r: r.margin_ap)):
        m = float(np.mean([margin(r) for r in results]))
        out.append(
            (
                "PASS" if m >= TARGET_MEAN_MARGIN else "FAIL",
                f"mean margin on {label} >= +{TARGET_MEAN_MARGIN:.2f} (mean {m:+.3f} over {plural(len(results), 'set')})",
            )
        )
    speed = [r for r in results if r.name == TARGET_SPEED_SET]
    if speed:
        r = speed[0]
        ratio = r.ours.seconds / r.recipe.seconds
        out.append(
            (
                "PASS" if ratio <= TARGET_SPEED_RATIO else "FAIL",
                f"{TARGET_SPEED_SET}: ours (ingest + audit) <= 1/5 of the recipe's wall time "
                f"({r.ours.seconds:.1f} s vs {r.recipe.seconds:.1f} s, ratio {ratio:.2f})",
            )
        )
    else:
        out.append((None, f"{TARGET_SPEED_SET}: ours <= 1/5 of the recipe's wall time (set not in this run)"))
    return out


def clean_json(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {str(k): clean_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [clean_json(v) for v in x]
    if isinstance(x, np.generic):
        return clean_json(x.item())
    return x


def write_json(path: str, results: list[SetResult], verdicts, meta: dict) -> None:
    sets = [dict(asdict(r), err_rate=r.err_rate, margin_r_at_k=r.margin_r, margin_ap=r.margin_ap) for r in results]
    summary = {
        "mean": {k: float(np.mean([s[k] for s in sets])) for k in ("err_rate", "margin_r_at_k", "margin_ap")},
        "mean_ours": {
            k: float(np.mean([getattr(r.ours, k) for r in results]))
            for k in ("r_at_k", "ap", "flag_p", "flag_r", "seconds", "peak_mib")
        },
        "mean_recipe": {
            k: float(np.mean([getattr(r.recipe, k) for r in results]))
            for k in ("r_at_k", "ap", "flag_p", "flag_r", "seconds", "peak_mib")
        },
        "worst_r_at_k": min(results, key=lambda r: r.margin_r).name,
        "worst_ap": min(results, key=lambda r: r.margin_ap).name,
    }
    doc = {
        "meta": meta,
        "sets": sets,
        "summary": summary,
        "checks": [{"result": v or "SKIP", "text": t} for v, t in verdicts],
    }
    Path(path).write_text(json.dumps(clean_json(doc), indent=1) + "\n", encoding="utf-8")


# ----------------------------------------------------------------------------- main


def parse_list(text: str, what: str, ap: argparse.ArgumentParser, cast=str) -> list:
    try:
        items = [cast(s.strip()) for s in text.split(",") if s.strip()]
    except ValueError:
        ap.error(f"{what}: {text!r} is not a comma-separated list")
    if not items:
        ap.error(f"{what}: empty list")
    return items


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", default=",".join(SETS), help=f"comma list of {', '.join(SETS)} (default all)")
    ap.add_argument("--seeds", default="0,1,2,3,4", help="AG News corruption seeds, one set each (default 0,1,2,3,4)")
    ap.add_argument("--audit-args", default="", help='extra arguments for `review audit`, e.g. "--model nb"')
    ap.add_argument("--json", help="also write all figures to this JSON file")
    ap.add_argument("--keep", help="keep the CSVs and databases here (one folder per set) instead of a temp dir")
    ap.add_argument("--recipe-worker", help=argparse.SUPPRESS)
    ap.add_argument("--layout", choices=["ag", "plain"], default="plain", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.recipe_worker:
        recipe_worker(args.recipe_worker, args.layout)
        return 0

    sets = parse_list(args.sets, "--sets", ap)
    unknown = [s for s in sets if s not in SETS]
    if unknown:
        ap.error(f"--sets: unknown set(s) {', '.join(unknown)}; choose from {', '.join(SETS)}")
    seeds = parse_list(args.seeds, "--seeds", ap, int)
    audit_args = shlex.split(args.audit_args)
    missing = [f"{SOURCES[s]} (set {s})" for s in sets if not SOURCES[s].is_file()]
    if missing:
        sys.exit(
            "error: missing data: "
            + "; ".join(missing)
            + ". The benchmark reads <repo root>/../shared/data (see shared/data/README.md)."
        )

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    meta = {
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "load_average_at_start": load,
        "sets": sets,
        "seeds": seeds,
        "audit_args": audit_args,
        "review": A.review_cmd(),
    }
    todo = panel(sets, seeds)
    tmp_ctx = tempfile.TemporaryDirectory(prefix="detection_") if not args.keep else None
    root = Path(args.keep or tmp_ctx.name)
    results: list[SetResult] = []
    t_start = time.perf_counter()
    try:
        for i, (folder, make) in enumerate(todo, 1):
            tmp = root / folder
            tmp.mkdir(parents=True, exist_ok=True)
            prep = make(tmp)
            print(
                f"[{i}/{len(todo)}] {prep.name}: {len(prep.ids):,} rows, {int(prep.errors.sum()):,} true errors; running ...",
                file=sys.stderr,
                flush=True,
            )
            r = run_set(prep, tmp, audit_args)
            results.append(r)
            print(
                f"[{i}/{len(todo)}] {r.name} done: R@k ours {fmt(r.ours.r_at_k)} / recipe {fmt(r.recipe.r_at_k)}, "
                f"AP {fmt(r.ours.ap)} / {fmt(r.recipe.ap)}; ours {r.ours.seconds:.1f} s, recipe {r.recipe.seconds:.1f} s "
                f"({time.perf_counter() - t_start:.0f} s elapsed)",
                file=sys.stderr,
                flush=True,
            )
    finally:
        if tmp_ctx is not None:
            tmp_ctx.cleanup()

    print(
        f"Detection panel: {plural(len(results), 'set')}; python {meta['python']}, {meta['cpus']} CPUs, load average {load:.2f} "
        f"at start; `review audit` extra args: {' '.join(audit_args) or '(none)'}"
    )
    print()
    for r in results:
        print("\n".join(details(r)))
    print()
    print("\n".join(table(results)))
    print("R@k: share of true errors among the k top-ranked rows, k = number of true errors (= precision at k);")
    print(
        "AP: average precision of the ranking; flag P/R: precision/recall of the flagged set; margin = ours - recipe;"
    )
    print(
        "seconds: ours = `review ingest` + `review audit` subprocesses, recipe = its fresh subprocess (reading included);"
    )
    print("peak MiB: ru_maxrss of the child (ours: the larger of ingest and audit).")
    print()
    verdicts = checks(results)
    for v, text in verdicts:
        print(f"{v or 'SKIP'}  {text}")
    if args.json:
        write_json(args.json, results, verdicts, meta)
        print(f"wrote {args.json}")
    if args.keep:
        print(f"kept the files in {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
