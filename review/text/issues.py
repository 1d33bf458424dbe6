"""cleanlab: label quality per row, the flagged set, suggested label, trust score, action."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

RELABEL_CONFIDENCE = 0.7  # a flagged row whose predicted class has at least this is "relabel"
INTEGRITY_TRUST = 0.25  # an integrity finding multiplies the trust score by this
FILTER_BY = "prune_by_class"  # cleanlab's rule: per given class, flag its estimated number of wrong labels,
# least self-confident first (beats prune_by_noise_rate on AG News recall and precision)


def queue_rank(trust: np.ndarray, is_issue: np.ndarray) -> np.ndarray:
    """(n,) 1-based rank in the review queue: flagged rows first, least trusted first, ties by row order."""
    n = len(trust)
    order = np.lexsort((np.arange(n), trust, ~is_issue))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(1, n + 1)
    return rank


def _present_classes(y: np.ndarray, P: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """cleanlab wants every class present: y (m,) labels >= 0, P (m, K) -> (y, P) on the present
    classes only (renumbered, rows renormalised) and the present classes' original indices."""
    present = np.unique(y)
    if len(present) == P.shape[1]:
        return y, P, present
    P = P[:, present]
    return np.searchsorted(present, y), P / P.sum(axis=1, keepdims=True), present


def score_rows(
    labels: np.ndarray,
    pred_probs: np.ndarray,
    class_names: Sequence[str],
    integrity_reasons: dict[int, list[str]] | None = None,
    suggestions: dict[int, str] | None = None,
    loss: np.ndarray | None = None,
) -> pd.DataFrame:
    """labels (n,) ints in [0, K) or -1 (no label / not in the label set); pred_probs (n, K);
    loss (n,): the team's own training loss per row, fused into the trust (review.text.signals.fuse_loss).

    Returns one row per item, in item order, with columns idx, quality, predicted_label,
    confidence, suggested_label, is_issue, rank (1 = most suspect), trust, action, reason.
    """
    from cleanlab.filter import find_label_issues  # cleanlab loads on use: `review ingest` never needs it
    from cleanlab.rank import get_label_quality_scores

    integrity_reasons = integrity_reasons or {}
    suggestions = suggestions or {}
    n, k = pred_probs.shape
    names = np.asarray(list(class_names), dtype=object)
    pred = pred_probs.argmax(axis=1)
    conf = pred_probs.max(axis=1)
    quality = np.zeros(n)
    is_issue = np.zeros(n, dtype=bool)
    lab = np.flatnonzero(labels >= 0)
    if len(lab):
        y, P, _ = _present_classes(labels[lab], pred_probs[lab])
        quality[lab] = get_label_quality_scores(y, P, method="self_confidence")
        is_issue[lab] = find_label_issues(y, P, filter_by=FILTER_BY, n_jobs=1)
    unl = labels < 0
    quality[unl] = 0.0
    flagged_integrity = np.zeros(n, dtype=bool)
    for i, why in integrity_reasons.items():
        # A finding whose own suggestion is the label the row already carries (a shifted
        # block's row whose neighbour had the same class) is no evidence against that label.
        if len(why) == 1 and labels[i] >= 0 and suggestions.get(int(i)) == names[labels[i]]:
            continue
        flagged_integrity[i] = True
    is_issue |= flagged_integrity | unl
    trust = quality * np.where(flagged_integrity, INTEGRITY_TRUST, 1.0)
    if loss is not None:
        from review.text.signals import fuse_loss

        trust = fuse_loss(trust, loss)
        loss_pct = np.argsort(np.argsort(-loss, kind="stable"), kind="stable") / max(1, n)  # 0 = highest loss

    reasons = np.empty(n, dtype=object)
    suggested = names[pred].copy()
    given_names = np.where(labels >= 0, names[np.clip(labels, 0, k - 1)], None)
    for i in np.flatnonzero(is_issue):
        parts = list(integrity_reasons.get(int(i), []))
        if labels[i] >= 0 and (not flagged_integrity[i] or pred[i] != labels[i]):
            parts.append(
                f"the model gives the given label {given_names[i]!r} {pred_probs[i, labels[i]]:.0%} "
                f"and predicts {names[pred[i]]!r} ({conf[i]:.0%})"
            )
        if loss is not None and loss_pct[i] < 0.1:
            parts.append(f"your model's training loss is in the top {loss_pct[i] + 1 / n:.1%} ({loss[i]:.3g})")
        reasons[i] = "; ".join(parts)
        if int(i) in suggestions:
            suggested[i] = suggestions[int(i)]
    action = np.where(is_issue, "needs review", "keep").astype(object)
    confident = is_issue & (conf >= RELABEL_CONFIDENCE) & (pred != labels) & (labels >= 0)
    action[confident] = "relabel"
    for i, lab in suggestions.items():
        if is_issue[i] and (labels[i] < 0 or lab != names[labels[i]]):
            action[i] = "relabel"
    rank = queue_rank(trust, is_issue)
    return pd.DataFrame(
        {
            "idx": np.arange(n),
            "quality": quality,
            "predicted_label": names[pred],
            "confidence": conf,
            "suggested_label": suggested,
            "is_issue": is_issue.astype(int),
            "rank": rank,
            "trust": trust,
            "action": action,
            "reason": reasons,
        }
    )


TOP_OF_QUEUE = 200  # "the top of the queue": the first this many suspects (fewer if fewer are flagged)
DOMINANCE_MIN_SHARE = 0.5  # a class holding at least this share of the top of the queue ...
DOMINANCE_RATIO = 2.0  # ... and this many times its share of cleanlab's estimated wrong labels is a warning


@dataclass
class ClassShare:
    """One class in a run: its share of the data, of the flagged rows, of the top of the queue,
    and cleanlab's estimate of its wrong labels (confident joint: rows given this class that
    belong to another) as a count and as a share of all estimated wrong labels."""

    label: str
    rows: int
    data_share: float
    flagged: int
    flagged_share: float
    top_share: float
    estimated_errors: int
    error_share: float

    def as_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass
class ClassBalance:
    classes: list[ClassShare]
    top: int  # how many suspects "the top of the queue" counted
    warning: str | None  # set when one class dominates the top beyond its estimated noise


def class_balance(
    labels: np.ndarray, pred_probs: np.ndarray, is_issue: np.ndarray, rank: np.ndarray, class_names: Sequence[str]
) -> ClassBalance:
    """labels (n,) ints (-1 none), pred_probs (n, K), is_issue (n,) bool, rank (n,) 1 = most suspect.

    Per class: share of the data, of the flagged rows and of the top of the queue, against
    cleanlab's estimate of its wrong labels. A class that fills the top of the queue far
    beyond its estimated share of the errors is the trap of a model failing on one class
    (a minority class mistaken for noise): the warning says so."""
    from cleanlab.dataset import rank_classes_by_label_quality

    k = len(class_names)
    lab = labels >= 0
    est = np.zeros(k)
    if lab.sum() >= 2 and len(np.unique(labels[lab])) >= 2:
        y, P, present = _present_classes(labels[lab], pred_probs[lab])
        ranked = rank_classes_by_label_quality(labels=y, pred_probs=P)
        est[present[ranked["Class Index"].to_numpy()]] = ranked["Label Issues"].to_numpy()
    flagged = is_issue & lab
    top_n = int(min(TOP_OF_QUEUE, flagged.sum()))
    top = np.zeros(len(labels), dtype=bool)
    if top_n:
        top[np.flatnonzero(flagged)[np.argsort(rank[flagged], kind="stable")[:top_n]]] = True
    n_lab = max(1, int(lab.sum()))
    classes = []
    for c, name in enumerate(class_names):
        of_c = labels == c
        classes.append(
            ClassShare(
                str(name),
                int(of_c.sum()),
                float(of_c.sum() / n_lab),
                int((flagged & of_c).sum()),
                float((flagged & of_c).sum() / max(1, flagged.sum())),
                float((top & of_c).sum() / max(1, top_n)),
                int(round(est[c])),
                float(est[c] / est.sum()) if est.sum() > 0 else 0.0,
            )
        )
    warning = None
    worst = max(classes, key=lambda c: c.top_share - c.error_share) if classes else None
    if (
        worst
        and top_n >= 20
        and worst.top_share >= DOMINANCE_MIN_SHARE
        and worst.top_share >= DOMINANCE_RATIO * max(worst.error_share, 1e-9)
    ):
        warning = (
            f"Class {worst.label!r} holds {worst.top_share:.0%} of the first {top_n} suspects, where cleanlab "
            f"estimates it carries {worst.error_share:.0%} of the wrong labels (and it is {worst.data_share:.0%} "
            f"of the rows): the model may be failing on this class rather than its labels being wrong. Check a "
            f"few of its suspects before relabelling, and compare the candidate models on the Model tab."
        )
    return ClassBalance(classes, top_n, warning)


CONSENSUS_FLAG_BELOW = 0.8  # an item whose consensus has less confidence than this is a suspect


def score_consensus(
    given: np.ndarray,
    consensus: np.ndarray,
    quality: np.ndarray,
    agreement: np.ndarray,
    n_annotators: np.ndarray,
    posteriors: np.ndarray,
    vote_counts: np.ndarray,
    class_names: Sequence[str],
) -> pd.DataFrame:
    """Multi-annotator items: given (n,) the majority vote (-1 none), consensus (n,) (-1 none),
    quality (n,) confidence in the consensus, agreement (n,), n_annotators (n,),
    posteriors (n, K), vote_counts (n, K) labels per class.

    Suspect: a shaky consensus (quality below CONSENSUS_FLAG_BELOW), a consensus that
    differs from the majority vote, or an item nobody labelled. Same columns as
    score_rows, plus consensus_label, agreement, n_annotators.
    """
    n, k = posteriors.shape
    names = np.asarray(list(class_names), dtype=object)
    has = consensus >= 0
    cons_names = np.where(has, names[np.clip(consensus, 0, k - 1)], None)
    differs = has & (given >= 0) & (consensus != given)
    is_issue = ~has | (quality < CONSENSUS_FLAG_BELOW) | differs
    reasons = np.empty(n, dtype=object)
    for i in np.flatnonzero(is_issue):
        if not has[i]:
            reasons[i] = "no annotator labelled this item"
            continue
        n_i = int(n_annotators[i])
        split = ", ".join(
            f"{int(vote_counts[i, c])} said {names[c]!r}"
            for c in np.argsort(-vote_counts[i], kind="stable")
            if vote_counts[i, c] > 0
        )
        why = (
            f"{n_i} annotator{'s' if n_i != 1 else ''} labelled it ({split}); the consensus is "
            f"{cons_names[i]!r} with {quality[i]:.0%} confidence"
        )
        if differs[i]:
            why += f", which overrules the majority vote {names[given[i]]!r}"
        reasons[i] = why
    action = np.where(is_issue, "needs review", "keep").astype(object)
    action[differs & (quality >= RELABEL_CONFIDENCE)] = "relabel"
    trust = np.where(has, quality, 0.0)
    rank = queue_rank(trust, is_issue)
    return pd.DataFrame(
        {
            "idx": np.arange(n),
            "quality": trust,
            "predicted_label": cons_names,
            "confidence": trust,
            "suggested_label": cons_names,
            "is_issue": is_issue.astype(int),
            "rank": rank,
            "trust": trust,
            "action": action,
            "reason": reasons,
            "consensus_label": cons_names,
            "agreement": agreement,
            "n_annotators": n_annotators,
        }
    )
