"""Annotators and reviewers: quality, agreement, confusion against the consensus, and who corrected what."""
import streamlit as st

from review import annotators, charts, export, ui
from review.auth import User

db, user, ds = ui.page_with_dataset("Annotators", "lead", heading="Annotators and reviewers")

tab_ann, tab_rev = st.tabs(["Annotators", "Reviewers"])

with tab_ann:
    table = annotators.annotator_table(db, ds) if ds.mapping.multi else []
    if not ds.mapping.multi:
        st.info("This dataset has one label per item. Upload data with an annotator column (long form) or one column per annotator (wide form) to compare annotators.")
    elif not table:
        st.info("Run the audit first: the consensus and the annotators' quality come from it.")
    else:
        st.caption(f"{ui.plural(len(table), 'annotator')}. Quality: estimated accuracy against the hidden true labels; "
                   "agreement: share of their labels equal to the consensus; worst class: where they are least often right.")
        picked = st.dataframe(table, hide_index=True, width="stretch", key="annotator_table",
                              on_select="rerun", selection_mode="single-row",
                              column_config={"quality": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="%.2f"),
                                             "agreement": st.column_config.NumberColumn(format="%.2f")})
        names = [r["annotator"] for r in table]
        rows = picked.selection.rows if picked else []
        if rows and st.session_state.get("annotator_clicked") != rows[0]:
            # a click on a row of the table picks that annotator below
            st.session_state["annotator_clicked"] = rows[0]
            st.session_state["annotator_pick"] = names[rows[0]]
        signed_in, ds_id = User(user.name, user.role), ds.id

        def annotators_csv() -> bytes:
            conn = ui.connect()
            from review.datasets import get
            return "".join(export.export_annotators(conn, get(conn, ds_id), signed_in)).encode("utf-8")

        st.download_button("Download the annotator table (CSV)", annotators_csv, file_name=f"{ds.name}-annotators.csv",
                           mime="text/csv", key="dl_annotators", on_click="ignore")
        a, b = st.columns(2)
        a.plotly_chart(charts.annotator_quality(table), key="quality_vs_labels")
        b.plotly_chart(charts.pairwise_agreement(annotators.pairwise(db, ds)), key="pairwise")
        who = st.selectbox("Annotator (or click a row of the table)", names, key="annotator_pick")
        c1, c2 = st.columns([3, 2])
        c1.plotly_chart(charts.annotator_confusion(ds.labels, annotators.confusion(db, ds, who), who), key="ann_confusion")
        n = annotators.disagreements(db, ds, who)
        c2.metric("Labels that differ from the consensus", f"{n:,}")
        if n and c2.button(f"Review the items where {who} disagrees", key="review_disagreements", type="primary"):
            st.session_state["review_disagrees"] = who
            st.switch_page("pages/3_Review.py")

with tab_rev:
    st.markdown("**Reviewers** (from the audit trail)")
    rows = annotators.reviewer_table(db, ds)
    if rows:
        st.dataframe(rows, hide_index=True, width="stretch", key="reviewer_table")
    else:
        st.caption("No decision on this dataset yet.")
    if ds.mapping.multi:
        st.markdown("**Original annotators whose labels verified corrections changed**")
        changed = annotators.changed_by_corrections(db, ds)
        if changed:
            st.dataframe(changed, hide_index=True, width="stretch", key="changed_table")
        else:
            st.caption("No verified correction has changed an annotator's label yet.")
