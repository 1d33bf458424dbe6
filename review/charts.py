"""Plotly figures, pure functions of small aggregates (never of raw tables).

Class labels are always categories (labels 0/1 are classes, not an axis from -0.5 to 1.5).

Bounded, whatever the data: a chart draws at most MAX_CLASSES classes (the largest; the rest summed
in one "other" bucket, and the title says "top N of M"), a heatmap at most (MAX_CLASSES + 1)² cells,
a scatter at most MAX_POINTS points, a name at most TICK_CHARS characters on an axis (cut with …;
HOVER_CHARS in the hover). Every string from the data (class, tag, annotator names, examples) has
& < > escaped before it enters a figure (esc): plotly renders <a href>, <b>, <br> in ticks, titles, hover and
text, so a name like <a href="…"> must show as typed, never as a link. Data goes into x, y, text or
customdata only, never into a hovertemplate or texttemplate (a name "%{x}" would be substituted)."""

from __future__ import annotations

import html
import math
import re

import plotly.graph_objects as go

MAX_CLASSES = 20  # classes (or swaps) drawn per chart; the rest in one "other" bucket
MAX_POINTS = 300  # annotators in the quality scatter (those with most labels)
MAX_GRID = 30  # annotators in the pairwise agreement heatmap (those sharing most items)
MAX_BINS = 100  # bars of the quality histogram (finer bins are merged)
MAX_CELL_TEXT = 900  # a heatmap writes its numbers in the cells up to this many cells
TICK_CHARS = 24  # a name on an axis or in a title: longer ones are cut with …
HOVER_CHARS = 100  # a name in the hover (the axis value): longer ones are cut with …
TEXT_CHARS = 40  # example tokens written on a bar
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def clip(s, n: int) -> str:
    """``s`` as one line of at most ``n`` characters (control characters and newlines as spaces, cut with …)."""
    s = _CONTROL.sub(" ", str(s))
    return s if len(s) <= n else s[: max(n - 1, 1)] + "…"


def esc(s, n: int = HOVER_CHARS) -> str:
    """Data as plotly text: clipped to ``n`` characters, then & < > escaped (plotly shows &lt; as <, renders no tag).
    Quotes stay: without a < they form no attribute, and plotly would show &quot; as typed."""
    return html.escape(clip(s, n), quote=False)


def _axis_names(raw: list) -> tuple[list[str], list[str]]:
    """Names for a category axis -> (values: escaped, cut at HOVER_CHARS, unique; ticks: escaped, cut at TICK_CHARS).
    The value is what the hover shows (%{x}); the tick is what the axis shows."""
    values, seen = [], set()
    for r in raw:
        v = esc(r)
        k = 2
        while v in seen:  # two names alike in their first HOVER_CHARS characters stay two categories
            v, k = f"{esc(r, HOVER_CHARS - 4)} #{k}", k + 1
        seen.add(v)
        values.append(v)
    return values, [esc(r, TICK_CHARS) for r in raw]


def _category_axis(values: list[str], ticks: list[str], **kw) -> dict:
    return dict(type="category", tickmode="array", tickvals=values, ticktext=ticks, **kw)


def _other(n: int, one: str = "class", many: str = "classes") -> str:
    """The name of the bucket that sums what is not drawn (a class of that very name stays apart: _axis_names)."""
    return f"other ({n:,} {one if n == 1 else many})"


def _top(names: list, weight, k: int = MAX_CLASSES, keep=()) -> list[int]:
    """Positions of the ``k`` names of largest weight (ties: the earlier), always with those in ``keep``;
    in order of weight, largest first."""
    order = sorted(range(len(names)), key=lambda i: (-weight[i], i))
    pinned = [i for i in order if names[i] in keep][:k]
    rest = [i for i in order if i not in pinned][: k - len(pinned)]
    chosen = set(pinned) | set(rest)
    return [i for i in order if i in chosen]


NOTE = "<br>"  # the one tag charts put in a title: what a bounded chart leaves out goes on a second line


def _top_note(k: int, n: int, what: str = "classes", by: str = "") -> str:
    return f"{NOTE}top {k:,} of {n:,} {what}{' by ' + by if by else ''}; the rest as other"


def _margin(title: str, top: int = 40) -> dict:
    return dict(l=10, r=10, t=top + 18 * title.count(NOTE), b=10)


def natural_key(s) -> list:
    """'ann10' after 'ann2', 10 after 2: digit runs compare as numbers."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", str(s))]


def count_axis(top: float) -> dict:
    """A count axis: whole numbers only (no 0.5 steps on small counts), from zero, thousands separated."""
    axis = dict(rangemode="tozero", tickformat=",d")
    if top <= 10:
        axis["dtick"] = 1
    return axis


def class_probabilities(
    labels: list[str], probs: list[float], given: str | None, predicted: str | None, source: str = "Model"
) -> go.Figure:
    """Bar chart of the model's (or the consensus') probability for every class; the given and predicted labels coloured.
    Over MAX_CLASSES classes: the most probable ones (the given and predicted always among them), most probable
    first, and one bar "other (N classes)" with the rest's total probability."""
    names, probs = list(labels), [float(p) for p in probs]
    names, probs = names[: len(probs)], probs[: len(names)]  # a probability per class drawn, whatever was stored
    note = ""
    if len(names) > MAX_CLASSES:
        shown = _top(names, probs, MAX_CLASSES, keep={given, predicted})
        rest = set(range(len(names))) - set(shown)
        note = _top_note(len(shown), len(names), by="probability")
        names, probs = (
            [names[i] for i in shown] + [_other(len(rest))],
            [probs[i] for i in shown] + [sum(probs[i] for i in rest)],
        )
    colors = ["#d62728" if l == given else "#2ca02c" if l == predicted else "#9aa5b1" for l in names]
    if note:
        colors[-1] = "#d0d4da"
    values, ticks = _axis_names(names)
    fig = go.Figure(
        go.Bar(
            x=probs,
            y=values,
            orientation="h",
            marker_color=colors,
            text=[f"{p:.0%}" for p in probs],
            textposition="auto",
            textangle=0,
            cliponaxis=False,
            hovertemplate="%{y}: %{x:.1%}<extra></extra>",
        )
    )
    title = f"{esc(source, TICK_CHARS)} probability per class (red: given, green: predicted){note}"
    fig.update_layout(
        height=60 + 28 * len(values) + (18 if note else 0),
        margin=_margin(title, 30),
        xaxis=dict(range=[0, 1], tickformat=".0%"),
        yaxis=_category_axis(values, ticks, autorange="reversed"),
        title=dict(text=title, font=dict(size=13)),
    )
    return fig


def given_vs_cleaned(rows: list[tuple[str, int, int]]) -> go.Figure:
    """rows: (label, n given, n cleaned) -> grouped bars. Over MAX_CLASSES classes: those the cleaning
    changed most (then the largest), in that order, and one "other (N classes)" pair of bars summing the
    rest; when that pair dwarfs the classes drawn, the axis stops above them, the pair is cut and its
    counts are written over it."""
    rows = [(r[0], int(r[1]), int(r[2])) for r in rows]
    title = "Labels given vs cleaned"
    top = max([max(r[1], r[2]) for r in rows], default=0)
    cut = None
    if len(rows) > MAX_CLASSES:
        w = [abs(r[1] - r[2]) * 10**12 + max(r[1], r[2]) for r in rows]  # changed most, then largest
        shown = _top([r[0] for r in rows], w)
        rest = [rows[i] for i in set(range(len(rows))) - set(shown)]
        title += _top_note(len(shown), len(rows), by="rows changed, then rows")
        other = (_other(len(rest)), sum(r[1] for r in rest), sum(r[2] for r in rest))
        rows = [rows[i] for i in shown] + [other]
        top = max([max(r[1], r[2]) for r in rows[:-1]], default=0)
        if max(other[1], other[2]) > 1.5 * top > 0:
            cut = other
    values, ticks = _axis_names([r[0] for r in rows])
    hover = "%{x}: %{y:,} rows"
    fig = go.Figure(
        [
            go.Bar(name="given", x=values, y=[r[1] for r in rows], hovertemplate=hover),
            go.Bar(name="cleaned", x=values, y=[r[2] for r in rows], hovertemplate=hover),
        ]
    )
    yaxis = count_axis(top if cut else max([max(r[1], r[2]) for r in rows], default=0))
    if cut:
        yaxis["range"] = [0, top * 1.3]
        fig.add_annotation(
            x=values[-1],
            y=top * 1.3,
            yanchor="top",
            showarrow=False,
            bgcolor="rgba(255,255,255,0.85)",
            text=f"{cut[1]:,}<br>{cut[2]:,}<br>(cut)",
            font=dict(size=10),
        )
    fig.update_layout(
        barmode="group",
        height=320 + 18 * title.count(NOTE),
        margin=_margin(title),
        title=dict(text=title, font=dict(size=13)),
        xaxis=_category_axis(values, ticks),
        yaxis=yaxis,
    )
    return fig


def confusion(labels: list[str], pairs: list[tuple[str, str, int]]) -> go.Figure:
    """pairs: (given, predicted, count) among flagged rows -> heatmap (pairs naming a class not in
    ``labels`` are left out). Over MAX_CLASSES classes: the classes in most flagged rows (as given or
    predicted), most first, and one row and column "other (N classes)" summing the rest; the colour
    scale stops at the largest cell of the classes drawn (the other bucket's cells saturate)."""
    return _confusion(
        labels,
        pairs,
        "Flagged rows: given label (rows) vs predicted (columns)",
        "predicted",
        "given",
        "given %{y}, predicted %{x}: %{z:,}<extra></extra>",
    )


def _confusion(
    labels: list[str], pairs: list[tuple[str, str, int]], title: str, xtitle: str, ytitle: str, hover: str
) -> go.Figure:
    """The heatmap of confusion and annotator_confusion; title and axis titles are escaped here, ``hover``
    is a fixed template (no data in it)."""
    labels = list(labels)
    idx = {l: i for i, l in enumerate(labels)}
    pairs = [(idx[g], idx[p], int(n)) for g, p, n in pairs if g in idx and p in idx]
    zmax = None
    if len(labels) > MAX_CLASSES:
        weight = [0] * len(labels)
        for g, p, n in pairs:
            weight[g] += n
            weight[p] += n if p != g else 0
        shown = _top(labels, weight)
        pos = {c: k for k, c in enumerate(shown)}
        other = len(shown)  # every class not drawn lands in the last row / column
        cell = lambda c: pos.get(c, other)
        names = [labels[c] for c in shown] + [_other(len(labels) - len(shown))]
        title += _top_note(len(shown), len(labels), by="flagged rows")
    else:
        cell, names = (lambda c: c), labels
    z = [[0] * len(names) for _ in names]
    for g, p, n in pairs:
        z[cell(g)][cell(p)] += n
    if len(labels) > MAX_CLASSES:  # the other bucket sums hundreds of classes: it would bleach the rest
        zmax = max([v for row in z[:-1] for v in row[:-1]], default=0) or None
    values, ticks = _axis_names(names)
    n_cells = len(names) ** 2
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=values,
            y=values,
            colorscale="Reds",
            zmin=0,
            zmax=zmax,
            text=[[f"{v:,}" if v else "" for v in row] for row in z] if n_cells <= MAX_CELL_TEXT else None,
            texttemplate="%{text}" if n_cells <= MAX_CELL_TEXT else None,
            hovertemplate=hover,
        )
    )
    fig.update_layout(
        height=120 + (40 if len(names) <= 10 else 30) * len(names),
        margin=_margin(title),
        title=dict(text=title, font=dict(size=13)),
        xaxis_title=xtitle,
        yaxis_title=ytitle,  # escaped by the callers
        xaxis=_category_axis(values, ticks),
        yaxis=_category_axis(values, ticks, autorange="reversed"),
    )
    return fig


def quality_histogram(edges: list[float], counts: list[int], flagged_counts: list[int]) -> go.Figure:
    """Histogram from pre-binned counts: all rows and flagged rows per quality bin (over MAX_BINS bins, adjacent
    bins are merged)."""
    if len(counts) > MAX_BINS:
        step = math.ceil(len(counts) / MAX_BINS)
        counts = [sum(counts[i : i + step]) for i in range(0, len(counts), step)]
        flagged_counts = [sum(flagged_counts[i : i + step]) for i in range(0, len(flagged_counts), step)]
        edges = edges[::step] + ([edges[-1]] if (len(edges) - 1) % step else [])
    mids = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])]
    width = edges[1] - edges[0] if len(edges) > 1 else 0.05
    fig = go.Figure(
        [
            go.Bar(name="all rows", x=mids, y=counts, width=width, marker_color="#9aa5b1"),
            go.Bar(name="flagged", x=mids, y=flagged_counts, width=width, marker_color="#d62728"),
        ]
    )
    fig.update_layout(
        barmode="overlay",
        height=300,
        margin=dict(l=10, r=10, t=40, b=10),
        title="Label quality scores",
        xaxis_title="label quality (low = suspect)",
        yaxis_title="rows",
        yaxis=count_axis(max(counts, default=0)),
    )
    return fig


def review_progress(counts: dict[str, int]) -> go.Figure:
    """counts: state -> rows, as one stacked bar."""
    order = ["approved", "overridden", "kept", "relabelled", "unsure", "excluded", "ambiguous", "open"]
    colors = {
        "approved": "#2ca02c",
        "overridden": "#17becf",
        "kept": "#bcbd22",
        "relabelled": "#ff7f0e",
        "unsure": "#9467bd",
        "excluded": "#8c564b",
        "ambiguous": "#e377c2",
        "open": "#c7c7c7",
    }
    fig = go.Figure(
        [
            go.Bar(name=s, y=["suspects"], x=[counts.get(s, 0)], orientation="h", marker_color=colors[s])
            for s in order
            if counts.get(s, 0)
        ]
    )
    fig.update_layout(
        barmode="stack",
        height=170,
        margin=dict(l=10, r=10, t=40, b=10),
        title="Review progress",
        xaxis=count_axis(sum(counts.values())),
    )
    return fig


def annotator_quality(rows: list[dict]) -> go.Figure:
    """rows: annotator, quality, n_labels -> scatter of quality against labels given. Over MAX_POINTS
    annotators: those with most labels, and the title says how many more and how many labels they gave."""
    title = "Annotator quality against labels given"
    if len(rows) > MAX_POINTS:
        shown = _top([r["annotator"] for r in rows], [r["n_labels"] or 0 for r in rows], MAX_POINTS)
        rest = [rows[i] for i in set(range(len(rows))) - set(shown)]
        title += (
            f"{NOTE}the {len(shown):,} of {len(rows):,} annotators with most labels; {len(rest):,} more with "
            f"{sum(r['n_labels'] or 0 for r in rest):,} labels not drawn"
        )
        rows = [rows[i] for i in shown]
    fig = go.Figure(
        go.Scatter(
            x=[r["n_labels"] for r in rows],
            y=[r["quality"] for r in rows],
            mode="markers",
            customdata=[esc(r["annotator"], 60) for r in rows],
            hovertemplate="annotator %{customdata}<br>%{x} labels<br>quality %{y:.2f}<extra></extra>",
        )
    )
    fig.update_layout(
        height=340,
        margin=_margin(title),
        title=dict(text=title, font=dict(size=13)),
        xaxis_title="labels given",
        yaxis_title="quality",
        xaxis=dict(type="log", dtick=1, tickformat=",d"),
    )
    return fig


def pairwise_agreement(pairs: list[dict]) -> go.Figure:
    """pairs: a, b, shared, agreement -> heatmap of agreement on shared items. Over MAX_GRID annotators:
    those sharing most items with the others (agreement does not add up: no other bucket; the title says
    how many are drawn)."""
    names = sorted({p["a"] for p in pairs} | {p["b"] for p in pairs}, key=natural_key)
    title = "Pairwise agreement on shared items (annotators with most labels)"
    if len(names) > MAX_GRID:
        shared = dict.fromkeys(names, 0)
        for p in pairs:
            shared[p["a"]] += p["shared"] or 0
            shared[p["b"]] += p["shared"] or 0
        keep = {names[i] for i in _top(names, [shared[n] for n in names], MAX_GRID)}
        title = (
            f"Pairwise agreement on shared items{NOTE}{MAX_GRID} of {len(names):,} annotators, those sharing most items"
        )
        names = [n for n in names if n in keep]
        pairs = [p for p in pairs if p["a"] in keep and p["b"] in keep]
    pos = {n: i for i, n in enumerate(names)}
    z = [[None] * len(names) for _ in names]
    text = [[""] * len(names) for _ in names]
    for p in pairs:
        for x, y in ((p["a"], p["b"]), (p["b"], p["a"])):
            z[pos[x]][pos[y]] = p["agreement"]
            text[pos[x]][pos[y]] = f"{p['shared']:,} shared"
    values, ticks = _axis_names(names)
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=values,
            y=values,
            text=text,
            colorscale="Viridis",
            zmin=0,
            zmax=1,
            hovertemplate="%{y} & %{x}: %{z:.2f} (%{text})<extra></extra>",
        )
    )
    fig.update_layout(
        height=340,
        margin=_margin(title),
        title=dict(text=title, font=dict(size=13)),
        xaxis=_category_axis(values, ticks),
        yaxis=_category_axis(values, ticks, autorange="reversed"),
    )
    return fig


def annotator_confusion(labels: list[str], rows: list[tuple[str, str, int]], who: str) -> go.Figure:
    """rows: (consensus, annotator's label, count) -> heatmap, bounded as confusion is."""
    name = esc(who, TICK_CHARS)
    return _confusion(
        labels,
        rows,
        f"{name}: consensus (rows) vs their label (columns)",
        f"{name} said",
        "consensus",
        "consensus %{y}, their label %{x}: %{z:,}<extra></extra>",
    )


def tag_swaps(rows: list[dict]) -> go.Figure:
    """NER: rows (given_tag, predicted_tag, tokens, sentences) -> horizontal bars, most frequent on top. Over
    MAX_CLASSES swaps: the most frequent, and one bar "other (N swaps)" with the rest's tokens."""
    rows = sorted(rows, key=lambda r: -r["tokens"])
    names = [f"{clip(r['given_tag'], 40)} → {clip(r['predicted_tag'], 40)}" for r in rows]
    tokens = [r["tokens"] for r in rows]
    examples = [clip(r.get("examples", ""), TEXT_CHARS) for r in rows]
    title = "Suspect tokens by swap (given → predicted)"
    if len(rows) > MAX_CLASSES:
        k = MAX_CLASSES
        title += _top_note(k, len(rows), "swaps")
        names, tokens, examples = (
            names[:k] + [_other(len(rows) - k, "swap", "swaps")],
            tokens[:k] + [sum(tokens[k:])],
            examples[:k] + [""],
        )
    values, ticks = _axis_names(names[::-1])
    fig = go.Figure(
        go.Bar(
            x=tokens[::-1],
            y=values,
            orientation="h",
            marker_color="#d62728",
            text=[html.escape(e, quote=False) for e in examples[::-1]],
            textposition="auto",
            hovertemplate="%{y}: %{x:,} tokens<extra></extra>",
        )
    )
    fig.update_layout(
        height=80 + 24 * len(values),
        margin=_margin(title),
        title=dict(text=title, font=dict(size=13)),
        xaxis_title="tokens",
        xaxis=count_axis(max(tokens, default=0)),
        yaxis=_category_axis(values, ticks),
    )
    return fig


def precision_by_band(bands: list[dict]) -> go.Figure:
    """Share of decided flagged rows that were really wrong, per cleanlab score band, with 95 % intervals."""
    xs = [esc(b["band"], TICK_CHARS) for b in bands]
    ys = [b["precision"] if b["precision"] is not None else 0 for b in bands]
    fig = go.Figure(
        go.Bar(
            x=xs,
            y=ys,
            marker_color=["#1f77b4" if b["precision"] is not None else "#d0d4da" for b in bands],
            error_y=dict(
                type="data",
                symmetric=False,
                array=[b["high"] - y for b, y in zip(bands, ys)],
                arrayminus=[y - b["low"] for b, y in zip(bands, ys)],
            ),
            text=[f"{b['wrong']}/{b['decided']}" for b in bands],
            textposition="outside",
            textangle=0,
            hovertemplate="quality %{x}: %{y:.0%} wrong<extra></extra>",
        )
    )
    fig.update_layout(
        height=320,
        margin=dict(l=10, r=10, t=40, b=10),
        yaxis=dict(range=[0, 1.1], tickformat=".0%"),
        xaxis_title="cleanlab label quality of the flagged row",
        yaxis_title="really wrong",
        title=dict(text="Flag precision by score band (decided rows; bars show 95% intervals)", font=dict(size=13)),
    )
    return fig


def judge_verdicts(counts: dict) -> go.Figure:
    """The judge's verdicts on the flagged rows: YES (label right), NO (wrong), UNKNOWN, not judged."""
    keys = ["NO", "YES", "UNKNOWN", "not judged"]
    names = {"NO": "NO: label wrong", "YES": "YES: label right", "UNKNOWN": "UNKNOWN", "not judged": "not judged"}
    fig = go.Figure(
        go.Bar(
            x=[names[k] for k in keys],
            y=[counts.get(k, 0) for k in keys],
            marker_color=["#d62728", "#2ca02c", "#ff7f0e", "#d0d4da"],
            text=[counts.get(k, 0) for k in keys],
            textposition="auto",
            textangle=0,
        )
    )
    fig.update_layout(
        height=300,
        margin=dict(l=10, r=10, t=40, b=10),
        yaxis=count_axis(max((counts.get(k, 0) for k in keys), default=0)),
        title=dict(text="The judge's verdicts on the flagged rows", font=dict(size=13)),
    )
    return fig
