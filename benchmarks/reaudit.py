"""Re-audit with what was learned: review the top 100 suspects of a first audit (the true label where the row
is one of the known errors, else keep; each approved by a lead), re-audit on the current labels, and print
what changed: flags before and after, real errors among the next k suspects of each run, the run diff.

    PYTHONPATH=. python benchmarks/reaudit.py ../shared/data

The demo dataset's injected errors and news20_train's (its true_label column, never ingested)."""

import io
import os
import sys
import tempfile
import time

os.environ.setdefault("REVIEW_TRAIL_DIR", tempfile.mkdtemp())
import pandas as pd

from review import audit, auth, datasets, demo, rundiff, store, workflow
from review.text import ingest
from review.text.ingest import Mapping

PW = "correct horse battery"


def setup(path):
    db = store.connect(path)
    admin = auth.create_user(db, "alice", "admin", PW, None)
    lead = auth.create_user(db, "lena", "lead", PW, admin)
    anna = auth.create_user(db, "anna", "annotator", PW, admin)
    return db, lead, anna


def order(db, run_id):
    return [r[0] for r in db.execute("SELECT idx FROM scores WHERE run_id=? ORDER BY rank", [run_id])]


def flagged(db, run_id):
    return {r[0] for r in db.execute("SELECT idx FROM scores WHERE run_id=? AND is_issue=1", [run_id])}


def measure(name, db, lead, anna, ds, truth, top=100):
    """truth: {idx: true label} for the rows whose given label is wrong."""
    r1 = datasets.latest_run(db, ds.id, "audit")["id"]
    o1, f1 = order(db, r1), flagged(db, r1)
    reviewed = o1[:top]
    fixed = 0
    for idx in reviewed:
        s = workflow.get_suspect(db, ds, idx)
        if idx in truth:
            rid = workflow.decide(db, ds, idx, anna, "relabel", s.version, new_label=truth[idx])
            fixed += 1
        else:
            rid = workflow.decide(db, ds, idx, anna, "keep", s.version)
        workflow.verify(db, rid, lead, "approve", workflow.get_suspect(db, ds, idx).version)
    t = time.perf_counter()
    r2 = audit.run_audit(db, ds.id, lead)
    sec = time.perf_counter() - t
    o2, f2 = order(db, r2), flagged(db, r2)
    left = {i for i in truth if i not in set(reviewed)}  # real errors nobody corrected yet
    print(
        f"\n== {name}: {ds.n_items:,} rows, {len(truth):,} injected errors; top-{top} of run {r1} reviewed: "
        f"{fixed} true corrections approved, {top - fixed} kept; re-audit {sec:.1f} s"
    )
    print(
        f"flagged: run {r1} {len(f1):,} ({len(f1 & set(truth)):,} real errors) -> run {r2} {len(f2):,} "
        f"({len(f2 & set(truth) - set(reviewed)):,} real uncorrected errors; {len(f2 & set(reviewed)):,} reviewed rows still flagged)"
    )
    print(
        f"uncorrected real errors flagged: run {r1} {len(f1 & left):,} of {len(left):,}, run {r2} {len(f2 & left):,} of {len(left):,}"
    )
    rest1 = [i for i in o1 if i not in set(reviewed)]  # run 1's queue after the reviewed rows
    rest2 = [i for i in o2 if i not in set(reviewed)]
    for k in (50, 100, 200, 300):
        a, b = set(rest1[:k]) & left, set(rest2[:k]) & left
        print(
            f"  next {k:>3} unreviewed suspects: run {r1} {len(a):>3} real errors, run {r2} {len(b):>3}; "
            f"found by run {r2} not by run {r1}: {len(b - a):>3}, the reverse {len(a - b):>3}"
        )
    d = rundiff.compare_runs(db, ds, r1, r2)
    print("\n".join(rundiff.format_run_diff(d)[:4]))


def main():
    d = tempfile.mkdtemp()
    db, lead, anna = setup(os.path.join(d, "demo.db"))
    ds = datasets.get(db, demo.load_demo(db, lead))
    keys = {r[1]: r[0] for r in db.execute("SELECT idx, key FROM items WHERE dataset_id=?", [ds.id])}
    truth = {keys[k]: lab for k, lab in demo.demo_truth().items()}
    measure("demo", db, lead, anna, ds, truth)
    df = pd.read_csv(os.path.join(sys.argv[1] if len(sys.argv) > 1 else "../shared/data", "news20_train", "data.csv"))
    truth = {i: t for i, (g, t) in enumerate(zip(df["label"], df["true_label"])) if g != t}
    buf = io.StringIO()
    df[["id", "text", "label"]].to_csv(buf, index=False)  # never the truth columns
    db, lead, anna = setup(os.path.join(d, "news20.db"))
    ds_id = ingest.ingest_bytes(
        db,
        buf.getvalue().encode(),
        "news20.csv",
        "news20",
        lead,
        mapping=Mapping(text=["text"], label="label", id="id"),
    )
    t = time.perf_counter()
    audit.run_audit(db, ds_id, lead)
    print(f"news20 first audit {time.perf_counter() - t:.1f} s")
    measure("news20_train", db, lead, anna, datasets.get(db, ds_id), truth)


if __name__ == "__main__":
    main()
