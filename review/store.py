"""SQLite schema, migrations, transactions and the audit trail.

One file, ``review.db`` by default (``REVIEW_DB`` or ``--db`` to change). Every
write happens inside :func:`transaction` (``BEGIN IMMEDIATE``) together with its
audit row, so a refusal or a crash leaves nothing half-written.
"""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import sqlite_utils

SCHEMA_VERSION = 8   # 6: self_checks, row_signals; 7: scores.activelab, gold; 8: sessions, queue_state
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

CREATE TABLE IF NOT EXISTS gold (   -- review.gold: trusted labels set by a lead; never an input of the consensus
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

CREATE TABLE IF NOT EXISTS row_signals (   -- review.signals: the team's own embeddings and training loss, per item
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

GENESIS = "0" * 64


def now_iso() -> str:
    """UTC time as ISO 8601 with milliseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def db_path(path: str | os.PathLike | None = None) -> str:
    """The database file: the argument, else ``REVIEW_DB``, else ``review.db``."""
    return str(path or os.environ.get("REVIEW_DB") or DEFAULT_DB)


def connect(path: str | os.PathLike | None = None, must_exist: bool = False) -> sqlite_utils.Database:
    """Open (and create or migrate) the database. One connection per caller/thread.

    Autocommit mode: writes go through :func:`transaction`. WAL lets readers go on
    while one writer writes; the busy timeout makes writers queue instead of failing.
    """
    p = db_path(path)
    if must_exist and p != ":memory:" and not Path(p).is_file():
        from .errors import NotFound
        raise NotFound(f"No database at {p}: check the path (--db or REVIEW_DB), or create one with `review demo` or `review ingest`.")
    if p != ":memory:":
        Path(p).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(p, timeout=30, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 30000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    db = sqlite_utils.Database(conn)
    migrate(db)
    return db


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
        for col, kind in (("consensus_label", "TEXT"), ("agreement", "REAL"), ("n_annotators", "INTEGER"),
                          ("judge_verdict", "TEXT"), ("judge_label", "TEXT"), ("judge_reason", "TEXT"),
                          ("fused_action", "TEXT"), ("fused_trust", "REAL")):
            if col not in db["scores"].columns_dict:
                db.execute(f"ALTER TABLE scores ADD COLUMN {col} {kind}")
    if row and int(row[0]) < 7 and "activelab" not in db["scores"].columns_dict:  # 6 -> 7: the label queue's score
        try:
            db.execute("ALTER TABLE scores ADD COLUMN activelab REAL")
        except sqlite3.OperationalError as exc:   # another process migrating the same file added it first
            if "duplicate column" not in str(exc):
                raise
    db.conn.executescript(
        "BEGIN IMMEDIATE;\n" + SCHEMA
        + f"\nINSERT OR REPLACE INTO meta_info(key, value) VALUES ('schema_version', '{SCHEMA_VERSION}');\nCOMMIT;"
    )


@contextmanager
def transaction(db: sqlite_utils.Database, retries: int = 5) -> Iterator[sqlite_utils.Database]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``; rolls back on any error.

    Retries taking the write lock a few times with backoff, on top of the busy
    timeout, so ``database is locked`` does not reach a person.
    """
    conn = db.conn
    if conn.in_transaction:  # nested: join the outer transaction
        yield db
        return
    for attempt in range(retries):
        try:
            conn.execute("BEGIN IMMEDIATE")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc) or attempt == retries - 1:
                raise
            time.sleep(0.05 * 2**attempt)
    try:
        yield db
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _row_hash(prev_hash: str, at: str, actor: str, action: str, dataset_id, idx, payload: str) -> str:
    body = _canonical([prev_hash, at, actor, action, dataset_id, idx, payload])
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def log(db: sqlite_utils.Database, actor: str, action: str, dataset_id: int | None = None,
        idx: int | None = None, /, **payload: Any) -> int:
    """Append one audit row chained to the previous one. Call inside :func:`transaction`."""
    if not db.conn.in_transaction:
        with transaction(db):
            return log(db, actor, action, dataset_id, idx, **payload)
    last = db.execute("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    prev = last[0] if last else GENESIS
    at = now_iso()
    body = _canonical(payload)
    h = _row_hash(prev, at, actor, action, dataset_id, idx, body)
    cur = db.execute(
        "INSERT INTO audit_log(at, actor, action, dataset_id, idx, payload, prev_hash, hash)"
        " VALUES (?,?,?,?,?,?,?,?)",
        [at, actor, action, dataset_id, idx, body, prev, h],
    )
    return cur.lastrowid


def verify_trail(db: sqlite_utils.Database) -> tuple[bool, int, str]:
    """Check the audit trail's hash chain.

    Returns (ok, rows checked, message); the message names the first broken row.
    """
    prev = GENESIS
    n = 0
    expected_id = None
    for row in db.execute(
        "SELECT id, at, actor, action, dataset_id, idx, payload, prev_hash, hash FROM audit_log ORDER BY id"
    ):
        rid, at, actor, action, dsid, idx, payload, prev_hash, h = row
        if expected_id is not None and rid != expected_id:
            return False, n, f"audit row {expected_id} is missing (the chain jumps from {expected_id - 1} to {rid}): rows were deleted"
        if prev_hash != prev:
            return False, n, f"audit row {rid} does not follow row {rid - 1}: its prev_hash does not match (a row before it was changed or deleted)"
        if _row_hash(prev_hash, at, actor, action, dsid, idx, payload) != h:
            return False, n, f"audit row {rid} ({action} by {actor} at {at}) was changed after it was written: its hash does not match its content"
        prev = h
        n += 1
        expected_id = rid + 1
    return True, n, f"audit trail intact: {n} rows, hash chain verified"


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
