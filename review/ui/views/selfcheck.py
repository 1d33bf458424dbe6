"""The Audit page's Self-check tab: known errors injected into a copy, recall per kind."""

from __future__ import annotations

import streamlit as st

from review import auth, safe_text
from review.datasets import Dataset
from review.errors import ReviewError
from review.ui import shell


def selfcheck_tab(db, ds: Dataset, user: auth.User) -> None:
    """Audit page, Self-check tab: inject known errors into a copy of the labels, audit the copy, show recall per kind."""
    from review import selfcheck

    st.markdown(
        "How much would the audit find on **your** data? The self-check injects known errors into a copy of "
        "the labels (3% random flips, 3% swaps between the two classes the model confuses most, a block of 3% "
        "of rows shifted by one), audits the copy the same way and counts what it flags. Your labels, runs "
        "and reviews do not change."
    )
    if user.can("lead"):
        c1, c2 = st.columns([1, 3], vertical_alignment="bottom")
        seed = c1.number_input(
            "Seed",
            min_value=0,
            max_value=10_000,
            value=0,
            step=1,
            key="selfcheck_seed",
            help="Another seed draws other rows.",
        )
        if c2.button("Run the self-check", key="selfcheck_run", help="About as long as an audit run."):
            bar = st.progress(0.0, text="Starting")
            try:
                selfcheck.run_selfcheck(db, ds.id, user, seed=int(seed), progress=shell.progress_callback(bar))
                bar.empty()
            except ReviewError as exc:
                bar.empty()
                shell.error(exc)
    done = selfcheck.self_checks(db, ds)
    if not done:
        st.info("No self-check yet." + ("" if user.can("lead") else " A lead runs it."))
        return
    last = done[0]
    st.markdown(
        f"**Latest** (seed {last.seed}, {last.created_at[:19].replace('T', ' ')} by {safe_text.md(last.created_by)}): "
        + safe_text.md(last.summary())
    )
    cols = st.columns(len(last.kinds))
    for col, k in zip(cols, last.kinds):
        col.metric(f"{k.kind.capitalize()} found", f"{k.recall:.0%}", help=f"{k.found:,} of {k.injected:,} injected")
    st.caption(
        f"Swapped classes: {safe_text.md(last.pair[0])} and {safe_text.md(last.pair[1])}. {last.flagged:,} rows flagged "
        f"on the copy, {last.injected_share_of_flagged:.0%} of them injected; the rest are rows the audit doubts "
        "anyway, some of them real errors."
    )
    if len(done) > 1:
        st.dataframe(
            [
                {
                    "id": r.id,
                    "at": r.created_at[:19].replace("T", " "),
                    "by": r.created_by,
                    "seed": r.seed,
                    **{k.kind: k.recall for k in r.kinds},
                    "model": r.model,
                }
                for r in done
            ],
            hide_index=True,
            width="stretch",
            key="selfchecks_table",
        )
