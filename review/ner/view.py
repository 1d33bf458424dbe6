"""Display: entity colours, token_view_html and legend_html (every string HTML-escaped)."""

from __future__ import annotations

import hashlib
import html
from collections.abc import Sequence

from review.ner.schemes import entity_spans

FIXED_COLOURS = {"PER": "#fde2a7", "ORG": "#b9e3f9", "LOC": "#c8efc1", "MISC": "#e4d3f5"}
PALETTE = (
    "#ffd6d6",
    "#d6f0ff",
    "#fff3b0",
    "#d9f2e6",
    "#f2d9f2",
    "#ffe0c2",
    "#e0e7ff",
    "#e8f5c8",
    "#f9d5e5",
    "#d5f5f0",
    "#f0e0d0",
    "#dcdcf5",
)


def entity_colour(entity_type: str) -> str:
    """A fixed background colour per entity type: PER/ORG/LOC/MISC fixed, others by a stable hash."""
    if entity_type in FIXED_COLOURS:
        return FIXED_COLOURS[entity_type]
    h = int(hashlib.sha1(entity_type.encode("utf-8")).hexdigest(), 16)
    return PALETTE[h % len(PALETTE)]


def _e(s) -> str:
    return html.escape(str(s), quote=True)


SELECTED_STYLE = "background:#1f6feb;color:#fff;box-shadow:0 0 0 2px #1f6feb;border-radius:3px"  # the selected token


def token_view_html(
    tokens: Sequence[str],
    tags: Sequence[str],
    scheme: str,
    flagged_positions: Sequence[int] = (),
    predicted: Sequence[str] | None = None,
    confidence: Sequence[float] | None = None,
    selected: int | None = None,
    clickable: bool = False,
) -> str:
    """One sentence as HTML: entities on a background of their type's colour with the type
    after them, suspect tokens outlined in red with the model's tag and confidence beside
    them. tokens, tags (n,); predicted, confidence (n,) or None. ``clickable``: every token
    carries its position (data-i) for the Review page's click handler; ``selected``: that
    token is drawn white on blue. Every string is escaped."""
    flagged = {int(k) for k in flagged_positions}
    spans = {a: (b, t) for a, b, t in entity_spans(tags, scheme)}
    pick = ' data-pick="1"' if clickable else ""
    parts = [f'<div class="ner-sentence"{pick} style="line-height:2.3;font-family:sans-serif">']
    i, n = 0, len(tokens)

    def tok_html(k: int) -> str:
        attrs = ""
        if clickable:
            attrs = f' data-i="{k}" title="token {k}: {_e(tags[k])} (click to select)"'
        style = "cursor:pointer;" if clickable else ""
        if k == selected:
            attrs += ' aria-current="true"'
            style += SELECTED_STYLE
        cls = "ner-token ner-selected" if k == selected else "ner-token"
        t = f'<span class="{cls}"{attrs}' + (f' style="{style}"' if style else "") + f">{_e(tokens[k])}</span>"
        if k in flagged:
            note = ""
            if predicted is not None:
                c = f" {float(confidence[k]):.0%}" if confidence is not None else ""
                note = (
                    f'<sup class="ner-pred" style="color:#b00020;font-size:0.7em;margin-left:2px">'
                    f"→{_e(predicted[k])}{_e(c)}</sup>"
                )
            t = (
                f'<span class="ner-suspect" title="given tag {_e(tags[k])}" '
                f'style="outline:2px solid #d00;border-radius:3px;padding:0 2px;'
                f'text-decoration:underline wavy #d00">{t}</span>{note}'
            )
        return t

    while i < n:
        if i in spans:
            b, typ = spans[i]
            inner = " ".join(tok_html(k) for k in range(i, b))
            parts.append(
                f'<span class="ner-entity" data-type="{_e(typ)}" style="background:{entity_colour(typ)};'
                f'padding:2px 4px;border-radius:4px;margin:0 1px">{inner} '
                f'<span style="font-size:0.65em;font-weight:bold;opacity:0.7">{_e(typ)}</span></span>'
            )
            i = b
        else:
            parts.append(tok_html(i))
            i += 1
        parts.append(" ")
    parts.append("</div>")
    return "".join(parts)


def legend_html(entity_types: Sequence[str]) -> str:
    """The entity types with their colours, and what the red outline means."""
    items = "".join(
        f'<span style="background:{entity_colour(t)};padding:2px 6px;border-radius:4px;margin-right:6px">{_e(t)}</span>'
        for t in entity_types
    )
    return (
        f'<div class="ner-legend" style="font-family:sans-serif;font-size:0.85em">{items}'
        f'<span style="outline:2px solid #d00;border-radius:3px;padding:0 4px">suspect token</span>'
        f' <span style="color:#b00020">→ model\'s tag and confidence</span></div>'
    )
