"""Upload: a file, a preview, the column mapping, a name; refusals say what to fix.

A file whose first line looks like data (ingest.sniff_header: AG News) gets the box "The first
line is data" ticked on arrival, with the reason; the user can untick it. Label values such as
1, 2, 3, 4 can be named (pasted pairs or names, or a classes.txt); the names become the labels.
"""

from pathlib import Path

import streamlit as st

from review import audit, safe_text
from review.errors import ReviewError
from review.ner import store as ner_store
from review.text import ingest, signals
from review.ui import shell
from review.ui.views.ner_upload import upload_ner

db, user = shell.page("Upload", "lead", heading="Upload a dataset")

st.caption(
    "CSV, TSV, JSONL or Parquet: one row per item with its text and its label. NER: a CoNLL file "
    "(token first, tag last, a blank line between sentences; IOB1, IOB2 or BIOES) or JSONL with "
    "`tokens` and `tags` per line. "
    f"The browser takes files up to {st.get_option('server.maxUploadSize'):,} MB; larger ones go through "
    "the `review ingest FILE --name NAME` command (a million rows ingest in about 10 s)."
)
up = st.file_uploader(
    "Data file",
    type=[
        "csv",
        "tsv",
        "tab",
        "txt",
        "jsonl",
        "ndjson",
        "json",
        "parquet",
        "pq",
        "conll",
        "conllu",
        "conll03",
        "iob",
        "iob1",
        "iob2",
        "bio",
        "bioes",
        "train",
        "testa",
        "testb",
        "dev",
        "test",
    ],
    key="upload_file",
)
is_ner = up is not None and ner_store.looks_like_ner(up.getvalue(), up.name)
if up is not None and not is_ner and st.session_state.get("header_sniffed") != up.file_id:
    # a new file: the box is ticked when its first line looks like data (before the box is drawn)
    st.session_state["header_sniffed"] = up.file_id
    st.session_state["header_guess"] = ingest.sniff_header(up.getvalue(), up.name)
    st.session_state["no_header"] = st.session_state["header_guess"].headerless
no_header = st.checkbox("The first line is data, not a header (columns are then named 1, 2, 3, …)", key="no_header")
if up is None:
    st.stop()

if is_ner:
    upload_ner(db, user, up)
    st.stop()

sniffed = st.session_state.get("header_guess")
if sniffed is not None and sniffed.headerless:
    if no_header:
        st.info(
            f"The first line looks like data, not a header ({safe_text.md(sniffed.reason)}), so it is read as data "
            "and the columns are numbered 1, 2, 3, … Untick **The first line is data** if it is a header."
        )
    else:
        st.info(
            f"The first line looks like data, not a header ({safe_text.md(sniffed.reason)}), but the box is "
            "unticked: it is read as the header. Tick **The first line is data** to keep it as a row."
        )

MAPPING_KEYS = (
    "map_text",
    "map_label",
    "map_id",
    "map_annotator",
    "map_wide",
    "map_probs",
    "map_features",
    "map_embedding",
    "map_loss",
)
cache_key = (up.file_id, no_header)
if st.session_state.get("upload_cache_key") != cache_key:
    data = up.getvalue()
    try:
        frame = ingest.read_table(data, up.name, no_header=no_header)
    except ReviewError as exc:
        shell.error(exc)
        st.stop()
    st.session_state["upload_cache_key"] = cache_key
    st.session_state["upload_frame"] = frame
    for key in MAPPING_KEYS:  # other columns: the boxes start again from the guess
        st.session_state.pop(key, None)
frame = st.session_state["upload_frame"]
data = up.getvalue()

st.subheader(f"Preview: {len(frame):,} rows, {frame.shape[1]:,} columns")
st.dataframe(frame.head(20), width="stretch", hide_index=True)

guess, guess_note = ingest.guess_partial(frame, ingest.PAGE_HINTS)
if guess_note:
    st.info(f"Choose the columns yourself: {safe_text.md_message(guess_note)}")  # it names the file's columns

cols = list(frame.columns)
NONE = "(none)"
st.subheader("Map the columns")
c1, c2 = st.columns(2)
text_cols = c1.multiselect(
    "Text column(s): several are joined, each on its own line", cols, default=guess.text, key="map_text"
)
label_col = c2.selectbox(
    "Label column", cols, index=cols.index(guess.label) if guess.label in cols else 0, key="map_label"
)
id_col = c1.selectbox(
    "Id column (optional: else the row number)",
    [NONE] + cols,
    index=([NONE] + cols).index(guess.id) if guess.id else 0,
    key="map_id",
)
ann_col = c2.selectbox(
    "Annotator column (optional: several labels per item, one row per label, rows of an item share its id)",
    [NONE] + cols,
    index=([NONE] + cols).index(guess.annotator) if guess.annotator else 0,
    key="map_annotator",
)
with st.expander("Several annotators in columns (wide form: one row per item, one column per annotator)"):
    wide_cols = st.multiselect(
        "Annotator columns, blank where that annotator did not label the item (the label column is then not used)",
        cols,
        key="map_wide",
    )


def class_names_given(text: str, file, values: list[str]) -> dict[str, str]:
    """The pasted names or the classes.txt -> {value: name}; ReviewError naming what is wrong."""
    if file is not None and text.strip():
        raise ReviewError("Give the class names one way: paste them or upload a classes.txt, not both.")
    if file is not None:
        return ingest.parse_class_names(ingest.decode_upload(file.getvalue(), file.name), values, file.name)
    return ingest.parse_class_names(text, values)


values = ingest.label_values(frame, ingest.Mapping(label=label_col, annotators=wide_cols))
codes = 0 < len(values) <= 50 and all(v.lstrip("-").isdigit() for v in values)
with st.expander("Class names: name label values such as 1, 2, 3, 4 (the names become the labels)", expanded=codes):
    shown = ", ".join(v if len(v) <= 40 else v[:40] + "…" for v in values[:30]) + (
        f", … ({len(values):,} values)" if len(values) > 30 else ""
    )
    st.caption(f"Values in the label column{'s' if wide_cols else ''}, in this order: {safe_text.md(shown)}")
    names_text = st.text_area(
        "Names: `1=World, 2=Sports, …`, or one name per line (line k names the k-th value above)",
        key="class_names",
        placeholder="1=World, 2=Sports, 3=Business, 4=Sci/Tech",
    )
    names_file = st.file_uploader(
        "…or a classes.txt: one name per line, line k names the k-th value (as AG News ships it)",
        type=["txt"],
        key="upload_classes",
    )
    class_names, names_error = {}, None
    try:
        class_names = class_names_given(names_text, names_file, values)
    except ReviewError as exc:
        names_error = exc
    if names_error is not None:
        st.warning(safe_text.md(str(names_error)))
    elif class_names:
        st.caption("The labels will be: " + safe_text.md(" · ".join(f"{v} → {n}" for v, n in class_names.items())))
with st.expander("Your own predicted probabilities, tabular features, a declared label set"):
    prob_cols = st.multiselect(
        "Probability columns, one per class, named after the class (e.g. prob_sports)",
        cols,
        default=guess.probs,
        key="map_probs",
    )
    feat_cols = st.multiselect(
        "Tabular feature columns (numeric or categorical; for data without text)",
        cols,
        default=guess.features,
        key="map_features",
    )
    label_set = st.text_input(
        "Declared label set, comma-separated (optional: labels outside it are reported)", key="label_set"
    )
with st.expander("Your own signals: embeddings from your encoder, your model's training loss"):
    emb_col = st.selectbox(
        "Embedding column: one vector per row, as [0.1, -0.2, …] or numbers separated by spaces "
        "(one more candidate model, kept only if it predicts the labels better)",
        [NONE] + cols,
        key="map_embedding",
    )
    emb_file = st.file_uploader(
        "…or a .npy file of shape (rows, dimensions), in the upload's row order", type=["npy"], key="upload_embeddings"
    )
    loss_col = st.selectbox(
        "Training-loss column: your model's loss per row (high = hard), fused into the trust score",
        [NONE] + cols,
        key="map_loss",
    )
name = st.text_input("Dataset name", value=Path(up.name).stem, key="dataset_name_input")

if st.button("Check and ingest", type="primary", key="ingest"):
    chosen = lambda col: [] if col == NONE else [col]  # a box's column, as a list of names
    mapping = ingest.mapping_from_choices(
        frame,
        text=text_cols,
        label=[label_col],
        id=chosen(id_col),
        annotator=chosen(ann_col),
        annotators=wide_cols,
        probs=prob_cols,
        features=feat_cols,
        embedding=chosen(emb_col),
        loss=chosen(loss_col),
        embedding_file=emb_file.name if emb_file is not None else None,
        class_names=class_names,
    )
    bar = st.progress(0.0, text="Checking the file")
    try:
        if names_error is not None:  # checked at the door: nothing is written
            raise names_error
        labels = [s for s in label_set.split(",") if s.strip()] or None
        vectors = signals.read_npy(emb_file.getvalue(), emb_file.name, len(frame)) if emb_file is not None else None
        prep = ingest.prepare(frame, mapping, up.name, data, labels, embeddings=vectors)
        audit.ingest_checked(
            db, prep, name, user, shell.progress_callback(bar), checking="Running the integrity checks"
        )
        bar.empty()
    except ReviewError as exc:
        bar.empty()
        shell.error(exc)
        st.stop()
    st.session_state["dataset_name"] = name.strip()
    what = (
        (
            f"{shell.plural(len(prep.items), 'item')} with {shell.plural(len(prep.annotations), 'label')} from "
            f"{shell.plural(len({a for _, a, _ in prep.annotations}), 'annotator')} (the majority vote is the given label "
            "until the audit finds the consensus)"
        )
        if prep.annotations
        else shell.plural(len(prep.items), "row")
    )
    named = (
        " (named from the values " + safe_text.md(", ".join(f"{v}={n}" for v, n in class_names.items())) + ")"
        if class_names
        else ""
    )
    st.success(
        f"Dataset {safe_text.md(repr(name.strip()))} ingested: {what}, classes {safe_text.md(', '.join(prep.labels))}{named}. "
        "Integrity checks done; run the audit to rank suspects."
    )
    st.page_link("pages/2_Audit.py", label="Go to the audit")
