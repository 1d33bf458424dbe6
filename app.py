"""Home: sign-in, the datasets and where each stands, the demo in one click."""

import streamlit as st

from review import demo, safe_text
from review.datasets import overview
from review.errors import ReviewError
from review.ui import shell

db, user = shell.page("Home", "annotator", heading="Label review")


def load_demo() -> None:
    bar = st.progress(0.0, text="Loading the demo")
    try:
        demo.load_demo(db, user, progress=shell.progress_callback(bar))
        st.session_state["dataset_name"] = demo.DEMO_NAME
        st.rerun()
    except ReviewError as exc:
        shell.error(exc)


datasets = overview(db)
if not datasets:
    st.markdown("No dataset yet.")
    if user.can("lead"):
        st.markdown(
            "Try the built-in demo: 400 support tickets in four classes, 8% of them deliberately mislabelled. "
            "It is loaded and audited in a few seconds."
        )
        if st.button("Load the demo dataset", type="primary", key="load_demo"):
            load_demo()
        st.page_link("pages/1_Upload.py", label="Or upload your own data")
    else:
        st.info("A lead has not uploaded a dataset yet. Come back when they have.")
    st.stop()

st.subheader("Datasets")
st.dataframe(
    datasets,
    hide_index=True,
    width="stretch",
    column_order=[
        "name",
        "stage",
        "rows",
        "suspects",
        "decided",
        "pending verification",
        "approved",
        "created by",
        "created at",
    ],
)
st.markdown("**Next steps**")


def go(name: str, page: str) -> None:
    st.session_state["dataset_name"] = name  # the page opens on this dataset
    st.switch_page(page)


for d in datasets[:10]:
    name = d["name"]
    shown = safe_text.md(name)  # the tooltips (help=) are Markdown too
    c = st.columns([3, 2, 2, 2, 2], vertical_alignment="center")
    c[0].markdown(f"**{shown}** · {safe_text.md(str(d['stage']))}")
    if c[1].button(
        f"Review {d['suspects'] or 0:,} suspects",
        key=f"next_review_{name}",
        width="stretch",
        type="primary" if d.get("suspects") else "secondary",
        help=f"Review the suspects of {shown}",
    ):
        go(name, "pages/3_Review.py")
    if user.can("lead"):
        if c[2].button("Audit and charts", key=f"next_audit_{name}", width="stretch", help=f"Audit {shown}"):
            go(name, "pages/2_Audit.py")
        pending = d.get("pending verification") or 0
        if c[3].button(
            f"Verify {pending:,} decisions",
            key=f"next_verify_{name}",
            width="stretch",
            type="primary" if pending else "secondary",
            help=f"Verify the decisions on {shown}",
        ):
            go(name, "pages/4_Verify.py")
        if c[4].button(
            "Export", key=f"next_export_{name}", width="stretch", help=f"Export the cleaned labels of {shown}"
        ):
            go(name, "pages/5_Export.py")
if len(datasets) > 10:
    st.caption(f"{len(datasets) - 10} more datasets: pick one with the dataset box on any page.")
if user.can("lead"):
    if not any(d["name"] == demo.DEMO_NAME for d in datasets):
        if st.button("Load the demo dataset", key="load_demo"):
            load_demo()
