"""Suspect tokens: find_issues (cleanlab's token classification plus scheme violations)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from review.ner.consistency import TagConsistency, tag_inconsistency
from review.ner.corpus import Corpus
from review.ner.schemes import from_iob2, scheme_violations, to_iob2

# How tag inconsistency enters the ranking and the flags. Chosen on benchmarks/ner_conll.py
# (CoNLL-2003 train+dev+test with injected errors, seeds 0-2; sentence AP on the test part):
# token quality x (1 - 0.8 x inconsistency) beat the model alone on every seed (0.666 vs 0.631
# mean, worst 0.655 vs 0.617; weights 0.75-0.9 within 0.003; 1.0 collapses, since a string seen
# twice alike would zero a token); min over tokens beat softmin (0.05: 0.501, 0.1: 0.440).
FUSE_WEIGHT = 0.8
# A token is also flagged when its fused quality is below this (cleanlab's own threshold misses
# errors whose token quality is low but not lowest in its class). Measured with the mixed model,
# seeds 0-2: at 0.1 recall of every injected kind 0.918-1.0 in process but 0.897 for PER<->ORG in
# one app run (seed 1), 3,470 flagged sentences, 44% holding an injected error; at 0.15 0.943-1.0,
# 3,960 sentences, 39%; at 0.2 0.954-1.0, 4,610, 34%. 0.15 keeps every kind above 0.9 with margin.
FLAG_QUALITY = 0.15


@dataclass
class TokenIssues:
    """What find_issues found. Positions are (sentence number, token number), 0-based."""

    sentence_quality: np.ndarray  # (n_sent,) min token quality of each sentence
    token_quality: list[np.ndarray]  # (n_sent,) arrays (n_tokens_i,)
    flagged: list[tuple[int, int]]  # sorted: cleanlab's issues and scheme violations
    predicted: list[list[str]]  # (n_sent,) the model's tag per token, corpus's scheme
    predicted_iob2: list[list[str]]  # the same in IOB2
    confidence: list[np.ndarray]  # (n_sent,) arrays: the model's probability of its IOB2 tag
    reasons: dict[tuple[int, int], str]  # why, for every flagged token
    model_quality: list[np.ndarray] | None = None  # (n_sent,) cleanlab's token quality before fusing
    consistency: TagConsistency | None = None  # how each string is tagged across the corpus


def find_issues(
    corpus: Corpus,
    probs_per_sentence: Sequence[np.ndarray],
    tag_names: Sequence[str],
    consistency: TagConsistency | bool = True,
) -> TokenIssues:
    """cleanlab token-classification suspects, tag inconsistency and scheme violations.

    probs_per_sentence: (n_sent,) arrays (n_tokens_i, K) over tag_names (IOB2 tags; tags
    of the corpus not among them count as unscorable). consistency: a TagConsistency of the
    corpus, True to compute it, False for the model alone. Token quality is cleanlab's,
    times (1 - FUSE_WEIGHT x the token's inconsistency); flagged: cleanlab's issues, tokens
    whose fused quality is below FLAG_QUALITY, and scheme violations. Returns a TokenIssues.
    """
    from cleanlab.token_classification.filter import find_label_issues
    from cleanlab.token_classification.rank import get_label_quality_scores

    names = list(tag_names)
    index = {t: i for i, t in enumerate(names)}
    iob2 = [to_iob2(s.tags, corpus.scheme) for s in corpus.sentences]
    lens = [len(t) for t in iob2]
    if len(probs_per_sentence) != len(lens) or any(len(p) != n for p, n in zip(probs_per_sentence, lens)):
        raise ValueError("probs_per_sentence must hold one (n_tokens_i, K) array per sentence.")
    P = (
        np.concatenate([np.asarray(p, dtype=np.float64) for p in probs_per_sentence])
        if lens
        else np.zeros((0, len(names)))
    )
    y = np.array([index.get(t, -1) for tags in iob2 for t in tags], dtype=np.int64)
    P = np.clip(P, 1e-9, None)
    P = P / P.sum(axis=1, keepdims=True)
    pred = P.argmax(axis=1)
    conf = P.max(axis=1)
    split = np.cumsum(lens)[:-1]

    tq = np.zeros(len(y))
    flagged: set[tuple[int, int]] = set()
    reasons: dict[tuple[int, int], str] = {}
    ok = y >= 0
    present = np.unique(y[ok])
    if len(present) >= 2:
        remap = np.full(len(names), -1)
        remap[present] = np.arange(len(present))
        Pp = P[:, present]
        Pp = Pp / Pp.sum(axis=1, keepdims=True)
        yy = np.where(ok, remap[np.clip(y, 0, None)], 0)
        labels_l = [a.tolist() for a in np.split(yy, split)]
        probs_l = np.split(Pp, split)
        _, token_info = get_label_quality_scores(labels_l, probs_l)
        tq = np.concatenate([np.asarray(s, dtype=float) for s in token_info])
        issues = find_label_issues(labels_l, probs_l, n_jobs=1)
        flagged.update((int(i), int(j)) for i, j in issues)
    tq[~ok] = 0.0
    model_tq = tq.copy()
    tc = tag_inconsistency(corpus) if consistency is True else (consistency or None)
    if tc is not None:
        c = np.concatenate(tc.token_score) if lens else np.zeros(0)
        tq = tq * (1.0 - FUSE_WEIGHT * c)
    low = np.flatnonzero((tq < FLAG_QUALITY) & ok) if len(present) >= 2 else np.zeros(0, dtype=np.int64)
    starts = np.concatenate(([0], np.cumsum(lens)))
    for f in low:
        i = int(np.searchsorted(starts, f, side="right") - 1)
        flagged.add((i, int(f - starts[i])))
    pred_iob2 = [list(np.asarray(names, dtype=object)[a]) for a in np.split(pred, split)]
    predicted = [from_iob2(p, corpus.scheme) for p in pred_iob2]
    for i, j in list(flagged):
        f = starts[i] + j
        g = corpus.sentences[i].tags[j]
        reasons[(i, j)] = (
            f"given {g}; the model predicts {predicted[i][j]} ({conf[f]:.0%}) and gives the given tag {P[f, y[f]]:.0%}"
        )
        why = tc.reason(i, j) if tc is not None else None
        if why:
            reasons[(i, j)] += f"; {why}"
    for f in np.flatnonzero(~ok):
        i = int(np.searchsorted(starts, f, side="right") - 1)
        flagged.add((i, int(f - starts[i])))
        reasons[(i, int(f - starts[i]))] = (
            f"tag {corpus.sentences[i].tags[f - starts[i]]} is not among the model's classes"
        )
    for i, s in enumerate(corpus.sentences):
        for j, why in scheme_violations(s.tags, corpus.scheme):
            flagged.add((i, j))
            tq[starts[i] + j] = min(tq[starts[i] + j], 0.0)
            reasons[(i, j)] = f"not valid {corpus.scheme}: {why}" + (
                f"; {reasons[(i, j)]}" if (i, j) in reasons else ""
            )
    token_quality = np.split(tq, split)
    return TokenIssues(
        sentence_quality=np.array([q.min() if len(q) else 1.0 for q in token_quality]),
        token_quality=token_quality,
        flagged=sorted(flagged),
        predicted=predicted,
        predicted_iob2=pred_iob2,
        confidence=np.split(conf, split),
        reasons=reasons,
        model_quality=np.split(model_tq, split),
        consistency=tc,
    )
