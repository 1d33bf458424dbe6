"""Audit: integrity findings with drill-down, the model + cleanlab run, charts, ranked suspects."""

import streamlit as st

from review import audit, charts, safe_text, stats, workflow
from review.datasets import latest_run, runs
from review.errors import ReviewError
from review.ner import store as ner_store
from review.ui import shell
from review.ui.views.judge import judge_tab
from review.ui.views.model import model_tab
from review.ui.views.precision import precision_tab
from review.ui.views.selfcheck import selfcheck_tab

db, user, ds = shell.page_with_dataset("Audit", "annotator")

if user.can("lead"):
    c1, c2 = st.columns([1, 3])
    if c1.button(
        "Run the audit",
        type="primary",
        key="run_audit",
        help="Integrity checks, an out-of-sample model (5-fold cross-validation) and cleanlab. Earlier runs and reviews are kept.",
    ):
        bar = st.progress(0.0, text="Starting")
        try:
            audit.run_audit(db, ds.id, user, progress=shell.progress_callback(bar))
            st.rerun()
        except ReviewError as exc:
            shell.error(exc)
    c2.caption("Each run is kept with its parameters and library versions; a re-run never overwrites reviews.")

run = latest_run(db, ds.id)
if run is None:
    st.info("No run yet." + (" Press **Run the audit**." if user.can("lead") else " A lead runs the audit."))
    st.stop()

m = run["metrics"]
st.subheader(
    f"Run {run['id']} ({safe_text.md(run['kind'])}), {run['finished_at'][:19].replace('T', ' ')} "
    f"by {safe_text.md(run['created_by'])}"
)
is_ner = ds.task == "ner"
cols = st.columns(5)
cols[0].metric("Sentences" if is_ner else "Rows", f"{m.get('rows', 0):,}")
cols[1].metric(
    "Suspect sentences" if is_ner else "Suspects",
    f"{m.get('flagged', 0):,}",
    help=f"{m['flagged tokens']:,} suspect tokens" if "flagged tokens" in m else None,
)
cols[2].metric("Relabel", f"{m.get('relabel', 0):,}" if "relabel" in m else "–")
cols[3].metric("Needs review", f"{m.get('needs review', 0):,}" if "needs review" in m else "–")
agree = m.get("model agreement with given labels")
cols[4].metric(
    "Model agrees with tags" if is_ner else "Model agrees with labels", f"{agree:.1%}" if agree is not None else "–"
)

if m.get("queue warning"):
    st.warning(safe_text.md(m["queue warning"]))  # it names a class: the team's text, not Markdown
judged = ds.task == "text" and not ds.mapping.multi and run["kind"] == "audit"
single = ds.task == "text" and not ds.mapping.multi
names = (
    ["Integrity findings", "Tag swaps" if is_ner else "Charts", "Suspects", "Runs", "Model"]
    + (["Self-check"] if single else [])
    + (["Judge", "Precision"] if judged else [])
)
tab_int, tab_charts, tab_sus, tab_runs, tab_model, *extra = st.tabs(names)
with tab_model:
    model_tab(run)
if single:
    with extra.pop(0):
        selfcheck_tab(db, ds, user)
if judged:
    with extra[0]:
        judge_tab(db, ds, user)
    with extra[1]:
        precision_tab(db, ds, user)

with tab_int:
    found = stats.findings(db, run["id"])
    if not found:
        st.success(
            "No integrity finding: no empty texts, null or unknown labels, conflicting duplicates or shifted blocks."
        )
    kinds = {}
    for f in found:
        kinds.setdefault(f["kind"], []).append(f)
    if kinds:
        st.dataframe(
            [
                {"check": k.replace("_", " "), "findings": len(v), "rows": sum(f["n_rows"] for f in v)}
                for k, v in kinds.items()
            ],
            hide_index=True,
        )
    for kind, fs in kinds.items():
        st.markdown(f"**{safe_text.md(kind.replace('_', ' '))}** ({len(fs)})")
        for f in fs[:50]:
            title = f["message"] if len(f["message"]) <= 160 else f["message"][:160].rsplit(" ", 1)[0] + " …"
            with st.expander(safe_text.md(title)):  # the title quotes the data's texts and labels: not Markdown
                st.text(f["message"])
                st.dataframe(stats.rows_by_index(db, ds, f["rows"]), hide_index=True, width="stretch")
                if f["n_rows"] > 200:
                    st.caption(f"Showing 200 of {f['n_rows']:,} rows.")
        if len(fs) > 50:
            st.caption(
                f"{len(fs) - 50} more findings of this kind; {safe_text.code(f'review suspects {ds.name}')} lists every row."
            )
    if not is_ner:
        st.markdown(
            "**Text length per class** (a class much shorter or longer than the rest can mean a provenance problem)"
        )
        st.dataframe(stats.length_by_class(db, ds), hide_index=True)

with tab_charts:
    if is_ner:
        swaps = ner_store.swaps(db, ds)
        if run["kind"] != "audit" or not swaps:
            st.info("Run the audit: the swaps come from the suspect tokens the model tags differently.")
        else:
            st.caption(
                "Among suspect tokens: the given tag, the tag the model predicts, how many tokens and sentences, "
                "and the tokens seen most often. Pick a swap to review exactly those sentences."
            )
            st.dataframe(swaps, hide_index=True, width="stretch", key="swaps_table")
            st.plotly_chart(charts.tag_swaps(swaps), key="swaps_chart")
            names = [f"{r['given_tag']} → {r['predicted_tag']}" for r in swaps]
            c1, c2 = st.columns([3, 2], vertical_alignment="bottom")
            pick = c1.selectbox(
                "Swap",
                range(len(swaps)),
                key="swap_pick",
                format_func=lambda k: f"{names[k]} ({swaps[k]['sentences']:,} sentences)",
            )
            if c2.button("Review these sentences", key="open_swap", type="primary"):
                st.session_state["review_swap"] = [swaps[pick]["given_tag"], swaps[pick]["predicted_tag"]]
                st.session_state.pop("review_disagrees", None)
                st.switch_page("pages/3_Review.py")
    else:
        a, b = st.columns(2)
        a.plotly_chart(charts.given_vs_cleaned(stats.label_counts(db, ds)), key="given_vs_cleaned")
        prog = workflow.progress(db, ds)
        b.plotly_chart(charts.review_progress({**prog.states, "open": prog.open}), key="progress")
        if run["kind"] == "audit":
            a.plotly_chart(charts.quality_histogram(*stats.quality_bins(db, ds)), key="quality_hist")
            b.plotly_chart(charts.confusion(ds.labels, stats.flagged_confusion(db, ds)), key="confusion")

with tab_sus:
    after = st.session_state.get("sus_after", 0)
    page = stats.suspects_page(db, ds, after_rank=after, limit=50)
    # the text second, wide, so it is on screen; the reason last (it can be long)
    st.dataframe(
        [
            {
                k: r[k]
                for k in (
                    "rank",
                    "text",
                    "given_label",
                    "predicted_label",
                    "confidence",
                    "quality",
                    "action",
                    "state",
                    "id",
                    "reason",
                )
            }
            for r in page
        ],
        hide_index=True,
        width="stretch",
        column_config={
            "text": st.column_config.TextColumn(width="large"),
            "confidence": st.column_config.NumberColumn(format="%.2f"),
            "quality": st.column_config.NumberColumn(format="%.3f"),
        },
    )
    c1, c2 = st.columns(2)
    if after and c1.button("First page", key="sus_first"):
        st.session_state["sus_after"] = 0
        st.rerun()
    if len(page) == 50 and c2.button("Next 50", key="sus_next"):
        st.session_state["sus_after"] = page[-1]["rank"]
        st.rerun()

with tab_runs:
    st.dataframe(runs(db, ds.id), hide_index=True, width="stretch")
