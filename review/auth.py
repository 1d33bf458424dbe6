"""Users, password hashes (salted scrypt), sign-in, browser sessions and role checks.

A browser session is a random token (in a cookie, see review.ui) of which the database keeps only
the SHA-256: it expires SESSION_LIFETIME after sign-in (not sliding) or after SESSION_IDLE without
use, and ends at once on sign-out or when the user is deactivated."""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
import unicodedata
from dataclasses import dataclass

import sqlite_utils

from . import store
from .errors import AuthError, NotFound, PermissionDenied, ReviewError

ROLES = ("annotator", "lead", "admin")
ROLE_RANK = {"annotator": 1, "lead": 2, "admin": 3}
MIN_PASSWORD = 8
MAX_FAILED = 5          # wrong passwords in a row before the account locks
LOCK_SECONDS = 15 * 60
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
NAME_RE = re.compile(r"[A-Za-z0-9_.@-]{1,64}")   # use NAME_RE.fullmatch: "$" would let "ada\n" through
SESSION_LIFETIME = 12 * 3600    # a browser session ends this long after sign-in, used or not (not sliding)
SESSION_IDLE = 8 * 3600         # ... or after this long without a page run
SESSION_TOUCH = 60              # last_seen is written at most this often (one write a minute, not one a click)
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")   # secrets.token_urlsafe(32)
QUEUE_SKIPS_KEPT = 5000         # skipped rows kept per user and dataset in the Review queue (the newest)


@dataclass(frozen=True)
class User:
    """Who acts. ``name`` is written to the audit trail with every action."""

    name: str
    role: str

    def can(self, role: str) -> bool:
        return ROLE_RANK.get(self.role, 0) >= ROLE_RANK[role]


def require(user: User | None, role: str, action: str) -> User:
    """Raise PermissionDenied unless ``user`` has at least ``role``."""
    if user is None:
        raise PermissionDenied(f"Sign in to {action}.")
    if not user.can(role):
        raise PermissionDenied(
            f"{user.name} is signed in as {user.role}; only a {role} or above can {action}."
        )
    return user


def normal_name(name: str) -> str:
    """A user name as it is stored and compared: NFKC (full-width letters, composed or decomposed
    accents all give one form). Names are told apart without regard to case: see :func:`name_key`."""
    return unicodedata.normalize("NFKC", name or "")


def name_key(name: str) -> str:
    """What two names must differ in to be two users: NFKC, then lower case (``ada`` = ``ADA``).
    Matches SQLite's ``lower(name)`` for the allowed (ASCII) names."""
    return normal_name(name).lower()


def normal_password(password: str) -> str:
    """NFKC: a password typed with a composed accent checks against one typed decomposed."""
    return unicodedata.normalize("NFKC", password or "")


def password_refusal(password: str, name: str = "") -> str | None:
    """Why ``password`` is refused for the user ``name`` (a clear message), None if it is allowed:
    only whitespace, fewer than MIN_PASSWORD characters once the spaces at both ends are left out,
    the user name (ignoring case), or one character repeated."""
    pw = normal_password(password)
    core = pw.strip()
    if pw and not core:
        return "The password is only spaces: use letters, digits or signs."
    if len(core) < MIN_PASSWORD:
        return (f"The password is too short: use at least {MIN_PASSWORD} characters"
                + (" (spaces at the start or end do not count)." if len(pw) >= MIN_PASSWORD else "."))
    if name and core.lower() == name_key(name):
        return "The password is the user name: choose a password that differs from the name."
    if len(set(core)) == 1:
        return "The password is one character repeated: choose one that is harder to guess."
    return None


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$salt$hash`` of the NFKC password with a fresh 16-byte salt."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(normal_password(password).encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    """Constant-time comparison of the NFKC password against a stored ``scrypt$…`` hash. A hash made
    before passwords were normalised matches the password exactly as typed then, so that is tried
    too when the typed password is not already NFKC."""
    try:
        algo, n, r, p, salt, digest = (stored or "").split("$")
        if algo != "scrypt":
            return False
        params = dict(salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=len(digest) // 2)
        typed = password or ""
        for pw in dict.fromkeys((normal_password(typed), typed)):
            if hmac.compare_digest(hashlib.scrypt(pw.encode("utf-8"), **params).hex(), digest):
                return True
    except (ValueError, TypeError):     # a malformed stored hash matches nothing
        return False
    return False


_DUMMY: list[str] = []


def _dummy_hash() -> str:
    """A hash no password is checked in earnest against: an unknown name costs one scrypt, as a known one."""
    if not _DUMMY:
        _DUMMY.append(hash_password(secrets.token_urlsafe(16)))
    return _DUMMY[0]


def has_users(db: sqlite_utils.Database) -> bool:
    return store.scalar(db, "SELECT 1 FROM users LIMIT 1") is not None


def _validate(name: str, role: str, password: str) -> None:
    """``name`` already NFKC (:func:`normal_name`)."""
    if not NAME_RE.fullmatch(name or ""):
        raise ReviewError(
            f"User name {name!r} is not allowed: use 1 to 64 letters, digits, '_', '.', '@' or '-'."
        )
    if role not in ROLES:
        raise ReviewError(f"Role {role!r} does not exist: choose one of {', '.join(ROLES)}.")
    refusal = password_refusal(password, name)
    if refusal:
        raise ReviewError(refusal)


def create_user(db: sqlite_utils.Database, name: str, role: str, password: str,
                actor: User | None) -> User:
    """Add an account. Only an admin may, except for the first account on an empty
    database, which must be an admin (``actor`` None). The name is kept NFKC and must differ from
    every other user's in more than case (older databases may hold such twins: they stay)."""
    name = normal_name(name)
    _validate(name, role, password)
    pw_hash = hash_password(password)  # slow: outside the write lock
    with store.transaction(db):
        first = not has_users(db)
        if first:
            if role != "admin":
                raise ReviewError("The first account must be an admin: choose the role admin.")
            actor_name = name
        else:
            require(actor, "admin", "add users")
            actor_name = actor.name
        same = store.scalar(db, "SELECT name FROM users WHERE name = ? OR lower(name) = ?", [name, name_key(name)])
        if same is not None:
            raise ReviewError(f"A user named {same!r} exists already (names are the same whatever"
                              " their case): pick another name.")
        db.execute(
            "INSERT INTO users(name, role, password_hash, created_at, active) VALUES (?,?,?,?,1)",
            [name, role, pw_hash, store.now_iso()],
        )
        store.log(db, actor_name, "user_add", user=name, role=role, first_admin=first)
    return User(name, role)


def last_admin_refusal(db: sqlite_utils.Database, name: str, what: str) -> str | None:
    """Why taking the admin role (``what``: "making NAME lead", "deactivating NAME") from ``name``
    is refused, if ``name`` is an active admin and no other active admin is left; else None.
    set_role and set_active check it inside their transaction; the Users page asks it first."""
    row = db.execute("SELECT role, active FROM users WHERE name=?", [name]).fetchone()
    if row is None or row[0] != "admin" or not row[1]:
        return None
    if store.scalar(db, "SELECT COUNT(*) FROM users WHERE role='admin' AND active=1 AND name != ?", [name]):
        return None
    return (f"{name} is the last active admin: {what} would leave nobody able to manage users."
            " Make another user admin first.")


def set_active(db: sqlite_utils.Database, name: str, active: bool, actor: User) -> None:
    """Deactivate or reactivate an account (admin). The last active admin cannot be deactivated."""
    require(actor, "admin", "manage users")
    with store.transaction(db):
        row = db.execute("SELECT role, active FROM users WHERE name=?", [name]).fetchone()
        if row is None:
            raise NotFound(f"No user named {name!r}.")
        if name == actor.name and not active:
            raise ReviewError("You cannot deactivate your own account.")
        refusal = None if active else last_admin_refusal(db, name, f"deactivating {name}")
        if refusal:
            raise ReviewError(refusal)
        db.execute("UPDATE users SET active=?, failed_logins=0, locked_until=0 WHERE name=?", [int(active), name])
        if active:
            store.log(db, actor.name, "user_activate", user=name)
        else:   # every open browser session of theirs ends now, in every tab
            store.log(db, actor.name, "user_deactivate", user=name, sessions_ended=_revoke_all(db, name, "deactivated"))


def set_role(db: sqlite_utils.Database, name: str, role: str, actor: User) -> str:
    """Change an account's role (admin); returns the role it had. The last active admin cannot be
    demoted, and setting the role a user already has is refused (nothing to change)."""
    require(actor, "admin", "manage users")
    if role not in ROLES:
        raise ReviewError(f"Role {role!r} does not exist: choose one of {', '.join(ROLES)}.")
    with store.transaction(db):
        row = db.execute("SELECT role, active FROM users WHERE name=?", [name]).fetchone()
        if row is None:
            raise NotFound(f"No user named {name!r}.")
        old = row[0]
        if old == role:
            raise ReviewError(f"{name} is already {role}: nothing was changed.")
        refusal = last_admin_refusal(db, name, f"making {name} {role}")
        if refusal:
            raise ReviewError(refusal)
        db.execute("UPDATE users SET role=? WHERE name=?", [role, name])
        store.log(db, actor.name, "user_role", user=name, role=role, previous_role=old)
    return old


def list_users(db: sqlite_utils.Database, actor: User) -> list[dict]:
    require(actor, "admin", "see the users")
    return list(db.query("SELECT name, role, active, created_at, failed_logins, locked_until FROM users ORDER BY name"))


def sign_in(db: sqlite_utils.Database, name: str, password: str) -> User:
    """Check a password; count failures and lock the account after MAX_FAILED.

    The name is matched exactly (as typed, then NFKC), else without regard to case; two old users
    whose names differ only in case can each sign in by their exact name, a name matching both
    only in case signs in neither. Raises AuthError with a message that does not reveal whether
    the name exists.
    """
    cols = "SELECT name, role, password_hash, active, failed_logins, locked_until FROM users"
    rows = db.execute(f"{cols} WHERE name IN (?, ?)", [name or "", normal_name(name)]).fetchall()
    if len(rows) > 1:       # the name as typed and its NFKC form are two old users: the typed one
        rows = [r for r in rows if r[0] == name]
    if not rows:
        rows = db.execute(f"{cols} WHERE lower(name) = ?", [name_key(name)]).fetchall()
    row = rows[0] if len(rows) == 1 else None
    if row is None:
        check_password(password, _dummy_hash())  # same cost either way
        with store.transaction(db):
            store.log(db, (name or "")[:64] or "?", "sign_in_failed",
                      reason="ambiguous name" if rows else "unknown user")
        raise AuthError("Wrong user name or password.")
    name, role, pw_hash, active, failed, locked_until = row
    now = time.time()
    if locked_until and locked_until > now:
        minutes = int((locked_until - now) // 60) + 1
        raise AuthError(f"Too many wrong passwords: this account is locked for {minutes} more minute(s).")
    ok = check_password(password, pw_hash)
    with store.transaction(db):
        if not ok:
            failed += 1
            lock = now + LOCK_SECONDS if failed >= MAX_FAILED else 0
            db.execute("UPDATE users SET failed_logins=?, locked_until=? WHERE name=?",
                       [0 if lock else failed, lock, name])
            store.log(db, name, "sign_in_failed", reason="wrong password", locked=bool(lock))
        elif not active:
            store.log(db, name, "sign_in_failed", reason="inactive")
        else:
            db.execute("UPDATE users SET failed_logins=0, locked_until=0 WHERE name=?", [name])
            store.log(db, name, "sign_in", role=role)
    if not ok:
        if failed >= MAX_FAILED:
            raise AuthError(f"Too many wrong passwords: this account is locked for {LOCK_SECONDS // 60} minutes.")
        time.sleep(min(0.25 * failed, 2.0))  # slow down repeated guesses
        raise AuthError("Wrong user name or password.")
    if not active:
        raise AuthError("This account is deactivated: ask an admin to reactivate it.")
    return User(name, role)


def get_user(db: sqlite_utils.Database, name: str) -> User:
    row = db.execute("SELECT role, active FROM users WHERE name=?", [name]).fetchone()
    if row is None or not row[1]:
        raise NotFound(f"No active user named {name!r}.")
    return User(name, row[0])


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def start_session(db: sqlite_utils.Database, user: User) -> str:
    """A new browser session for ``user`` (call right after :func:`sign_in`). Returns its token,
    which only the browser keeps: the database stores its SHA-256."""
    token = secrets.token_urlsafe(32)
    now = time.time()
    with store.transaction(db):
        db.execute("DELETE FROM sessions WHERE expires_at < ?", [now - 86400])   # long dead: no use keeping them
        db.execute("INSERT INTO sessions(user, token_hash, created_at, expires_at, last_seen) VALUES (?,?,?,?,?)",
                   [user.name, _token_hash(token), now, now + SESSION_LIFETIME, now])
    return token


def session_expires(db: sqlite_utils.Database, token: str) -> float | None:
    """When the session of ``token`` ends at the latest (Unix seconds), None if there is none."""
    if not isinstance(token, str) or not TOKEN_RE.match(token):
        return None
    return store.scalar(db, "SELECT expires_at FROM sessions WHERE token_hash=?", [_token_hash(token)])


def resume_session(db: sqlite_utils.Database, token: str | None, now: float | None = None) -> User:
    """The user of a live session, re-read from the users table (role changes count at once).

    Raises AuthError, saying why, when the token is unknown or malformed, or the session was
    ended, has expired, or its user is deactivated."""
    if not isinstance(token, str) or not TOKEN_RE.match(token):
        raise AuthError("Your session is not valid: sign in again.")
    now = time.time() if now is None else now
    row = db.execute(
        "SELECT s.id, s.user, s.expires_at, s.last_seen, s.revoked_at, s.revoked_reason, u.role, u.active"
        " FROM sessions s JOIN users u ON u.name = s.user WHERE s.token_hash=?", [_token_hash(token)]).fetchone()
    if row is None:
        raise AuthError("Your session is not valid: sign in again.")
    sid, name, expires_at, last_seen, revoked_at, reason, role, active = row
    if revoked_at is not None:
        raise AuthError({"sign_out": "You signed out (in this or another tab): sign in again.",
                         "deactivated": "This account is deactivated: ask an admin to reactivate it."}
                        .get(reason, "Your session expired: sign in again."))
    if not active:
        raise AuthError("This account is deactivated: ask an admin to reactivate it.")
    if now >= expires_at or now - last_seen > SESSION_IDLE:
        raise AuthError("Your session expired: sign in again.")
    if now - last_seen > SESSION_TOUCH:
        with store.transaction(db):
            db.execute("UPDATE sessions SET last_seen=? WHERE id=? AND last_seen<?", [now, sid, now])
    return User(name, role)


def end_session(db: sqlite_utils.Database, token: str | None, reason: str = "sign_out") -> None:
    """End one session (sign-out, or the idle limit reached in a tab). Every other tab holding the
    same token is signed out on its next run. Unknown or ended tokens: nothing happens."""
    if not isinstance(token, str) or not TOKEN_RE.match(token):
        return
    with store.transaction(db):
        row = db.execute("SELECT id, user FROM sessions WHERE token_hash=? AND revoked_at IS NULL",
                         [_token_hash(token)]).fetchone()
        if row is None:
            return
        db.execute("UPDATE sessions SET revoked_at=?, revoked_reason=? WHERE id=?", [time.time(), reason, row[0]])
        if reason == "sign_out":
            store.log(db, row[1], "sign_out")


def _revoke_all(db: sqlite_utils.Database, name: str, reason: str) -> int:
    """End every live session of ``name``; call inside a transaction. Returns how many."""
    return db.execute("UPDATE sessions SET revoked_at=?, revoked_reason=? WHERE user=? AND revoked_at IS NULL",
                      [time.time(), reason, name]).rowcount


def load_queue_state(db: sqlite_utils.Database, user: User, dataset_id: int) -> dict:
    """What ``user`` left in the Review queue of a dataset: skipped rows, the row gone back to,
    the filter and the order. {} if nothing was kept."""
    raw = store.scalar(db, "SELECT data FROM queue_state WHERE user=? AND dataset_id=?", [user.name, dataset_id])
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    out = {"skipped": [int(i) for i in data.get("skipped") or [] if isinstance(i, int)][-QUEUE_SKIPS_KEPT:],
           "back": data["back"] if isinstance(data.get("back"), int) else None}
    for k in ("filter", "order"):
        if isinstance(data.get(k), str):
            out[k] = data[k]
    return out



def save_queue_state(db: sqlite_utils.Database, user: User, dataset_id: int, data: dict) -> None:
    """Keep ``user``'s Review queue state of a dataset (see :func:`load_queue_state`). Not audited:
    a skip or a filter decides nothing."""
    clean = {"skipped": [int(i) for i in data.get("skipped") or []][-QUEUE_SKIPS_KEPT:],
             "back": None if data.get("back") is None else int(data["back"]),
             "filter": data.get("filter"), "order": data.get("order")}
    with store.transaction(db):
        db.execute("INSERT INTO queue_state(user, dataset_id, data, updated_at) VALUES (?,?,?,?)"
                   " ON CONFLICT(user, dataset_id) DO UPDATE SET data=excluded.data, updated_at=excluded.updated_at",
                   [user.name, dataset_id, json.dumps(clean), store.now_iso()])


SYSTEM = User("cli", "admin")
"""The actor of the `review` command: whoever can open the database file."""
