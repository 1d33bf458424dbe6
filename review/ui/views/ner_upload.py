"""The Upload page's NER section: a CoNLL or JSONL file, its scheme, the write and the integrity check."""

from __future__ import annotations

import streamlit as st

from review import auth, safe_text
from review.errors import ReviewError
from review.ui import shell
from review.ui.views.ner_card import ner_sentence


def upload_ner(db, user: auth.User, up) -> None:
    """Upload page for a token-tagged file: what was read (sentences, tokens, scheme, entity types,
    the first sentences coloured), a name, and the ingest with a progress bar."""
    from pathlib import Path

    from review import audit
    from review.ner import store as ner_store

    data = up.getvalue()
    try:
        corpus = ner_store.read_corpus(data, up.name)
    except ReviewError as exc:
        shell.error(exc)
        st.stop()
    st.subheader(f"NER file: {corpus.format}, {len(corpus.sentences):,} sentences, {corpus.n_tokens:,} tokens")
    docs = len({x.doc for x in corpus.sentences})
    st.markdown(
        f"Scheme **{corpus.scheme}** (detected) · entity types **{safe_text.md(', '.join(corpus.entity_types) or '(none)')}** · "
        f"{shell.plural(docs, 'document')}"
        + (f" · {corpus.n_columns} columns, the tag in the last" if corpus.n_columns else "")
        + (" · your own per-token probabilities" if corpus.prob_tag_names else "")
    )
    for k, sent in enumerate(corpus.sentences[:3]):
        ner_sentence(sent.tokens, sent.tags, corpus.scheme, corpus.entity_types if k == 0 else None)
    name = st.text_input("Dataset name", value=Path(up.name).stem or up.name, key="dataset_name_input")
    if st.button("Check and ingest", type="primary", key="ingest"):
        bar = st.progress(0.0, text="Storing sentences")
        try:
            audit.ingest_checked(
                db,
                corpus,
                name,
                user,
                shell.progress_callback(bar),
                source=data,
                checking="Checking the tags against the scheme",
            )
            bar.empty()
        except ReviewError as exc:
            bar.empty()
            shell.error(exc)
            st.stop()
        st.session_state["dataset_name"] = name.strip()
        st.success(
            f"Dataset {safe_text.md(repr(name.strip()))} ingested: {shell.plural(len(corpus.sentences), 'sentence')}, "
            f"{shell.plural(corpus.n_tokens, 'token')}, scheme {corpus.scheme}. Run the audit to find suspect tokens."
        )
        st.page_link("pages/2_Audit.py", label="Go to the audit")
