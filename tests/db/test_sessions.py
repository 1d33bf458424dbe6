"""Browser sessions that survive a reload: a random token whose SHA-256 alone is stored, expiring
(12 h after sign-in, 8 h idle), ended by sign-out and by deactivation, a tampered token refused;
the Review queue's skips and filters kept per user and dataset. The page tests stand in for the
browser's cookie by patching review.ui.shell._cookie_token (the e2e test drives the real cookie)."""

from __future__ import annotations

import hashlib
import re
import time

import pytest
from streamlit.testing.v1 import AppTest

from review import auth, datasets, demo, store, trail
from review.errors import AuthError
from review.ui import shell
from tests.helpers import PASSWORD, ROOT, copy_db, raw

APP = str(ROOT / "app.py")
REVIEW = "pages/3_Review.py"


def _file_bytes(path) -> bytes:
    return b"".join(p.read_bytes() for p in (path, path.with_name(path.name + "-wal")) if p.exists())


def _row(db, token: str) -> dict:
    [row] = db.query("SELECT * FROM sessions WHERE token_hash=?", [hashlib.sha256(token.encode()).hexdigest()])
    return row


# ----------------------------------------------------------------------------- review.auth


def test_token_is_random_and_never_stored_in_clear(db, db_path, annotator):
    tokens = [auth.start_session(db, annotator) for _ in range(3)]
    assert len(set(tokens)) == 3 and all(auth.TOKEN_RE.match(t) for t in tokens)
    rows = list(db.query("SELECT * FROM sessions ORDER BY id"))
    assert [r["token_hash"] for r in rows] == [hashlib.sha256(t.encode()).hexdigest() for t in tokens]
    assert all(r["user"] == annotator.name and r["revoked_at"] is None for r in rows)
    assert all(r["expires_at"] - r["created_at"] == auth.SESSION_LIFETIME for r in rows)
    blob = _file_bytes(db_path)
    assert rows[0]["token_hash"].encode() in blob  # the file really holds the rows we look through
    for t in tokens:
        assert t.encode() not in blob
    assert not any(t in r[0] for t in tokens for r in db.execute("SELECT payload FROM audit_log"))
    assert all(auth.resume_session(db, t) == annotator for t in tokens)


def test_session_expires_after_its_lifetime_and_when_idle(db, annotator):
    token = auth.start_session(db, annotator)
    born = _row(db, token)["created_at"]
    assert auth.resume_session(db, token, now=born + auth.SESSION_IDLE - 60) == annotator  # in use all along
    assert auth.resume_session(db, token, now=born + auth.SESSION_LIFETIME - 1) == annotator
    with pytest.raises(AuthError, match="session expired"):
        auth.resume_session(db, token, now=born + auth.SESSION_LIFETIME)  # not sliding: use does not extend it
    # idle: no run for SESSION_IDLE ends it, a run now and then keeps it (last_seen, written at most once a minute)
    token = auth.start_session(db, annotator)
    born = _row(db, token)["created_at"]
    auth.resume_session(db, token, now=born + auth.SESSION_TOUCH / 2)
    assert _row(db, token)["last_seen"] == born  # too soon to write
    auth.resume_session(db, token, now=born + 3600)
    assert _row(db, token)["last_seen"] == born + 3600
    assert (
        auth.resume_session(db, token, now=born + 3600 + auth.SESSION_IDLE - 10) == annotator
    )  # idle counts from the last run
    token = auth.start_session(db, annotator)
    born = _row(db, token)["created_at"]
    with pytest.raises(AuthError, match="session expired"):
        auth.resume_session(db, token, now=born + auth.SESSION_IDLE + 1)
    assert auth.SESSION_IDLE + 1 < auth.SESSION_LIFETIME


def test_sign_out_revokes_that_session_only(db, annotator, lead):
    a1, a2, l1 = auth.start_session(db, annotator), auth.start_session(db, annotator), auth.start_session(db, lead)
    auth.end_session(db, a1)
    with pytest.raises(AuthError, match="You signed out"):
        auth.resume_session(db, a1)
    assert _row(db, a1)["revoked_reason"] == "sign_out"
    assert auth.resume_session(db, a2) == annotator and auth.resume_session(db, l1) == lead
    assert store.scalar(db, "SELECT actor FROM audit_log WHERE action='sign_out'") == annotator.name
    auth.end_session(db, a1)  # twice: nothing more happens
    auth.end_session(db, "not a token")
    assert store.scalar(db, "SELECT COUNT(*) FROM audit_log WHERE action='sign_out'") == 1
    ok, _, msg = trail.verify_trail(db)
    assert ok, msg


def test_deactivation_ends_every_session_of_the_user_and_reactivation_revives_none(db, admin, annotator, lead):
    a1, a2, l1 = auth.start_session(db, annotator), auth.start_session(db, annotator), auth.start_session(db, lead)
    auth.set_active(db, annotator.name, False, admin)
    for t in (a1, a2):
        with pytest.raises(AuthError, match="deactivated"):
            auth.resume_session(db, t)
        assert _row(db, t)["revoked_reason"] == "deactivated"
    assert auth.resume_session(db, l1) == lead
    assert '"sessions_ended":2' in store.scalar(db, "SELECT payload FROM audit_log WHERE action='user_deactivate'")
    auth.set_active(db, annotator.name, True, admin)
    with pytest.raises(AuthError, match="deactivated"):  # ended is ended: sign in again
        auth.resume_session(db, a1)
    assert auth.resume_session(db, auth.start_session(db, auth.sign_in(db, annotator.name, PASSWORD))) == annotator


def test_deactivated_user_refused_even_if_a_row_was_left_live(db, db_path, admin, annotator):
    token = auth.start_session(db, annotator)
    c = raw(db_path)  # the users row changed behind review's back: the join still refuses
    c.execute("UPDATE users SET active=0 WHERE name=?", [annotator.name])
    c.close()
    with pytest.raises(AuthError, match="deactivated"):
        auth.resume_session(db, token)


def test_role_change_counts_at_the_next_run(db, admin, annotator):
    token = auth.start_session(db, annotator)
    auth.set_role(db, annotator.name, "lead", admin)
    assert auth.resume_session(db, token) == auth.User(annotator.name, "lead")


def test_tampered_or_foreign_tokens_are_refused(db, annotator):
    token = auth.start_session(db, annotator)
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    h = hashlib.sha256(token.encode()).hexdigest()
    for bad in (
        flipped,
        token[:-1],
        token + "x",
        token.upper() if token.upper() != token else token.lower(),
        h,
        "",
        None,
        42,
        " " + token,
        token + ";",
        "a" * 43,
    ):
        with pytest.raises(AuthError, match="not valid"):
            auth.resume_session(db, bad)
    assert auth.session_expires(db, flipped) is None
    assert auth.resume_session(db, token) == annotator  # the real one still works
    auth.end_session(db, flipped)  # a tampered token ends nothing
    assert _row(db, token)["revoked_at"] is None


def test_queue_state_is_kept_per_user_and_dataset(db, annotator, lead):
    assert auth.load_queue_state(db, annotator, 1) == {}
    auth.save_queue_state(
        db, annotator, 1, {"skipped": [5, 3], "back": None, "filter": "Relabel", "order": "by action"}
    )
    auth.save_queue_state(db, lead, 1, {"skipped": [9], "back": 2, "filter": None, "order": None})
    assert auth.load_queue_state(db, annotator, 1) == {
        "skipped": [5, 3],
        "back": None,
        "filter": "Relabel",
        "order": "by action",
    }
    assert auth.load_queue_state(db, lead, 1) == {"skipped": [9], "back": 2}
    assert auth.load_queue_state(db, annotator, 2) == {}
    auth.save_queue_state(db, annotator, 1, {"skipped": list(range(auth.QUEUE_SKIPS_KEPT + 10))})
    assert auth.load_queue_state(db, annotator, 1)["skipped"][0] == 10  # the newest kept
    db.execute("UPDATE queue_state SET data='{not json' WHERE user=?", [lead.name])
    assert auth.load_queue_state(db, lead, 1) == {}
    db.execute(
        """UPDATE queue_state SET data='{"skipped": ["1; DROP", 4], "back": "x", "filter": 3}' WHERE user=?""",
        [lead.name],
    )
    assert auth.load_queue_state(db, lead, 1) == {"skipped": [4], "back": None}


# ----------------------------------------------------------------------------- the pages (review.ui.shell)


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    path = tmp_path_factory.mktemp("sessions") / "demo.db"
    db = store.connect(path)
    admin = auth.create_user(db, "alice", "admin", PASSWORD, None)
    auth.create_user(db, "anna", "annotator", PASSWORD, admin)
    demo.load_demo(db, auth.create_user(db, "lena", "lead", PASSWORD, admin))
    db.conn.close()
    return path


@pytest.fixture
def app_db(tmp_path, monkeypatch, template):
    path = copy_db(template, tmp_path / "review.db")
    monkeypatch.setenv("REVIEW_DB", str(path))
    db = store.connect(path)
    yield db
    db.conn.close()


class Browser:
    """One browser: its cookie jar holds the session cookie; each tab() is a new websocket session
    (a reload, a new tab, a bookmark) that sends the cookie, as st.context.cookies does."""

    def __init__(self, monkeypatch):
        self.cookie: str | None = None
        monkeypatch.setattr(shell, "_cookie_token", lambda: self.cookie)

    def tab(self, page: str = "app.py") -> AppTest:
        at = AppTest.from_file(APP, default_timeout=60)
        if page != "app.py":
            at.switch_page(page)
        return run(at)

    def sign_in(self, name: str = "anna", page: str = "app.py") -> AppTest:
        at = self.tab(page)
        at.text_input(key="signin_name").input(name)
        at.text_input(key="signin_pw").input(PASSWORD)
        at = run(at.button[0].click())
        self.cookie = cookie_set(at)  # what the page's script wrote into document.cookie
        return at


def run(thing) -> AppTest:
    at = thing.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def scripts(at: AppTest) -> list[str]:
    return [h.proto.body for h in at.get("html") if "<script" in h.proto.body]


def cookie_set(at: AppTest) -> str:
    [body] = scripts(at)
    m = re.search(
        rf'document\.cookie = "{shell.cookie_name()}=([A-Za-z0-9_-]+); expires=([^;]+); path=/; samesite=strict"'
        r' \+ \(location\.protocol === "https:" \? "; secure" : ""\);',
        body,
    )
    assert m, body
    return m.group(1)


def signed_in_as(at: AppTest) -> str | None:
    s = at.session_state["user"] if "user" in at.session_state else None
    return s[0] if s else None


def test_sign_in_writes_the_token_cookie_and_a_reload_stays_signed_in(app_db, monkeypatch):
    browser = Browser(monkeypatch)
    at = browser.sign_in()
    token = browser.cookie
    assert signed_in_as(at) == "anna" and at.session_state["session_token"] == token
    [body] = scripts(at)
    assert PASSWORD not in body and "anna" not in body
    expires = _row(app_db, token)["expires_at"]
    assert re.search(r"expires=([^;]+);", body).group(1) == time.strftime(
        "%a, %d %b %Y %H:%M:%S GMT", time.gmtime(expires)
    )
    assert store.scalar(app_db, "SELECT COUNT(*) FROM sessions WHERE user='anna' AND revoked_at IS NULL") == 1
    # F5 / a new tab / a typed URL: a new session of Streamlit, the cookie in the handshake
    for page in ("app.py", REVIEW, "pages/7_Users.py"):
        tab = browser.tab(page)
        assert signed_in_as(tab) == "anna" and not tab.get("form")
        assert "Signed in as **anna** (annotator)" in [m.value for m in tab.sidebar.markdown]
        assert scripts(tab) == []  # only the tab that signed in writes the cookie
    assert store.scalar(app_db, "SELECT COUNT(*) FROM sessions") == 1


def test_sign_out_in_one_tab_signs_the_other_out_at_its_next_run(app_db, monkeypatch):
    browser = Browser(monkeypatch)
    first = browser.sign_in()
    token = browser.cookie
    second = browser.tab(REVIEW)
    assert signed_in_as(second) == "anna"
    first = run(first.sidebar.button(key="sign_out").click())
    assert signed_in_as(first) is None and [s.value for s in first.subheader] == ["Sign in"]
    assert "You are signed out." in [i.value for i in first.info]
    [clear] = scripts(first)  # removes the cookie if it still holds that token
    assert f'indexOf("{shell.cookie_name()}={token}")' in clear and "max-age=0" in clear
    assert _row(app_db, token)["revoked_reason"] == "sign_out"
    second = run(second)  # its next action
    assert signed_in_as(second) is None and [s.value for s in second.subheader] == ["Sign in"]
    assert any("You signed out" in i.value for i in second.info)
    assert "Keep" not in [b.label for b in second.button]
    assert signed_in_as(browser.tab()) is None  # a reload with the old cookie: signed out too
    assert signed_in_as(run(first)) is None  # the tab that signed out does not resume its own cookie


def test_deactivation_signs_the_user_out_at_the_next_run(app_db, monkeypatch):
    browser = Browser(monkeypatch)
    at = browser.sign_in(page=REVIEW)
    assert "Keep" in [b.label for b in at.main.button]
    auth.set_active(app_db, "anna", False, auth.User("alice", "admin"))
    at = run(at)
    assert signed_in_as(at) is None
    assert any("deactivated" in i.value for i in at.info)
    assert signed_in_as(browser.tab(REVIEW)) is None


def test_a_tampered_or_expired_cookie_shows_the_sign_in_form(app_db, monkeypatch):
    browser = Browser(monkeypatch)
    browser.sign_in()
    real = browser.cookie
    browser.cookie = real[:-2] + ("xy" if real[-2:] != "xy" else "zz")
    at = browser.tab(REVIEW)
    assert signed_in_as(at) is None and [s.value for s in at.subheader] == ["Sign in"]
    assert any("not valid" in i.value for i in at.info)
    browser.cookie = '"><script>alert(1)</script>'  # garbage is removed, never echoed into the script
    at = browser.tab()
    assert signed_in_as(at) is None
    [clear] = scripts(at)
    assert "alert" not in clear and "max-age=0" in clear and "indexOf" not in clear
    browser.cookie = real
    app_db.execute(
        "UPDATE sessions SET expires_at=? WHERE token_hash=?", [time.time() - 1, _row(app_db, real)["token_hash"]]
    )
    at = browser.tab(REVIEW)
    assert signed_in_as(at) is None and any("session expired" in i.value for i in at.info)


def test_review_skips_and_filter_survive_a_reload(app_db, monkeypatch):
    ds = datasets.get(app_db, demo.DEMO_NAME)
    browser = Browser(monkeypatch)
    at = browser.sign_in(page=REVIEW)
    at = run(at.radio(key="action_filter").set_value("Relabel"))
    at = run(at.selectbox(key="queue_order").set_value("by action"))
    skipped = []
    for _ in range(2):
        [idx] = [
            r[0] for r in app_db.execute("SELECT idx FROM states WHERE dataset_id=? AND claimed_by='anna'", [ds.id])
        ]
        skipped.append(idx)
        at = run(at.button(key="skip").click())
    kept = auth.load_queue_state(app_db, auth.User("anna", "annotator"), ds.id)
    assert kept == {"skipped": skipped, "back": None, "filter": "Relabel", "order": "by action"}
    [shown] = [r[0] for r in app_db.execute("SELECT idx FROM states WHERE dataset_id=? AND claimed_by='anna'", [ds.id])]

    tab = browser.tab(REVIEW)  # F5
    assert tab.session_state[f"review_{ds.id}"]["skipped"] == skipped
    assert tab.radio(key="action_filter").value == "Relabel" and tab.selectbox(key="queue_order").value == "by action"
    heads = [m.value for m in tab.markdown if " · row " in m.value]
    assert len(heads) == 1 and f"row {shown} of the upload" in heads[0]  # the same row, not a skipped one
    # another user's queue is their own
    other = Browser(monkeypatch)
    lena = other.sign_in("lena", page=REVIEW)
    assert lena.session_state[f"review_{ds.id}"]["skipped"] == []
    assert lena.radio(key="action_filter").value == "All suspects"
