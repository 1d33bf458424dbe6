"""Export (leads): cleaned labels and the audit trail as CSV, generated when clicked."""

import streamlit as st

from review import datasets, export, safe_text, stats, versions, workflow
from review.auth import User
from review.browse import RowFilter
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


def manifest_button(container, kind: str, key: str) -> None:
    """The manifest of the newest version of that kind (each download records one), built on click."""
    newest = versions.latest_version(db, ds, kind)
    if newest is None:
        container.caption(
            "Every download is recorded as a version with its manifest (the upload's hash, runs, model, library "
            "versions, counts by state, who approved what); the manifest's download shows here once there is one."
        )
        return
    number = newest.number
    container.download_button(
        f"Download the manifest of version {number} (JSON)",
        shell.deferred_download(
            lambda conn: versions.manifest_json(versions.manifest(conn, datasets.get(conn, ds_id), number))
        ),
        file_name=f"{ds.name}-v{number}.manifest.json",
        mime="application/json",
        key=key,
        on_click="ignore",
        help=f"The newest {kind} export: version {number}, made {newest.created_at[:16].replace('T', ' ')} by "
        f"{newest.created_by}, SHA-256 {(newest.sha256 or '')[:12]}…",
    )


def versions_section() -> None:
    """Every version of the dataset (newest first, the latest 100), each manifest downloadable."""
    st.subheader("Versions")
    listed = versions.versions(db, ds)[:100]
    if not listed:
        st.caption("No version yet: every download of the cleaned labels is recorded as one, with its manifest.")
        return
    st.dataframe(
        [
            {
                "version": v.number,
                "kind": v.kind,
                "rows": v.n_rows,
                "by": v.created_by,
                "at": v.created_at[:19].replace("T", " "),
                "run": v.run_id,
                "sha256": (v.sha256 or "")[:16],
            }
            for v in listed
        ],
        hide_index=True,
    )
    v1, v2 = st.columns([1, 2])
    number = v1.selectbox("Version", [v.number for v in listed], key="manifest_version")
    v2.download_button(
        f"Download version {number}'s manifest (JSON)",
        shell.deferred_download(
            lambda conn: versions.manifest_json(versions.manifest(conn, datasets.get(conn, ds_id), number))
        ),
        file_name=f"{ds.name}-v{number}.manifest.json",
        mime="application/json",
        key="dl_version_manifest",
        on_click="ignore",
    )
    st.page_link("pages/14_Compare.py", label="Compare two versions (labels changed, classes moved, flags)")


if ds.task == "ner":
    st.caption(
        f"The cleaned corpus: every sentence with its verified tags (approved or overridden by a lead), else the "
        f"given ones. CoNLL keeps the upload's format, {ds.mapping.scheme} scheme and columns byte for byte; "
        "only the tags of verified corrections change."
    )

    def corpus(fmt: str):
        return shell.deferred_download(
            lambda conn: versions.export_ner(conn, datasets.get(conn, ds_id), signed_in, fmt)
        )

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
    manifest_button(st, "ner", "dl_manifest_ner")
    versions_section()
    st.stop()

counts = stats.label_counts(db, ds)
st.dataframe([{"label": l, "given": g, "cleaned": c, "change": c - g} for l, g, c in counts], hide_index=True)
only_verified = st.checkbox("Only the rows whose correction a lead verified", key="only_verified")
st.caption(
    f"Columns: {', '.join(export.cleaned_columns(ds))}. cleaned_label changes only when a lead verified "
    "the decision; proposed_label is the label a decision awaiting verification proposes; reviewer, "
    "verified_by and self_approved describe the decision in force (none after a rejection)."
)


cleaned_csv = shell.deferred_download(  # recorded as a version (cleaned, or verified) once its bytes are built
    lambda conn: versions.export_csv(
        conn, datasets.get(conn, ds_id), signed_in, only_verified, spreadsheet_safe=spreadsheet_safe
    )
)

c1, c2, c3 = st.columns(3)
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
manifest_button(c3, "verified" if only_verified else "cleaned", "dl_manifest")

st.subheader("Reviewed subset")
if not st.toggle("Export a reviewed subset", key="subset_on", help="Rows chosen by state and the Rows page's filter"):
    st.caption("The rows chosen by state (approved or overridden only, decided only) and the Rows page's filter.")
    versions_section()
    st.stop()
rows_filter = (
    RowFilter.from_json(st.session_state["rows_filter"])
    if st.session_state.get("rows_filter") and st.session_state.get("rows_filter_dataset") == ds_id
    else None
)
SUBSET_CHOICES = {
    "Approved or overridden only": versions.VERIFIED_STATES,
    "Decided only (kept, relabelled, unsure, approved, overridden)": versions.DECIDED_STATES,
    "Every state": (),
}
pick = st.radio("Rows by state", list(SUBSET_CHOICES), key="subset_states", horizontal=True)
use_filter = st.checkbox(
    "Only the rows the Rows page's filter matches"
    + (f": {safe_text.md(rows_filter.describe())}" if rows_filter is not None and not rows_filter.empty() else ""),
    value=rows_filter is not None and not rows_filter.empty(),
    key="subset_use_filter",
    disabled=rows_filter is None or rows_filter.empty(),
    help="Set a filter on the Rows page first; it is kept for this dataset while you stay signed in.",
)
subset = versions.Subset(rows_filter if use_filter else None, SUBSET_CHOICES[pick])
st.caption(f"The subset: {safe_text.md(subset.describe())}. Same columns as the cleaned labels; a version of its own.")
s1, s2 = st.columns(2)
s1.download_button(
    "Download the reviewed subset (CSV)",
    shell.deferred_download(
        lambda conn: versions.export_csv(
            conn, datasets.get(conn, ds_id), signed_in, subset=subset, spreadsheet_safe=spreadsheet_safe
        )
    ),
    file_name=f"{ds.name}-subset.csv",
    mime="text/csv",
    key="dl_subset",
    on_click="ignore",
)
manifest_button(s2, "subset", "dl_manifest_subset")
versions_section()
