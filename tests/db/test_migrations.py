"""store.migrate: named migrations (store.MIGRATIONS) recorded in the ``migrations`` table.

Old databases are made by hand from a current one: what each schema version added (from the project's
history, not from store.MIGRATIONS) is dropped again and meta_info says the old version. They get exactly
the steps they lack; a current database is not written to; a failing step leaves the file as it was."""

from __future__ import annotations

import sqlite3
import threading

import pytest
import sqlite_utils

from review import auth, demo, store, trail
from review.errors import StorageError
from tests.helpers import PASSWORD, copy_db, raw

# schema version -> (tables, indexes, columns of scores) it added
ADDED = {
    2: (["annotator_stats"], ["annotations_annotator"], ["consensus_label", "agreement", "n_annotators"]),
    3: (["sources", "token_issues"], ["token_issues_swap"], []),
    4: (
        ["judgments", "spot_checks"],
        [],
        ["judge_verdict", "judge_label", "judge_reason", "fused_action", "fused_trust"],
    ),
    5: (["run_aggregates"], ["scores_judge"], []),
    6: (["row_signals", "self_checks"], ["self_checks_dataset"], []),
    7: (["gold"], ["scores_activelab"], ["activelab"]),
    8: (["sessions", "queue_state"], ["sessions_user"], []),
}
# what the named steps after schema 8 added besides audit_mac and sign_in_throttle: tables, columns of reviews,
# indexes of older tables, columns of states
AFTER_8 = (
    [
        "items_fts",
        "search_index",
        "bulk_actions",
        "bulk_rows",
        "taxonomy_events",
        "guidelines",
        "versions",
        "row_findings",
        "dup_sets",
        "row_neighbours",
        "leakage_checks",
        "leakage_pairs",
    ],
    ["bulk_id", "blind_decision", "blind_label"],
    ["items_given", "scores_predicted", "scores_action_rank"],
    ["excluded", "ambiguous"],
)
NAMES = [m.name for m in store.MIGRATIONS]
DATA = ("users", "audit_log", "datasets", "items", "runs", "scores")


def as_version(path, version: int, throttle: bool = False) -> None:
    """Make the current database at ``path`` look as the code of schema ``version`` left it: no record of
    named migrations, no sign_in_throttle (``throttle``: keep it), nothing a later version added."""
    c = raw(path)
    c.execute("DROP TABLE migrations")
    if not throttle:
        c.execute("DROP TABLE sign_in_throttle")
    for name in AFTER_8[2]:
        c.execute(f"DROP INDEX {name}")
    for name in AFTER_8[0]:
        c.execute(f"DROP TABLE {name}")  # its indexes go with it
    for name in AFTER_8[1]:
        c.execute(f"ALTER TABLE reviews DROP COLUMN {name}")
    for name in AFTER_8[3]:
        c.execute(f"ALTER TABLE states DROP COLUMN {name}")
    for v in range(8, version, -1):
        tables, indexes, columns = ADDED[v]
        for name in indexes:
            c.execute(f"DROP INDEX {name}")
        for name in tables:
            c.execute(f"DROP TABLE {name}")
        for name in columns:
            c.execute(f"ALTER TABLE scores DROP COLUMN {name}")
    c.execute("UPDATE meta_info SET value=? WHERE key='schema_version'", [str(version)])
    c.close()


def shape(conn: sqlite3.Connection) -> dict:
    """Every table's columns (and whether it has a rowid), every index's and trigger's SQL."""
    out = {}
    for kind, name, sql in conn.execute(
        "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name"
    ).fetchall():
        if kind == "table":
            cols = [tuple(r[1:]) for r in conn.execute(f"PRAGMA table_info({name})")]
            out[name] = (cols, "WITHOUT ROWID" in sql)
        else:
            out[name] = sql
    return out


def record(db) -> list[tuple[str, str]]:
    return [tuple(r) for r in db.execute("SELECT name, via FROM migrations ORDER BY rowid").fetchall()]


def counts(conn) -> dict[str, int]:
    return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in DATA}


def version_of(conn) -> str:
    return conn.execute("SELECT value FROM meta_info WHERE key='schema_version'").fetchone()[0]


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A current database with a history: users, audit rows, the demo dataset and its audit (scores)."""
    path = tmp_path_factory.mktemp("migrations") / "template.db"
    db = store.connect(path)
    admin = auth.create_user(db, "alice", "admin", PASSWORD, None)
    lead = auth.create_user(db, "lena", "lead", PASSWORD, admin)
    demo.load_demo(db, lead)
    db.conn.close()
    return path


@pytest.fixture(scope="module")
def current_shape(template):
    c = raw(template)
    try:
        return shape(c)
    finally:
        c.close()


# ----------------------------------------------------------------------------- the list and a new database


def test_the_steps_are_named_in_order_and_numbered_up_to_schema_version():
    assert NAMES == sorted(NAMES) and len(set(NAMES)) == len(NAMES)
    assert all(n[:4].isdigit() and n[4] == "_" for n in NAMES)
    numbered = [m.version for m in store.MIGRATIONS if m.version is not None]
    assert numbered == list(range(1, store.SCHEMA_VERSION + 1))
    assert all(m.version is None for m in store.MIGRATIONS[len(numbered) :])  # named only, after them


def test_the_steps_from_nothing_make_the_full_schema(tmp_path, current_shape):
    """SCHEMA and MIGRATIONS agree: every table, index and trigger of SCHEMA comes with some step."""
    steps = sqlite_utils.Database(sqlite3.connect(str(tmp_path / "steps.db"), isolation_level=None))
    for m in store.MIGRATIONS:
        m.apply(steps)
    for m in store.MIGRATIONS:  # and again: nothing changes
        m.apply(steps)
    expected = dict(current_shape)
    del expected["migrations"]  # migrate's own bookkeeping
    assert shape(steps.conn) == expected
    assert len(store._statements(store.SCHEMA)) == len(store.SCHEMA_OBJECTS)  # every statement a named object
    steps.conn.close()


def test_a_new_database_records_every_step_as_part_of_its_schema(db, db_path, current_shape):
    assert record(db) == [(n, "schema") for n in NAMES]
    assert version_of(db.conn) == str(store.SCHEMA_VERSION) == "8"
    assert store.pending_migrations(db) == [] and store.migrate(db) == []
    assert shape(db.conn) == current_shape
    assert db["sign_in_throttle"].exists()  # the schema's, before any sign-in
    again = store.connect(db_path)
    try:
        assert again.conn.total_changes == 0  # a current database: connecting writes nothing
    finally:
        again.conn.close()


# ----------------------------------------------------------------------------- old databases


@pytest.mark.parametrize("version", range(1, 9))
def test_an_old_database_gets_exactly_the_steps_it_lacks(tmp_path, template, current_shape, version):
    path = copy_db(template, tmp_path / "old.db")
    as_version(path, version)
    c = raw(path)
    before = counts(c)
    c.close()
    db = store.connect(path)
    try:
        expected = [
            (m.name, f"schema_version {version}" if m.version is not None and m.version <= version else "applied")
            for m in store.MIGRATIONS
        ]
        assert record(db) == expected
        assert [n for n, via in expected if via == "applied"] == NAMES[version:]
        assert shape(db.conn) == current_shape
        assert version_of(db.conn) == "8"
        assert counts(db.conn) == before  # the data kept
        if version < 7:
            assert store.scalar(db, "SELECT COUNT(*) FROM scores WHERE activelab IS NOT NULL") == 0
        ok, _, msg = trail.verify_trail(db)
        assert ok, msg
        # the old accounts sign in (the throttle's table is there) and get a session
        lena = auth.sign_in(db, "lena", PASSWORD, source="198.51.100.7")
        assert auth.resume_session(db, auth.start_session(db, lena)) == lena
        # a second connect applies nothing, and writes nothing
        assert store.pending_migrations(db) == [] and store.migrate(db) == []
        at = db.execute("SELECT name, applied_at FROM migrations ORDER BY rowid").fetchall()
        again = store.connect(path)
        assert again.conn.total_changes == 0
        assert again.execute("SELECT name, applied_at FROM migrations ORDER BY rowid").fetchall() == at
        again.conn.close()
    finally:
        db.conn.close()


def test_a_version_8_database_without_seals_or_throttle_gets_both(tmp_path):
    """As code at schema 8 left a database before its first audit row: no audit_mac, no sign_in_throttle."""
    path = tmp_path / "empty8.db"
    store.connect(path).conn.close()
    as_version(path, 8)
    c = raw(path)
    c.execute("DROP TABLE audit_mac")
    c.close()
    db = store.connect(path)
    try:
        assert [n for n, via in record(db) if via == "applied"] == NAMES[8:]
        assert db["audit_mac"].exists() and db["sign_in_throttle"].exists()
        admin = auth.create_user(db, "alice", "admin", PASSWORD, None)
        assert auth.sign_in(db, "alice", PASSWORD) == admin
        assert store.scalar(db, "SELECT COUNT(*) FROM audit_mac") >= 1  # sealed from the first row
        ok, _, msg = trail.verify_trail(db)
        assert ok, msg
    finally:
        db.conn.close()


def test_a_database_set_back_to_an_older_version_gets_its_numbered_steps_again(tmp_path, template, current_shape):
    """The schema version decides for the numbered steps, whatever the record says (the older tests'
    way of making an old database: drop a table, set the version)."""
    path = copy_db(template, tmp_path / "back.db")
    c = raw(path)
    c.execute("DROP TABLE queue_state")
    c.execute("UPDATE meta_info SET value='7' WHERE key='schema_version'")
    c.close()
    db = store.connect(path)
    try:
        assert shape(db.conn) == current_shape
        via = dict(record(db))
        assert via["0008_sessions_queue_state"] == "applied" and via["0007_activelab_gold"] == "schema"
    finally:
        db.conn.close()


# ----------------------------------------------------------------------------- failures, races, read-only


def test_a_failing_step_leaves_the_database_as_it_was(tmp_path, template, monkeypatch):
    path = copy_db(template, tmp_path / "old.db")
    as_version(path, 7)
    c = raw(path)
    before = (shape(c), counts(c), version_of(c))
    c.close()
    ran = []

    def broken(db):
        ran.append(True)
        db.execute("ALTER TABLE users ADD COLUMN nickname TEXT")
        db.execute("CREATE TABLE leftovers (x)")
        db.execute("INSERT INTO leftovers VALUES (1)")
        raise sqlite3.OperationalError("this step fails on purpose")

    monkeypatch.setattr(store, "MIGRATIONS", [*store.MIGRATIONS, store.Migration("0099_broken", broken)])
    with pytest.raises(sqlite3.OperationalError, match="on purpose"):
        store.connect(path)
    assert ran
    c = raw(path)
    try:  # nothing of the run stays: not the steps before the broken one, not their record, not the version
        assert (shape(c), counts(c), version_of(c)) == before
        assert "migrations" not in before[0] and "sessions" not in before[0]
    finally:
        c.close()
    monkeypatch.undo()
    db = store.connect(path)  # fixed: the next connect migrates
    try:
        assert store.pending_migrations(db) == [] and "nickname" not in db["users"].columns_dict
    finally:
        db.conn.close()


def test_concurrent_connects_migrate_once(tmp_path, template, monkeypatch):
    path = copy_db(template, tmp_path / "old.db")
    as_version(path, 5)
    real = store.migrate
    results, errors = [], []
    monkeypatch.setattr(store, "migrate", lambda db: results.append(real(db)) or results[-1])
    barrier = threading.Barrier(6)

    def connect():
        try:
            barrier.wait(timeout=60)
            store.connect(path).conn.close()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=connect) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert sorted(results, key=len) == [[]] * 5 + [NAMES]  # one of them migrated, the others found it done
    c = raw(path)
    try:
        assert [n for n, via in c.execute("SELECT name, via FROM migrations") if via == "applied"] == NAMES[5:]
    finally:
        c.close()


def _read_only(monkeypatch):
    real = sqlite3.connect
    monkeypatch.setattr(store.sqlite3, "connect", lambda p, *a, **k: real(f"file:{p}?mode=ro", *a, uri=True, **k))


def test_a_read_only_version_8_database_opens_as_before(tmp_path, template, monkeypatch):
    """Read-only, a database at schema 8 still opens and reads (its named steps wait for a writable
    connection); one that lacks a numbered step cannot be migrated and says so, as before."""
    path = copy_db(template, tmp_path / "ro.db")
    as_version(path, 8)
    old7 = copy_db(template, tmp_path / "ro7.db")
    as_version(old7, 7)
    _read_only(monkeypatch)
    db = store.connect(path)
    try:
        assert store.scalar(db, "SELECT COUNT(*) FROM users") == 2
        assert store.pending_migrations(db) == NAMES and not db["migrations"].exists()
        ok, _, msg = trail.verify_trail(db)
        assert ok, msg
    finally:
        db.conn.close()
    with pytest.raises(StorageError, match=r"ro7\.db is read-only"):
        store.connect(old7)
    monkeypatch.undo()
    db = store.connect(path)
    try:
        assert store.pending_migrations(db) == [] and [n for n, v in record(db) if v == "applied"] == NAMES[8:]
    finally:
        db.conn.close()
