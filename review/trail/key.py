"""The audit trail's key, seals, anchor and pin: what makes a rewritten or a truncated trail show.

The hash chain (:func:`review.trail.write.log`) shows that rows follow one another, but whoever can write the
database file can drop the triggers, edit a row and recompute every hash after it, or delete the newest
rows: the chain still verifies. So, from the first row written with this module on:

- each row's hash is **sealed**: ``HMAC-SHA256(key, hash)`` in the table ``audit_mac``, with a key kept
  outside the database file: an edit recomputed without the key breaks the edited row's seal;
- the database keeps an **anchor**: the id and hash of the newest row and the row the seals start from,
  sealed with the same key, in ``meta_info``, written in the same transaction as the row (a write rolled
  back leaves no anchor ahead of the trail): deleting the newest rows leaves it naming a row that is gone;
- a **pin** outside the database, one small file per database path in the key's folder, records the
  trail's first row, its key id and the row the seals start from: a trail stripped of its seals (table,
  anchor and all) and recomputed is reported, not taken for one written before keys existed.

**Where the key lives**: ``REVIEW_TRAIL_KEY`` (a secret of at least 16 characters) if it is set; else a
key file ``<database>.trail-key`` beside the database if there is one (a key carried along with a copy,
see :func:`copy_key`); else the key file ``trail.key`` in ``REVIEW_TRAIL_DIR`` (default
``$XDG_CONFIG_HOME/review``, i.e. ``~/.config/review``), created mode 0600 (its folder 0700) by the first
audit row written without one. The pins are in ``<that folder>/pins``. The database records the id of
its key (a fingerprint, not the key), so a copy verifies wherever that key is found, and a missing or
another key is reported, never silently made anew for a trail that had one (``review verify-trail
--new-key`` starts a new keyed chain on purpose, and the trail records it).

A database written before keys existed keeps verifying: its older rows by the hash chain alone, and
verify_trail says from which row the keyed chain starts. What this cannot see: a trail put back whole,
anchor included, as an older copy of the database had it (restoring a backup does exactly that, on
purpose), nor anything on a machine where neither the key nor the pin is (a copy taken away)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from review import store

ENV = "REVIEW_TRAIL_KEY"
DIR_ENV = "REVIEW_TRAIL_DIR"
BESIDE = ".trail-key"
MIN_ENV_KEY = 16

META_FROM, META_KEY_ID, META_ANCHOR = "trail_keyed_from", "trail_key_id", "trail_anchor"


@dataclass(frozen=True)
class Key:
    secret: bytes
    key_id: str  # public fingerprint: tells "another key" from "a changed row"
    where: str  # the file, or REVIEW_TRAIL_KEY


def key_id(secret: bytes) -> str:
    return hmac.new(secret, b"review audit trail key id", hashlib.sha256).hexdigest()[:16]


def row_mac(secret: bytes, row_hash: str) -> str:
    return hmac.new(secret, b"row\x00" + row_hash.encode("ascii"), hashlib.sha256).hexdigest()


def anchor_mac(secret: bytes, keyed_from: int, rid: int, row_hash: str) -> str:
    body = json.dumps(["anchor", int(keyed_from), int(rid), row_hash], separators=(",", ":"))
    return hmac.new(secret, body.encode("ascii"), hashlib.sha256).hexdigest()


def db_file(db) -> str | None:
    """The main database's file (resolved), None for an in-memory or temporary one."""
    for _, name, path in db.execute("PRAGMA database_list").fetchall():
        if name == "main":
            return os.path.realpath(path) if path else None
    return None


def trail_dir() -> Path:
    d = os.environ.get(DIR_ENV)
    if d:
        return Path(d)
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "review"


def user_key_path() -> Path:
    return trail_dir() / "trail.key"


def beside_key_path(path: str) -> Path:
    return Path(path + BESIDE)


def pin_path(path: str) -> Path:
    return trail_dir() / "pins" / (hashlib.sha256(path.encode("utf-8")).hexdigest()[:32] + ".json")


# ----------------------------------------------------------------------------- key files

_CACHE: dict[str, tuple[tuple, Key | str | None]] = {}


def _read_key_file(p: Path) -> Key | str | None:
    """The key in ``p``; None if there is no such file; a str (why) if it cannot be used."""
    try:
        st = p.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"the key file {p} cannot be read ({exc.strerror})"
    sig = (st.st_ino, st.st_mtime_ns, st.st_size)
    hit = _CACHE.get(str(p))
    if hit and hit[0] == sig:
        return hit[1]
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        secret = bytes.fromhex(data["key"])
        if len(secret) < 16:
            raise ValueError("short key")
        key: Key | str = Key(secret, key_id(secret), str(p))
        if data.get("key_id") not in (None, key.key_id):
            key = f"the key file {p} is damaged (its key does not match its key id)"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        key = f"the key file {p} cannot be read ({type(exc).__name__})"
    _CACHE[str(p)] = (sig, key)
    return key


def _write_new(p: Path, body: str, replace: bool = False) -> bool:
    """Write ``p`` whole (mode 0600, through a temporary file, so never seen half written); without
    ``replace``, never over a file that exists (False then)."""
    p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        if replace:
            os.replace(tmp, p)
            return True
        try:
            os.link(tmp, p)
            return True
        except FileExistsError:
            return False
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def _new_key_body() -> str:
    secret = secrets.token_bytes(32)
    return json.dumps(
        {
            "key": secret.hex(),
            "key_id": key_id(secret),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "note": "HMAC key of the audit trails of the review app (review.trail.key): keep it secret and keep it;"
            " a database keyed with it verifies only where this key is found",
        },
        indent=1,
    )


def candidates(path: str | None) -> list[Key | str]:
    """Every key usable for the database ``path``, in order: REVIEW_TRAIL_KEY, the key file beside the
    database, the user's key file; a str for one that exists but cannot be used."""
    out: list[Key | str] = []
    env = os.environ.get(ENV)
    if env:
        if len(env) < MIN_ENV_KEY:
            out.append(f"{ENV} is set but shorter than {MIN_ENV_KEY} characters")
        else:
            secret = env.encode("utf-8")
            out.append(Key(secret, key_id(secret), ENV))
    for p in ([beside_key_path(path)] if path else []) + [user_key_path()]:
        k = _read_key_file(p)
        if k is not None:
            out.append(k)
    return out


def find_key(path: str | None, wanted: str | None) -> Key | None:
    return next((k for k in candidates(path) if isinstance(k, Key) and k.key_id == wanted), None)


def default_key(path: str | None, create: bool = True) -> Key | None:
    """The key a trail not keyed yet starts with: the first usable candidate, else a new user key file."""
    for k in candidates(path):
        if isinstance(k, Key):
            return k
        if k.startswith(ENV):
            return None  # a bad REVIEW_TRAIL_KEY is not passed over for another key
    if not create or not path:
        return None
    p = user_key_path()
    try:
        _write_new(p, _new_key_body())  # another process may have made it first: then that one
    except OSError:
        return None
    k = _read_key_file(p)
    return k if isinstance(k, Key) else None


# ----------------------------------------------------------------------------- pins

_PINNED: set[str] = set()
_PRUNED: list[bool] = []


def read_pin(path: str | None) -> dict | str | None:
    if not path:
        return None
    p = pin_path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        return {
            "database": str(data["database"]),
            "key_id": str(data["key_id"]),
            "keyed_from": int(data["keyed_from"]),
            "first_hash": str(data["first_hash"]),
        }
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"the pin file {p} cannot be read ({type(exc).__name__})"


def write_pin(path: str, key_id_: str, keyed_from: int, first_hash: str, replace: bool = False) -> None:
    body = json.dumps(
        {
            "database": path,
            "key_id": key_id_,
            "keyed_from": int(keyed_from),
            "first_hash": first_hash,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
        indent=1,
    )
    try:
        _write_new(pin_path(path), body, replace=replace)
        _PINNED.add(path)
        if not _PRUNED:  # once per process: forget the pins of databases that are gone
            _PRUNED.append(True)
            for f in pin_path(path).parent.glob("*.json"):
                try:
                    if not os.path.exists(json.loads(f.read_text(encoding="utf-8"))["database"]):
                        f.unlink()
                except (OSError, ValueError, KeyError, TypeError):
                    pass
    except OSError:
        pass


def first_hash(db) -> str | None:
    row = db.execute("SELECT hash FROM audit_log ORDER BY id LIMIT 1").fetchone()
    return row[0] if row else None


# ----------------------------------------------------------------------------- the database's record


def read_meta(db) -> dict:
    rows = dict(
        db.execute(
            "SELECT key, value FROM meta_info WHERE key IN (?,?,?)", [META_FROM, META_KEY_ID, META_ANCHOR]
        ).fetchall()
    )
    out = {"keyed_from": None, "key_id": rows.get(META_KEY_ID), "anchor": None}
    try:
        out["keyed_from"] = int(rows[META_FROM]) if rows.get(META_FROM) is not None else None
    except ValueError:
        out["keyed_from"] = -1
    if rows.get(META_ANCHOR):
        try:
            a = json.loads(rows[META_ANCHOR])
            out["anchor"] = {"id": int(a["id"]), "hash": str(a["hash"]), "mac": str(a["mac"])}
        except (ValueError, KeyError, TypeError):
            out["anchor"] = {"id": -1, "hash": "", "mac": ""}
    return out


def set_meta(db, key: str, value) -> None:
    db.execute(
        "INSERT OR REPLACE INTO meta_info(key, value) VALUES (?, ?)", [key, None if value is None else str(value)]
    )


def _insert_mac(db, rid: int, mac: str) -> None:
    try:
        db.execute("INSERT INTO audit_mac(id, mac) VALUES (?, ?)", [rid, mac])
    except sqlite3.OperationalError as exc:
        if "no such table" not in str(exc):
            raise
        for stmt in store.MAC_STATEMENTS:  # a database made before seals: the table comes with its first seal
            db.execute(stmt)
        db.execute("INSERT INTO audit_mac(id, mac) VALUES (?, ?)", [rid, mac])


def has_mac_table(db) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='audit_mac'").fetchone() is not None


def seal(db, rid: int, row_hash: str) -> None:
    """Seal the audit row ``rid`` just written (same transaction) and move the anchor to it. The first
    row written without a key makes one. A trail that was keyed but whose key is missing (or whose record
    or pin disagrees) gets its rows unsealed, for verify_trail to report: never a new key."""
    path = db_file(db)
    meta = read_meta(db)
    keyed_from = meta["keyed_from"]
    if keyed_from is None:
        if meta["key_id"] is not None or meta["anchor"] is not None:
            return  # the record is half gone: verify_trail tells
        pin = read_pin(path)
        if (
            pin is not None
            and rid != 1
            and (not isinstance(pin, dict) or pin["keyed_from"] != rid or pin["first_hash"] != first_hash(db))
        ):
            return  # this path's trail was keyed before: verify_trail tells
        key = default_key(path)
        if key is None:
            return
        keyed_from = rid
        set_meta(db, META_FROM, keyed_from)
        set_meta(db, META_KEY_ID, key.key_id)
        if path and (pin is None or rid == 1):  # rid 1: a new trail where another one was: its pin goes
            write_pin(path, key.key_id, keyed_from, first_hash(db), replace=pin is not None)
    else:
        key = find_key(path, meta["key_id"])
        if key is None:
            return
        if path and path not in _PINNED:  # a copy written at a new path: pin it as it is
            if read_pin(path) is None:
                write_pin(path, key.key_id, keyed_from, first_hash(db))
            _PINNED.add(path)
    _insert_mac(db, rid, row_mac(key.secret, row_hash))
    set_meta(
        db,
        META_ANCHOR,
        json.dumps({"id": rid, "hash": row_hash, "mac": anchor_mac(key.secret, keyed_from, rid, row_hash)}),
    )


class BatchSeal:
    """The seals of several audit rows written one after the other in one transaction (trail.log_many):
    the key looked up once, one executemany of the seals, the anchor moved once to the last row. Made by
    :func:`batch_seal` only when the trail is keyed, its key is at hand and the path is pinned: every other
    case goes through :func:`seal` row by row."""

    def __init__(self, secret: bytes, keyed_from: int):
        self._secret, self._keyed_from = secret, keyed_from

    def seal_all(self, db, rows: Sequence[tuple[int, str]]) -> None:
        """``rows``: (audit row id, its hash), in id order."""
        if not rows:
            return
        db.conn.executemany(
            "INSERT INTO audit_mac(id, mac) VALUES (?, ?)", [(rid, row_mac(self._secret, h)) for rid, h in rows]
        )
        rid, h = rows[-1]
        set_meta(
            db,
            META_ANCHOR,
            json.dumps({"id": rid, "hash": h, "mac": anchor_mac(self._secret, self._keyed_from, rid, h)}),
        )


def batch_seal(db) -> BatchSeal | None:
    """A :class:`BatchSeal` for the rows about to be written, or None (then seal each row)."""
    meta = read_meta(db)
    keyed_from = meta["keyed_from"]
    if keyed_from is None or keyed_from < 0 or not has_mac_table(db):
        return None
    path = db_file(db)
    if path and path not in _PINNED:
        return None
    key = find_key(path, meta["key_id"])
    return BatchSeal(key.secret, keyed_from) if key is not None else None


# ----------------------------------------------------------------------------- copies and a new key


def copy_key(db, dest: str | os.PathLike) -> Path | None:
    """Put the key of ``db``'s trail beside a copy of it at ``dest`` (``<dest>.trail-key``, mode 0600), for
    a copy that leaves this machine. None when there is nothing to copy (REVIEW_TRAIL_KEY, no key) or a
    different key file is there already (never replaced)."""
    path = db_file(db)
    key = find_key(path, read_meta(db)["key_id"])
    if key is None or key.where == ENV:
        return None
    target = beside_key_path(os.path.realpath(str(dest)))
    data = Path(key.where).read_text(encoding="utf-8")
    if not _write_new(target, data):
        return target if target.read_text(encoding="utf-8") == data else None
    return target
