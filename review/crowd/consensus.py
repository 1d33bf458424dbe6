"""Several annotators per item: consensus labels, item quality and annotator quality.

Pure functions (no SQL, no UI) on a label matrix L (n_items, n_annotators) of class
indices, -1 where an annotator did not label an item (build it with `to_matrix`).

Methods (`consensus(method=...)`):

* 'majority'     -- the most common label per item, ties broken at random (seeded);
* 'dawid_skene'  -- EM on one confusion matrix (K, K) per annotator, initialised from the
                    majority vote, smoothed towards the crowd's pooled confusion matrix;
* 'crowdlab'     -- cleanlab.multiannotator (CROWDLAB) fed a text model's out-of-sample
                    probabilities, the model trained on the majority vote;
* 'text_prior'   -- Dawid-Skene posteriors train a text model on soft labels (sample
                    weights; 5-fold cross-fitting repeated 10 times and averaged, so each
                    item is only ever predicted by models that did not see it), and those
                    out-of-sample probabilities enter a second, symmetric ("one-coin")
                    Dawid-Skene as each item's prior: posterior ∝ model(x) · Π annotators.
                    One accuracy per annotator instead of a K x K matrix: most annotators
                    label few items. Annotator quality = expected accuracy (Σ_j prior_j ·
                    confusion[j, j]) from the full Dawid-Skene with the same prior, which
                    also sees class-specific skill;
* 'default'      -- one of the four above, chosen per dataset (select_method): 20% of the
                    labels are held out, every method is fitted on the rest, and the one
                    whose consensus best predicts the held-out labels (each annotator's
                    confusion matrix from their training labels) is fitted on all labels.

No method wins on every crowd (benchmarks/crowd_panel.py: the text prior on the MTurk
sentiment crowd, CROWDLAB on synthetic AG News and 20 Newsgroups crowds), hence the choice.
No gold label is ever an input.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

Progress = Callable[[float, str], None]
METHODS = ("majority", "dawid_skene", "crowdlab", "text_prior", "default")
SELECTION_ORDER = ("text_prior", "dawid_skene", "crowdlab", "majority")  # candidates of 'default'; ties go to the first
HOLDOUT_SHARE = 0.2  # share of the labels the selector holds out
MIN_HELDOUT = 30  # fewer held-out labels (on items that keep another): no comparison
DS_PRIOR_STRENGTH = 2.0  # pseudo-labels pulling each annotator towards the whole crowd (per true class
# for the full confusion matrix, in all for the one-coin accuracy)
TEXT_FOLDS = 5  # cross-fitting folds of the default's text model ...
TEXT_REPEATS = 10  # ... repeated with other splits and averaged (fewer on large data, see _repeats)


def _noop(fraction: float, message: str) -> None:
    pass


# ----------------------------------------------------------------------------- input


def to_matrix(
    item_ids: Sequence, annotators: Sequence, labels: Sequence[str], class_names: Sequence[str]
) -> tuple[np.ndarray, list, list]:
    """Long form (one row per annotator label; the three sequences have length r) ->
    (L, items, annotators).

    L: (n_items, n_annotators) int matrix of indices into class_names, -1 where an
    annotator did not label an item. Items are in order of first appearance, annotators
    sorted. A repeated (item, annotator) pair keeps its last label. A label is matched to
    class_names as is, then as text (so 1 matches "1"); any other label raises ValueError.
    """
    if not (len(item_ids) == len(annotators) == len(labels)):
        raise ValueError("item_ids, annotators and labels must have the same length")
    names = list(class_names)
    exact = {c: k for k, c in enumerate(names)}
    text = {str(c): k for k, c in enumerate(names)}
    items = list(dict.fromkeys(item_ids))
    try:
        people = sorted(set(annotators))
    except TypeError:  # mixed types: sort by their text
        people = sorted(set(annotators), key=str)
    row = {x: i for i, x in enumerate(items)}
    col = {a: j for j, a in enumerate(people)}
    L = np.full((len(items), len(people)), -1, dtype=np.int64)
    for it, a, lab in zip(item_ids, annotators, labels):
        k = exact.get(lab)
        if k is None:
            k = text.get(str(lab))
        if k is None:
            raise ValueError(f"label {lab!r} is not one of the classes {names}")
        L[row[it], col[a]] = k
    return L, items, people


def _long(L: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """L (n, M) -> (item, annotator, label) index arrays (r,) of the given labels."""
    i, m = np.nonzero(L >= 0)
    return i, m, L[i, m]


def _vote_counts(L: np.ndarray, n_classes: int) -> np.ndarray:
    """L (n, M) -> (n, K) float: how many annotators chose each class."""
    i, _, y = _long(L)
    return np.bincount(i * n_classes + y, minlength=len(L) * n_classes).reshape(len(L), n_classes).astype(float)


# ----------------------------------------------------------------------------- methods


def majority_vote(L: np.ndarray, n_classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """L (n, M) -> (labels (n,) int, agreement (n,) float).

    Ties are broken at random (seeded). agreement = share of the item's annotators who
    chose the vote. Items without any label get -1 and agreement 0.
    """
    L = np.asarray(L)
    counts = _vote_counts(L, n_classes)
    top = counts.max(axis=1) if n_classes else np.zeros(len(L))
    tied = (counts == top[:, None]) & (top[:, None] > 0)
    key = np.where(tied, np.random.default_rng(seed).random(counts.shape), -1.0)  # only tied classes compete
    vote = key.argmax(axis=1) if n_classes else np.zeros(len(L), dtype=np.int64)
    n_lab = counts.sum(axis=1)
    vote[n_lab == 0] = -1
    return vote, np.where(n_lab > 0, top / np.maximum(n_lab, 1), 0.0)


def dawid_skene(
    L: np.ndarray,
    n_classes: int,
    max_iter: int = 50,
    tol: float = 1e-6,
    item_prior: np.ndarray | None = None,
    symmetric: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dawid-Skene EM. L (n, M) -> (posteriors (n, K), confusions (M, K, K), priors (K,)).

    confusions[m, j, l] = P(annotator m says l | true class j). Initialised from the
    majority vote (vote shares). Smoothing: each annotator's matrix gets DS_PRIOR_STRENGTH
    pseudo-labels per true class distributed like the crowd's pooled matrix, so an
    annotator with a handful of labels counts like an average one until their labels say
    otherwise. symmetric=True is the one-coin model: one accuracy per annotator (diagonal),
    errors spread evenly over the other classes, smoothed with DS_PRIOR_STRENGTH
    pseudo-labels at the crowd's accuracy. item_prior (n, K), optional: an independent
    opinion per item (a model's out-of-sample probabilities) multiplied into the
    posteriors. Items without labels get the class priors (times item_prior).
    """
    L = np.asarray(L)
    n, M = L.shape
    K = int(n_classes)
    i, m, y = _long(L)
    T = _vote_counts(L, K)
    T[T.sum(axis=1) == 0] = 1.0
    T /= T.sum(axis=1, keepdims=True)
    log_item = None if item_prior is None else np.log(np.clip(np.asarray(item_prior, float), 1e-12, None))
    s = DS_PRIOR_STRENGTH
    for _ in range(max_iter):
        # M step: class priors and confusion matrices from the soft labels T
        priors = (T.sum(axis=0) + 1.0) / (n + K)
        counts = np.zeros((M, K, K))  # counts[m, j, l]: expected (true j, said l)
        for l in range(K):
            sel = y == l
            np.add.at(counts[:, :, l], m[sel], T[i[sel]])
        if symmetric:
            right = np.trace(counts, axis1=1, axis2=2)
            total = counts.sum(axis=(1, 2))
            crowd_acc = right.sum() / max(total.sum(), 1e-12)
            acc = np.clip((right + s * crowd_acc) / (total + s), 1e-6, 1 - 1e-6)
            conf = np.repeat(((1 - acc) / max(K - 1, 1))[:, None, None], K, axis=1).repeat(K, axis=2)
            conf[:, np.arange(K), np.arange(K)] = acc[:, None]
            if K == 1:
                conf[:] = 1.0
        else:
            pooled = counts.sum(axis=0) + 1e-3
            pooled /= pooled.sum(axis=1, keepdims=True)
            conf = counts + s * pooled[None]
            conf /= conf.sum(axis=2, keepdims=True)
        # E step: posterior of the true class given every label of the item
        logT = np.tile(np.log(priors), (n, 1))
        if log_item is not None:
            logT += log_item
        contrib = np.log(conf)[m, :, y]  # (r, K): log P(given label | true class k)
        for k in range(K):
            logT[:, k] += np.bincount(i, weights=contrib[:, k], minlength=n)
        logT -= logT.max(axis=1, keepdims=True)
        new = np.exp(logT)
        new /= new.sum(axis=1, keepdims=True)
        done = np.abs(new - T).max() < tol
        T = new
        if done:
            break
    return T, conf, priors


def expected_accuracy(confusions: np.ndarray, priors: np.ndarray) -> np.ndarray:
    """confusions (M, K, K), priors (K,) -> (M,) P(annotator's label is right) = Σ_j prior_j · conf[m, j, j]."""
    return (np.diagonal(confusions, axis1=1, axis2=2) * priors[None]).sum(axis=1)


def crowdlab(L: np.ndarray, pred_probs: np.ndarray) -> dict:
    """CROWDLAB via cleanlab.multiannotator.get_label_quality_multiannotator.

    L (n, M), pred_probs (n, K) out-of-sample. Returns a dict of 'consensus' (n,) int,
    'quality' (n,) consensus quality in [0, 1], 'agreement' (n,), 'posteriors' (n, K)
    (CROWDLAB's weighted average of model and annotators, rebuilt from the weights it
    returns; cleanlab picks the consensus with weights from the majority vote, so on a
    few items their argmax can differ from the consensus),
    'annotator_quality' (M,) in [0, 1], 'model_weight' float, 'annotator_weight' (M,).
    Items without labels get the model's class and quality 0, annotators without labels
    NaN. Where CROWDLAB does not apply (one annotator, or one label per item) the consensus
    is the majority vote scored by the model's probability of it.
    """
    from cleanlab.multiannotator import get_label_quality_multiannotator

    L = np.asarray(L)
    n, M = L.shape
    P = np.asarray(pred_probs, dtype=float)
    K = P.shape[1]
    has = (L >= 0).any(axis=1)
    who = (L >= 0).any(axis=0)
    vote, agr = majority_vote(L, K)
    out = {
        "consensus": P.argmax(axis=1),
        "quality": np.zeros(n),
        "agreement": agr,
        "posteriors": P.copy(),
        "annotator_quality": np.full(M, np.nan),
        "model_weight": float("nan"),
        "annotator_weight": np.full(M, np.nan),
    }
    sub = L[np.ix_(has, who)]
    if sub.shape[1] < 2 or ((sub >= 0).sum(axis=1) <= 1).all():
        out["consensus"][has] = vote[has]
        out["quality"][has] = P[has, vote[has]]
        return out
    frame = pd.DataFrame(np.where(sub >= 0, sub, np.nan).astype(float))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = get_label_quality_multiannotator(frame, P[has], return_weights=True, verbose=False)
    lq = res["label_quality"]
    cons = lq["consensus_label"].to_numpy().astype(int)
    out["consensus"][has] = cons
    out["quality"][has] = lq["consensus_quality_score"].to_numpy()
    out["agreement"][has] = lq["annotator_agreement"].to_numpy()
    out["annotator_quality"][who] = res["annotator_stats"]["annotator_quality"].reindex(range(sub.shape[1])).to_numpy()
    w_model = float(res["model_weight"])
    w_ann = np.asarray(res["annotator_weight"], dtype=float)
    out["model_weight"] = w_model
    out["annotator_weight"][who] = w_ann
    # posteriors as CROWDLAB forms them: model and annotators averaged with those weights, an
    # annotator's label counting as "consensus likelihood" for its class and the rest spread evenly
    n_ann = (sub >= 0).sum(axis=1)
    multi = n_ann > 1
    p_agree = float(np.mean(lq["annotator_agreement"].to_numpy()[multi])) if multi.any() else 1.0
    p_other = (1 - p_agree) / max(K - 1, 1)
    ii, mm, yy = _long(sub)
    post = w_model * P[has]
    post += np.bincount(ii, weights=w_ann[mm] * p_other, minlength=len(sub))[:, None]
    for k in range(K):
        s = yy == k
        post[:, k] += np.bincount(ii[s], weights=w_ann[mm[s]] * (p_agree - p_other), minlength=len(sub))
    out["posteriors"][has] = post / post.sum(axis=1, keepdims=True)
    return out


# ----------------------------------------------------------------------------- text model on soft labels


def _repeats(n: int, n_classes: int) -> int:
    """Repeats of the cross-fitting: TEXT_REPEATS, fewer on large data (about 1M weighted rows in all)."""
    return int(max(1, min(TEXT_REPEATS, 1_000_000 // max(1, n * n_classes * TEXT_FOLDS))))


def soft_text_probs(
    texts: Sequence[str | None],
    targets: np.ndarray,
    train: np.ndarray | None = None,
    n_folds: int = TEXT_FOLDS,
    repeats: int | None = None,
    seed: int = 0,
    progress: Progress = _noop,
) -> np.ndarray:
    """texts (n,), targets (n, K) soft labels (rows sum to 1), train (n,) bool rows to learn from
    -> (n, K) out-of-sample probabilities.

    The text model of review.text.models (hashed TF-IDF, MultinomialNB) fitted on soft labels:
    each training row enters once per class with the target's probability as sample
    weight. n_folds-fold cross-fitting, repeated with other splits and averaged; rows
    outside `train` get the mean of all the fold models. One temperature, fitted to the
    soft targets, then calibrates the averaged probabilities.
    """
    from sklearn.model_selection import KFold
    from sklearn.naive_bayes import MultinomialNB

    from review.text.models import NB_ALPHA, vectorise_text

    targets = np.asarray(targets, dtype=float)
    n, K = targets.shape
    train = np.ones(n, dtype=bool) if train is None else np.asarray(train, dtype=bool)
    rows = np.flatnonzero(train)
    other = np.flatnonzero(~train)
    folds = int(min(n_folds, len(rows)))
    if folds < 2 or K < 2:
        return np.full((n, K), 1.0 / max(K, 1))
    repeats = _repeats(n, K) if repeats is None else int(repeats)
    X, _ = vectorise_text(texts)
    P = np.zeros((n, K))
    for r in range(repeats):
        progress(r / repeats, f"Text model: cross-fitting {r + 1} of {repeats}")
        for tr, te in KFold(folds, shuffle=True, random_state=seed + r).split(rows):
            tr, te = rows[tr], rows[te]
            w = targets[tr].T.ravel()  # (K * len(tr),): class k's copy of every row
            keep = w > 1e-3
            model = MultinomialNB(alpha=NB_ALPHA)
            model.fit(X[np.tile(tr, K)[keep]], np.repeat(np.arange(K), len(tr))[keep], sample_weight=w[keep])
            cls = model.classes_
            P[np.ix_(te, cls)] += model.predict_proba(X[te])
            if len(other):
                P[np.ix_(other, cls)] += model.predict_proba(X[other]) / folds
    progress(1.0, "Text model done")
    P = np.clip(P / repeats, 1e-6, None)
    P /= P.sum(axis=1, keepdims=True)
    return _soft_temperature(P, targets, rows)


def _soft_temperature(P: np.ndarray, targets: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """P (n, K) -> P ** t renormalised, t in [0.01, 10] minimising cross-entropy to targets[rows]."""
    from scipy.optimize import minimize_scalar

    logp = np.log(P)

    def sharpen(t: float, lp: np.ndarray) -> np.ndarray:
        z = lp * t
        z -= z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    nll = lambda u: float(-(targets[rows] * sharpen(math.exp(u), logp[rows])).sum(axis=1).mean())
    u = minimize_scalar(nll, bounds=(math.log(0.01), math.log(10.0)), method="bounded").x
    out = np.clip(np.exp(sharpen(math.exp(u), logp)), 1e-6, None)
    return out / out.sum(axis=1, keepdims=True)


# ----------------------------------------------------------------------------- consensus


@dataclass
class CrowdResult:
    """Consensus of several annotators per item.

    consensus (n,) int class index (-1: item without labels); quality (n,) in [0, 1]
    (confidence in the consensus); agreement (n,) share of the item's annotators choosing
    the consensus; n_annotators (n,) int; posteriors (n, K); annotator_stats DataFrame, one
    row per annotator: annotator, quality, agreement, worst_class, n_labels; method.
    """

    consensus: np.ndarray
    quality: np.ndarray
    agreement: np.ndarray
    n_annotators: np.ndarray
    posteriors: np.ndarray
    annotator_stats: pd.DataFrame
    method: str
    details: dict = field(default_factory=dict)


def consensus(
    L: np.ndarray,
    class_names: Sequence[str],
    texts: Sequence[str] | None = None,
    method: str = "default",
    progress: Progress | None = None,
    *,
    annotators: Sequence | None = None,
    pred_probs: np.ndarray | None = None,
    seed: int = 0,
) -> CrowdResult:
    """L (n, M), class_names (K,), texts (n,) optional -> CrowdResult.

    method: 'majority', 'dawid_skene', 'crowdlab', 'text_prior' or 'default' (see the module
    docstring): 'default' picks one of the others per dataset by the held-out likelihood of
    the annotators' labels (select_method) and records why in details['selection'].
    'crowdlab' and 'text_prior' need evidence besides the labels: the texts (a text model,
    always out-of-sample, trained on the crowd's labels and never on gold), or
    pred_probs (n, K), another model's out-of-sample probabilities, used as given. Without
    either, 'text_prior' is the one-coin Dawid-Skene alone and 'crowdlab' raises ValueError.
    annotators (M,) names the annotator_stats rows (default 0..M-1).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    progress = progress or _noop
    L = np.asarray(L, dtype=np.int64)
    n, M = L.shape
    K = len(class_names)
    if L.size and L.max() >= K:
        raise ValueError(f"L has class index {int(L.max())} but only {K} classes")
    if pred_probs is not None:
        pred_probs = np.asarray(pred_probs, dtype=float)
        if pred_probs.shape != (n, K):
            raise ValueError(f"pred_probs must have shape {(n, K)}, not {pred_probs.shape}")
    details: dict = {}
    if method == "default":
        selection = select_method(L, K, texts, pred_probs, seed=seed, progress=lambda f, m: progress(0.5 * f, m))
        details["selection"] = selection
        method = selection.picked
        progress(0.5, f"Consensus by {method} on every label")
        fit = _fit(method, L, K, texts, pred_probs, seed, lambda f, m: progress(0.5 + 0.5 * f, m))
    else:
        fit = _fit(method, L, K, texts, pred_probs, seed, progress)
    post, cons, quality, ann_quality, more = fit
    details.update(more)
    n_ann = (L >= 0).sum(axis=1)
    cons = np.asarray(cons, dtype=np.int64).copy()
    quality = np.asarray(quality, dtype=float).copy()
    cons[n_ann == 0] = -1
    quality[n_ann == 0] = 0.0
    agreement = _item_agreement(L, cons)
    stats = annotator_table(L, cons, class_names, ann_quality, annotators)
    progress(1.0, "Consensus done")
    return CrowdResult(cons, np.clip(quality, 0.0, 1.0), agreement, n_ann, post, stats, method, details)


def _fit(method: str, L: np.ndarray, K: int, texts, pred_probs, seed: int, progress: Progress):
    """One named method on L -> (posteriors (n, K), consensus (n,), quality (n,),
    annotator quality (M,) or None (= agreement with the consensus), details)."""
    n = len(L)
    n_ann = (L >= 0).sum(axis=1)
    details: dict = {}
    if method == "majority":
        vote, vote_share = majority_vote(L, K, seed)
        counts = _vote_counts(L, K)
        counts[n_ann == 0] = 1.0
        return counts / counts.sum(axis=1, keepdims=True), vote, vote_share, None, details
    if method == "dawid_skene":
        progress(0.0, "Dawid-Skene")
        post, conf, priors = dawid_skene(L, K)
        details["class_priors"] = priors
        return post, post.argmax(axis=1), post.max(axis=1), expected_accuracy(conf, priors), details
    if method == "crowdlab":
        P = pred_probs
        if P is None:
            if texts is None:
                raise ValueError("crowdlab needs texts (for a text model) or pred_probs")
            from review.text.models import text_probs

            vote, _ = majority_vote(L, K, seed)
            present = np.bincount(vote[vote >= 0], minlength=K)
            if (present[present > 0] >= 2).all() and (present > 0).sum() >= 2:
                res = text_probs(texts, vote, K, progress=lambda f, msg: progress(0.8 * f, msg))
                P, details["model"] = res.pred_probs, res.params
            else:  # too few items to cross-validate: no model evidence
                P, details["model"] = np.full((n, K), 1.0 / K), None
        progress(0.8, "CROWDLAB")
        cl = crowdlab(L, P)
        details["model_weight"] = cl["model_weight"]
        details["pred_probs"] = P
        return cl["posteriors"], cl["consensus"], cl["quality"], cl["annotator_quality"], details
    # text_prior
    progress(0.0, "Dawid-Skene")
    P = pred_probs
    if P is None and texts is not None:
        first, _, _ = dawid_skene(L, K)
        P = soft_text_probs(
            texts, first, train=n_ann > 0, seed=seed, progress=lambda f, msg: progress(0.05 + 0.9 * f, msg)
        )
        details["model"] = {
            "model": "MultinomialNB on Dawid-Skene soft labels",
            "folds": TEXT_FOLDS,
            "repeats": _repeats(n, K),
        }
    if P is not None:
        details["pred_probs"] = P
    progress(0.95, "Dawid-Skene (one-coin) with the model as prior" if P is not None else "Dawid-Skene (one-coin)")
    post, _, priors = dawid_skene(L, K, item_prior=P, symmetric=True)
    # annotator quality from full confusion matrices with the same prior: they see
    # class-specific skill (an annotator calling nearly everything one class)
    _, conf, full_priors = dawid_skene(L, K, item_prior=P)
    details["class_priors"] = priors
    return post, post.argmax(axis=1), post.max(axis=1), expected_accuracy(conf, full_priors), details


# ----------------------------------------------------------------------------- choosing the method


@dataclass
class MethodSelection:
    """Why 'default' used the method it used (consensus(method='default')).

    candidates: the methods fitted; loglik: each one's mean log-likelihood of the held-out
    labels (NaN where not measured); picked; runner_up; margin = picked's minus the
    runner-up's mean, margin_se its standard error (paired over the held-out labels);
    n_heldout: labels held out; reason: one sentence for a person.
    """

    candidates: list[str]
    loglik: dict[str, float]
    picked: str
    runner_up: str | None
    margin: float
    margin_se: float
    n_heldout: int
    reason: str

    def as_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


def annotator_confusions(L: np.ndarray, posteriors: np.ndarray) -> np.ndarray:
    """L (n, M), posteriors (n, K) -> C (M, K, K), C[a, k, l] = P(a says l | true class k).

    Soft counts of each annotator's labels against the posteriors, plus one in every cell.
    """
    M = L.shape[1]
    K = posteriors.shape[1]
    i, m, y = _long(L)
    counts = np.ones((M, K, K))
    for l in range(K):
        s = y == l
        np.add.at(counts[:, :, l], m[s], posteriors[i[s]])
    return counts / counts.sum(axis=2, keepdims=True)


def heldout_loglik(
    L_train: np.ndarray, heldout: tuple[np.ndarray, np.ndarray, np.ndarray], consensus_: np.ndarray, K: int
) -> np.ndarray:
    """-> (r,) log p(held-out label | item): the consensus fitted on L_train as the item's class
    (uniform where it has none), the annotator's confusions from their training labels."""
    H = np.full((len(consensus_), K), 1.0 / K)
    ok = consensus_ >= 0
    H[ok] = 0.0
    H[np.flatnonzero(ok), consensus_[ok]] = 1.0
    C = annotator_confusions(L_train, H)
    i, m, y = heldout
    return np.log((H[i] * C[m, :, y]).sum(axis=1))


def select_method(
    L: np.ndarray,
    K: int,
    texts=None,
    pred_probs=None,
    *,
    seed: int = 0,
    share: float = HOLDOUT_SHARE,
    progress: Progress | None = None,
) -> MethodSelection:
    """Which consensus method predicts the annotators' own labels best on this dataset.

    Holds out `share` of the (item, annotator) labels (seeded), fits every applicable method
    (crowdlab and text_prior need texts or pred_probs) on the rest, and scores each by the mean
    log-likelihood of the held-out labels given its consensus and each annotator's confusion
    matrix from their training labels. The consensus enters as one label per item (not the
    method's posteriors: methods differ in how sharp those are, which would decide the
    comparison instead of which items they get right). Ties go to the earlier of
    SELECTION_ORDER. With fewer than MIN_HELDOUT held-out labels on items that keep another
    label, text_prior is used without a comparison.
    """
    progress = progress or _noop
    L = np.asarray(L, dtype=np.int64)
    evidence = texts is not None or pred_probs is not None
    cands = [m for m in SELECTION_ORDER if evidence or m not in ("crowdlab",)]
    i, m = np.nonzero(L >= 0)
    out = np.random.default_rng(seed).random(len(i)) < share
    L_train = L.copy()
    L_train[i[out], m[out]] = -1
    still = (L_train >= 0).sum(axis=1)
    if int((out & (still[i] > 0)).sum()) < MIN_HELDOUT or K < 2:
        nan = {c: float("nan") for c in cands}
        return MethodSelection(
            cands,
            nan,
            "text_prior",
            None,
            float("nan"),
            float("nan"),
            int(out.sum()),
            f"too few labels to compare methods (fewer than {MIN_HELDOUT} held-out labels on "
            "items with another label): Dawid-Skene with the text model as prior",
        )
    held = (i[out], m[out], L[i[out], m[out]])
    per: dict[str, np.ndarray] = {}
    for k, c in enumerate(cands):
        progress(k / len(cands), f"Choosing the consensus method: {c} on {1 - share:.0%} of the labels")
        _, cons, _, _, _ = _fit(c, L_train, K, texts, pred_probs, seed, _noop)
        cons = np.where(still > 0, cons, -1) if c in ("majority", "dawid_skene") else np.asarray(cons)
        per[c] = heldout_loglik(L_train, held, np.asarray(cons, dtype=np.int64), K)
    ll = {c: float(v.mean()) for c, v in per.items()}
    order = sorted(cands, key=lambda c: (-ll[c], cands.index(c)))
    best, second = order[0], (order[1] if len(order) > 1 else None)
    if second is None:
        margin = se = float("nan")
    else:
        d = per[best] - per[second]
        margin, se = float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
    reason = (
        f"{best} predicts {int(out.sum()):,} held-out labels best (mean log-likelihood {ll[best]:.4f}"
        + (f"; {second} {ll[second]:.4f}" if second else "")
        + ")"
    )
    return MethodSelection(cands, ll, best, second, margin, se, int(out.sum()), reason)


def _item_agreement(L: np.ndarray, cons: np.ndarray) -> np.ndarray:
    """(n,) share of the item's annotators whose label is the consensus (0 without labels)."""
    n_ann = (L >= 0).sum(axis=1)
    same = ((L == cons[:, None]) & (L >= 0)).sum(axis=1)
    return np.where(n_ann > 0, same / np.maximum(n_ann, 1), 0.0)


def annotator_table(
    L: np.ndarray,
    cons: np.ndarray,
    class_names: Sequence[str],
    quality: np.ndarray | None = None,
    annotators: Sequence | None = None,
) -> pd.DataFrame:
    """L (n, M), cons (n,) -> DataFrame (M rows): annotator, quality, agreement, worst_class, n_labels.

    agreement: share of their labels equal to the consensus (items with a consensus);
    worst_class: the consensus class on which they are least often right (per-class
    accuracy against the consensus, over the classes of the items they labelled; first
    class on ties, None if none); quality: given (M,), or their agreement.
    CrowdResult.annotator_stats; the audit stores it (table annotator_stats), which
    review.crowd.annotators.annotator_table reads back.
    """
    L = np.asarray(L)
    n, M = L.shape
    K = len(class_names)
    names = list(range(M)) if annotators is None else list(annotators)
    i, m, y = _long(L)
    c = np.asarray(cons)[i]
    ok = c >= 0
    cm = np.bincount((m[ok] * K + c[ok]) * K + y[ok], minlength=M * K * K).reshape(M, K, K)  # [m, consensus, said]
    per_class_n = cm.sum(axis=2)
    right = np.diagonal(cm, axis1=1, axis2=2)
    n_cmp = per_class_n.sum(axis=1)
    agreement = np.where(n_cmp > 0, right.sum(axis=1) / np.maximum(n_cmp, 1), np.nan)
    acc = np.where(per_class_n > 0, right / np.maximum(per_class_n, 1), np.inf)
    worst_idx = acc.argmin(axis=1)
    worst = [class_names[w] if n_cmp[j] > 0 else None for j, w in enumerate(worst_idx)]
    q = agreement if quality is None else np.asarray(quality, dtype=float)
    return pd.DataFrame(
        {
            "annotator": names,
            "quality": q,
            "agreement": agreement,
            "worst_class": worst,
            "n_labels": np.bincount(m, minlength=M),
        }
    )
