"""Sign-in throttling (review.auth.sign_in): counted and checked atomically before the password is
compared, one message for every failure, per-name windows that grow but that refused attempts cannot
renew, a per-source count, and sources the owner signed in from that strangers cannot lock.

Real SQLite files, one connection per thread, real scrypt. Which passwords were compared is seen by
wrapping auth.check_password; the clock (auth._now) is moved by the tests that need minutes to pass."""

from __future__ import annotations

import statistics
import threading
import time

import pytest
from streamlit.testing.v1 import AppTest

from review import auth, store
from review.errors import AuthError
from tests.helpers import PASSWORD, ROOT

STRANGER, OWNER_HOME, OWNER_PHONE = "203.0.113.9", "198.51.100.7", "192.0.2.44"
APP = ROOT / "app.py"


@pytest.fixture(autouse=True)
def _own_trail_key(tmp_path, monkeypatch):
    monkeypatch.setenv("REVIEW_TRAIL_DIR", str(tmp_path / "trail-keys"))
    monkeypatch.delenv("REVIEW_TRAIL_KEY", raising=False)


class Clock:
    def __init__(self, monkeypatch):
        self.t = 1_900_000_000.0
        monkeypatch.setattr(auth, "_now", lambda: self.t)

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def clock(monkeypatch):
    return Clock(monkeypatch)


@pytest.fixture
def compared(monkeypatch):
    """How many passwords were compared against each stored hash (the dummy one included)."""
    real = auth.check_password
    counts: dict[str, int] = {}
    lock = threading.Lock()

    def counting(password, stored):
        with lock:
            counts[stored] = counts.get(stored, 0) + 1
        return real(password, stored)

    monkeypatch.setattr(auth, "check_password", counting)
    return counts


def _hash(db, name: str) -> str:
    return store.scalar(db, "SELECT password_hash FROM users WHERE name=?", [name])


def _fails(db, name: str) -> int:
    return store.scalar(db, "SELECT failed_logins FROM users WHERE name=?", [name])


def attempt(db, name: str, password: str, source: str | None) -> str:
    """'ok', or the AuthError's message."""
    try:
        auth.sign_in(db, name, password, source=source)
        return "ok"
    except AuthError as exc:
        return str(exc)


def concurrent_guesses(db_path, name: str, n: int, source_of) -> tuple[list[str], list[BaseException]]:
    """``n`` wrong passwords for ``name`` at once: one thread and one connection each, released together."""
    barrier = threading.Barrier(n)
    results: list[str] = []
    errors: list[BaseException] = []

    def guess(i: int) -> None:
        conn = store.connect(db_path)
        try:
            barrier.wait(timeout=60)
            results.append(attempt(conn, name, f"wrong guess number {i}", source_of(i)))
        except BaseException as exc:  # reported below: a crash is not a refusal
            errors.append(exc)
        finally:
            conn.conn.close()

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results, errors


# ----------------------------------------------------------------------------- the race


@pytest.mark.parametrize("sources", ["one stranger", "forty sources", "no address"])
def test_40_concurrent_wrong_guesses_compare_at_most_max_failed(db, db_path, admin, compared, sources):
    source_of = {
        "one stranger": lambda i: STRANGER,
        "forty sources": lambda i: f"203.0.113.{i + 1}",
        "no address": lambda i: None,
    }[sources]
    results, errors = concurrent_guesses(db_path, admin.name, 40, source_of)
    assert not errors, errors
    assert results == [auth.SIGN_IN_FAILED] * 40
    n = compared.get(_hash(db, admin.name), 0)
    assert 1 <= n <= auth.MAX_FAILED, n
    if sources == "forty sources":  # every one fresh: the whole window, and not one more
        assert n == auth.MAX_FAILED
    else:  # the stranger's source failed at once: the fresh slots stay free
        assert n == auth.MAX_FAILED - auth.FRESH_RESERVED
    assert _fails(db, admin.name) == n  # counted atomically: the count is the number compared
    reasons = [r[0] for r in db.execute("SELECT payload FROM audit_log WHERE action='sign_in_failed'")]
    assert sum('"reason":"wrong password"' in p for p in reasons) <= n


def test_right_password_right_after_40_concurrent_wrong_ones_from_another_source(db, db_path, admin, compared, clock):
    results, errors = concurrent_guesses(db_path, admin.name, 40, lambda i: STRANGER)
    assert not errors and results == [auth.SIGN_IN_FAILED] * 40
    assert auth.sign_in(db, admin.name, PASSWORD, source=OWNER_HOME) == admin  # a fresh source: at once
    assert _fails(db, admin.name) == auth.MAX_FAILED - auth.FRESH_RESERVED  # the stranger's failures stay
    # from the stranger's own source even the right password waits for the window's end (60 s), no longer
    assert attempt(db, admin.name, PASSWORD, STRANGER) == auth.SIGN_IN_FAILED
    clock.advance(auth.NAME_WINDOW + 1)
    assert attempt(db, admin.name, PASSWORD, STRANGER) == "ok"


def test_a_stranger_cannot_keep_the_admin_locked_out(db, admin, compared, clock):
    """Three hours of a guess every 10 s from one source: the owner signs in every quarter hour from
    home (trusted after the first time) and every hour from a new place; the stranger gets 3 guesses
    per window, the windows grow to 15 minutes, refused guesses renew nothing."""
    owner_results = []
    new_places = 0
    start = clock.t
    while clock.t - start < 3 * 3600:
        assert attempt(db, admin.name, "let me in please", STRANGER) == auth.SIGN_IN_FAILED
        elapsed = int(clock.t - start)
        if elapsed % 900 == 450:
            owner_results.append(attempt(db, admin.name, PASSWORD, OWNER_HOME))
        if elapsed % 3600 == 1800:
            new_places += 1
            owner_results.append(attempt(db, admin.name, PASSWORD, f"192.0.2.{100 + new_places}"))
        clock.advance(10)
    assert owner_results == ["ok"] * (12 + 3)
    stranger = compared.get(_hash(db, admin.name), 0) - len(owner_results)
    # windows of 60, 120, 240, 480 s, then 900 s: 4 + 11 windows in 3 hours, 3 guesses each
    assert stranger <= 3 * 16, stranger
    assert store.scalar(db, "SELECT COUNT(*) FROM audit_log WHERE action='sign_in'") == 15


def test_many_strangers_cannot_lock_the_owner_out_at_home(db, admin, clock):
    assert auth.sign_in(db, admin.name, PASSWORD, source=OWNER_HOME) == admin  # home is trusted from now on
    for round_ in range(6):
        for i in range(40):  # forty new addresses each round: every one fresh
            assert attempt(db, admin.name, f"guess {round_}-{i}", f"10.{round_}.0.{i}") == auth.SIGN_IN_FAILED
        assert attempt(db, admin.name, PASSWORD, OWNER_HOME) == "ok"
        # from a new place the owner waits at most for the end of the window the strangers filled
        assert attempt(db, admin.name, PASSWORD, f"192.0.2.{200 + round_}") == auth.SIGN_IN_FAILED
        clock.advance(auth.NAME_WINDOW_MAX + 1)
        assert attempt(db, admin.name, PASSWORD, f"192.0.2.{210 + round_}") == "ok"


def test_a_source_spraying_names_is_held_back(db, admin, annotator, lead, compared, clock):
    names = [f"user{i}" for i in range(auth.SOURCE_MAX + 20)]
    for n in names:
        assert attempt(db, n, "password123", STRANGER) == auth.SIGN_IN_FAILED
    assert sum(compared.values()) == auth.SOURCE_MAX  # the rest refused before any scrypt
    assert attempt(db, annotator.name, PASSWORD, STRANGER) == auth.SIGN_IN_FAILED  # held back, even right
    assert attempt(db, annotator.name, PASSWORD, OWNER_HOME) == "ok"  # elsewhere: no effect
    clock.advance(auth.SOURCE_WINDOW + 1)
    assert attempt(db, lead.name, PASSWORD, STRANGER) == "ok"


def test_the_owners_own_typos_do_not_hold_them_back(db, admin, clock):
    assert attempt(db, admin.name, PASSWORD, OWNER_HOME) == "ok"
    for _round in range(5):  # trusted at home: a window of its own
        for i in range(auth.MAX_FAILED - 1):
            assert attempt(db, admin.name, f"typo {i}", OWNER_HOME) == auth.SIGN_IN_FAILED
        assert attempt(db, admin.name, PASSWORD, OWNER_HOME) == "ok"
        assert _fails(db, admin.name) == 0  # their own failures are forgiven by their success
    # and a stranger's failures elsewhere do not count against home
    for i in range(10):
        attempt(db, admin.name, f"guess {i}", STRANGER)
    assert attempt(db, admin.name, PASSWORD, OWNER_HOME) == "ok"


def test_reactivation_by_an_admin_ends_the_windows(db, admin, annotator, clock):
    for i in range(10):
        attempt(db, annotator.name, f"guess {i}", None)
    assert attempt(db, annotator.name, PASSWORD, None) == auth.SIGN_IN_FAILED
    assert store.scalar(db, "SELECT locked_until FROM users WHERE name=?", [annotator.name]) > clock.t
    auth.set_active(db, annotator.name, True, admin)
    assert attempt(db, annotator.name, PASSWORD, None) == "ok"


# ----------------------------------------------------------------------------- what a visitor learns


def test_one_message_for_every_failure_and_the_trail_keeps_the_reason(db, admin, annotator, lead, clock):
    auth.set_active(db, lead.name, False, admin)
    with store.transaction(db):  # old case twins: "ANNA" matches both only in case
        db.execute(
            "INSERT INTO users(name, role, password_hash, created_at, active) VALUES (?,?,?,?,1)",
            ["Anna", "lead", auth.hash_password("other password 2"), store.now_iso()],
        )
    for i in range(auth.MAX_FAILED):
        attempt(db, "alice", f"guess {i}", STRANGER)  # alice is held back for STRANGER now
    cases = {
        "unknown name": ("nobody", PASSWORD, OWNER_HOME),
        "wrong password": (annotator.name, "not the password", OWNER_PHONE),
        "held back": ("alice", PASSWORD, STRANGER),
        "deactivated, right password": (lead.name, PASSWORD, "192.0.2.50"),
        "deactivated, wrong password": (lead.name, "not the password", "192.0.2.51"),
        "ambiguous name": ("ANNA", PASSWORD, "192.0.2.52"),
        "empty": ("", "", "192.0.2.53"),
    }
    messages = {case: attempt(db, *args) for case, args in cases.items()}
    assert set(messages.values()) == {"Wrong user name or password."}, messages
    reasons = [r[0] for r in db.execute("SELECT payload FROM audit_log WHERE action='sign_in_failed' ORDER BY id")]
    for words in (
        '"reason":"unknown user"',
        '"reason":"wrong password"',
        '"reason":"throttled"',
        '"reason":"inactive"',
        '"inactive_account":true',
        '"reason":"ambiguous name"',
    ):
        assert any(words in p for p in reasons), words
    assert any('"source":"203.0.113.9"' in p for p in reasons)


def test_unknown_names_are_throttled_like_known_ones(db, admin, compared):
    """The same attempts for an existing and a made-up name are compared (or refused) at the same
    points: when the throttle starts does not tell which names exist."""

    def pattern(name: str, source: str) -> list[bool]:
        out = []
        for i in range(9):
            before = sum(compared.values())
            assert attempt(db, name, f"guess {i}", source) == auth.SIGN_IN_FAILED
            out.append(sum(compared.values()) > before)
        return out

    known, unknown = pattern(admin.name, "203.0.113.1"), pattern("zelda", "203.0.113.2")
    assert known == unknown
    assert known.count(True) == auth.MAX_FAILED - auth.FRESH_RESERVED


def _median_time(fn, n: int = 5) -> float:
    times = []
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def test_an_unknown_name_takes_as_long_as_a_known_one(db, admin):
    attempt(db, "warm-up", "x", "198.18.0.1")
    known = _median_time(lambda i: attempt(db, admin.name, f"wrong {i}", f"198.18.1.{i}"), n=auth.MAX_FAILED)
    unknown = _median_time(lambda i: attempt(db, f"nobody{i}", f"wrong {i}", f"198.18.2.{i}"))
    assert 0.6 < unknown / known < 1.6, (known, unknown)
    # refused before comparing: quick, and as quick for a name that does not exist
    held_known = _median_time(lambda i: attempt(db, admin.name, f"wrong {i}", "198.18.1.1"))
    for i in range(5):
        attempt(db, "zelda", f"guess {i}", "198.18.3.1")
    held_unknown = _median_time(lambda i: attempt(db, "zelda", f"wrong {i}", "198.18.3.1"))
    assert held_known < known / 2 and held_unknown < known / 2, (known, held_known, held_unknown)


# ----------------------------------------------------------------------------- the form passes the address


def test_the_sign_in_form_passes_the_client_address(db, db_path, admin, monkeypatch):
    import streamlit as st

    monkeypatch.setenv("REVIEW_DB", str(db_path))
    seen = []
    real = auth.sign_in

    def recording(db_, name, password, source=None):
        seen.append(source)
        return real(db_, name, password, source=source)

    monkeypatch.setattr(auth, "sign_in", recording)
    monkeypatch.setattr(type(st.context), "ip_address", property(lambda self: "192.0.2.77"))
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    at.text_input(key="signin_name").input(admin.name)
    at.text_input(key="signin_pw").input("not the password")
    at.button[0].click().run()
    assert [e.value for e in at.error] == [auth.SIGN_IN_FAILED]
    assert seen == ["192.0.2.77"]
    payload = store.scalar(db, "SELECT payload FROM audit_log WHERE action='sign_in_failed' ORDER BY id DESC LIMIT 1")
    assert '"source":"192.0.2.77"' in payload
