"""CoNLL-2003 NER label-error benchmark, through the app's own path.

Concatenates ../shared/data/conll2003/eng.train, eng.testa and eng.testb (21k sentences,
301k tokens, IOB1) and runs `review ingest --task ner` then `review audit` (parse, scheme
check, out-of-sample token probabilities by 5-fold cross-validation by document, cleanlab
token classification, everything stored in a fresh SQLite file), each in a fresh Python
subprocess, twice:

* clean: the files as they are (CoNLL-2003 carries its own known annotation errors);
* noisy: with annotator-like errors injected on distinct entities, at most one per
  sentence (review.ner.inject_errors, seeded): entity type swapped to another type on 2%
  of entities, PER<->ORG on 1% of PER/ORG entities, an entity's boundary off by one token
  on 1%, a missed entity (tagged O) on 1%. The noisy file is written by write_conll.

Prints, per run, from what the audit stored: token accuracy of the out-of-sample model
(against the tags it was given), flagged sentences and tokens, for the noisy run the
recall of each injected kind among flagged sentences (the sentence holding the error has
a flagged token) and among flagged tokens, the share of flagged sentences that hold an
injected error, the recall of each kind by tag inconsistency (a changed token with an inconsistency
score, and the sentence among the tag_inconsistency findings' sentences), AUROC
and AP of the sentence ranking against the injected errors on the test part (eng.testb, the
last file) and on all sentences, recall when reviewing the N lowest-quality sentences, the most common
given->predicted swaps, wall time of each command (interpreter and imports included) and
peak memory (the largest RSS of the subprocesses, getrusage RUSAGE_CHILDREN); then
PASS/FAIL against the targets: audit <= 5 min, <= 3 GB, recall of every kind >= 0.9.

Usage:  python benchmarks/ner_conll.py [--seed 0] [--folds 5] [--files eng.train,eng.testa,eng.testb] [--kinds clean,noisy]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "conll2003"
RATES = {"type_swap": 0.02, "per_org": 0.01, "boundary": 0.01, "missed": 0.01}


def _review(args: list[str], db: Path) -> tuple[float, None, str]:
    """`review ARGS --db DB` in a fresh interpreter -> (wall seconds, None, stdout); exits on failure."""
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "review.cli", *args, "--db", str(db)], capture_output=True, text=True, cwd=ROOT
    )
    if proc.returncode != 0:
        sys.exit(f"error: review {' '.join(args)} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    return time.perf_counter() - t, None, proc.stdout


def one_run(kind: str, files: list[str], seed: int, folds: int) -> dict:
    """Builds the file (as it is, or with injected errors), then `review ingest` + `review audit`
    as subprocesses on a fresh SQLite file; measures from what the audit stored."""
    import json
    import resource
    import tempfile

    import numpy as np

    sys.path.insert(0, str(ROOT))
    from review import datasets, ner, store
    from review.ner import store as ner_store

    out: dict = {"kind": kind}
    paths = [DATA / f for f in files]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        sys.exit(f"error: {', '.join(missing)} missing; the benchmark needs <repo root>/../shared/data/conll2003/.")
    texts = [p.read_text(encoding="utf-8") for p in paths]
    text = "".join(texts)
    out["test_sentences"] = len(ner.parse_conll(texts[-1], files[-1]).sentences)  # the last file is the test part
    orig = ner.parse_conll(text, "+".join(files))
    out["round_trip_identical"] = ner.write_conll(orig, [s.tags for s in orig.sentences]) == text
    injected: list[dict] = []
    if kind == "noisy":
        noisy_tags, injected = ner.inject_errors(orig, RATES, seed=seed)
        text = ner.write_conll(orig, noisy_tags)
        tc = ner.tag_inconsistency(ner.parse_conll(text, "noisy"))  # the same check the audit runs, in process
        out["inconsistency_token_recall"] = {
            k: float(
                np.mean(
                    [max(tc.token_score[d["sent"]][j] for j in d["tokens"]) > 0 for d in injected if d["kind"] == k]
                )
            )
            for k in ner.ERROR_KINDS
        }
    out.update(
        sentences=len(orig.sentences),
        tokens=orig.n_tokens,
        scheme=orig.scheme,
        documents=len({s.doc for s in orig.sentences}),
        entities=sum(len(ner.entity_spans(s.tags, orig.scheme)) for s in orig.sentences),
    )
    with tempfile.TemporaryDirectory() as tmp:
        src, db_path = Path(tmp) / f"conll2003-{kind}.conll", Path(tmp) / "bench.db"
        src.write_text(text, encoding="utf-8")
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        out["ingest_s"], _, _ = _review(["ingest", str(src), "--name", "conll", "--task", "ner"], db_path)
        out["audit_wall_s"], _, out["audit_stdout"] = _review(["audit", "conll"], db_path)
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        out["peak_rss_mb"] = max(peak, before) / 1024
        db = store.connect(db_path)
        ds = datasets.get(db, "conll")
        run = datasets.latest_run(db, ds.id)
        m = run["metrics"]
        out["audit_s"] = m["seconds"]
        out["token_accuracy"] = m["model agreement with given labels"]
        flagged = {(i, j) for i, j in db.execute("SELECT idx, token FROM token_issues WHERE run_id=?", [run["id"]])}
        quality = np.array(
            [q for (q,) in db.execute("SELECT quality FROM scores WHERE run_id=? ORDER BY idx", [run["id"]])]
        )
        out["scheme_violations"] = db.execute(
            "SELECT COUNT(*) FROM token_issues WHERE run_id=? AND reason LIKE 'not valid%'", [run["id"]]
        ).fetchone()[0]
        incons = set()
        for (rows,) in db.execute("SELECT rows FROM findings WHERE run_id=? AND kind='tag_inconsistency'", [run["id"]]):
            incons.update(json.loads(rows))
        out["inconsistency_findings"] = db.execute(
            "SELECT COUNT(*) FROM findings WHERE run_id=? AND kind='tag_inconsistency'", [run["id"]]
        ).fetchone()[0]
        out["model"] = run["params"].get("model")
        out["model_why"] = run["params"].get("why")
        out["top_swaps"] = [
            f"{r['given_tag']}->{r['predicted_tag']}: {r['tokens']} (e.g. {r['examples']})"
            for r in ner_store.swaps(db, ds, limit=8, examples=3)
        ]
        db.conn.close()
    fsent = {i for i, _ in flagged}
    out["flagged_sentences"] = len(fsent)
    out["flagged_tokens"] = len(flagged)
    if injected:
        per = {}
        for k in ner.ERROR_KINDS:
            e = [d for d in injected if d["kind"] == k]
            per[k] = {
                "n": len(e),
                "sentence_recall": float(np.mean([d["sent"] in fsent for d in e])) if e else None,
                "token_recall": float(np.mean([any((d["sent"], j) in flagged for j in d["tokens"]) for d in e]))
                if e
                else None,
            }
        for k in ner.ERROR_KINDS:
            e = [d for d in injected if d["kind"] == k]
            per[k]["inconsistency_recall"] = float(np.mean([d["sent"] in incons for d in e])) if e else None
            per[k]["inconsistency_token_recall"] = out["inconsistency_token_recall"][k]
        out["per_kind"] = per
        inj = {d["sent"] for d in injected}
        from sklearn.metrics import average_precision_score, roc_auc_score

        truth = np.zeros(len(quality), dtype=bool)
        truth[list(inj)] = True
        test = np.arange(len(quality)) >= len(quality) - out["test_sentences"]
        out["auroc_test"] = float(roc_auc_score(truth[test], -quality[test]))
        out["ap_test"] = float(average_precision_score(truth[test], -quality[test]))
        out["auroc_all"] = float(roc_auc_score(truth, -quality))
        out["ap_all"] = float(average_precision_score(truth, -quality))
        out["flagged_with_injected"] = len(fsent & inj)
        out["sentence_recall_all"] = len(fsent & inj) / len(inj)
        order = np.argsort(quality, kind="stable")
        out["recall_at"] = {
            str(m * len(inj)): len(set(order[: m * len(inj)].tolist()) & inj) / len(inj) for m in (1, 2, 4)
        }
    return out


def report(r: dict) -> None:
    print(
        f"\n== {r['kind']}: {r['sentences']:,} sentences, {r['tokens']:,} tokens, {r['entities']:,} entities, "
        f"{r['documents']:,} documents, scheme {r['scheme']}"
    )
    print(f"   write_conll(parse_conll(text)) == text: {r['round_trip_identical']}")
    acc = f"   token accuracy (out-of-sample): {r['token_accuracy']:.4f} vs the given tags"
    if "token_accuracy_vs_original" in r:
        acc += f", {r['token_accuracy_vs_original']:.4f} vs the original tags"
    print(acc)
    print(
        f"   flagged: {r['flagged_sentences']:,} sentences "
        f"({r['flagged_sentences'] / r['sentences']:.1%}), {r['flagged_tokens']:,} tokens "
        f"({r['flagged_tokens'] / r['tokens']:.2%}); scheme violations among them: {r['scheme_violations']}"
    )
    if "per_kind" in r:
        print(
            "   injected kind      n   recall(sentences)  recall(tokens)  tag inconsistency: recall(tokens)  recall(findings)"
        )
        for k, v in r["per_kind"].items():
            print(
                f"   {k:<14} {v['n']:>5}   {v['sentence_recall']:>17.2f}  {v['token_recall']:>14.2f}  "
                f"{v['inconsistency_token_recall']:>33.2f}  {v['inconsistency_recall']:>16.2f}"
            )
        n_inj = sum(v["n"] for v in r["per_kind"].values())
        print(f"   all            {n_inj:>5}   {r['sentence_recall_all']:>17.2f}")
        print(
            f"   flagged sentences holding an injected error: {r['flagged_with_injected']:,} of "
            f"{r['flagged_sentences']:,} (the rest: CoNLL's own errors, or the model's)"
        )
        print(
            f"   sentence ranking vs the injected errors: test part ({r['test_sentences']:,} sentences) AUROC "
            f"{r['auroc_test']:.3f}, AP {r['ap_test']:.3f}; all sentences AUROC {r['auroc_all']:.3f}, AP {r['ap_all']:.3f}"
        )
        print(
            "   recall when reviewing the N lowest-quality sentences: "
            + ", ".join(f"N={n}: {v:.2f}" for n, v in r["recall_at"].items())
        )
    print(
        f"   token model: {r['model']} ({r['model_why']}); tag-inconsistency findings: {r['inconsistency_findings']:,}"
    )
    print("   most common given->predicted among flagged tokens: " + "; ".join(r["top_swaps"][:6]))
    print(
        f"   time: review ingest {r['ingest_s']:.1f} s, review audit {r['audit_wall_s']:.1f} s wall "
        f"({r['audit_s']:.1f} s inside the run; imports and loading make the rest)"
    )
    print(f"   peak memory (largest RSS of the two subprocesses): {r['peak_rss_mb']:,.0f} MiB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--files", default="eng.train,eng.testa,eng.testb")
    ap.add_argument("--kinds", default="clean,noisy", help="which runs: clean, noisy or both")
    args = ap.parse_args()
    files = args.files.split(",")
    print(
        f"CoNLL-2003 NER audit benchmark: {' + '.join(files)}; seed {args.seed}, {args.folds} folds by document; "
        f"{os.cpu_count()} CPUs; injected rates {RATES}"
    )
    results = []
    for kind in args.kinds.split(","):
        results.append(one_run(kind, files, args.seed, args.folds))
        report(results[-1])
    noisy = results[-1]
    checks = [
        (
            f"audit of {noisy['tokens']:,} tokens {noisy['audit_wall_s']:.0f} s <= 300 s",
            max(r["audit_wall_s"] for r in results) <= 300,
        ),
        (
            f"peak memory {max(r['peak_rss_mb'] for r in results):,.0f} MiB <= 3072 MiB",
            max(r["peak_rss_mb"] for r in results) <= 3072,
        ),
    ]
    checks += [
        (f"sentence recall of {k} {v['sentence_recall']:.2f} >= 0.90", v["sentence_recall"] >= 0.9)
        for k, v in noisy["per_kind"].items()
    ]
    print()
    for text, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")


if __name__ == "__main__":
    main()
