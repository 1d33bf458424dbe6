"""The Audit page's Model tab: which model the run chose and why, its candidates and figures."""

from __future__ import annotations

import streamlit as st

from review import safe_text


def model_tab(run: dict) -> None:
    """Audit page, Model tab: which model the run chose and on what evidence; each class's share of
    the queue against cleanlab's estimate of its wrong labels."""
    params, m = run.get("params") or {}, run.get("metrics") or {}
    if params.get("held-out log-likelihood"):  # several annotators: how the consensus method was chosen
        text_model = params.get("model")
        st.markdown(
            f"**Consensus**: {safe_text.md(str(params.get('method', '–')))}"
            + (
                f"; text model: {safe_text.md(str(text_model))}"
                if text_model and text_model != "consensus of annotators"
                else ""
            )
        )
        st.caption(
            safe_text.md(str(params.get("why", ""))) + ". Each method is fitted without a fifth of the labels and "
            "scored by how well its consensus predicts them (mean log-likelihood; higher is better)."
        )
        st.dataframe(
            [{"method": k, "held-out log-likelihood": v} for k, v in params["held-out log-likelihood"].items()],
            hide_index=True,
            key="consensus_methods",
            column_config={"held-out log-likelihood": st.column_config.NumberColumn(format="%.4f")},
        )
        return
    if isinstance(params.get("candidates"), dict):  # NER: the token models and their mixture
        st.markdown(f"**Token model**: {safe_text.md(str(params.get('model', '–')))}")
        if params.get("why"):
            st.caption(
                safe_text.md(params["why"]) + ". Log loss: mean negative log-likelihood of the given tags on documents "
                "the model did not see (lower is better)."
            )
        st.dataframe(
            [
                {
                    "candidate": {"sgd": "logistic regression", "crf": "CRF"}.get(k, k),
                    "log loss": v["log loss"],
                    "seconds": v["seconds"],
                }
                for k, v in params["candidates"].items()
            ],
            hide_index=True,
            key="token_models",
            column_config={"log loss": st.column_config.NumberColumn(format="%.4f")},
        )
        return
    st.markdown(f"**Model**: {safe_text.md(str(params.get('model', '–')))}")
    if params.get("choice"):
        st.caption(
            safe_text.md(params["choice"]) + " Log loss: mean negative log-likelihood of the given labels on rows "
            "the model did not see (lower is better); `review audit --model NAME` forces a family."
        )
    cands = params.get("candidates") or []
    if cands:
        st.dataframe(
            [
                {
                    "candidate": c["name"],
                    "features": c["view"],
                    "log loss, fold 1": c["fold1_nll"],
                    "log loss, all folds": c["nll"],
                    "weight": c["weight"],
                    "seconds": c["seconds"],
                }
                for c in cands
            ],
            hide_index=True,
            width="stretch",
            key="candidates_table",
            column_config={
                "weight": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="%.2f"),
                "log loss, fold 1": st.column_config.NumberColumn(format="%.3f"),
                "log loss, all folds": st.column_config.NumberColumn(
                    format="%.3f", help="Only the finalists (the best of each family on fold 1) finish every fold."
                ),
                "seconds": st.column_config.NumberColumn(format="%.2f"),
            },
        )
        if params.get("chars") and params["chars"] != "used":
            st.caption(f"Character n-grams: not tried ({safe_text.md(params['chars'])}).")
    classes = m.get("classes") or []
    if classes:
        st.markdown(
            "**Classes in the queue**: a class far more present at the top of the queue than in cleanlab's "
            "estimate of the wrong labels points at the model, not at the labels."
        )
        shares = (
            "share of rows",
            "share of flagged",
            "share of the top of the queue",
            "share of estimated wrong labels",
        )
        st.dataframe(
            [
                {
                    "class": c["label"],
                    "rows": c["rows"],
                    "share of rows": 100 * c["data_share"],
                    "flagged": c["flagged"],
                    "share of flagged": 100 * c["flagged_share"],
                    "share of the top of the queue": 100 * c["top_share"],
                    "estimated wrong labels": c["estimated_errors"],
                    "share of estimated wrong labels": 100 * c["error_share"],
                }
                for c in classes
            ],
            hide_index=True,
            width="stretch",
            key="classes_table",
            column_config={k: st.column_config.NumberColumn(format="%.1f%%") for k in shares},
        )
