"""Tag inconsistency: the same token string tagged differently across the corpus.

The NER cousin of conflicting duplicates. Every surface string of a given entity (and every
single token inside one) is looked up wherever it occurs; each occurrence is read as one of
    TYPE    -- exactly one entity of that type (it starts and ends there),
    O       -- every token outside an entity,
    inside  -- strictly inside a longer entity,
    mixed   -- anything else (part entity, part outside; or across an entity's edge).
A string whose occurrences mostly agree (the majority reading) makes every other occurrence a
suspect, scored by how lopsided the split is: the share of the string's other occurrences
that read the majority way. Pure functions on a Corpus; no SQL, no UI.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from review.ner.corpus import Corpus
from review.ner.schemes import entity_spans, to_iob2

MAX_TOKENS = 4  # longest surface string looked up
MIN_AGREEING = 2  # other occurrences that must read the majority way before one is suspect


@dataclass
class Variation:
    """One surface string whose occurrences are tagged differently.

    text: the tokens joined by spaces; n: occurrences; split: reading -> count, most common
    first; majority: the most common reading; lopsided: its share of all occurrences;
    minority: (sentence, start, end) of each occurrence not read the majority way, with its
    reading in readings (same order).
    """

    text: str
    n: int
    split: dict[str, int]
    majority: str
    lopsided: float
    minority: list[tuple[int, int, int]] = field(default_factory=list)
    readings: list[str] = field(default_factory=list)


@dataclass
class TagConsistency:
    """What tag_inconsistency found.

    token_score (n_sent,) arrays (n_tokens_i,) in [0, 1]: for each token, the strongest
    evidence that its tag disagrees with how the same string is tagged elsewhere (0: none);
    variations: strings with a lopsided split, most lopsided (then most frequent) first.
    """

    token_score: list[np.ndarray]
    variations: list[Variation]
    token_variation: list[np.ndarray] = field(default_factory=list)  # index into variations, -1: none

    def reason(self, i: int, j: int) -> str | None:
        """Why token j of sentence i is suspect, in one sentence (None if it is not)."""
        if not self.token_variation or self.token_variation[i][j] < 0:
            return None
        v = self.variations[int(self.token_variation[i][j])]
        here = next((r for (si, a, b), r in zip(v.minority, v.readings) if si == i and a <= j < b), "?")
        return (
            f"{v.text!r} is {_say(v.majority)} in {v.split[v.majority]:,} of its {v.n - 1:,} other "
            f"occurrences; {_say(here)} here"
        )

    def sentence_score(self) -> np.ndarray:
        """(n_sent,) the largest token_score of each sentence (0 for an empty one)."""
        return np.array([float(s.max()) if len(s) else 0.0 for s in self.token_score])


def _say(reading: str) -> str:
    return {"O": "outside any entity", "inside": "inside a longer entity", "mixed": "partly an entity"}.get(
        reading, f"tagged {reading}"
    )


def _spans(tags: Sequence[str]) -> tuple[np.ndarray, list[tuple[int, int, str]]]:
    """IOB2 tags -> (span id per token, -1 outside; the spans (start, end, type))."""
    spans = entity_spans(tags, "IOB2")
    sid = np.full(len(tags), -1)
    for k, (a, b, _) in enumerate(spans):
        sid[a:b] = k
    return sid, spans


def _reading(sid: np.ndarray, spans: list[tuple[int, int, str]], a: int, b: int) -> str:
    """Window [a, b) of a sentence (span ids, spans) -> 'TYPE' | 'O' | 'inside' | 'mixed'."""
    win = sid[a:b]
    if (win < 0).all():
        return "O"
    if (win == win[0]).all() and win[0] >= 0:
        s, e, t = spans[win[0]]
        return t if (s, e) == (a, b) else "inside"
    return "mixed"


def tag_inconsistency(corpus: Corpus, max_tokens: int = MAX_TOKENS, min_agreeing: int = MIN_AGREEING) -> TagConsistency:
    """corpus -> TagConsistency (see the module docstring). Tokens are compared as written."""
    iob2 = [to_iob2(s.tags, corpus.scheme) for s in corpus.sentences]
    cands: set[tuple[str, ...]] = set()
    for s, tags in zip(corpus.sentences, iob2):
        for a, b, _ in entity_spans(tags, "IOB2"):
            if b - a <= max_tokens:
                cands.add(tuple(s.tokens[a:b]))
            for j in range(a, b):
                cands.add((s.tokens[j],))
    by_len: dict[int, set[tuple[str, ...]]] = defaultdict(set)
    for c in cands:
        by_len[len(c)].add(c)
    occ: dict[tuple[str, ...], list[tuple[int, int, int, str]]] = defaultdict(list)
    for i, (s, tags) in enumerate(zip(corpus.sentences, iob2)):
        toks = s.tokens
        sid, spans = _spans(tags)
        for ln, pool in by_len.items():
            for a in range(0, len(toks) - ln + 1):
                key = tuple(toks[a : a + ln])
                if key in pool:
                    occ[key].append((i, a, a + ln, _reading(sid, spans, a, a + ln)))
    token_score = [np.zeros(len(s.tokens)) for s in corpus.sentences]
    strongest: list[list] = [[None] * len(s.tokens) for s in corpus.sentences]  # (score, n, text) per token
    variations: list[Variation] = []
    for key, rows in occ.items():
        split = Counter(r[3] for r in rows)
        if len(split) < 2:
            continue
        majority, n_major = split.most_common(1)[0]
        n = len(rows)
        if n_major < min_agreeing or n_major * 2 <= n:
            continue
        minority = [(i, a, b) for i, a, b, r in rows if r != majority]
        readings = [r for _, _, _, r in rows if r != majority]
        score = n_major / (n - 1)  # share of an occurrence's others that read the majority way
        v = Variation(" ".join(key), n, dict(split.most_common()), majority, n_major / n, minority, readings)
        for i, a, b in minority:
            token_score[i][a:b] = np.maximum(token_score[i][a:b], score)
            for j in range(a, b):
                cur = strongest[i][j]
                if cur is None or (score, n, v.text) > (cur[0], cur[1].n, cur[1].text):
                    strongest[i][j] = (score, v)
        variations.append(v)
    variations.sort(key=lambda v: (-v.lopsided, -v.n, v.text))
    where = {id(v): k for k, v in enumerate(variations)}
    token_variation = [
        np.array([where[id(c[1])] if c is not None else -1 for c in row], dtype=np.int64) for row in strongest
    ]
    return TagConsistency(token_score, variations, token_variation)


FINDING_MIN_SHARE = 0.75  # a string becomes a finding when this share of an odd occurrence's others agree
FINDING_MIN_OCCURRENCES = 3
FINDING_MAX = 5000  # findings kept per run (most lopsided first); every token still counts in the ranking


def inconsistency_findings(tc: TagConsistency) -> list:
    """TagConsistency -> integrity.Finding 'tag_inconsistency' per lopsided string (rows: the sentences
    of its odd occurrences), most lopsided first; detail: text, n, split, majority, odd
    [[sentence, start, end, reading]], examples (up to 3 sentences read the majority way)."""
    from review.text.integrity import Finding

    out = []
    for v in tc.variations:
        n_major = v.split[v.majority]
        if v.n < FINDING_MIN_OCCURRENCES or n_major / (v.n - 1) < FINDING_MIN_SHARE:
            continue
        rows = sorted({i for i, _, _ in v.minority})
        others = ", ".join(f"{_say(r)} in {c:,}" for r, c in v.split.items() if r != v.majority)
        out.append(
            Finding(
                "tag_inconsistency",
                rows,
                f"{v.text!r} is {_say(v.majority)} in {n_major:,} of its {v.n:,} occurrences, {others} "
                f"(sentence{'s' if len(rows) > 1 else ''} {', '.join(map(str, rows[:5]))}"
                f"{' …' if len(rows) > 5 else ''}). Check the odd one{'s' if len(rows) > 1 else ''} out.",
                {
                    "text": v.text,
                    "n": v.n,
                    "split": {_say(k): c for k, c in v.split.items()},
                    "majority": _say(v.majority),
                    "odd": [[i, a, b, _say(r)] for (i, a, b), r in zip(v.minority, v.readings)][:200],
                },
            )
        )
        if len(out) >= FINDING_MAX:
            break
    return out
