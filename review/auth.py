"""Users, password hashes (salted scrypt), sign-in and role checks."""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
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
NAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


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


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$salt$hash`` with a fresh 16-byte salt."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    """Constant-time comparison against a stored ``scrypt$…`` hash."""
    try:
        algo, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if algo != "scrypt":
        return False
    got = hashlib.scrypt(password.encode("utf-8"), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                         dklen=len(digest) // 2)
    return hmac.compare_digest(got.hex(), digest)


def has_users(db: sqlite_utils.Database) -> bool:
    return store.scalar(db, "SELECT 1 FROM users LIMIT 1") is not None


def _validate(name: str, role: str, password: str) -> None:
    if not NAME_RE.match(name or ""):
        raise ReviewError(
            f"User name {name!r} is not allowed: use 1 to 64 letters, digits, '_', '.', '@' or '-'."
        )
    if role not in ROLES:
        raise ReviewError(f"Role {role!r} does not exist: choose one of {', '.join(ROLES)}.")
    if len(password or "") < MIN_PASSWORD:
        raise ReviewError(f"The password is too short: use at least {MIN_PASSWORD} characters.")


def create_user(db: sqlite_utils.Database, name: str, role: str, password: str,
                actor: User | None) -> User:
    """Add an account. Only an admin may, except for the first account on an empty
    database, which must be an admin (``actor`` None)."""
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
        if store.scalar(db, "SELECT 1 FROM users WHERE name = ?", [name]):
            raise ReviewError(f"A user named {name!r} exists already: pick another name.")
        db.execute(
            "INSERT INTO users(name, role, password_hash, created_at, active) VALUES (?,?,?,?,1)",
            [name, role, pw_hash, store.now_iso()],
        )
        store.log(db, actor_name, "user_add", user=name, role=role, first_admin=first)
    return User(name, role)


def set_active(db: sqlite_utils.Database, name: str, active: bool, actor: User) -> None:
    """Deactivate or reactivate an account (admin)."""
    require(actor, "admin", "manage users")
    with store.transaction(db):
        if not store.scalar(db, "SELECT 1 FROM users WHERE name=?", [name]):
            raise NotFound(f"No user named {name!r}.")
        if name == actor.name and not active:
            raise ReviewError("You cannot deactivate your own account.")
        db.execute("UPDATE users SET active=?, failed_logins=0, locked_until=0 WHERE name=?", [int(active), name])
        store.log(db, actor.name, "user_activate" if active else "user_deactivate", user=name)


def set_role(db: sqlite_utils.Database, name: str, role: str, actor: User) -> None:
    require(actor, "admin", "manage users")
    if role not in ROLES:
        raise ReviewError(f"Role {role!r} does not exist: choose one of {', '.join(ROLES)}.")
    with store.transaction(db):
        if not store.scalar(db, "SELECT 1 FROM users WHERE name=?", [name]):
            raise NotFound(f"No user named {name!r}.")
        db.execute("UPDATE users SET role=? WHERE name=?", [role, name])
        store.log(db, actor.name, "user_role", user=name, role=role)


def list_users(db: sqlite_utils.Database, actor: User) -> list[dict]:
    require(actor, "admin", "see the users")
    return list(db.query("SELECT name, role, active, created_at, failed_logins, locked_until FROM users ORDER BY name"))


def sign_in(db: sqlite_utils.Database, name: str, password: str) -> User:
    """Check a password; count failures and lock the account after MAX_FAILED.

    Raises AuthError with a message that does not reveal whether the name exists.
    """
    row = db.execute(
        "SELECT role, password_hash, active, failed_logins, locked_until FROM users WHERE name=?", [name]
    ).fetchone()
    if row is None:
        check_password(password, hash_password("x" * MIN_PASSWORD))  # same cost either way
        with store.transaction(db):
            store.log(db, name[:64] or "?", "sign_in_failed", reason="unknown user")
        raise AuthError("Wrong user name or password.")
    role, pw_hash, active, failed, locked_until = row
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


SYSTEM = User("cli", "admin")
"""The actor of the `review` command: whoever can open the database file."""
