"""The out-of-sample token model: token_probs (cross-validated by document) and token_accuracy."""
from __future__ import annotations

import time
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from ..errors import ReviewError
from .corpus import Corpus
from .features import token_features
from .schemes import to_iob2

Progress = Callable[[float, str], None]

# Token classifier (see token_probs). Tuned on CoNLL-2003 (benchmarks/ner_conll.py).
SGD_ALPHA = 1e-5          # L2 penalty of the SGD logistic regression (one-vs-rest per IOB2 tag)
SGD_EPOCHS = 15           # passes over the training folds' tokens
# On eng.testa with injected errors, SGD(log_loss) ranks them as well as a multinomial
# lbfgs logistic regression and a CRF (python-crfsuite, same features) at a fifth of the time.


def _noop(fraction: float, message: str) -> None:
    pass


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

    from ..models import temperature_scale

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
