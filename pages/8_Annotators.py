"""Annotators and reviewers: quality, agreement, confusion against the consensus, who corrected what,
and the golden set (trusted labels a lead sets to check the annotators; never an input of the consensus)."""

import streamlit as st

from review import blind, charts, datasets, export, safe_text
from review.auth import User
from review.crowd import annotators, gold
from review.errors import ReviewError
from review.ui import shell

GOLD_PAGE = 100  # gold items listed per page

db, user, ds = shell.page_with_dataset("Annotators", "lead", heading="Annotators and reviewers")

tab_ann, tab_rev, tab_gold = st.tabs(["Annotators", "Reviewers", "Golden set"])

with tab_ann:
    table = annotators.annotator_table(db, ds) if ds.mapping.multi else []
    if not ds.mapping.multi:
        st.info(
            "This dataset has one label per item. Upload data with an annotator column (long form) or one column per annotator (wide form) to compare annotators."
        )
    elif not table:
        st.info("Run the audit first: the consensus and the annotators' quality come from it.")
    else:
        with_gold = "gold_accuracy" in table[0]
        st.caption(
            f"{shell.plural(len(table), 'annotator')}. Quality: estimated accuracy against the hidden true labels; "
            + (
                "gold accuracy: share of their labels on gold items equal to the gold label (gold labels: how many "
                "they gave), an independent check of the quality; "
                if with_gold
                else ""
            )
            + "agreement: share of their labels equal to the consensus; worst class: where they are least often right."
        )
        picked = st.dataframe(
            table,
            hide_index=True,
            width="stretch",
            key="annotator_table",
            on_select="rerun",
            selection_mode="single-row",
            column_config={
                "quality": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="%.2f"),
                "gold_accuracy": st.column_config.NumberColumn("gold accuracy", format="%.2f"),
                "gold_labels": st.column_config.NumberColumn("gold labels"),
                "agreement": st.column_config.NumberColumn(format="%.2f"),
            },
        )
        names = [r["annotator"] for r in table]
        rows = picked.selection.rows if picked else []
        if rows and st.session_state.get("annotator_clicked") != rows[0]:
            # a click on a row of the table picks that annotator below
            st.session_state["annotator_clicked"] = rows[0]
            st.session_state["annotator_pick"] = names[rows[0]]
        signed_in, ds_id = User(user.name, user.role), ds.id
        annotators_csv = shell.deferred_download(  # built on click, on its own connection
            lambda conn: export.export_annotators(conn, datasets.get(conn, ds_id), signed_in)
        )

        st.download_button(
            "Download the annotator table (CSV)",
            annotators_csv,
            file_name=f"{ds.name}-annotators.csv",
            mime="text/csv",
            key="dl_annotators",
            on_click="ignore",
        )
        a, b = st.columns(2)
        a.plotly_chart(charts.annotator_quality(table), key="quality_vs_labels")
        b.plotly_chart(charts.pairwise_agreement(annotators.pairwise(db, ds)), key="pairwise")
        who = st.selectbox("Annotator (or click a row of the table)", names, key="annotator_pick")
        c1, c2 = st.columns([3, 2])
        c1.plotly_chart(
            charts.annotator_confusion(ds.labels, annotators.confusion(db, ds, who), who), key="ann_confusion"
        )
        n = annotators.disagreements(db, ds, who)
        c2.metric("Labels that differ from the consensus", f"{n:,}")
        if n and c2.button(
            f"Review the items where {safe_text.md(who)} disagrees", key="review_disagreements", type="primary"
        ):
            st.session_state["review_disagrees"] = who
            st.switch_page("pages/3_Review.py")

with tab_rev:
    st.markdown("**Reviewers** (from the audit trail)")
    rows = annotators.reviewer_table(db, ds)
    if rows:
        st.dataframe(rows, hide_index=True, width="stretch", key="reviewer_table")
    else:
        st.caption("No decision on this dataset yet.")
    minds = blind.changed_mind_stats(db, ds)  # blind first look: the first call, then the model's view
    if minds or blind.required(ds):
        st.markdown("**Blind first look: how often the model's view changed their mind**")
        if minds:
            st.caption(
                "First calls are made on the text and its label alone; rate: share of final decisions that differ "
                "from the first call (95% Wilson interval); toward the model: the final label is the model's "
                "suggestion; away: another label; to unsure: the final call is unsure."
            )
            st.dataframe(
                [m.table_row() for m in minds],
                hide_index=True,
                width="stretch",
                key="changed_mind_table",
                column_config={"rate": st.column_config.NumberColumn(format="percent")},
            )
        else:
            st.caption("No decision with a first call on this dataset yet.")
    if ds.mapping.multi:
        st.markdown("**Original annotators whose labels verified corrections changed**")
        changed = annotators.changed_by_corrections(db, ds)
        if changed:
            st.dataframe(changed, hide_index=True, width="stretch", key="changed_table")
        else:
            st.caption("No verified correction has changed an annotator's label yet.")

with tab_gold:
    if not ds.mapping.multi:
        st.info(
            "The golden set checks the annotators of a dataset labelled by several annotators; this dataset has one "
            "label per item."
        )
    else:
        st.caption(
            "Trusted labels you set on chosen items. Gold never feeds the consensus: it checks the annotators' "
            "estimated quality (the gold columns of the annotator table). Annotators do not see which items are gold."
        )
        gold_flash = st.session_state.pop("gold_flash", None)
        if gold_flash:  # it names the row, the label, the file: data, not Markdown
            (st.error if gold_flash[0] == "error" else st.success)(safe_text.md_message(gold_flash[1]))

        def gold_do(action, ok) -> None:
            """Run a gold action; its outcome (ok(result), or the refusal) shows after the rerun."""
            try:
                st.session_state["gold_flash"] = ("ok", ok(action()))
            except ReviewError as exc:
                st.session_state["gold_flash"] = ("error", str(exc))
            st.rerun()

        mark, upload = st.columns(2)
        with mark:
            st.markdown("**Mark an item**")
            row = int(
                st.number_input(
                    f"Row number (0 to {ds.n_items - 1:,}, as the Review page shows it)",
                    min_value=0,
                    max_value=ds.n_items - 1,
                    value=0,
                    step=1,
                    key=f"gold_row_{ds.id}",
                )
            )
            it = gold.item(db, ds, row, user)
            st.markdown(
                f"**{safe_text.md(it['id'])}** · row {row}"
                + (f" · gold: **{safe_text.md(it['gold_label'])}**" if it["gold_label"] else " · not gold")
            )
            shell.show_text(it["text"], key=f"gold_{ds.id}_{row}")
            trusted = st.selectbox(
                "Trusted label",
                ds.labels,
                key=f"gold_label_{ds.id}_{row}",
                index=ds.labels.index(it["gold_label"]) if it["gold_label"] in ds.labels else 0,
            )
            if st.button("Mark as gold", key="gold_set", type="primary", disabled=trusted == it["gold_label"]):
                gold_do(
                    lambda: gold.set_gold(db, ds, row, trusted, user),
                    lambda before: (
                        f"Row {row} ({it['id']}) is gold: {trusted}" + (f" (was {before})." if before else ".")
                    ),
                )
        with upload:
            st.markdown("**Import a CSV**")
            st.caption(
                "Two columns, `row,label` (header optional): the row number as the app shows it (0 is the first "
                "item) and the trusted label. The whole file is checked first: a row out of range or an unknown "
                "label refuses it, naming the line, and nothing is written."
            )
            up = st.file_uploader("Gold labels (CSV)", type=["csv", "txt"], key="gold_csv")
            if up is not None and st.button("Import the gold labels", key="gold_import"):
                gold_do(
                    lambda: gold.import_csv(db, ds, up.getvalue(), up.name, user),
                    lambda r: (
                        f"Imported {up.name}: {r.added:,} added, {r.changed:,} changed, "
                        f"{r.unchanged:,} already gold with that label."
                    ),
                )

        n_gold = gold.count(db, ds, user)
        st.markdown(f"**Gold items** ({n_gold:,})")
        if not n_gold:
            st.caption("No gold item yet: mark one above or import a CSV.")
        else:
            starts = st.session_state.setdefault(f"gold_pages_{ds.id}", [-1])  # keyset: the row before each page shown
            listed = gold.list_gold(db, ds, user, limit=GOLD_PAGE, after=starts[-1])
            if not listed and len(starts) > 1:  # the last page emptied (removals): go back one
                starts.pop()
                listed = gold.list_gold(db, ds, user, limit=GOLD_PAGE, after=starts[-1])
            st.dataframe(
                [{**r, "at": r["at"][:16].replace("T", " ")} for r in listed],
                hide_index=True,
                width="stretch",
                key="gold_table",
                column_config={
                    "gold_label": st.column_config.TextColumn("gold label"),
                    "set_by": st.column_config.TextColumn("set by"),
                },
            )
            p1, p2, _ = st.columns([1, 1, 4])
            if len(starts) > 1 and p1.button("Previous page", key="gold_prev"):
                starts.pop()
                st.rerun()
            if len(listed) == GOLD_PAGE and p2.button("Next page", key="gold_next"):
                starts.append(listed[-1]["row"])
                st.rerun()
            r1, r2 = st.columns([3, 1], vertical_alignment="bottom")
            choice = r1.selectbox(
                "Remove a gold item",
                [r["row"] for r in listed],
                key="gold_remove_pick",
                format_func=lambda i: next(
                    f"row {r['row']} · {r['id']} · {r['gold_label']}" for r in listed if r["row"] == i
                ),
            )
            if r2.button("Remove from the golden set", key="gold_remove"):
                gold_do(
                    lambda: gold.remove_gold(db, ds, choice, user),
                    lambda before: f"Row {choice} is no longer gold (it was {before}).",
                )
