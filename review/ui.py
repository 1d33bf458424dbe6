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
    ("pages/9_Label.py", "Label", "annotator"),
    ("pages/4_Verify.py", "Verify", "lead"),
    ("pages/5_Export.py", "Export", "lead"),
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
        st.markdown(f"Signed in as **{escape_md(user.name)}** ({user.role})")
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
# escape_md for a value, escape_message for a sentence of ours holding values (review.safe_text).
escape_md = safe_text.md
escape_message = safe_text.md_message
md_code = safe_text.code


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
        bar.progress(max(0.0, min(1.0, fraction)), text=escape_message(message))  # the text is Markdown

    return cb


def error(exc: Exception) -> None:
    """Show a ReviewError's message (a raw sqlite3 error of the database file: as store.storage_error words it)."""
    exc = store.storage_error(exc, store.db_path()) or exc
    st.error(escape_message(str(exc)))  # messages name files, columns, values: data, not Markdown


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


def ner_sentence(
    tokens: list[str],
    tags: list[str],
    scheme: str,
    entity_types: list[str] | None = None,
    flagged=(),
    predicted=None,
    confidence=None,
    selected: int | None = None,
    clickable: bool = False,
) -> None:
    """A sentence with its entities coloured by type (with a legend above when ``entity_types``
    is given), suspect tokens outlined with the model's tag and confidence beside them; with
    ``clickable`` its tokens can be clicked (see keyboard()), ``selected`` stands out. Every
    token is escaped (review.ner)."""
    from review import ner

    if entity_types is not None:
        st.html(ner.legend_html(entity_types))
    st.html(
        '<div style="font-size:1.1rem;padding:0.6rem 1rem;border-radius:0.5rem;background:#f5f7fa;'
        'border:1px solid #dde3ea">'
        + ner.token_view_html(
            tokens, tags, scheme, flagged, predicted, confidence, selected=selected, clickable=clickable
        )
        + "</div>"
    )


def review_ner_sentence(
    db, ds: Dataset, user: auth.User, s, state: dict, revising: bool, navigation, picked: int | None = None
) -> None:
    """The review of one NER sentence: coloured view with suspects, change any token's tag,
    accept the model's tags for a suspect span, keep, unsure. Decisions go through review.workflow.

    Keyboard (review.shortcuts): a token is selected by a click in the sentence (``picked``, from
    keyboard()), the Token list, N / P (next / previous suspect); its tag's key or button sets it,
    A takes the model's tag for it, Enter saves the changes."""
    import json

    from review import ner, ner_store, shortcuts, workflow

    tags_now = json.loads(s.current_label)
    view = s.probs or {}
    flagged, predicted, conf = view.get("flagged", []), view.get("predicted"), view.get("confidence")
    note_key = f"note_{ds.id}_{s.idx}"

    def act(decision: str, tags=None, what: str = "") -> None:
        try:
            workflow.decide(
                db, ds, s.idx, user, decision, s.version, new_label=tags, note=st.session_state.get(note_key, "")
            )
            what = what or {"keep": "kept as it is", "unsure": "marked unsure"}[decision]
            st.session_state["review_flash"] = ("ok", f"Sentence {s.key}: {what}.")
        except ReviewError as exc:  # StaleViewError included
            st.session_state["review_flash"] = ("warn", str(exc))
        state["back"] = None
        st.rerun()

    head = f"**Sentence {escape_md(s.key)}** · rank {s.rank if s.rank is not None else '–'} · {plural(len(s.tokens), 'token')}"
    st.markdown(head + (" · going back to a sentence you decided" if revising else ""))
    if revising and not (
        s.latest_review and s.latest_review["reviewer"] == user.name and s.latest_review["status"] == "pending"
    ):
        ner_sentence(s.tokens, tags_now, ds.mapping.scheme, ner_store.entity_types(ds), flagged, predicted, conf)
        if s.reason:
            st.markdown("**Why it is flagged:** " + escape_md(s.reason))
        if s.latest_review and s.latest_review["status"] == "rejected":
            st.warning(
                f"A lead rejected an earlier decision ({s.latest_review['decision']} by {escape_md(s.latest_review['reviewer'])}): "
                f"{escape_md(s.latest_review['verify_note'])}"
            )
        st.info(f"This sentence is {s.state}: it can no longer be changed here.")
        if st.button("Back to the queue", key="leave_back"):
            state["back"] = None
            st.rerun()
        return

    n = len(s.tokens)
    ek = f"ner_edit_{ds.id}_{s.idx}_{s.version}"  # the annotator's changes, not saved yet
    edited = st.session_state.setdefault(ek, list(tags_now))
    tk = f"tok_{ek}"  # the selected token (the Token list's value)
    if st.session_state.get(tk) not in range(n):
        st.session_state[tk] = flagged[0] if flagged else 0
    if picked is not None and 0 <= picked < n:  # a click on a token of the sentence
        st.session_state[tk] = picked
    tok = st.session_state[tk]
    options = ner_store.tag_options(ds)
    keys = shortcuts.tag_keys(options)

    def put(tags: list[str]) -> None:  # callbacks: before the run, so the view is fresh
        st.session_state[ek] = list(tags)
        for k in [k for k in st.session_state if str(k).startswith(f"tag_{ek}_")]:
            del st.session_state[k]  # the New tag list re-reads the token's tag

    def set_tag(tag: str) -> None:
        tags = list(st.session_state[ek])
        tags[st.session_state[tk]] = tag
        put(tags)

    def step(direction: int) -> None:
        nxt = shortcuts.suspect_step(flagged, st.session_state[tk], direction)
        if nxt is not None:
            st.session_state[tk] = nxt

    def accept() -> None:  # the model's tag, the entity repaired around it
        j = st.session_state[tk]
        put(ner_store.accept_span(st.session_state[ek], predicted, j, j + 1, ds.mapping.scheme))

    ner_sentence(
        s.tokens,
        edited,
        ds.mapping.scheme,
        ner_store.entity_types(ds),
        flagged,
        predicted,
        conf,
        selected=tok,
        clickable=True,
    )
    if s.reason:
        st.markdown("**Why it is flagged:** " + escape_md(s.reason))
    if s.latest_review and s.latest_review["status"] == "rejected":
        st.warning(
            f"A lead rejected an earlier decision ({s.latest_review['decision']} by {escape_md(s.latest_review['reviewer'])}): "
            f"{escape_md(s.latest_review['verify_note'])}"
        )
    model = ""
    if predicted:
        model = f" · model: {escape_md(predicted[tok])}" + (f" ({float(conf[tok]):.0%})" if conf else "")
    st.markdown(
        f"**Selected:** token {tok} **{escape_md(s.tokens[tok])}** · tag {escape_md(edited[tok])}{model}"
        + (" · ⚠ suspect" if tok in flagged else "")
    )
    st.markdown(
        f"**Change a token's tag**: click the token in the sentence (or {shortcuts.NER_KEYS['next']} next suspect, "
        f"{shortcuts.NER_KEYS['previous']} previous), then press its tag's key or click the tag; "
        f"{shortcuts.NER_KEYS['accept']} takes the model's tag; {shortcuts.NER_KEYS['save']} saves."
    )
    row = st.container(horizontal=True, gap="small")
    for i, (tag, key) in enumerate(zip(options, keys)):
        if key is not None:
            row.button(
                escape_md(tag),
                key=f"tagkey_{i}",
                shortcut=key,
                on_click=set_tag,
                args=(tag,),
                disabled=edited[tok] == tag,
                help=f"Set the selected token's tag to {escape_md(tag)}",
            )
    nav = st.container(horizontal=True, gap="small")
    nav.button(
        "Previous suspect",
        key="prev_suspect",
        shortcut=shortcuts.NER_KEYS["previous"],
        on_click=step,
        args=(-1,),
        disabled=not flagged,
        help="Select the suspect token before this one",
    )
    nav.button(
        "Next suspect",
        key="next_suspect",
        shortcut=shortcuts.NER_KEYS["next"],
        on_click=step,
        args=(1,),
        disabled=not flagged,
        help="Select the suspect token after this one",
    )
    if predicted:
        nav.button(
            f"Model's tag: {escape_md(predicted[tok])}",
            key="accept_token",
            shortcut=shortcuts.NER_KEYS["accept"],
            on_click=accept,
            disabled=ner_store.accept_span(edited, predicted, tok, tok + 1, ds.mapping.scheme) == edited,
            help="Give the selected token the model's tag (the entity around it stays valid)",
        )
    c = st.columns([3, 2, 2], vertical_alignment="bottom")  # the same from lists (every tag, keyed or not)
    tok = c[0].selectbox(
        "Token",
        range(n),
        key=tk,  # labels fixed per sentence: Streamlit matches the choice by its label
        format_func=lambda j: f"{j}: {s.tokens[j]}  (given {tags_now[j]})" + ("  ⚠ suspect" if j in flagged else ""),
    )
    new_tag = c[1].selectbox(
        "New tag", options, index=options.index(edited[tok]) if edited[tok] in options else 0, key=f"tag_{ek}_{tok}"
    )
    if c[2].button("Set this tag", key="set_tag"):
        edited[tok] = new_tag
        st.rerun()
    changed = [j for j in range(len(edited)) if edited[j] != tags_now[j]]
    if changed:
        st.markdown(
            "**Your changes:** "
            + escape_md(", ".join(f"{j} {s.tokens[j]}: {tags_now[j]} → {edited[j]}" for j in changed[:8]))
        )
        problems = sorted(ner.scheme_violations(edited, ds.mapping.scheme), key=lambda p: p[0] != tok)  # selected first
        if problems:
            st.error(
                f"Not a valid {ds.mapping.scheme} sequence yet: "
                + "; ".join(f"token {j} {escape_md(repr(s.tokens[j]))}: {escape_md(why)}" for j, why in problems[:3])
                + ". Change that tag too."
            )
        st.caption("As given")
        ner_sentence(s.tokens, tags_now, ds.mapping.scheme, flagged=changed)
    st.text_input("Note (optional)", key=note_key)
    st.markdown("**Decide** (keyboard: K keep, U unsure, S skip, B back; Esc leaves the note)")
    b = st.columns(4)
    if b[0].button(
        "Save my changes", key="save_tags", type="primary", disabled=not changed, shortcut=shortcuts.NER_KEYS["save"]
    ):
        act("relabel", edited, what=f"{plural(len(changed), 'tag')} changed")
    if b[1].button("Keep as it is", key="keep", shortcut="K", help="The given tags are right"):
        act("keep")
    if b[2].button("Unsure", key="unsure", shortcut="U", help="Leave it to a lead"):
        act("unsure")
    if changed and b[3].button("Discard my changes", key="discard"):
        st.session_state.pop(ek, None)
        st.rerun()
    spans = ner_store.flagged_spans(flagged) if predicted else []
    if spans:
        st.markdown("**Accept the model's tags** for a suspect span (one click saves the sentence)")
        cols = st.columns(min(len(spans), 4))
        for k, (a, z) in enumerate(spans[:8]):
            words = " ".join(s.tokens[a:z])
            proposal = ner_store.accept_span(edited, predicted, a, z, ds.mapping.scheme)
            if cols[k % len(cols)].button(
                f"{escape_md(words[:30])} → {escape_md(' '.join(predicted[a:z])[:30])}",
                key=f"accept_{k}",
                disabled=proposal == tags_now,
            ):
                act("relabel", proposal, what=f"the model's tags accepted for {words!r}")
    navigation()


def upload_ner(db, user: auth.User, up) -> None:
    """Upload page for a token-tagged file: what was read (sentences, tokens, scheme, entity types,
    the first sentences coloured), a name, and the ingest with a progress bar."""
    from pathlib import Path

    from review import audit, ner_store

    data = up.getvalue()
    try:
        corpus = ner_store.read_corpus(data, up.name)
    except ReviewError as exc:
        error(exc)
        st.stop()
    st.subheader(f"NER file: {corpus.format}, {len(corpus.sentences):,} sentences, {corpus.n_tokens:,} tokens")
    docs = len({x.doc for x in corpus.sentences})
    st.markdown(
        f"Scheme **{corpus.scheme}** (detected) · entity types **{escape_md(', '.join(corpus.entity_types) or '(none)')}** · "
        f"{plural(docs, 'document')}"
        + (f" · {corpus.n_columns} columns, the tag in the last" if corpus.n_columns else "")
        + (" · your own per-token probabilities" if corpus.prob_tag_names else "")
    )
    for k, sent in enumerate(corpus.sentences[:3]):
        ner_sentence(sent.tokens, sent.tags, corpus.scheme, corpus.entity_types if k == 0 else None)
    name = st.text_input("Dataset name", value=Path(up.name).stem or up.name, key="dataset_name_input")
    if st.button("Check and ingest", type="primary", key="ingest"):
        bar = st.progress(0.0, text="Storing sentences")
        try:
            ds_id = ner_store.write_ner_dataset(db, corpus, data, name, user, progress_callback(bar))
            bar.progress(1.0, text="Checking the tags against the scheme")
            audit.run_integrity(db, ds_id, user)
            bar.empty()
        except ReviewError as exc:
            bar.empty()
            error(exc)
            st.stop()
        st.session_state["dataset_name"] = name.strip()
        st.success(
            f"Dataset {escape_md(repr(name.strip()))} ingested: {plural(len(corpus.sentences), 'sentence')}, "
            f"{plural(corpus.n_tokens, 'token')}, scheme {corpus.scheme}. Run the audit to find suspect tokens."
        )
        st.page_link("pages/2_Audit.py", label="Go to the audit")


def verify_ner_card(ds: Dataset, r: dict, do) -> None:
    """A pending NER decision: the sentence before and after, the changed tokens; approve,
    reject with a reason, or override with the lead's own tags (space-separated)."""
    import json

    tokens, before = json.loads(r["tokens"]), json.loads(r["current_label"])
    after = json.loads(r["new_label"]) if r["new_label"] else before
    what = {"relabel": "tags changed", "keep": "kept as it is", "unsure": "unsure"}[r["decision"]]
    st.markdown(
        f"**Sentence {escape_md(r['key'])}** · {what} by **{escape_md(r['reviewer'])}** at "
        f"{r['created_at'][:16].replace('T', ' ')}"
    )
    changed = [j for j in range(len(tokens)) if before[j] != after[j]]
    st.caption("Before")
    ner_sentence(tokens, before, ds.mapping.scheme, flagged=changed)
    if changed:
        st.caption("After: " + escape_md(", ".join(f"{j} {tokens[j]}: {before[j]} → {after[j]}" for j in changed[:10])))
        ner_sentence(tokens, after, ds.mapping.scheme, flagged=changed)
    if r["note"]:
        st.markdown(f"note: {escape_md(r['note'])}")
    c = st.columns([1, 3, 1, 3, 1])
    if c[0].button(
        "Approve", key=f"approve_{r['id']}", type="primary", disabled=r["decision"] == "unsure", shortcut="A"
    ):
        do(r, "approve")
    reason = c[1].text_input(
        "Reason to reject",
        key=f"reason_{r['id']}",
        label_visibility="collapsed",
        placeholder="Reason to reject (Esc, then X)",
    )
    if c[2].button("Reject", key=f"reject_{r['id']}", shortcut="X"):
        do(r, "reject", note=reason)
    own = c[3].text_input(
        "Your tags, space-separated", value=" ".join(after), key=f"ovl_{r['id']}", label_visibility="collapsed"
    )
    if c[4].button("Override", key=f"override_{r['id']}"):
        do(r, "override", label=own.split(), note=reason)


def judge_config():
    """The judge's endpoint: the page's fields (this session only) over .streamlit/secrets.toml
    (llm_base_url, llm_model, llm_api_key) over the environment. The key never leaves memory and
    goes only to the URL configured beside it: a URL typed here that is another runs without it."""
    from review import judge

    try:
        secrets = {k: st.secrets.get(f"llm_{k}", "") for k in ("base_url", "model", "api_key")}
    except Exception:  # no secrets.toml: fine
        secrets = {}
    typed = {k: st.session_state.get(f"judge_{k}") or "" for k in ("base_url", "model")}
    return judge.config_from(typed, secrets=secrets)


def judge_tab(db, ds: Dataset, user: auth.User) -> None:
    """Audit page, Judge tab: endpoint status, the cost of a run before it starts, run with a
    progress bar and cancel, the verdicts."""
    from review import charts, judge

    if ds.task != "text" or ds.mapping.multi:
        st.info("The judge works on single-label text classification datasets.")
        return
    try:
        cfg = judge_config()
        cfg_error = None
    except ReviewError as exc:
        cfg, cfg_error = None, str(exc)
    if user.can("lead"):
        shown = md_code(judge.shown_url(cfg.base_url, cfg.api_key)) if cfg else ""
        with st.expander(
            "Endpoint"
            + (
                f": {escape_md(cfg.model)} at {shown}" + (" (without the key)" if cfg.key_withheld else "")
                if cfg
                else " (not configured)"
            ),
            expanded=cfg is None or cfg.key_withheld,
        ):
            st.caption(
                judge.SETUP_HELP + " The fields below override the URL and model for this session; a URL "
                "typed here that is not the configured one runs without the key."
            )
            c1, c2 = st.columns(2)
            c1.text_input("Base URL", key="judge_base_url", placeholder="https://api.openai.com/v1")
            c2.text_input("Model", key="judge_model", placeholder="gpt-4o-mini")
            if cfg is not None and not cfg.key_withheld:
                st.caption(judge.key_status(cfg, url=md_code))
        key_note = st.empty()  # always drawn, so the fields below keep their place when the note comes or goes
        if cfg is not None and cfg.key_withheld:  # said before the run, outside the expander: always in sight
            key_note.warning(judge.key_status(cfg, url=md_code), icon=":material/key_off:")
    if cfg_error:
        st.error(escape_message(cfg_error))  # it quotes the URL typed: data, not Markdown
    counts = judge.verdict_counts(db, ds)
    flash = st.session_state.pop("judge_flash", None)
    if flash:
        st.success(flash)
    if user.can("lead"):
        flagged = sum(counts.get(k, 0) for k in ("YES", "NO", "UNKNOWN", "not judged"))
        c1, c2 = st.columns([1, 2], vertical_alignment="bottom")
        n = c1.number_input(
            "Rows to judge, most suspect first",
            min_value=1,
            max_value=max(flagged, 1),
            value=min(flagged, 50) or 1,
            step=10,
            key="judge_limit",
        )
        if cfg is None:
            c2.button("Run the judge", disabled=True, key="judge_run", help="Configure an endpoint first")
        else:
            p = judge.plan(db, ds, cfg.model, int(n))
            if c2.button(
                f"Run the judge on {p['rows']:,} rows ({plural(p['calls'], 'call')}, {p['cached']:,} cached)",
                type="primary",
                key="judge_run",
                disabled=p["rows"] == 0,
            ):
                st.button(
                    "Cancel", key="judge_cancel", help="Stops the run, calls in flight too; verdicts so far are kept"
                )
                bar = st.progress(0.0, text="Starting")
                try:
                    got = judge.run_judge(db, ds, user, cfg, int(n), progress=progress_callback(bar))
                    st.session_state["judge_flash"] = (
                        f"Judged {plural(got['rows'], 'row')}: {got['calls']:,} calls, {got['cached']:,} cached; "
                        f"YES {got['YES']:,}, NO {got['NO']:,}, UNKNOWN {got['UNKNOWN']:,}."
                    )
                    st.rerun()
                except ReviewError as exc:
                    bar.empty()
                    error(exc)
    if not counts or counts.get("not judged", 0) == sum(
        counts.get(k, 0) for k in ("YES", "NO", "UNKNOWN", "not judged")
    ):
        st.caption("No verdict yet." + ("" if user.can("lead") else " A lead runs the judge."))
        return
    a, b = st.columns([2, 1])
    a.plotly_chart(charts.judge_verdicts(counts), key="judge_chart")
    agree = counts.get("agreement")
    b.metric(
        "Judge agrees the label is wrong",
        f"{agree:.0%}" if agree is not None else "–",
        help="Among flagged rows the judge answered YES or NO: the share where it says NO.",
    )
    b.caption(
        "The queue's actions now use the verdicts: relabel (judge says NO and names a label), "
        "keep but ambiguous (judge says YES), needs review (not judged or UNKNOWN)."
    )


def precision_tab(db, ds: Dataset, user: auth.User) -> None:
    """Audit page, Precision tab: from reviewers' decisions, how many flags were right, by band;
    the errors likely left in the open queue; spot checks of unflagged rows."""
    from review import charts, precision

    res = precision.flag_precision(db, ds)
    if not res["bands"]:
        st.info("Run the audit first.")
        return
    c = st.columns(3)
    p = res["precision"]
    c[0].metric("Flagged rows decided", f"{res['decided']:,}")
    c[1].metric(
        "Really wrong",
        "–" if p is None else f"{p:.0%}",
        help=None if p is None else f"95% interval {res['low']:.0%}–{res['high']:.0%}",
    )
    rem = res["remaining"]
    c[2].metric(
        "Errors left in the open queue",
        "–" if rem is None else f"≈{rem['estimate']:,.0f}",
        help=None
        if rem is None
        else f"95% interval {rem['low']:,.0f}–{rem['high']:,.0f} among {rem['open']:,} open flagged rows",
    )
    if rem is not None:
        st.caption(
            f"Of the {rem['open']:,} flagged rows still open, about {rem['estimate']:,.0f} are likely wrong "
            f"(between {rem['low']:,.0f} and {rem['high']:,.0f}). When that is small, the rest of the queue is not worth the time."
        )
    else:
        st.caption("Decide some flagged rows in the review queue: precision comes from those decisions.")
    if res["decided"]:
        st.plotly_chart(charts.precision_by_band(res["bands"]), key="precision_chart")
    else:  # no decision yet: nothing to draw (five empty "0/0" bars would read as zero precision)
        st.info("No flagged row has been decided yet: the precision per score band appears after the first decisions.")
    st.markdown("**Spot checks**: random unflagged rows put in the queue measure what the flags miss.")
    sp = precision.spot_results(db, ds)
    if user.can("lead"):
        c1, c2 = st.columns([1, 2], vertical_alignment="bottom")
        k = c1.number_input("Rows", min_value=1, max_value=1000, value=20, step=10, key="spot_n")
        if c2.button(f"Add {int(k)} random unflagged rows to the queue", key="spot_add"):
            try:
                added = precision.add_spot_checks(db, ds, user, int(k))
                st.success(f"Added {plural(added, 'row')}: reviewers find them under 'Spot checks' in the queue.")
                sp = precision.spot_results(db, ds)
            except ReviewError as exc:
                error(exc)
    if sp and sp["added"]:
        line = f"{sp['added']:,} spot-check rows, {sp['decided']:,} decided, {sp['wrong']:,} found wrong"
        if sp["miss_rate"] is not None:
            est, lo, hi = sp["missed_estimate"]
            line += (
                f": miss rate {sp['miss_rate']:.1%} ({sp['low']:.1%}–{sp['high']:.1%}), so about {est:,.0f} "
                f"({lo:,.0f}–{hi:,.0f}) errors among the {sp['unflagged']:,} unflagged rows."
            )
        st.markdown(line)


def model_tab(run: dict) -> None:
    """Audit page, Model tab: which model the run chose and on what evidence; each class's share of
    the queue against cleanlab's estimate of its wrong labels."""
    params, m = run.get("params") or {}, run.get("metrics") or {}
    if params.get("held-out log-likelihood"):  # several annotators: how the consensus method was chosen
        text_model = params.get("model")
        st.markdown(
            f"**Consensus**: {escape_md(str(params.get('method', '–')))}"
            + (
                f"; text model: {escape_md(str(text_model))}"
                if text_model and text_model != "consensus of annotators"
                else ""
            )
        )
        st.caption(
            escape_md(str(params.get("why", ""))) + ". Each method is fitted without a fifth of the labels and "
            "scored by how well its consensus predicts them (mean log-likelihood; higher is better)."
        )
        st.dataframe(
            [{"method": k, "held-out log-likelihood": v} for k, v in params["held-out log-likelihood"].items()],
            hide_index=True,
            key="consensus_methods",
            column_config={"held-out log-likelihood": st.column_config.NumberColumn(format="%.4f")},
        )
        return
    if isinstance(params.get("candidates"), dict):  # NER: the token models and their mixture
        st.markdown(f"**Token model**: {escape_md(str(params.get('model', '–')))}")
        if params.get("why"):
            st.caption(
                escape_md(params["why"]) + ". Log loss: mean negative log-likelihood of the given tags on documents "
                "the model did not see (lower is better)."
            )
        st.dataframe(
            [
                {
                    "candidate": {"sgd": "logistic regression", "crf": "CRF"}.get(k, k),
                    "log loss": v["log loss"],
                    "seconds": v["seconds"],
                }
                for k, v in params["candidates"].items()
            ],
            hide_index=True,
            key="token_models",
            column_config={"log loss": st.column_config.NumberColumn(format="%.4f")},
        )
        return
    st.markdown(f"**Model**: {escape_md(str(params.get('model', '–')))}")
    if params.get("choice"):
        st.caption(
            escape_md(params["choice"]) + " Log loss: mean negative log-likelihood of the given labels on rows "
            "the model did not see (lower is better); `review audit --model NAME` forces a family."
        )
    cands = params.get("candidates") or []
    if cands:
        st.dataframe(
            [
                {
                    "candidate": c["name"],
                    "features": c["view"],
                    "log loss, fold 1": c["fold1_nll"],
                    "log loss, all folds": c["nll"],
                    "weight": c["weight"],
                    "seconds": c["seconds"],
                }
                for c in cands
            ],
            hide_index=True,
            width="stretch",
            key="candidates_table",
            column_config={
                "weight": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="%.2f"),
                "log loss, fold 1": st.column_config.NumberColumn(format="%.3f"),
                "log loss, all folds": st.column_config.NumberColumn(
                    format="%.3f", help="Only the finalists (the best of each family on fold 1) finish every fold."
                ),
                "seconds": st.column_config.NumberColumn(format="%.2f"),
            },
        )
        if params.get("chars") and params["chars"] != "used":
            st.caption(f"Character n-grams: not tried ({escape_md(params['chars'])}).")
    classes = m.get("classes") or []
    if classes:
        st.markdown(
            "**Classes in the queue**: a class far more present at the top of the queue than in cleanlab's "
            "estimate of the wrong labels points at the model, not at the labels."
        )
        shares = (
            "share of rows",
            "share of flagged",
            "share of the top of the queue",
            "share of estimated wrong labels",
        )
        st.dataframe(
            [
                {
                    "class": c["label"],
                    "rows": c["rows"],
                    "share of rows": 100 * c["data_share"],
                    "flagged": c["flagged"],
                    "share of flagged": 100 * c["flagged_share"],
                    "share of the top of the queue": 100 * c["top_share"],
                    "estimated wrong labels": c["estimated_errors"],
                    "share of estimated wrong labels": 100 * c["error_share"],
                }
                for c in classes
            ],
            hide_index=True,
            width="stretch",
            key="classes_table",
            column_config={k: st.column_config.NumberColumn(format="%.1f%%") for k in shares},
        )


def selfcheck_tab(db, ds: Dataset, user: auth.User) -> None:
    """Audit page, Self-check tab: inject known errors into a copy of the labels, audit the copy, show recall per kind."""
    from review import selfcheck

    st.markdown(
        "How much would the audit find on **your** data? The self-check injects known errors into a copy of "
        "the labels (3% random flips, 3% swaps between the two classes the model confuses most, a block of 3% "
        "of rows shifted by one), audits the copy the same way and counts what it flags. Your labels, runs "
        "and reviews do not change."
    )
    if user.can("lead"):
        c1, c2 = st.columns([1, 3], vertical_alignment="bottom")
        seed = c1.number_input(
            "Seed",
            min_value=0,
            max_value=10_000,
            value=0,
            step=1,
            key="selfcheck_seed",
            help="Another seed draws other rows.",
        )
        if c2.button("Run the self-check", key="selfcheck_run", help="About as long as an audit run."):
            bar = st.progress(0.0, text="Starting")
            try:
                selfcheck.run_selfcheck(db, ds.id, user, seed=int(seed), progress=progress_callback(bar))
                bar.empty()
            except ReviewError as exc:
                bar.empty()
                error(exc)
    done = selfcheck.self_checks(db, ds)
    if not done:
        st.info("No self-check yet." + ("" if user.can("lead") else " A lead runs it."))
        return
    last = done[0]
    st.markdown(
        f"**Latest** (seed {last.seed}, {last.created_at[:19].replace('T', ' ')} by {escape_md(last.created_by)}): "
        + escape_md(last.summary())
    )
    cols = st.columns(len(last.kinds))
    for col, k in zip(cols, last.kinds):
        col.metric(f"{k.kind.capitalize()} found", f"{k.recall:.0%}", help=f"{k.found:,} of {k.injected:,} injected")
    st.caption(
        f"Swapped classes: {escape_md(last.pair[0])} and {escape_md(last.pair[1])}. {last.flagged:,} rows flagged "
        f"on the copy, {last.injected_share_of_flagged:.0%} of them injected; the rest are rows the audit doubts "
        "anyway, some of them real errors."
    )
    if len(done) > 1:
        st.dataframe(
            [
                {
                    "id": r.id,
                    "at": r.created_at[:19].replace("T", " "),
                    "by": r.created_by,
                    "seed": r.seed,
                    **{k.kind: k.recall for k in r.kinds},
                    "model": r.model,
                }
                for r in done
            ],
            hide_index=True,
            width="stretch",
            key="selfchecks_table",
        )
