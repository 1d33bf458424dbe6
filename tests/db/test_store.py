"""store: WAL, the append-only audit trail and its hash chain, online backup."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from review import auth, store, trail
from tests.helpers import raw


def _history(db, admin):
    """A normal history: a few users and some free-form audit rows."""
    auth.create_user(db, "bob", "annotator", "password-bob", admin)
    auth.create_user(db, "carol", "lead", "password-carol", admin)
    for i in range(5):
        trail.log(db, admin.name, "note", None, i, text=f"entry {i}", unicode="é ✓")


def test_connect_uses_wal_and_creates_schema(db, db_path):
    assert db.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
    assert db_path.exists()
    for table in ("users", "datasets", "items", "runs", "scores", "reviews", "states", "audit_log", "findings"):
        assert db[table].exists(), table
    assert store.scalar(db, "SELECT value FROM meta_info WHERE key='schema_version'") == str(store.SCHEMA_VERSION)
    # a second connection to the same file sees WAL too and does not re-create anything
    other = store.connect(db_path)
    assert other.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
    other.conn.close()


def test_audit_log_refuses_update_and_delete(db, admin):
    trail.log(db, admin.name, "note", text="x")
    n = store.scalar(db, "SELECT COUNT(*) FROM audit_log")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE audit_log SET actor='mallory' WHERE id=1")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM audit_log WHERE id=1")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM audit_log")
    assert store.scalar(db, "SELECT COUNT(*) FROM audit_log") == n
    assert store.scalar(db, "SELECT actor FROM audit_log WHERE id=1") == admin.name


def test_transaction_rolls_back_data_and_audit_row(db, admin):
    before = store.scalar(db, "SELECT COUNT(*) FROM audit_log")
    with pytest.raises(RuntimeError):
        with store.transaction(db):
            trail.log(db, admin.name, "note", text="never")
            db.execute("INSERT INTO meta_info(key, value) VALUES ('k', 'v')")
            raise RuntimeError("boom")
    assert store.scalar(db, "SELECT COUNT(*) FROM audit_log") == before
    assert store.scalar(db, "SELECT value FROM meta_info WHERE key='k'") is None
    assert not db.conn.in_transaction


def test_log_chains_rows(db, admin):
    _history(db, admin)
    rows = db.execute("SELECT id, prev_hash, hash FROM audit_log ORDER BY id").fetchall()
    assert rows[0][1] == trail.GENESIS
    for (_, _, h), (_, prev, _) in zip(rows, rows[1:]):
        assert prev == h
    assert len({h for _, _, h in rows}) == len(rows)


def test_verify_trail_ok_on_normal_history(db, admin):
    _history(db, admin)
    n = store.scalar(db, "SELECT COUNT(*) FROM audit_log")
    ok, checked, msg = trail.verify_trail(db)
    assert ok, msg
    assert checked == n == 8  # first admin + 2 users + 5 notes
    assert "intact" in msg


def test_verify_trail_empty_db_is_ok(db):
    ok, checked, _ = trail.verify_trail(db)
    assert ok and checked == 0


def _drop_triggers(path):
    c = raw(path)
    c.execute("DROP TRIGGER audit_log_no_update")
    c.execute("DROP TRIGGER audit_log_no_delete")
    return c


def test_verify_trail_names_changed_row(db, db_path, admin):
    _history(db, admin)
    c = _drop_triggers(db_path)
    c.execute("UPDATE audit_log SET payload = ? WHERE id = 5", ['{"text":"forged"}'])
    c.close()
    ok, checked, msg = trail.verify_trail(db)
    assert not ok
    assert checked == 4  # rows 1..4 are fine
    assert "audit row 5 " in msg and "changed" in msg


def test_verify_trail_names_changed_actor_of_first_row(db, db_path, admin):
    _history(db, admin)
    c = _drop_triggers(db_path)
    c.execute("UPDATE audit_log SET actor = 'mallory' WHERE id = 1")
    c.close()
    ok, checked, msg = trail.verify_trail(db)
    assert not ok and checked == 0
    assert "audit row 1 " in msg


def test_verify_trail_detects_rewritten_hash(db, db_path, admin):
    """Recomputing a changed row's own hash does not help: the next row no longer follows it."""
    _history(db, admin)
    c = _drop_triggers(db_path)
    rid, at, actor, action, dsid, idx, _, prev = c.execute(
        "SELECT id, at, actor, action, dataset_id, idx, payload, prev_hash FROM audit_log WHERE id=3"
    ).fetchone()
    payload = '{"text":"forged"}'
    c.execute(
        "UPDATE audit_log SET payload=?, hash=? WHERE id=3",
        [payload, trail.write.row_hash(prev, at, actor, action, dsid, idx, payload)],
    )
    c.close()
    ok, checked, msg = trail.verify_trail(db)
    assert not ok and checked == 3
    assert "audit row 4 " in msg


def test_verify_trail_names_deleted_row(db, db_path, admin):
    _history(db, admin)
    c = _drop_triggers(db_path)
    c.execute("DELETE FROM audit_log WHERE id = 6")
    c.close()
    ok, checked, msg = trail.verify_trail(db)
    assert not ok
    assert checked == 5
    assert "audit row 6 is missing" in msg


def test_verify_trail_detects_deleted_first_row(db, db_path, admin):
    _history(db, admin)
    c = _drop_triggers(db_path)
    c.execute("DELETE FROM audit_log WHERE id = 1")
    c.close()
    ok, checked, msg = trail.verify_trail(db)
    assert not ok and checked == 0
    assert "audit row 2 " in msg


def test_backup_while_another_connection_writes(db, db_path, admin, tmp_path):
    _history(db, admin)
    stop = threading.Event()
    written = []
    errors = []

    def writer():
        w = store.connect(db_path)
        try:
            i = 0
            while not stop.is_set():
                with store.transaction(w):
                    trail.log(w, "writer", "tick", None, i)
                written.append(i)
                i += 1
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            w.conn.close()

    t = threading.Thread(target=writer)
    t.start()
    try:
        deadline = time.time() + 10
        while len(written) < 20 and time.time() < deadline:
            time.sleep(0.01)
        dest = tmp_path / "copy.db"
        store.backup(db, dest)
        time.sleep(0.05)
    finally:
        stop.set()
        t.join(timeout=30)
    assert not errors, errors
    assert len(written) >= 20

    copy = sqlite3.connect(str(dest))
    assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    copied = copy.execute(
        "SELECT id, at, actor, action, dataset_id, idx, payload, prev_hash, hash FROM audit_log ORDER BY id"
    ).fetchall()
    users_copy = copy.execute("SELECT name, role, password_hash FROM users ORDER BY name").fetchall()
    copy.close()
    source = db.execute(
        "SELECT id, at, actor, action, dataset_id, idx, payload, prev_hash, hash FROM audit_log ORDER BY id"
    ).fetchall()
    # the copy is a consistent snapshot: exactly a prefix of the source's trail, including the ticks so far
    assert len(copied) >= 8 + 20
    assert copied == source[: len(copied)]
    assert users_copy == db.execute("SELECT name, role, password_hash FROM users ORDER BY name").fetchall()
    # and it opens as a review database whose chain verifies
    reopened = store.connect(dest)
    ok, n, msg = trail.verify_trail(reopened)
    reopened.conn.close()
    assert ok, msg
    assert n == len(copied)


def test_schema_7_database_migrates_to_8_keeping_its_data(db_path, db, admin):
    _history(db, admin)
    db.conn.close()
    c = raw(db_path)  # make it a version-7 file: no sessions, no queue_state
    c.execute("DROP TABLE sessions")
    c.execute("DROP TABLE queue_state")
    c.execute("UPDATE meta_info SET value='7' WHERE key='schema_version'")
    n_users, n_log = (c.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("users", "audit_log"))
    c.close()
    db = store.connect(db_path)
    try:
        assert (
            store.scalar(db, "SELECT value FROM meta_info WHERE key='schema_version'")
            == str(store.SCHEMA_VERSION)
            == "8"
        )
        assert db["sessions"].exists() and db["queue_state"].exists()
        assert "sessions_user" in {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert store.scalar(db, "SELECT COUNT(*) FROM users") == n_users
        assert store.scalar(db, "SELECT COUNT(*) FROM audit_log") == n_log
        bob = auth.sign_in(db, "bob", "password-bob")  # the old accounts sign in and get a session
        token = auth.start_session(db, bob)
        assert auth.resume_session(db, token) == bob
        auth.save_queue_state(db, bob, 1, {"skipped": [3]})
        assert auth.load_queue_state(db, bob, 1)["skipped"] == [3]
        store.connect(db_path).conn.close()  # a second connect finds it current
        ok, _, msg = trail.verify_trail(db)
        assert ok, msg
    finally:
        db.conn.close()
