"""Suspect tokens: find_issues (cleanlab's token classification plus scheme violations)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .corpus import Corpus
from .schemes import from_iob2, scheme_violations, to_iob2


@dataclass
class TokenIssues:
    """What find_issues found. Positions are (sentence number, token number), 0-based."""

    sentence_quality: np.ndarray                # (n_sent,) min token quality of each sentence
    token_quality: list[np.ndarray]             # (n_sent,) arrays (n_tokens_i,)
    flagged: list[tuple[int, int]]              # sorted: cleanlab's issues and scheme violations
    predicted: list[list[str]]                  # (n_sent,) the model's tag per token, corpus's scheme
    predicted_iob2: list[list[str]]             # the same in IOB2
    confidence: list[np.ndarray]                # (n_sent,) arrays: the model's probability of its IOB2 tag
    reasons: dict[tuple[int, int], str]         # why, for every flagged token


def find_issues(corpus: Corpus, probs_per_sentence: Sequence[np.ndarray], tag_names: Sequence[str]) -> TokenIssues:
    """cleanlab token-classification suspects plus scheme violations.

    probs_per_sentence: (n_sent,) arrays (n_tokens_i, K) over tag_names (IOB2 tags; tags
    of the corpus not among them count as unscorable). Returns a TokenIssues.
    """
    from cleanlab.token_classification.filter import find_label_issues
    from cleanlab.token_classification.rank import get_label_quality_scores

    names = list(tag_names)
    index = {t: i for i, t in enumerate(names)}
    iob2 = [to_iob2(s.tags, corpus.scheme) for s in corpus.sentences]
    lens = [len(t) for t in iob2]
    if len(probs_per_sentence) != len(lens) or any(len(p) != n for p, n in zip(probs_per_sentence, lens)):
        raise ValueError("probs_per_sentence must hold one (n_tokens_i, K) array per sentence.")
    P = np.concatenate([np.asarray(p, dtype=np.float64) for p in probs_per_sentence]) if lens else np.zeros((0, len(names)))
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
    starts = np.concatenate(([0], np.cumsum(lens)))
    pred_iob2 = [list(np.asarray(names, dtype=object)[a]) for a in np.split(pred, split)]
    predicted = [from_iob2(p, corpus.scheme) for p in pred_iob2]
    for i, j in list(flagged):
        f = starts[i] + j
        g = corpus.sentences[i].tags[j]
        reasons[(i, j)] = (f"given {g}; the model predicts {predicted[i][j]} ({conf[f]:.0%}) and gives "
                           f"the given tag {P[f, y[f]]:.0%}")
    for f in np.flatnonzero(~ok):
        i = int(np.searchsorted(starts, f, side="right") - 1)
        flagged.add((i, int(f - starts[i])))
        reasons[(i, int(f - starts[i]))] = f"tag {corpus.sentences[i].tags[f - starts[i]]} is not among the model's classes"
    for i, s in enumerate(corpus.sentences):
        for j, why in scheme_violations(s.tags, corpus.scheme):
            flagged.add((i, j))
            tq[starts[i] + j] = min(tq[starts[i] + j], 0.0)
            reasons[(i, j)] = f"not valid {corpus.scheme}: {why}" + (f"; {reasons[(i, j)]}" if (i, j) in reasons else "")
    token_quality = np.split(tq, split)
    return TokenIssues(
        sentence_quality=np.array([q.min() if len(q) else 1.0 for q in token_quality]),
        token_quality=token_quality,
        flagged=sorted(flagged),
        predicted=predicted,
        predicted_iob2=pred_iob2,
        confidence=np.split(conf, split),
        reasons=reasons,
    )
