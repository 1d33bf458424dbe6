"""Plotly figures, pure functions of small aggregates (never of raw tables)."""
from __future__ import annotations

import plotly.graph_objects as go


def class_probabilities(labels: list[str], probs: list[float], given: str | None, predicted: str | None) -> go.Figure:
    """Bar chart of the model's probability for every class; the given and predicted labels coloured."""
    colors = ["#d62728" if l == given else "#2ca02c" if l == predicted else "#9aa5b1" for l in labels]
    fig = go.Figure(go.Bar(x=probs, y=labels, orientation="h", marker_color=colors,
                           text=[f"{p:.0%}" for p in probs], textposition="auto"))
    fig.update_layout(height=60 + 28 * len(labels), margin=dict(l=10, r=10, t=30, b=10),
                      xaxis=dict(range=[0, 1], tickformat=".0%"), yaxis=dict(autorange="reversed"),
                      title=dict(text="Model probability per class (red: given, green: predicted)", font=dict(size=13)))
    return fig


def given_vs_cleaned(rows: list[tuple[str, int, int]]) -> go.Figure:
    """rows: (label, n given, n cleaned) -> grouped bars."""
    labels = [r[0] for r in rows]
    fig = go.Figure([go.Bar(name="given", x=labels, y=[r[1] for r in rows]),
                     go.Bar(name="cleaned", x=labels, y=[r[2] for r in rows])])
    fig.update_layout(barmode="group", height=320, margin=dict(l=10, r=10, t=40, b=10), title="Labels given vs cleaned")
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
                      xaxis_title="predicted", yaxis_title="given", yaxis=dict(autorange="reversed"))
    return fig


def quality_histogram(edges: list[float], counts: list[int], flagged_counts: list[int]) -> go.Figure:
    """Histogram from pre-binned counts: all rows and flagged rows per quality bin."""
    mids = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])]
    width = edges[1] - edges[0] if len(edges) > 1 else 0.05
    fig = go.Figure([go.Bar(name="all rows", x=mids, y=counts, width=width, marker_color="#9aa5b1"),
                     go.Bar(name="flagged", x=mids, y=flagged_counts, width=width, marker_color="#d62728")])
    fig.update_layout(barmode="overlay", height=300, margin=dict(l=10, r=10, t=40, b=10),
                      title="Label quality scores", xaxis_title="label quality (low = suspect)", yaxis_title="rows")
    return fig


def review_progress(counts: dict[str, int]) -> go.Figure:
    """counts: state -> rows, as one stacked bar."""
    order = ["approved", "overridden", "kept", "relabelled", "unsure", "open"]
    colors = {"approved": "#2ca02c", "overridden": "#17becf", "kept": "#bcbd22", "relabelled": "#ff7f0e",
              "unsure": "#9467bd", "open": "#c7c7c7"}
    fig = go.Figure([go.Bar(name=s, y=["suspects"], x=[counts.get(s, 0)], orientation="h", marker_color=colors[s])
                     for s in order if counts.get(s, 0)])
    fig.update_layout(barmode="stack", height=170, margin=dict(l=10, r=10, t=40, b=10), title="Review progress")
    return fig
