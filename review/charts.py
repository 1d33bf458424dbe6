"""Plotly figures, pure functions of small aggregates (never of raw tables).

Class labels are always categories (labels 0/1 are classes, not an axis from -0.5 to 1.5)."""
from __future__ import annotations

import re

import plotly.graph_objects as go


def natural_key(s) -> list:
    """'ann10' after 'ann2', 10 after 2: digit runs compare as numbers."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", str(s))]


def count_axis(top: float) -> dict:
    """A count axis: whole numbers only (no 0.5 steps on small counts), from zero, thousands separated."""
    axis = dict(rangemode="tozero", tickformat=",d")
    if top <= 10:
        axis["dtick"] = 1
    return axis


def class_probabilities(labels: list[str], probs: list[float], given: str | None, predicted: str | None,
                        source: str = "Model") -> go.Figure:
    """Bar chart of the model's (or the consensus') probability for every class; the given and predicted labels coloured."""
    colors = ["#d62728" if l == given else "#2ca02c" if l == predicted else "#9aa5b1" for l in labels]
    fig = go.Figure(go.Bar(x=probs, y=labels, orientation="h", marker_color=colors,
                           text=[f"{p:.0%}" for p in probs], textposition="auto", textangle=0, cliponaxis=False))
    fig.update_layout(height=60 + 28 * len(labels), margin=dict(l=10, r=10, t=30, b=10),
                      xaxis=dict(range=[0, 1], tickformat=".0%"), yaxis=dict(type="category", autorange="reversed"),
                      title=dict(text=f"{source} probability per class (red: given, green: predicted)", font=dict(size=13)))
    return fig


def given_vs_cleaned(rows: list[tuple[str, int, int]]) -> go.Figure:
    """rows: (label, n given, n cleaned) -> grouped bars."""
    labels = [r[0] for r in rows]
    fig = go.Figure([go.Bar(name="given", x=labels, y=[r[1] for r in rows]),
                     go.Bar(name="cleaned", x=labels, y=[r[2] for r in rows])])
    fig.update_layout(barmode="group", height=320, margin=dict(l=10, r=10, t=40, b=10), title="Labels given vs cleaned",
                      xaxis=dict(type="category"), yaxis=count_axis(max([max(r[1], r[2]) for r in rows], default=0)))
    return fig


def confusion(labels: list[str], pairs: list[tuple[str, str, int]]) -> go.Figure:
    """pairs: (given, predicted, count) among flagged rows -> heatmap."""
    idx = {l: i for i, l in enumerate(labels)}
    z = [[0] * len(labels) for _ in labels]
    for g, p, n in pairs:
        if g in idx and p in idx:
            z[idx[g]][idx[p]] = n
    fig = go.Figure(go.Heatmap(z=z, x=labels, y=labels, colorscale="Reds", text=z, texttemplate="%{text}",
                               hovertemplate="given %{y}, predicted %{x}: %{z}<extra></extra>"))
    fig.update_layout(height=120 + 40 * len(labels), margin=dict(l=10, r=10, t=40, b=10),
                      title="Flagged rows: given label (rows) vs predicted (columns)",
                      xaxis_title="predicted", yaxis_title="given", xaxis=dict(type="category"),
                      yaxis=dict(type="category", autorange="reversed"))
    return fig


def quality_histogram(edges: list[float], counts: list[int], flagged_counts: list[int]) -> go.Figure:
    """Histogram from pre-binned counts: all rows and flagged rows per quality bin."""
    mids = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])]
    width = edges[1] - edges[0] if len(edges) > 1 else 0.05
    fig = go.Figure([go.Bar(name="all rows", x=mids, y=counts, width=width, marker_color="#9aa5b1"),
                     go.Bar(name="flagged", x=mids, y=flagged_counts, width=width, marker_color="#d62728")])
    fig.update_layout(barmode="overlay", height=300, margin=dict(l=10, r=10, t=40, b=10),
                      title="Label quality scores", xaxis_title="label quality (low = suspect)", yaxis_title="rows",
                      yaxis=count_axis(max(counts, default=0)))
    return fig


def review_progress(counts: dict[str, int]) -> go.Figure:
    """counts: state -> rows, as one stacked bar."""
    order = ["approved", "overridden", "kept", "relabelled", "unsure", "open"]
    colors = {"approved": "#2ca02c", "overridden": "#17becf", "kept": "#bcbd22", "relabelled": "#ff7f0e",
              "unsure": "#9467bd", "open": "#c7c7c7"}
    fig = go.Figure([go.Bar(name=s, y=["suspects"], x=[counts.get(s, 0)], orientation="h", marker_color=colors[s])
                     for s in order if counts.get(s, 0)])
    fig.update_layout(barmode="stack", height=170, margin=dict(l=10, r=10, t=40, b=10), title="Review progress",
                      xaxis=count_axis(sum(counts.values())))
    return fig


def annotator_quality(rows: list[dict]) -> go.Figure:
    """rows: annotator, quality, n_labels -> scatter of quality against labels given."""
    fig = go.Figure(go.Scatter(x=[r["n_labels"] for r in rows], y=[r["quality"] for r in rows], mode="markers",
                               text=[str(r["annotator"]) for r in rows],
                               hovertemplate="annotator %{text}<br>%{x} labels<br>quality %{y:.2f}<extra></extra>"))
    fig.update_layout(height=340, margin=dict(l=10, r=10, t=40, b=10), title="Annotator quality against labels given",
                      xaxis_title="labels given", yaxis_title="quality",
                      xaxis=dict(type="log", dtick=1, tickformat=",d"))
    return fig


def pairwise_agreement(pairs: list[dict]) -> go.Figure:
    """pairs: a, b, shared, agreement -> heatmap of agreement on shared items."""
    names = sorted({p["a"] for p in pairs} | {p["b"] for p in pairs}, key=natural_key)
    pos = {n: i for i, n in enumerate(names)}
    z = [[None] * len(names) for _ in names]
    text = [[""] * len(names) for _ in names]
    for p in pairs:
        for x, y in ((p["a"], p["b"]), (p["b"], p["a"])):
            z[pos[x]][pos[y]] = p["agreement"]
            text[pos[x]][pos[y]] = f"{p['shared']} shared"
    fig = go.Figure(go.Heatmap(z=z, x=names, y=names, text=text, colorscale="Viridis", zmin=0, zmax=1,
                               hovertemplate="%{y} & %{x}: %{z:.2f} (%{text})<extra></extra>"))
    fig.update_layout(height=340, margin=dict(l=10, r=10, t=40, b=10),
                      title="Pairwise agreement on shared items (annotators with most labels)",
                      xaxis=dict(type="category", tickmode="array", tickvals=names, ticktext=[str(n) for n in names]),
                      yaxis=dict(type="category", autorange="reversed", tickmode="array", tickvals=names,
                                 ticktext=[str(n) for n in names]))
    return fig


def annotator_confusion(labels: list[str], rows: list[tuple[str, str, int]], who: str) -> go.Figure:
    """rows: (consensus, annotator's label, count) -> heatmap."""
    fig = confusion(labels, rows)
    fig.update_layout(title=f"{who}: consensus (rows) vs their label (columns)", xaxis_title=f"{who} said",
                      yaxis_title="consensus")
    return fig


def tag_swaps(rows: list[dict]) -> go.Figure:
    """NER: rows (given_tag, predicted_tag, tokens, sentences) -> horizontal bars, most frequent on top."""
    names = [f"{r['given_tag']} → {r['predicted_tag']}" for r in rows][::-1]
    fig = go.Figure(go.Bar(x=[r["tokens"] for r in rows][::-1], y=names, orientation="h", marker_color="#d62728",
                           text=[r["examples"][:40] for r in rows][::-1], textposition="auto",
                           hovertemplate="%{y}: %{x} tokens<extra></extra>"))
    fig.update_layout(height=80 + 24 * len(rows), margin=dict(l=10, r=10, t=40, b=10),
                      title=dict(text="Suspect tokens by swap (given → predicted)", font=dict(size=13)),
                      xaxis_title="tokens", xaxis=count_axis(max([r["tokens"] for r in rows], default=0)),
                      yaxis=dict(type="category"))
    return fig


def precision_by_band(bands: list[dict]) -> go.Figure:
    """Share of decided flagged rows that were really wrong, per cleanlab score band, with 95 % intervals."""
    xs = [b["band"] for b in bands]
    ys = [b["precision"] if b["precision"] is not None else 0 for b in bands]
    fig = go.Figure(go.Bar(
        x=xs, y=ys, marker_color=["#1f77b4" if b["precision"] is not None else "#d0d4da" for b in bands],
        error_y=dict(type="data", symmetric=False, array=[b["high"] - y for b, y in zip(bands, ys)],
                     arrayminus=[y - b["low"] for b, y in zip(bands, ys)]),
        text=[f"{b['wrong']}/{b['decided']}" for b in bands], textposition="outside", textangle=0,
        hovertemplate="quality %{x}: %{y:.0%} wrong<extra></extra>"))
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=40, b=10), yaxis=dict(range=[0, 1.1], tickformat=".0%"),
                      xaxis_title="cleanlab label quality of the flagged row", yaxis_title="really wrong",
                      title=dict(text="Flag precision by score band (decided rows; bars show 95% intervals)", font=dict(size=13)))
    return fig


def judge_verdicts(counts: dict) -> go.Figure:
    """The judge's verdicts on the flagged rows: YES (label right), NO (wrong), UNKNOWN, not judged."""
    keys = ["NO", "YES", "UNKNOWN", "not judged"]
    names = {"NO": "NO: label wrong", "YES": "YES: label right", "UNKNOWN": "UNKNOWN", "not judged": "not judged"}
    fig = go.Figure(go.Bar(x=[names[k] for k in keys], y=[counts.get(k, 0) for k in keys],
                           marker_color=["#d62728", "#2ca02c", "#ff7f0e", "#d0d4da"], text=[counts.get(k, 0) for k in keys],
                           textposition="auto", textangle=0))
    fig.update_layout(height=300, margin=dict(l=10, r=10, t=40, b=10), yaxis=count_axis(max(counts.values(), default=0)),
                      title=dict(text="The judge's verdicts on the flagged rows", font=dict(size=13)))
    return fig
