"""Provenance checks on a labelled text-classification dataset (pure functions).

* :func:`check_items` -- empty texts, missing labels, labels outside the label set,
  identical texts that carry different labels.
* :func:`detect_shifted_blocks` -- runs of rows whose labels were moved by one row
  (an off-by-one export bug), found from out-of-sample predicted probabilities.

Every check returns :class:`Finding` objects; row numbers are 0-based row positions.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

KINDS = (
    "empty_text",
    "null_label",
    "unknown_label",
    "conflicting_duplicates",
    "shifted_block",
    "scheme_violation",
    "tag_inconsistency",
)

# Shifted-block detector tuning (see detect_shifted_blocks).
CLIP = 3.0  # |log-ratio| cap per row, so one confident row cannot dominate
PENALTY = 0.5  # subtracted from every row's score: uninformative rows cost, noise cannot drift into blocks
EVIDENCE = 0.5  # |score| at or above this counts as evidence for/against a shift at that row
MIN_SUPPORT = 0.75  # share of evidence rows that must favour the shift


@dataclass
class Finding:
    """One problem found in a dataset.

    kind: one of KINDS; rows: 0-based row positions involved; message: one sentence for
    a person, naming rows/values and what to do; detail: JSON-serialisable extras.
    """

    kind: str
    rows: list[int]
    message: str
    detail: dict = field(default_factory=dict)

    def __contains__(self, row: int) -> bool:
        cache = self.__dict__.get("_row_cache")  # not a dataclass field: asdict() ignores it
        if cache is None or cache[0] is not self.rows or cache[1] != len(self.rows):
            cache = (self.rows, len(self.rows), frozenset(self.rows))
            self.__dict__["_row_cache"] = cache
        return row in cache[2]

    def reason_for(self, row: int) -> str:
        """Short reason why ``row`` is in this finding, for the review queue."""
        if row not in self:
            raise ValueError(f"Row {row} is not part of this {self.kind} finding.")
        d = self.detail
        if self.kind == "empty_text":
            return "empty text"
        if self.kind == "null_label":
            return "no label"
        if self.kind == "unknown_label":
            reason = f"label {d['label']!r} is not in the label set"
            if d.get("suggestion") is not None:
                reason += f" (did you mean {d['suggestion']!r}?)"
            return reason
        if self.kind == "conflicting_duplicates":
            others = [r for r in self.rows if r != row]
            noun = "row" if len(others) == 1 else "rows"
            labels = "/".join(str(lab) for lab in d["labels"])
            return f"same text as {noun} {format_rows(others, limit=5)} with labels {labels}"
        if self.kind == "shifted_block":
            step = -1 if d["direction"] == "prev" else 1
            return f"in shifted block rows {d['start']}–{d['end']}; its label fits row {row + step}'s text"
        if self.kind == "scheme_violation":  # NER: rows are sentences
            return f"not valid {d.get('scheme', 'in its scheme')}: {d['reasons'][str(row)]}"
        if self.kind == "tag_inconsistency":  # NER: rows are sentences
            here = [r for s, _, _, r in d["odd"] if s == row] or ["?"]
            return (
                f"{d['text']!r} is {d['majority']} in {d['split'][d['majority']]:,} of {d['n']:,} occurrences; "
                f"{here[0]} here"
            )
        return self.message


# ---------------------------------------------------------------------------- helpers


def format_rows(rows: Sequence[int], limit: int = 8) -> str:
    """'3, 9, 12–15 and 40 more': sorted rows, runs of 3+ as ranges, at most ``limit`` parts shown."""
    rows = sorted(map(int, rows))
    if len(rows) <= 2:
        return ", ".join(map(str, rows))
    parts: list[tuple[str, int]] = []
    i = 0
    while i < len(rows) and len(parts) < limit:
        j = i
        while j + 1 < len(rows) and rows[j + 1] == rows[j] + 1:
            j += 1
        if j - i >= 2:
            parts.append((f"{rows[i]}–{rows[j]}", j - i + 1))
            i = j + 1
        else:
            parts.append((str(rows[i]), 1))
            i += 1
    shown = sum(c for _, c in parts)
    text = ", ".join(t for t, _ in parts)
    if shown < len(rows):
        text += f" and {len(rows) - shown} more"
    return text


def _is_missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA or v is pd.NaT


def _clean_label(v) -> str | None:
    """Label as a stripped string, None when missing or blank."""
    if _is_missing(v):
        return None
    s = v if isinstance(v, str) else str(v)
    s = s.strip()
    return s or None


def _label_codes(labels: list) -> tuple[np.ndarray, list[str]]:
    """codes (n,) int64 (-1 = no label) and the distinct cleaned labels, in order of first use.
    Cleans each distinct raw value once, so it stays fast on millions of rows."""
    raw_codes, raw_uniques = pd.factorize(np.array(labels, dtype=object), use_na_sentinel=True)
    cleaned = [_clean_label(u) for u in raw_uniques]
    uniques: list[str] = []
    pos: dict[str, int] = {}
    remap = np.full(len(cleaned) + 1, -1, dtype=np.int64)  # last slot: raw NA code -1
    for k, c in enumerate(cleaned):
        if c is not None:
            if c not in pos:
                pos[c] = len(uniques)
                uniques.append(c)
            remap[k] = pos[c]
    return remap[raw_codes], uniques


def _shorten(text: str, n: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1].rstrip() + "…"


def _rows_phrase(rows: Sequence[int]) -> str:
    return ("row " if len(rows) == 1 else "rows ") + format_rows(rows)


# ---------------------------------------------------------------------------- check_items


def check_items(
    texts: Sequence[str | None], labels: Sequence[str | None], label_set: Sequence[str] | None = None
) -> list[Finding]:
    """Empty texts, missing labels, unknown labels and conflicting duplicates.

    texts, labels: length-n sequences (list, array or Series; None/NaN allowed).
    label_set: the allowed labels, or None to skip the unknown-label check.
    Returns findings in the order: empty_text, null_label, unknown_label (one per value),
    conflicting_duplicates (one per group of identical texts, by first row).
    Texts are compared after strip + casefold + collapsing whitespace; labels after strip.
    """
    texts = list(texts)
    labels = list(labels)
    if len(texts) != len(labels):
        raise ValueError(f"texts has {len(texts)} rows but labels has {len(labels)}.")
    n = len(texts)
    findings: list[Finding] = []

    # Normalised text; "" for empty/whitespace/None.
    norm = [
        " ".join(t.split()).casefold()
        if isinstance(t, str)
        else ("" if _is_missing(t) else " ".join(str(t).split()).casefold())
        for t in texts
    ]
    lab_codes, lab_uniques = _label_codes(labels)

    norm_arr = np.array(norm, dtype=object)
    empty = np.flatnonzero(norm_arr == "")
    if len(empty):
        rows = empty.tolist()
        findings.append(
            Finding(
                "empty_text",
                rows,
                f"{len(rows)} {'row has' if len(rows) == 1 else 'rows have'} empty text "
                f"({_rows_phrase(rows)}); fill in the text or remove {'it' if len(rows) == 1 else 'them'}.",
                {"count": len(rows)},
            )
        )

    nulls = np.flatnonzero(lab_codes < 0)
    if len(nulls):
        rows = nulls.tolist()
        findings.append(
            Finding(
                "null_label",
                rows,
                f"{len(rows)} {'row has' if len(rows) == 1 else 'rows have'} no label "
                f"({_rows_phrase(rows)}); label {'it' if len(rows) == 1 else 'them'} or remove "
                f"{'it' if len(rows) == 1 else 'them'}.",
                {"count": len(rows)},
            )
        )

    if label_set is not None:
        allowed = [s.strip() if isinstance(s, str) else str(s) for s in label_set]
        allowed_set = set(allowed)
        by_fold = {}
        for a in allowed:
            by_fold.setdefault(" ".join(a.split()).casefold(), a)
        unknown = [k for k, u in enumerate(lab_uniques) if u not in allowed_set]
        if unknown:
            counts = np.bincount(lab_codes[lab_codes >= 0], minlength=len(lab_uniques))
            order = np.argsort(lab_codes, kind="stable")
            starts = np.searchsorted(lab_codes[order], np.arange(len(lab_uniques)))
            shown_set = ", ".join(repr(a) for a in allowed[:12]) + (", …" if len(allowed) > 12 else "")
            for k in unknown:
                rows = order[starts[k] : starts[k] + counts[k]].tolist()
                value = lab_uniques[k]
                guess = by_fold.get(" ".join(value.split()).casefold())
                hint = (
                    f"change it to {guess!r}"
                    if guess is not None
                    else f"fix the label or add {value!r} to the label set"
                )
                findings.append(
                    Finding(
                        "unknown_label",
                        rows,
                        f"Label {value!r} on {len(rows)} {'row' if len(rows) == 1 else 'rows'} "
                        f"({_rows_phrase(rows)}) is not in the label set ({shown_set}); {hint}.",
                        {"label": value, "count": len(rows), "label_set": allowed, "suggestion": guess},
                    )
                )

    findings.extend(_conflicting_duplicates(texts, norm_arr, lab_codes, lab_uniques, n))
    return findings


def _conflicting_duplicates(texts, norm_arr, lab_codes, lab_uniques, n) -> list[Finding]:
    """One Finding per group of identical (normalised, non-empty) texts with >1 distinct label."""
    keep = (norm_arr != "") & (lab_codes >= 0)
    idx = np.flatnonzero(keep)
    if len(idx) < 2:
        return []
    key, _ = pd.factorize(norm_arr[idx])  # (m,) text group id per labelled row
    lc = lab_codes[idx].astype(np.int64)
    pair = key.astype(np.int64) * (len(lab_uniques) + 1) + lc
    upair = pd.unique(pair)
    n_labels = np.bincount(upair // (len(lab_uniques) + 1), minlength=key.max() + 1)
    bad = n_labels[key] > 1  # rows in a conflicting group
    if not bad.any():
        return []
    bidx, bkey, blab = idx[bad], key[bad], lc[bad]
    order = np.lexsort((bidx, bkey))
    bidx, bkey, blab = bidx[order], bkey[order], blab[order]
    bounds = [0, *(np.flatnonzero(np.diff(bkey)) + 1).tolist(), len(bkey)]
    all_rows, all_labs = bidx.tolist(), blab.tolist()
    groups = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        rows = all_rows[lo:hi]
        by_label: dict[str, list[int]] = {}
        for r, c in zip(rows, all_labs[lo:hi]):
            by_label.setdefault(lab_uniques[c], []).append(r)
        by_label = dict(sorted(by_label.items(), key=lambda kv: (-len(kv[1]), kv[1][0])))
        text = texts[rows[0]]
        text = text if isinstance(text, str) else str(text)
        split = "; ".join(
            f"{lab!r}: row {rs[0]}" if len(rs) == 1 else f"{lab!r}: {_rows_phrase(rs)}" for lab, rs in by_label.items()
        )
        shown = ", ".join(map(str, rows)) if len(rows) <= 3 else format_rows(rows)  # rows are sorted
        groups.append(
            Finding(
                "conflicting_duplicates",
                rows,
                f'Rows {shown} have the same text ("{_shorten(text)}") but different labels '
                f"({split}); decide which label is right and relabel or drop the others.",
                {"text": text, "labels": by_label},
            )
        )
    groups.sort(key=lambda f: f.rows[0])
    return groups


# ---------------------------------------------------------------------------- shifted blocks


def _shift_scores(labels: np.ndarray, logp: np.ndarray, step: int) -> np.ndarray:
    """s (n,): log p[i+step, y_i] - log p[i, y_i], clipped to ±CLIP; 0 where y_i < 0 or i+step is outside.

    labels (n,) int; logp (n, K) log-probabilities."""
    n = len(labels)
    s = np.zeros(n)
    k = abs(step)
    if n <= k:
        return s
    y = np.where(labels >= 0, labels, 0)
    rows = np.arange(n)
    own = logp[rows, y]
    if step < 0:
        s[k:] = logp[rows[:-k], y[k:]] - own[k:]
    else:
        s[:-k] = logp[rows[k:], y[:-k]] - own[:-k]
    s[labels < 0] = 0.0
    return np.clip(s, -CLIP, CLIP)


def _best_gain(x: np.ndarray) -> float:
    """Largest segment sum of x (n,), or 0."""
    if len(x) == 0:
        return 0.0
    c = np.concatenate(([0.0], np.cumsum(x)))
    return float(max(0.0, (c[1:] - np.minimum.accumulate(c)[:-1]).max()))


def _best_gain_where(x: np.ndarray, keep: np.ndarray) -> float:
    """Largest sum of a run of x (n,) lying entirely where keep (n,) bool is True, or 0."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], keep.astype(np.int8), [0]))))
    return max((_best_gain(x[lo:hi]) for lo, hi in zip(edges[::2], edges[1::2])), default=0.0)


def _best_segment(x: np.ndarray) -> tuple[int, int, float]:
    """Kadane via prefix minima on x (n,), n >= 1: (start, end incl., sum) of the best segment."""
    c = np.concatenate(([0.0], np.cumsum(x)))
    m = np.minimum.accumulate(c)
    gain = c[1:] - m[:-1]
    j = int(np.argmax(gain))
    i = int(np.flatnonzero(c[: j + 1] == m[j])[-1])  # latest minimum: shortest segment
    return i, j, float(gain[j])


def _top_segments(x: np.ndarray, min_gain: float, max_segments: int = 200) -> list[tuple[int, int, float]]:
    """Disjoint high-scoring segments of x (n,), best first: take the best segment, then look for
    the best one in the stretch left on either side of it, and so on while sums are >= min_gain.
    Returns up to max_segments (start, end incl., sum)."""
    out: list[tuple[int, int, float]] = []
    heap: list[tuple[float, int, int, int, int]] = []

    def push(lo: int, hi: int) -> None:
        if hi > lo:
            i, j, g = _best_segment(x[lo:hi])
            if g >= min_gain:
                heapq.heappush(heap, (-g, lo, hi, lo + i, lo + j))

    push(0, len(x))
    while heap and len(out) < max_segments:
        neg, lo, hi, a, b = heapq.heappop(heap)
        out.append((a, b, -neg))
        push(lo, a)
        push(b + 1, hi)
    return out


def _refine(s: np.ndarray, a: int, b: int, window: int) -> tuple[int, int]:
    """Move the ends of segment [a, b] by up to ``window`` rows to maximise sum(s) without the
    penalty: s is a log-likelihood ratio, so this is the most likely block edge near (a, b)."""
    c = np.concatenate(([0.0], np.cumsum(s)))
    starts = np.arange(max(0, a - window), min(a + window, b) + 1)
    v = -c[starts]
    a2 = int(starts[np.flatnonzero(v == v.max())[-1]])  # ties: the shorter block
    ends = np.arange(max(b - window, a2), min(b + window, len(s) - 1) + 1)
    v = c[ends + 1]
    b2 = int(ends[np.flatnonzero(v == v.max())[0]])
    return a2, b2


def detect_shifted_blocks(
    labels: np.ndarray, pred_probs: np.ndarray, class_names: Sequence[str], min_rows: int = 8
) -> list[Finding]:
    """Runs of consecutive rows whose labels belong to the neighbouring row's text (off-by-one).

    labels: int (n,), -1 for unlabelled rows; pred_probs: (n, K) out-of-sample probabilities;
    class_names: K names. For each direction (prev: row i carries row i-1's label; next: row
    i carries row i+1's label) every row gets s[i] = log p[i±1, y_i] - log p[i, y_i] (clipped
    to ±3); segments maximising sum(s - 0.5) are candidates; their ends are then moved (by up
    to 2*min_rows) to maximise sum(s). A candidate is kept when it spans >= min_rows rows,
    holds >= max(3, min_rows // 2) evidence rows (|s| >= 0.5), >= 75% of those favour the
    shift, and its sum(s - 0.5) is at least max(4, min_rows) and clearly above the best such
    sum found outside the candidates for rows 2 or 3 apart (the noise level of the model on
    this file: weak models and class-sorted files raise it). Overlapping candidates keep the
    higher score. Returns one Finding per block, sorted by start; detail: start, end, direction, suggested {str(row): label} (the label
    the neighbour on the other side carries; model's top class for the block's edge row),
    log_likelihood_ratio (sum of s), n_evidence, n_support.
    """
    labels = np.asarray(labels)
    pred_probs = np.asarray(pred_probs, dtype=float)
    if labels.ndim != 1 or pred_probs.ndim != 2 or len(labels) != len(pred_probs):
        raise ValueError(f"labels must be (n,) and pred_probs (n, K); got {labels.shape} and {pred_probs.shape}.")
    n, k = pred_probs.shape
    if len(class_names) != k:
        raise ValueError(f"pred_probs has {k} columns but there are {len(class_names)} class names.")
    labels = labels.astype(np.int64)
    if n and (labels.max() >= k or labels.min() < -1):
        raise ValueError(f"labels must lie in -1..{k - 1}; found {labels.min()}..{labels.max()}.")
    min_rows = max(int(min_rows), 2)
    min_evidence = max(3, min_rows // 2)
    logp = np.log(np.clip(pred_probs, 1e-12, 1.0))
    base_gain = max(4.0, float(min_rows))

    candidates = []
    for direction, step in (("prev", -1), ("next", 1)):
        s = _shift_scores(labels, logp, step)
        for a, b, _ in _top_segments(s - PENALTY, base_gain):
            a, b = _refine(s, a, b, window=2 * min_rows)
            if b - a + 1 < min_rows:
                continue
            seg = s[a : b + 1]
            gain = float(seg.sum() - PENALTY * len(seg))
            n_ev = int((np.abs(seg) >= EVIDENCE).sum())
            n_sup = int((seg >= EVIDENCE).sum())
            if gain >= base_gain and n_ev >= min_evidence and n_sup >= MIN_SUPPORT * n_ev:
                candidates.append((gain, a, b, direction, step, n_ev, n_sup, float(seg.sum())))
    if not candidates:
        return []

    # Noise level of this model on this file: the best segment score when each row is compared
    # with a row 2 or 3 away (no export bug produces that, but a weak model or a file sorted by
    # class inflates it just as much as at distance 1), measured outside the candidates (so a
    # block in periodic data, where distance 3 mimics distance 1, does not hide itself).
    # A block must clearly beat it.
    outside = np.ones(n, dtype=bool)
    for c in candidates:
        outside[c[1] : c[2] + 1] = False
    null = max(_best_gain_where(_shift_scores(labels, logp, d) - PENALTY, outside) for d in (-3, -2, 2, 3))
    min_gain = max(base_gain, null + 4.0, 1.5 * null)
    candidates = [c for c in candidates if c[0] >= min_gain]

    chosen = []
    for cand in sorted(candidates, key=lambda c: -c[0]):
        _, a, b = cand[:3]
        if all(b < c[1] or a > c[2] for c in chosen):
            chosen.append(cand)

    names = [str(c) for c in class_names]
    argmax = pred_probs.argmax(axis=1) if n else np.zeros(0, dtype=np.int64)
    findings = []
    for _gain, a, b, direction, step, n_ev, n_sup, llr in sorted(chosen, key=lambda c: c[1]):
        suggested = {}
        for i in range(a, b + 1):
            j = i - step  # the row now carrying row i's label
            inside = a <= j <= b
            c = labels[j] if inside and labels[j] >= 0 else argmax[i]
            suggested[str(i)] = names[int(c)]
        count = b - a + 1
        which = "previous" if direction == "prev" else "next"
        findings.append(
            Finding(
                "shifted_block",
                list(range(a, b + 1)),
                f"Rows {a}–{b} ({count} rows) look shifted by one: each row's label fits the {which} "
                f"row's text better than its own. Check the export step that produced this file.",
                {
                    "start": a,
                    "end": b,
                    "direction": direction,
                    "suggested": suggested,
                    "log_likelihood_ratio": round(llr, 3),
                    "n_evidence": n_ev,
                    "n_support": n_sup,
                },
            )
        )
    return findings
