"""The audit trail's seals, anchor and pin (review.trail.key, trail.verify_trail): an edit recomputed
down the chain, the newest rows deleted, the seals stripped, a missing key, an old database, copies;
and failed sign-ins kept from flooding the trail and its Who filter (review.trail.read).

Each test has its own key folder (REVIEW_TRAIL_DIR); tampering goes through a plain sqlite3
connection, as someone holding the file would."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from review import auth, cli, store, trail
from review.errors import AuthError
from review.trail import key as trail_key
from review.trail import read as trail_read
from tests.helpers import PASSWORD, ROOT, copy_db, raw

APP = ROOT / "app.py"
TRAIL = "pages/6_Audit_trail.py"


@pytest.fixture(autouse=True)
def keys(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "trail-keys"
    monkeypatch.setenv("REVIEW_TRAIL_DIR", str(d))
    monkeypatch.delenv("REVIEW_TRAIL_KEY", raising=False)
    return d


def _history(db, admin, n: int = 8) -> None:
    auth.create_user(db, "bob", "annotator", "password-bob", admin)
    for i in range(n):
        trail.log(db, admin.name, "note", None, i, text=f"entry {i}")


def _tamper(path):
    c = raw(path)
    for t in ("audit_log_no_update", "audit_log_no_delete", "audit_mac_no_update", "audit_mac_no_delete"):
        c.execute(f"DROP TRIGGER IF EXISTS {t}")
    return c


def _recompute_from(c, first: int, payload_of=None) -> None:
    """Rewrite rows from ``first`` on (their payload via ``payload_of``) and recompute every hash after."""
    rows = c.execute(
        "SELECT id, at, actor, action, dataset_id, idx, payload, prev_hash FROM audit_log WHERE id >= ? ORDER BY id",
        [first],
    ).fetchall()
    prev = rows[0][7]
    for rid, at, actor, action, dsid, idx, payload, _ in rows:
        if payload_of:
            payload = payload_of(rid, payload)
        h = trail.write.row_hash(prev, at, actor, action, dsid, idx, payload)
        c.execute("UPDATE audit_log SET payload=?, prev_hash=?, hash=? WHERE id=?", [payload, prev, h, rid])
        prev = h


def _n(db) -> int:
    return store.scalar(db, "SELECT COUNT(*) FROM audit_log")


# ----------------------------------------------------------------------------- the two edits


def test_a_normal_trail_verifies_with_the_same_message(db, admin, keys):
    _history(db, admin)
    ok, n, msg = trail.verify_trail(db)
    assert ok and n == _n(db) == 10
    assert msg == "audit trail intact: 10 rows, hash chain verified"
    key = keys / "trail.key"
    assert key.is_file() and (key.stat().st_mode & 0o777) == 0o600
    assert (keys.stat().st_mode & 0o777) == 0o700
    assert store.scalar(db, "SELECT COUNT(*) FROM audit_mac") == 10
    blob = b"".join(p.read_bytes() for p in db_files(db))
    assert json.loads(key.read_text())["key"].encode() not in blob  # the key is not in the database


def db_files(db):
    path = Path(trail_key.db_file(db))
    return [p for p in (path, Path(f"{path}-wal")) if p.exists()]


@pytest.mark.parametrize("deleted", [1, 3])
def test_deleting_the_newest_rows_is_reported(db, db_path, admin, deleted):
    _history(db, admin)
    last = _n(db)
    c = _tamper(db_path)
    c.execute("DELETE FROM audit_log WHERE id > ?", [last - deleted])
    c.execute("DELETE FROM audit_mac WHERE id > ?", [last - deleted])
    c.close()
    ok, n, msg = trail.verify_trail(db)
    assert not ok, msg
    gone = f"row {last} was" if deleted == 1 else f"rows {last - deleted + 1}–{last} were"
    assert msg == f"the audit trail ends at row {last - deleted} but was last written at row {last}: {gone} deleted"
    assert n == last - deleted


def test_an_edit_recomputed_down_the_chain_is_reported_at_its_row(db, db_path, admin):
    _history(db, admin)
    c = _tamper(db_path)
    _recompute_from(c, 5, lambda rid, p: '{"text":"forged"}' if rid == 5 else p)
    c.close()
    ok, n, msg = trail.verify_trail(db)
    assert not ok and n == 4
    assert msg.startswith("audit row 5 (note by alice at ") and "does not match its seal" in msg


def test_the_whole_chain_recomputed_from_row_1_is_reported(db, db_path, admin):
    _history(db, admin)
    c = _tamper(db_path)
    _recompute_from(c, 1, lambda rid, p: p.replace("entry 3", "entry three"))
    c.close()
    ok, n, msg = trail.verify_trail(db)
    assert not ok and n == 5 and msg.startswith("audit row 6 (note by alice") and "does not match its seal" in msg


def test_stripping_the_seals_and_recomputing_is_reported(db, db_path, admin):
    """Whoever knows of the seals deletes them, the anchor and the key record too: the pin outside
    the database still knows the trail was keyed."""
    _history(db, admin)
    c = _tamper(db_path)
    c.execute("DROP TABLE audit_mac")
    c.execute("DELETE FROM meta_info WHERE key LIKE 'trail_%'")
    _recompute_from(c, 4, lambda rid, p: '{"text":"forged"}' if rid == 4 else p)
    c.close()
    ok, _, msg = trail.verify_trail(db)
    assert not ok
    assert "was keyed from row 1" in msg and "it is not keyed" in msg and "seals were removed" in msg
    # and rewriting the first row too, to look like another trail, is reported as well
    c = _tamper(db_path)
    _recompute_from(c, 1, lambda rid, p: '{"first_admin":true}' if rid == 1 else p)
    c.close()
    ok, _, msg = trail.verify_trail(db)
    assert not ok and "not the audit trail pinned for this database" in msg


def test_a_forged_anchor_or_a_stolen_seal_is_reported(db, db_path, admin):
    _history(db, admin)
    c = _tamper(db_path)
    anchor = json.loads(c.execute("SELECT value FROM meta_info WHERE key='trail_anchor'").fetchone()[0])
    c.execute("DELETE FROM audit_log WHERE id = ?", [anchor["id"]])
    prev = c.execute("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    c.execute(
        "UPDATE meta_info SET value=? WHERE key='trail_anchor'",
        [json.dumps({"id": prev[0], "hash": prev[1], "mac": anchor["mac"]})],
    )
    c.close()
    ok, _, msg = trail.verify_trail(db)
    assert not ok and msg == "the audit trail's anchor does not match its seal: it was changed"


def test_existing_chain_messages_come_first(db, db_path, admin):
    """A row edited without recomputing keeps the chain's own message (the seal check comes after)."""
    _history(db, admin)
    c = _tamper(db_path)
    c.execute("UPDATE audit_log SET actor='mallory' WHERE id=3")
    c.close()
    ok, n, msg = trail.verify_trail(db)
    assert (
        not ok
        and n == 2
        and msg.startswith("audit row 3 (note by mallory")
        and "was changed after it was written" in msg
    )


# ----------------------------------------------------------------------------- keys, old databases, copies


def _as_old_database(db_path, keys: Path) -> None:
    """What a database written before seals looks like: no audit_mac, no key record, no pin."""
    c = _tamper(db_path)
    c.execute("DROP TABLE audit_mac")
    c.execute("DELETE FROM meta_info WHERE key LIKE 'trail_%'")
    c.close()
    for p in (keys / "pins").glob("*.json"):
        p.unlink()


def test_an_old_database_verifies_as_before_then_is_keyed_from_its_next_row(db, db_path, admin, keys):
    _history(db, admin)
    _as_old_database(db_path, keys)
    ok, n, msg = trail.verify_trail(db)
    assert ok and msg == "audit trail intact: 10 rows, hash chain verified"
    trail.log(db, admin.name, "note", text="first sealed row")
    ok, n, msg = trail.verify_trail(db)
    assert ok and n == 11, msg
    assert msg == (
        "audit trail intact: 11 rows, hash chain verified; keyed (HMAC) from row 11; rows 1–10 were "
        "written before the trail key existed and are checked by the hash chain only"
    )
    # the unkeyed part is still a hash chain: editing it and recomputing breaks the first seal
    c = _tamper(db_path)
    _recompute_from(c, 2, lambda rid, p: '{"text":"forged"}' if rid == 2 else p)
    c.close()
    ok, n, msg = trail.verify_trail(db)
    assert not ok and msg.startswith("audit row 11 ") and "does not match its seal" in msg


def test_a_missing_key_is_reported_and_not_made_anew(db, admin, keys):
    _history(db, admin)
    key = keys / "trail.key"
    saved = key.read_bytes()
    key.unlink()
    ok, n, msg = trail.verify_trail(db)
    assert not ok and n == 0
    assert "keyed from row 1 with the key" in msg and "which is not here" in msg and "--new-key" in msg
    trail.log(db, admin.name, "note", text="written while the key is gone")
    assert not key.exists()  # not silently re-created
    assert store.scalar(db, "SELECT COUNT(*) FROM audit_mac") == 10  # that row is not sealed
    key.write_bytes(saved)
    os.chmod(key, 0o600)
    ok, _, msg = trail.verify_trail(db)
    assert not ok and msg.startswith("audit row 11 ") and "has no seal" in msg


def test_another_database_making_a_new_key_does_not_hide_the_lost_one(db, admin, keys, tmp_path):
    _history(db, admin)
    (keys / "trail.key").unlink()
    other = store.connect(tmp_path / "other.db")
    auth.create_user(other, "root", "admin", PASSWORD, None)  # makes a new user key
    other.conn.close()
    ok, _, msg = trail.verify_trail(db)
    assert not ok and "which is not here" in msg and "found " in msg


def test_new_key_starts_a_recorded_keyed_chain(db, db_path, admin, keys, capsys):
    _history(db, admin)
    (keys / "trail.key").unlink()
    assert cli.main(["verify-trail", "--db", str(db_path)]) == 1
    assert "which is not here" in capsys.readouterr().out
    assert cli.main(["verify-trail", "--new-key", "--db", str(db_path)]) == 0
    out = capsys.readouterr().out
    assert "started a new keyed chain at audit row 11" in out and "rows 1–10 are checked by the hash chain only" in out
    assert "audit trail intact: 11 rows" in out and "keyed (HMAC) from row 11" in out
    row = db.execute("SELECT actor, action, payload FROM audit_log WHERE id=11").fetchone()
    assert row[:2] == ("cli", "trail_key_new") and '"previous_anchor_row":10' in row[2]
    trail.log(db, admin.name, "note", text="after")
    assert trail.verify_trail(db)[0]


def test_a_backup_verifies_here_and_elsewhere_with_its_key(db, admin, tmp_path, monkeypatch):
    _history(db, admin)
    copy = tmp_path / "copy.db"
    store.backup(db, copy)
    c = store.connect(copy)
    assert trail.verify_trail(c)[0]  # same machine: the user's key
    trail.log(c, admin.name, "note", text="written in the copy")
    assert trail.verify_trail(c)[0]
    monkeypatch.setenv("REVIEW_TRAIL_DIR", str(tmp_path / "another-machine"))
    ok, _, msg = trail.verify_trail(c)
    assert not ok and "which is not here" in msg  # taken away without its key
    monkeypatch.setenv("REVIEW_TRAIL_DIR", str(tmp_path / "trail-keys"))
    elsewhere = tmp_path / "elsewhere.db"
    copy_db(copy, elsewhere)
    assert trail_key.copy_key(c, elsewhere) == Path(str(elsewhere.resolve()) + ".trail-key")
    monkeypatch.setenv("REVIEW_TRAIL_DIR", str(tmp_path / "another-machine"))
    e = store.connect(elsewhere)
    assert trail.verify_trail(e)[0], trail.verify_trail(e)[2]  # with the key carried beside it
    c.conn.close()
    e.conn.close()


def test_the_key_from_the_environment(db_path, monkeypatch, keys):
    monkeypatch.setenv("REVIEW_TRAIL_KEY", "a secret of more than sixteen characters")
    db = store.connect(db_path)
    admin = auth.create_user(db, "alice", "admin", PASSWORD, None)
    _history(db, admin)
    assert not (keys / "trail.key").exists()
    assert trail.verify_trail(db)[0]
    monkeypatch.setenv("REVIEW_TRAIL_KEY", "another secret of more than sixteen")
    ok, _, msg = trail.verify_trail(db)
    assert not ok and "which is not here" in msg
    db.conn.close()


def test_a_rolled_back_write_and_concurrent_writers_leave_a_trail_that_verifies(db, db_path, admin):
    _history(db, admin)
    with pytest.raises(RuntimeError):
        with store.transaction(db):
            trail.log(db, admin.name, "note", text="never")
            raise RuntimeError("boom")
    assert trail.verify_trail(db)[0]
    errors = []

    def writer(k: int) -> None:
        w = store.connect(db_path)
        try:
            for i in range(15):
                trail.log(w, f"writer{k}", "tick", None, i)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            w.conn.close()

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    ok, n, msg = trail.verify_trail(db)
    assert ok and n == 10 + 90, msg


# ----------------------------------------------------------------------------- failed sign-ins in the trail


def _flood(db, n: int, clock_at: float, monkeypatch, sources=lambda i: "203.0.113.66") -> None:
    monkeypatch.setattr(auth, "_now", lambda: clock_at)
    for i in range(n):
        with pytest.raises(AuthError):
            auth.sign_in(db, f"visitor{i:03d}", "guess-password", source=sources(i))


def test_510_failed_sign_ins_do_not_push_the_users_out_of_the_who_filter(db, admin, lead, annotator, monkeypatch):
    trail.log(db, "cli", "note", text="the review command acted")
    _flood(db, 510, 1_900_000_000.0, monkeypatch)
    opts = trail_read.filter_options(db)
    assert opts["actors"] == ["alice", "anna", "lena", "cli"]
    written = store.scalar(db, "SELECT COUNT(*) FROM audit_log WHERE action='sign_in_failed'")
    assert opts["failed_sign_ins"] == written == auth.TRAIL_PER_SOURCE  # one minute, one source
    shown = trail_read.page(db, failed_sign_ins=True, limit=1000)
    assert len(shown) == written and {r["action"] for r in shown} == {"sign_in_failed"}
    assert not trail_read.page(db, actor="visitor400")  # left out: counted, not written
    assert {r["actor"] for r in trail_read.page(db, actor="alice")} == {"alice"}
    # nothing is lost: the next row written says how many were left out
    monkeypatch.setattr(auth, "_now", lambda: 1_900_000_000.0 + 61)
    assert auth.sign_in(db, "alice", PASSWORD, source="198.51.100.1") == admin
    payload = json.loads(
        store.scalar(db, "SELECT payload FROM audit_log WHERE action='sign_in' ORDER BY id DESC LIMIT 1")
    )
    assert payload["failed_sign_ins_not_logged"] == 510 - written
    assert trail.verify_trail(db)[0]


def test_failed_sign_ins_from_many_sources_are_capped_per_minute(db, admin, monkeypatch):
    _flood(db, 200, 1_900_000_000.0, monkeypatch, sources=lambda i: f"10.0.{i // 4}.{i % 4}")
    assert store.scalar(db, "SELECT COUNT(*) FROM audit_log WHERE action='sign_in_failed'") == auth.TRAIL_PER_MINUTE
    _flood(db, 3, 1_900_000_000.0 + 60, monkeypatch)  # the next minute
    rows = [
        json.loads(r[0]) for r in db.execute("SELECT payload FROM audit_log WHERE action='sign_in_failed' ORDER BY id")
    ]
    assert len(rows) == auth.TRAIL_PER_MINUTE + 3
    assert rows[auth.TRAIL_PER_MINUTE]["skipped"] == 200 - auth.TRAIL_PER_MINUTE
    assert sum(r.get("skipped", 0) for r in rows) + len(rows) == 203


def test_the_audit_trail_page_lists_users_and_failed_sign_ins_apart(db, db_path, admin, lead, monkeypatch):
    _flood(db, 40, 1_900_000_000.0, monkeypatch, sources=lambda i: f"10.1.{i}.1")
    monkeypatch.setenv("REVIEW_DB", str(db_path))
    import time

    at = AppTest.from_file(str(APP), default_timeout=60)
    at.session_state["user"] = (lead.name, lead.role, time.time())
    at.switch_page(TRAIL)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    who = at.selectbox(key="trail_actor")
    assert who.options == ["(all)", "alice", "lena", trail_read.FAILED_SIGN_INS]
    who.set_value(trail_read.FAILED_SIGN_INS).run()
    rows = at.dataframe[0].value
    assert len(rows) == auth.TRAIL_PER_MINUTE and set(rows["action"]) == {"sign_in_failed"}
    at.selectbox(key="trail_actor").set_value("alice").run()
    assert set(at.dataframe[0].value["actor"]) == {"alice"}


def test_log_many_writes_the_chain_and_seals_log_would(db, db_path, admin, tmp_path):
    """A bulk action's rows in one call: the same rows, chain and seals as trail.log row by row (the key
    looked up once); the trail verifies, and an edit of one of them is still found at its row."""
    entries = [("note", None, i, {"text": f"entry {i}"}) for i in range(50)]
    before = _n(db)
    ids = trail.log_many(db, admin.name, entries)
    assert ids == list(range(before + 1, before + 51))
    got = db.execute("SELECT action, idx, payload FROM audit_log WHERE id > ? ORDER BY id", [before]).fetchall()
    assert got == [("note", i, json.dumps({"text": f"entry {i}"}, separators=(",", ":"))) for i in range(50)]
    assert store.scalar(db, "SELECT COUNT(*) FROM audit_mac WHERE id > ?", [before]) == 50
    ok, n, msg = trail.verify_trail(db)
    assert ok and n == _n(db), msg
    assert trail.log_many(db, admin.name, []) == []
    c = _tamper(db_path)
    _recompute_from(c, before + 20, lambda rid, p: '{"text":"forged"}' if rid == before + 20 else p)
    c.close()
    ok, n, msg = trail.verify_trail(db)
    assert not ok and n == before + 19 and f"audit row {before + 20} " in msg


def test_log_many_on_a_new_trail_keys_it_from_its_first_row(tmp_path, monkeypatch):
    path = tmp_path / "fresh.db"
    db = store.connect(path)
    ids = trail.log_many(db, "script", [("note", None, i, {"n": i}) for i in range(5)])
    assert ids == [1, 2, 3, 4, 5]
    assert trail_key.read_meta(db)["keyed_from"] == 1
    assert store.scalar(db, "SELECT COUNT(*) FROM audit_mac") == 5
    ok, n, msg = trail.verify_trail(db)
    assert ok and n == 5, msg
    db.conn.close()
