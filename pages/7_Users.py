"""Users (admin): add accounts, change roles, deactivate."""
import streamlit as st

from review import auth, ui
from review.errors import ReviewError

db, user = ui.page("Users", "admin")

flash = st.session_state.pop("users_flash", None)
if flash:
    st.success(flash)
st.dataframe(auth.list_users(db, user), hide_index=True, width="stretch")

with st.form("add_user", clear_on_submit=True):
    st.subheader("Add a user")
    c = st.columns(3)
    name = c[0].text_input("User name", key="new_name")
    role = c[1].selectbox("Role", auth.ROLES, key="new_role")
    pw = c[2].text_input("Password (at least 8 characters)", type="password", key="new_pw")
    if st.form_submit_button("Add", type="primary"):
        try:
            auth.create_user(db, name.strip(), role, pw, user)
            st.session_state["users_flash"] = f"Added {role} {name.strip()}."
            st.rerun()
        except ReviewError as exc:
            ui.error(exc)

st.subheader("Change a user")
names = [u["name"] for u in auth.list_users(db, user)]
c = st.columns(4)
who = c[0].selectbox("User", names, key="edit_user")
new_role = c[1].selectbox("New role", auth.ROLES, key="edit_role")
if c[2].button("Set role", key="set_role"):
    try:
        auth.set_role(db, who, new_role, user)
        st.rerun()
    except ReviewError as exc:
        ui.error(exc)
if c[3].button("Deactivate / reactivate", key="toggle_active"):
    try:
        active = next(u["active"] for u in auth.list_users(db, user) if u["name"] == who)
        auth.set_active(db, who, not active, user)
        st.rerun()
    except ReviewError as exc:
        ui.error(exc)
