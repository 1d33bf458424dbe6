"""Label set (leads): the labels with each one's rows, rename a label, merge two labels, add a label, and
the history of these changes.

Each form shows its preview (the rows, pending decisions and gold labels it changes) before its button.
A change is a versioned event (review.taxonomy) with its row in the audit trail; it applies to the
current labels, never to the upload (rows keep their given label). After it, the page asks for a new
audit, so that the model learns the new label set. Text-classification datasets only."""

import streamlit as st

from review import safe_text, taxonomy
from review.errors import ReviewError
from review.ui import shell

db, user, ds = shell.page_with_dataset("Taxonomy", "lead", heading="Label set")

if ds.task != "text":
    st.info(
        f"{safe_text.md(ds.name)} is a {ds.task.upper()} corpus: its labels are tag sequences, and its tag set "
        "cannot be changed here. Renaming, merging and adding labels is for text-classification datasets."
    )
    st.stop()

version = taxonomy.version(db, ds)
v = f"_{ds.id}_{version}"  # every widget's key: each version of the label set draws its forms anew
flash = st.session_state.pop("taxonomy_flash", None)
if flash and flash[0] == "ok":
    with st.container(border=True):
        st.success(safe_text.md(flash[1]))
        st.page_link("pages/2_Audit.py", label="Run a new audit on the Audit page", icon=":material/refresh:")
elif flash:
    st.error(safe_text.md_message(flash[1]))


def make(change, seen: int) -> None:
    """A form button's callback (before the rerun): the change as its preview showed it."""
    try:
        ev = taxonomy.apply(db, ds, user, change, seen_version=seen)
    except ReviewError as exc:
        st.session_state["taxonomy_flash"] = ("error", str(exc))
        return
    rows = shell.plural(ev.n_rows, "row")
    st.session_state["taxonomy_flash"] = (
        "ok",
        f"Label set version {ev.version}: {ev.summary}. {rows} changed; {taxonomy.REAUDIT}.",
    )


counts = taxonomy.label_counts(db, ds)
st.caption(
    f"Label set version {version} ({'as uploaded' if version == 0 else shell.plural(version, 'change')}) · "
    f"{shell.plural(len(ds.labels), 'label')} · {ds.n_items:,} rows. A change applies to the current labels "
    "(pending decisions and the golden set follow); the upload keeps its given labels."
)
st.subheader("Labels")
st.table(  # a few rows, drawn as Markdown: every label escaped
    [
        {
            "label": "(no label)" if c.label is None else safe_text.md(c.label),
            "rows (current label)": f"{c.rows:,}",
            **({} if all(x.in_set for x in counts) else {"in the label set": "yes" if c.in_set else "no"}),
        }
        for c in counts
    ],
    hide_index=True,
)


def preview_and_button(change, button: str, key: str) -> None:
    """The change's preview (or why it cannot be made), then its button."""
    try:
        p = taxonomy.preview(db, ds, change)
    except ReviewError as exc:
        shell.error(exc)
        return
    st.info(safe_text.md(p.summary))
    st.button(button, type="primary", key=key, on_click=make, args=(change, p.version - 1))


st.subheader("Change the label set")
rename, merge, add = st.tabs(["Rename a label", "Merge two labels", "Add a label"])
with rename:
    old = st.selectbox("Label to rename", ds.labels, key="tax_rename_label" + v)
    new = st.text_input("New name", key="tax_rename_name" + v, max_chars=taxonomy.MAX_LABEL_CHARS)
    if new.strip():
        preview_and_button(taxonomy.Rename(old, new), "Rename", "tax_rename" + v)
    else:
        st.caption("Type the new name (Enter) to see how many rows it changes.")
with merge:
    a, b = st.columns(2)
    gone = a.selectbox("Merge this label", ds.labels, key="tax_merge_label" + v)
    into = b.selectbox("into", [c for c in ds.labels if c != gone], key="tax_merge_into" + v)
    st.caption("The first label leaves the label set; its rows take the second.")
    if into is not None:
        preview_and_button(taxonomy.Merge(gone, into), "Merge", "tax_merge" + v)
with add:
    name = st.text_input("New label", key="tax_add_name" + v, max_chars=taxonomy.MAX_LABEL_CHARS)
    if name.strip():
        preview_and_button(taxonomy.Add(name), "Add the label", "tax_add" + v)
    else:
        st.caption("Type the new label's name (Enter). No row changes: reviewers can then relabel rows to it.")

st.subheader("History")
history = taxonomy.events(db, ds)
if not history:
    st.caption("No change yet: the label set is the upload's.")
else:
    st.dataframe(
        [
            {
                "version": e.version,
                "kind": e.kind,
                "change": e.summary,
                "rows": e.n_rows,
                "who": e.created_by,
                "when": e.created_at[:19].replace("T", " "),
                "labels after": ", ".join(e.labels_after),
            }
            for e in reversed(history)
        ],
        hide_index=True,
    )
