"""Home: sign-in, the datasets and where each stands, the demo in one click."""
import streamlit as st

from review import demo, ui
from review.datasets import overview
from review.errors import ReviewError

db, user = ui.page("Home", "annotator", heading="Label review")


def load_demo() -> None:
    bar = st.progress(0.0, text="Loading the demo")
    try:
        demo.load_demo(db, user, progress=ui.progress_callback(bar))
        st.session_state["dataset_name"] = demo.DEMO_NAME
        st.rerun()
    except ReviewError as exc:
        ui.error(exc)


datasets = overview(db)
if not datasets:
    st.markdown("No dataset yet.")
    if user.can("lead"):
        st.markdown("Try the built-in demo: 400 support tickets in four classes, 8% of them deliberately mislabelled. "
                    "It is loaded and audited in a few seconds.")
        if st.button("Load the demo dataset", type="primary", key="load_demo"):
            load_demo()
        st.page_link("pages/1_Upload.py", label="Or upload your own data")
    else:
        st.info("A lead has not uploaded a dataset yet. Come back when they have.")
    st.stop()

st.subheader("Datasets")
st.dataframe(datasets, hide_index=True, width="stretch",
             column_order=["name", "stage", "rows", "suspects", "decided", "pending verification", "approved", "created by", "created at"])
st.markdown("**Next steps**")
cols = st.columns(4)
cols[0].page_link("pages/3_Review.py", label="Review suspects")
if user.can("lead"):
    cols[1].page_link("pages/2_Audit.py", label="Audit and charts")
    cols[2].page_link("pages/4_Verify.py", label="Verify decisions")
    cols[3].page_link("pages/5_Export.py", label="Export cleaned labels")
    if not any(d["name"] == demo.DEMO_NAME for d in datasets):
        if st.button("Load the demo dataset", key="load_demo"):
            load_demo()
