"""The audit trail: every sign-in, upload, run, decision, verification and export, filterable."""

import streamlit as st

from review import audit_view, store, ui

db, user = ui.page("Audit trail", "lead")

opts = audit_view.filter_options(db)
c = st.columns(4)
dataset = c[0].selectbox("Dataset", ["(all)"] + list(opts["datasets"]), key="trail_ds")
actor = c[1].selectbox(
    "Who",
    ["(all)"] + opts["actors"] + [audit_view.FAILED_SIGN_INS],
    key="trail_actor",
    help="The accounts, then the failed sign-ins apart (whatever name a signed-out visitor typed).",
)
action = c[2].selectbox("Action", ["(all)"] + opts["actions"], key="trail_action")
if c[3].button("Check the hash chain", key="verify_chain"):
    ok, n, msg = store.verify_trail(db)
    (st.success if ok else st.error)(ui.escape_message(msg))  # it names the row's actor and action

filters = dict(
    dataset_id=opts["datasets"].get(dataset),
    actor=None if actor in ("(all)", audit_view.FAILED_SIGN_INS) else actor,
    action=None if action == "(all)" else action,
    failed_sign_ins=actor == audit_view.FAILED_SIGN_INS,
)
before = st.session_state.get("trail_before")
rows = audit_view.page(db, before_id=before, limit=50, **filters)
st.dataframe(rows, hide_index=True, width="stretch")
b = st.columns(2)
if before and b[0].button("Newest", key="trail_newest"):
    st.session_state["trail_before"] = None
    st.rerun()
if len(rows) == 50 and b[1].button("Older", key="trail_older"):
    st.session_state["trail_before"] = rows[-1]["id"]
    st.rerun()
