"""The Audit page's Precision tab: flag precision from decisions, errors left, spot checks."""

from __future__ import annotations

from dataclasses import asdict

import streamlit as st

from review import auth
from review.datasets import Dataset
from review.errors import ReviewError
from review.ui import shell


def precision_tab(db, ds: Dataset, user: auth.User) -> None:
    """Audit page, Precision tab: from reviewers' decisions, how many flags were right, by band;
    the errors likely left in the open queue; spot checks of unflagged rows."""
    from review import charts, precision

    res = precision.flag_precision(db, ds)
    if not res.bands:
        st.info("Run the audit first.")
        return
    c = st.columns(3)
    p = res.precision
    c[0].metric("Flagged rows decided", f"{res.decided:,}")
    c[1].metric(
        "Really wrong",
        "–" if p is None else f"{p:.0%}",
        help=None if p is None else f"95% interval {res.low:.0%}–{res.high:.0%}",
    )
    rem = res.remaining
    c[2].metric(
        "Errors left in the open queue",
        "–" if rem is None else f"≈{rem.estimate:,.0f}",
        help=None
        if rem is None
        else f"95% interval {rem.low:,.0f}–{rem.high:,.0f} among {rem.open:,} open flagged rows",
    )
    if rem is not None:
        st.caption(
            f"Of the {rem.open:,} flagged rows still open, about {rem.estimate:,.0f} are likely wrong "
            f"(between {rem.low:,.0f} and {rem.high:,.0f}). When that is small, the rest of the queue is not worth the time."
        )
    else:
        st.caption("Decide some flagged rows in the review queue: precision comes from those decisions.")
    if res.decided:
        # the chart reads the bands as mappings: the same keys as the fields
        st.plotly_chart(charts.precision_by_band([asdict(b) for b in res.bands]), key="precision_chart")
    else:  # no decision yet: nothing to draw (five empty "0/0" bars would read as zero precision)
        st.info("No flagged row has been decided yet: the precision per score band appears after the first decisions.")
    st.markdown("**Spot checks**: random unflagged rows put in the queue measure what the flags miss.")
    sp = precision.spot_results(db, ds)
    if user.can("lead"):
        c1, c2 = st.columns([1, 2], vertical_alignment="bottom")
        k = c1.number_input("Rows", min_value=1, max_value=1000, value=20, step=10, key="spot_n")
        if c2.button(f"Add {int(k)} random unflagged rows to the queue", key="spot_add"):
            try:
                added = precision.add_spot_checks(db, ds, user, int(k))
                st.success(f"Added {shell.plural(added, 'row')}: reviewers find them under 'Spot checks' in the queue.")
                sp = precision.spot_results(db, ds)
            except ReviewError as exc:
                shell.error(exc)
    if sp is not None and sp.added:
        line = f"{sp.added:,} spot-check rows, {sp.decided:,} decided, {sp.wrong:,} found wrong"
        if sp.miss_rate is not None:
            est, lo, hi = sp.missed_estimate
            line += (
                f": miss rate {sp.miss_rate:.1%} ({sp.low:.1%}–{sp.high:.1%}), so about {est:,.0f} "
                f"({lo:,.0f}–{hi:,.0f}) errors among the {sp.unflagged:,} unflagged rows."
            )
        st.markdown(line)
