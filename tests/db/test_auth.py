"""auth: scrypt hashes, the first admin, who adds users, sign-in, lockout, role checks."""

from __future__ import annotations

import time

import pytest

from review import auth, store
from review.errors import AuthError, PermissionDenied, ReviewError
from tests.helpers import PASSWORD

SECRET = "Sup3r-Secret-Passw0rd"


def _file_bytes(db_path) -> bytes:
    data = b""
    for suffix in ("", "-wal", "-shm"):
        p = db_path.with_name(db_path.name + suffix)
        if p.exists():
            data += p.read_bytes()
    return data


def test_password_stored_as_salted_scrypt_never_plain(db, db_path, admin):
    auth.create_user(db, "bob", "annotator", SECRET, admin)
    auth.create_user(db, "carl", "annotator", SECRET, admin)
    auth.sign_in(db, "bob", SECRET)
    with pytest.raises(AuthError):
        auth.sign_in(db, "bob", SECRET + "x")
    hashes = dict(db.execute("SELECT name, password_hash FROM users").fetchall())
    algo, n, r, p, salt, digest = hashes["bob"].split("$")
    assert algo == "scrypt" and int(n) >= 2**14 and len(bytes.fromhex(salt)) == 16 and len(digest) == 64
    assert hashes["bob"] != hashes["carl"]  # same password, different salt
    assert auth.check_password(SECRET, hashes["bob"])
    assert not auth.check_password(SECRET + "!", hashes["bob"])
    assert not auth.check_password(SECRET, "plain:" + SECRET)
    blob = _file_bytes(db_path)
    assert b"bob" in blob  # the file really holds the data we look through
    for pw in (SECRET, PASSWORD, SECRET + "x"):
        assert pw.encode() not in blob
        assert pw.encode("utf-16-le") not in blob
    payloads = " ".join(r[0] for r in db.execute("SELECT payload FROM audit_log"))
    assert SECRET not in payloads


def test_first_user_must_be_admin(db):
    assert not auth.has_users(db)
    with pytest.raises(ReviewError, match="first account must be an admin"):
        auth.create_user(db, "lena", "lead", PASSWORD, None)
    assert not auth.has_users(db)
    assert store.scalar(db, "SELECT COUNT(*) FROM audit_log") == 0
    u = auth.create_user(db, "root", "admin", PASSWORD, None)
    assert u == auth.User("root", "admin")
    row = db.execute("SELECT actor, action, payload FROM audit_log").fetchone()
    assert row[0] == "root" and row[1] == "user_add" and '"first_admin":true' in row[2]


def test_only_admin_adds_users(db, admin, lead, annotator):
    with pytest.raises(PermissionDenied):
        auth.create_user(db, "x1", "annotator", PASSWORD, lead)
    with pytest.raises(PermissionDenied):
        auth.create_user(db, "x2", "annotator", PASSWORD, annotator)
    with pytest.raises(PermissionDenied, match="Sign in"):
        auth.create_user(db, "x3", "admin", PASSWORD, None)  # no actor once an admin exists
    assert store.scalar(db, "SELECT COUNT(*) FROM users WHERE name LIKE 'x%'") == 0
    auth.create_user(db, "x4", "lead", PASSWORD, admin)
    assert store.scalar(db, "SELECT role FROM users WHERE name='x4'") == "lead"
    assert (
        store.scalar(db, "SELECT actor FROM audit_log WHERE action='user_add' ORDER BY id DESC LIMIT 1") == admin.name
    )


def test_create_user_validation(db, admin):
    with pytest.raises(ReviewError, match="too short"):
        auth.create_user(db, "short", "annotator", "1234567", admin)
    with pytest.raises(ReviewError, match="does not exist"):
        auth.create_user(db, "bob", "superuser", PASSWORD, admin)
    with pytest.raises(ReviewError, match="not allowed"):
        auth.create_user(db, "bob smith", "annotator", PASSWORD, admin)
    with pytest.raises(ReviewError, match="exists already"):
        auth.create_user(db, admin.name, "annotator", PASSWORD, admin)


def test_sign_in_ok_and_wrong_password_counted(db, annotator):
    assert auth.sign_in(db, annotator.name, PASSWORD) == annotator
    with pytest.raises(AuthError, match="Wrong user name or password"):
        auth.sign_in(db, annotator.name, "not the password")
    assert store.scalar(db, "SELECT failed_logins FROM users WHERE name=?", [annotator.name]) == 1
    with pytest.raises(AuthError, match="Wrong user name or password"):
        auth.sign_in(db, annotator.name, "still not it")
    assert store.scalar(db, "SELECT failed_logins FROM users WHERE name=?", [annotator.name]) == 2
    auth.sign_in(db, annotator.name, PASSWORD)  # success resets the count
    assert store.scalar(db, "SELECT failed_logins FROM users WHERE name=?", [annotator.name]) == 0
    # an unknown user gets the same message (does not reveal which names exist)
    with pytest.raises(AuthError, match="Wrong user name or password"):
        auth.sign_in(db, "nobody", PASSWORD)
    actions = [
        r[0]
        for r in db.execute("SELECT action FROM audit_log WHERE actor IN (?, 'nobody') ORDER BY id", [annotator.name])
    ]
    assert actions == ["sign_in", "sign_in_failed", "sign_in_failed", "sign_in", "sign_in_failed"]


def test_lockout_after_max_failed(db, annotator, monkeypatch):
    # (the races, sources and the admin are in tests/db/test_lockout.py)
    n = auth.MAX_FAILED - auth.FRESH_RESERVED  # guesses from one source before its share of the window is spent
    for i in range(n):
        with pytest.raises(AuthError, match="^Wrong user name or password.$"):
            auth.sign_in(db, annotator.name, f"wrong-{i}", source="10.0.0.9")
    # the right password from the same source is refused too, with the same words (no "locked" to tell)
    with pytest.raises(AuthError, match="^Wrong user name or password.$"):
        auth.sign_in(db, annotator.name, PASSWORD, source="10.0.0.9")
    assert store.scalar(db, "SELECT locked_until FROM users WHERE name=?", [annotator.name]) > time.time()
    reasons = [
        r[0]
        for r in db.execute(
            "SELECT json_extract(payload, '$.reason') FROM audit_log WHERE action='sign_in_failed' ORDER BY id"
        )
    ]
    assert reasons == ["wrong password"] * n + ["throttled"]
    # once the window has passed, the right password works again
    later = time.time() + auth.NAME_WINDOW + 1
    monkeypatch.setattr(auth, "_now", lambda: later)
    assert auth.sign_in(db, annotator.name, PASSWORD, source="10.0.0.9") == annotator


def test_admin_reactivation_clears_a_lock(db, admin, annotator):
    for i in range(auth.MAX_FAILED):
        with pytest.raises(AuthError, match="^Wrong user name or password.$"):
            auth.sign_in(db, annotator.name, f"wrong-{i}", source=f"10.0.1.{i}")
    with pytest.raises(AuthError, match="^Wrong user name or password.$"):
        auth.sign_in(db, annotator.name, PASSWORD, source="10.0.2.1")
    auth.set_active(db, annotator.name, True, admin)
    assert auth.sign_in(db, annotator.name, PASSWORD, source="10.0.2.1") == annotator


def test_inactive_user_refused(db, admin, annotator):
    auth.set_active(db, annotator.name, False, admin)
    with pytest.raises(AuthError, match="^Wrong user name or password.$"):  # the same words as any failure
        auth.sign_in(db, annotator.name, PASSWORD)
    assert (
        store.scalar(
            db,
            "SELECT json_extract(payload, '$.reason') FROM audit_log WHERE action='sign_in_failed'"
            " ORDER BY id DESC LIMIT 1",
        )
        == "inactive"
    )
    with pytest.raises(Exception, match="No active user"):
        auth.get_user(db, annotator.name)
    with pytest.raises(ReviewError, match="own account"):
        auth.set_active(db, admin.name, False, admin)
    auth.set_active(db, annotator.name, True, admin)
    assert auth.sign_in(db, annotator.name, PASSWORD) == annotator


@pytest.mark.parametrize(
    "role,needed,allowed",
    [
        ("annotator", "annotator", True),
        ("annotator", "lead", False),
        ("annotator", "admin", False),
        ("lead", "annotator", True),
        ("lead", "lead", True),
        ("lead", "admin", False),
        ("admin", "annotator", True),
        ("admin", "lead", True),
        ("admin", "admin", True),
    ],
)
def test_require_role_boundaries(role, needed, allowed):
    u = auth.User("u", role)
    if allowed:
        assert auth.require(u, needed, "do it") is u
    else:
        with pytest.raises(PermissionDenied, match=f"u is signed in as {role}; only a {needed} or above can do it"):
            auth.require(u, needed, "do it")


@pytest.mark.parametrize("needed", ["annotator", "lead", "admin"])
def test_require_refuses_nobody(needed):
    with pytest.raises(PermissionDenied, match="Sign in to"):
        auth.require(None, needed, "do it")


def test_user_management_needs_admin(db, admin, lead, annotator):
    for who in (lead, annotator):
        with pytest.raises(PermissionDenied):
            auth.list_users(db, who)
        with pytest.raises(PermissionDenied):
            auth.set_role(db, annotator.name, "admin", who)
        with pytest.raises(PermissionDenied):
            auth.set_active(db, annotator.name, False, who)
    assert store.scalar(db, "SELECT role FROM users WHERE name=?", [annotator.name]) == "annotator"
    auth.set_role(db, annotator.name, "lead", admin)
    assert {u["name"]: u["role"] for u in auth.list_users(db, admin)}[annotator.name] == "lead"
