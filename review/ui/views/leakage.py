"""Leakage across two uploads, drawn (review.findings.leakage): the Audit page's section under Beyond label
errors. Pick another text dataset (a test split uploaded on its own), look for near copies of this dataset's
rows in it (a lead; a progress bar), then per dataset checked its newest result: the counts, the pairs a page
at a time (keyset on the two row numbers) with each side's current label and state, a row of the page opened
in the review card, and one action: exclude the rows here that have a copy there from training (decisions
pending verification). copy_reasons: the review card's line for a row with a copy. Every string from the data
is escaped before it is drawn as Markdown."""

from __future__ import annotations

import streamlit as st

from review import auth, safe_text
from review.datasets import Dataset, get
from review.errors import ReviewError
from review.ui import shell

PAGE = 50  # pairs per page


def leakage_section(db, ds: Dataset, user: auth.User) -> None:
    from review.findings import leakage

    st.markdown("#### Leakage against another upload")
    st.caption(
        "A test split uploaded as its own dataset: a row here with a near copy there (the cosine of their words"
        " at least 0.85) tells a model trained here the answer there."
    )
    flash = st.session_state.pop(f"leakage_flash_{ds.id}", None)
    if flash:
        st.success(safe_text.md_message(flash))
    others = leakage.candidates(db, ds)
    if not others:
        st.info(
            "There is no other text dataset to compare with: upload the other split (a test set, say) as its own"
            " dataset on the Upload page, then check it here."
        )
    else:
        names = dict(others)
        c1, c2 = st.columns([3, 2], vertical_alignment="bottom")
        pick = c1.selectbox("Compare with", list(names), format_func=lambda i: names[i], key=f"leakage_other_{ds.id}")
        lead = user.can("lead")
        if c2.button(
            f"Look for copies in {safe_text.md(names[pick])}",  # a button's label is Markdown
            key=f"leakage_run_{ds.id}",
            disabled=not lead,
            help=None if lead else "A lead runs the leakage check.",
        ):
            bar = st.progress(0.0, text="Leakage: starting")
            try:
                chk = leakage.check(db, ds, get(db, pick), user, progress=shell.progress_callback(bar))
            except ReviewError as exc:
                bar.empty()
                shell.error(exc)
            else:
                st.session_state[f"leakage_flash_{ds.id}"] = (
                    f"Leakage check against {chk.other_name}: {chk.rows:,} rows here have a near copy there"
                    f" ({chk.pairs:,} pairs)."
                )
                st.session_state[f"leakage_open_{ds.id}"] = chk.other_id
                st.rerun()
    for chk in leakage.latest(db, ds):
        _check_panel(db, ds, user, chk)


def _check_panel(db, ds: Dataset, user: auth.User, chk) -> None:
    from review.findings import leakage

    title = (  # an expander's label is Markdown
        f"Against {safe_text.md(chk.other_name)}: {chk.rows:,} row{'s' if chk.rows != 1 else ''} here with a near"
        " copy there"
        f" · {chk.pairs:,} pairs, {chk.conflicting:,} with different labels"
    )
    with st.expander(title, expanded=st.session_state.get(f"leakage_open_{ds.id}") == chk.other_id):
        st.caption(
            f"Checked {chk.created_at[:16].replace('T', ' ')} by {safe_text.md(chk.created_by)}: {chk.other_rows:,}"
            f" rows of {safe_text.md(chk.other_name)} have a near copy here; nearest rows {chk.method}; {chk.seconds} s."
            " Labels and states are as they are now."
        )
        if not chk.pairs:
            st.info(f"No row here has a near copy in {safe_text.md(chk.other_name)}.")
            return
        pages = st.session_state.setdefault(f"leakage_pages_{chk.id}", [(-1, -1)])
        got = leakage.pairs_page(db, chk, after=pages[-1], limit=PAGE)
        st.dataframe(
            [
                {
                    "row": p.idx,
                    "text": p.text,
                    "label": p.label,
                    "state": p.state,
                    f"row in {chk.other_name}": p.other_idx,
                    "its text": p.other_text,
                    "its label": p.other_label,
                    "similarity": p.similarity,
                }
                for p in got
            ],
            hide_index=True,
            width="stretch",
            key=f"leakage_pairs_{chk.id}_{len(pages)}",
            column_config={
                "text": st.column_config.TextColumn(width="medium"),
                "its text": st.column_config.TextColumn(width="medium"),
                "similarity": st.column_config.NumberColumn(format="%.3f"),
            },
        )
        st.caption(f"Page {len(pages)} of the pairs, by row here.")
        c1, c2 = st.columns([3, 2], vertical_alignment="bottom")
        here = list(dict.fromkeys(p.idx for p in got))
        pick = c1.selectbox(
            "Row here", here, key=f"leakage_row_{chk.id}_{len(pages)}", format_func=lambda i: f"row {i}"
        )
        if c2.button("Open it in the review card", key=f"leakage_open_row_{chk.id}"):
            st.session_state["open_row"] = (ds.id, int(pick))  # the Review page claims it (pages/10_Rows.py's way)
            st.switch_page("pages/3_Review.py")
        b1, b2, b3 = st.columns(3)
        if len(pages) > 1 and b1.button("First pairs", key=f"leakage_first_{chk.id}"):
            pages[:] = [(-1, -1)]
            st.rerun()
        if len(got) == PAGE and b2.button(f"Next {PAGE} pairs", key=f"leakage_next_{chk.id}"):
            pages.append((got[-1].idx, got[-1].other_idx))
            st.rerun()
        n_open = leakage.open_here(db, chk)
        if not n_open:
            b3.caption(f"All {chk.rows:,} rows here are decided already (the Verify page, the trail).")
        elif b3.button(
            f"Exclude the {n_open:,} open row{'s' if n_open != 1 else ''} here from training",
            key=f"leakage_exclude_{chk.id}",
            help="One decision per open row, each waiting for verification on the Verify page",
        ):
            try:
                done = leakage.exclude_rows(db, ds, user, chk.id)
            except ReviewError as exc:
                shell.error(exc)
            else:
                st.session_state[f"leakage_flash_{ds.id}"] = done.message()
                st.rerun()


def copy_reasons(db, ds: Dataset, idx: int) -> None:
    """The review card's line for a row with a near copy in another upload (nothing when it has none)."""
    from review.findings import leakage

    if ds.task != "text":
        return
    got = leakage.copies_of(db, ds, idx)
    if got:
        st.markdown(
            "**Leakage:** "
            + "; ".join(
                f"a near copy in {safe_text.md(c.other_name)}, row {c.other_idx}"
                f" (similarity {c.similarity:.2f}, label {safe_text.md(c.other_label or '–')})"
                for c in got
            ),
            help="A leakage check on the Audit page (Beyond label errors) found it: a copy in a test split"
            " tells a model trained here the answer there. Exclude from training is one way out.",
        )
