"""The out-of-sample token model: token_probs (cross-validated by document) and token_accuracy."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from review.errors import ReviewError
from review.ner.corpus import Corpus
from review.ner.features import token_features
from review.ner.schemes import to_iob2

Progress = Callable[[float, str], None]

# Token classifier (see token_probs). Tuned on CoNLL-2003 (benchmarks/ner_conll.py).
SGD_ALPHA = 1e-5  # L2 penalty of the SGD logistic regression (one-vs-rest per IOB2 tag)
SGD_EPOCHS = 15  # passes over the training folds' tokens
TOKEN_MODELS = ("auto", "sgd", "crf")
MIX_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)  # CRF weights the mixture may take


def _noop(fraction: float, message: str) -> None:
    pass


@dataclass
class TokenModel:
    """What token_model fitted. probs (n_sent,) arrays (n_tokens_i, K) over tag_names (IOB2);
    params: the candidates' out-of-sample log loss of the given tags, the mixture weight and why."""

    probs: list[np.ndarray]
    tag_names: list[str]
    params: dict = field(default_factory=dict)


def _folds(corpus: Corpus, n_folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train sentences, test sentences) per fold: GroupKFold by document (by sentence when there are
    fewer documents than folds)."""
    from sklearn.model_selection import GroupKFold

    docs = np.array([s.doc for s in corpus.sentences])
    groups = docs if len(np.unique(docs)) >= n_folds else np.arange(len(docs))
    folds = max(2, min(n_folds, len(np.unique(groups))))
    return list(GroupKFold(n_splits=folds).split(np.zeros(len(groups)), groups=groups))


def _sgd_probs(X, y: np.ndarray, K: int, sent: np.ndarray, folds, seed: int, progress: Progress) -> np.ndarray:
    from sklearn.linear_model import SGDClassifier

    probs = np.zeros((len(y), K))
    for k, (tr_s, te_s) in enumerate(folds, start=1):
        tr, te = np.flatnonzero(np.isin(sent, tr_s)), np.flatnonzero(np.isin(sent, te_s))
        progress((k - 1) / len(folds), f"Logistic regression, fold {k} of {len(folds)}: {len(tr):,} tokens")
        if len(np.unique(y[tr])) == 1:
            probs[te, y[tr][0]] = 1.0
            continue
        model = SGDClassifier(
            loss="log_loss", alpha=SGD_ALPHA, max_iter=SGD_EPOCHS, tol=None, random_state=seed, n_jobs=2
        ).fit(X[tr], y[tr])
        probs[np.ix_(te, model.classes_)] = model.predict_proba(X[te])
    return probs


def _nll(P: np.ndarray, y: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(P[np.arange(len(y)), y], 1e-12, None))))


def token_model(
    corpus: Corpus, progress: Progress | None = None, n_folds: int = 5, seed: int = 0, model: str = "auto"
) -> TokenModel:
    """corpus -> TokenModel: out-of-sample per-token probabilities over the IOB2 tags.

    Two models, cross-validated by document on the same folds (no token is scored by a model
    that saw its document): a logistic regression (SGDClassifier, log loss, one-vs-rest, on
    token_features) and a linear-chain CRF (crf.crf_token_probs), each temperature-scaled (one
    exponent fitted to the given tags). model 'auto' mixes them with the weight (of MIX_WEIGHTS)
    whose mixture has the lowest log loss of the given tags, 'sgd' or 'crf' takes one alone.
    """
    from review.ner.crf import crf_token_probs
    from review.text.models import temperature_scale

    if model not in TOKEN_MODELS:
        raise ReviewError(f"Unknown token model {model!r}: choose one of {', '.join(TOKEN_MODELS)}.")
    progress = progress or _noop
    t0 = time.perf_counter()
    iob2 = [to_iob2(s.tags, corpus.scheme) for s in corpus.sentences]
    y, names = pd.factorize(pd.Series([t for tags in iob2 for t in tags], dtype=object), sort=True)
    names = list(names)
    K = len(names)
    lens = np.array([len(s.tokens) for s in corpus.sentences])
    split = np.cumsum(lens)[:-1]
    if K == 1:
        return TokenModel(list(np.split(np.ones((len(y), 1)), split)), names, {"model": "one tag only"})
    if len(corpus.sentences) < 2:
        raise ReviewError("Cross-validation needs at least two sentences.")
    folds = _folds(corpus, n_folds)
    sent = np.repeat(np.arange(len(lens)), lens)
    cands: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    if model in ("auto", "sgd"):
        progress(0.0, f"Features of {corpus.n_tokens:,} tokens")
        t = time.perf_counter()
        X = token_features(corpus)
        share = 0.35 if model == "auto" else 1.0
        P = _sgd_probs(X, y, K, sent, folds, seed, lambda f, m: progress(share * f, m))
        cands["sgd"], _ = temperature_scale(_norm(P), y)
        seconds["sgd"] = round(time.perf_counter() - t, 1)
        del X
    if model in ("auto", "crf"):
        t = time.perf_counter()
        start = 0.35 if model == "auto" else 0.0
        progress(start, f"CRF on {len(folds)} folds")
        P = np.concatenate(
            crf_token_probs(corpus, iob2, names, folds, lambda f, m: progress(start + (1 - start) * f, m))
        )
        cands["crf"], _ = temperature_scale(_norm(P), y)
        seconds["crf"] = round(time.perf_counter() - t, 1)
    loss = {k: round(_nll(v, y), 5) for k, v in cands.items()}
    params = {"candidates": {k: {"log loss": loss[k], "seconds": seconds[k]} for k in cands}}
    if len(cands) == 1:
        ((name, probs),) = cands.items()
        params.update(model=name, why=f"{name} asked for")
    else:
        mixes = {w: _norm(w * cands["crf"] + (1 - w) * cands["sgd"]) for w in MIX_WEIGHTS}
        mix_loss = {w: _nll(P, y) for w, P in mixes.items()}
        w = min(MIX_WEIGHTS, key=lambda v: (round(mix_loss[v], 6), abs(v - 0.5)))
        probs, _ = temperature_scale(mixes[w], y)
        params.update(
            model=f"{w:g} CRF + {1 - w:g} logistic regression",
            crf_weight=w,
            mixture_log_loss={f"{v:g}": round(mix_loss[v], 5) for v in MIX_WEIGHTS},
            why=f"The CRF weight {w:g} gives the lowest log loss of the given tags "
            f"({mix_loss[w]:.4f}; CRF alone {loss['crf']:.4f}, logistic regression alone {loss['sgd']:.4f})",
        )
    params["folds"] = len(folds)
    params["cross-validation"] = "by document" if len({s.doc for s in corpus.sentences}) >= n_folds else "by sentence"
    progress(1.0, f"Model done in {time.perf_counter() - t0:.1f} s")
    return TokenModel(list(np.split(probs, split)), names, params)


def _norm(P: np.ndarray) -> np.ndarray:
    P = np.clip(P, 1e-6, None)
    return P / P.sum(axis=1, keepdims=True)


def token_probs(
    corpus: Corpus, progress: Progress | None = None, n_folds: int = 5, seed: int = 0, model: str = "auto"
) -> tuple[list[np.ndarray], list[str]]:
    """corpus -> (probs (n_sent,) arrays (n_tokens_i, K), tag_names (K,) IOB2 tags): token_model's."""
    res = token_model(corpus, progress, n_folds, seed, model)
    return res.probs, res.tag_names


def token_accuracy(corpus: Corpus, probs: Sequence[np.ndarray], tag_names: Sequence[str]) -> float:
    """Share of tokens whose argmax class is their given tag (IOB2)."""
    names = np.asarray(tag_names, dtype=object)
    hit = tot = 0
    for s, P in zip(corpus.sentences, probs):
        g = np.asarray(to_iob2(s.tags, corpus.scheme), dtype=object)
        hit += int((names[P.argmax(1)] == g).sum())
        tot += len(g)
    return hit / max(tot, 1)
