"""Users (admin): add accounts, change roles and deactivate (each confirmed first; the last active admin keeps the role)."""

import time

import streamlit as st

from review import auth, safe_text
from review.errors import ReviewError
from review.ui import shell

db, user = shell.page("Users", "admin")

flash = st.session_state.pop("users_flash", None)
if flash:  # it names a user: data, not Markdown
    st.success(safe_text.md_message(flash))
now = time.time()
st.dataframe(
    [
        {
            "name": u["name"],
            "role": u["role"],
            "status": "active" if u["active"] else "deactivated",
            "created": u["created_at"],
            "failed sign-ins": u["failed_logins"] or 0,
            "locked until": time.strftime("%Y-%m-%d %H:%M", time.localtime(u["locked_until"]))
            if u["locked_until"] and u["locked_until"] > now
            else "not locked",
        }
        for u in auth.list_users(db, user)
    ],
    hide_index=True,
    width="stretch",
)

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
            shell.error(exc)

st.subheader("Change a user")
users = {u["name"]: u for u in auth.list_users(db, user)}
# no one is preselected: a role change starts with choosing whom it is for
who = st.selectbox("User", list(users), index=None, placeholder="Choose a user", key="edit_user")
if who is None:
    st.caption("Choose a user to change their role or to deactivate them. Nothing changes until you confirm.")
    st.stop()

u = users[who]
current, active = u["role"], bool(u["active"])
shown = safe_text.md(who)  # in Markdown (text, checkbox and button labels)
st.markdown(f"**{shown}** is **{current}**, {'active' if active else 'deactivated'}.")
c = st.columns(2)
with c[0]:
    new_role = st.selectbox("New role", auth.ROLES, index=auth.ROLES.index(current), key=f"edit_role_{who}")
    refusal = auth.last_admin_refusal(db, who, f"making {who} {new_role}") if new_role != current else None
    confirm = False
    if refusal:
        st.warning(safe_text.md_message(refusal))
    elif new_role != current:
        note = " You will lose access to this page." if who == user.name else ""
        confirm = st.checkbox(
            f"Yes, change {shown} from {current} to {new_role}.{note}", key=f"confirm_role_{who}_{new_role}"
        )
    if st.button(
        "Set role",
        key="set_role",
        type="primary",
        disabled=not confirm,
        help="Choose another role and tick the confirmation first" if not confirm else None,
    ):
        try:
            old = auth.set_role(db, who, new_role, user)
            st.session_state["users_flash"] = f"Changed the role of {who} from {old} to {new_role}."
            st.rerun()
        except ReviewError as exc:
            shell.error(exc)
with c[1]:
    if active:
        refusal = None if who == user.name else auth.last_admin_refusal(db, who, f"deactivating {who}")
        if who == user.name:
            st.caption("You cannot deactivate your own account.")
        elif refusal:
            st.warning(safe_text.md_message(refusal))
        else:
            sure = st.checkbox(
                f"Yes, deactivate {shown}: they are signed out and cannot sign in.", key=f"confirm_deactivate_{who}"
            )
            if st.button(f"Deactivate {shown}", key="toggle_active", disabled=not sure):
                try:
                    auth.set_active(db, who, False, user)
                    st.session_state["users_flash"] = f"Deactivated {who} ({current})."
                    st.rerun()
                except ReviewError as exc:
                    shell.error(exc)
    elif st.button(f"Reactivate {shown}", key="toggle_active"):
        try:
            auth.set_active(db, who, True, user)
            st.session_state["users_flash"] = f"Reactivated {who} ({current})."
            st.rerun()
        except ReviewError as exc:
            shell.error(exc)
