"""Annotator-like errors injected into a corpus's tags, for benchmarks, tests and demos."""

from __future__ import annotations

import numpy as np

from review.ner.corpus import Corpus
from review.ner.schemes import entity_spans, from_iob2, to_iob2

ERROR_KINDS = ("type_swap", "per_org", "boundary", "missed")


def inject_errors(corpus: Corpus, rates: dict[str, float], seed: int = 0) -> tuple[list[list[str]], list[dict]]:
    """Annotator-like errors on distinct entities, at most one per sentence.

    rates: {kind: share of candidate entities}; kinds: type_swap (another of the corpus's
    types), per_org (PER <-> ORG, share of PER+ORG entities), boundary (one token more, into
    an O neighbour, or one less), missed (the whole entity tagged O).
    Returns (tags (n_sent,) lists in the corpus's scheme, injected [{kind, sent, start, end,
    type, new_type, tokens}] where tokens are the positions whose tag changed).
    """
    rng = np.random.default_rng(seed)
    iob2 = [to_iob2(s.tags, corpus.scheme) for s in corpus.sentences]
    ents = [(i, a, b, t) for i, tags in enumerate(iob2) for a, b, t in entity_spans(tags, "IOB2")]
    used: set[int] = set()
    injected: list[dict] = []
    types = list(corpus.entity_types)
    for kind in ERROR_KINDS:
        rate = rates.get(kind, 0.0)
        if rate <= 0:
            continue
        cand = [e for e in ents if kind != "per_org" or e[3] in ("PER", "ORG")]
        want = int(round(rate * len(cand)))
        for k in rng.permutation(len(cand)):
            if want == 0:
                break
            i, a, b, t = cand[k]
            if i in used:
                continue
            tags = iob2[i]
            n = len(tags)
            if kind in ("type_swap", "per_org"):
                others = [x for x in types if x != t] if kind == "type_swap" else ["ORG" if t == "PER" else "PER"]
                if not others:
                    continue
                new_t = others[int(rng.integers(len(others)))]
                new = tags[:a] + [f"B-{new_t}"] + [f"I-{new_t}"] * (b - a - 1) + tags[b:]
            elif kind == "boundary":
                new_t = t
                moves = []
                if a > 0 and tags[a - 1] == "O":
                    moves.append("left+")
                if b < n and tags[b] == "O":
                    moves.append("right+")
                if b - a >= 2:
                    moves += ["left-", "right-"]
                if not moves:
                    continue
                m = moves[int(rng.integers(len(moves)))]
                a2, b2 = {"left+": (a - 1, b), "right+": (a, b + 1), "left-": (a + 1, b), "right-": (a, b - 1)}[m]
                new = list(tags)
                for j in range(min(a, a2), max(b, b2)):
                    new[j] = "O"
                new[a2] = f"B-{t}"
                for j in range(a2 + 1, b2):
                    new[j] = f"I-{t}"
                if b2 < n and new[b2].startswith("I-"):  # keep what followed a valid entity
                    new[b2] = "B-" + new[b2][2:]
            else:
                new_t = "O"
                new = tags[:a] + ["O"] * (b - a) + tags[b:]
            old_scheme = corpus.sentences[i].tags
            new_scheme = from_iob2(new, corpus.scheme)
            changed = [j for j in range(n) if new_scheme[j] != old_scheme[j] or new[j] != tags[j]]
            if not changed:
                continue
            iob2[i] = new
            used.add(i)
            want -= 1
            injected.append(
                {"kind": kind, "sent": i, "start": a, "end": b, "type": t, "new_type": new_t, "tokens": changed}
            )
    return [
        from_iob2(t, corpus.scheme) if i in used else list(corpus.sentences[i].tags) for i, t in enumerate(iob2)
    ], injected
