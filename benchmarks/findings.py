"""The checks beyond label errors (review.findings) on AG News with injected near duplicates and
outliers, and on a second set with nothing injected (news20), after a real ingest + run_audit.

    python benchmarks/findings.py --seed 0
    python benchmarks/findings.py --seed 1
    python benchmarks/findings.py --second news20 [--rows 5000]   # no injections: what it finds, 10 shown
    python benchmarks/findings.py --scale 1000000                # the checks alone on synthetic features
    python benchmarks/findings.py --leakage --seed 0              # leakage across two uploads

--leakage: AG News's rows shuffled and split in two uploads, a training split (5,000 rows) and a test split (the
other 2,600) that gets ``--dups`` / 2 edited copies of training rows (a third with another label); then
review.findings.leakage.check of the training split against the test split. Recall: an injected copy counts
found when its pair with its original is among the check's pairs; precision: the pairs that are injected or
AG News's own (the two texts' word cosine >= 0.9). A control checks the training split against news20 (5,000
rows, another corpus): every pair it finds is false.

AG News (../shared/data/ag_news/test.csv, 7,600 rows) gets ``--dups`` copies of sampled rows with small
edits (a word dropped, two words swapped, punctuation changed; a third of them with another label) and
``--outliers`` IMDB reviews (../shared/data/imdb_train) with AG News labels. Printed per injected kind:
recall (a copy counts found when it is in a set with its original; an outlier when flagged "outlier") and
precision of the flagged sets / rows. A flagged set without an injected pair whose texts are the same or
nearly (every member's word cosine with the first >= 0.9) is one of AG News's own duplicates: counted
apart, as natural, and as correct in the precision.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"


def edit(text: str, rng: np.random.Generator) -> str:
    """One or two small edits: a word dropped, two neighbouring words swapped, punctuation changed."""
    words = text.split(" ")
    for _ in range(int(rng.integers(1, 3))):
        kind = rng.integers(3)
        if kind == 0 and len(words) > 4:
            del words[int(rng.integers(len(words)))]
        elif kind == 1 and len(words) > 3:
            i = int(rng.integers(len(words) - 1))
            words[i], words[i + 1] = words[i + 1], words[i]
        else:
            s = " ".join(words)
            s = re.sub(r"[.,;:!?]", "", s, count=3) if re.search(r"[.,;:!?]", s) else s + "!"
            words = s.split(" ")
    return " ".join(words)


def ag_news(n_dups: int, n_out: int, seed: int) -> tuple[pd.DataFrame, dict[int, int], set[int]]:
    """The AG News test rows plus injections, shuffled -> (frame text,label,id; copy row -> original row;
    outlier rows)."""
    rng = np.random.default_rng(seed)
    df = pd.read_csv(DATA / "ag_news" / "test.csv", header=None, names=["label", "title", "description"])
    classes = (DATA / "ag_news" / "classes.txt").read_text().split()
    names = [c.strip() for c in (DATA / "ag_news" / "classes.txt").read_text().splitlines() if c.strip()] or classes
    base = pd.DataFrame(
        {
            "text": df["title"].str.strip() + "\n" + df["description"].str.strip(),
            "label": df["label"].map(lambda v: names[v - 1]),
        }
    )
    base["origin"], base["kind"] = np.arange(len(base)), "ag"
    picks = rng.choice(len(base), n_dups, replace=False)
    copies = base.iloc[picks].copy()
    copies["text"] = [edit(t, rng) for t in copies["text"]]
    other = rng.random(n_dups) < 1 / 3
    copies.loc[other, "label"] = [rng.choice([c for c in names if c != lab]) for lab in copies.loc[other, "label"]]
    copies["kind"] = "copy"
    imdb = pd.read_csv(DATA / "imdb_train" / "data.csv").sample(n_out, random_state=seed)
    outs = pd.DataFrame(
        {"text": imdb["text"].str.replace("<br />", " ").str.slice(0, 1000), "label": rng.choice(names, n_out)}
    )
    outs["origin"], outs["kind"] = -1, "outlier"
    full = pd.concat([base, copies, outs], ignore_index=True).sample(frac=1.0, random_state=seed).reset_index(drop=True)
    row_of_origin = {int(o): i for i, (o, k) in enumerate(zip(full["origin"], full["kind"])) if k == "ag"}
    copy_of = {i: row_of_origin[int(o)] for i, (o, k) in enumerate(zip(full["origin"], full["kind"])) if k == "copy"}
    outliers = {i for i, k in enumerate(full["kind"]) if k == "outlier"}
    full["id"] = np.arange(len(full))
    return full[["id", "text", "label"]], copy_of, outliers


def audit(frame: pd.DataFrame, name: str):
    from review import audit as review_audit
    from review import auth, store
    from review.text import ingest

    tmp = tempfile.mkdtemp()
    os.environ.setdefault("REVIEW_TRAIL_DIR", tmp)
    db = store.connect(os.path.join(tmp, "bench.db"))
    buf = io.BytesIO()
    frame.to_csv(buf, index=False)
    mapping = ingest.Mapping(text=["text"], label="label", id="id")
    ds_id = ingest.ingest_bytes(db, buf.getvalue(), f"{name}.csv", name, auth.SYSTEM, mapping=mapping)
    t = time.perf_counter()
    run_id = review_audit.run_audit(db, ds_id, auth.SYSTEM)
    return db, run_id, time.perf_counter() - t


def near_same(texts: list[str]) -> bool:
    from review.findings.features import _unit_rows
    from review.text.models.text import vectorise_text

    S = _unit_rows(vectorise_text(texts)[0])
    return bool(((S @ S[0].T).toarray().ravel() >= 0.9).all())


def injected(args) -> None:
    from review import store

    frame, copy_of, outs = ag_news(args.dups, args.outliers, args.seed)
    db, run_id, secs = audit(frame, "agnews")
    metrics = json.loads(store.scalar(db, "SELECT metrics FROM runs WHERE id=?", [run_id]))
    sets = [json.loads(r["rows"]) for r in store.rows(db, "SELECT rows FROM dup_sets WHERE run_id=?", [run_id])]
    set_of = {i: k for k, s in enumerate(sets) for i in s}
    found = sum(1 for c, o in copy_of.items() if c in set_of and set_of.get(o) == set_of[c])
    inj_sets, natural, false = 0, 0, []
    injected_rows = set(copy_of) | set(copy_of.values())
    texts = frame["text"].tolist()
    for s in sets:
        if any(c in s and copy_of[c] in s for c in copy_of):
            inj_sets += 1
        elif near_same([texts[i] for i in s]):
            natural += 1
        else:
            false.append(s)
    flagged = {
        r["idx"] for r in store.rows(db, "SELECT idx FROM row_findings WHERE run_id=? AND kind='outlier'", [run_id])
    }
    hit = len(flagged & outs)
    print(
        f"AG News + injections, seed {args.seed}: {len(frame):,} rows, audit {secs:.1f} s, checks {metrics['checks']}"
    )
    print(
        f"near duplicates: {len(copy_of)} copies injected ({sum(frame['label'][c] != frame['label'][o] for c, o in copy_of.items())} relabelled)"
    )
    print(f"  recall {found / len(copy_of):.3f} ({found}/{len(copy_of)})")
    print(
        f"  sets flagged {len(sets)}: {inj_sets} with an injected pair, {natural} AG News's own (same or nearly the "
        f"same text), {len(false)} other -> precision {(inj_sets + natural) / max(len(sets), 1):.3f} "
        f"(injected only: {inj_sets / max(len(sets), 1):.3f})"
    )
    for s in false[:3]:
        print("   other set:", [texts[i][:70] for i in s])
    print(f"outliers: {len(outs)} IMDB reviews injected; flagged {len(flagged)}")
    print(f"  recall {hit / len(outs):.3f} ({hit}/{len(outs)}), precision {hit / max(len(flagged), 1):.3f}")
    for i in sorted(flagged - outs)[:3]:
        print("   other outlier:", texts[i][:90].replace("\n", " "))
    print(f"  injected rows among near-duplicate rows: {len(set(set_of) & injected_rows)}/{len(set_of)}")


def _ingest(db, frame: pd.DataFrame, name: str) -> int:
    from review import auth
    from review.text import ingest

    buf = io.BytesIO()
    frame.to_csv(buf, index=False)
    mapping = ingest.Mapping(text=["text"], label="label", id="id")
    return ingest.ingest_bytes(db, buf.getvalue(), f"{name}.csv", name, auth.SYSTEM, mapping=mapping)


def leakage(args) -> None:
    from review import auth, datasets, store
    from review.findings import leakage as leak

    rng = np.random.default_rng(args.seed)
    frame, _, _ = ag_news(0, 0, args.seed)  # shuffled by the seed, nothing injected
    train, test = frame.iloc[:5000].reset_index(drop=True), frame.iloc[5000:].reset_index(drop=True)
    n_copies = args.dups // 2
    picks = rng.choice(len(train), n_copies, replace=False)
    copies = train.iloc[picks].copy()
    copies["text"] = [edit(t, rng) for t in copies["text"]]
    names = sorted(set(frame["label"]))
    other = rng.random(n_copies) < 1 / 3
    copies.loc[other, "label"] = [rng.choice([c for c in names if c != lab]) for lab in copies.loc[other, "label"]]
    test = pd.concat([test, copies], ignore_index=True)
    injected_pairs = {(int(p), len(test) - n_copies + j) for j, p in enumerate(picks)}
    test["id"] = np.arange(len(test))
    tmp = tempfile.mkdtemp()
    os.environ.setdefault("REVIEW_TRAIL_DIR", tmp)
    db = store.connect(os.path.join(tmp, "leak.db"))
    a, b = _ingest(db, train, "train"), _ingest(db, test, "test")
    n20 = pd.read_csv(DATA / "news20_train" / "data.csv").head(5000)
    c = _ingest(db, n20[["id", "text", "label"]], "news20")
    ds_a, ds_b, ds_c = datasets.get(db, a), datasets.get(db, b), datasets.get(db, c)
    chk = leak.check(db, ds_a, ds_b, auth.SYSTEM)
    got = {(r[0], r[1]) for r in db.execute("SELECT idx, other_idx FROM leakage_pairs WHERE check_id=?", [chk.id])}
    hit = len(got & injected_pairs)
    natural = [p for p in got - injected_pairs if near_same([train["text"][p[0]], test["text"][p[1]]])]
    false = sorted(got - injected_pairs - set(natural))
    print(
        f"leakage, seed {args.seed}: train {len(train):,} rows vs test {len(test):,} rows ({n_copies} copies of train"
        f" rows injected, {int(other.sum())} relabelled); {chk.seconds} s, {chk.method}"
    )
    print(f"  pairs {chk.pairs}: {hit} injected, {len(natural)} AG News's own, {len(false)} other")
    print(f"  recall {hit / n_copies:.3f} ({hit}/{n_copies}), precision {(hit + len(natural)) / max(len(got), 1):.3f}")
    print(f"  conflicting pairs (different labels) {chk.conflicting}")
    for i, j in false[:3]:
        print("   other pair:", train["text"][i][:60].replace("\n", " "), "|", test["text"][j][:60].replace("\n", " "))
    ctl = leak.check(db, ds_a, ds_c, auth.SYSTEM)
    print(f"control: train vs news20 ({ds_c.n_items:,} rows, another corpus): {ctl.pairs} pairs, {ctl.seconds} s")


def second(args) -> None:
    from review import store
    from review.findings import summary

    df = pd.read_csv(DATA / args.second / "data.csv").head(args.rows)
    db, run_id, secs = audit(df[["id", "text", "label"]], args.second)
    print(f"{args.second}: {len(df):,} rows, nothing injected, audit {secs:.1f} s")
    for k in summary.summary(db, run_id):
        print(f"  {k.kind}: {k.count} (score {k.score}) {k.message}")
    for s in summary.dup_sets(db, run_id, limit=5):
        print(
            f"  set {s.id} n_labels={s.n_labels} sim={s.similarity}:",
            [m.text[:60].replace("\n", " ") for m in s.members][:3],
        )
    for r in summary.rows(db, run_id, "outlier", limit=5):
        print(f"  outlier {r.idx} score {r.score:.3f}: {r.snippet[:90]}")
    for r in summary.rows(db, run_id, "ambiguous", limit=3):
        print(f"  ambiguous {r.idx} {r.detail}: {r.snippet[:80]}")
    del store


def scale(args) -> None:
    """The checks alone (neighbours, outliers, near duplicates, ambiguous, imbalance, non-IID) at n x 100
    float32 synthetic features."""
    from review.findings import ambiguous, imbalance, near_duplicates, neighbours, non_iid, outliers

    n, rng = args.scale, np.random.default_rng(0)
    centers = rng.normal(size=(1000, 100)).astype(np.float32)
    X = centers[rng.integers(0, 1000, n)]
    X += rng.normal(size=X.shape).astype(np.float32)
    X /= np.linalg.norm(X, axis=1)[:, None]
    labels = rng.integers(0, 4, n)
    P = rng.dirichlet(np.ones(4), n).astype(np.float32)
    t = time.perf_counter()
    nb = neighbours.knn(X)
    t_nb = time.perf_counter() - t
    outliers.find(nb, labels, P)
    near_duplicates.find(nb, None, labels)
    ambiguous.find(P)
    imbalance.find(labels, list("abcd"))
    non_iid.find(nb, labels)
    total = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"checks at {n:,} x 100: neighbours {t_nb:.1f} s ({nb.method}), all checks {total:.1f} s, peak {peak:,.0f} MiB"
    )
    sample = rng.choice(n, 200, replace=False)
    true = [set(np.argsort(-(X[i] @ X.T))[1:11]) for i in sample]
    rec = np.mean([len(true[j] & set(nb.idx[i])) / 10 for j, i in enumerate(sample)])
    print(f"recall of the true 10 nearest (200 sampled rows): {rec:.3f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dups", type=int, default=300)
    p.add_argument("--outliers", type=int, default=100)
    p.add_argument("--second", default=None)
    p.add_argument("--rows", type=int, default=5000)
    p.add_argument("--scale", type=int, default=0)
    p.add_argument("--leakage", action="store_true")
    args = p.parse_args()
    if args.leakage:
        leakage(args)
    elif args.scale:
        scale(args)
    elif args.second:
        second(args)
    else:
        injected(args)


if __name__ == "__main__":
    main()
