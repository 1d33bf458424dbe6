"""What the CoNLL and JSONL readers and writers share: splitting and joining lines with
their endings and BOM kept, the bad-tag refusal, the check of new tags' shape."""

from __future__ import annotations

from collections.abc import Sequence

from review.errors import IngestError
from review.ner.corpus import Corpus, Sentence
from review.ner.schemes import _bad_tag_reason


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
    n_end = len(lines) if final else len(lines) - 1  # lines that have an ending
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


def _raise_bad_tag(sentences: list[Sentence], bad: set[str], filename: str, scheme: str | None) -> None:
    for s in sentences:
        for j, t in enumerate(s.tags):
            if t in bad:
                where = (
                    f"line {s.start_line + j}"
                    if s.lines and len(s.lines) == len(s.tokens)
                    else f"line {s.start_line}, token {j}"
                )
                raise IngestError(
                    f"{filename}, {where}: {_bad_tag_reason(t, scheme)}. "
                    f"Found {len(bad)} such tag value(s): {', '.join(sorted(map(repr, bad))[:5])}."
                )


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
