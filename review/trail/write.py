"""Writing the audit trail: each row hash-chained to the one before (``prev_hash``, ``hash``: SHA-256 of the
previous hash and the row's content) and sealed with the trail key (:mod:`review.trail.key`); a new keyed
chain on purpose (:func:`new_key`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

import sqlite_utils

from review import store
from review.errors import ReviewError
from review.trail import key as trail_key

GENESIS = "0" * 64  # the prev_hash of the first row


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def row_hash(prev_hash: str, at: str, actor: str, action: str, dataset_id, idx, payload: str) -> str:
    body = canonical([prev_hash, at, actor, action, dataset_id, idx, payload])
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def log(
    db: sqlite_utils.Database,
    actor: str,
    action: str,
    dataset_id: int | None = None,
    idx: int | None = None,
    /,
    **payload: Any,
) -> int:
    """Append one audit row chained to the previous one and sealed with the trail key (see
    :mod:`review.trail.key`). Call inside :func:`review.store.transaction`."""
    if not db.conn.in_transaction:
        with store.transaction(db):
            return log(db, actor, action, dataset_id, idx, **payload)
    last = db.execute("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    prev = last[0] if last else GENESIS
    at = store.now_iso()
    body = canonical(payload)
    h = row_hash(prev, at, actor, action, dataset_id, idx, body)
    cur = db.execute(
        "INSERT INTO audit_log(at, actor, action, dataset_id, idx, payload, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?)",
        [at, actor, action, dataset_id, idx, body, prev, h],
    )
    trail_key.seal(db, cur.lastrowid, h)  # HMAC of the hash + the anchor, with the key kept outside the file
    return cur.lastrowid


def log_many(
    db: sqlite_utils.Database,
    actor: str,
    entries: Iterable[tuple[str, int | None, int | None, dict[str, Any]]],
) -> list[int]:
    """Append several audit rows by one actor, each ``(action, dataset_id, idx, payload)``: the same chain
    and seals as :func:`log` called for each in turn, with the key looked up once and the rows and seals
    written with one executemany each (a bulk action's ten thousand rows). Call inside
    :func:`review.store.transaction`. Returns the rows' ids in order."""
    entries = list(entries)
    if not entries:
        return []
    if not db.conn.in_transaction:
        with store.transaction(db):
            return log_many(db, actor, entries)
    first = entries[0]
    ids = [log(db, actor, first[0], first[1], first[2], **first[3])]  # keys a new trail, pins a new path
    batch = trail_key.batch_seal(db)
    if batch is None:
        return ids + [log(db, actor, a, d, i, **p) for a, d, i, p in entries[1:]]
    prev = db.execute("SELECT hash FROM audit_log WHERE id=?", [ids[0]]).fetchone()[0]
    rows, seals = [], []
    for k, (action, dataset_id, idx, payload) in enumerate(entries[1:], start=1):
        at = store.now_iso()
        body = canonical(payload)
        h = row_hash(prev, at, actor, action, dataset_id, idx, body)
        rows.append((ids[0] + k, at, actor, action, dataset_id, idx, body, prev, h))
        seals.append((ids[0] + k, h))
        prev = h
    db.conn.executemany(
        "INSERT INTO audit_log(id, at, actor, action, dataset_id, idx, payload, prev_hash, hash)"
        " VALUES (?,?,?,?,?,?,?,?,?)",
        rows,
    )
    batch.seal_all(db, seals)
    return ids + [r[0] for r in rows]


def new_key(db) -> str:
    """Start a new keyed chain at the next audit row (``review verify-trail --new-key``): when the key is
    lost, or the database was put back from a copy older than its key, or replaced on purpose. It takes
    the key a new trail would take (REVIEW_TRAIL_KEY, the key file beside the database, the user's key
    file, made if there is none): the user's key file serves every database of this user, so it is never
    moved or replaced here (to change the secret itself, rename trail.key and run this for each
    database). The pin is rewritten; the trail records it (``trail_key_new``, with the previous key id,
    anchor and rows); the rows before are then checked by the hash chain only. Returns what was done."""
    path = trail_key.db_file(db)
    new = trail_key.default_key(path)
    if new is None:
        why = [k for k in trail_key.candidates(path) if isinstance(k, str)]
        raise ReviewError(
            "No trail key can be used or made: "
            + (
                "; ".join(why)
                if why
                else f"set {trail_key.ENV}, or let this user write {trail_key.user_key_path().parent} (or set {trail_key.DIR_ENV})"
            )
            + "."
        )
    with store.transaction(db):
        old = trail_key.read_meta(db)
        last = db.execute("SELECT MAX(id) FROM audit_log").fetchone()[0] or 0
        trail_key.set_meta(db, trail_key.META_FROM, last + 1)
        trail_key.set_meta(db, trail_key.META_KEY_ID, new.key_id)
        db.execute("DELETE FROM meta_info WHERE key=?", [trail_key.META_ANCHOR])
        rid = log(
            db,
            "cli",
            "trail_key_new",
            previous_key_id=old["key_id"],
            previous_keyed_from=old["keyed_from"],
            previous_anchor_row=(old["anchor"] or {}).get("id"),
            rows_before=last,
            key_id=new.key_id,
        )
        if path:
            trail_key.write_pin(path, new.key_id, rid, trail_key.first_hash(db), replace=True)
    return f"started a new keyed chain at audit row {rid} with the key in {new.where}" + (
        f"; rows 1–{rid - 1} are checked by the hash chain only" if rid > 1 else ""
    )
