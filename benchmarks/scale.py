"""Scale: the same steps at 1,000, 100,000 and 1,000,000 rows, measured.

For each size it makes a synthetic dataset itself (seeded: short texts from a 5,000-word
vocabulary plus two class words, 8 classes, 5% of labels flipped), then measures
* `review ingest`, `review audit` and `review export` as subprocesses: wall time and peak
  RSS (the child's VmHWM);
* the export the browser gets (review.export.export_cleaned joined in memory, as the Export
  page's download does): wall time;
* per-click server time of the pages a person clicks through, driven by
  streamlit.testing.v1.AppTest (the page script's whole run): Home, Audit, Review (a Keep
  click: decide + claim the next suspect), Verify (an Approve click), Audit trail, Export;
  p50 and p95 over 15 clicks after one warm-up;
* 20 reviewers at once (threads, each with its own SQLite connection and account) claiming and
  deciding for 10 s: decisions per second, lost or duplicated decisions, and errors.
Then a table, and PASS/FAIL against the targets (1M rows: ingest < 60 s and < 2 GB, audit
< 5 min and < 4 GB, every click p95 < 150 ms, export < 30 s, >= 200 decisions/s).

Usage:  python benchmarks/scale.py [--sizes 1000,100000,1000000] [--seed 0]

Search and filter at 1M rows (the Rows page, review.browse), on its own:
        python benchmarks/scale.py --search [--search-rows 1000000] [--seed 0] [--search-db PATH]
builds the same synthetic dataset (plus a metadata column, ``source``) with `review ingest`, writes the
scores of a finished run and a review day's states and decisions directly (executemany, as a run and
the review page would leave them; no model is trained), builds the text index (timed), then times
browse.page() for typical filters over several pages each (and browse.count(), capped as the page
counts): p50 / p95 ms per page, PASS/FAIL against p95 < 150 ms.

The whole audit at 1M rows with the checks beyond label errors (review.findings), on its own:
        python benchmarks/scale.py --audit [--search-rows 1000000] [--seed 0]
the synthetic dataset ingested with `review ingest`, then `review audit` as a subprocess: wall time and peak
RSS, and from the run's record the model's seconds and the checks' (features, nearest rows and every check;
how the neighbours were found). PASS/FAIL: the checks ran, and the audit < 5 min and < 4 GB.

Bulk fix and export with its manifest at 1M rows (review.bulk, review.versions), on their own:
        python benchmarks/scale.py --bulk [--search-rows 1000000] [--seed 0] [--search-db PATH]
the same database as --search (reused when --search-db names one that exists); a set of about 10,000 open
rows (given class0 from one metadata source), its 20-row sample decided by an annotator, then timed:
bulk.start, bulk.apply (to verification), bulk.undo, a second action applied and approved by the lead;
then the versioned export (versions.export_csv, read to the end: the CSV, its SHA-256, the labels, the
version and manifest recorded) and `review export` (a subprocess: wall time, peak RSS, the manifest file
next to the CSV). PASS/FAIL: apply and undo of 10,000 rows < 10 s each, export < 30 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PASSWORD = "correct horse battery"
CLICKS = 15
REVIEWERS, CONCURRENT_SECONDS = 20, 10.0


def make_csv(n: int, path: Path, seed: int, meta: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The synthetic dataset as CSV; returns (true class, given class) per row. ``meta``: add a column
    ``source`` (20 values, skewed: src00 in about a third of the rows, src19 in about 0.5%)."""
    rng = np.random.default_rng(seed)
    k = 8
    vocab = np.array([f"w{i}" for i in range(5000)])
    cls = np.array([[f"c{c}x{j}" for j in range(40)] for c in range(k)])
    y = rng.integers(0, k, n)
    words = vocab[rng.integers(0, 5000, (n, 6))]
    cw = cls[y[:, None], rng.integers(0, 40, (n, 2))]
    texts = [" ".join(a) + " " + " ".join(b) for a, b in zip(words.tolist(), cw.tolist())]
    given = y.copy()
    flip = rng.random(n) < 0.05
    given[flip] = (y[flip] + rng.integers(1, k, flip.sum())) % k
    frame = pd.DataFrame({"id": np.arange(n), "text": texts, "label": [f"class{c}" for c in given]})
    if meta:
        weights = 1 / np.arange(1, 21)
        frame["source"] = [f"src{k:02d}" for k in rng.choice(20, n, p=weights / weights.sum())]
    frame.to_csv(path, index=False)
    return y, given


CHILD = (
    "import sys\nfrom review.cli import main\ntry:\n    rc = main(sys.argv[1:])\nfinally:\n"
    "    hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
    "    print('VmHWM', hwm, file=sys.stderr)\nsys.exit(rc)"
)


def review(args: list[str], db: Path) -> tuple[float, float]:
    """`review ARGS --db DB` in a fresh interpreter -> (wall s, peak RSS MiB). The peak is the
    child's own VmHWM, read by the child as it ends (ru_maxrss of a child would include this
    process's memory, which the child starts from before exec)."""
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, *args, "--db", str(db)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"review {' '.join(args)} failed: {proc.stderr[-2000:]}")
    hwm = [l for l in proc.stderr.splitlines() if l.startswith("VmHWM")][-1].split()[1]
    return wall, int(hwm) / 1024


def clicks(db_path: Path, name: str) -> dict[str, tuple[float, float]]:
    """Per page: (p50 ms, p95 ms) of the page script's run, over CLICKS clicks after a warm-up."""
    from streamlit.testing.v1 import AppTest

    os.environ["REVIEW_DB"] = str(db_path)
    out = {}

    def session(page: str, who: tuple[str, str]):
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
        at.session_state["user"] = (who[0], who[1], time.time())
        at.session_state["dataset_name"] = name
        if page != "app.py":
            at.switch_page(page)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    def measure(at, act) -> tuple[float, float]:
        ts = []
        for _ in range(CLICKS):
            t = time.perf_counter()
            act(at)
            ts.append((time.perf_counter() - t) * 1000)
            assert not at.exception, [e.value for e in at.exception]
        ts.sort()
        return statistics.median(ts), ts[int(round(0.95 * (len(ts) - 1)))]

    lead, ann = ("lena", "lead"), ("anna", "annotator")
    for label, page in [
        ("Home", "app.py"),
        ("Audit", "pages/2_Audit.py"),
        ("Audit trail", "pages/6_Audit_trail.py"),
        ("Export", "pages/5_Export.py"),
    ]:
        at = session(page, lead)
        out[label] = measure(at, lambda a: a.run())
    at = session("pages/3_Review.py", ann)
    out["Review: Keep"] = measure(at, lambda a: a.button(key="keep").click().run())
    at = session("pages/4_Verify.py", lead)

    def approve(a):
        first = next(b for b in a.button if b.key and b.key.startswith("approve_"))
        first.click().run()

    out["Verify: Approve"] = measure(at, approve)
    return out


def reviewers_at_once(db_path: Path, name: str) -> dict:
    from review import auth, datasets, store, workflow
    from review.errors import StaleViewError

    db = store.connect(db_path)
    admin = auth.User("alice", "admin")
    users = []
    for k in range(REVIEWERS):
        try:
            users.append(auth.create_user(db, f"r{k}", "annotator", PASSWORD, admin))
        except Exception:
            users.append(auth.User(f"r{k}", "annotator"))
    start = store.scalar(db, "SELECT COALESCE(MAX(id), 0) FROM reviews")
    stop_at = [0.0]
    done, errors, stale = [0] * REVIEWERS, [], [0]
    barrier = threading.Barrier(REVIEWERS + 1)

    def work(k: int) -> None:
        conn = store.connect(db_path)
        ds = datasets.get(conn, name)
        barrier.wait()
        try:
            while time.perf_counter() < stop_at[0]:
                s = workflow.claim_next(conn, ds, users[k])
                if s is None:
                    break
                try:
                    workflow.decide(conn, ds, s.idx, users[k], "keep", s.version)
                    done[k] += 1
                except StaleViewError:
                    stale[0] += 1
        except Exception as exc:  # anything else (a 'database is locked' included) is a failure
            errors.append(repr(exc))
        finally:
            conn.conn.close()

    threads = [threading.Thread(target=work, args=(k,)) for k in range(REVIEWERS)]
    for t in threads:
        t.start()
    stop_at[0] = time.perf_counter() + CONCURRENT_SECONDS
    t0 = time.perf_counter()
    barrier.wait()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    rows = db.execute(
        "SELECT idx, COUNT(*) FROM reviews WHERE id>? GROUP BY idx HAVING COUNT(*) > 1", [start]
    ).fetchall()
    stored = store.scalar(db, "SELECT COUNT(*) FROM reviews WHERE id>?", [start])
    db.conn.close()
    return {
        "decisions": sum(done),
        "per_second": sum(done) / wall,
        "stored": stored,
        "duplicated": len(rows),
        "errors": errors,
        "stale": stale[0],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1000,100000,1000000")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--search", action="store_true", help="only the search and filter figure (review.browse)")
    ap.add_argument("--search-rows", type=int, default=1_000_000)
    ap.add_argument("--search-db", help="build the --search database at this path and keep it (reused if it exists)")
    ap.add_argument("--bulk", action="store_true", help="only the bulk fix and export-with-manifest figure")
    ap.add_argument("--audit", action="store_true", help="only the whole audit with the checks beyond label errors")
    args = ap.parse_args()
    if args.audit:
        return audit_budget(args.search_rows, args.seed)
    if args.bulk:
        return bulk_and_export(args.search_rows, args.seed, Path(args.search_db) if args.search_db else None)
    if args.search:
        return search_and_filter(args.search_rows, args.seed, Path(args.search_db) if args.search_db else None)
    from review import auth, datasets, export, store

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in [int(s) for s in args.sizes.split(",")]:
            csv_path, db_path = Path(tmp) / f"rows{n}.csv", Path(tmp) / f"scale{n}.db"
            make_csv(n, csv_path, args.seed)
            r = {
                "ingest": review(["ingest", str(csv_path), "--name", "scale"], db_path),
                "audit": review(["audit", "scale"], db_path),
                "export": review(["export", "scale", "--out", str(Path(tmp) / "out.csv")], db_path),
            }
            db = store.connect(db_path)
            admin = auth.create_user(db, "alice", "admin", PASSWORD, None)
            auth.create_user(db, "lena", "lead", PASSWORD, admin)
            auth.create_user(db, "anna", "annotator", PASSWORD, admin)
            t = time.perf_counter()
            size = sum(len(c) for c in export.export_cleaned(db, datasets.get(db, "scale"), auth.User("lena", "lead")))
            r["browser export"] = (time.perf_counter() - t, size / 2**20)
            db.conn.close()
            r["clicks"] = clicks(db_path, "scale")
            r["concurrent"] = reviewers_at_once(db_path, "scale")
            results[n] = r
            print(f"{n:>9,} rows done", file=sys.stderr)
    sizes = list(results)
    print(f"\n{'step':34s}" + "".join(f"{f'{n:,} rows':>22s}" for n in sizes))
    for step in ("ingest", "audit", "export"):
        print(
            f"{'review ' + step + ' (s, peak MiB)':34s}"
            + "".join(f"{results[n][step][0]:>12.1f} s {results[n][step][1]:>5.0f} M" for n in sizes)
        )
    print(
        f"{'browser export (s, MiB of CSV)':34s}"
        + "".join(
            f"{results[n]['browser export'][0]:>12.1f} s {results[n]['browser export'][1]:>5.0f} M" for n in sizes
        )
    )
    for page in results[sizes[0]]["clicks"]:
        print(
            f"{page + ' (ms p50 / p95)':34s}"
            + "".join(f"{results[n]['clicks'][page][0]:>13.0f} / {results[n]['clicks'][page][1]:<6.0f}" for n in sizes)
        )
    print(
        f"{'20 reviewers: decisions/s':34s}"
        + "".join(f"{results[n]['concurrent']['per_second']:>22.0f}" for n in sizes)
    )
    print(
        f"{'  lost / duplicated / errors':34s}"
        + "".join(
            f"{results[n]['concurrent']['decisions'] - results[n]['concurrent']['stored']:>14d} / {results[n]['concurrent']['duplicated']} / {len(results[n]['concurrent']['errors'])}"
            for n in sizes
        )
    )
    big = results[sizes[-1]]
    worst = max(p95 for _, p95 in big["clicks"].values())
    c = big["concurrent"]
    checks = [
        (
            f"ingest {big['ingest'][0]:.1f} s < 60 s, {big['ingest'][1]:.0f} MiB < 2048",
            big["ingest"][0] < 60 and big["ingest"][1] < 2048,
        ),
        (
            f"audit {big['audit'][0]:.1f} s < 300 s, {big['audit'][1]:.0f} MiB < 4096",
            big["audit"][0] < 300 and big["audit"][1] < 4096,
        ),
        (f"slowest click p95 {worst:.0f} ms < 150 ms", worst < 150),
        (
            f"export {big['export'][0]:.1f} s and browser export {big['browser export'][0]:.1f} s < 30 s",
            big["export"][0] < 30 and big["browser export"][0] < 30,
        ),
        (
            f"{c['per_second']:.0f} decisions/s >= 200 with 20 reviewers, none lost or duplicated, no error",
            c["per_second"] >= 200 and c["decisions"] == c["stored"] and not c["duplicated"] and not c["errors"],
        ),
    ]
    print(f"\nlargest size: {sizes[-1]:,} rows")
    for text, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    if c["errors"]:
        print("errors:", c["errors"][:3])
    return 0 if all(ok for _, ok in checks) else 1


# ----------------------------------------------------------------------------- search and filter (--search)

SEARCH_PAGES = 5  # pages read per filter, each after the one before (keyset), as Next clicks do
SEARCH_TARGET_MS = 150


def write_run(db_path: Path, y: np.ndarray, given: np.ndarray, seed: int) -> None:
    """Scores of a finished audit run, and a review day (decisions pending, approved), written directly."""
    from review import auth, datasets, store

    rng = np.random.default_rng(seed + 1)
    n = len(y)
    db = store.connect(db_path)
    admin = auth.create_user(db, "alice", "admin", PASSWORD, None)
    auth.create_user(db, "lena", "lead", PASSWORD, admin)
    ds = datasets.get(db, "scale")
    k = len(ds.labels)
    wrong = rng.random(n) < 0.03
    pred = np.where(wrong, (y + rng.integers(1, k, n)) % k, y)
    conf = np.where(pred == given, rng.uniform(0.6, 1.0, n), rng.uniform(0.3, 0.99, n))
    quality = np.where(pred == given, rng.uniform(0.5, 1.0, n), rng.uniform(0.0, 0.45, n))
    is_issue = (pred != given) & (quality < 0.4)
    rank = np.empty(n, dtype=np.int64)
    rank[np.lexsort((quality, ~is_issue))] = np.arange(1, n + 1)
    action = np.where(is_issue, np.where(conf >= 0.7, "relabel", "needs review"), "keep")
    label = np.array([f"class{c}" for c in range(k)])
    now = store.now_iso()
    with store.transaction(db):
        run_id = db.execute(
            "INSERT INTO runs(dataset_id, kind, status, params, versions, created_by, started_at, finished_at, metrics)"
            " VALUES (?, 'audit', 'done', '{}', '{}', 'lena', ?, ?, ?)",
            [ds.id, now, now, f'{{"flagged": {int(is_issue.sum())}}}'],
        ).lastrowid
        names = label[pred].tolist()
        db.conn.executemany(
            "INSERT INTO scores(run_id, idx, quality, predicted_label, confidence, suggested_label, is_issue, rank,"
            " trust, action) VALUES (?,?,?,?,?,?,?,?,?,?)",
            zip(
                [run_id] * n,
                range(n),
                quality.tolist(),
                names,
                conf.tolist(),
                names,
                is_issue.astype(int).tolist(),
                rank.tolist(),
                quality.tolist(),
                action.tolist(),
            ),
        )
        # a review day: a fifth of the suspects decided by ten reviewers, half of those approved
        decided = rng.permutation(np.flatnonzero(is_issue))[: int(is_issue.sum()) // 5]
        reviews, states = [], []
        for j, i in enumerate(decided.tolist()):
            relabel = pred[i] != given[i] and j % 3 != 0
            approved = j % 2 == 0
            new = label[pred[i]] if relabel else None
            reviews.append(
                (
                    ds.id,
                    i,
                    run_id,
                    "relabel" if relabel else "keep",
                    new,
                    "",
                    f"r{j % 10}",
                    now,
                    "approved" if approved else "pending",
                    "lena" if approved else None,
                    2 if approved else 1,
                )
            )
            state = "approved" if approved else ("relabelled" if relabel else "kept")
            states.append((ds.id, i, state, 2 if approved else 1, new if approved else None, now))
        db.conn.executemany(
            "INSERT INTO reviews(dataset_id, idx, run_id, decision, new_label, note, reviewer, created_at, status,"
            " verified_by, version) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            reviews,
        )
        db.conn.executemany(
            "INSERT INTO states(dataset_id, idx, state, version, current_label, updated_at) VALUES (?,?,?,?,?,?)",
            states,
        )
    db.conn.close()


def search_filters():
    from review.browse import RowFilter

    return [
        ("text: a common word (w42)", RowFilter(text="w42")),
        ("text: a rare word (w4999)", RowFilter(text="w4999")),
        ("text: nothing matches (qqq)", RowFilter(text="qqq")),
        ("text: 2 characters, a scan (w9)", RowFilter(text="w9")),
        ("given label", RowFilter(given=("class3",))),
        ("given + predicted (a confusion pair)", RowFilter(given=("class3",), predicted=("class5",))),
        ("current label", RowFilter(current=("class6",))),
        ("action relabel", RowFilter(action=("relabel",))),
        ("state approved", RowFilter(state=("approved",))),
        ("state kept or relabelled", RowFilter(state=("kept", "relabelled"))),
        ("state open", RowFilter(state=("open",))),
        ("reviewer", RowFilter(reviewer="r3")),
        ("flagged + score band 0.1-0.2", RowFilter(flagged=True, band=2)),
        ("not flagged", RowFilter(flagged=False)),
        ("metadata source = src01 (common)", RowFilter(meta=(("source", "src01"),))),
        ("metadata source = src19 (rare)", RowFilter(meta=(("source", "src19"),))),
        ("text + given label", RowFilter(text="w42", given=("class1",))),
    ]


def search_and_filter(n: int, seed: int, keep: Path | None = None) -> int:
    """The --search figure: index build time, then p50 / p95 ms of browse.page() per filter. ``keep``: the
    database file to build and keep (an existing one is reused as it is: no build, no index build time)."""
    from review import browse, datasets, store

    with tempfile.TemporaryDirectory() as tmp:
        csv_path, db_path = Path(tmp) / f"rows{n}.csv", keep or Path(tmp) / f"search{n}.db"
        build = None
        if not db_path.exists():
            t = time.perf_counter()
            y, given = make_csv(n, csv_path, seed, meta=True)
            print(f"made {n:,} rows in {time.perf_counter() - t:.1f} s", file=sys.stderr)
            wall, mib = review(["ingest", str(csv_path), "--name", "scale"], db_path)
            print(f"review ingest: {wall:.1f} s, {mib:.0f} MiB", file=sys.stderr)
            t = time.perf_counter()
            write_run(db_path, y, given, seed)
            print(f"scores and a review day written in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        db = store.connect(db_path)
        ds = datasets.get(db, "scale")
        n = ds.n_items
        if not browse.is_indexed(db, ds):
            t = time.perf_counter()
            browse.ensure_index(db, ds)
            build = time.perf_counter() - t
            print(f"text index built in {build:.1f} s", file=sys.stderr)
        rows = []
        for name, f in search_filters():
            ts, got, after = [], 0, -1
            for _ in range(SEARCH_PAGES):
                t = time.perf_counter()
                pg = browse.page(db, ds, f, after=after, limit=50)
                ts.append((time.perf_counter() - t) * 1000)
                got += len(pg.rows)
                if pg.next_after is None:
                    break
                after = pg.next_after
            t = time.perf_counter()
            matches = browse.count(db, ds, f, cap=10_000)
            count_ms = (time.perf_counter() - t) * 1000
            t = time.perf_counter()
            shown = browse.count_within(db, ds, f, cap=10_000).text()  # what the Rows page shows
            within_ms = (time.perf_counter() - t) * 1000
            ts.sort()
            rows.append(
                (
                    name,
                    statistics.median(ts),
                    ts[int(round(0.95 * (len(ts) - 1)))],
                    len(ts),
                    got,
                    matches,
                    count_ms,
                    shown,
                    within_ms,
                )
            )
        db.conn.close()
    built = "reused" if build is None else f"{build:.1f} s"
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\nsearch and filter at {n:,} rows: text index build {built} (load average {load} on {os.cpu_count()} CPUs)")
    print(
        f"{'filter':40s}{'p50 ms':>8s}{'p95 ms':>8s}{'pages':>7s}{'rows':>7s}{'matches':>9s}{'count ms':>10s}"
        f"{'page count':>20s}{'ms':>6s}"
    )
    for name, p50, p95, pages, got, matches, count_ms, shown, within_ms in rows:
        m = "10,000+" if matches > 10_000 else f"{matches:,}"
        print(
            f"{name:40s}{p50:>8.1f}{p95:>8.1f}{pages:>7d}{got:>7d}{m:>9s}{count_ms:>10.0f}{shown:>20s}{within_ms:>6.0f}"
        )
    worst = max(r[2] for r in rows)
    ok = worst < SEARCH_TARGET_MS
    print(f"\n{'PASS' if ok else 'FAIL'}  slowest filter p95 {worst:.0f} ms per page < {SEARCH_TARGET_MS} ms")
    return 0 if ok else 1


# ----------------------------------------------------------------------------- bulk fix, export (--bulk)

BULK_TARGET_ROWS = 10_000
BULK_TARGET_S, EXPORT_TARGET_S = 10.0, 30.0


AUDIT_SECONDS, AUDIT_MIB = 300, 4096


def audit_budget(n: int, seed: int) -> int:
    """The --audit figure (see the module docstring)."""
    from review import datasets, store

    with tempfile.TemporaryDirectory() as tmp:
        csv_path, db_path = Path(tmp) / f"rows{n}.csv", Path(tmp) / f"audit{n}.db"
        make_csv(n, csv_path, seed)
        ingest = review(["ingest", str(csv_path), "--name", "scale"], db_path)
        wall, mib = review(["audit", "scale"], db_path)
        db = store.connect(db_path)
        run = datasets.latest_run(db, datasets.get(db, "scale").id, "audit")
        metrics = run["metrics"]
        db.conn.close()
    checks = metrics.get("checks")
    print(f"{n:,} rows (synthetic, seed {seed})")
    print(f"review ingest                     {ingest[0]:8.1f} s {ingest[1]:7.0f} MiB")
    print(f"review audit (the whole run)      {wall:8.1f} s {mib:7.0f} MiB")
    print(f"  the model (out-of-sample folds) {metrics.get('model seconds', float('nan')):8.1f} s")
    if checks:
        print(
            f"  the checks beyond label errors  {checks['seconds']:8.1f} s ({checks['method']}; {checks['features']})"
        )
        found = {k: v for k, v in checks.items() if k not in ("seconds", "method", "features")}
        print("  found: " + ", ".join(f"{k} {v:,}" for k, v in found.items()))
    else:
        print(f"  the checks did not run: {metrics.get('checks skipped')}")
    ok = [
        (f"the checks ran on {n:,} rows", bool(checks)),
        (f"audit {wall:.1f} s < {AUDIT_SECONDS} s", wall < AUDIT_SECONDS),
        (f"audit peak {mib:.0f} MiB < {AUDIT_MIB} MiB", mib < AUDIT_MIB),
    ]
    for text, good in ok:
        print(f"{'PASS' if good else 'FAIL'}  {text}")
    return 0 if all(good for _, good in ok) else 1


def _scale_db(n: int, seed: int, db_path: Path, csv_path: Path) -> None:
    """The --search / --bulk database: ingested with `review ingest`, a run and a review day written."""
    y, given = make_csv(n, csv_path, seed, meta=True)
    wall, mib = review(["ingest", str(csv_path), "--name", "scale"], db_path)
    print(f"review ingest: {wall:.1f} s, {mib:.0f} MiB", file=sys.stderr)
    write_run(db_path, y, given, seed)


def bulk_and_export(n: int, seed: int, keep: Path | None = None) -> int:
    """The --bulk figure (see the module docstring)."""
    import json

    from review import auth, bulk, datasets, store, trail, versions, workflow
    from review.browse import RowFilter

    with tempfile.TemporaryDirectory() as tmp:
        db_path = keep or Path(tmp) / f"bulk{n}.db"
        if not db_path.exists():
            _scale_db(n, seed, db_path, Path(tmp) / f"rows{n}.csv")
        db = store.connect(db_path)
        lead = auth.get_user(db, "lena")
        if store.scalar(db, "SELECT 1 FROM users WHERE name='bulk-ann'") is None:
            auth.create_user(db, "bulk-ann", "annotator", PASSWORD, auth.get_user(db, "alice"))
        ann = auth.get_user(db, "bulk-ann")
        ds = datasets.get(db, "scale")
        n = ds.n_items
        # the source whose open rows given class0 come closest to 10,000
        sizes = dict(
            db.execute(
                "SELECT json_extract(i.meta, '$.source'), COUNT(*) FROM items i LEFT JOIN states st"
                " ON st.dataset_id=i.dataset_id AND st.idx=i.idx WHERE i.dataset_id=? AND i.given_label='class0'"
                " AND COALESCE(st.state, 'open')='open' GROUP BY 1",
                [ds.id],
            ).fetchall()
        )
        source = min(sizes, key=lambda k: abs(sizes[k] - BULK_TARGET_ROWS - 20))
        f = RowFilter(given=("class0",), state=("open",), meta=(("source", source),))
        figures = {}

        def timed(name, fn):
            t = time.perf_counter()
            out = fn()
            figures[name] = time.perf_counter() - t
            return out

        def sampled():
            a = timed("start (count, sample)", lambda: bulk.start(db, ds, lead, f, "class1", sample_size=20, seed=seed))
            for idx in a.sample:
                bulk.decide_sample(db, a.id, idx, ann, True, workflow.get_suspect(db, ds, idx).version)
            return a

        a = sampled()
        res = timed("apply, to verification", lambda: bulk.apply(db, a.id, lead, approve=False))
        undone = timed("undo", lambda: bulk.undo(db, a.id, lead))
        a2 = sampled()
        res2 = timed("apply, approved by the action", lambda: bulk.apply(db, a2.id, lead, approve=True))
        ok_trail, n_trail, msg = trail.verify_trail(db)

        def browser_export():
            size = 0
            ex = versions.export_csv(db, ds, lead)
            for chunk in ex:
                size += len(chunk)
            return size

        size = timed("versioned export (browser)", browser_export)
        latest = versions.latest_version(db, ds)
        db.conn.close()
        out = Path(tmp) / "out.csv"
        wall, mib = review(["export", "scale", "--out", str(out)], db_path)
        manifest = json.loads(Path(f"{out}.manifest.json").read_text())
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\nbulk fix and export at {n:,} rows (load average {load} on {os.cpu_count()} CPUs)")
    print(f"set: given class0, open, source = {source}: {a.n_matched:,} rows; sample 20 decided wrong by an annotator")
    for name, sec in figures.items():
        print(f"  {name:34s}{sec:>8.2f} s")
    print(
        f"  applied {res.applied:,} rows (skipped {res.skipped}); undone {undone.undone:,}; approved {res2.applied:,}"
    )
    print(f"  audit trail after it: {'intact' if ok_trail else 'BROKEN'}, {n_trail:,} rows ({msg})")
    print(f"  versioned export: {size / 2**20:.0f} MiB of CSV, version {latest.number if latest else None} recorded")
    print(
        f"  review export: {wall:.1f} s, peak {mib:.0f} MiB; manifest next to it: version {manifest.get('version')},"
        f" {len(json.dumps(manifest)):,} bytes"
    )
    checks = [
        (
            f"apply {figures['apply, to verification']:.1f} s < {BULK_TARGET_S:.0f} s for {res.applied:,} rows",
            figures["apply, to verification"] < BULK_TARGET_S and res.applied >= 0.9 * BULK_TARGET_ROWS,
        ),
        (f"undo {figures['undo']:.1f} s < {BULK_TARGET_S:.0f} s", figures["undo"] < BULK_TARGET_S),
        (
            f"apply approved {figures['apply, approved by the action']:.1f} s < {BULK_TARGET_S:.0f} s",
            figures["apply, approved by the action"] < BULK_TARGET_S,
        ),
        ("the trail verifies", ok_trail),
        (
            f"export {wall:.1f} s and versioned export {figures['versioned export (browser)']:.1f} s < 30 s",
            wall < EXPORT_TARGET_S and figures["versioned export (browser)"] < EXPORT_TARGET_S,
        ),
    ]
    for text, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
