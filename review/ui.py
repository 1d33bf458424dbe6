"""The only module of review/ that imports streamlit: sign-in, session, pickers, safe text.

Pages call these helpers and the rest of review/; they run no SQL and no cleanlab.
"""
from __future__ import annotations

import html
import re
import time

import streamlit as st

from . import auth, store
from .datasets import Dataset, get
from .errors import ReviewError

SESSION_SECONDS = 8 * 3600      # a signed-in session lasts this long without activity
TEXT_PREVIEW = 5000             # characters of a long text drawn before "show all"


def connect():
    """A fresh connection for this script run (never shared across threads)."""
    return store.connect()


def setup(title: str) -> None:
    st.set_page_config(page_title=f"{title} · Label review", page_icon="🔎", layout="wide")


def page(title: str, role: str = "annotator", heading: str | None = None):
    """Every page's preamble: page config, a connection, the title, and the sign-in gate.

    Returns (db, user); stops the page for signed-out visitors and lower roles.
    """
    setup(title)
    db = connect()
    st.title(heading or title)
    return db, require(db, role)


def page_with_dataset(title: str, role: str = "annotator", heading: str | None = None):
    """page() plus the shared dataset picker; stops the page when there is no dataset.

    Returns (db, user, dataset)."""
    db, user = page(title, role, heading)
    ds = dataset_picker(db)
    if ds is None:
        st.stop()
    return db, user, ds


def current_user(db) -> auth.User | None:
    """The signed-in user, re-checked against the database; None if signed out or expired."""
    s = st.session_state.get("user")
    if not s:
        return None
    name, role, last_seen = s
    if time.time() - last_seen > SESSION_SECONDS:
        st.session_state.pop("user", None)
        st.session_state["flash"] = "Your session expired: sign in again."
        return None
    try:
        user = auth.get_user(db, name)  # role changes and deactivation take effect at once
    except ReviewError:
        st.session_state.pop("user", None)
        return None
    st.session_state["user"] = (user.name, user.role, time.time())
    return user


def sign_in_form(db) -> None:
    """The sign-in form, or the first-admin form on an empty database."""
    flash = st.session_state.pop("flash", None)
    if flash:
        st.info(flash)
    if not auth.has_users(db):
        st.subheader("Welcome: create the admin account")
        st.caption("This database has no accounts yet. The first account is the admin; it can add leads and annotators.")
        with st.form("first_admin"):
            name = st.text_input("User name", key="first_name")
            pw = st.text_input("Password (at least 8 characters)", type="password", key="first_pw")
            pw2 = st.text_input("Repeat the password", type="password", key="first_pw2")
            if st.form_submit_button("Create admin account", type="primary"):
                if pw != pw2:
                    st.error("The two passwords differ: type them again.")
                else:
                    try:
                        auth.create_user(db, name.strip(), "admin", pw, None)
                        user = auth.sign_in(db, name.strip(), pw)
                        st.session_state["user"] = (user.name, user.role, time.time())
                        st.rerun()
                    except ReviewError as exc:
                        st.error(str(exc))
        return
    st.subheader("Sign in")
    with st.form("sign_in"):
        name = st.text_input("User name", key="signin_name")
        pw = st.text_input("Password", type="password", key="signin_pw")
        if st.form_submit_button("Sign in", type="primary"):
            try:
                user = auth.sign_in(db, name.strip(), pw)
                st.session_state["user"] = (user.name, user.role, time.time())
                st.rerun()
            except ReviewError as exc:
                st.error(str(exc))


NAV = [  # (page file, label, lowest role that may use it)
    ("app.py", "Home", "annotator"),
    ("pages/1_Upload.py", "Upload", "lead"),
    ("pages/2_Audit.py", "Audit", "annotator"),
    ("pages/3_Review.py", "Review", "annotator"),
    ("pages/4_Verify.py", "Verify", "lead"),
    ("pages/5_Export.py", "Export", "lead"),
    ("pages/6_Audit_trail.py", "Audit trail", "lead"),
    ("pages/8_Annotators.py", "Annotators", "lead"),
    ("pages/7_Users.py", "Users", "admin"),
]


def sidebar(user: auth.User) -> None:
    """The pages this user's role may use, and who is signed in."""
    with st.sidebar:
        for page, label, role in NAV:
            if user.can(role):
                st.page_link(page, label=label)
        st.divider()
        st.markdown(f"Signed in as **{escape_md(user.name)}** ({user.role})")
        if st.button("Sign out", key="sign_out"):
            for k in list(st.session_state.keys()):
                del st.session_state[k]
            st.rerun()


def require(db, role: str = "annotator") -> auth.User:
    """Stop the page unless someone with at least ``role`` is signed in."""
    user = current_user(db)
    if user is None:
        sign_in_form(db)
        st.stop()
    sidebar(user)
    if not user.can(role):
        st.warning(f"This page is for a {role} or above; you are signed in as {user.role}.")
        st.stop()
    return user


def dataset_picker(db, key: str = "dataset") -> Dataset | None:
    """A select box of datasets; the choice is shared by every page. None if there are none."""
    from .datasets import overview
    names = [d["name"] for d in overview(db)]
    if not names:
        st.info("No dataset yet. A lead uploads one on the Upload page, or loads the demo from the home page.")
        return None
    current = st.session_state.get("dataset_name")
    index = names.index(current) if current in names else 0
    name = st.selectbox("Dataset", names, index=index, key=f"{key}_picker")
    st.session_state["dataset_name"] = name
    return get(db, name)


def escape_md(s: str) -> str:
    """Text shown inside st.markdown as literal text: every markdown/HTML punctuation mark backslash-escaped."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|~<>&$:])", r"\\\1", str(s))


def show_text(text: str | None, key: str) -> None:
    """A user's text, drawn as text (escaped; never HTML or markdown). Long texts folded."""
    if text is None or not str(text).strip():
        st.html('<div style="color:#b00;font-style:italic">(empty text)</div>')
        return
    text = str(text)
    style = ("white-space:pre-wrap;word-break:break-word;font-size:1.1rem;line-height:1.5;"
             "padding:0.8rem 1rem;border-radius:0.5rem;background:#f5f7fa;border:1px solid #dde3ea")
    if len(text) <= TEXT_PREVIEW or st.session_state.get(f"full_{key}"):
        st.html(f'<div class="item-text" style="{style}">{html.escape(text)}</div>')
    else:
        st.html(f'<div class="item-text" style="{style}">{html.escape(text[:TEXT_PREVIEW])}…</div>')
        if st.button(f"Show all {len(text):,} characters", key=f"more_{key}"):
            st.session_state[f"full_{key}"] = True
            st.rerun()


def plural(n: int, noun: str) -> str:
    """'1 decision', '3 decisions'."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def badge(label: str, color: str) -> str:
    """A coloured pill (label escaped) for st.html."""
    return (f'<span style="background:{color};color:white;padding:2px 10px;border-radius:10px;'
            f'font-size:0.9rem;margin-right:6px">{html.escape(str(label))}</span>')


def progress_callback(bar):
    """Adapter: review's progress(fraction, message) -> a st.progress bar."""
    def cb(fraction: float, message: str) -> None:
        bar.progress(max(0.0, min(1.0, fraction)), text=message)
    return cb


def error(exc: Exception) -> None:
    st.error(str(exc))
