"""The dataset's guidelines beside the review card: an expander in the sidebar, so the card keeps the
main area's whole width (at 1440 px the sidebar sits to the card's left and scrolls on its own).
Only the current version's body is read (one query); the body is drawn through guidelines.render."""

from __future__ import annotations

import streamlit as st

from review import guidelines, safe_text
from review.datasets import Dataset

PAGE = "pages/13_Guidelines.py"


@st.cache_data(max_entries=32, show_spinner=False)
def _rendered(body: str) -> str:
    """guidelines.render is pure: the Review page reruns on every click, the body rarely changes."""
    return guidelines.render(body)


def guidelines_panel(db, ds: Dataset) -> None:
    """Draw ``ds``'s current guidelines in the sidebar: 'Guidelines (version N)', open, with a link to the
    Guidelines page (the versions, and the editor for leads)."""
    g = guidelines.current(db, ds)
    with st.sidebar:
        title = f"Guidelines (version {g.version})" if g else "Guidelines (none yet)"
        with st.expander(title, expanded=g is not None, icon=":material/menu_book:"):
            if g is None:
                st.caption("No guidelines for this dataset yet: a lead writes them on the Guidelines page.")
            else:
                st.caption(f"by {safe_text.md(g.edited_by)}, {g.edited_at[:16].replace('T', ' ')} UTC")
                with st.container(key="guidelines_panel_body"):
                    st.markdown(_rendered(g.body))
            st.page_link(PAGE, label="Open the Guidelines page", icon=":material/open_in_new:")
