"""Cleaned labels and annotator tables as CSV (the audit trail's own CSV: review.trail.export), streamed in pages (never the whole table in memory)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import sqlite_utils

from review import store, trail
from review.auth import User, require_active
from review.datasets import Dataset, latest_run
from review.errors import ReviewError

CLEANED_COLUMNS = [
    "id",
    "text",
    "given_label",
    "cleaned_label",
    "proposed_label",
    "status",
    "reviewer",
    "verified_by",
    "self_approved",
    "excluded",
    "ambiguous",
    "quality",
    "rank",
]
CONSENSUS_COLUMNS = ["consensus_label", "consensus_quality", "n_annotators"]  # multi-annotator datasets add these


def cleaned_columns(ds: Dataset) -> list[str]:
    return CLEANED_COLUMNS + (CONSENSUS_COLUMNS if ds.mapping.multi else [])


PAGE = 5000
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value) -> str:
    """A cell a spreadsheet shows as text: one that starts like a formula gets a leading '.
    For files meant for spreadsheets only: it changes the value (an id -5 becomes '-5)."""
    if value is None:
        return ""
    s = str(value)
    return "'" + s if s.startswith(FORMULA_START) else s


def cleaned_rows(db: sqlite_utils.Database, ds: Dataset, only_verified: bool = False) -> Iterator[list]:
    """Rows of the cleaned CSV in item order (see cleaned_rows_indexed)."""
    for _idx, row in cleaned_rows_indexed(db, ds, only_verified):
        yield row


def cleaned_rows_indexed(
    db: sqlite_utils.Database, ds: Dataset, only_verified: bool = False
) -> Iterator[tuple[int, list]]:
    """(row number, row of the cleaned CSV) in item order, read PAGE rows at a time (keyset on idx).

    status: unreviewed (no decision in force) | kept | relabelled | unsure | excluded | ambiguous (awaiting
    verification) | approved | overridden.
    cleaned_label: the latest approved label (an approved keep: the label the reviewer kept, the
    given one), else (multi-annotator data) the consensus of the annotators, else the given label
    (for multi-annotator data, the majority vote). A decision awaiting verification never changes it.
    The decision in force is the row's latest one that is pending, approved or overridden, while the
    row is not open (a rejected decision sends the row back to open: none is then in force).
    proposed_label: the label the decision in force proposes while it awaits verification (a relabel:
    its new label; a keep: the label kept; unsure: none). reviewer: its author. verified_by: the lead
    who approved or overrode it (empty while pending). self_approved: yes when that lead is its author
    (the dataset allows self-approval), no when someone else verified it, empty otherwise.
    excluded: yes when an approved decision excluded the row from training (its label stays); ambiguous: yes
    when an approved decision kept it as ambiguous (with a note); empty otherwise (a pending one shows in status).
    """
    run = latest_run(db, ds.id)
    run_id = run["id"] if run else -1
    multi = ds.mapping.multi
    from review import taxonomy

    names = taxonomy.label_map(db, ds) if multi and ds.task == "text" and taxonomy.version(db, ds) else None
    last = -1
    cond = " AND st.state IN ('approved', 'overridden')" if only_verified else ""
    while True:
        rows = db.execute(
            "SELECT i.idx, i.key, i.text, i.given_label, CASE WHEN st.state IN ('approved', 'overridden')"
            " THEN COALESCE(st.current_label, i.given_label) ELSE COALESCE(st.current_label, sc.consensus_label, i.given_label) END,"
            " COALESCE(NULLIF(st.state, 'open'), 'unreviewed'),"
            " r.reviewer, CASE WHEN r.status IN ('approved', 'overridden') THEN r.verified_by END,"
            " sc.quality, sc.rank, sc.consensus_label, sc.n_annotators,"
            " CASE WHEN r.status='pending' THEN CASE r.decision WHEN 'relabel' THEN r.new_label"
            " WHEN 'keep' THEN COALESCE(st.current_label, i.given_label) WHEN 'exclude' THEN COALESCE(st.current_label,"
            " i.given_label) WHEN 'ambiguous' THEN COALESCE(st.current_label, i.given_label) END END,"
            " CASE WHEN r.status IN ('approved', 'overridden') THEN CASE WHEN r.verified_by=r.reviewer THEN 'yes' ELSE 'no' END END,"
            " CASE WHEN st.excluded=1 THEN 'yes' END, CASE WHEN st.ambiguous=1 THEN 'yes' END"
            " FROM items i LEFT JOIN states st ON st.dataset_id=i.dataset_id AND st.idx=i.idx"
            " LEFT JOIN scores sc ON sc.run_id=? AND sc.idx=i.idx"
            " LEFT JOIN reviews r ON r.id = CASE WHEN st.state IS NOT NULL AND st.state != 'open' THEN"
            " (SELECT r2.id FROM reviews r2 WHERE r2.dataset_id=i.dataset_id AND r2.idx=i.idx"
            " AND r2.status IN ('pending', 'approved', 'overridden') ORDER BY r2.id DESC LIMIT 1) END"
            f" WHERE i.dataset_id=? AND i.idx>?{cond} ORDER BY i.idx LIMIT ?",
            [run_id, ds.id, last, PAGE],
        ).fetchall()
        if not rows:
            return
        for r in rows:
            quality = None if r[8] is None else round(r[8], 6)
            cleaned, consensus = r[4], r[10]
            if names and consensus is not None:  # a run from before a label-set change: its consensus, named now
                consensus = names.get(consensus, consensus)
                if r[5] not in ("approved", "overridden") and cleaned in (r[10], names.get(r[3], r[3])):
                    cleaned = consensus  # the change stored the renamed given label: the consensus still wins
            row = [r[1], r[2], r[3], cleaned, r[12], r[5], r[6], r[7], r[13], r[14], r[15], quality, r[9]]
            yield r[0], (row + [consensus, quality, r[11]] if multi else row)
        last = rows[-1][0]


def self_approved_count(db: sqlite_utils.Database, ds: Dataset) -> int:
    """Verified decisions whose verifier is their author (allowed only by the dataset's
    allow_self_approval setting; the CSV marks their rows self_approved = yes)."""
    return store.scalar(
        db,
        "SELECT COUNT(*) FROM reviews WHERE dataset_id=? AND status IN ('approved', 'overridden')"
        " AND verified_by=reviewer",
        [ds.id],
    )


def csv_chunks(header: list[str], rows: Iterator[list], spreadsheet_safe: bool = True) -> Iterator[str]:
    """CSV text chunks. spreadsheet_safe: every cell through safe_cell (a file for a spreadsheet),
    else every cell as stored (a file for a pipeline)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    n = 0
    for row in rows:
        # as stored: the csv module writes None as an empty cell and a number as str() does
        w.writerow([safe_cell(v) for v in row] if spreadsheet_safe else row)
        n += 1
        if n % 2000 == 0:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


def export_cleaned(
    db: sqlite_utils.Database, ds: Dataset, user: User, only_verified: bool = False, *, spreadsheet_safe: bool = False
) -> Iterator[str]:
    """The cleaned CSV as text chunks: every cell as stored, or with spreadsheet_safe the formula
    guard (safe_cell) for a file opened in a spreadsheet. Logged in the audit trail. Leads only."""
    require_active(db, user, "lead", "export")
    waiting = store.scalar(db, "SELECT COUNT(*) FROM reviews WHERE dataset_id=? AND status='pending'", [ds.id])
    trail.log(
        db,
        user.name,
        "export",
        ds.id,
        what="cleaned labels",
        only_verified=only_verified,
        awaiting_verification=waiting,
        spreadsheet_safe=spreadsheet_safe,
    )
    return csv_chunks(cleaned_columns(ds), cleaned_rows(db, ds, only_verified), spreadsheet_safe)


ANNOTATOR_COLUMNS = ["annotator", "quality", "agreement", "worst_class", "n_labels"]


def export_annotators(db: sqlite_utils.Database, ds: Dataset, user: User) -> Iterator[str]:
    """The annotator table of the latest run as CSV chunks (ANNOTATOR_COLUMNS; with a golden set,
    gold_accuracy and gold_labels after quality, as annotators.annotator_table gives them)."""
    from review.crowd.annotators import GOLD_COLUMNS, annotator_table

    require_active(db, user, "lead", "export")
    trail.log(db, user.name, "export", ds.id, what="annotator table")
    rows = annotator_table(db, ds)
    cols = (
        ANNOTATOR_COLUMNS[:2] + GOLD_COLUMNS + ANNOTATOR_COLUMNS[2:]
        if rows and "gold_accuracy" in rows[0]
        else ANNOTATOR_COLUMNS
    )
    return csv_chunks(cols, ([r[c] for c in cols] for r in rows))


NER_FORMATS = ("conll", "jsonl")


def ner_native_format(ds: Dataset) -> str:
    """The format of the NER upload: 'jsonl' or 'conll'."""
    return "jsonl" if ds.mapping.format == "jsonl" else "conll"


def export_ner(db: sqlite_utils.Database, ds: Dataset, user: User, fmt: str | None = None) -> str:
    """NER: the cleaned corpus in the format asked for, never another one. fmt None: the upload's.
    The upload's own format keeps every byte but the verified tags (CoNLL: its scheme and columns;
    JSONL: its lines and keys). 'jsonl' from CoNLL: one {"tokens", "tags"} line per sentence (other
    columns and -DOCSTART- lines are not carried). 'conll' from JSONL: token TAB tag lines, a blank
    line after each sentence, a -DOCSTART- line where "doc" changes; refused (ReviewError) when a
    token cannot be a CoNLL column (empty, holds whitespace, is -DOCSTART-). Logged. Leads only."""
    from review.ner import store as ner_store

    require_active(db, user, "lead", "export")
    native = ner_native_format(ds)
    fmt = fmt or native
    if fmt not in NER_FORMATS:
        raise ReviewError(f"A NER corpus exports as {' or '.join(NER_FORMATS)} (or its sentences as csv), not {fmt!r}.")
    if fmt == native:
        text = ner_store.export_conll(db, ds)  # the upload's format, byte for byte but the tags
    elif fmt == "jsonl":
        text = ner_store.export_jsonl(db, ds)
    else:
        text = _jsonl_as_conll(ds, ner_store.source_corpus(db, ds), ner_store.cleaned_tags(db, ds))
    trail.log(db, user.name, "export", ds.id, what=f"cleaned corpus ({fmt})")
    return text


def _conll_token_problem(tok: str) -> str | None:
    from review.ner import DOCSTART

    if tok == "":
        return "is empty"
    if tok.split() != [tok]:
        return "holds whitespace (CoNLL columns are whitespace-separated)"
    if tok == DOCSTART:
        return f"is {DOCSTART}, which CoNLL reads as a document break"
    return None


def _jsonl_as_conll(ds: Dataset, corpus, tags: list[list[str]]) -> str:
    """A JSONL corpus as two-column CoNLL (token TAB tag); ReviewError when a token cannot be one."""
    from review.ner import DOCSTART, parse_conll

    out: list[str] = []
    prev_doc = corpus.sentences[0].doc if corpus.sentences else 0
    for s, t in zip(corpus.sentences, tags):
        for j, tok in enumerate(s.tokens):
            why = _conll_token_problem(tok)
            if why:
                where = f"sentence {s.id!r} (line {s.start_line})" if s.id is not None else f"line {s.start_line}"
                raise ReviewError(
                    f"{ds.name!r} cannot be written as CoNLL: in {where}, token {j} {tok!r} {why}. "
                    "Export it as JSONL (its upload format) or as CSV instead."
                )
        if s.doc != prev_doc:
            out.append(f"{DOCSTART}\tO\n\n")
            prev_doc = s.doc
        out.append("".join(f"{tok}\t{tag}\n" for tok, tag in zip(s.tokens, t)) + "\n")
    text = "".join(out)
    back = parse_conll(text, "export") if text else None  # the file must read back as the same sentences
    if back is None or [(b.tokens, b.tags) for b in back.sentences] != [
        (s.tokens, list(t)) for s, t in zip(corpus.sentences, tags)
    ]:
        raise ReviewError(
            f"{ds.name!r} cannot be written as CoNLL: the file would not read back as the same "
            "tokens and tags. Export it as JSONL (its upload format) or as CSV instead."
        )
    return text


def write_file(chunks: Iterator[str], path: str) -> int:
    """Write CSV chunks to ``path``; returns the number of characters written."""
    n = 0
    with open(path, "w", encoding="utf-8", newline="") as f:
        for c in chunks:
            f.write(c)
            n += len(c)
    return n
