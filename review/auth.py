"""Users, password hashes (salted scrypt), sign-in, browser sessions and role checks.

A browser session is a random token (in a cookie, see review.ui.shell) of which the database keeps only
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

from review import store, trail
from review.errors import AuthError, NotFound, PermissionDenied, ReviewError

ROLES = ("annotator", "lead", "admin")
ROLE_RANK = {"annotator": 1, "lead": 2, "admin": 3}
MIN_PASSWORD = 8
MAX_FAILED = 5  # passwords compared and wrong per name per window, from all sources not trusted for it
FRESH_RESERVED = 2  # ... the last 2 of them only for a source without a failure in its SOURCE_WINDOW
NAME_WINDOW = 60  # a name's first window (s); a window that ran full makes the next twice as long ...
NAME_WINDOW_MAX = 15 * 60  # ... up to this; a name that rests this long starts again at NAME_WINDOW
LOCK_SECONDS = NAME_WINDOW_MAX  # the longest a name is held back for sources with recent failures
SOURCE_MAX = 30  # passwords compared and wrong per source (client address) per SOURCE_WINDOW, any names
SOURCE_WINDOW = 15 * 60
TRUST_SECONDS = 30 * 86400  # a source a name signed in from stays trusted for that name this long
TRAIL_PER_SOURCE = 5  # failed sign-ins written to the audit trail per source per minute ...
TRAIL_PER_MINUTE = 30  # ... and from all sources together; the others are counted in the next one written
SIGN_IN_FAILED = "Wrong user name or password."  # the one message of every failed sign-in, whatever the reason
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
NAME_RE = re.compile(r"[A-Za-z0-9_.@-]{1,64}")  # use NAME_RE.fullmatch: "$" would let "ada\n" through
SESSION_LIFETIME = 12 * 3600  # a browser session ends this long after sign-in, used or not (not sliding)
SESSION_IDLE = 8 * 3600  # ... or after this long without a page run
SESSION_TOUCH = 60  # last_seen is written at most this often (one write a minute, not one a click)
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # secrets.token_urlsafe(32)
QUEUE_SKIPS_KEPT = 5000  # skipped rows kept per user and dataset in the Review queue (the newest)


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
        raise PermissionDenied(f"{user.name} is signed in as {user.role}; only a {role} or above can {action}.")
    return user


def require_active(db: sqlite_utils.Database, user: User | None, role: str, action: str) -> User:
    """:func:`require`, checked against the users table when the action runs, not when its page was
    drawn: a user deactivated (or given a lower role) since then is refused, whatever path the action
    comes by (a button's callback, a download built on click, the CLI). Returns the user as stored."""
    require(user, role, action)
    if user is SYSTEM:  # the `review` command: whoever can open the file, not an account
        return user
    row = db.execute("SELECT role, active FROM users WHERE name=?", [user.name]).fetchone()
    if row is None or not row[1]:
        raise PermissionDenied(
            f"The account {user.name!r} is deactivated, so it cannot {action}: nothing was done. "
            "An admin can reactivate it on the Users page."
        )
    return require(User(user.name, row[0]), role, action)


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
        return f"The password is too short: use at least {MIN_PASSWORD} characters" + (
            " (spaces at the start or end do not count)." if len(pw) >= MIN_PASSWORD else "."
        )
    if name and core.lower() == name_key(name):
        return "The password is the user name: choose a password that differs from the name."
    if len(set(core)) == 1:
        return "The password is one character repeated: choose one that is harder to guess."
    return None


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$salt$hash`` of the NFKC password with a fresh 16-byte salt."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        normal_password(password).encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32
    )
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
    except (ValueError, TypeError):  # a malformed stored hash matches nothing
        return False
    return False


_DUMMY: list[str] = []


def _dummy_hash() -> str:
    """A hash no password is checked in earnest against: an unknown name costs one scrypt, as a known one.
    A random digest (no scrypt run to make it), so even the first unknown name costs no more than that."""
    if not _DUMMY:
        _DUMMY.append(f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${secrets.token_hex(16)}${secrets.token_hex(32)}")
    return _DUMMY[0]


def has_users(db: sqlite_utils.Database) -> bool:
    return store.scalar(db, "SELECT 1 FROM users LIMIT 1") is not None


def _validate(name: str, role: str, password: str) -> None:
    """``name`` already NFKC (:func:`normal_name`)."""
    if not NAME_RE.fullmatch(name or ""):
        raise ReviewError(f"User name {name!r} is not allowed: use 1 to 64 letters, digits, '_', '.', '@' or '-'.")
    if role not in ROLES:
        raise ReviewError(f"Role {role!r} does not exist: choose one of {', '.join(ROLES)}.")
    refusal = password_refusal(password, name)
    if refusal:
        raise ReviewError(refusal)


def create_user(db: sqlite_utils.Database, name: str, role: str, password: str, actor: User | None) -> User:
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
            require_active(db, actor, "admin", "add users")
            actor_name = actor.name
        same = store.scalar(db, "SELECT name FROM users WHERE name = ? OR lower(name) = ?", [name, name_key(name)])
        if same is not None:
            raise ReviewError(
                f"A user named {same!r} exists already (names are the same whatever their case): pick another name."
            )
        db.execute(
            "INSERT INTO users(name, role, password_hash, created_at, active) VALUES (?,?,?,?,1)",
            [name, role, pw_hash, store.now_iso()],
        )
        trail.log(db, actor_name, "user_add", user=name, role=role, first_admin=first)
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
    return (
        f"{name} is the last active admin: {what} would leave nobody able to manage users."
        " Make another user admin first."
    )


def set_active(db: sqlite_utils.Database, name: str, active: bool, actor: User) -> None:
    """Deactivate or reactivate an account (admin). The last active admin cannot be deactivated."""
    require_active(db, actor, "admin", "manage users")
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
        _clear_throttle(db, name)  # an admin's (re)activation ends the name's windows, as it ended a lock
        if active:
            trail.log(db, actor.name, "user_activate", user=name)
        else:  # every open browser session of theirs ends now, in every tab
            trail.log(db, actor.name, "user_deactivate", user=name, sessions_ended=_revoke_all(db, name, "deactivated"))


def set_role(db: sqlite_utils.Database, name: str, role: str, actor: User) -> str:
    """Change an account's role (admin); returns the role it had. The last active admin cannot be
    demoted, and setting the role a user already has is refused (nothing to change)."""
    require_active(db, actor, "admin", "manage users")
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
        trail.log(db, actor.name, "user_role", user=name, role=role, previous_role=old)
    return old


def list_users(db: sqlite_utils.Database, actor: User) -> list[dict]:
    require_active(db, actor, "admin", "see the users")
    return list(db.query("SELECT name, role, active, created_at, failed_logins, locked_until FROM users ORDER BY name"))


# the columns of sign_in_throttle (store.SCHEMA; migration 0010_sign_in_throttle for older databases)
_LANE_COLS = ("fails", "window_end", "strikes", "last_fail", "trusted_until", "minute", "logged", "skipped")


@dataclass
class _Lane:
    kind: str
    key: str
    fails: int = 0
    window_end: float = 0.0
    strikes: int = 0
    last_fail: float = 0.0
    trusted_until: float = 0.0
    minute: int = 0
    logged: int = 0
    skipped: int = 0


def _now() -> float:
    return time.time()  # the tests move the clock here


def _lane(db: sqlite_utils.Database, kind: str, key: str) -> _Lane:
    row = db.execute(
        f"SELECT {', '.join(_LANE_COLS)} FROM sign_in_throttle WHERE kind=? AND key=?", [kind, key]
    ).fetchone()
    return _Lane(kind, key, *row) if row else _Lane(kind, key)


def _save(db: sqlite_utils.Database, *lanes: _Lane) -> None:
    for ln in lanes:
        db.execute(
            f"INSERT OR REPLACE INTO sign_in_throttle(kind, key, {', '.join(_LANE_COLS)})"
            f" VALUES (?,?,{','.join('?' * len(_LANE_COLS))})",
            [ln.kind, ln.key, *(getattr(ln, c) for c in _LANE_COLS)],
        )


def _span(strikes: int) -> float:
    return min(NAME_WINDOW * 2 ** min(strikes, 16), NAME_WINDOW_MAX)


def _roll(ln: _Lane, t: float, full_at: int) -> None:
    """Close ``ln``'s window if it is over: a window that ran full (``full_at`` failures) followed by more
    failures within NAME_WINDOW_MAX makes the next one longer; a rest that long starts again short."""
    if ln.window_end and ln.window_end <= t:
        rested = t - ln.window_end >= NAME_WINDOW_MAX
        ln.strikes = 0 if rested or ln.fails < full_at else ln.strikes + 1
        ln.fails, ln.window_end = 0, 0.0
    elif not ln.window_end and ln.strikes and t - ln.last_fail >= 2 * NAME_WINDOW_MAX:
        ln.strikes = 0


def _count(ln: _Lane, t: float, span: float) -> None:
    if not ln.window_end:
        ln.window_end = t + span
    ln.fails += 1
    ln.last_fail = t


def _source_key(source: str | None) -> str:
    s = str(source or "").strip()[:64]
    return s or "local"


def _find_user(db: sqlite_utils.Database, name: str) -> tuple[tuple | None, str | None]:
    """(the users row, None) or (None, 'unknown user' | 'ambiguous name'). Exact name (as typed, then
    NFKC), else without regard to case; a name matching two old users only in case matches neither."""
    cols = "SELECT name, role, password_hash, active FROM users"
    rows = db.execute(f"{cols} WHERE name IN (?, ?)", [name or "", normal_name(name)]).fetchall()
    if len(rows) > 1:  # the name as typed and its NFKC form are two old users: the typed one
        rows = [r for r in rows if r[0] == name]
    if not rows:
        rows = db.execute(f"{cols} WHERE lower(name) = ?", [name_key(name)]).fetchall()
    if len(rows) == 1:
        return rows[0], None
    return None, "ambiguous name" if rows else "unknown user"


def _mirror(db: sqlite_utils.Database, user: str | None, nm: _Lane, t: float) -> None:
    """users.failed_logins / locked_until, for the Users page: the name's failures in its window, and
    until when sources with recent failures are held back (0: they are not)."""
    if user is not None:
        held = nm.window_end if nm.window_end > t and nm.fails >= MAX_FAILED - FRESH_RESERVED else 0
        db.execute("UPDATE users SET failed_logins=?, locked_until=? WHERE name=?", [nm.fails, held, user])


def _log_failed(db: sqlite_utils.Database, t: float, actor: str, src: str, **payload) -> None:
    """A sign_in_failed row, at most TRAIL_PER_SOURCE per source and TRAIL_PER_MINUTE in all per minute;
    the failures left out are counted, and the next row written says how many (``skipped``)."""
    minute = int(t // 60)
    per, every = _lane(db, "trail", src), _lane(db, "trail_all", "")
    for ln in (per, every):
        if ln.minute != minute:
            ln.minute, ln.logged = minute, 0
    if per.logged < TRAIL_PER_SOURCE and every.logged < TRAIL_PER_MINUTE:
        per.logged += 1
        every.logged += 1
        if every.skipped:
            payload["skipped"] = every.skipped
            every.skipped = 0
        trail.log(db, actor, "sign_in_failed", source=src, **payload)
    else:
        every.skipped += 1
    per.last_fail = t
    _save(db, per, every)


def _clear_throttle(db: sqlite_utils.Database, name: str) -> None:
    """End the windows of ``name`` (its own and per source; trust is kept). Call inside a transaction."""
    db.execute(
        "UPDATE sign_in_throttle SET fails=0, window_end=0, strikes=0 WHERE (kind='name' AND key=?)"
        " OR (kind='pair' AND substr(key, 1, length(?) + 1) = ? || char(10))",
        [name, name, name],
    )


def sign_in(db: sqlite_utils.Database, name: str, password: str, source: str | None = None) -> User:
    """Check a password, at most MAX_FAILED wrong ones per name per window; ``source`` is the client's
    address (review.ui.shell passes st.context.ip_address; None: the `review` command, a test, or a visitor
    on this machine, all one source "local").

    Every failure raises AuthError(SIGN_IN_FAILED), the same words whatever the reason: unknown name,
    wrong password, deactivated account, a name matching two old users only in case, or a throttle (the
    audit trail keeps the reason and the source). An unknown name costs one scrypt like a known one, and
    unknown names are throttled like known ones, so neither the message, nor the time, nor when the
    throttle starts tells which names exist.

    Counted and checked **before** the password is compared, in one BEGIN IMMEDIATE transaction (so
    concurrent guesses, each on its own connection, queue on SQLite's write lock and each sees the
    others' counts): a guess is compared only if it gets a slot, and a correct password gives its slot
    back. The slots, per name (the stored name if it matches a user, else the name as typed in lower case):

    - **window**: a name's first failure opens a window of NAME_WINDOW (60 s); within it at most
      MAX_FAILED (5) wrong passwords are compared from all sources not trusted for the name, of which the
      last FRESH_RESERVED (2) only for a *fresh* source (no failure in its SOURCE_WINDOW, 15 min): a
      stranger's source, once it failed, gets 3, and the owner coming from a clean source still finds a
      slot. A window that ran full, followed by more failures, makes the next one twice as long, up to
      NAME_WINDOW_MAX (15 min); 15 min without failures and it starts at 60 s again. Attempts refused
      do not extend anything: nobody can hold a name back longer than the window they filled.
    - **trusted sources**: a source the name signed in from in the last TRUST_SECONDS (30 days) skips
      the name's window and the source limit, and has a window of its own (MAX_FAILED per window for the
      pair, growing the same way): strangers elsewhere, however many, never lock the owner out there.
    - **per source**: at most SOURCE_MAX (30) wrong passwords compared per source per 15 min, whatever the
      names (a source spraying many names). Not applied to "local" (None), which cannot tell visitors apart.

    So: 40 concurrent wrong guesses for one name compare at most MAX_FAILED; the right password right
    after them from another, fresh source is admitted; from a trusted source always; from a source that
    failed itself, at most NAME_WINDOW_MAX after the last window filled (the first window: 60 s). Only
    many fresh sources at once (a botnet) can fill a window's fresh slots too: the owner then waits for
    that window's end at a new place, never at a trusted one. A successful sign-in forgives the failures
    its own source made for the name (the owner's typos), not the others', and gives back its source
    slot; the source's count of other failures stays (signing in to one's own account clears nothing).
    Behind a proxy every visitor has the proxy's address: then only the name windows tell them apart.
    Failed sign-ins reach the audit trail rate-limited (TRAIL_PER_SOURCE, TRAIL_PER_MINUTE), with a count
    of those left out."""
    t = _now()
    src = _source_key(source)
    known_source = src != "local"
    with store.transaction(db):
        row, why = _find_user(db, name)
        user = row[0] if row else None
        actor = user or (name or "")[:64] or "?"
        key = user or name_key(name)[:64]
        nm, sl, pr = _lane(db, "name", key), _lane(db, "source", src), _lane(db, "pair", f"{key}\n{src}")
        _roll(nm, t, MAX_FAILED - FRESH_RESERVED)
        _roll(pr, t, MAX_FAILED)
        if sl.window_end and sl.window_end <= t:
            sl.fails, sl.window_end = 0, 0.0
        trusted = pr.trusted_until > t
        if trusted:
            refused = "name at this source" if pr.fails >= MAX_FAILED else None
        elif known_source and sl.fails >= SOURCE_MAX:
            refused = "source"
        else:
            fresh = not sl.last_fail or t - sl.last_fail >= SOURCE_WINDOW  # refused attempts count as failures here
            refused = "name" if nm.fails >= (MAX_FAILED if fresh else MAX_FAILED - FRESH_RESERVED) else None
        src_last_fail = sl.last_fail
        if refused:
            sl.last_fail = t
            _save(db, sl)
            _log_failed(db, t, actor, src, reason="throttled", limit=refused, **({"would_be": why} if why else {}))
        else:  # the slot: counted now, given back if the password is right
            _count(pr, t, _span(pr.strikes))
            _count(nm, t, _span(nm.strikes))
            if not trusted:
                _count(sl, t, SOURCE_WINDOW)
            _save(db, nm, sl, pr)
            _mirror(db, user, nm, t)
            if secrets.randbelow(100) == 0:  # forget names and sources quiet for a day (trust is kept)
                db.execute(
                    "DELETE FROM sign_in_throttle WHERE kind IN ('name', 'source', 'pair', 'trail')"
                    " AND trusted_until < ? AND last_fail < ? AND window_end < ?",
                    [t, t - 86400, t],
                )
    if refused:
        raise AuthError(SIGN_IN_FAILED)
    ok = check_password(password, row[2] if row else _dummy_hash())  # the slow part, outside the write lock
    signed_in = bool(ok and row and row[3])
    with store.transaction(db):
        if signed_in:
            nm, sl, pr = _lane(db, "name", key), _lane(db, "source", src), _lane(db, "pair", f"{key}\n{src}")
            nm.fails = max(0, nm.fails - pr.fails)  # this source's failures for the name are forgiven, not others'
            if not nm.fails:
                nm.window_end, nm.strikes = 0.0, 0
            pr.fails, pr.window_end, pr.strikes, pr.trusted_until = 0, 0.0, 0, t + TRUST_SECONDS
            if not trusted:  # the source gives back this slot only
                sl.fails = max(0, sl.fails - 1)
                if sl.last_fail == t:
                    sl.last_fail = src_last_fail
            every = _lane(db, "trail_all", "")
            extra = {"failed_sign_ins_not_logged": every.skipped} if every.skipped else {}
            every.skipped = 0
            _save(db, nm, sl, pr, every)
            _mirror(db, user, nm, t)
            trail.log(db, user, "sign_in", role=row[1], source=src, **extra)
        else:
            reason = why or ("inactive" if ok else "wrong password")
            _log_failed(
                db,
                t,
                actor,
                src,
                reason=reason,
                **({"inactive_account": True} if row and not row[3] and not ok else {}),
            )
    if not signed_in:
        raise AuthError(SIGN_IN_FAILED)
    return User(row[0], row[1])


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
        db.execute("DELETE FROM sessions WHERE expires_at < ?", [now - 86400])  # long dead: no use keeping them
        db.execute(
            "INSERT INTO sessions(user, token_hash, created_at, expires_at, last_seen) VALUES (?,?,?,?,?)",
            [user.name, _token_hash(token), now, now + SESSION_LIFETIME, now],
        )
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
        " FROM sessions s JOIN users u ON u.name = s.user WHERE s.token_hash=?",
        [_token_hash(token)],
    ).fetchone()
    if row is None:
        raise AuthError("Your session is not valid: sign in again.")
    sid, name, expires_at, last_seen, revoked_at, reason, role, active = row
    if revoked_at is not None:
        raise AuthError(
            {
                "sign_out": "You signed out (in this or another tab): sign in again.",
                "deactivated": "This account is deactivated: ask an admin to reactivate it.",
            }.get(reason, "Your session expired: sign in again.")
        )
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
        row = db.execute(
            "SELECT id, user FROM sessions WHERE token_hash=? AND revoked_at IS NULL", [_token_hash(token)]
        ).fetchone()
        if row is None:
            return
        db.execute("UPDATE sessions SET revoked_at=?, revoked_reason=? WHERE id=?", [time.time(), reason, row[0]])
        if reason == "sign_out":
            trail.log(db, row[1], "sign_out")


def _revoke_all(db: sqlite_utils.Database, name: str, reason: str) -> int:
    """End every live session of ``name``; call inside a transaction. Returns how many."""
    return db.execute(
        "UPDATE sessions SET revoked_at=?, revoked_reason=? WHERE user=? AND revoked_at IS NULL",
        [time.time(), reason, name],
    ).rowcount


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
    out = {
        "skipped": [int(i) for i in data.get("skipped") or [] if isinstance(i, int)][-QUEUE_SKIPS_KEPT:],
        "back": data["back"] if isinstance(data.get("back"), int) else None,
    }
    for k in ("filter", "order"):
        if isinstance(data.get(k), str):
            out[k] = data[k]
    return out


def save_queue_state(db: sqlite_utils.Database, user: User, dataset_id: int, data: dict) -> None:
    """Keep ``user``'s Review queue state of a dataset (see :func:`load_queue_state`). Not audited:
    a skip or a filter decides nothing."""
    clean = {
        "skipped": [int(i) for i in data.get("skipped") or []][-QUEUE_SKIPS_KEPT:],
        "back": None if data.get("back") is None else int(data["back"]),
        "filter": data.get("filter"),
        "order": data.get("order"),
    }
    with store.transaction(db):
        db.execute(
            "INSERT INTO queue_state(user, dataset_id, data, updated_at) VALUES (?,?,?,?)"
            " ON CONFLICT(user, dataset_id) DO UPDATE SET data=excluded.data, updated_at=excluded.updated_at",
            [user.name, dataset_id, json.dumps(clean), store.now_iso()],
        )


SYSTEM = User("cli", "admin")
"""The actor of the `review` command: whoever can open the database file."""
