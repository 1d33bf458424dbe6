"""NER datasets in SQLite: write an uploaded corpus, read it back, score an audit run,
the swaps among suspects, and the cleaned corpus for export.

One item per sentence (idx = 0-based sentence number in upload order, -DOCSTART- lines
are not sentences). items.tokens and items.given_tags hold JSON lists; items.given_label
holds the given tags as canonical JSON (:func:`canon`), so the review and verify state
machine treats a sentence's whole tag sequence as its label: a correction is the new
tag sequence, valid in the dataset's scheme. The uploaded bytes are kept in ``sources``
so the export rewrites only the tag column and keeps every other byte.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import sqlite_utils

from review import ner, store
from review.auth import User, require_active
from review.datasets import Dataset, Mapping, insert_dataset, latest_run, log_upload
from review.errors import IngestError, ReviewError

Progress = Callable[[float, str], None]
CONLL_EXTENSIONS = (
    ".conll",
    ".conllu",
    ".conll03",
    ".iob",
    ".iob1",
    ".iob2",
    ".bio",
    ".bioes",
    ".train",
    ".testa",
    ".testb",
    ".dev",
    ".test",
)
RELABEL_CONFIDENCE = 0.8  # every flagged token of a sentence predicted at least this sure -> "relabel"
BATCH = 5000


def canon(tags: Sequence[str]) -> str:
    """Tags (n,) -> the canonical JSON stored as a sentence's label."""
    return json.dumps(list(tags), ensure_ascii=False, separators=(",", ":"))


def looks_like_ner(data: bytes, filename: str) -> bool:
    """Is this upload token-tagged (CoNLL, or JSONL with "tokens")? By extension, else by its first line."""
    name = filename.lower().rsplit("/", 1)[-1]
    if name.endswith(CONLL_EXTENSIONS):
        return True
    head = data[:20_000].decode("utf-8", errors="replace").lstrip("\ufeff")
    first = next((line.strip() for line in head.splitlines() if line.strip()), "")
    if name.endswith((".jsonl", ".ndjson", ".json")):
        try:
            rec = json.loads(first)
        except (ValueError, RecursionError):  # broken or nested too deep: read_table says which line
            return False
        return isinstance(rec, dict) and "tokens" in rec
    if name.endswith(".txt") or "." not in name:
        return first.startswith("-DOCSTART-") or (
            len(first.split()) >= 2 and "," not in first and "\t" not in first and len(first.split()[0]) < 40
        )
    return False


def read_corpus(data: bytes, filename: str) -> ner.Corpus:
    """Uploaded bytes -> Corpus (JSONL by extension, else CoNLL). IngestError names the file and line."""
    from review.text.ingest import MAX_CELLS, check_json_depth, decode_upload, too_many_cells

    # decode_upload refuses more than MAX_DECODED_BYTES; cells are bounded here, before parsing
    text = decode_upload(data, filename, keep_bom=True)  # the BOM stays: the export writes the file back byte for byte
    if filename.lower().endswith((".jsonl", ".ndjson", ".json")):
        # JSON values (tokens, tags, probabilities) <= commas + arrays + objects
        cells = text.count(",") + text.count("[") + text.count("{")
        if cells > MAX_CELLS:
            raise too_many_cells(filename, cells)
        for lineno, line in enumerate(
            text.split("\n"), start=1
        ):  # as parse_jsonl numbers them; json.loads would recurse past the stack
            check_json_depth(line, filename, lineno)
        try:
            return ner.parse_jsonl(text, filename)
        except RecursionError:  # not nested too deep, but the stack was deep already
            raise IngestError(
                f"{filename} is nested too deeply to read (lists or objects inside each other): "
                "flatten its lines and upload again."
            ) from None
    # CoNLL: every token line has as many fields as the first (parse_conll enforces it)
    first = next(
        (ln for ln in io.StringIO(text) if ln.strip() and not ln.lstrip("\ufeff").startswith("-DOCSTART-")), ""
    )
    cells = (text.count("\n") + 1) * max(len(first.split()), 1)
    if cells > MAX_CELLS:
        raise too_many_cells(filename, cells)
    return ner.parse_conll(text, filename)


def entity_types(ds: Dataset) -> list[str]:
    """The dataset's entity types (PER, ORG, …), sorted."""
    return sorted({t[2:] for t in ds.labels if t != "O"})


def tag_options(ds: Dataset) -> list[str]:
    """Every tag an annotator may choose: O and each prefix of the scheme for each entity type."""
    scheme = ds.mapping.scheme
    prefixes = {"IOB1": "IB", "IOB2": "BI", "BIOES": "BIES"}[scheme]
    return ["O"] + [f"{p}-{t}" for t in entity_types(ds) for p in prefixes]


def write_ner_dataset(
    db: sqlite_utils.Database, corpus: ner.Corpus, data: bytes, name: str, user: User, progress: Progress | None = None
) -> int:
    """Dataset (task 'ner') + one item per sentence + the uploaded bytes + an audit row, in one transaction."""
    import hashlib

    from review.text.ingest import check_name

    require_active(db, user, "lead", "upload datasets")
    name = check_name(name)
    tags_seen = sorted({t for s in corpus.sentences for t in s.tags})
    if len(corpus.sentences) < 2:
        raise IngestError(f"{corpus.filename}: only one sentence; label-error detection needs at least two.")
    if not corpus.entity_types:
        raise IngestError(
            f"{corpus.filename}: every tag is O, so there is no entity to check. Map the file's tag column "
            "(the last column of a CoNLL file) or upload a tagged file."
        )
    mapping = Mapping(
        format=corpus.format,
        scheme=corpus.scheme,
        n_columns=corpus.n_columns,
        prob_tags=list(corpus.prob_tag_names or []),
    )
    n = len(corpus.sentences)
    keys = [s.id if s.id is not None else str(i) for i, s in enumerate(corpus.sentences)]
    if len(set(keys)) != n:
        seen: set[str] = set()
        dup = next(k for k in keys if k in seen or seen.add(k))
        raise IngestError(f"{corpus.filename}: the id {dup!r} is on more than one line. Make ids unique.")
    with store.transaction(db):
        sha256 = hashlib.sha256(data).hexdigest()
        ds = insert_dataset(db, name, "ner", tags_seen, False, mapping, n, corpus.filename, sha256, user.name)
        for start in range(0, n, BATCH):
            stop = min(n, start + BATCH)
            rows = []
            for i in range(start, stop):
                s = corpus.sentences[i]
                probs = None if s.pred_probs is None else json.dumps(np.round(s.pred_probs, 5).tolist())
                rows.append(
                    (
                        ds,
                        i,
                        keys[i],
                        " ".join(s.tokens),
                        canon(s.tokens),
                        canon(s.tags),
                        canon(s.tags),
                        json.dumps({"doc": s.doc, "line": s.start_line}),
                        probs,
                    )
                )
            db.conn.executemany(
                "INSERT INTO items(dataset_id, idx, key, text, tokens, given_tags, given_label, meta, probs) VALUES (?,?,?,?,?,?,?,?,?)",
                rows,
            )
            if progress:
                progress(stop / n, f"Stored {stop:,} of {n:,} sentences")
        db.execute("INSERT INTO sources(dataset_id, content) VALUES (?, ?)", [ds, data])
        log_upload(
            db,
            user.name,
            ds,
            name,
            corpus.filename,
            sha256,
            task="ner",
            sentences=n,
            tokens=corpus.n_tokens,
            scheme=corpus.scheme,
            format=corpus.format,
            entity_types=corpus.entity_types,
        )
    return ds


def load_given(db: sqlite_utils.Database, ds: Dataset) -> ner.Corpus:
    """The uploaded sentences with their given tags, documents and own probabilities (no file lines)."""
    sentences = []
    for tokens, tags, meta, probs, key in db.execute(
        "SELECT tokens, given_tags, meta, probs, key FROM items WHERE dataset_id=? ORDER BY idx", [ds.id]
    ):
        m = json.loads(meta)
        sentences.append(
            ner.Sentence(
                json.loads(tokens),
                json.loads(tags),
                [],
                m.get("doc", 0),
                m.get("line", 1),
                key,
                None if probs is None else np.asarray(json.loads(probs)),
            )
        )
    return ner.Corpus(
        sentences,
        ds.mapping.scheme,
        -1,
        0,
        entity_types(ds),
        ds.source_name or "",
        ds.mapping.format or "conll",
        prob_tag_names=ds.mapping.prob_tags or None,
    )


def given_probs_iob2(corpus: ner.Corpus) -> tuple[list[np.ndarray], list[str]]:
    """The upload's own per-token probabilities over IOB2 tags: columns of tags of another scheme
    are summed into their IOB2 counterpart (S-X -> B-X, E-X -> I-X; IOB1 tags keep their name)."""
    names = list(corpus.prob_tag_names)
    to2 = [t if t == "O" else ({"S": "B", "E": "I"}.get(t[0], t[0]) + t[1:]) for t in names]
    out_names = sorted(set(to2) | {t for s in corpus.sentences for t in ner.to_iob2(s.tags, corpus.scheme)})
    col = {t: k for k, t in enumerate(out_names)}
    M = np.zeros((len(names), len(out_names)))
    for j, t in enumerate(to2):
        M[j, col[t]] = 1.0
    probs = []
    for s in corpus.sentences:
        P = np.asarray(s.pred_probs, dtype=np.float64) @ M
        P = np.clip(P, 1e-9, None)
        probs.append(P / P.sum(axis=1, keepdims=True))
    return probs, out_names


def flagged_spans(positions: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted token positions -> contiguous runs [(start, end_exclusive)]."""
    runs: list[tuple[int, int]] = []
    for p in sorted(positions):
        if runs and p == runs[-1][1]:
            runs[-1] = (runs[-1][0], p + 1)
        else:
            runs.append((p, p + 1))
    return runs


def accept_span(tags: Sequence[str], predicted: Sequence[str], start: int, end: int, scheme: str) -> list[str]:
    """tags (n,) with the model's tags on positions [start, end), repaired to a valid sequence
    in ``scheme`` (the entity the span touches is re-read as the model tags it)."""
    out = list(tags)
    out[start:end] = list(predicted[start:end])
    return ner.from_iob2(ner.to_iob2(out, scheme), scheme)


@dataclass
class ScoredRun:
    """What score_run found, ready to write: scores rows (one per sentence), token_issues rows
    (one per flagged token), and the run's metrics."""

    scores: list[tuple]
    tokens: list[tuple]
    metrics: dict

    def write(self, db: sqlite_utils.Database) -> None:
        """Insert the rows; the caller holds the transaction (with the run's status)."""
        for start in range(0, len(self.scores), BATCH):
            db.conn.executemany(
                "INSERT INTO scores(run_id, idx, quality, predicted_label, confidence, suggested_label, is_issue, rank, trust, action, reason, probs)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                self.scores[start : start + BATCH],
            )
        db.conn.executemany(
            "INSERT INTO token_issues(run_id, idx, token, text, given_tag, predicted_tag, confidence, quality, reason)"
            " VALUES (?,?,?,?,?,?,?,?,?)",
            self.tokens,
        )


def score_run(
    run_id: int,
    corpus: ner.Corpus,
    probs: Sequence[np.ndarray],
    tag_names: Sequence[str],
    progress: Progress,
    consistency: ner.TagConsistency | bool = True,
) -> ScoredRun:
    """cleanlab token issues of ``probs`` (n_sent,) arrays (n_tokens_i, K), fused with tag
    inconsistency (ner.find_issues) -> the scores (one row per sentence) and token_issues (one row
    per flagged token) of run ``run_id``, not yet written."""
    progress(0.0, "Ranking suspect tokens with cleanlab and tag consistency")
    res = ner.find_issues(corpus, probs, tag_names, consistency=consistency)
    n = len(corpus.sentences)
    by_sent: dict[int, list[int]] = {}
    for i, j in res.flagged:
        by_sent.setdefault(i, []).append(j)
    quality = res.sentence_quality
    is_issue = np.zeros(n, dtype=bool)
    is_issue[list(by_sent)] = True
    order = np.lexsort((np.arange(n), quality, ~is_issue))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(1, n + 1)
    scheme = corpus.scheme
    score_rows, token_rows = [], []
    actions = {"relabel": 0, "needs review": 0}
    for i, s in enumerate(corpus.sentences):
        pred, conf, tq = res.predicted[i], res.confidence[i], res.token_quality[i]
        flagged = sorted(by_sent.get(i, []))
        suggestion = list(s.tags)
        for a, b in flagged_spans(flagged):
            suggestion = accept_span(suggestion, pred, a, b, scheme)
        reasons = [f"token {j} {s.tokens[j]!r}: {res.reasons[(i, j)]}" for j in flagged]
        violation = any("not valid" in res.reasons[(i, j)] for j in flagged)
        if flagged:
            sure = all(conf[j] >= RELABEL_CONFIDENCE for j in flagged) and not violation and suggestion != list(s.tags)
            action = "relabel" if sure else "needs review"
            actions[action] += 1
        else:
            action = "keep"
        view = {
            "predicted": pred,
            "confidence": [round(float(c), 3) for c in conf],
            "token_quality": [round(float(q), 4) for q in tq],
            "flagged": flagged,
        }
        score_rows.append(
            (
                run_id,
                i,
                float(quality[i]),
                canon(pred),
                float(min((conf[j] for j in flagged), default=conf.min() if len(conf) else 1.0)),
                canon(suggestion),
                int(is_issue[i]),
                int(rank[i]),
                float(quality[i]),
                action,
                "; ".join(reasons) or None,
                json.dumps(view, ensure_ascii=False),
            )
        )
        for j in flagged:
            token_rows.append(
                (run_id, i, j, s.tokens[j], s.tags[j], pred[j], float(conf[j]), float(tq[j]), res.reasons[(i, j)])
            )
    acc = ner.token_accuracy(corpus, probs, tag_names)
    return ScoredRun(
        score_rows,
        token_rows,
        {
            "rows": n,
            "sentences": n,
            "tokens": corpus.n_tokens,
            "flagged": int(is_issue.sum()),
            "flagged tokens": len(token_rows),
            "relabel": actions["relabel"],
            "needs review": actions["needs review"],
            "model agreement with given labels": round(acc, 4),
        },
    )


def flagged_tokens(db: sqlite_utils.Database, ds: Dataset, idxs: Sequence[int]) -> dict[int, list[int]]:
    """The flagged token positions of the latest run for the sentences ``idxs``: {sentence idx: [token, …]},
    ascending; a sentence without one is absent, and so is every sentence before the first run."""
    run = latest_run(db, ds.id)
    out: dict[int, list[int]] = {}
    if run:
        for start in range(0, len(idxs), 500):
            part = list(idxs[start : start + 500])
            for idx, tok in db.execute(
                f"SELECT idx, token FROM token_issues WHERE run_id=? AND idx IN ({','.join('?' * len(part))}) ORDER BY idx, token",
                [run["id"], *part],
            ):
                out.setdefault(idx, []).append(tok)
    return out


def swaps(db: sqlite_utils.Database, ds: Dataset, limit: int = 30, examples: int = 5) -> list[dict]:
    """(given tag -> predicted tag) among the flagged tokens of the latest run, most frequent first,
    with the most frequent tokens behind each swap and the number of sentences."""
    run = latest_run(db, ds.id)
    if not run:
        return []
    rows = db.execute(
        "SELECT given_tag, predicted_tag, COUNT(*), COUNT(DISTINCT idx) FROM token_issues WHERE run_id=? AND given_tag != predicted_tag"
        " GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT ?",
        [run["id"], limit],
    ).fetchall()
    words: dict[tuple[str, str], list[str]] = {}
    for given, pred, text in db.execute(  # every swap's most frequent tokens, in one query
        "SELECT given_tag, predicted_tag, text FROM (SELECT given_tag, predicted_tag, text, ROW_NUMBER() OVER"
        " (PARTITION BY given_tag, predicted_tag ORDER BY COUNT(*) DESC, text) AS k FROM token_issues"
        " WHERE run_id=? AND given_tag != predicted_tag GROUP BY 1, 2, 3) WHERE k <= ? ORDER BY 1, 2, k",
        [run["id"], examples],
    ):
        words.setdefault((given, pred), []).append(text)
    return [
        {
            "given_tag": g,
            "predicted_tag": p,
            "tokens": n,
            "sentences": n_sent,
            "examples": ", ".join(words.get((g, p), [])),
        }
        for g, p, n, n_sent in rows
    ]


def check_tags(ds: Dataset, n_tokens: int, tags: Sequence[str]) -> str:
    """A proposed tag sequence -> its canonical JSON; ReviewError naming the token that breaks the scheme."""
    tags = [str(t).strip() for t in tags]
    if len(tags) != n_tokens:
        raise ReviewError(
            f"The sentence has {n_tokens} tokens but {len(tags)} tags were given: give one tag per token."
        )
    allowed = set(tag_options(ds))
    for j, t in enumerate(tags):
        if t not in allowed and t not in ds.labels:
            raise ReviewError(
                f"Token {j}: {t!r} is not a tag of this dataset ({ds.mapping.scheme}); choose one of "
                f"{', '.join(sorted(allowed)[:20])}."
            )
    ner.validate(tags, ds.mapping.scheme)
    return canon(tags)


def cleaned_tags(db: sqlite_utils.Database, ds: Dataset) -> list[list[str]]:
    """Per sentence (n_sent,): the verified tags (approved or overridden), else the given tags."""
    out = []
    for given, current in db.execute(
        "SELECT i.given_tags, st.current_label FROM items i LEFT JOIN states st ON st.dataset_id=i.dataset_id AND st.idx=i.idx"
        " WHERE i.dataset_id=? ORDER BY i.idx",
        [ds.id],
    ):
        out.append(json.loads(current or given))
    return out


def source_corpus(db: sqlite_utils.Database, ds: Dataset) -> ner.Corpus:
    """The uploaded file parsed again (its lines, for a byte-for-byte export)."""
    data = store.scalar(db, "SELECT content FROM sources WHERE dataset_id=?", [ds.id])
    if data is None:
        raise ReviewError(f"Dataset {ds.name!r} has no stored source file to rewrite.")
    return read_corpus(bytes(data), ds.source_name or "upload")


def export_conll(db: sqlite_utils.Database, ds: Dataset) -> str:
    """The cleaned corpus in the upload's format, scheme and columns (only tag columns change)."""
    corpus = source_corpus(db, ds)
    tags = cleaned_tags(db, ds)
    if corpus.format == "jsonl":
        return ner.write_jsonl(corpus, tags)
    return ner.write_conll(corpus, tags)


def export_jsonl(db: sqlite_utils.Database, ds: Dataset) -> str:
    """The cleaned corpus as JSON lines {"tokens", "tags"} (plus "id" when the upload had ids)."""
    return ner.write_jsonl(source_corpus(db, ds), cleaned_tags(db, ds))
