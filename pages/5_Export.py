"""Export (leads): cleaned labels and the audit trail as CSV, generated when clicked."""

import streamlit as st

from review import datasets, export, stats, workflow
from review.auth import User
from review.trail import export as trail_export
from review.ui import shell

db, user, ds = shell.page_with_dataset("Export", "lead")

signed_in = User(user.name, user.role)
ds_id = ds.id

waiting = workflow.awaiting_verification(db, ds)
if waiting:
    st.warning(
        f"{shell.plural(waiting, 'decision')} {'awaits' if waiting == 1 else 'await'} verification: "
        + (
            "their sentences keep their current tags in the export until a lead verifies them."
            if ds.task == "ner"
            else "their rows export with their current label as cleaned_label, the label the decision proposes in "
            "proposed_label, and status kept, relabelled or unsure."
        )
        + " Verify them first on the Verify page to have them in the cleaned labels."
    )
else:
    st.success("No decision awaits verification.")
allow_self, n_self = datasets.settings(db, ds.id)["allow_self_approval"], export.self_approved_count(db, ds)
if allow_self or n_self:
    st.info(
        f"Self-approval is {'allowed' if allow_self else 'off'} on this dataset; "
        f"{shell.plural(n_self, 'decision')} {'was' if n_self == 1 else 'were'} verified by {'its' if n_self == 1 else 'their'} own author"
        + (
            " (the audit trail marks each self_approved)."
            if ds.task == "ner"
            else " (self_approved = yes in the CSV; the audit trail records each one)."
        )
    )

spreadsheet_safe = st.checkbox(
    "Safe to open in a spreadsheet",
    value=True,
    key="spreadsheet_safe",
    help="Excel, LibreOffice and Google Sheets run a cell that begins with =, +, - or @ as a formula.",
)
st.caption(
    (
        "Ticked: in the CSV downloads, cells that begin with =, +, -, @, a tab or a carriage return get a "
        "leading ' so a spreadsheet shows them as text and runs nothing; the values change (an id -5 is "
        "written '-5). Untick for a file a program reads: every cell exactly as stored."
    )
    + (" The corpus files (CoNLL, JSONL) are never changed by it." if ds.task == "ner" else "")
)

audit_csv = shell.deferred_download(  # every file is built on click, in its own thread, on its own connection
    lambda conn: trail_export.export_csv(conn, signed_in, ds_id, spreadsheet_safe=spreadsheet_safe)
)

if ds.task == "ner":
    st.caption(
        f"The cleaned corpus: every sentence with its verified tags (approved or overridden by a lead), else the "
        f"given ones. CoNLL keeps the upload's format, {ds.mapping.scheme} scheme and columns byte for byte; "
        "only the tags of verified corrections change."
    )

    def corpus(fmt: str):
        return shell.deferred_download(lambda conn: export.export_ner(conn, datasets.get(conn, ds_id), signed_in, fmt))

    stem = ds.name
    native = export.ner_native_format(ds)
    c1, c2, c3 = st.columns(3)
    c1.download_button(
        f"Download the cleaned corpus ({native.upper()})",
        corpus(native),
        type="primary",
        file_name=f"{stem}-cleaned.{native}",
        mime="text/plain",
        key="dl_conll",
        on_click="ignore",
    )
    if native != "jsonl":
        c2.download_button(
            "Download as JSONL",
            corpus("jsonl"),
            file_name=f"{stem}-cleaned.jsonl",
            mime="application/jsonl",
            key="dl_jsonl",
            on_click="ignore",
        )
    c3.download_button(
        "Download the audit trail (CSV)",
        audit_csv,
        file_name=f"{stem}-audit-trail.csv",
        mime="text/csv",
        key="dl_audit",
        on_click="ignore",
    )
    st.stop()

counts = stats.label_counts(db, ds)
st.dataframe([{"label": l, "given": g, "cleaned": c, "change": c - g} for l, g, c in counts], hide_index=True)
only_verified = st.checkbox("Only the rows whose correction a lead verified", key="only_verified")
st.caption(
    f"Columns: {', '.join(export.cleaned_columns(ds))}. cleaned_label changes only when a lead verified "
    "the decision; proposed_label is the label a decision awaiting verification proposes; reviewer, "
    "verified_by and self_approved describe the decision in force (none after a rejection)."
)


cleaned_csv = shell.deferred_download(
    lambda conn: export.export_cleaned(
        conn, datasets.get(conn, ds_id), signed_in, only_verified, spreadsheet_safe=spreadsheet_safe
    )
)

c1, c2 = st.columns(2)
c1.download_button(
    "Download cleaned labels (CSV)",
    cleaned_csv,
    file_name=f"{ds.name}-cleaned.csv",
    mime="text/csv",
    type="primary",
    key="dl_cleaned",
    on_click="ignore",
)
c2.download_button(
    "Download the audit trail (CSV)",
    audit_csv,
    file_name=f"{ds.name}-audit-trail.csv",
    mime="text/csv",
    key="dl_audit",
    on_click="ignore",
)
