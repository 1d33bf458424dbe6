"""CoNLL columns: parse_conll and write_conll (byte-for-byte round trip)."""

from __future__ import annotations

from collections.abc import Sequence

from review.errors import IngestError
from review.ner.corpus import DOCSTART, Corpus, Sentence
from review.ner.lines import _check_tags_shape, _join, _raise_bad_tag, _split_lines
from review.ner.schemes import _TAG, detect_scheme


def parse_conll(text: str, filename: str) -> Corpus:
    """CoNLL text -> Corpus. One token per line: token first, tag last, optional columns
    between (whitespace-separated); blank lines between sentences; -DOCSTART- lines between
    documents. The scheme (IOB1/IOB2/BIOES) is detected. Raises IngestError naming the
    file and line on: an empty file, a line whose column count differs from the file's
    first token line, a tag that is not O or B-/I-/E-/S- plus a type."""
    lines, eol, final_eol, bom = _split_lines(text)
    if not any(s.strip() for s in lines):
        raise IngestError(
            f"{filename}: the file is empty. Upload a CoNLL file: one token per line, "
            f"the tag in the last column, a blank line between sentences."
        )
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
                raise IngestError(
                    f"{filename}, line {k + 1}: only one column ({line.strip()!r}); a CoNLL "
                    f"file needs the token in the first column and its tag in the last."
                )
        elif len(f) != n_cols:
            raise IngestError(
                f"{filename}, line {k + 1}: {len(f)} columns where the file's first token "
                f"line has {n_cols} ({line.strip()!r}). Every token line needs the same columns; "
                f"a token with a space in it splits into two columns."
            )
        if not toks:
            start = k
        toks.append(f[0])
        tags.append(f[-1])
        slines.append(line)
        tagset.add(f[-1])
    close()
    if not sentences:
        raise IngestError(
            f"{filename}: no token lines, only blank or -DOCSTART- lines. Upload a CoNLL file with one token per line."
        )
    bad = {t for t in tagset if not _TAG.match(t)}
    if bad:
        _raise_bad_tag(sentences, bad, filename, None)
    scheme = detect_scheme(s.tags for s in sentences)
    types = sorted({t[2:] for t in tagset if t != "O"})
    return Corpus(
        sentences, scheme, n_cols - 1, n_cols, types, filename, "conll", other, len(lines), eol, final_eol, bom
    )


def _last_field_is(line: str, tag: str) -> bool:
    body = line.rstrip()
    return body.endswith(tag) and len(body) > len(tag) and body[-len(tag) - 1].isspace()


def _replace_last_field(line: str, tag: str) -> str:
    body = line.rstrip()
    last = body.split()[-1]
    return body[: len(body) - len(last)] + tag + line[len(body) :]


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
