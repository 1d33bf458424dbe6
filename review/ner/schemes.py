"""Tagging schemes IOB1, IOB2 and BIOES: tag checks, scheme detection, violations,
entity spans and conversion to and from IOB2."""

from __future__ import annotations

import re
from collections.abc import Sequence

from review.errors import ReviewError

SCHEMES = ("IOB1", "IOB2", "BIOES")
_TAG = re.compile(r"^(?:O|[BIES]-\S+)$")


def _bad_tag_reason(tag: str, scheme: str | None = None) -> str | None:
    """Why ``tag`` is not a tag of ``scheme`` (any scheme when None), or None."""
    if not _TAG.match(tag):
        return (
            f"{tag!r} is not a tag: use O, or B-, I-"
            + ("" if scheme in ("IOB1", "IOB2") else ", E-, S-")
            + " followed by an entity type (e.g. B-PER)"
        )
    if scheme in ("IOB1", "IOB2") and tag[0] in "ES":
        return f"{tag} is not an {scheme} tag (E- and S- belong to BIOES)"
    return None


def detect_scheme(tag_seqs: Sequence[Sequence[str]]) -> str:
    """Sentences' tags -> 'BIOES' if any S-/E- tag, else 'IOB1' if entities start with I-
    more often than B- starts an entity that does not follow one of its own type, else 'IOB2'."""
    iob1 = iob2 = 0
    for tags in tag_seqs:
        prev = "O"
        for t in tags:
            if t != "O":
                p = t[0]
                if p in "ES":
                    return "BIOES"
                same = prev != "O" and prev[2:] == t[2:]
                if p == "I" and not same:
                    iob1 += 1  # an I- that starts an entity: IOB1 only
                elif p == "B" and not same:
                    iob2 += 1  # a B- that starts an entity after O/another type: IOB2 only
            prev = t
    return "IOB1" if iob1 > iob2 else "IOB2"


def scheme_violations(tags: Sequence[str], scheme: str) -> list[tuple[int, str]]:
    """tags (n,) -> [(token position, reason)] for every tag that breaks ``scheme``.

    IOB2: an I-X must follow B-X or I-X. IOB1: a B-X must follow an X token (B- only
    separates adjacent entities of one type; I- after O is legal). BIOES: B-/I- must be
    followed by I-/E- of the same type, I-/E- must follow B-/I- of the same type.
    """
    _check_scheme(scheme)
    out: list[tuple[int, str]] = []
    n = len(tags)
    for i, t in enumerate(tags):
        bad = _bad_tag_reason(t, scheme)
        if bad:
            out.append((i, bad))
            continue
        if t == "O":
            continue
        p, typ = t[0], t[2:]
        prev = tags[i - 1] if i else None
        where = "at sentence start" if prev is None else f"after {prev}"
        prev_same = prev is not None and prev != "O" and prev[2:] == typ
        if scheme == "IOB2":
            if p == "I" and not prev_same:
                out.append((i, f"{t} {where} (an IOB2 entity starts with B-{typ})"))
        elif scheme == "IOB1":
            if p == "B" and not prev_same:
                out.append(
                    (
                        i,
                        f"{t} {where} (in IOB1, B- only separates two adjacent {typ} entities; "
                        f"an entity starts with I-{typ})",
                    )
                )
        else:  # BIOES
            if p in "IE" and not (prev_same and prev[0] in "BI"):
                out.append((i, f"{t} {where} (a BIOES entity starts with B-{typ} or is S-{typ})"))
            if p in "BI":
                nxt = tags[i + 1] if i + 1 < n else None
                if nxt is None or nxt == "O" or nxt[2:] != typ or nxt[0] not in "IE":
                    follow = "the sentence end" if nxt is None else nxt
                    out.append(
                        (
                            i,
                            f"{t} followed by {follow} (a BIOES entity ends with E-{typ}, "
                            f"or is S-{typ} when one token long)",
                        )
                    )
    return out


def validate(tags: Sequence[str], scheme: str) -> None:
    """Raise ReviewError naming the first token position(s) whose tag breaks ``scheme``."""
    bad = scheme_violations(tags, scheme)
    if bad:
        shown = "; ".join(f"token {i} ({tags[i]!r}): {why}" for i, why in bad[:3])
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise ReviewError(f"These tags are not valid {scheme}: {shown}{more}. Fix the tags and try again.")


def _check_scheme(scheme: str) -> None:
    if scheme not in SCHEMES:
        raise ValueError(f"Unknown tagging scheme {scheme!r}; use one of {', '.join(SCHEMES)}.")


def entity_spans(tags: Sequence[str], scheme: str) -> list[tuple[int, int, str]]:
    """tags (n,) -> [(start, end_exclusive, type)], in order. Invalid sequences are read
    leniently: an I-/E- whose type differs from the open entity starts a new one."""
    _check_scheme(scheme)
    spans: list[tuple[int, int, str]] = []
    start, typ = -1, None
    for i, t in enumerate(tags):
        if t == "O" or len(t) < 3 or t[1] != "-":
            if typ is not None:
                spans.append((start, i, typ))
                typ = None
            continue
        p, ty = t[0], t[2:]
        if p in "BS" or typ != ty:
            if typ is not None:
                spans.append((start, i, typ))
            start, typ = i, ty
        if scheme == "BIOES" and p in "ES":
            spans.append((start, i + 1, typ))
            typ = None
    if typ is not None:
        spans.append((start, len(tags), typ))
    return spans


def _spans_to_tags(spans: list[tuple[int, int, str]], n: int, scheme: str) -> list[str]:
    out = ["O"] * n
    prev_end, prev_type = -1, None
    for a, b, typ in spans:
        if scheme == "IOB2":
            out[a] = f"B-{typ}"
            for k in range(a + 1, b):
                out[k] = f"I-{typ}"
        elif scheme == "IOB1":
            first = "B" if (prev_end == a and prev_type == typ) else "I"
            out[a] = f"{first}-{typ}"
            for k in range(a + 1, b):
                out[k] = f"I-{typ}"
        else:
            if b - a == 1:
                out[a] = f"S-{typ}"
            else:
                out[a] = f"B-{typ}"
                for k in range(a + 1, b - 1):
                    out[k] = f"I-{typ}"
                out[b - 1] = f"E-{typ}"
        prev_end, prev_type = b, typ
    return out


def to_iob2(tags: Sequence[str], scheme: str) -> list[str]:
    """tags (n,) in ``scheme`` -> (n,) IOB2 tags. Exact for valid input; invalid input is
    repaired the way entity_spans reads it."""
    _check_scheme(scheme)
    if scheme == "IOB2" and not scheme_violations(tags, "IOB2"):
        return list(tags)
    return _spans_to_tags(entity_spans(tags, scheme), len(tags), "IOB2")


def from_iob2(tags: Sequence[str], scheme: str) -> list[str]:
    """(n,) IOB2 tags -> (n,) tags in ``scheme``; from_iob2(to_iob2(t, s), s) == t for valid t."""
    _check_scheme(scheme)
    return _spans_to_tags(entity_spans(tags, "IOB2"), len(tags), scheme)
