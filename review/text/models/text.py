"""Texts: vectorised once, a portfolio of fast models, the one (or the mixture) chosen per dataset.

No single model ranks wrong labels best everywhere: multinomial Naive Bayes is strong on
short texts with few classes and gives small or confusable classes near-zero probability
on long texts with many; a discriminative linear model is the reverse. So the choice is
made per dataset, from out-of-sample evidence on the labels the team gave:

1. the texts are vectorised once (hashed TF-IDF of words and word pairs; character
   n-grams too where texts are short, where words are few);
2. every candidate (Naive Bayes and logistic regression at two strengths each, per view)
   is fitted on the first fold's training rows and scored on its held-out rows by the
   log-likelihood of the given labels, after temperature scaling;
3. the best candidate of each family finishes the remaining folds (the first fold's
   predictions are kept), at most FINALISTS of them;
4. a greedy mixture of the finalists (Caruana's ensemble selection, with replacement) is
   kept where it predicts the given labels better than the best one alone, then
   temperature-scaled once more.

Everything is seeded: the same data gives the same choice and the same probabilities.
Every candidate's evidence and the reason for the choice are kept with the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
from sklearn.linear_model import SGDClassifier

from review.errors import ReviewError
from review.text.models.base import CandidateScore, ModelResult, Progress, noop
from review.text.models.crossval import (
    cross_val_probs,
    fold_rows,
    fold_splits,
    mean_nll,
    predict_fold,
    temperature_scale,
)

HASH_FEATURES = 2**20  # hashing buckets for words and word pairs (and for character n-grams)
NB_ALPHA = 1.0  # the Naive Bayes smoothing used where one fixed text model is wanted (crowd prior)
NB_ALPHAS = (1.0, 0.1)  # Naive Bayes smoothing candidates
LOGREG_ALPHAS = (1e-5, 1e-4)  # L2 strength candidates of the logistic regression (per row, as SGDClassifier means it)
LOGREG_EPOCHS = 3  # passes over the data: 3, 5 and 15 give the same log loss on the panel (within 0.002)
FINALISTS = 2  # candidates that finish every fold (the best of each family first)
ENSEMBLE_STEPS = 4  # members of the greedy mixture at most (with replacement: weights in quarters)
CHARS_MEDIAN_LENGTH = 400  # character n-grams are a candidate view where the median text is this short ...
CHARS_MAX_TOTAL = 20_000_000  # ... and all texts together are at most this many characters (vectorising cost)
FAMILIES = ("nb", "logreg")
EMBEDDING_CS = (1.0, 0.1)  # inverse L2 strength of the logistic regression on the team's own embeddings
MODEL_CHOICES = ("auto", "nb", "logreg", "nb-chars", "logreg-chars", "logreg-embeddings")


class FastNB:
    """Multinomial Naive Bayes (as sklearn's MultinomialNB with fit_prior) whose class counts
    come from a sparse one-hot product, several times faster on wide hashed matrices.
    sample_weight is honoured (the crowd model fits soft labels with it)."""

    def __init__(self, alpha: float = 1.0):
        self.alpha = alpha

    def fit(self, X, y, sample_weight=None):
        y = np.asarray(y)
        self.classes_, idx = np.unique(y, return_inverse=True)
        w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        onehot = sp.csr_matrix((w, (idx, np.arange(len(y)))), shape=(len(self.classes_), len(y)))
        counts = np.asarray((onehot @ X).todense(), dtype=np.float64) + self.alpha
        self.feature_log_prob_ = (np.log(counts) - np.log(counts.sum(axis=1, keepdims=True))).astype(np.float32)
        prior = np.bincount(idx, weights=w, minlength=len(self.classes_))
        self.class_log_prior_ = np.log(np.clip(prior, 1e-12, None) / prior.sum())
        return self

    def predict_proba(self, X):
        jll = np.asarray(X @ self.feature_log_prob_.T, dtype=np.float64) + self.class_log_prior_
        jll -= jll.max(axis=1, keepdims=True)
        p = np.exp(jll)
        return p / p.sum(axis=1, keepdims=True)


@dataclass
class _Candidate:
    score: CandidateScore
    make: Callable
    fold1: np.ndarray | None = None  # first fold's predictions (test rows, then unlabelled rows)
    probs: np.ndarray | None = None  # all folds, temperature-scaled


def _tfidf(counts, n_buckets: int):
    """Drop buckets seen in a single document (like min_df=2) unless that drops them all; sublinear TF-IDF."""
    df = np.bincount(counts.indices, minlength=n_buckets)  # documents per bucket (indices unique per row)
    keep = np.flatnonzero(df >= 2)
    if len(keep) == 0:  # tiny data: every n-gram occurs once
        keep = np.flatnonzero(df) if df.any() else np.zeros(1, dtype=np.int64)  # (no words at all: one empty column)
    return TfidfTransformer(sublinear_tf=True).fit_transform(counts[:, keep]), int(len(keep))


def vectorise_text(texts: Sequence[str | None]):
    """texts (n,) -> sparse TF-IDF matrix (n, V). Fitted once, unsupervised, on all rows.

    Words and word pairs are hashed into 2**20 buckets (no vocabulary to build: about
    twice as fast as TfidfVectorizer, and memory stays flat on large data).
    """
    hv = HashingVectorizer(
        n_features=HASH_FEATURES, alternate_sign=False, ngram_range=(1, 2), norm=None, dtype=np.float32
    )
    X, n = _tfidf(hv.transform([t or "" for t in texts]), HASH_FEATURES)
    return X, {"vectoriser": "hashing-tfidf-1-2gram", "features": n}


def vectorise_chars(texts: Sequence[str | None]):
    """texts (n,) -> sparse TF-IDF matrix of character 2- to 5-grams within word boundaries."""
    hv = HashingVectorizer(
        analyzer="char_wb",
        ngram_range=(2, 5),
        n_features=HASH_FEATURES,
        alternate_sign=False,
        norm=None,
        dtype=np.float32,
    )
    X, n = _tfidf(hv.transform([t or "" for t in texts]), HASH_FEATURES)
    return X, {"vectoriser": "hashing-tfidf-char-2-5gram", "features": n}


def chars_view_reason(texts: Sequence[str | None]) -> str | None:
    """None where character n-grams are a candidate view, else why not (for the run's record)."""
    lengths = np.fromiter((len(t or "") for t in texts), dtype=np.int64, count=len(texts))
    median, total = float(np.median(lengths)) if len(lengths) else 0.0, int(lengths.sum())
    if median > CHARS_MEDIAN_LENGTH:
        return f"texts are long (median {median:,.0f} characters > {CHARS_MEDIAN_LENGTH}): words carry the signal"
    if total > CHARS_MAX_TOTAL:
        return f"{total:,} characters in all (> {CHARS_MAX_TOTAL:,}): too slow to vectorise twice"
    return None


def _logreg(alpha: float) -> Callable:
    return lambda: SGDClassifier(
        loss="log_loss", alpha=alpha, max_iter=LOGREG_EPOCHS, tol=None, random_state=0, n_jobs=-1
    )


def _nb(alpha: float) -> Callable:
    return lambda: FastNB(alpha=alpha)


def _dense_logreg(c: float) -> Callable:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return lambda: make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=300))


def _portfolio(views: Sequence[str], model: str) -> list[_Candidate]:
    out = []
    for view in views:
        if view == "embeddings":  # dense vectors: no counts for Naive Bayes
            families = (("logreg", EMBEDDING_CS, _dense_logreg, "C"),)
        else:
            families = (("nb", NB_ALPHAS, _nb, "alpha"), ("logreg", LOGREG_ALPHAS, _logreg, "alpha"))
        for family, strengths, make, what in families:
            name = family if view == "words" else f"{family}-{view}"
            if model != "auto" and model != name:
                continue
            for a in strengths:
                out.append(_Candidate(CandidateScore(f"{name}({what}={a:g})", view, family, a), make(a)))
    return out


def _greedy_mixture(members: list[_Candidate], labels: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """Caruana's ensemble selection with replacement on the finalists' probabilities -> (mixture, weights)."""
    probs = [m.probs for m in members]
    nlls = [mean_nll(p, labels) for p in probs]
    bag = [int(np.argmin(nlls))]
    mix, best = probs[bag[0]], nlls[bag[0]]
    for _ in range(ENSEMBLE_STEPS - 1):
        trials = [(mean_nll((mix * len(bag) + p) / (len(bag) + 1), labels), j) for j, p in enumerate(probs)]
        score, j = min(trials)
        if score >= best - 1e-4:
            break
        mix, best = (mix * len(bag) + probs[j]) / (len(bag) + 1), score
        bag.append(j)
    weights = np.bincount(bag, minlength=len(members)) / len(bag)
    return mix, weights.tolist()


def text_probs(
    texts: Sequence[str | None],
    labels: np.ndarray,
    n_classes: int,
    n_folds: int = 5,
    progress: Progress = noop,
    model: str = "auto",
    seed: int = 0,
    exclude: np.ndarray | None = None,
    embeddings: np.ndarray | None = None,
) -> ModelResult:
    """texts (n,), labels (n,) ints (-1 unlabelled) -> ModelResult with (n, K) out-of-sample probabilities.

    model: "auto" (the portfolio chooses) or one of MODEL_CHOICES to force a family (its
    strength is still chosen on the first fold). exclude (n,) bool: rows never trained on
    (a second pass without the rows a first pass flagged); they are still predicted.
    embeddings (n, d): the team's own vectors, one more candidate view.
    """
    if model not in MODEL_CHOICES:
        raise ReviewError(f"Unknown model {model!r}: choose one of {', '.join(MODEL_CHOICES)}.")
    t0 = time.perf_counter()
    progress(0.0, f"Vectorising {len(texts):,} texts")
    X_words, winfo = vectorise_text(texts)
    views, info = {"words": X_words}, {"words": winfo}
    chars_why = chars_view_reason(texts)
    if chars_why is None and (model == "auto" or model.endswith("-chars")):
        progress(0.05, "Vectorising character n-grams")
        views["chars"], info["chars"] = vectorise_chars(texts)
    elif model.endswith("-chars"):
        raise ReviewError(f"--model {model} needs character n-grams, which this dataset does not get: {chars_why}.")
    if embeddings is not None:
        views["embeddings"], info["embeddings"] = embeddings, {"dimensions": int(embeddings.shape[1])}
    elif model.endswith("-embeddings"):
        raise ReviewError(f"--model {model} needs the team's own embeddings: this dataset was uploaded without them.")
    cands = _portfolio(list(views), model)
    splits = fold_splits(labels, n_folds, seed)
    tr0, te0 = splits[0]
    if exclude is not None:
        tr0 = tr0[~exclude[tr0]]

    # 1. every candidate on the first fold
    for j, c in enumerate(cands):
        progress(0.1 + 0.3 * j / len(cands), f"Fold 1: trying {c.score.name} on {c.score.view}")
        t = time.perf_counter()
        c.fold1 = predict_fold(views[c.score.view], labels, n_classes, c.make, tr0, fold_rows(te0, labels))
        scaled, _ = temperature_scale(np.clip(c.fold1[: len(te0)], 1e-6, None), labels[te0])
        c.score.fold1_nll = mean_nll(scaled, labels[te0])
        c.score.seconds = time.perf_counter() - t

    # 2. the best of each family (and view) finishes the folds
    best: dict[tuple, _Candidate] = {}
    for c in cands:
        key = (c.score.view, c.score.family)
        if key not in best or c.score.fold1_nll < best[key].score.fold1_nll:
            best[key] = c
    finalists = sorted(best.values(), key=lambda c: c.score.fold1_nll)[:FINALISTS]
    for j, c in enumerate(finalists):
        base, span = 0.4 + 0.5 * j / len(finalists), 0.5 / len(finalists)
        t = time.perf_counter()
        P = cross_val_probs(
            views[c.score.view],
            labels,
            n_classes,
            c.make,
            splits=splits,
            done={0: c.fold1},
            exclude=exclude,
            progress=lambda f, m, c=c, base=base, span=span: progress(base + span * f, f"{c.score.name}: {m}"),
        )
        c.probs, _ = temperature_scale(P, labels)
        c.score.nll = mean_nll(c.probs, labels)
        c.score.seconds += time.perf_counter() - t

    # 3. the mixture, if it predicts the given labels better than the best finalist alone
    progress(0.92, "Choosing the model")
    mix, weights = _greedy_mixture(finalists, labels)
    for c, w in zip(finalists, weights):
        c.score.weight = w
    P, temperature = temperature_scale(mix, labels)
    chosen = [c for c in finalists if c.score.weight > 0]
    scores = [c.score for c in cands]
    params = {
        "model": " + ".join(
            f"{c.score.weight:.2g} × {c.score.name} on {c.score.view}"
            if len(chosen) > 1
            else f"{c.score.name} on {c.score.view}"
            for c in chosen
        ),
        "selection": model,
        "folds": len(splits),
        "temperature": round(temperature, 3),
        "log loss": round(mean_nll(P, labels), 4),
        "views": info,
        "chars": "used" if "chars" in views else (chars_why or f"not a candidate for --model {model}"),
        "choice": _why(chosen, finalists, cands, P, labels, model),
        "candidates": [s.as_dict() for s in scores],
        "seed": seed,
    }
    if exclude is not None:
        params["excluded from training"] = int(exclude.sum())
    progress(1.0, "Model chosen")
    return ModelResult(P, params, time.perf_counter() - t0, scores, words=X_words)


def _why(chosen, finalists, cands, P, labels, model: str) -> str:
    """One sentence for the run's record: what was chosen and on what evidence."""
    nll = mean_nll(P, labels)
    alone = ", ".join(f"{c.score.name} on {c.score.view} {c.score.nll:.3f}" for c in finalists)
    forced = f"--model {model} forced the family; " if model != "auto" else ""
    if len(chosen) > 1:
        return (
            f"{forced}a mixture predicts the given labels out of sample better (log loss {nll:.3f}) "
            f"than any finalist alone ({alone}); {len(cands)} candidates tried on fold 1."
        )
    return (
        f"{forced}{chosen[0].score.name} on {chosen[0].score.view} predicts the given labels out of sample best "
        f"(log loss {nll:.3f}; finalists {alone}); no mixture did better; {len(cands)} candidates tried on fold 1."
    )
