"""Token features for the token model: token_features (sparse 0/1, one row per token)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import scipy.sparse as sp

from review.ner.corpus import Corpus

# Features of the token classifier (see model.token_probs). Tuned on CoNLL-2003 (benchmarks/ner_conll.py).
MIN_FEATURE_COUNT = 2  # a feature value seen once in the whole corpus cannot help another fold


_SHAPE_MAP = str.maketrans(
    {
        **{c: "X" for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"},
        **{c: "x" for c in "abcdefghijklmnopqrstuvwxyz"},
        **{c: "d" for c in "0123456789"},
    }
)
_RUNS = re.compile(r"(.)\1+")


def _shape(w: str) -> tuple[str, str]:
    """'McDonald' -> ('XxXxxxxx' capped, 'XxXx'): full shape (first 6 + last 2 chars) and run-collapsed."""
    s = w.translate(_SHAPE_MAP)
    s = "".join(
        ("X" if c.isupper() else "x" if c.islower() else "d" if c.isdigit() else c) if ord(c) > 127 else c for c in s
    )
    full = s if len(s) <= 8 else s[:6] + "~" + s[-2:]
    return full, _RUNS.sub(r"\1", s)


def _word_families(words: list[str]) -> dict[str, np.ndarray]:
    """Unique words (V,) -> {family: (V,) value ids}: word, lower, shapes, affixes, flags."""
    fams: dict[str, list] = {
        k: [] for k in ("word", "lower", "shape", "short", "pre2", "pre3", "suf2", "suf3", "suf4", "flags")
    }
    for w in words:
        lo = w.lower()
        full, short = _shape(w)
        flags = (
            w[:1].isupper(),
            w.isupper(),
            any(c.isdigit() for c in w),
            "-" in w,
            not any(c.isalnum() for c in w),
            min(len(w), 6),
        )
        for k, v in (
            ("word", w),
            ("lower", lo),
            ("shape", full),
            ("short", short),
            ("pre2", lo[:2]),
            ("pre3", lo[:3]),
            ("suf2", lo[-2:]),
            ("suf3", lo[-3:]),
            ("suf4", lo[-4:]),
            ("flags", flags),
        ):
            fams[k].append(v)
    return {
        k: pd.factorize(pd.Series(v, dtype=object) if k != "flags" else pd.Series(map(str, v)))[0]
        for k, v in fams.items()
    }


# (offset, family): which word-level feature families are taken from which neighbour.
_SLOTS = (
    [(0, f) for f in ("word", "lower", "shape", "short", "pre2", "pre3", "suf2", "suf3", "suf4", "flags")]
    + [(o, f) for o in (-1, 1) for f in ("lower", "shape", "suf3", "flags")]
    + [(o, f) for o in (-2, 2) for f in ("lower", "short")]
)


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
        add(np.where(ok, v[wid[j]], size), size)  # value `size`: outside the sentence
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
    caps = np.array(
        [all(t.upper() == t for t in s.tokens) and any(t.isalpha() for t in s.tokens) for s in corpus.sentences],
        dtype=np.int64,
    )[sent]
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
    X = sp.csr_matrix((np.ones(int(m.sum()), dtype=np.float64), (rows[m], remap[C[m]])), shape=(n, int(keep.sum())))
    return X
