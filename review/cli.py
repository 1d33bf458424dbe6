"""The `review` command: the contract scripts and checks rely on (see DESIGN)."""

from __future__ import annotations

import argparse
import csv
import getpass
import json
import sqlite3
import sys
from pathlib import Path

from review import auth, export, stats, store, trail
from review.datasets import get
from review.errors import ReviewError
from review.text import (
    ingest,
    signals,  # audit and demo (sklearn, cleanlab) load on use
)
from review.trail import export as trail_export


def _bar(stream=sys.stderr):
    """A progress callback that draws a text bar on stderr."""

    def progress(fraction: float, message: str) -> None:
        width = 30
        done = int(width * max(0.0, min(1.0, fraction)))
        stream.write(f"\r[{'#' * done}{'.' * (width - done)}] {fraction:4.0%} {message[:60]:<60}")
        if fraction >= 1.0:
            stream.write("\n")
        stream.flush()

    return progress


def cmd_ingest(db, args) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise ReviewError(f"No file at {path}: check the path.")
    data = path.read_bytes()
    from review.ner import store as ner_store

    if args.task == "ner" or (args.task is None and ner_store.looks_like_ner(data, path.name)):
        return _ingest_ner(db, args, path, data)
    df = ingest.read_table(data, path.name, no_header=args.no_header)
    sniff = None if args.no_header else ingest.sniff_header(data, path.name)  # for the hint to add --no-header
    mapping = ingest.mapping_from_choices(
        df,
        text=args.text_col,
        label=args.label_col,
        id=args.id_col,
        annotator=args.annotator_col,  # one column: long form; several: wide form
        probs=args.prob_cols,
        features=args.feature_cols,
        embedding=args.embedding_col,
        loss=args.loss_col,
        embedding_file=Path(args.embeddings).name if args.embeddings else None,
        guess=True,
        filename=path.name,
        hint=f"The first line looks like data, not a header ({sniff.reason}): add --no-header."
        if sniff and sniff.headerless
        else "",
    )
    if sniff and sniff.headerless:
        print(
            f"note: the first line of {path.name} looks like data, not a header ({sniff.reason}); it was read "
            "as the header. Add --no-header to read it as data.",
            file=sys.stderr,
        )
    if args.classes:
        names = Path(args.classes)
        if not names.is_file():
            raise ReviewError(f"No file at {names}: check the --classes path.")
        text = ingest.decode_upload(names.read_bytes(), names.name)
        mapping.class_names = ingest.parse_class_names(text, ingest.label_values(df, mapping), names.name)
    labels = [s for s in args.labels.split(",")] if args.labels else None
    embeddings = None
    if args.embeddings:
        npy = Path(args.embeddings)
        if not npy.is_file():
            raise ReviewError(f"No file at {npy}: check the --embeddings path.")
        embeddings = signals.read_npy(npy.read_bytes(), npy.name, len(df))
    prep = ingest.prepare(df, mapping, path.name, data, labels, embeddings=embeddings)
    from review import audit

    got = audit.ingest_checked(db, prep, args.name, auth.SYSTEM, _bar() if len(prep.items) > 50_000 else None)
    what = (
        f"{len(prep.items):,} items ({len(prep.annotations):,} labels from {len({a for _, a, _ in prep.annotations}):,} annotators)"
        if prep.annotations
        else f"{len(prep.items):,} rows"
    )
    print(
        f"ingested {what} into dataset {args.name!r} (id {got.dataset_id}); "
        f"text: {', '.join(mapping.text) or '-'}; label: {mapping.label}; id: {mapping.id or '(row number)'}; "
        f"classes: {', '.join(prep.labels)}"
    )
    return 0


def _ingest_ner(db, args, path: Path, data: bytes) -> int:
    from review import audit
    from review.ner import store as ner_store

    corpus = ner_store.read_corpus(data, path.name)
    got = audit.ingest_checked(
        db, corpus, args.name, auth.SYSTEM, _bar() if len(corpus.sentences) > 20_000 else None, source=data
    )
    print(
        f"ingested {len(corpus.sentences):,} sentences ({corpus.n_tokens:,} tokens) into dataset {args.name!r} (id {got.dataset_id}); "
        f"{corpus.format}, scheme {corpus.scheme}; entity types: {', '.join(corpus.entity_types)}"
    )
    return 0


def cmd_audit(db, args) -> int:
    from review import audit

    run_id = audit.run_audit(
        db, args.name, auth.SYSTEM, progress=_bar(), model=args.model, second_pass=args.second_pass
    )
    ds = get(db, args.name)
    from review.datasets import latest_run

    run = latest_run(db, ds.id)
    m = run["metrics"]
    agree = (
        f"consensus differs from the majority vote on {m['consensus differs from majority vote']:,} items"
        if "annotators" in m
        else f"model agrees with given labels on {m['model agreement with given labels']:.1%}"
    )
    if ds.task == "ner":
        print(
            f"run {run_id}: {m['flagged']:,} suspect sentences ({m['flagged tokens']:,} tokens) among {m['sentences']:,} "
            f"sentences and {m['tokens']:,} tokens ({m['relabel']:,} relabel, {m['needs review']:,} needs review); "
            f"out-of-sample token accuracy {m['model agreement with given labels']:.1%}; {m['seconds']} s"
        )
        for f in stats.findings(db, run_id):
            print(f"  {f['kind']}: {f['message']}")
        return 0
    print(
        f"run {run_id}: {m['flagged']:,} suspects among {m['rows']:,} rows "
        f"({m['relabel']:,} relabel, {m['needs review']:,} needs review); {agree}; {m['seconds']} s"
    )
    if run.get("params", {}).get("choice"):
        print(f"  model: {run['params']['model']}: {run['params']['choice']}")
    if run.get("params", {}).get("labels") == "current":
        p = run["params"]
        print(
            f"  trained on the current labels: {p['corrected_rows']:,} corrected, "
            f"{p['left_out_rows']:,} rows a pending decision doubts left out (still scored)"
        )
    since = m.get("since previous run")
    if since:  # the change against the previous audit run (review.rundiff)
        print(
            f"  since run {since['run']}: flagged {since['flagged before']:,} -> {since['flagged']:,}, "
            f"{since['new']:,} new, {since['cleared']:,} cleared"
        )
    if m.get("queue warning"):
        print(f"  warning: {m['queue warning']}")
    for f in stats.findings(db, run_id):
        print(f"  {f['kind']}: {f['message']}")
    try:  # the checks beyond label errors: one line per type with its count (review.findings)
        from review.findings.summary import summary as checks_summary
    except ImportError:
        return 0
    for k in checks_summary(db, run_id):
        score = "" if k.score is None else f" (score {k.score:.3f})"
        print(f"  check {k.kind}: {k.figure}{score}")
    return 0


def cmd_leakage(db, args) -> int:
    """Near copies of NAME's rows in the dataset --against (review.findings.leakage): the check, stored and
    logged, then its figures and the first --show pairs."""
    from review.findings import leakage

    ds, other = get(db, args.name), get(db, args.against)
    chk = leakage.check(db, ds, other, auth.SYSTEM, progress=_bar())
    print(
        f"leakage check {chk.id}: {chk.rows:,} rows of {ds.name!r} have a near copy among {chk.other_rows:,} rows of"
        f" {other.name!r} ({chk.pairs:,} pairs at a cosine of the words >= {chk.threshold}, {chk.conflicting:,} with"
        f" different labels); nearest rows {chk.method}; {chk.seconds} s"
    )
    for p in leakage.pairs_page(db, chk, limit=args.show):
        print(
            f"  row {p.idx} [{p.label}] ~ {other.name} row {p.other_idx} [{p.other_label}]  {p.similarity:.3f}"
            f"  {p.text[:70]!r}"
        )
    return 0


def cmd_suspects(db, args) -> int:
    ds = get(db, args.name)
    rows, after = [], 0
    while args.limit is None or len(rows) < args.limit:
        page = stats.suspects_page(db, ds, after, limit=1000, only_issues=not args.all)
        if not page:
            break
        rows.extend(page)
        after = page[-1]["rank"]
    if args.limit is not None:
        rows = rows[: args.limit]
    cols = [
        "id",
        "given_label",
        "predicted_label",
        "confidence",
        "quality",
        "is_issue",
        "rank",
        "suggested_label",
        "trust",
        "action",
        "state",
        "reason",
    ]
    if ds.mapping.multi:
        cols[7:7] = ["consensus_label", "annotators", "agreement"]
    if ds.task == "ner":
        cols.insert(7, "tokens")
        from review.ner import store as ner_store

        flagged = ner_store.flagged_tokens(db, ds, [r["idx"] for r in rows])
        for r in rows:
            r["tokens"] = flagged.get(r["idx"], [])
            if args.format == "json":
                for c in ("given_label", "predicted_label", "suggested_label"):
                    r[c] = json.loads(r[c]) if r[c] else r[c]
    out = [{c: r[c] for c in cols} for r in rows]
    if args.format == "json":
        json.dump(out, sys.stdout, ensure_ascii=False, indent=1)
        sys.stdout.write("\n")
    else:
        import csv

        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(cols)
        for r in out:
            w.writerow([export.safe_cell(r[c]) for c in cols])
    return 0


def cmd_annotators(db, args) -> int:
    from review.crowd.annotators import annotator_table

    ds = get(db, args.name)
    if not ds.mapping.multi:
        raise ReviewError(f"Dataset {ds.name!r} has one label per item: there are no annotators to compare.")
    rows = annotator_table(db, ds)
    if not rows:
        raise ReviewError(f"No audit of {ds.name!r} yet: run `review audit {ds.name}` first.")
    if args.format == "json":
        json.dump(rows, sys.stdout, ensure_ascii=False, indent=1)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(
            "".join(
                export.csv_chunks(export.ANNOTATOR_COLUMNS, ([r[c] for c in export.ANNOTATOR_COLUMNS] for r in rows))
            )
        )
    return 0


def cmd_judge(db, args) -> int:
    from review import judge

    ds = get(db, args.name)
    cfg = judge.config_from({})
    if cfg is None:
        raise ReviewError("No judge is configured. " + judge.SETUP_HELP)
    p = judge.plan(db, ds, cfg.model, args.limit)
    print(
        f"judging {p.rows:,} flagged rows of {ds.name!r} with {cfg.model} at {judge.shown_url(cfg.base_url, cfg.api_key)}: "
        f"{p.calls:,} calls, {p.cached:,} cached",
        file=sys.stderr,
    )
    got = judge.run_judge(db, ds, auth.SYSTEM, cfg, args.limit, progress=_bar() if p.calls else (lambda f, m: None))
    print(
        f"{got.rows:,} rows: {got.calls:,} calls, {got.cached:,} cached; YES {got.YES:,}, NO {got.NO:,}, "
        f"UNKNOWN {got.UNKNOWN:,}; {got.seconds} s"
    )
    return 0


def _ner_export_format(ds, args) -> str:
    """--format, else the format the --out extension names (.jsonl/.ndjson, .conll), else the upload's."""
    if args.format:
        return args.format
    out = args.out.lower()
    if out.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    if out.endswith(".conll"):
        return "conll"
    return export.ner_native_format(ds)


def cmd_export(db, args) -> int:
    from review import versions  # every export is a version: its manifest goes next to the file

    ds = get(db, args.name)
    safe = args.spreadsheet_safe  # the formula guard only for files meant for spreadsheets
    if ds.task == "ner":
        fmt = _ner_export_format(ds, args)
        if fmt == "csv":
            out = versions.export_csv(db, ds, auth.SYSTEM, args.only_verified, spreadsheet_safe=safe)
        else:
            out = versions.export_ner(db, ds, auth.SYSTEM, fmt)  # refuses a format it cannot write
        export.write_file(out, args.out)
        msg = f"wrote the cleaned corpus of {ds.name!r} ({fmt}) to {args.out}"
    else:
        if args.format and args.format != "csv":
            raise ReviewError(
                f"{ds.name!r} is a text dataset: it exports as csv only (--format {args.format} is for NER corpora)."
            )
        out = versions.export_csv(db, ds, auth.SYSTEM, args.only_verified, spreadsheet_safe=safe)
        export.write_file(out, args.out)
        msg = f"wrote cleaned labels of {ds.name!r} to {args.out}"
    Path(args.out + ".manifest.json").write_text(out.manifest_json(), encoding="utf-8")
    msg += f" (version {out.version.number}, manifest {args.out}.manifest.json)"
    if args.audit_trail:
        export.write_file(trail_export.export_csv(db, auth.SYSTEM, ds.id, spreadsheet_safe=safe), args.audit_trail)
        msg += f" and its audit trail to {args.audit_trail}"
    if safe:
        msg += " (spreadsheet-safe: cells starting with = + - @ tab or CR prefixed with ')"
    print(msg)
    return 0


def cmd_versions(db, args) -> int:
    from review import versions

    ds = get(db, args.name)
    w = csv.writer(sys.stdout, lineterminator="\n")
    w.writerow(["number", "created_at", "created_by", "kind", "n_rows", "sha256"])
    for v in versions.versions(db, ds):
        w.writerow([v.number, v.created_at, v.created_by, v.kind, v.n_rows, v.sha256 or ""])
    return 0


def cmd_diff(db, args) -> int:
    from review import versions

    ds = get(db, args.name)
    if args.versions:
        a, b = args.versions
        lines = versions.format_version_diff(versions.compare_versions(db, ds, a, b))
    else:
        a, b = args.runs
        lines = versions.run_comparison(db, ds, a, b)
    print("\n".join(lines))
    return 0


def cmd_relabel(db, args) -> int:
    """Rename, merge or add a label (review.taxonomy): the preview, then (unless --dry-run) the change."""
    from review import taxonomy

    ds = get(db, args.name)
    user = auth.get_user(db, args.user)
    if args.rename:
        change = taxonomy.Rename(*_label_pair(ds, args.rename, "--rename OLD=NEW"))
    elif args.merge:
        change = taxonomy.Merge(*_label_pair(ds, args.merge, "--merge LABEL=INTO"))
    else:
        change = taxonomy.Add(args.add)
    p = taxonomy.preview(db, ds, change)
    print(f"{p.summary} Label set version {p.version - 1} -> {p.version}: {', '.join(p.labels_after)}")
    if args.dry_run:
        print("dry run: nothing was changed")
        return 0
    ev = taxonomy.apply(db, ds, user, change, seen_version=p.version - 1)
    print(
        f"label set version {ev.version} of {ds.name!r} ({ev.summary}, by {ev.created_by}): "
        f"{ev.n_rows:,} row{'' if ev.n_rows == 1 else 's'} changed; {taxonomy.REAUDIT}: review audit {ds.name}"
    )
    return 0


def _label_pair(ds, value: str, form: str) -> tuple[str, str]:
    """'A=B' -> (A, B); the split is at the first '=' after which the left side is a label of ``ds``
    (a label may hold '='), else at the first '='."""
    cuts = [i for i, c in enumerate(value) if c == "="]
    if not cuts:
        raise ReviewError(f"{value!r} is not of the form {form.split(' ', 1)[1]}: write {form}.")
    at = next((i for i in cuts if value[:i] in ds.labels), cuts[0])
    return value[:at], value[at + 1 :]


def cmd_users(db, args) -> int:
    if args.users_cmd == "add":
        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = getpass.getpass(f"Password for {args.user}: ")
        actor = auth.SYSTEM if auth.has_users(db) else None
        u = auth.create_user(db, args.user, args.role, password, actor)
        print(f"added {u.role} {u.name}")
    else:
        for u in auth.list_users(db, auth.SYSTEM):
            print(f"{u['name']}\t{u['role']}\t{'active' if u['active'] else 'inactive'}")
    return 0


def cmd_verify_trail(db, args) -> int:
    if getattr(args, "new_key", False):  # the key is lost, or the file was put back from a copy older than it
        print(trail.new_key(db))
    ok, n, msg = trail.verify_trail(db)
    print(msg)
    return 0 if ok else 1


def cmd_backup(db, args) -> int:
    store.backup(db, args.path)
    print(f"backed up {store.db_path(args.db)} to {args.path}")
    return 0


def cmd_demo(db, args) -> int:
    from review import demo

    ds_id = demo.load_demo(db, auth.SYSTEM, progress=_bar())
    print(f"demo dataset {demo.DEMO_NAME!r} loaded (id {ds_id}) and audited; run `streamlit run app.py` to review it")
    return 0


def cmd_selfcheck(db, args) -> int:
    from review import selfcheck

    res = selfcheck.run_selfcheck(db, args.name, auth.SYSTEM, seed=args.seed, rate=args.rate, progress=_bar())
    print(
        f"self-check {res.id} on {args.name!r} (seed {res.seed}, {res.rate:.0%} of rows per kind; swapped "
        f"{res.pair[0]!r} and {res.pair[1]!r}; model {res.model}; {res.seconds} s)"
    )
    print(res.summary())
    print(
        f"{res.flagged:,} rows flagged on the copy, {res.injected_share_of_flagged:.0%} of them injected "
        "(the rest: rows the audit doubts anyway)"
    )
    return 0


def _bulk_show(db, action_id: int) -> None:
    from review import bulk

    s = bulk.sample_status(db, action_id)
    a = s.action
    print(f"bulk action {a.id}: {a.describe}; {a.n_matched:,} rows in the set; status {a.status}")
    if s.precision is None:
        print(f"sample: 0 of {len(s.rows):,} rows decided")
    else:
        print(
            f"sample: {s.decided:,} of {len(s.rows):,} rows decided, {s.relabelled:,} relabelled to {a.label}: precision "
            f"{s.precision:.0%} (95% interval {s.low:.0%}-{s.high:.0%})"
        )
    print("row\tid\tgiven_label\tpredicted_label\tdecision\tlabel\treviewer\ttext")
    for r in s.rows:
        text = " ".join(str(r.text or "").split())[:80]
        print(
            f"{r.idx}\t{r.key}\t{r.given_label}\t{r.predicted_label or ''}\t{r.decision or 'open'}\t"
            f"{r.decided_label or ''}\t{r.reviewer or ''}\t{text}"
        )


def cmd_bulk(db, args) -> int:
    """Bulk fix by pattern (review.bulk): start (draw a sample), decide the sample, apply, undo, list."""
    from review import bulk
    from review.browse import RowFilter

    ds = get(db, args.name)
    user = auth.get_user(db, args.user) if args.user else None

    def who(what: str) -> auth.User:
        if user is None:
            raise ReviewError(f"Name who {what} with --user NAME (an active account of this database).")
        return user

    if args.list:
        print("id\tstatus\tset\tlabel\tmatched\tsample\tapplied\tapproved\tpending\tby\tat")
        for b in bulk.actions(db, ds, limit=1000):
            approved = "" if b.approve is None else "yes" if b.approve else "no"
            print(
                f"{b.id}\t{b.status}\t{b.filter_text}\t{b.label}\t{b.n_matched}\t{b.n_sample}\t"
                f"{'' if b.n_applied is None else b.n_applied}\t{approved}\t{b.n_pending}\t{b.created_by}\t{b.created_at}"
            )
        return 0
    if args.undo is not None:
        print(bulk.undo_message(bulk.undo(db, args.undo, who("undoes the bulk action"))))
        return 0
    if args.cancel is not None:
        bulk.cancel(db, args.cancel, who("cancels the bulk action"))
        print(f"bulk action {args.cancel} cancelled (its sample decisions stay)")
        return 0
    action_id = args.action
    if args.filter or args.given or args.predicted:
        if args.filter:
            f = RowFilter.from_json(args.filter)
        elif args.given and args.predicted:
            f = bulk.pair_filter(args.given, args.predicted, flagged_only=not args.include_unflagged)
        else:
            raise ReviewError("A confusion pair takes both --given A and --predicted B (or give --filter JSON).")
        label = args.label or args.predicted
        if not label:
            raise ReviewError("Name the label every row of the set gets with --label L.")
        a = bulk.start(db, ds, who("starts the bulk fix"), f, label, args.sample, args.seed)
        print(f"started bulk action {a.id}: {len(a.sample):,} sample rows to decide before it can be applied")
        action_id = a.id
    if action_id is None:
        open_one = bulk.open_action(db, ds)
        if open_one is None:
            raise ReviewError(
                f"No bulk action of {ds.name!r} is waiting for its sample: start one with --given A --predicted B"
                " (or --filter JSON) and --label L, or see them all with --list."
            )
        action_id = open_one.id
    for spec in args.decide or []:
        row, _, call = spec.partition("=")
        if call not in ("wrong", "right") or not row.strip().isdigit():
            raise ReviewError(
                f"--decide {spec!r}: write ROW=wrong (relabel it) or ROW=right (keep it), ROW a row number."
            )
        s = bulk.sample_status(db, action_id)
        r = next((r for r in s.rows if r.idx == int(row)), None)
        if r is None:
            raise ReviewError(
                f"Row {row} is not in the sample of bulk action {action_id}: see it with --action {action_id}."
            )
        bulk.decide_sample(db, action_id, r.idx, who("decides the sample row"), call == "wrong", r.version)
    if args.apply:
        a = bulk.get(db, action_id)
        bar = _bar() if a.n_matched > 2000 else None
        res = bulk.apply(db, action_id, who("applies the bulk fix"), approve=args.approve, progress=bar)
        print(bulk.apply_message(res, a.label))
        return 0
    _bulk_show(db, action_id)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="review", description="Find, review and correct label errors.")
    sub = p.add_subparsers(dest="cmd", required=True)

    def add(name, help):
        s = sub.add_parser(name, help=help)
        s.add_argument("--db", help="SQLite file (default: $REVIEW_DB or review.db)")
        return s

    s = add("ingest", "load a CSV, TSV, JSONL or Parquet file as a dataset")
    s.add_argument("file")
    s.add_argument("--name", required=True)
    s.add_argument(
        "--task", choices=["text", "ner"], help='default: ner for CoNLL files (and JSONL with "tokens"), else text'
    )
    s.add_argument("--text-col", help="column name(s) or 1-based positions, comma-separated (joined with a newline)")
    s.add_argument("--label-col")
    s.add_argument("--id-col")
    s.add_argument(
        "--annotator-col",
        help="several labels per item: the annotator column (long form: id, text, annotator, "
        "label, one row per label), or several columns, one per annotator (wide form)",
    )
    s.add_argument("--prob-cols", help="your own predicted probabilities: one column per class, named after it")
    s.add_argument("--feature-cols", help="tabular data: feature columns (no text)")
    s.add_argument(
        "--embedding-col",
        help="your own embeddings: a column with one vector per row ([0.1, -0.2, …] or "
        "numbers separated by spaces); one more candidate model",
    )
    s.add_argument("--embeddings", help="your own embeddings as a .npy file of shape (rows, dimensions), in row order")
    s.add_argument("--loss-col", help="your own model's per-row training loss, fused into the trust score")
    s.add_argument("--labels", help="the declared label set, comma-separated")
    s.add_argument("--no-header", action="store_true", help="the first line is data (columns are then 1, 2, 3, …)")
    s.add_argument(
        "--classes",
        metavar="FILE",
        help="names for the label values: one per line, line k naming the k-th "
        "value in sorted order (AG News' classes.txt), or value=name pairs; the names become the labels",
    )
    s = add("leakage", "near copies of a dataset's rows in another dataset (a train split and its test split)")
    s.add_argument("name", help="the dataset checked (a training split, say)")
    s.add_argument("--against", required=True, help="the other dataset (a test split uploaded on its own, say)")
    s.add_argument("--show", type=int, default=10, help="pairs printed (default 10; all are stored)")
    s = add("audit", "integrity checks + out-of-sample model + cleanlab")
    s.add_argument("name")
    s.add_argument(
        "--model",
        default="auto",
        help="text data: force a model family, one of nb, logreg, nb-chars, logreg-chars, logreg-embeddings "
        "(default auto: the candidate that predicts the given labels best out of sample, or a mixture)",
    )
    s.add_argument(
        "--second-pass",
        action="store_true",
        help="text data: train again without the rows the first pass flagged (measured on the benchmark "
        "panel: no better on average, so off by default)",
    )
    s = add(
        "selfcheck",
        "inject known errors (flips, a swap, a shifted block) into a copy of the labels, audit the copy, "
        "print the recall per kind",
    )
    s.add_argument("name")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--rate", type=float, default=0.03, help="share of rows per kind (default 0.03)")
    s = add("suspects", "print the ranked suspects")
    s.add_argument("name")
    s.add_argument("--all", action="store_true", help="every row, not only the flagged ones")
    s.add_argument("--limit", type=int)
    s.add_argument("--format", default="csv", choices=["csv", "json"])
    s = add("annotators", "print one row per annotator: quality, agreement, worst class, labels")
    s.add_argument("name")
    s.add_argument("--format", default="csv", choices=["csv", "json"])
    s = add("judge", "ask the LLM judge (LLM_BASE_URL, LLM_MODEL, LLM_API_KEY) about the flagged rows")
    s.add_argument("name")
    s.add_argument("--limit", type=int, help="only the N most suspect rows")
    s = add("export", "write the cleaned labels as CSV (every cell as stored; see --spreadsheet-safe)")
    s.add_argument("name")
    s.add_argument("--out", required=True)
    s.add_argument("--only-verified", action="store_true")
    s.add_argument("--audit-trail", help="also write the dataset's audit trail to this CSV")
    s.add_argument(
        "--spreadsheet-safe",
        action="store_true",
        help="for CSV files to open in Excel, LibreOffice or Sheets: prefix ' to every cell starting with "
        "=, +, -, @, a tab or a carriage return, so it shows as text instead of running as a formula. "
        "This changes the values (an id -5 is written '-5): leave it off for files programs read",
    )
    s.add_argument(
        "--format",
        choices=["csv", "conll", "jsonl"],
        help="NER: the format written, never another. Default: the one the --out extension names "
        "(.conll, .jsonl), else the upload's. The upload's own format keeps every byte but the "
        'verified tags; jsonl from CoNLL: {"tokens", "tags"} lines (other columns dropped); '
        "conll from JSONL: token TAB tag lines, a blank line between sentences (refused, exit 2, "
        "when a token is empty or holds whitespace); csv: one row per sentence",
    )
    s = add("versions", "list the versions (exports) of a dataset: number, when, who, kind, rows, sha256")
    s.add_argument("name")
    s = add("diff", "compare two versions (labels changed, classes moved, counts, flags) or two runs of a dataset")
    s.add_argument("name")
    which = s.add_mutually_exclusive_group(required=True)
    which.add_argument("--versions", nargs=2, type=int, metavar=("A", "B"), help="version numbers (review versions)")
    which.add_argument("--runs", nargs=2, type=int, metavar=("A", "B"), help="run ids")
    s = add("relabel", "rename, merge or add a label of a text dataset (versioned; the upload is kept as it is)")
    s.add_argument("name")
    change = s.add_mutually_exclusive_group(required=True)
    change.add_argument("--rename", metavar="OLD=NEW", help="give the label OLD the name NEW")
    change.add_argument("--merge", metavar="LABEL=INTO", help="fold LABEL into INTO (LABEL leaves the label set)")
    change.add_argument("--add", metavar="LABEL", help="add a new label at the end of the label set")
    s.add_argument("--user", required=True, help="the lead making the change (an active account)")
    s.add_argument("--dry-run", action="store_true", help="print the preview only: change nothing")
    s = add("users", "manage accounts")
    us = s.add_subparsers(dest="users_cmd", required=True)
    a = us.add_parser("add")
    a.add_argument("user")
    a.add_argument("--role", required=True, choices=list(auth.ROLES))
    a.add_argument("--password-stdin", action="store_true")
    a.add_argument("--db", default=argparse.SUPPRESS)
    l = us.add_parser("list")
    l.add_argument("--db", default=argparse.SUPPRESS)
    s = add("verify-trail", "check the audit trail's hash chain, its seals (HMAC) and its anchor")
    s.add_argument(
        "--new-key",
        action="store_true",
        help="the trail key is lost (or the database was put back from a copy older than it): start a new "
        "keyed chain at the next row, recorded in the trail; the rows before it keep the hash chain only",
    )
    s = add("backup", "consistent copy of the database while others work")
    s.add_argument("path")
    add("demo", "load and audit the built-in demo dataset")
    s = add(
        "bulk",
        "bulk fix by pattern: start (a set and a label; a random sample drawn), decide the sample, apply to the "
        "rest of the set in one action, undo it; without an action flag, show the sample and its precision",
    )
    s.add_argument("name")
    s.add_argument("--user", help="the account acting (a lead to start, apply, undo or cancel; anyone to --decide)")
    s.add_argument("--given", help="start: the set is a confusion pair, rows given this label ...")
    s.add_argument("--predicted", help="... that the latest run predicts as this label (flagged rows only)")
    s.add_argument("--include-unflagged", action="store_true", help="start: the pair's unflagged rows too")
    s.add_argument("--filter", help="start: the set as a RowFilter JSON (review.browse), instead of a pair")
    s.add_argument("--label", help="start: the label every row of the set gets (default: --predicted)")
    s.add_argument("--sample", type=int, default=20, help="start: rows in the sample (default 20)")
    s.add_argument("--seed", type=int, help="start: the sample's random seed (default: a random one, recorded)")
    s.add_argument("--action", type=int, help="the bulk action (default: the newest still sampling)")
    s.add_argument(
        "--decide",
        action="append",
        metavar="ROW=wrong|right",
        help="decide a sample row (repeatable): wrong relabels it to the label, right keeps it",
    )
    s.add_argument(
        "--apply",
        action="store_true",
        help="apply to the rest of the set; refused until every sample row is decided (there is no way around"
        " the sample)",
    )
    s.add_argument("--approve", action="store_true", help="with --apply: approve now instead of verification")
    s.add_argument("--undo", type=int, metavar="ID", help="undo an applied bulk action")
    s.add_argument("--cancel", type=int, metavar="ID", help="drop a bulk action still sampling")
    s.add_argument("--list", action="store_true", help="list the dataset's bulk actions")
    return p


COMMANDS = {
    "ingest": cmd_ingest,
    "audit": cmd_audit,
    "leakage": cmd_leakage,
    "selfcheck": cmd_selfcheck,
    "suspects": cmd_suspects,
    "annotators": cmd_annotators,
    "judge": cmd_judge,
    "export": cmd_export,
    "versions": cmd_versions,
    "diff": cmd_diff,
    "relabel": cmd_relabel,
    "users": cmd_users,
    "verify-trail": cmd_verify_trail,
    "backup": cmd_backup,
    "demo": cmd_demo,
    "bulk": cmd_bulk,
}


CREATES_DB = {"ingest", "demo", "users"}
WRITES = {
    "ingest",
    "audit",
    "leakage",
    "selfcheck",
    "judge",
    "export",
    "relabel",
    "users",
    "demo",
    "bulk",
}  # refused up front on a read-only database


def _writable(path: str) -> None:
    parent = Path(path).resolve().parent
    if not parent.is_dir():
        raise ReviewError(f"Cannot write {path}: the folder {parent} does not exist. Create it or choose another path.")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        for attr in ("out", "audit_trail", "path"):
            if getattr(args, attr, None):
                _writable(getattr(args, attr))
        db = store.connect(
            args.db,
            must_exist=args.cmd not in CREATES_DB,
            writable=args.cmd in WRITES and getattr(args, "users_cmd", None) != "list",
        )
        return COMMANDS[args.cmd](db, args)
    except ReviewError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except sqlite3.Error as exc:  # a write outside store.transaction: the same messages (full disk, read-only, …)
        err = store.storage_error(exc, args.path if args.cmd == "backup" else store.db_path(args.db))
        if err is None:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    except RecursionError:  # a cell nested deeper than Python's json reads (JSON lines are refused by line before)
        if args.cmd != "ingest":
            raise
        print(
            f"error: {args.file} holds a value nested too deeply to read (lists or objects inside each other, such as "
            "an embedding cell of [[[[…]]]]): flatten it so that each cell is text, a number or a list of numbers, "
            "and try again. Nothing was written.",
            file=sys.stderr,
        )
        return 2
    except OSError as exc:
        print(f"error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
