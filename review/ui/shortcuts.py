"""Keyboard shortcuts for label buttons that cannot be misread, whatever the class names.

label_keys(labels) gives each label the key shown on its button:

* every label starts with a digit and no two share it (0/1, 1-4 stars): that digit, so pressing
  1 picks "1", never the first button;
* no label starts with a digit (neg/pos, World/Sports): 1-9 by position (the digit cannot be
  taken for a label);
* otherwise (10/11/12, "0 neg"/"1 pos"/"2"...): letters, the label's own first letter where it
  is free, never K, U, S or B (keep, unsure, skip, back).
Labels beyond the available keys get None (the pages offer them in a list).

tag_keys(tags) gives each NER tag its key: 0 for O, 1-9 for the others in order, then letters
that are none of K/U/S/B, N/P/A (next, previous suspect token, accept the model's tag) nor C/R
(Streamlit keeps those). suspect_step moves the selected token to the next or previous suspect.
"""

from __future__ import annotations

from collections.abc import Sequence

RESERVED = frozenset("KUSB")
STREAMLIT_RESERVED = frozenset("CR")  # st.button refuses these as shortcuts
LETTERS = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in RESERVED and c not in STREAMLIT_RESERVED]
NER_KEYS = {"next": "N", "previous": "P", "accept": "A", "save": "Enter"}  # the NER card's own keys
TAG_LETTERS = [c for c in LETTERS if c not in STREAMLIT_RESERVED and c not in NER_KEYS.values()]


def label_keys(labels: Sequence[str]) -> list[str | None]:
    """labels -> one key per label ('0'-'9' or a letter), None where none is left."""
    labels = [str(lab) for lab in labels]
    first = [lab[:1] for lab in labels]
    if labels and all(f.isdigit() for f in first) and len(set(first)) == len(first):
        return first
    if not any(f.isdigit() for f in first):
        return [str(i + 1) if i < 9 else None for i in range(len(labels))]
    keys: list[str | None] = [None] * len(labels)
    used: set[str] = set()
    for i, lab in enumerate(labels):  # own first letter where free
        c = next((ch.upper() for ch in lab if ch.isalpha()), "")
        if c and c in LETTERS and c not in used:
            keys[i] = c
            used.add(c)
    free = [c for c in LETTERS if c not in used]
    for i in range(len(labels)):
        if keys[i] is None and free:
            keys[i] = free.pop(0)
    return keys


def describe(keys: Sequence[str | None]) -> str:
    """'1–4' / '0, 1' / 'A, C, D' for the page's keyboard hint."""
    ks = [k for k in keys if k]
    if not ks:
        return "none"
    if (
        all(k.isdigit() for k in ks)
        and len(ks) > 2
        and [int(k) for k in ks] == list(range(int(ks[0]), int(ks[0]) + len(ks)))
    ):
        return f"{ks[0]}–{ks[-1]}"
    return ", ".join(ks)


def tag_keys(tags: Sequence[str]) -> list[str | None]:
    """NER tags -> one key per tag: '0' for O, '1'-'9' for the others in order, then letters
    (never K/U/S/B, N/P/A, C/R); None where none is left (the tag list still offers them)."""
    pool = [str(i) for i in range(1, 10)] + TAG_LETTERS
    out: list[str | None] = []
    for tag in tags:
        if str(tag) == "O" and "0" not in out:
            out.append("0")
        else:
            out.append(pool.pop(0) if pool else None)
    return out


def suspect_step(suspects: Sequence[int], current: int, step: int) -> int | None:
    """The suspect token after (step 1) or before (step -1) position ``current``, wrapping round
    the sentence; None when there is no suspect."""
    order = sorted({int(p) for p in suspects})
    if not order:
        return None
    if step > 0:
        return next((p for p in order if p > current), order[0])
    return next((p for p in reversed(order) if p < current), order[-1])
