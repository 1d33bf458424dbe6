"""Checking the audit trail: the hash chain row by row, then the seals, the record, the pin and the anchor
(:mod:`review.trail.key`): a changed, deleted, recomputed or cut-off trail is reported, naming the row."""

from __future__ import annotations

import hmac

import sqlite_utils

from review.trail import key as trail_key
from review.trail.write import GENESIS, row_hash


def verify_trail(db: sqlite_utils.Database) -> tuple[bool, int, str]:
    """Check the audit trail's hash chain, then its seals and anchor (:mod:`review.trail.key`).

    Returns (ok, rows checked, message); the message names the first broken row, or says that rows
    were deleted at the end, or that the key is missing; when all is well, from which row the trail
    is keyed. A break in the hash chain is reported before a seal that does not match.
    """
    prev = GENESIS
    n = 0
    expected_id = None
    seals = Verifier(db)
    mac_join = " LEFT JOIN audit_mac m ON m.id = a.id" if trail_key.has_mac_table(db) else ""
    mac_col = "m.mac" if mac_join else "NULL"
    last_id = last_hash = None
    for row in db.execute(
        f"SELECT a.id, a.at, a.actor, a.action, a.dataset_id, a.idx, a.payload, a.prev_hash, a.hash, {mac_col}"
        f" FROM audit_log a{mac_join} ORDER BY a.id"
    ):
        rid, at, actor, action, dsid, idx, payload, prev_hash, h, mac = row
        if expected_id is not None and rid != expected_id:
            return (
                False,
                n,
                f"audit row {expected_id} is missing (the chain jumps from {expected_id - 1} to {rid}): rows were deleted",
            )
        if prev_hash != prev:
            return (
                False,
                n,
                f"audit row {rid} does not follow row {rid - 1}: its prev_hash does not match (a row before it was changed or deleted)",
            )
        if row_hash(prev_hash, at, actor, action, dsid, idx, payload) != h:
            return (
                False,
                n,
                f"audit row {rid} ({action} by {actor} at {at}) was changed after it was written: its hash does not match its content",
            )
        seals.row(rid, h, mac, action, actor, at, n)
        prev = h
        n += 1
        expected_id = rid + 1
        last_id, last_hash = rid, h
    ok, checked, extra = seals.finish(n, last_id, last_hash)
    if not ok:
        return False, checked, extra
    return True, n, f"audit trail intact: {n} rows, hash chain verified" + (f"; {extra}" if extra else "")


class Verifier:
    """Checks the seals during verify_trail's pass over the rows (:meth:`row`), then the record, the pin
    and the anchor (:meth:`finish`)."""

    def __init__(self, db):
        self.path = trail_key.db_file(db)
        self.meta = trail_key.read_meta(db)
        self.pin = trail_key.read_pin(self.path)
        self.first_hash = trail_key.first_hash(db)
        self.key = trail_key.find_key(self.path, self.meta["key_id"]) if self.meta["key_id"] else None
        self.keyed_from = self.meta["keyed_from"]
        self.problem: str | None = None  # the first row whose seal fails, in words
        self.problem_rows_ok = 0
        self.can_check = self.key is not None and self.keyed_from is not None and self.keyed_from > 0

    def row(self, rid: int, row_hash: str, mac: str | None, action: str, actor: str, at: str, n_before: int) -> None:
        if self.problem is not None or not self.can_check or rid < self.keyed_from:
            return
        if mac is None:
            self.problem = (
                f"audit row {rid} ({action} by {actor} at {at}) has no seal although the keyed chain "
                f"starts at row {self.keyed_from}: it was written or rewritten without the trail key"
            )
        elif not hmac.compare_digest(mac, trail_key.row_mac(self.key.secret, row_hash)):
            self.problem = (
                f"audit row {rid} ({action} by {actor} at {at}) does not match its seal: the row was "
                "changed and the hash chain recomputed after it (or its seal was changed)"
            )
        else:
            return
        self.problem_rows_ok = n_before

    def _missing_key(self) -> str:
        looked = [
            trail_key.ENV,
            str(trail_key.beside_key_path(self.path)) if self.path else None,
            str(trail_key.user_key_path()),
        ]
        found = [k.key_id if isinstance(k, trail_key.Key) else k for k in trail_key.candidates(self.path)]
        return (
            f"the audit trail is keyed from row {self.keyed_from} with the key {self.meta['key_id']}, which is not "
            f"here (looked in {', '.join(x for x in looked if x)}; found {', '.join(found) if found else 'no key'}): "
            "its seals cannot be checked. Put that key file back (a copy taken to another machine needs it: "
            "beside the copy as <copy>.trail-key, or in REVIEW_TRAIL_KEY); if it is lost for good, "
            "`review verify-trail --new-key` starts a new keyed chain and the trail records it"
        )

    def finish(self, n: int, last_id: int | None, last_hash: str | None) -> tuple[bool, int, str]:
        """(ok, rows verified, what to add to the chain's message, or to say instead of it)."""
        meta, key, K, pin = self.meta, self.key, self.keyed_from, self.pin
        lid = last_id or 0
        if isinstance(pin, str):
            return False, 0, f"the audit trail cannot be checked: {pin}"
        if isinstance(pin, dict):
            if self.first_hash is None:
                return (
                    False,
                    0,
                    (
                        f"every audit row was deleted: this database's trail was keyed from row {pin['keyed_from']} "
                        f"(pin {trail_key.pin_path(self.path)})"
                    ),
                )
            if pin["first_hash"] != self.first_hash:
                return (
                    False,
                    0,
                    (
                        "this is not the audit trail pinned for this database: its first row differs from the "
                        "one pinned, so the whole trail was rewritten, or the database replaced by another one "
                        "(if on purpose: `review verify-trail --new-key`, which records it)"
                    ),
                )
            if (meta["keyed_from"], meta["key_id"]) != (pin["keyed_from"], pin["key_id"]):
                if meta["keyed_from"] is None and meta["key_id"] is None and lid < pin["keyed_from"]:
                    if lid == pin["keyed_from"] - 1:
                        return True, n, ""  # the first keyed write was rolled back: nothing keyed yet
                    return (
                        False,
                        n,
                        (
                            f"the trail was keyed when row {pin['keyed_from']} was written, but it ends at row "
                            f"{lid}: rows were deleted (or the database was put back from a copy older "
                            "than its key: then `review verify-trail --new-key`)"
                        ),
                    )
                return (
                    False,
                    0,
                    (
                        f"the audit trail was keyed from row {pin['keyed_from']} with the key {pin['key_id']} "
                        f"(pin {trail_key.pin_path(self.path)}), but the database now says "
                        + (
                            f"from row {meta['keyed_from']} with the key {meta['key_id']}"
                            if meta["keyed_from"] is not None or meta["key_id"] is not None
                            else "it is not keyed"
                        )
                        + ": its seals were removed or replaced (and the trail perhaps rewritten)"
                    ),
                )
        keyed = K is not None or meta["key_id"] is not None or meta["anchor"] is not None
        if not keyed:
            return True, n, ""
        if K is None or K < 1 or meta["key_id"] is None:
            return (
                False,
                0,
                "the audit trail's record of its key (meta_info trail_keyed_from / trail_key_id) was changed",
            )
        if key is None:
            return False, 0, self._missing_key()
        if self.problem:
            return False, self.problem_rows_ok, self.problem
        if lid < K:
            return (
                False,
                n,
                (
                    f"the keyed chain starts at row {K} but the audit trail ends at row {lid}: "
                    "the keyed rows were deleted"
                ),
            )
        a = meta["anchor"]
        if a is None:
            return (
                False,
                n,
                "the audit trail's anchor (its newest row, sealed) is missing: it was removed from the database",
            )
        if not hmac.compare_digest(a["mac"], trail_key.anchor_mac(key.secret, K, a["id"], a["hash"])):
            return False, n, "the audit trail's anchor does not match its seal: it was changed"
        if a["id"] > lid:
            gone = f"row {a['id']} was" if a["id"] == lid + 1 else f"rows {lid + 1}–{a['id']} were"
            return (
                False,
                n,
                (f"the audit trail ends at row {lid} but was last written at row {a['id']}: {gone} deleted"),
            )
        if a["id"] < lid:
            return (
                False,
                n,
                (f"rows {a['id'] + 1}–{lid} were added after the newest anchored row {a['id']}, without the trail key"),
            )
        if a["hash"] != last_hash:
            return (
                False,
                n,
                (
                    f"row {lid}'s hash is not the anchored one: the audit trail was rewritten "
                    "(rows changed and the hash chain recomputed)"
                ),
            )
        if K > 1:
            return (
                True,
                n,
                (
                    f"keyed (HMAC) from row {K}; rows 1–{K - 1} were written before the trail key existed "
                    "and are checked by the hash chain only"
                ),
            )
        return True, n, ""
