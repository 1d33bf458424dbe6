"""Audit: integrity findings with drill-down, the model + cleanlab run, charts, ranked suspects."""

import streamlit as st

from review import audit, charts, rundiff, safe_text, stats, workflow
from review.datasets import latest_run, runs
from review.errors import ReviewError
from review.ner import store as ner_store
from review.ui import shell
from review.ui.views.findings import CHECKS, findings_tab, summary_line
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
    plan = rundiff.reaudit_plan(db, ds) if ds.task == "text" and not ds.mapping.multi else None
    if plan is not None and plan.due:  # decisions verified since the last run: train on what was learned
        c1, c2 = st.columns([1, 3])
        if c1.button("Re-audit on the current labels", key="reaudit"):
            bar = st.progress(0.0, text="Starting")
            try:
                audit.run_audit(db, ds.id, user, progress=shell.progress_callback(bar))
                st.rerun()
            except ReviewError as exc:
                shell.error(exc)
        c2.caption(
            f"{shell.plural(plan.verified_since, 'decision')} verified since run {plan.last_run}: the new run trains on "
            f"{shell.plural(plan.corrections, 'corrected label')}"
            + (
                f" and leaves out {shell.plural(plan.left_out, 'row')} a pending decision doubts (they are still scored)."
                if not (ds.mapping.probs or ds.mapping.features)  # the text models leave rows out; trees do not
                else "."
            )
        )

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

if ds.task == "text" and run["kind"] == "audit":
    summary_line(db, run["id"])  # the count of every check beyond label errors
if m.get("queue warning"):
    st.warning(safe_text.md(m["queue warning"]))  # it names a class: the team's text, not Markdown
diff = rundiff.since_previous(db, ds, run) if run["kind"] == "audit" else None
if diff is not None:  # counts kept with the run; rows read a page at a time, once a group is opened
    with st.expander(f"Changes since run {diff.run_a}", expanded=True):
        c = st.columns(5)
        c[0].metric(f"Flagged in run {diff.run_a}", f"{diff.flagged_a:,}")
        c[1].metric("Flagged now", f"{diff.flagged_b:,}", delta=diff.flagged_b - diff.flagged_a, delta_color="inverse")
        c[2].metric("New suspects", f"{diff.new:,}")
        c[3].metric("Cleared", f"{diff.cleared:,}")
        c[4].metric("Labels changed", f"{diff.labels_changed:,}")
        st.caption(
            f"Run {diff.run_b} trained on {shell.plural(diff.corrected_b, 'corrected label')} and left out "
            f"{shell.plural(diff.left_out_b, 'doubtful row')}; {shell.plural(diff.predictions_changed, 'prediction')} "
            f"changed. Flags that were wrong labels, where reviewers decided: run {diff.run_a} "
            f"{rundiff.precision_text(diff.precision_a)}; run {diff.run_b} {rundiff.precision_text(diff.precision_b)}."
        )
        st.dataframe(
            [
                {
                    "class": k.label,
                    "flagged before": k.flagged_a,
                    "flagged now": k.flagged_b,
                    "new": k.new,
                    "cleared": k.cleared,
                }
                for k in diff.classes
                if k.flagged_a or k.flagged_b
            ],
            hide_index=True,
            key="changes_classes",
        )
        group = st.selectbox(
            "Rows",
            [None, *rundiff.GROUPS],
            format_func=lambda g: "choose a group" if g is None else f"{rundiff.GROUPS[g]} ({diff.count(g):,})",
            key="changes_group",
        )
        if group:
            pages = st.session_state.setdefault(f"changes_pages_{diff.run_b}_{group}", [-1])  # keyset stack
            got = rundiff.diff_rows(db, ds, diff.run_a, diff.run_b, group, after=pages[-1], limit=50)
            st.dataframe(
                [
                    {
                        "id": r.key,
                        "text": r.text,
                        f"label, run {diff.run_a}": r.label_a,
                        "label now": r.label_b,
                        "flagged before": r.flagged_a,
                        "flagged now": r.flagged_b,
                        "predicted before": r.predicted_a,
                        "predicted now": r.predicted_b,
                        "state": r.state,
                    }
                    for r in got
                ],
                hide_index=True,
                width="stretch",
                key="changes_rows",
                column_config={"text": st.column_config.TextColumn(width="large")},
            )
            b1, b2 = st.columns(2)
            if len(pages) > 1 and b1.button("First page", key="changes_first"):
                pages[:] = [-1]
                st.rerun()
            if len(got) == 50 and b2.button("Next 50", key="changes_next"):
                pages.append(got[-1].idx)
                st.rerun()
judged = ds.task == "text" and not ds.mapping.multi and run["kind"] == "audit"
single = ds.task == "text" and not ds.mapping.multi
names = (
    ["Integrity findings", "Tag swaps" if is_ner else "Charts", "Suspects", "Runs", "Model"]
    + (["Self-check"] if single else [])
    + (["Judge", "Precision"] if judged else [])
    + (["Beyond label errors"] if ds.task == "text" and run["kind"] == "audit" else [])
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
if ds.task == "text" and run["kind"] == "audit":
    with extra[-1]:
        try:
            findings_tab(db, ds, user, run["id"])
        except ReviewError as exc:
            shell.error(exc)

with tab_int:
    found = [f for f in stats.findings(db, run["id"]) if f["kind"] not in CHECKS]  # the checks: their own tab
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
