"""Named-entity (token-level) label review: pure functions, no SQL, no streamlit.

* Files: :func:`parse_conll` / :func:`write_conll` (CoNLL columns, byte-for-byte round
  trip) and :func:`parse_jsonl` / :func:`write_jsonl` (one ``{"tokens", "tags"}`` per line).
* Tagging schemes IOB1, IOB2 and BIOES: :func:`to_iob2`, :func:`from_iob2`,
  :func:`entity_spans`, :func:`scheme_violations`, :func:`validate`.
* Suspects: :func:`token_probs` (out-of-sample per-token probabilities, cross-validated
  by document), :func:`find_issues` (cleanlab's token classification + scheme
  violations).
* Display: :func:`token_view_html`, :func:`legend_html` (every token HTML-escaped).

Positions are 0-based (sentence number, token number in the sentence); line numbers
in messages are 1-based, as an editor shows them.
"""
from __future__ import annotations

import hashlib
import html
import json
import re
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .errors import IngestError, ReviewError

Progress = Callable[[float, str], None]
SCHEMES = ("IOB1", "IOB2", "BIOES")
DOCSTART = "-DOCSTART-"
_TAG = re.compile(r"^(?:O|[BIES]-\S+)$")

# Token classifier (see token_probs). Tuned on CoNLL-2003 (benchmarks/ner_conll.py).
MIN_FEATURE_COUNT = 2     # a feature value seen once in the whole corpus cannot help another fold
SGD_ALPHA = 1e-5          # L2 penalty of the SGD logistic regression (one-vs-rest per IOB2 tag)
SGD_EPOCHS = 15           # passes over the training folds' tokens
# On eng.testa with injected errors, SGD(log_loss) ranks them as well as a multinomial
# lbfgs logistic regression and a CRF (python-crfsuite, same features) at a fifth of the time.


def _noop(fraction: float, message: str) -> None:
    pass


# ============================================================================ data

@dataclass
class Sentence:
    """One sentence. tokens, tags: (n_tokens,) strings, tags in the file's scheme;
    lines: the original lines (n_tokens,) byte for byte, without the line ending
    (for JSONL: the one JSON line); doc: document number (0-based, -DOCSTART- separated,
    0 if none); start_line: 1-based line number of its first token."""

    tokens: list[str]
    tags: list[str]
    lines: list[str]
    doc: int = 0
    start_line: int = 1
    id: str | None = None                       # JSONL "id", when given
    pred_probs: np.ndarray | None = None        # JSONL "pred_probs" (n_tokens, K), when given


@dataclass
class Corpus:
    """A parsed file. sentences (n_sent,); scheme 'IOB1'|'IOB2'|'BIOES'; tag_column: index of
    the tag column (= n_columns - 1; -1 for JSONL); n_columns (0 for JSONL); entity_types:
    sorted entity types seen. The other fields let write_conll / write_jsonl rebuild the file:
    other_lines {0-based line index: line} holds every line outside a sentence (blank,
    -DOCSTART-), eol the line ending ('\\n' or '\\r\\n', or a list per line when mixed)."""

    sentences: list[Sentence]
    scheme: str
    tag_column: int
    n_columns: int
    entity_types: list[str]
    filename: str = ""
    format: str = "conll"                       # 'conll' | 'jsonl'
    other_lines: dict[int, str] = field(default_factory=dict)
    n_lines: int = 0
    eol: str | list[str] = "\n"
    final_eol: bool = True                      # the text ends with a line ending
    bom: str = ""
    prob_tag_names: list[str] | None = None     # JSONL: class order of "pred_probs"

    @property
    def n_tokens(self) -> int:
        return sum(len(s.tokens) for s in self.sentences)


# ============================================================================ schemes

def _bad_tag_reason(tag: str, scheme: str | None = None) -> str | None:
    """Why ``tag`` is not a tag of ``scheme`` (any scheme when None), or None."""
    if not _TAG.match(tag):
        return (f"{tag!r} is not a tag: use O, or B-, I-" + ("" if scheme in ("IOB1", "IOB2") else ", E-, S-")
                + " followed by an entity type (e.g. B-PER)")
    if scheme in ("IOB1", "IOB2") and tag[0] in "ES":
        return f"{tag} is not an {scheme} tag (E- and S- belong to BIOES)"
    return None


def detect_scheme(tag_seqs: Sequence[Sequence[str]]) -> str:
    """Sentences' tags -> 'BIOES' if any S-/E- tag, else 'IOB1' if entities start with I-
    more often than B- starts an entity that does not follow one of its own type, else 'IOB2'."""
    iob1 = iob2 = 0
    for tags in tag_seqs:
        prev = "O"
        for t in tags:
            if t != "O":
                p = t[0]
                if p in "ES":
                    return "BIOES"
                same = prev != "O" and prev[2:] == t[2:]
                if p == "I" and not same:
                    iob1 += 1          # an I- that starts an entity: IOB1 only
                elif p == "B" and not same:
                    iob2 += 1          # a B- that starts an entity after O/another type: IOB2 only
            prev = t
    return "IOB1" if iob1 > iob2 else "IOB2"


def scheme_violations(tags: Sequence[str], scheme: str) -> list[tuple[int, str]]:
    """tags (n,) -> [(token position, reason)] for every tag that breaks ``scheme``.

    IOB2: an I-X must follow B-X or I-X. IOB1: a B-X must follow an X token (B- only
    separates adjacent entities of one type; I- after O is legal). BIOES: B-/I- must be
    followed by I-/E- of the same type, I-/E- must follow B-/I- of the same type.
    """
    _check_scheme(scheme)
    out: list[tuple[int, str]] = []
    n = len(tags)
    for i, t in enumerate(tags):
        bad = _bad_tag_reason(t, scheme)
        if bad:
            out.append((i, bad))
            continue
        if t == "O":
            continue
        p, typ = t[0], t[2:]
        prev = tags[i - 1] if i else None
        where = "at sentence start" if prev is None else f"after {prev}"
        prev_same = prev is not None and prev != "O" and prev[2:] == typ
        if scheme == "IOB2":
            if p == "I" and not prev_same:
                out.append((i, f"{t} {where} (an IOB2 entity starts with B-{typ})"))
        elif scheme == "IOB1":
            if p == "B" and not prev_same:
                out.append((i, f"{t} {where} (in IOB1, B- only separates two adjacent {typ} entities; "
                               f"an entity starts with I-{typ})"))
        else:  # BIOES
            if p in "IE" and not (prev_same and prev[0] in "BI"):
                out.append((i, f"{t} {where} (a BIOES entity starts with B-{typ} or is S-{typ})"))
            if p in "BI":
                nxt = tags[i + 1] if i + 1 < n else None
                if nxt is None or nxt == "O" or nxt[2:] != typ or nxt[0] not in "IE":
                    follow = "the sentence end" if nxt is None else nxt
                    out.append((i, f"{t} followed by {follow} (a BIOES entity ends with E-{typ}, "
                                   f"or is S-{typ} when one token long)"))
    return out


def validate(tags: Sequence[str], scheme: str) -> None:
    """Raise ReviewError naming the first token position(s) whose tag breaks ``scheme``."""
    bad = scheme_violations(tags, scheme)
    if bad:
        shown = "; ".join(f"token {i} ({tags[i]!r}): {why}" for i, why in bad[:3])
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise ReviewError(f"These tags are not valid {scheme}: {shown}{more}. Fix the tags and try again.")


def _check_scheme(scheme: str) -> None:
    if scheme not in SCHEMES:
        raise ValueError(f"Unknown tagging scheme {scheme!r}; use one of {', '.join(SCHEMES)}.")


def entity_spans(tags: Sequence[str], scheme: str) -> list[tuple[int, int, str]]:
    """tags (n,) -> [(start, end_exclusive, type)], in order. Invalid sequences are read
    leniently: an I-/E- whose type differs from the open entity starts a new one."""
    _check_scheme(scheme)
    spans: list[tuple[int, int, str]] = []
    start, typ = -1, None
    for i, t in enumerate(tags):
        if t == "O" or len(t) < 3 or t[1] != "-":
            if typ is not None:
                spans.append((start, i, typ))
                typ = None
            continue
        p, ty = t[0], t[2:]
        if p in "BS" or typ != ty:
            if typ is not None:
                spans.append((start, i, typ))
            start, typ = i, ty
        if scheme == "BIOES" and p in "ES":
            spans.append((start, i + 1, typ))
            typ = None
    if typ is not None:
        spans.append((start, len(tags), typ))
    return spans


def _spans_to_tags(spans: list[tuple[int, int, str]], n: int, scheme: str) -> list[str]:
    out = ["O"] * n
    prev_end, prev_type = -1, None
    for a, b, typ in spans:
        if scheme == "IOB2":
            out[a] = f"B-{typ}"
            for k in range(a + 1, b):
                out[k] = f"I-{typ}"
        elif scheme == "IOB1":
            first = "B" if (prev_end == a and prev_type == typ) else "I"
            out[a] = f"{first}-{typ}"
            for k in range(a + 1, b):
                out[k] = f"I-{typ}"
        else:
            if b - a == 1:
                out[a] = f"S-{typ}"
            else:
                out[a] = f"B-{typ}"
                for k in range(a + 1, b - 1):
                    out[k] = f"I-{typ}"
                out[b - 1] = f"E-{typ}"
        prev_end, prev_type = b, typ
    return out


def to_iob2(tags: Sequence[str], scheme: str) -> list[str]:
    """tags (n,) in ``scheme`` -> (n,) IOB2 tags. Exact for valid input; invalid input is
    repaired the way entity_spans reads it."""
    _check_scheme(scheme)
    if scheme == "IOB2" and not scheme_violations(tags, "IOB2"):
        return list(tags)
    return _spans_to_tags(entity_spans(tags, scheme), len(tags), "IOB2")


def from_iob2(tags: Sequence[str], scheme: str) -> list[str]:
    """(n,) IOB2 tags -> (n,) tags in ``scheme``; from_iob2(to_iob2(t, s), s) == t for valid t."""
    _check_scheme(scheme)
    return _spans_to_tags(entity_spans(tags, "IOB2"), len(tags), scheme)


# ============================================================================ CoNLL

def _split_lines(text: str) -> tuple[list[str], str | list[str], bool, str]:
    """text -> (lines without endings, eol ('\\n', '\\r\\n' or one per line), final_eol, bom)."""
    bom = ""
    if text.startswith("\ufeff"):
        bom, text = "\ufeff", text[1:]
    lines = text.split("\n")
    final = lines[-1] == ""
    if final:
        lines.pop()
    n_cr = sum(1 for s in lines if s.endswith("\r"))
    if n_cr == 0:
        return lines, "\n", final, bom
    n_end = len(lines) if final else len(lines) - 1     # lines that have an ending
    if n_cr == n_end and (final or not lines[-1].endswith("\r")):
        return [s[:-1] for s in lines[:n_end]] + lines[n_end:], "\r\n", final, bom
    eols = []
    out = []
    for k, s in enumerate(lines):
        has_end = k < n_end
        if has_end and s.endswith("\r"):
            out.append(s[:-1])
            eols.append("\r\n")
        else:
            out.append(s)
            eols.append("\n")
    return out, eols, final, bom


def parse_conll(text: str, filename: str) -> Corpus:
    """CoNLL text -> Corpus. One token per line: token first, tag last, optional columns
    between (whitespace-separated); blank lines between sentences; -DOCSTART- lines between
    documents. The scheme (IOB1/IOB2/BIOES) is detected. Raises IngestError naming the
    file and line on: an empty file, a line whose column count differs from the file's
    first token line, a tag that is not O or B-/I-/E-/S- plus a type."""
    lines, eol, final_eol, bom = _split_lines(text)
    if not any(s.strip() for s in lines):
        raise IngestError(f"{filename}: the file is empty. Upload a CoNLL file: one token per line, "
                          f"the tag in the last column, a blank line between sentences.")
    sentences: list[Sentence] = []
    other: dict[int, str] = {}
    n_cols = 0
    doc = 0
    doc_has_sentences = False
    toks: list[str] = []
    tags: list[str] = []
    slines: list[str] = []
    start = 0
    tagset: set[str] = set()

    def close() -> None:
        nonlocal toks, tags, slines, doc_has_sentences
        if toks:
            sentences.append(Sentence(toks, tags, slines, doc, start + 1))
            doc_has_sentences = True
            toks, tags, slines = [], [], []

    for k, line in enumerate(lines):
        f = line.split()
        if not f:
            close()
            other[k] = line
            continue
        if f[0] == DOCSTART:
            close()
            other[k] = line
            if doc_has_sentences:
                doc += 1
                doc_has_sentences = False
            continue
        if n_cols == 0:
            n_cols = len(f)
            if n_cols < 2:
                raise IngestError(f"{filename}, line {k + 1}: only one column ({line.strip()!r}); a CoNLL "
                                  f"file needs the token in the first column and its tag in the last.")
        elif len(f) != n_cols:
            raise IngestError(f"{filename}, line {k + 1}: {len(f)} columns where the file's first token "
                              f"line has {n_cols} ({line.strip()!r}). Every token line needs the same columns; "
                              f"a token with a space in it splits into two columns.")
        if not toks:
            start = k
        toks.append(f[0])
        tags.append(f[-1])
        slines.append(line)
        tagset.add(f[-1])
    close()
    if not sentences:
        raise IngestError(f"{filename}: no token lines, only blank or -DOCSTART- lines. "
                          f"Upload a CoNLL file with one token per line.")
    bad = {t for t in tagset if not _TAG.match(t)}
    if bad:
        _raise_bad_tag(sentences, bad, filename, None)
    scheme = detect_scheme(s.tags for s in sentences)
    types = sorted({t[2:] for t in tagset if t != "O"})
    return Corpus(sentences, scheme, n_cols - 1, n_cols, types, filename, "conll", other, len(lines),
                  eol, final_eol, bom)


def _raise_bad_tag(sentences: list[Sentence], bad: set[str], filename: str, scheme: str | None) -> None:
    for s in sentences:
        for j, t in enumerate(s.tags):
            if t in bad:
                where = f"line {s.start_line + j}" if s.lines and len(s.lines) == len(s.tokens) \
                    else f"line {s.start_line}, token {j}"
                raise IngestError(f"{filename}, {where}: {_bad_tag_reason(t, scheme)}. "
                                  f"Found {len(bad)} such tag value(s): {', '.join(sorted(map(repr, bad))[:5])}.")


def _last_field_is(line: str, tag: str) -> bool:
    body = line.rstrip()
    return body.endswith(tag) and len(body) > len(tag) and body[-len(tag) - 1].isspace()


def _replace_last_field(line: str, tag: str) -> str:
    body = line.rstrip()
    last = body.split()[-1]
    return body[: len(body) - len(last)] + tag + line[len(body):]


def write_conll(corpus: Corpus, tags: Sequence[Sequence[str]]) -> str:
    """corpus, tags (n_sent,) lists of (n_tokens_i,) tags in the corpus's scheme -> the file's
    text with each token line's last column replaced; every other byte as parsed."""
    if corpus.format != "conll":
        raise ValueError("write_conll needs a corpus read by parse_conll; use write_jsonl.")
    _check_tags_shape(corpus, tags)
    out: list[str] = [""] * corpus.n_lines
    for k, s in corpus.other_lines.items():
        out[k] = s
    for s, new in zip(corpus.sentences, tags):
        base = s.start_line - 1
        for j, (line, t) in enumerate(zip(s.lines, new)):
            out[base + j] = line if _last_field_is(line, t) else _replace_last_field(line, t)
    return corpus.bom + _join(out, corpus.eol, corpus.final_eol)


def _join(lines: list[str], eol: str | list[str], final_eol: bool) -> str:
    if isinstance(eol, str):
        return eol.join(lines) + (eol if final_eol and lines else "")
    parts = [s + e for s, e in zip(lines, eol)]
    if not final_eol and parts:
        parts[-1] = lines[-1]
    return "".join(parts)


def _check_tags_shape(corpus: Corpus, tags: Sequence[Sequence[str]]) -> None:
    if len(tags) != len(corpus.sentences):
        raise ValueError(f"tags has {len(tags)} sentences; the corpus has {len(corpus.sentences)}.")
    for i, (s, t) in enumerate(zip(corpus.sentences, tags)):
        if len(t) != len(s.tokens):
            raise ValueError(f"sentence {i}: {len(t)} tags for {len(s.tokens)} tokens.")
        for tag in t:
            if not isinstance(tag, str) or not tag or any(c.isspace() for c in tag):
                raise ValueError(f"sentence {i}: tag {tag!r} is empty or holds whitespace.")


# ============================================================================ JSONL

def parse_jsonl(text: str, filename: str) -> Corpus:
    """JSON lines -> Corpus: one sentence per non-blank line, {"tokens": [str], "tags": [str],
    optional "id", optional "pred_probs": (n_tokens, K) and "tag_names": (K,) their class order
    (default: the file's distinct tags, sorted)}; optional "doc" (int) groups sentences.
    Raises IngestError naming the file and line on broken JSON, a missing key, tags of the
    wrong length or a bad tag."""
    lines, eol, final_eol, bom = _split_lines(text)
    if not any(s.strip() for s in lines):
        raise IngestError(f"{filename}: the file is empty. Upload one JSON object per line: "
                          f'{{"tokens": [...], "tags": [...]}}.')
    sentences: list[Sentence] = []
    other: dict[int, str] = {}
    tagset: set[str] = set()
    names: list[str] | None = None
    any_probs = False
    for k, line in enumerate(lines):
        if not line.strip():
            other[k] = line
            continue
        where = f"{filename}, line {k + 1}"
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise IngestError(f"{where}: not valid JSON ({e.msg} at column {e.colno}). "
                              f"Each line must be one JSON object.") from None
        if not isinstance(rec, dict) or "tokens" not in rec or "tags" not in rec:
            raise IngestError(f'{where}: needs an object with "tokens" and "tags" lists.')
        toks, tags = rec["tokens"], rec["tags"]
        if not isinstance(toks, list) or not isinstance(tags, list) \
                or not all(isinstance(t, str) for t in toks) or not all(isinstance(t, str) for t in tags):
            raise IngestError(f'{where}: "tokens" and "tags" must be lists of strings.')
        if len(tags) != len(toks):
            raise IngestError(f"{where}: {len(tags)} tags for {len(toks)} tokens; give one tag per token.")
        if not toks:
            raise IngestError(f"{where}: a sentence with no tokens.")
        for j, t in enumerate(tags):
            why = _bad_tag_reason(t)
            if why:
                raise IngestError(f"{where}, token {j}: {why}.")
        tagset.update(tags)
        probs = None
        if "pred_probs" in rec:
            any_probs = True
            try:
                probs = np.asarray(rec["pred_probs"], dtype=np.float64)
            except (TypeError, ValueError):
                probs = None
            if probs is None or probs.ndim != 2 or probs.shape[0] != len(toks) or not np.isfinite(probs).all() \
                    or (probs < 0).any():
                raise IngestError(f'{where}: "pred_probs" must hold one list of K non-negative numbers per '
                                  f"token ({len(toks)} tokens).")
        if "tag_names" in rec:
            tn = rec["tag_names"]
            if not isinstance(tn, list) or not all(isinstance(t, str) for t in tn):
                raise IngestError(f'{where}: "tag_names" must be a list of strings.')
            if names is not None and tn != names:
                raise IngestError(f'{where}: "tag_names" differs from an earlier line\'s.')
            names = tn
        doc = rec.get("doc", 0)
        if isinstance(doc, bool) or not isinstance(doc, int):
            doc = 0
        ident = rec.get("id")
        sentences.append(Sentence(list(toks), list(tags), [line], doc, k + 1,
                                  None if ident is None else str(ident), probs))
    if not sentences:
        raise IngestError(f"{filename}: no sentences.")
    if any_probs:
        if any(s.pred_probs is None for s in sentences):
            first = next(s for s in sentences if s.pred_probs is None)
            raise IngestError(f'{filename}, line {first.start_line}: no "pred_probs" while other lines have them; '
                              f"give them on every line or on none.")
        names = names or sorted(tagset)
        for s in sentences:
            if s.pred_probs.shape[1] != len(names):
                raise IngestError(f'{filename}, line {s.start_line}: "pred_probs" has {s.pred_probs.shape[1]} '
                                  f"columns for {len(names)} tags ({', '.join(names[:12])}).")
        missing = tagset - set(names)
        if missing:
            raise IngestError(f'{filename}: tags {sorted(missing)[:5]} have no column in "pred_probs" '
                              f'(its "tag_names": {names[:12]}).')
    scheme = detect_scheme(s.tags for s in sentences)
    bad = {t for t in tagset if _bad_tag_reason(t, scheme)}
    if bad:
        _raise_bad_tag(sentences, bad, filename, scheme)
    types = sorted({t[2:] for t in tagset if t != "O"})
    return Corpus(sentences, scheme, -1, 0, types, filename, "jsonl", other, len(lines), eol, final_eol, bom,
                  names if any_probs else None)


def write_jsonl(corpus: Corpus, tags: Sequence[Sequence[str]]) -> str:
    """corpus, tags (n_sent,) lists of (n_tokens_i,) -> JSON lines. For a corpus read by
    parse_jsonl every line is kept byte for byte except those of sentences whose tags
    changed, which are re-serialised with their other keys in order; any other corpus
    gives one {"tokens", "tags"} line per sentence."""
    _check_tags_shape(corpus, tags)
    if corpus.format != "jsonl":
        return "".join(json.dumps({"tokens": s.tokens, "tags": list(t)}, ensure_ascii=False) + "\n"
                       for s, t in zip(corpus.sentences, tags))
    out: list[str] = [""] * corpus.n_lines
    for k, line in corpus.other_lines.items():
        out[k] = line
    for s, new in zip(corpus.sentences, tags):
        line = s.lines[0]
        rec = json.loads(line)
        if rec["tags"] != list(new):
            rec["tags"] = list(new)
            line = json.dumps(rec, ensure_ascii=False)
        out[s.start_line - 1] = line
    return corpus.bom + _join(out, corpus.eol, corpus.final_eol)


# ============================================================================ model

_SHAPE_MAP = str.maketrans({**{c: "X" for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"},
                            **{c: "x" for c in "abcdefghijklmnopqrstuvwxyz"},
                            **{c: "d" for c in "0123456789"}})
_RUNS = re.compile(r"(.)\1+")


def _shape(w: str) -> tuple[str, str]:
    """'McDonald' -> ('XxXxxxxx' capped, 'XxXx'): full shape (first 6 + last 2 chars) and run-collapsed."""
    s = w.translate(_SHAPE_MAP)
    s = "".join(("X" if c.isupper() else "x" if c.islower() else "d" if c.isdigit() else c)
                if ord(c) > 127 else c for c in s)
    full = s if len(s) <= 8 else s[:6] + "~" + s[-2:]
    return full, _RUNS.sub(r"\1", s)


def _word_families(words: list[str]) -> dict[str, np.ndarray]:
    """Unique words (V,) -> {family: (V,) value ids}: word, lower, shapes, affixes, flags."""
    fams: dict[str, list] = {k: [] for k in ("word", "lower", "shape", "short", "pre2", "pre3", "suf2", "suf3",
                                             "suf4", "flags")}
    for w in words:
        lo = w.lower()
        full, short = _shape(w)
        flags = (w[:1].isupper(), w.isupper(), any(c.isdigit() for c in w), "-" in w,
                 not any(c.isalnum() for c in w), min(len(w), 6))
        for k, v in (("word", w), ("lower", lo), ("shape", full), ("short", short), ("pre2", lo[:2]),
                     ("pre3", lo[:3]), ("suf2", lo[-2:]), ("suf3", lo[-3:]), ("suf4", lo[-4:]), ("flags", flags)):
            fams[k].append(v)
    return {k: pd.factorize(pd.Series(v, dtype=object) if k != "flags" else pd.Series(map(str, v)))[0]
            for k, v in fams.items()}


# (offset, family): which word-level feature families are taken from which neighbour.
_SLOTS = ([(0, f) for f in ("word", "lower", "shape", "short", "pre2", "pre3", "suf2", "suf3", "suf4", "flags")]
          + [(o, f) for o in (-1, 1) for f in ("lower", "shape", "suf3", "flags")]
          + [(o, f) for o in (-2, 2) for f in ("lower", "short")])


def token_features(corpus: Corpus) -> sp.csr_matrix:
    """corpus -> sparse 0/1 matrix (n_tokens, F), tokens in corpus order: the token's word,
    lowercase, shapes, prefixes/suffixes and flags; its neighbours' (±1, ±2) lowercase, shape,
    suffix and flags; word pairs with each neighbour; position in the sentence; whether the
    sentence is all capitals (headline) and whether the word is capitalised elsewhere in its
    document away from a sentence start. Feature values seen once in the corpus are dropped."""
    toks = [t for s in corpus.sentences for t in s.tokens]
    n = len(toks)
    lens = np.fromiter((len(s.tokens) for s in corpus.sentences), dtype=np.int64, count=len(corpus.sentences))
    sent = np.repeat(np.arange(len(lens)), lens)
    starts = np.concatenate(([0], np.cumsum(lens)[:-1]))
    pos = np.arange(n) - starts[sent]
    slen = lens[sent]
    wid, vocab = pd.factorize(pd.Series(toks, dtype=object))
    fam = _word_families(list(vocab))
    lower_tok = fam["lower"][wid]

    cols: list[np.ndarray] = []
    base = 0

    def add(values: np.ndarray, size: int) -> None:
        nonlocal base
        cols.append(base + values)
        base += size + 1

    for off, f in _SLOTS:
        v = fam[f]
        size = int(v.max()) + 1
        if off == 0:
            add(v[wid], size)
            continue
        p = pos + off
        ok = (p >= 0) & (p < slen)
        j = np.clip(np.arange(n) + off, 0, n - 1)
        add(np.where(ok, v[wid[j]], size), size)          # value `size`: outside the sentence
    # word pairs (lower) with the previous and next token
    nl = int(fam["lower"].max()) + 2
    for off in (-1, 1):
        p = pos + off
        ok = (p >= 0) & (p < slen)
        j = np.clip(np.arange(n) + off, 0, n - 1)
        other = np.where(ok, lower_tok[j], nl - 1)
        pair = lower_tok.astype(np.int64) * nl + other
        code, uniq = pd.factorize(pair)
        add(code, len(uniq))
    # position: first / second / later, times last or not
    pos_code = np.where(pos == 0, 0, np.where(pos == 1, 1, 2)) * 2 + (pos == slen - 1)
    add(pos_code, 6)
    # headline sentences (all letters upper case) x the token's short shape
    caps = np.array([all(t.upper() == t for t in s.tokens) and any(t.isalpha() for t in s.tokens)
                     for s in corpus.sentences], dtype=np.int64)[sent]
    short_tok = fam["short"][wid]
    add(caps * (int(fam["short"].max()) + 1) + short_tok, 2 * (int(fam["short"].max()) + 1))
    # elsewhere in its document the word appears capitalised away from a sentence start / in lower case
    docs = np.repeat(np.fromiter((s.doc for s in corpus.sentences), dtype=np.int64, count=len(lens)), lens)
    title = np.fromiter((t[:1].isupper() for t in toks), dtype=bool, count=n) & (pos > 0)
    low = np.fromiter((t[:1].islower() for t in toks), dtype=bool, count=n)
    kcode, kuniq = pd.factorize(docs * (int(fam["lower"].max()) + 1) + lower_tok)
    title_elsewhere = np.bincount(kcode, weights=title, minlength=len(kuniq))[kcode] - title > 0
    lower_elsewhere = np.bincount(kcode, weights=low, minlength=len(kuniq))[kcode] - low > 0
    add(title_elsewhere * 2 + lower_elsewhere, 4)

    G = len(cols)
    C = np.stack(cols, axis=1).ravel()
    counts = np.bincount(C, minlength=base)
    keep = counts >= MIN_FEATURE_COUNT
    remap = np.cumsum(keep) - 1
    rows = np.repeat(np.arange(n), G)
    m = keep[C]
    X = sp.csr_matrix((np.ones(int(m.sum()), dtype=np.float64), (rows[m], remap[C[m]])),
                      shape=(n, int(keep.sum())))
    return X


def token_probs(corpus: Corpus, progress: Progress | None = None, n_folds: int = 5,
                seed: int = 0) -> tuple[list[np.ndarray], list[str]]:
    """corpus -> (probs (n_sent,) arrays (n_tokens_i, K), tag_names (K,) IOB2 tags).

    Out of sample: a logistic regression (SGDClassifier, log loss, one-vs-rest over the IOB2
    tags, normalised) on token_features, cross-validated by document (GroupKFold on
    Sentence.doc; by sentence when there are fewer documents than folds), so no token is
    scored by a model that saw its document.
    Probabilities are then temperature-scaled (one exponent fitted to the given tags) so
    cleanlab sees calibrated confidences. Classes are IOB2 tags, whatever the file's scheme.
    """
    from sklearn.linear_model import SGDClassifier
    from sklearn.model_selection import GroupKFold

    from .models import temperature_scale

    progress = progress or _noop
    t0 = time.perf_counter()
    progress(0.0, f"Features of {corpus.n_tokens:,} tokens")
    iob2 = [to_iob2(s.tags, corpus.scheme) for s in corpus.sentences]
    y, names = pd.factorize(pd.Series([t for tags in iob2 for t in tags], dtype=object), sort=True)
    names = list(names)
    K = len(names)
    X = token_features(corpus)
    lens = np.array([len(s.tokens) for s in corpus.sentences])
    sent = np.repeat(np.arange(len(lens)), lens)
    docs = np.array([s.doc for s in corpus.sentences])
    groups = docs[sent] if len(np.unique(docs)) >= n_folds else sent
    n_groups = len(np.unique(groups))
    probs = np.zeros((len(y), K))
    if K == 1:
        probs[:] = 1.0
    elif n_groups < 2:
        raise ReviewError("Cross-validation needs at least two sentences.")
    else:
        folds = max(2, min(n_folds, n_groups))
        for k, (tr, te) in enumerate(GroupKFold(n_splits=folds).split(X, y, groups), start=1):
            progress((k - 1) / folds, f"Fold {k} of {folds}: training on {len(tr):,} tokens")
            if len(np.unique(y[tr])) == 1:
                probs[te, y[tr][0]] = 1.0
                continue
            model = SGDClassifier(loss="log_loss", alpha=SGD_ALPHA, max_iter=SGD_EPOCHS, tol=None,
                                  random_state=seed, n_jobs=2).fit(X[tr], y[tr])
            probs[np.ix_(te, model.classes_)] = model.predict_proba(X[te])
        probs = np.clip(probs, 1e-6, None)
        probs, _ = temperature_scale(probs / probs.sum(axis=1, keepdims=True), y)
    progress(1.0, f"Model done in {time.perf_counter() - t0:.1f} s")
    return list(np.split(probs, np.cumsum(lens)[:-1])), names


def token_accuracy(corpus: Corpus, probs: Sequence[np.ndarray], tag_names: Sequence[str]) -> float:
    """Share of tokens whose argmax class is their given tag (IOB2)."""
    names = np.asarray(tag_names, dtype=object)
    hit = tot = 0
    for s, P in zip(corpus.sentences, probs):
        g = np.asarray(to_iob2(s.tags, corpus.scheme), dtype=object)
        hit += int((names[P.argmax(1)] == g).sum())
        tot += len(g)
    return hit / max(tot, 1)


# ============================================================================ issues

def find_issues(corpus: Corpus, probs_per_sentence: Sequence[np.ndarray], tag_names: Sequence[str]) -> dict:
    """cleanlab token-classification suspects plus scheme violations.

    probs_per_sentence: (n_sent,) arrays (n_tokens_i, K) over tag_names (IOB2 tags; tags
    of the corpus not among them count as unscorable). Returns a dict:
    sentence_quality (n_sent,) min token quality; token_quality (n_sent,) arrays (n_tokens_i,);
    flagged: sorted [(sent, tok)] (cleanlab's issues and scheme violations);
    predicted: (n_sent,) lists of the model's tag per token, in the corpus's scheme;
    predicted_iob2: same in IOB2; confidence: (n_sent,) arrays, the model's probability of
    its IOB2 tag; reasons: {(sent, tok): str} for every flagged token.
    """
    from cleanlab.token_classification.filter import find_label_issues
    from cleanlab.token_classification.rank import get_label_quality_scores

    names = list(tag_names)
    index = {t: i for i, t in enumerate(names)}
    iob2 = [to_iob2(s.tags, corpus.scheme) for s in corpus.sentences]
    lens = [len(t) for t in iob2]
    if len(probs_per_sentence) != len(lens) or any(len(p) != n for p, n in zip(probs_per_sentence, lens)):
        raise ValueError("probs_per_sentence must hold one (n_tokens_i, K) array per sentence.")
    P = np.concatenate([np.asarray(p, dtype=np.float64) for p in probs_per_sentence]) if lens else np.zeros((0, len(names)))
    y = np.array([index.get(t, -1) for tags in iob2 for t in tags], dtype=np.int64)
    P = np.clip(P, 1e-9, None)
    P = P / P.sum(axis=1, keepdims=True)
    pred = P.argmax(axis=1)
    conf = P.max(axis=1)
    split = np.cumsum(lens)[:-1]

    tq = np.zeros(len(y))
    flagged: set[tuple[int, int]] = set()
    reasons: dict[tuple[int, int], str] = {}
    ok = y >= 0
    present = np.unique(y[ok])
    if len(present) >= 2:
        remap = np.full(len(names), -1)
        remap[present] = np.arange(len(present))
        Pp = P[:, present]
        Pp = Pp / Pp.sum(axis=1, keepdims=True)
        yy = np.where(ok, remap[np.clip(y, 0, None)], 0)
        labels_l = [a.tolist() for a in np.split(yy, split)]
        probs_l = np.split(Pp, split)
        _, token_info = get_label_quality_scores(labels_l, probs_l)
        tq = np.concatenate([np.asarray(s, dtype=float) for s in token_info])
        issues = find_label_issues(labels_l, probs_l, n_jobs=1)
        flagged.update((int(i), int(j)) for i, j in issues)
    tq[~ok] = 0.0
    starts = np.concatenate(([0], np.cumsum(lens)))
    pred_iob2 = [list(np.asarray(names, dtype=object)[a]) for a in np.split(pred, split)]
    predicted = [from_iob2(p, corpus.scheme) for p in pred_iob2]
    for i, j in list(flagged):
        f = starts[i] + j
        g = corpus.sentences[i].tags[j]
        reasons[(i, j)] = (f"given {g}; the model predicts {predicted[i][j]} ({conf[f]:.0%}) and gives "
                           f"the given tag {P[f, y[f]]:.0%}")
    for f in np.flatnonzero(~ok):
        i = int(np.searchsorted(starts, f, side="right") - 1)
        flagged.add((i, int(f - starts[i])))
        reasons[(i, int(f - starts[i]))] = f"tag {corpus.sentences[i].tags[f - starts[i]]} is not among the model's classes"
    for i, s in enumerate(corpus.sentences):
        for j, why in scheme_violations(s.tags, corpus.scheme):
            flagged.add((i, j))
            tq[starts[i] + j] = min(tq[starts[i] + j], 0.0)
            reasons[(i, j)] = f"not valid {corpus.scheme}: {why}" + (f"; {reasons[(i, j)]}" if (i, j) in reasons else "")
    token_quality = np.split(tq, split)
    return {
        "sentence_quality": np.array([q.min() if len(q) else 1.0 for q in token_quality]),
        "token_quality": token_quality,
        "flagged": sorted(flagged),
        "predicted": predicted,
        "predicted_iob2": pred_iob2,
        "confidence": np.split(conf, split),
        "reasons": reasons,
    }


# ============================================================================ noise (benchmarks, tests, demos)

ERROR_KINDS = ("type_swap", "per_org", "boundary", "missed")


def inject_errors(corpus: Corpus, rates: dict[str, float], seed: int = 0
                  ) -> tuple[list[list[str]], list[dict]]:
    """Annotator-like errors on distinct entities, at most one per sentence.

    rates: {kind: share of candidate entities}; kinds: type_swap (another of the corpus's
    types), per_org (PER <-> ORG, share of PER+ORG entities), boundary (one token more, into
    an O neighbour, or one less), missed (the whole entity tagged O).
    Returns (tags (n_sent,) lists in the corpus's scheme, injected [{kind, sent, start, end,
    type, new_type, tokens}] where tokens are the positions whose tag changed).
    """
    rng = np.random.default_rng(seed)
    iob2 = [to_iob2(s.tags, corpus.scheme) for s in corpus.sentences]
    ents = [(i, a, b, t) for i, tags in enumerate(iob2) for a, b, t in entity_spans(tags, "IOB2")]
    used: set[int] = set()
    injected: list[dict] = []
    types = list(corpus.entity_types)
    for kind in ERROR_KINDS:
        rate = rates.get(kind, 0.0)
        if rate <= 0:
            continue
        cand = [e for e in ents if kind != "per_org" or e[3] in ("PER", "ORG")]
        want = int(round(rate * len(cand)))
        for k in rng.permutation(len(cand)):
            if want == 0:
                break
            i, a, b, t = cand[k]
            if i in used:
                continue
            tags = iob2[i]
            n = len(tags)
            if kind in ("type_swap", "per_org"):
                others = [x for x in types if x != t] if kind == "type_swap" else ["ORG" if t == "PER" else "PER"]
                if not others:
                    continue
                new_t = others[int(rng.integers(len(others)))]
                new = tags[:a] + [f"B-{new_t}"] + [f"I-{new_t}"] * (b - a - 1) + tags[b:]
            elif kind == "boundary":
                new_t = t
                moves = []
                if a > 0 and tags[a - 1] == "O":
                    moves.append("left+")
                if b < n and tags[b] == "O":
                    moves.append("right+")
                if b - a >= 2:
                    moves += ["left-", "right-"]
                if not moves:
                    continue
                m = moves[int(rng.integers(len(moves)))]
                a2, b2 = {"left+": (a - 1, b), "right+": (a, b + 1), "left-": (a + 1, b), "right-": (a, b - 1)}[m]
                new = list(tags)
                for j in range(min(a, a2), max(b, b2)):
                    new[j] = "O"
                new[a2] = f"B-{t}"
                for j in range(a2 + 1, b2):
                    new[j] = f"I-{t}"
                if b2 < n and new[b2].startswith("I-"):     # keep what followed a valid entity
                    new[b2] = "B-" + new[b2][2:]
            else:
                new_t = "O"
                new = tags[:a] + ["O"] * (b - a) + tags[b:]
            old_scheme = corpus.sentences[i].tags
            new_scheme = from_iob2(new, corpus.scheme)
            changed = [j for j in range(n) if new_scheme[j] != old_scheme[j] or new[j] != tags[j]]
            if not changed:
                continue
            iob2[i] = new
            used.add(i)
            want -= 1
            injected.append({"kind": kind, "sent": i, "start": a, "end": b, "type": t, "new_type": new_t,
                             "tokens": changed})
    return [from_iob2(t, corpus.scheme) if i in used else list(corpus.sentences[i].tags)
            for i, t in enumerate(iob2)], injected


# ============================================================================ display

FIXED_COLOURS = {"PER": "#fde2a7", "ORG": "#b9e3f9", "LOC": "#c8efc1", "MISC": "#e4d3f5"}
PALETTE = ("#ffd6d6", "#d6f0ff", "#fff3b0", "#d9f2e6", "#f2d9f2", "#ffe0c2", "#e0e7ff", "#e8f5c8",
           "#f9d5e5", "#d5f5f0", "#f0e0d0", "#dcdcf5")


def entity_colour(entity_type: str) -> str:
    """A fixed background colour per entity type: PER/ORG/LOC/MISC fixed, others by a stable hash."""
    if entity_type in FIXED_COLOURS:
        return FIXED_COLOURS[entity_type]
    h = int(hashlib.sha1(entity_type.encode("utf-8")).hexdigest(), 16)
    return PALETTE[h % len(PALETTE)]


def _e(s) -> str:
    return html.escape(str(s), quote=True)


def token_view_html(tokens: Sequence[str], tags: Sequence[str], scheme: str,
                    flagged_positions: Sequence[int] = (), predicted: Sequence[str] | None = None,
                    confidence: Sequence[float] | None = None) -> str:
    """One sentence as HTML: entities on a background of their type's colour with the type
    after them, suspect tokens outlined in red with the model's tag and confidence beside
    them. tokens, tags (n,); predicted, confidence (n,) or None. Every string is escaped."""
    flagged = {int(k) for k in flagged_positions}
    spans = {a: (b, t) for a, b, t in entity_spans(tags, scheme)}
    parts = ['<div class="ner-sentence" style="line-height:2.3;font-family:sans-serif">']
    i, n = 0, len(tokens)

    def tok_html(k: int) -> str:
        t = f'<span class="ner-token">{_e(tokens[k])}</span>'
        if k in flagged:
            note = ""
            if predicted is not None:
                c = f" {float(confidence[k]):.0%}" if confidence is not None else ""
                note = (f'<sup class="ner-pred" style="color:#b00020;font-size:0.7em;margin-left:2px">'
                        f"→{_e(predicted[k])}{_e(c)}</sup>")
            t = (f'<span class="ner-suspect" title="given tag {_e(tags[k])}" '
                 f'style="outline:2px solid #d00;border-radius:3px;padding:0 2px;'
                 f'text-decoration:underline wavy #d00">{t}</span>{note}')
        return t

    while i < n:
        if i in spans:
            b, typ = spans[i]
            inner = " ".join(tok_html(k) for k in range(i, b))
            parts.append(f'<span class="ner-entity" data-type="{_e(typ)}" style="background:{entity_colour(typ)};'
                         f'padding:2px 4px;border-radius:4px;margin:0 1px">{inner} '
                         f'<span style="font-size:0.65em;font-weight:bold;opacity:0.7">{_e(typ)}</span></span>')
            i = b
        else:
            parts.append(tok_html(i))
            i += 1
        parts.append(" ")
    parts.append("</div>")
    return "".join(parts)


def legend_html(entity_types: Sequence[str]) -> str:
    """The entity types with their colours, and what the red outline means."""
    items = "".join(f'<span style="background:{entity_colour(t)};padding:2px 6px;border-radius:4px;'
                    f'margin-right:6px">{_e(t)}</span>' for t in entity_types)
    return (f'<div class="ner-legend" style="font-family:sans-serif;font-size:0.85em">{items}'
            f'<span style="outline:2px solid #d00;border-radius:3px;padding:0 4px">suspect token</span>'
            f' <span style="color:#b00020">→ model\'s tag and confidence</span></div>')
