"""What both review cards (text and NER) say about a suspect besides the row itself: why it is flagged and
a lead's rejection of an earlier decision, every value escaped."""

from __future__ import annotations

import streamlit as st

from review import safe_text
from review.workflow import Suspect


def flag_reason(s: Suspect) -> None:
    if s.reason:
        st.markdown("**Why it is flagged:** " + safe_text.md(s.reason))


def rejection_note(s: Suspect) -> None:
    r = s.latest_review
    if r and r["status"] == "rejected":
        st.warning(
            f"A lead rejected an earlier decision ({r['decision']} by {safe_text.md(r['reviewer'])}): "
            f"{safe_text.md(r['verify_note'])}"
        )


def suspect_notes(s: Suspect) -> None:
    """The reason, then the rejection (the NER card's order)."""
    flag_reason(s)
    rejection_note(s)
