"""SQLite schema, migrations, transactions and the audit trail.

One file, ``review.db`` by default (``REVIEW_DB`` or ``--db`` to change). Every
write happens inside :func:`transaction` (``BEGIN IMMEDIATE``) together with its
audit row, so a refusal or a crash leaves nothing half-written.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils

SCHEMA_VERSION = 8  # 6: self_checks, row_signals; 7: scores.activelab, gold; 8: sessions, queue_state
DEFAULT_DB = "review.db"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta_info (key TEXT PRIMARY KEY, value TEXT);

CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('annotator', 'lead', 'admin')),
    password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 1,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until REAL NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS sessions (   -- review.auth: browser sign-ins that survive a reload (cookie)
    id INTEGER PRIMARY KEY,
    user TEXT NOT NULL REFERENCES users(name),
    token_hash TEXT NOT NULL UNIQUE, -- SHA-256 hex of the cookie's random token; the token itself is never stored
    created_at REAL NOT NULL,        -- Unix seconds
    expires_at REAL NOT NULL,        -- created_at + auth.SESSION_LIFETIME (not sliding)
    last_seen REAL NOT NULL,         -- idle limit auth.SESSION_IDLE; touched at most once a minute
    revoked_at REAL,                 -- NULL: live
    revoked_reason TEXT              -- sign_out | deactivated | idle
);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions(user, revoked_at);

CREATE TABLE IF NOT EXISTS queue_state (   -- the Review page's skipped rows and filters, per user and dataset
    user TEXT NOT NULL,
    dataset_id INTEGER NOT NULL,
    data TEXT NOT NULL,              -- JSON: {"skipped": [idx…], "back": idx|null, "filter": str, "order": str}
    updated_at TEXT NOT NULL,
    PRIMARY KEY (user, dataset_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS datasets (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    task TEXT NOT NULL,
    labels TEXT NOT NULL,            -- JSON list: the label set
    label_set_declared INTEGER NOT NULL DEFAULT 0,
    mapping TEXT NOT NULL,           -- JSON: how the upload's columns were mapped
    n_items INTEGER NOT NULL,
    source_name TEXT,
    source_sha256 TEXT,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS items (
    dataset_id INTEGER NOT NULL REFERENCES datasets(id),
    idx INTEGER NOT NULL,            -- 0-based row number in upload order
    key TEXT NOT NULL,               -- the id column's value, else str(idx)
    text TEXT,
    tokens TEXT,
    given_label TEXT,
    given_tags TEXT,
    meta TEXT,                       -- JSON of unmapped columns (never features)
    features TEXT,                   -- JSON of mapped tabular feature columns
    probs TEXT,                      -- JSON list: the user's own probabilities, if mapped
    PRIMARY KEY (dataset_id, idx)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS items_key ON items(dataset_id, key);

CREATE TABLE IF NOT EXISTS annotations (
    dataset_id INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    annotator TEXT NOT NULL,
    label TEXT,
    tags TEXT
);
CREATE INDEX IF NOT EXISTS annotations_item ON annotations(dataset_id, idx);

CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    dataset_id INTEGER NOT NULL REFERENCES datasets(id),
    kind TEXT NOT NULL,
    status TEXT NOT NULL,            -- running | done | failed
    params TEXT,
    versions TEXT,
    created_by TEXT,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    metrics TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS runs_dataset ON runs(dataset_id, id);

CREATE TABLE IF NOT EXISTS scores (
    run_id INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    quality REAL,
    predicted_label TEXT,
    confidence REAL,
    suggested_label TEXT,
    is_issue INTEGER NOT NULL,
    rank INTEGER NOT NULL,           -- 1 = most suspect
    trust REAL,
    action TEXT,                     -- relabel | needs review | keep
    reason TEXT,
    probs TEXT,                      -- JSON list, one probability per class
    consensus_label TEXT,            -- multi-annotator data: the consensus of the annotators
    agreement REAL,                  -- share of annotators agreeing with the consensus
    n_annotators INTEGER,
    judge_verdict TEXT,              -- the LLM judge: YES | NO | UNKNOWN (NULL: not judged)
    judge_label TEXT,                -- the label the judge names when it says NO
    judge_reason TEXT,
    fused_action TEXT,               -- action from flag + cleanlab + verdict (NULL: not judged)
    fused_trust REAL,
    activelab REAL,                  -- multi-annotator data: cleanlab ActiveLab score (lower: needs another label more)
    PRIMARY KEY (run_id, idx)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS scores_rank ON scores(run_id, rank);
CREATE INDEX IF NOT EXISTS scores_issue_rank ON scores(run_id, is_issue, rank);

CREATE TABLE IF NOT EXISTS annotator_stats (
    run_id INTEGER NOT NULL,
    annotator TEXT NOT NULL,
    quality REAL,
    agreement REAL,
    worst_class TEXT,
    n_labels INTEGER NOT NULL,
    PRIMARY KEY (run_id, annotator)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS annotations_annotator ON annotations(dataset_id, annotator, idx);

CREATE TABLE IF NOT EXISTS run_aggregates (   -- per-run aggregates written once at the end of a run, for pages
    run_id INTEGER PRIMARY KEY,
    data TEXT NOT NULL               -- JSON: given label counts, quality histogram, flagged confusion, length per class, bands
);
CREATE INDEX IF NOT EXISTS scores_judge ON scores(run_id, judge_verdict) WHERE judge_verdict IS NOT NULL;
CREATE INDEX IF NOT EXISTS scores_activelab ON scores(run_id, activelab, idx) WHERE activelab IS NOT NULL;

CREATE TABLE IF NOT EXISTS gold (   -- review.crowd.gold: trusted labels set by a lead; never an input of the consensus
    dataset_id INTEGER NOT NULL REFERENCES datasets(id),
    idx INTEGER NOT NULL,
    label TEXT NOT NULL,
    set_by TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (dataset_id, idx)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS judgments (   -- the judge's answers, cached by (dataset, row, prompt, model)
    dataset_id INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    prompt_hash TEXT NOT NULL,
    model TEXT NOT NULL,
    verdict TEXT NOT NULL,           -- YES | NO | UNKNOWN
    label TEXT,
    reason TEXT,
    answer TEXT,
    at TEXT NOT NULL,
    PRIMARY KEY (dataset_id, idx, prompt_hash, model)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS spot_checks (   -- unflagged rows put in front of reviewers to measure what flags miss
    dataset_id INTEGER NOT NULL,
    run_id INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    added_by TEXT NOT NULL,
    added_at TEXT NOT NULL,
    PRIMARY KEY (run_id, idx)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS sources (   -- NER: the uploaded file, for an export that keeps every other byte
    dataset_id INTEGER PRIMARY KEY REFERENCES datasets(id),
    content BLOB NOT NULL
);

CREATE TABLE IF NOT EXISTS token_issues (   -- NER: one row per flagged token of a run
    run_id INTEGER NOT NULL,
    idx INTEGER NOT NULL,            -- sentence
    token INTEGER NOT NULL,          -- 0-based position in the sentence
    text TEXT NOT NULL,
    given_tag TEXT NOT NULL,
    predicted_tag TEXT NOT NULL,
    confidence REAL,
    quality REAL,
    reason TEXT,
    PRIMARY KEY (run_id, idx, token)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS token_issues_swap ON token_issues(run_id, given_tag, predicted_tag, idx);

CREATE TABLE IF NOT EXISTS row_signals (   -- review.text.signals: the team's own embeddings and training loss, per item
    dataset_id INTEGER NOT NULL REFERENCES datasets(id),
    idx INTEGER NOT NULL,
    embedding BLOB,                  -- little-endian float32 vector
    loss REAL,
    PRIMARY KEY (dataset_id, idx)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS self_checks (   -- review.selfcheck: known errors injected into a copy, recall per kind
    id INTEGER PRIMARY KEY,
    dataset_id INTEGER NOT NULL REFERENCES datasets(id),
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    seed INTEGER NOT NULL,
    rate REAL NOT NULL,
    result TEXT NOT NULL             -- JSON: review.selfcheck.SelfCheck without its id
);
CREATE INDEX IF NOT EXISTS self_checks_dataset ON self_checks(dataset_id, id);

CREATE TABLE IF NOT EXISTS findings (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    first_row INTEGER,
    last_row INTEGER,
    n_rows INTEGER NOT NULL,
    message TEXT NOT NULL,
    rows TEXT NOT NULL,              -- JSON list of 0-based rows
    detail TEXT
);
CREATE INDEX IF NOT EXISTS findings_run ON findings(run_id, kind);

CREATE TABLE IF NOT EXISTS states (
    dataset_id INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    state TEXT NOT NULL,             -- open | kept | relabelled | unsure | approved | overridden
    version INTEGER NOT NULL,
    current_label TEXT,              -- the latest approved label (NULL: the given label)
    claimed_by TEXT,
    claimed_until REAL,
    updated_at TEXT,
    PRIMARY KEY (dataset_id, idx)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS states_state ON states(dataset_id, state);

CREATE TABLE IF NOT EXISTS reviews (
    id INTEGER PRIMARY KEY,
    dataset_id INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    token INTEGER,
    run_id INTEGER,
    decision TEXT NOT NULL,          -- keep | relabel | unsure
    new_label TEXT,
    note TEXT,
    reviewer TEXT NOT NULL,
    created_at TEXT NOT NULL,
    took_suggestion INTEGER,
    status TEXT NOT NULL,            -- pending | approved | rejected | overridden | superseded
    verified_by TEXT,
    verified_at TEXT,
    verify_note TEXT,
    final_label TEXT,
    version INTEGER NOT NULL         -- the item's state version this decision was made on
);
CREATE INDEX IF NOT EXISTS reviews_item ON reviews(dataset_id, idx, id);
CREATE INDEX IF NOT EXISTS reviews_status ON reviews(dataset_id, status, id);
CREATE INDEX IF NOT EXISTS reviews_reviewer ON reviews(dataset_id, reviewer, id);

CREATE TABLE IF NOT EXISTS audit_log (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    dataset_id INTEGER,
    idx INTEGER,
    payload TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_dataset ON audit_log(dataset_id, id);
CREATE INDEX IF NOT EXISTS audit_action ON audit_log(action, id);
CREATE INDEX IF NOT EXISTS audit_actor ON audit_log(actor, id);
CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
"""
MAC_STATEMENTS = (
    "CREATE TABLE IF NOT EXISTS audit_mac (   -- review.trail.key: HMAC of each audit row's hash, from the keyed row on\n"
    "    id INTEGER PRIMARY KEY,              -- = audit_log.id\n"
    "    mac TEXT NOT NULL\n)",
    "CREATE TRIGGER IF NOT EXISTS audit_mac_no_update BEFORE UPDATE ON audit_mac\n"
    "BEGIN SELECT RAISE(ABORT, 'audit_mac is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_mac_no_delete BEFORE DELETE ON audit_mac\n"
    "BEGIN SELECT RAISE(ABORT, 'audit_mac is append-only'); END",
)
MAC_SCHEMA = ";\n".join(MAC_STATEMENTS) + ";\n"
SCHEMA += MAC_SCHEMA  # audit_mac: each audit row's seal (HMAC), see review.trail.key


def now_iso() -> str:
    """UTC time as ISO 8601 with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def db_path(path: str | os.PathLike | None = None) -> str:
    """The database file: the argument, else ``REVIEW_DB``, else ``review.db``."""
    return str(path or os.environ.get("REVIEW_DB") or DEFAULT_DB)


def connect(
    path: str | os.PathLike | None = None, must_exist: bool = False, writable: bool = False
) -> sqlite_utils.Database:
    """Open (and create or migrate) the database. One connection per caller/thread.

    Autocommit mode: writes go through :func:`transaction`. WAL lets readers go on
    while one writer writes; the busy timeout makes writers queue instead of failing.
    ``writable``: refuse up front a database this process cannot write (a read-only file,
    -wal or -shm, or a read-only folder), for callers that write on every use (the app).
    A file that cannot be opened, is not a database, is damaged, or a disk that is full:
    :class:`~review.errors.StorageError` naming the file and the fix (:func:`storage_error`).
    """
    from review.errors import StorageError

    p = db_path(path)
    if must_exist and p != ":memory:" and not Path(p).is_file():
        from review.errors import NotFound

        raise NotFound(
            f"No database at {p}: check the path (--db or REVIEW_DB), or create one with `review demo` or `review ingest`."
        )
    if p != ":memory:":
        try:
            Path(p).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"Cannot create the folder {Path(p).parent.absolute()} for the database {_shown(p)} "
                f"({exc.strerror or exc}): create it, or let the user running the app write its parent "
                "folder, or choose another path (REVIEW_DB or --db)."
            ) from None
        problem = _write_problem(p) if writable else None
        if problem:
            raise StorageError(problem)
    conn = None
    try:
        conn = sqlite3.connect(p, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        db = sqlite_utils.Database(conn)
        db.review_path = p  # for the messages of storage_error
        migrate(db)
    except sqlite3.Error as exc:
        if conn is not None:
            conn.close()
        err = storage_error(exc, p, opening=True)
        if err is None:
            raise
        raise err from None
    return db


def _shown(path: str | os.PathLike | None) -> str:
    """The database file as a message names it: an absolute path."""
    if not path or str(path) == ":memory:":
        return "the in-memory database"
    return os.path.abspath(str(path))


def _path_of(db: sqlite_utils.Database) -> str | None:
    """The file behind ``db``: as :func:`connect` opened it, else as SQLite reports it."""
    p = getattr(db, "review_path", None)
    if p:
        return p
    try:
        for _, name, file in db.conn.execute("PRAGMA database_list"):
            if name == "main":
                return file or ":memory:"
    except sqlite3.Error:
        pass
    return None


def _write_problem(p: str) -> str | None:
    """Why this process cannot write the database ``p`` and its -wal and -shm files (None: it can).

    The permission bits as the operating system applies them to this process (os.access: root
    passes unless the file system is mounted read-only)."""
    shown = _shown(p)
    folder = os.path.dirname(shown)
    fix = (
        "let the user running the app write it (chmod u+w {f}, or chown it to that user; on a file system "
        "mounted read-only, copy it to a writable disk), or point REVIEW_DB / --db at a writable copy; then "
        "reload the page (or run the command again)."
    )
    if os.path.exists(p):
        if not os.access(p, os.R_OK):
            return f"{shown} cannot be read by the user running the app: " + fix.format(f=shown)
        if not os.access(p, os.W_OK):
            return f"{shown} is read-only: " + fix.format(f=shown)
    side = [p + "-wal", p + "-shm"]
    for f in side:
        if os.path.exists(f) and not os.access(f, os.W_OK):
            return f"{_shown(f)} (SQLite's companion file of {shown}) is read-only: " + fix.format(f=_shown(f))
    if not os.access(folder, os.W_OK | os.X_OK) and not all(os.path.exists(f) for f in side):
        name = os.path.basename(shown)
        what = (
            f"the folder {folder} holding {shown}"
            if os.path.exists(p)
            else f"the folder {folder}, where {shown} is to be created,"
        )
        return (
            f"{shown} cannot be written: {what} is read-only, and SQLite creates {name}-wal and {name}-shm "
            f"beside the database. Let the user running the app write the folder (chmod u+w {folder}, or chown "
            "it to that user), or point REVIEW_DB / --db at a writable place; then reload the page (or run the command again)."
        )
    return None


_CODES = (
    ("database or disk is full", 13),
    ("readonly database", 8),
    ("database is locked", 5),
    ("database table is locked", 6),
    ("file is not a database", 26),
    ("malformed", 11),
    ("disk i/o error", 10),
    ("unable to open database file", 14),
    ("access permission denied", 3),
)
_NOT_STORAGE = (
    sqlite3.IntegrityError,
    sqlite3.ProgrammingError,
    sqlite3.InterfaceError,
    sqlite3.NotSupportedError,
    sqlite3.DataError,
)


def storage_error(exc: BaseException, path: str | os.PathLike | None = None, opening: bool = False):
    """A sqlite3 error a person can fix -> :class:`~review.errors.StorageError` naming the database
    file and the fix: a full disk (SQLITE_FULL), an I/O error, a read-only file or folder
    (SQLITE_READONLY, SQLITE_PERM), a write lock held too long (SQLITE_BUSY, SQLITE_LOCKED), a file
    that is not a database (SQLITE_NOTADB) or is damaged (SQLITE_CORRUPT), a file that cannot be
    opened (SQLITE_CANTOPEN). None for any other error (a constraint, a bug in a query: those are
    not the user's to fix and stay as they are). ``opening``: while opening, not saving."""
    from review.errors import StorageError

    if not isinstance(exc, sqlite3.Error) or isinstance(exc, _NOT_STORAGE):
        return None
    text = str(exc)
    code = getattr(exc, "sqlite_errorcode", None)
    if not isinstance(code, int):
        code = next((c for words, c in _CODES if words in text.lower()), None)
    if code is None:
        return None
    primary, p = code & 0xFF, _shown(path)
    folder = os.path.dirname(p) if os.path.isabs(p) else "its folder"
    name = os.path.basename(p)
    again = (
        "then reload the page (or run the command again)."
        if opening
        else "then try again. Nothing was saved: the change was rolled back whole."
    )
    said = f"SQLite: {text}"
    if primary == 13:  # SQLITE_FULL
        return StorageError(f"The disk holding {p} is full ({said}): free space on it, {again}")
    if primary == 10:  # SQLITE_IOERR
        return StorageError(
            f"Reading or writing {p} failed ({said}): the disk holding it may be full, unplugged or "
            f"failing; check it (df -h {folder}), {again}"
        )
    if primary in (8, 3, 23):  # SQLITE_READONLY (its _DIRECTORY variant: the folder), SQLITE_PERM, SQLITE_AUTH
        if code == 1544 or (not opening and os.path.isabs(p) and not os.access(folder, os.W_OK | os.X_OK)):
            return StorageError(
                f"{p} cannot be written: the folder {folder} is read-only ({said}), and SQLite creates "
                f"{name}-wal and {name}-shm beside the database. Let the user running the app write "
                f"the folder (chmod u+w {folder}, or chown it to that user), {again}"
            )
        if code == 1032:  # SQLITE_READONLY_DBMOVED
            return StorageError(
                f"{p} was moved, renamed or deleted while the app had it open ({said}): put it back "
                f"(or point REVIEW_DB / --db at it), {again}"
            )
        return StorageError(
            f"{p} is read-only ({said}): let the user running the app write it (chmod u+w {p}, or chown "
            f"it to that user; the same for {name}-wal and {name}-shm beside it, and the folder {folder}), "
            f"or point REVIEW_DB / --db at a writable copy; {again}"
        )
    if primary in (5, 6):  # SQLITE_BUSY, SQLITE_LOCKED
        return StorageError(
            f"{p} is busy ({said}): another program has held its write lock for too long (a long "
            "audit or upload, a backup, an sqlite3 shell with an open transaction). Wait until it "
            f"finishes, {again}"
        )
    if primary == 26:  # SQLITE_NOTADB
        return StorageError(
            f"{p} is not a SQLite database ({said}): check the path (REVIEW_DB or --db), or restore the "
            "file from a backup (`review backup` makes one); a new path starts an empty database."
        )
    if primary == 11:  # SQLITE_CORRUPT
        return StorageError(
            f"{p} is damaged ({said}): restore it from a backup (`review backup` makes one), or rescue "
            f"what is left with `sqlite3 {p} .recover | sqlite3 new.db`; {again}"
        )
    if primary == 14:  # SQLITE_CANTOPEN
        return StorageError(
            f"Cannot open {p} ({said}): check that the folder {folder} exists and that the user running "
            f"the app may read and write it and the file (chmod, chown), {again}"
        )
    return None


def migrate(db: sqlite_utils.Database) -> None:
    """Create the schema if missing, bring an older one up to date, and record its version.

    6 -> 7: scores gains ``activelab`` (NULL for earlier runs), the ``gold`` table is created.
    7 -> 8: the ``sessions`` and ``queue_state`` tables are created (empty: everyone signs in once more)."""
    row = None
    if db["meta_info"].exists():
        row = db.execute("SELECT value FROM meta_info WHERE key='schema_version'").fetchone()
    if row and int(row[0]) >= SCHEMA_VERSION:
        return
    if row and int(row[0]) < 4:  # 1 -> 2: consensus columns on scores; 3 -> 4: judge columns
        for col, kind in (
            ("consensus_label", "TEXT"),
            ("agreement", "REAL"),
            ("n_annotators", "INTEGER"),
            ("judge_verdict", "TEXT"),
            ("judge_label", "TEXT"),
            ("judge_reason", "TEXT"),
            ("fused_action", "TEXT"),
            ("fused_trust", "REAL"),
        ):
            if col not in db["scores"].columns_dict:
                db.execute(f"ALTER TABLE scores ADD COLUMN {col} {kind}")
    if row and int(row[0]) < 7 and "activelab" not in db["scores"].columns_dict:  # 6 -> 7: the label queue's score
        try:
            db.execute("ALTER TABLE scores ADD COLUMN activelab REAL")
        except sqlite3.OperationalError as exc:  # another process migrating the same file added it first
            if "duplicate column" not in str(exc):
                raise
    try:
        db.conn.executescript(
            "BEGIN IMMEDIATE;\n"
            + SCHEMA
            + f"\nINSERT OR REPLACE INTO meta_info(key, value) VALUES ('schema_version', '{SCHEMA_VERSION}');\nCOMMIT;"
        )
    except sqlite3.Error:
        if db.conn.in_transaction:  # a statement failed (disk full, read-only): none of the script stays
            db.conn.execute("ROLLBACK")
        raise


@contextmanager
def transaction(db: sqlite_utils.Database, retries: int = 5) -> Iterator[sqlite_utils.Database]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``; rolls back on any error.

    Retries taking the write lock a few times with backoff, on top of the busy
    timeout, so ``database is locked`` does not reach a person.

    A full disk, a read-only file or folder, a lock held past the retries, a damaged file
    (:func:`storage_error`) raise :class:`~review.errors.StorageError` naming the file and the
    fix, after the whole transaction is rolled back; other sqlite3 errors pass unchanged.
    """
    conn = db.conn
    if conn.in_transaction:  # nested: join the outer transaction (which rolls back and explains)
        yield db
        return
    for attempt in range(retries):
        try:
            conn.execute("BEGIN IMMEDIATE")
            break
        except sqlite3.Error as exc:
            retry = isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc))
            if not retry or attempt == retries - 1:
                err = storage_error(exc, _path_of(db))
                if err is None:
                    raise
                raise err from exc
            time.sleep(0.05 * 2**attempt)
    try:
        yield db
    except BaseException as exc:
        _rollback(conn)
        err = storage_error(exc, _path_of(db))
        if err is None:
            raise
        raise err from exc
    else:
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            _rollback(conn)
            err = storage_error(exc, _path_of(db))
            if err is None:
                raise
            raise err from exc


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back if a transaction is still open: after SQLITE_FULL, SQLITE_IOERR or SQLITE_CORRUPT
    SQLite may have rolled it back already, and a second ROLLBACK must not hide the first error."""
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass


def scalar(db: sqlite_utils.Database, sql: str, params: Any = ()) -> Any:
    """First column of the first row, or None."""
    row = db.execute(sql, params).fetchone()
    return row[0] if row else None


def backup(db: sqlite_utils.Database, dest: str | os.PathLike) -> None:
    """A consistent copy through SQLite's online backup, while others keep working."""
    target = sqlite3.connect(str(dest))
    try:
        db.conn.backup(target)
    finally:
        target.close()
