"""The audit trail: every sign-in, upload, run, decision, verification and export, filterable."""

import streamlit as st

from review import safe_text, trail
from review.trail import read as trail_read
from review.ui import shell

db, user = shell.page("Audit trail", "lead")

opts = trail_read.filter_options(db)
c = st.columns(4)
dataset = c[0].selectbox("Dataset", ["(all)"] + list(opts["datasets"]), key="trail_ds")
actor = c[1].selectbox(
    "Who",
    ["(all)"] + opts["actors"] + [trail_read.FAILED_SIGN_INS],
    key="trail_actor",
    help="The accounts, then the failed sign-ins apart (whatever name a signed-out visitor typed).",
)
action = c[2].selectbox("Action", ["(all)"] + opts["actions"], key="trail_action")
if c[3].button("Check the hash chain", key="verify_chain"):
    ok, n, msg = trail.verify_trail(db)
    (st.success if ok else st.error)(safe_text.md_message(msg))  # it names the row's actor and action

filters = dict(
    dataset_id=opts["datasets"].get(dataset),
    actor=None if actor in ("(all)", trail_read.FAILED_SIGN_INS) else actor,
    action=None if action == "(all)" else action,
    failed_sign_ins=actor == trail_read.FAILED_SIGN_INS,
)
before = st.session_state.get("trail_before")
rows = trail_read.page(db, before_id=before, limit=50, **filters)
st.dataframe(rows, hide_index=True, width="stretch")
b = st.columns(2)
if before and b[0].button("Newest", key="trail_newest"):
    st.session_state["trail_before"] = None
    st.rerun()
if len(rows) == 50 and b[1].button("Older", key="trail_older"):
    st.session_state["trail_before"] = rows[-1]["id"]
    st.rerun()
