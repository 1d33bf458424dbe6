"""The only module of review/ that imports streamlit: sign-in, session, pickers, safe text.

Pages call these helpers and the rest of review/; they run no SQL and no cleanlab.
"""

from __future__ import annotations

import hashlib
import html
import os
import time
from email.utils import formatdate

import streamlit as st

from review import auth, safe_text, store
from review.datasets import Dataset, get
from review.errors import ReviewError, StorageError

SESSION_SECONDS = auth.SESSION_IDLE  # a signed-in session lasts this long without activity
TEXT_PREVIEW = 5000  # characters of a long text drawn before "show all"


def connect():
    """A fresh connection for this script run (never shared across threads).

    A database the app cannot use (read-only file or folder, not a database, damaged, a full disk
    while creating it: review.errors.StorageError) stops the page with the message naming the file
    and the fix, sign-in page included. Outside a script run (a download built on click) it raises."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    from review.errors import StorageError

    try:
        return store.connect(writable=True)
    except StorageError as exc:
        if get_script_run_ctx(suppress_warning=True) is None:
            raise
        error(exc)
        st.stop()


def download_connection(token: str | None):
    """A connection for a download built on click (``st.download_button(data=callable)``): that runs in
    its own thread, long after the page was drawn, so it checks the tab's session again first (signed
    out or ended elsewhere, expired, deactivated: AuthError, no file). Capture ``token`` from
    st.session_state["session_token"] while the page draws. The export functions then check that the
    account is still active and a lead (auth.require_active)."""
    conn = connect()
    if token:
        auth.resume_session(conn, token)
    return conn


def deferred_download(build):
    """``data=`` for ``st.download_button``: ``build(conn)`` -> str or an iterable of str, run only when
    the button is clicked, on :func:`download_connection` (the tab's session re-checked then), and
    returned as UTF-8 bytes. Call it while the page draws (it captures the tab's session token)."""
    token = st.session_state.get("session_token")

    def data() -> bytes:
        out = build(download_connection(token))
        return (out if isinstance(out, str) else "".join(out)).encode("utf-8")

    return data


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


def cookie_name() -> str:
    """The session cookie's name, one per database file: two instances on one host (cookies do not
    tell ports apart) keep their sessions apart."""
    return "review_session_" + hashlib.sha256(os.path.abspath(store.db_path()).encode()).hexdigest()[:10]


def _cookie_token() -> str | None:
    """The session token the browser sent when this tab connected (a reload, a new tab, a bookmark,
    a typed URL). st.context.cookies is the websocket handshake's: it does not change while the tab
    stays connected."""
    try:
        value = st.context.cookies.get(cookie_name())
    except Exception:  # no browser behind this run
        return None
    return value if isinstance(value, str) and value else None  # (AppTest's mock runtime hands a mock)


def _cookie_script(set_token: str | None = None, expires_at: float = 0.0, dead: str | None = None) -> None:
    """Write the session cookie from the page: Streamlit (1.67) cannot set a cookie from a script,
    so a two-line script does (SameSite=Strict, Secure over https, not HttpOnly since script sets it).
    ``set_token``: store it until ``expires_at``. ``dead``: remove the cookie if it still holds that
    token (a newer sign-in in another tab is left alone); a malformed value is removed outright."""
    name = cookie_name()
    attrs = '; path=/; samesite=strict" + (location.protocol === "https:" ? "; secure" : "")'
    if set_token is not None:
        if not auth.TOKEN_RE.match(set_token):
            return
        js = f'document.cookie = "{name}={set_token}; expires={formatdate(expires_at, usegmt=True)}{attrs};'
    elif dead is not None:
        clear = f'document.cookie = "{name}=; max-age=0{attrs};'
        if auth.TOKEN_RE.match(dead):
            js = f'if (document.cookie.split("; ").indexOf("{name}={dead}") >= 0) {{ {clear} }}'
        else:
            js = clear
    else:
        return
    st.html(f"<script>{js}</script>", unsafe_allow_javascript=True)


def _start_session(db, user: auth.User) -> None:
    """After a right password: a new session in the database, its token in this tab and, from the
    next run on, in the browser's cookie (so a reload or a new tab stays signed in)."""
    token = auth.start_session(db, user)
    for k in ("cookie_dead", "flash"):
        st.session_state.pop(k, None)
    st.session_state["session_token"] = token
    st.session_state["session_cookie"] = (token, auth.session_expires(db, token))  # this tab writes the cookie
    st.session_state["user"] = (user.name, user.role, time.time())


def _signed_out(message: str, dead_token: str | None) -> None:
    """Forget everything this tab held (another user may sign in next), say why, and have the sign-in
    form remove the cookie if it still holds the ended token."""
    handshake = _cookie_token()
    for k in list(st.session_state.keys()):
        del st.session_state[k]
    st.session_state["flash"] = message
    st.session_state["cookie_tried"] = handshake  # never resume, in this tab, the cookie it connected with
    if dead_token:
        st.session_state["cookie_dead"] = dead_token


def current_user(db) -> auth.User | None:
    """The signed-in user, re-checked against the database on every run; None if signed out or expired.

    A tab signs in with the form, or resumes the browser's session from its cookie. A tab holding a
    session token re-checks it each run (review.auth.resume_session), so a sign-out in another tab,
    the lifetime, the idle limit or a deactivation ends it at the next click. A tab without a token
    (a test seeding st.session_state["user"]) is checked against the users table only."""
    ss = st.session_state
    s = ss.get("user")
    token = ss.get("session_token")
    if not s:
        cookie = _cookie_token()
        if not cookie or ss.get("cookie_tried") == cookie:
            return None
        ss["cookie_tried"] = cookie
        try:
            user = auth.resume_session(db, cookie)
        except StorageError as exc:  # the database failed, not the session: keep it, say what to fix
            error(exc)
            st.stop()
        except ReviewError as exc:
            ss["flash"] = str(exc)
            ss["cookie_dead"] = cookie
            return None
        ss["session_token"] = cookie
        ss["user"] = (user.name, user.role, time.time())
        return user
    name, role, last_seen = s
    if time.time() - last_seen > SESSION_SECONDS:
        auth.end_session(db, token, "idle")
        _signed_out("Your session expired: sign in again.", token)
        return None
    try:
        if token:
            user = auth.resume_session(db, token)
        else:
            user = auth.get_user(db, name)  # role changes and deactivation take effect at once
    except StorageError as exc:  # a full disk while touching last_seen: the tab keeps its session and its state
        error(exc)
        st.stop()
    except ReviewError as exc:
        if token:
            _signed_out(str(exc), token)
        else:
            ss.pop("user", None)
        return None
    ss["user"] = (user.name, user.role, time.time())
    return user


def sign_in_form(db) -> None:
    """The sign-in form, or the first-admin form on an empty database. The client's address goes to
    auth.sign_in as its ``source`` (per-source throttle): st.context.ip_address, the TCP peer; for a
    peer on this machine (None: a visitor here, or a reverse proxy here), the last X-Forwarded-For
    entry, the one such a proxy appends (any entry before it the client could have written)."""
    try:
        source = st.context.ip_address
        if source is None:
            source = (st.context.headers.get("X-Forwarded-For") or "").split(",")[-1].strip()[:64] or None
    except Exception:  # no session context (a bare script run): one source, "local"
        source = None
    flash = st.session_state.pop("flash", None)
    if flash:
        st.info(flash)
    if st.session_state.get("cookie_dead"):
        _cookie_script(dead=st.session_state["cookie_dead"])
    if not auth.has_users(db):
        st.subheader("Welcome: create the admin account")
        st.caption(
            "This database has no accounts yet. The first account is the admin; it can add leads and annotators."
        )
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
                        user = auth.sign_in(db, name.strip(), pw, source=source)
                        _start_session(db, user)
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
                user = auth.sign_in(db, name.strip(), pw, source=source)
                _start_session(db, user)
                st.rerun()
            except ReviewError as exc:
                st.error(str(exc))


NAV = [  # (page file, label, lowest role that may use it)
    ("app.py", "Home", "annotator"),
    ("pages/1_Upload.py", "Upload", "lead"),
    ("pages/2_Audit.py", "Audit", "annotator"),
    ("pages/3_Review.py", "Review", "annotator"),
    ("pages/10_Rows.py", "Rows", "annotator"),
    ("pages/13_Guidelines.py", "Guidelines", "annotator"),
    ("pages/9_Label.py", "Label", "annotator"),
    ("pages/4_Verify.py", "Verify", "lead"),
    ("pages/11_Bulk_fix.py", "Bulk fix", "annotator"),
    ("pages/12_Taxonomy.py", "Taxonomy", "lead"),
    ("pages/5_Export.py", "Export", "lead"),
    ("pages/14_Compare.py", "Compare", "lead"),
    ("pages/6_Audit_trail.py", "Audit trail", "lead"),
    ("pages/8_Annotators.py", "Annotators", "lead"),
    ("pages/7_Users.py", "Users", "admin"),
]


def sidebar(user: auth.User, db=None) -> None:
    """The pages this user's role may use, who is signed in, Sign out (ends the session in every tab)."""
    with st.sidebar:
        for page, label, role in NAV:
            if user.can(role):
                st.page_link(page, label=label)
        st.divider()
        st.markdown(f"Signed in as **{safe_text.md(user.name)}** ({user.role})")
        if st.button("Sign out", key="sign_out"):
            token = st.session_state.get("session_token")
            if db is not None:
                auth.end_session(db, token)
            _signed_out("You are signed out.", token)
            st.rerun()
        cookie = st.session_state.get("session_cookie")
        if cookie and cookie[0] == st.session_state.get("session_token"):
            _cookie_script(set_token=cookie[0], expires_at=cookie[1] or 0.0)


def require(db, role: str = "annotator") -> auth.User:
    """Stop the page unless someone with at least ``role`` is signed in."""
    user = current_user(db)
    if user is None:
        sign_in_form(db)
        st.stop()
    sidebar(user, db)
    if not user.can(role):
        st.warning(f"This page is for a {role} or above; you are signed in as {user.role}.")
        st.stop()
    return user


def dataset_picker(db, key: str = "dataset") -> Dataset | None:
    """A select box of datasets; the choice is shared by every page and named in the URL
    (?dataset=NAME), so a reload or a bookmark opens the same one. None if there are none."""
    from review.datasets import overview

    names = [d["name"] for d in overview(db)]
    if not names:
        st.info("No dataset yet. A lead uploads one on the Upload page, or loads the demo from the home page.")
        return None
    current = st.session_state.get("dataset_name")
    if current not in names:  # a reload, a bookmark or a typed URL: the dataset named in the URL
        current = st.query_params.get("dataset")
    index = names.index(current) if current in names else 0
    name = st.selectbox("Dataset", names, index=index, key=f"{key}_picker")
    st.session_state["dataset_name"] = name
    if st.query_params.get("dataset") != name:  # the URL names the dataset (not a secret), so F5 keeps it
        st.query_params["dataset"] = name
    return get(db, name)


# Text from data, users or the judge drawn as Markdown (st.markdown, captions, notices, labels, help):


def show_text(text: str | None, key: str) -> None:
    """A user's text, drawn as text (escaped; never HTML or markdown). Long texts folded."""
    if text is None or not str(text).strip():
        st.html('<div style="color:#b00;font-style:italic">(empty text)</div>')
        return
    text = str(text)
    style = (
        "white-space:pre-wrap;word-break:break-word;font-size:1.1rem;line-height:1.5;"
        "padding:0.8rem 1rem;border-radius:0.5rem;background:#f5f7fa;border:1px solid #dde3ea"
    )
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
    return (
        f'<span style="background:{color};color:white;padding:2px 10px;border-radius:10px;'
        f'font-size:0.9rem;margin-right:6px">{html.escape(str(label))}</span>'
    )


def progress_callback(bar):
    """Adapter: review's progress(fraction, message) -> a st.progress bar."""

    def cb(fraction: float, message: str) -> None:
        bar.progress(max(0.0, min(1.0, fraction)), text=safe_text.md_message(message))  # the text is Markdown

    return cb


def error(exc: Exception) -> None:
    """Show a ReviewError's message (a raw sqlite3 error of the database file: as store.storage_error words it)."""
    exc = store.storage_error(exc, store.db_path()) or exc
    st.error(safe_text.md_message(str(exc)))  # messages name files, columns, values: data, not Markdown


# The Review page's keyboard helper: a script-only st.components.v2 component (no iframe, nothing
# drawn; Streamlit loads it as a module in the page, not as a <script> element in the app). Streamlit's
# shortcuts ignore keys while the focus is in any <input>, radio buttons and select boxes included,
# and a widget keeps the focus after the rerun it caused; so
# * after each rerun, the widget whose change caused it (a select box once its list is closed, a radio,
#   a checkbox, a button, a text field committed with Enter) gives the focus back to the page;
# * Esc in a text field leaves it (its value is committed as on any blur);
# * a click on a token of a clickable NER sentence (data-pick, tokens carrying data-i) comes back to
#   Python as a one-run trigger holding its position.
# The listeners are installed once per tab (window.__reviewKeys) and removed when the page goes.
KEYBOARD_JS = """
const S = window.__reviewKeys || (window.__reviewKeys = {send: null, owner: null, armed: null, on: false});
const NOT_TYPED = ['checkbox', 'radio', 'range', 'button', 'file', 'reset', 'submit', 'color'];
function typed(el) {
  if (!el || !el.tagName) return false;
  if (el.isContentEditable || el.tagName === 'TEXTAREA') return true;
  return el.tagName === 'INPUT' && !NOT_TYPED.includes(el.type);
}
function inApp(el) { return !!(el && el.closest && el.closest('[data-testid="stMain"], [data-testid="stSidebar"]')); }
function onKey(e) {
  const el = e.target;
  if (!typed(el)) {                      // arrows / space on a radio or a checkbox change it
    if (inApp(el) && el.tagName === 'INPUT' && (e.key === ' ' || e.key.startsWith('Arrow'))) S.armed = el;
    return;
  }
  if (e.key === 'Escape' && el.getAttribute('aria-expanded') !== 'true') {
    el.blur();
  } else if (e.key === 'Enter') {
    S.armed = el;                        // a value committed (or a list choice made) with Enter
  }
}
function onPick(e) {
  const el = e.target;
  if (!el || !el.closest) return;
  if (el.closest('[role="option"]')) { S.armed = document.activeElement; return; }   // a select box's choice
  const w = el.closest('button, label, [role="radio"], [role="checkbox"], [role="switch"]');   // a radio's or
  if (w && inApp(w) && !typed(w.querySelector('input'))) S.armed = w;     // a checkbox's label holds its input
}
function onChange(e) { if (inApp(e.target) && !typed(e.target)) S.armed = e.target; }
function onClick(e) {
  const t = e.target && e.target.closest && e.target.closest('.ner-sentence[data-pick] [data-i]');
  if (!t || !S.send) return;
  const a = document.activeElement;      // the click focused the scrolling main block: no focus ring on it
  if (a && a.matches && a.matches('[data-testid="stMain"]')) a.blur();
  S.send('token', parseInt(t.getAttribute('data-i'), 10));
}
function install(on) {
  const f = on ? 'addEventListener' : 'removeEventListener';
  document[f]('keydown', onKey, true);
  document[f]('mousedown', onPick, true);
  document[f]('click', onPick, true);
  document[f]('change', onChange, true);
  document[f]('click', onClick);
  S.on = on;
}
export default function ({ key, setTriggerValue }) {
  S.send = setTriggerValue;
  S.owner = key;
  if (!S.on) install(true);
  const a = document.activeElement;              // this run follows a change: give the focus back
  if (S.armed && a && a !== document.body && (a === S.armed || a.contains(S.armed) || S.armed.contains(a))
      && a.getAttribute('aria-expanded') !== 'true') {
    a.blur();
  }
  S.armed = null;
  return () => { if (S.owner === key) { S.send = null; S.owner = null; install(false); } };
}
"""
_keyboard = None


def keyboard() -> int | None:
    """Mount the Review page's keyboard helper (KEYBOARD_JS) at the foot of the sidebar; it draws
    nothing. Call it on every run before the page can stop. Returns the position of the NER token
    clicked since the last run, else None."""
    global _keyboard
    if _keyboard is None:
        _keyboard = st.components.v2.component("review_keyboard", js=KEYBOARD_JS, isolate_styles=False)
    runs = st.session_state["keyboard_runs"] = st.session_state.get("keyboard_runs", 0) + 1
    with st.sidebar:  # new data each run: the script runs after each rerun (the focus hand-back)
        res = _keyboard(key="review_keyboard", data={"run": runs}, on_token_change=lambda: None)
    token = getattr(res, "token", None)
    return token if isinstance(token, int) and not isinstance(token, bool) else None
