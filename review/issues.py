"""cleanlab: label quality per row, the flagged set, suggested label, trust score, action."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores

RELABEL_CONFIDENCE = 0.7     # a flagged row whose predicted class has at least this is "relabel"
INTEGRITY_TRUST = 0.25       # an integrity finding multiplies the trust score by this
FILTER_BY = "prune_by_class"  # cleanlab's rule: per given class, flag its estimated number of wrong labels,
                              # least self-confident first (beats prune_by_noise_rate on AG News recall and precision)


def score_rows(labels: np.ndarray, pred_probs: np.ndarray, class_names: Sequence[str],
               integrity_reasons: dict[int, list[str]] | None = None,
               suggestions: dict[int, str] | None = None) -> pd.DataFrame:
    """labels (n,) ints in [0, K) or -1 (no label / not in the label set); pred_probs (n, K).

    Returns one row per item, in item order, with columns idx, quality, predicted_label,
    confidence, suggested_label, is_issue, rank (1 = most suspect), trust, action, reason.
    """
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
        y = labels[lab]
        P = pred_probs[lab]
        present = np.unique(y)
        if len(present) < k:  # cleanlab wants every class present: score on the present ones
            remap = {c: i for i, c in enumerate(present)}
            P = P[:, present]
            P = P / P.sum(axis=1, keepdims=True)
            y = np.array([remap[c] for c in y])
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
        reasons[i] = "; ".join(parts)
        if int(i) in suggestions:
            suggested[i] = suggestions[int(i)]
    action = np.where(is_issue, "needs review", "keep").astype(object)
    confident = is_issue & (conf >= RELABEL_CONFIDENCE) & (pred != labels) & (labels >= 0)
    action[confident] = "relabel"
    for i, lab in suggestions.items():
        if is_issue[i] and (labels[i] < 0 or lab != names[labels[i]]):
            action[i] = "relabel"
    order = np.lexsort((np.arange(n), trust, ~is_issue))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(1, n + 1)
    return pd.DataFrame({
        "idx": np.arange(n), "quality": quality, "predicted_label": names[pred], "confidence": conf,
        "suggested_label": suggested, "is_issue": is_issue.astype(int), "rank": rank, "trust": trust,
        "action": action, "reason": reasons,
    })


CONSENSUS_FLAG_BELOW = 0.8   # an item whose consensus has less confidence than this is a suspect


def score_consensus(given: np.ndarray, consensus: np.ndarray, quality: np.ndarray, agreement: np.ndarray,
                    n_annotators: np.ndarray, posteriors: np.ndarray, vote_counts: np.ndarray,
                    class_names: Sequence[str]) -> pd.DataFrame:
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
        split = ", ".join(f"{names[c]} {int(vote_counts[i, c])}" for c in np.argsort(-vote_counts[i]) if vote_counts[i, c] > 0)
        why = f"{int(n_annotators[i])} annotator(s): {split}; consensus {cons_names[i]!r} at {quality[i]:.0%}"
        if differs[i]:
            why += f", which overrules the majority vote {names[given[i]]!r}"
        reasons[i] = why
    action = np.where(is_issue, "needs review", "keep").astype(object)
    action[differs & (quality >= RELABEL_CONFIDENCE)] = "relabel"
    trust = np.where(has, quality, 0.0)
    order = np.lexsort((np.arange(n), trust, ~is_issue))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(1, n + 1)
    return pd.DataFrame({
        "idx": np.arange(n), "quality": trust, "predicted_label": cons_names, "confidence": trust,
        "suggested_label": cons_names, "is_issue": is_issue.astype(int), "rank": rank, "trust": trust,
        "action": action, "reason": reasons, "consensus_label": cons_names, "agreement": agreement,
        "n_annotators": n_annotators,
    })
