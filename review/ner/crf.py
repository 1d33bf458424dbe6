"""A linear-chain CRF on token-window features (python-crfsuite): crf_token_probs, out of sample.

Each token is described by strings (its word, lowercase, shapes, affixes and flags; the
neighbours' words, shapes and suffixes at +-1 and +-2; word pairs with each neighbour; position;
headline sentences; how the word is written elsewhere in its document). The CRF sees the whole
sentence, so a tag is judged with its neighbours' tags (an I- after an O, an entity cut short),
which a per-token classifier cannot do. Marginal probabilities of every IOB2 tag per token are
the output, cross-validated by document like model.token_probs.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from review.ner.corpus import Corpus
from review.ner.features import _shape

Progress = Callable[[float, str], None]

# CRF training (L-BFGS). Chosen on benchmarks/ner_conll.py (CoNLL-2003 with injected errors):
CRF_ITERATIONS = 60  # passes of L-BFGS: about 40 s per fold of 240k tokens on one core
CRF_C1 = 0.05  # L1 penalty (sparse weights: the model stays small)
CRF_C2 = 0.05  # L2 penalty
CRF_MIN_FREQ = 2  # a feature seen once cannot help another fold
CRF_WORKERS = 2  # folds trained at the same time (processes)

_FEATURES: list[list[list[str]]] = []  # per sentence, per token: the feature strings (set before forking)
_TAGS: list[list[str]] = []


def _word(w: str) -> list[str]:
    lo = w.lower()
    full, short = _shape(w)
    flags = f"{int(w[:1].isupper())}{int(w.isupper())}{int(any(c.isdigit() for c in w))}{int('-' in w)}{min(len(w), 6)}"
    return [
        f"w={w}",
        f"l={lo}",
        f"s={full}",
        f"ss={short}",
        f"p2={lo[:2]}",
        f"p3={lo[:3]}",
        f"s2={lo[-2:]}",
        f"s3={lo[-3:]}",
        f"s4={lo[-4:]}",
        f"f={flags}",
    ]


def sentence_features(tokens: Sequence[str], headline: bool, elsewhere: Sequence[str]) -> list[list[str]]:
    """One sentence -> per token, its feature strings (see the module docstring)."""
    W = [_word(t) for t in tokens]
    n = len(tokens)
    out = []
    for j in range(n):
        f = W[j] + ["b", f"pos={min(j, 2)}{int(j == n - 1)}", f"caps={int(headline)}{W[j][3]}", f"doc={elsewhere[j]}"]
        for o in (-1, 1):
            k = j + o
            if 0 <= k < n:
                f += [
                    f"{o}l={W[k][1][2:]}",
                    f"{o}s={W[k][2][2:]}",
                    f"{o}s3={W[k][7][3:]}",
                    f"{o}f={W[k][9][2:]}",
                    f"{o}pair={W[j][1][2:]}|{W[k][1][2:]}",
                ]
            else:
                f.append("BOS" if o < 0 else "EOS")
        for o in (-2, 2):
            k = j + o
            if 0 <= k < n:
                f += [f"{o}l={W[k][1][2:]}", f"{o}ss={W[k][3][3:]}"]
        out.append(f)
    return out


def corpus_features(corpus: Corpus) -> list[list[list[str]]]:
    """Every sentence's token features; 'doc' says whether the word appears capitalised away from a
    sentence start, and in lower case, elsewhere in its document."""
    title, low = Counter(), Counter()
    for s in corpus.sentences:
        for j, t in enumerate(s.tokens):
            if j > 0 and t[:1].isupper():
                title[(s.doc, t.lower())] += 1
            if t[:1].islower():
                low[(s.doc, t.lower())] += 1
    feats = []
    for s in corpus.sentences:
        headline = all(t.upper() == t for t in s.tokens) and any(t.isalpha() for t in s.tokens)
        where = []
        for j, t in enumerate(s.tokens):
            key = (s.doc, t.lower())
            where.append(f"{int(title[key] - (j > 0 and t[:1].isupper()) > 0)}{int(low[key] - t[:1].islower() > 0)}")
        feats.append(sentence_features(s.tokens, headline, where))
    return feats


def _fold(job: tuple[list[int], list[int], list[str]]) -> list[np.ndarray]:
    """(training sentences, held-out sentences, tag names) -> marginals (n_tokens_i, K) per held-out sentence."""
    import pycrfsuite

    train, test, names = job
    trainer = pycrfsuite.Trainer(verbose=False)
    for i in train:
        trainer.append(_FEATURES[i], _TAGS[i])
    trainer.set_params({"max_iterations": CRF_ITERATIONS, "c1": CRF_C1, "c2": CRF_C2, "feature.minfreq": CRF_MIN_FREQ})
    fd, path = tempfile.mkstemp(suffix=".crfsuite")
    os.close(fd)
    try:
        trainer.train(path)
        del trainer
        tagger = pycrfsuite.Tagger()
        tagger.open(path)
        known = set(tagger.labels())
        out = []
        for i in test:
            tagger.set(_FEATURES[i])
            n = len(_FEATURES[i])
            m = np.zeros((n, len(names)))
            for k, t in enumerate(names):
                if t in known:
                    m[:, k] = [tagger.marginal(t, j) for j in range(n)]
            out.append(m)
        tagger.close()
        return out
    finally:
        os.unlink(path)


def crf_token_probs(
    corpus: Corpus,
    iob2: Sequence[Sequence[str]],
    names: Sequence[str],
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    progress: Progress | None = None,
) -> list[np.ndarray]:
    """Marginal probabilities (n_tokens_i, K) over `names` per sentence, each sentence predicted by the
    CRF trained on the folds that do not hold it. folds: (train sentences, test sentences) pairs."""
    global _FEATURES, _TAGS
    progress = progress or (lambda f, m: None)
    _FEATURES, _TAGS = corpus_features(corpus), [list(t) for t in iob2]
    jobs = [(list(map(int, tr)), list(map(int, te)), list(names)) for tr, te in folds]
    out: list[np.ndarray | None] = [None] * len(corpus.sentences)
    try:
        if CRF_WORKERS > 1 and len(jobs) > 1 and "fork" in multiprocessing.get_all_start_methods():
            with ProcessPoolExecutor(min(CRF_WORKERS, len(jobs)), mp_context=multiprocessing.get_context("fork")) as ex:
                results = ex.map(_fold, jobs)
                for k, ((_, te, _), res) in enumerate(zip(jobs, results), start=1):
                    progress(k / len(jobs), f"CRF: fold {k} of {len(jobs)} done")
                    for i, m in zip(te, res):
                        out[i] = m
        else:
            for k, job in enumerate(jobs, start=1):
                for i, m in zip(job[1], _fold(job)):
                    out[i] = m
                progress(k / len(jobs), f"CRF: fold {k} of {len(jobs)} done")
    finally:
        _FEATURES, _TAGS = [], []
    return [
        m if m is not None else np.full((len(s.tokens), len(names)), 1.0 / len(names))
        for m, s in zip(out, corpus.sentences)
    ]
