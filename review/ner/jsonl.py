"""JSON lines, one {"tokens", "tags"} object per sentence: parse_jsonl and write_jsonl."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

from review.errors import IngestError
from review.ner.corpus import Corpus, Sentence
from review.ner.lines import _check_tags_shape, _join, _raise_bad_tag, _split_lines
from review.ner.schemes import _bad_tag_reason, detect_scheme


def parse_jsonl(text: str, filename: str) -> Corpus:
    """JSON lines -> Corpus: one sentence per non-blank line, {"tokens": [str], "tags": [str],
    optional "id", optional "pred_probs": (n_tokens, K) and "tag_names": (K,) their class order
    (default: the file's distinct tags, sorted)}; optional "doc" (int) groups sentences.
    Raises IngestError naming the file and line on broken JSON, a missing key, tags of the
    wrong length or a bad tag."""
    lines, eol, final_eol, bom = _split_lines(text)
    if not any(s.strip() for s in lines):
        raise IngestError(
            f'{filename}: the file is empty. Upload one JSON object per line: {{"tokens": [...], "tags": [...]}}.'
        )
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
            raise IngestError(
                f"{where}: not valid JSON ({e.msg} at column {e.colno}). Each line must be one JSON object."
            ) from None
        if not isinstance(rec, dict) or "tokens" not in rec or "tags" not in rec:
            raise IngestError(f'{where}: needs an object with "tokens" and "tags" lists.')
        toks, tags = rec["tokens"], rec["tags"]
        if (
            not isinstance(toks, list)
            or not isinstance(tags, list)
            or not all(isinstance(t, str) for t in toks)
            or not all(isinstance(t, str) for t in tags)
        ):
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
            if (
                probs is None
                or probs.ndim != 2
                or probs.shape[0] != len(toks)
                or not np.isfinite(probs).all()
                or (probs < 0).any()
            ):
                raise IngestError(
                    f'{where}: "pred_probs" must hold one list of K non-negative numbers per '
                    f"token ({len(toks)} tokens)."
                )
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
        sentences.append(
            Sentence(list(toks), list(tags), [line], doc, k + 1, None if ident is None else str(ident), probs)
        )
    if not sentences:
        raise IngestError(f"{filename}: no sentences.")
    if any_probs:
        if any(s.pred_probs is None for s in sentences):
            first = next(s for s in sentences if s.pred_probs is None)
            raise IngestError(
                f'{filename}, line {first.start_line}: no "pred_probs" while other lines have them; '
                f"give them on every line or on none."
            )
        names = names or sorted(tagset)
        for s in sentences:
            if s.pred_probs.shape[1] != len(names):
                raise IngestError(
                    f'{filename}, line {s.start_line}: "pred_probs" has {s.pred_probs.shape[1]} '
                    f"columns for {len(names)} tags ({', '.join(names[:12])})."
                )
        missing = tagset - set(names)
        if missing:
            raise IngestError(
                f'{filename}: tags {sorted(missing)[:5]} have no column in "pred_probs" '
                f'(its "tag_names": {names[:12]}).'
            )
    scheme = detect_scheme(s.tags for s in sentences)
    bad = {t for t in tagset if _bad_tag_reason(t, scheme)}
    if bad:
        _raise_bad_tag(sentences, bad, filename, scheme)
    types = sorted({t[2:] for t in tagset if t != "O"})
    return Corpus(
        sentences,
        scheme,
        -1,
        0,
        types,
        filename,
        "jsonl",
        other,
        len(lines),
        eol,
        final_eol,
        bom,
        names if any_probs else None,
    )


def write_jsonl(corpus: Corpus, tags: Sequence[Sequence[str]]) -> str:
    """corpus, tags (n_sent,) lists of (n_tokens_i,) -> JSON lines. For a corpus read by
    parse_jsonl every line is kept byte for byte except those of sentences whose tags
    changed, which are re-serialised with their other keys in order; any other corpus
    gives one {"tokens", "tags"} line per sentence."""
    _check_tags_shape(corpus, tags)
    if corpus.format != "jsonl":
        return "".join(
            json.dumps({"tokens": s.tokens, "tags": list(t)}, ensure_ascii=False) + "\n"
            for s, t in zip(corpus.sentences, tags)
        )
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
