"""SQLite schema, migrations, transactions and the audit trail.

One file, ``review.db`` by default (``REVIEW_DB`` or ``--db`` to change). Every
write happens inside :func:`transaction` (``BEGIN IMMEDIATE``) together with its
audit row, so a refusal or a crash leaves nothing half-written.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils

# The last numbered schema version (6: self_checks, row_signals; 7: scores.activelab, gold; 8: sessions,
# queue_state). Later changes are named MIGRATIONS only; 8 is still written to meta_info for older code.
SCHEMA_VERSION = 8
DEFAULT_DB = "review.db"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta_info (key TEXT PRIMARY KEY, value TEXT);

CREATE TABLE IF NOT EXISTS migrations (   -- store.MIGRATIONS this database has, in the order recorded
    name TEXT PRIMARY KEY,
    applied_at TEXT NOT NULL,
    via TEXT NOT NULL                -- applied (the step ran) | schema (made from the full SCHEMA) | schema_version N
);

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

CREATE TABLE IF NOT EXISTS sign_in_throttle (   -- review.auth: failed sign-ins per name, source, (name, source)
    kind TEXT NOT NULL,              -- name | source | pair (name + newline + source) | trail (per source) | trail_all
    key TEXT NOT NULL,
    fails INTEGER NOT NULL DEFAULT 0,        -- passwords compared and wrong in the window (counted before comparing)
    window_end REAL NOT NULL DEFAULT 0,      -- Unix seconds; 0: no window open
    strikes INTEGER NOT NULL DEFAULT 0,      -- windows in a row that ran full: the next one is 2**strikes longer
    last_fail REAL NOT NULL DEFAULT 0,
    trusted_until REAL NOT NULL DEFAULT 0,   -- pair: the name signed in from this source
    minute INTEGER NOT NULL DEFAULT 0,       -- trail: the minute counted in ``logged``
    logged INTEGER NOT NULL DEFAULT 0,       -- trail: sign_in_failed rows written in that minute
    skipped INTEGER NOT NULL DEFAULT 0,      -- trail_all: failed sign-ins not written since the last one that was
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;

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
CREATE INDEX IF NOT EXISTS items_given ON items(dataset_id, given_label, idx);   -- review.browse: filter by given label

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
CREATE INDEX IF NOT EXISTS scores_predicted ON scores(run_id, predicted_label, idx);   -- review.browse
-- the Review queue "by action" (workflow.ACTION_ORDER, the same expression): the first open row without a sort
CREATE INDEX IF NOT EXISTS scores_action_rank ON scores(run_id, CASE COALESCE(fused_action, action) WHEN 'relabel' THEN 0 WHEN 'needs review' THEN 1 WHEN 'keep but ambiguous' THEN 2 ELSE 3 END, rank);

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
    state TEXT NOT NULL,             -- open | kept | relabelled | unsure | excluded | ambiguous | approved | overridden
    version INTEGER NOT NULL,
    current_label TEXT,              -- the latest approved label (NULL: the given label)
    claimed_by TEXT,
    claimed_until REAL,
    updated_at TEXT,
    excluded INTEGER,                -- 1: excluded from training (an approved "exclude"; exported as a column)
    ambiguous INTEGER,               -- 1: kept as ambiguous (an approved "ambiguous", with its note)
    PRIMARY KEY (dataset_id, idx)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS states_state ON states(dataset_id, state);

CREATE TABLE IF NOT EXISTS reviews (
    id INTEGER PRIMARY KEY,
    dataset_id INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    token INTEGER,
    run_id INTEGER,
    decision TEXT NOT NULL,          -- keep | relabel | unsure | exclude | ambiguous
    new_label TEXT,
    note TEXT,
    reviewer TEXT NOT NULL,
    created_at TEXT NOT NULL,
    took_suggestion INTEGER,
    status TEXT NOT NULL,            -- pending | approved | rejected | overridden | superseded | undone (bulk)
    verified_by TEXT,
    verified_at TEXT,
    verify_note TEXT,
    final_label TEXT,
    version INTEGER NOT NULL,        -- the item's state version this decision was made on
    bulk_id INTEGER,                 -- review.bulk: the bulk action that made this decision (NULL: one row)
    blind_decision TEXT,             -- blind first look: the call made before the model's view was shown
    blind_label TEXT                 --   (keep | relabel | unsure) and its label; NULL: not blind
);
CREATE INDEX IF NOT EXISTS reviews_item ON reviews(dataset_id, idx, id);
CREATE INDEX IF NOT EXISTS reviews_status ON reviews(dataset_id, status, id);
CREATE INDEX IF NOT EXISTS reviews_reviewer ON reviews(dataset_id, reviewer, id);

CREATE VIRTUAL TABLE IF NOT EXISTS items_fts USING fts5(   -- review.browse: "text contains", built on first search
    text, content='', tokenize='trigram'                     -- rowid = dataset_id * 2**32 + idx; contentless
);
CREATE TABLE IF NOT EXISTS search_index (   -- review.browse: the datasets whose texts are in items_fts
    dataset_id INTEGER PRIMARY KEY,
    n_rows INTEGER NOT NULL,
    built_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS bulk_actions (   -- review.bulk: one correction for a filtered set, sampled before it is applied
    id INTEGER PRIMARY KEY,
    dataset_id INTEGER NOT NULL,
    run_id INTEGER,                  -- the run whose scores the set was drawn from
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    filter TEXT NOT NULL,            -- JSON: the review.browse.RowFilter that drew the set
    label TEXT NOT NULL,             -- the correction: every row of the set relabelled to this label
    n_matched INTEGER NOT NULL,      -- rows in the set when it was drawn
    sample TEXT NOT NULL,            -- JSON list of the rows drawn for a reviewer to decide first
    status TEXT NOT NULL,            -- sampling | applied | undone | cancelled
    approve INTEGER,                 -- applied: 1 the lead's action approved the rows, 0 they entered verification
    n_applied INTEGER,
    applied_by TEXT,
    applied_at TEXT,
    undone_by TEXT,
    undone_at TEXT
);
CREATE INDEX IF NOT EXISTS bulk_actions_dataset ON bulk_actions(dataset_id, id);
CREATE TABLE IF NOT EXISTS bulk_rows (   -- review.bulk: each row an applied bulk action changed, as it was before
    bulk_id INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    review_id INTEGER NOT NULL,
    prev_state TEXT,                 -- NULL: the row had no states row
    prev_version INTEGER NOT NULL,
    prev_label TEXT,                 -- states.current_label before (NULL: the given label)
    version INTEGER NOT NULL,        -- the version the action left; undo refuses a row changed since
    PRIMARY KEY (bulk_id, idx)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS taxonomy_events (   -- review.taxonomy: changes of the label set; the upload is never touched
    id INTEGER PRIMARY KEY,
    dataset_id INTEGER NOT NULL,
    version INTEGER NOT NULL,        -- the label set's version after this change: 1, 2, ... per dataset
    kind TEXT NOT NULL,              -- rename | merge | add
    label TEXT NOT NULL,             -- rename, merge: the label that goes; add: the new label
    into_label TEXT,                 -- rename: the new name; merge: the label it joins
    labels_before TEXT NOT NULL,     -- JSON list
    labels_after TEXT NOT NULL,      -- JSON list
    n_rows INTEGER NOT NULL,         -- rows whose current label changed
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS taxonomy_events_version ON taxonomy_events(dataset_id, version);

CREATE TABLE IF NOT EXISTS guidelines (   -- review.guidelines: every saved edit of a dataset's guideline page
    dataset_id INTEGER NOT NULL,
    version INTEGER NOT NULL,        -- 1, 2, ... per dataset; the newest is shown
    body TEXT NOT NULL,              -- Markdown, drawn escaped of HTML
    note TEXT,                       -- what the edit changed, in the editor's words
    edited_by TEXT NOT NULL,
    edited_at TEXT NOT NULL,
    PRIMARY KEY (dataset_id, version)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS versions (   -- review.versions: every export, with its manifest and the labels it held
    id INTEGER PRIMARY KEY,
    dataset_id INTEGER NOT NULL,
    number INTEGER NOT NULL,         -- 1, 2, ... per dataset
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    run_id INTEGER,                  -- the run whose scores the export carries
    kind TEXT NOT NULL,              -- cleaned | verified | subset | ner
    manifest TEXT NOT NULL,          -- JSON, as written next to the export
    labels BLOB NOT NULL,            -- zlib of the JSON list of every row's label in this version (NULL: not in it)
    sha256 TEXT,                     -- of the exported file
    n_rows INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS versions_number ON versions(dataset_id, number);

CREATE TABLE IF NOT EXISTS row_findings (   -- review.findings: the rows each check beyond label errors found, per run
    run_id INTEGER NOT NULL,
    kind TEXT NOT NULL,              -- outlier | near_duplicate | ambiguous | non_iid
    idx INTEGER NOT NULL,
    score REAL NOT NULL,             -- the check's score for the row in [0, 1]: lower, more of an issue
    set_id INTEGER,                  -- near_duplicate: the row's set (dup_sets.id)
    detail TEXT,                     -- JSON, per kind (ambiguous: the two classes and their probabilities)
    PRIMARY KEY (run_id, kind, idx)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS row_findings_row ON row_findings(run_id, idx);
CREATE TABLE IF NOT EXISTS dup_sets (   -- review.findings: the near-duplicate sets of a run
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL,
    dataset_id INTEGER NOT NULL,
    n_rows INTEGER NOT NULL,
    n_labels INTEGER NOT NULL,       -- distinct labels in the set when found (more than 1: conflicting)
    leakage INTEGER NOT NULL DEFAULT 0,  -- 1: its rows come from two uploaded splits
    rows TEXT NOT NULL,              -- JSON list of row numbers
    similarity REAL,                 -- the lowest cosine similarity inside the set
    status TEXT NOT NULL DEFAULT 'open',  -- open | resolved
    resolution TEXT,                 -- JSON: keep one (which), exclude the rest, or one label for all
    resolved_by TEXT,
    resolved_at TEXT
);
CREATE INDEX IF NOT EXISTS dup_sets_run ON dup_sets(run_id, n_labels, id);
CREATE TABLE IF NOT EXISTS leakage_checks (   -- review.findings.leakage: a dataset's rows checked for near copies in another
    id INTEGER PRIMARY KEY,
    dataset_id INTEGER NOT NULL,
    other_id INTEGER NOT NULL,       -- the dataset compared against (a test split uploaded on its own, say)
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    rows INTEGER NOT NULL,           -- rows of dataset_id with a near copy in other_id
    other_rows INTEGER NOT NULL,     -- rows of other_id with a near copy in dataset_id
    pairs INTEGER NOT NULL,
    conflicting INTEGER NOT NULL,    -- pairs whose two current labels differed when checked
    threshold REAL NOT NULL,         -- the cosine of the words a pair needs
    method TEXT NOT NULL,            -- how the nearest rows were found (exact or approximate)
    seconds REAL
);
CREATE INDEX IF NOT EXISTS leakage_checks_dataset ON leakage_checks(dataset_id, other_id, id);
CREATE TABLE IF NOT EXISTS leakage_pairs (   -- review.findings.leakage: each pair of a check, row here and row there
    check_id INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    other_idx INTEGER NOT NULL,
    similarity REAL NOT NULL,        -- the cosine of the two rows' words
    PRIMARY KEY (check_id, idx, other_idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS row_neighbours (   -- review.similar: each row's nearest rows in a run's features
    run_id INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    neighbours TEXT NOT NULL,        -- JSON [[row, cosine similarity], ...], nearest first
    PRIMARY KEY (run_id, idx)
) WITHOUT ROWID;

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


# ----------------------------------------------------------------------------- named migrations


def _statements(script: str) -> list[str]:
    """The statements of an SQL script, in order, their comments kept (a trigger's body stays whole)."""
    out, buf = [], ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    return out


_CREATED = re.compile(
    r"\bCREATE\s+(?:UNIQUE\s+|VIRTUAL\s+)?(?:TABLE|INDEX|TRIGGER)\s+IF\s+NOT\s+EXISTS\s+(\w+)", re.IGNORECASE
)
# every table, index and trigger of SCHEMA by name -> its CREATE … IF NOT EXISTS statement
SCHEMA_OBJECTS: dict[str, str] = {m.group(1): s for s in _statements(SCHEMA) if (m := _CREATED.search(s))}


@dataclass(frozen=True)
class Migration:
    """One named step of the schema's history, in the style of sqlite-utils' migrations.

    ``apply(db)`` brings a database that lacks the step up to it, inside :func:`migrate`'s transaction;
    it looks first (a column it adds; CREATE … IF NOT EXISTS), so applying it again changes nothing.
    ``version``: the schema_version that brought the step, for the steps from before named migrations
    (a database recording that version or a later one has the step); None for the steps after them."""

    name: str
    apply: Callable[[sqlite_utils.Database], None]
    version: int | None = None


def _creates(*objects: str, columns: Sequence[tuple[str, str, str]] = ()) -> Callable[[sqlite_utils.Database], None]:
    """A step's ``apply``: add the ``columns`` (table, column, type) a table lacks, then create the tables,
    indexes and triggers named in ``objects`` with SCHEMA's own statements (CREATE … IF NOT EXISTS)."""
    unknown = [o for o in objects if o not in SCHEMA_OBJECTS]
    if unknown:  # a step naming what SCHEMA does not hold: a mistake, shown on import
        raise ValueError(f"not in store.SCHEMA: {', '.join(unknown)}")

    def apply(db: sqlite_utils.Database) -> None:
        for table, column, kind in columns:
            if column not in db[table].columns_dict:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        for name in objects:
            db.execute(SCHEMA_OBJECTS[name])

    return apply


MIGRATIONS: list[Migration] = [
    Migration(
        "0001_initial",
        _creates(
            "meta_info",
            "users",
            "datasets",
            "items",
            "items_key",
            "annotations",
            "annotations_item",
            "runs",
            "runs_dataset",
            "scores",
            "scores_rank",
            "scores_issue_rank",
            "findings",
            "findings_run",
            "states",
            "states_state",
            "reviews",
            "reviews_item",
            "reviews_status",
            "reviews_reviewer",
            "audit_log",
            "audit_dataset",
            "audit_action",
            "audit_actor",
            "audit_log_no_update",
            "audit_log_no_delete",
        ),
        1,
    ),
    Migration(  # several annotators per item
        "0002_consensus_columns",
        _creates(
            "annotator_stats",
            "annotations_annotator",
            columns=[
                ("scores", "consensus_label", "TEXT"),
                ("scores", "agreement", "REAL"),
                ("scores", "n_annotators", "INTEGER"),
            ],
        ),
        2,
    ),
    Migration("0003_ner_tables", _creates("sources", "token_issues", "token_issues_swap"), 3),
    Migration(  # the LLM judge and spot checks
        "0004_judge_columns",
        _creates(
            "judgments",
            "spot_checks",
            columns=[
                ("scores", "judge_verdict", "TEXT"),
                ("scores", "judge_label", "TEXT"),
                ("scores", "judge_reason", "TEXT"),
                ("scores", "fused_action", "TEXT"),
                ("scores", "fused_trust", "REAL"),
            ],
        ),
        4,
    ),
    Migration("0005_run_aggregates", _creates("run_aggregates", "scores_judge"), 5),
    Migration("0006_self_checks_row_signals", _creates("row_signals", "self_checks", "self_checks_dataset"), 6),
    Migration(
        "0007_activelab_gold", _creates("gold", "scores_activelab", columns=[("scores", "activelab", "REAL")]), 7
    ),
    Migration("0008_sessions_queue_state", _creates("sessions", "sessions_user", "queue_state"), 8),
    # after schema_version 8: named steps only
    Migration("0009_audit_mac", _creates("audit_mac", "audit_mac_no_update", "audit_mac_no_delete")),
    Migration("0010_sign_in_throttle", _creates("sign_in_throttle")),
    Migration("0011_browse", _creates("items_fts", "search_index", "items_given", "scores_predicted")),
    Migration(
        "0012_bulk_actions",
        _creates("bulk_actions", "bulk_actions_dataset", "bulk_rows", columns=[("reviews", "bulk_id", "INTEGER")]),
    ),
    Migration(
        "0013_blind_first_look",
        _creates(columns=[("reviews", "blind_decision", "TEXT"), ("reviews", "blind_label", "TEXT")]),
    ),
    Migration("0014_taxonomy_guidelines", _creates("taxonomy_events", "taxonomy_events_version", "guidelines")),
    Migration("0015_versions", _creates("versions", "versions_number")),
    Migration(
        "0016_findings",
        _creates(
            "row_findings",
            "row_findings_row",
            "dup_sets",
            "dup_sets_run",
            "row_neighbours",
            columns=[("states", "excluded", "INTEGER"), ("states", "ambiguous", "INTEGER")],
        ),
    ),
    Migration("0017_leakage_checks", _creates("leakage_checks", "leakage_checks_dataset", "leakage_pairs")),
    Migration("0018_scores_action_rank", _creates("scores_action_rank")),
]


def _plan(db: sqlite_utils.Database) -> tuple[int | None, list[tuple[Migration, str]] | None]:
    """What :func:`migrate` has to do: (the schema_version in meta_info or None, the steps to record,
    each with how it gets there: 'applied' (run it) or 'schema_version N' (the database has it);
    None instead of the steps: a new database, made from the full SCHEMA). Reads only."""
    tables = {
        r[0]
        for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name IN ('meta_info', 'migrations')"
        ).fetchall()
    }
    version = None
    if "meta_info" in tables:
        row = db.execute("SELECT value FROM meta_info WHERE key='schema_version'").fetchone()
        version = int(row[0]) if row else None
    recorded = {r[0] for r in db.execute("SELECT name FROM migrations").fetchall()} if "migrations" in tables else set()
    if version is None and not recorded:
        return None, None
    todo = []
    for m in MIGRATIONS:
        if m.version is not None and version is not None:  # a numbered step: the version says, not the record
            if m.version > version:
                todo.append((m, "applied"))
            elif m.name not in recorded:
                todo.append((m, f"schema_version {version}"))
        elif m.name not in recorded:
            todo.append((m, "applied"))
    return version, todo


def pending_migrations(db: sqlite_utils.Database) -> list[str]:
    """The names of the MIGRATIONS :func:`migrate` would apply or record here ([]: current). Reads only."""
    _, todo = _plan(db)
    return [m.name for m in MIGRATIONS] if todo is None else [m.name for m, _ in todo]


def migrate(db: sqlite_utils.Database) -> list[str]:
    """Create the schema if missing, or apply the MIGRATIONS the database lacks, in order, each recorded
    in ``migrations``. Returns the names recorded ([]: it was current, and nothing was written).

    - A new database is made from the full SCHEMA and records every step (via ``schema``).
    - A database that records a schema_version in meta_info (every one from before named migrations)
      has the numbered steps up to that version (recorded via ``schema_version N``); the numbered steps
      above it are applied, whatever the record says, and so are the named steps it has no record of.
    - One BEGIN IMMEDIATE transaction for all of it, planned again under the write lock (another process
      that migrated the same file first leaves nothing to do): a step that fails rolls back the steps
      before it and their record, and the database stays as it was.
    - schema_version (SCHEMA_VERSION) is still written, for older code that reads it.
    - A read-only database at SCHEMA_VERSION or later, lacking only named steps, opens as it is (as it did
      before them); a read-only database that lacks a numbered step raises, as before."""
    version, todo = _plan(db)
    if todo is not None and not todo:
        return []
    conn = db.conn
    try:
        conn.execute("BEGIN IMMEDIATE")
        version, todo = _plan(db)
        done = _apply(db, version, todo)
        conn.execute("COMMIT")
    except BaseException as exc:
        _rollback(conn)  # a statement failed (disk full, read-only, a step): none of it stays
        if isinstance(exc, sqlite3.Error) and _read_only(exc) and version is not None and version >= SCHEMA_VERSION:
            return []
        raise
    return done


def _apply(db: sqlite_utils.Database, version: int | None, todo: list[tuple[Migration, str]] | None) -> list[str]:
    """migrate()'s writes, inside its transaction."""
    if todo is not None and not todo:
        return []
    for table in ("meta_info", "migrations"):  # the bookkeeping, before any step
        db.execute(SCHEMA_OBJECTS[table])
    if todo is None:  # a new database: the full schema, every step recorded as part of it
        for statement in _statements(SCHEMA):
            db.execute(statement)
        todo = [(m, "schema") for m in MIGRATIONS]
    at = now_iso()
    for m, via in todo:
        if via == "applied":
            m.apply(db)
        db.execute("INSERT OR REPLACE INTO migrations(name, applied_at, via) VALUES (?, ?, ?)", [m.name, at, via])
    if version is None or version < SCHEMA_VERSION:
        db.execute("INSERT OR REPLACE INTO meta_info(key, value) VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
    return [m.name for m, _ in todo]


def _read_only(exc: sqlite3.Error) -> bool:
    """SQLITE_READONLY: the file, its folder or the connection (mode=ro) cannot be written."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF == 8 if isinstance(code, int) else "readonly database" in str(exc).lower()


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


def fetch_one(db: sqlite_utils.Database, sql: str, params: Any = ()) -> sqlite3.Row | None:
    """The first row as a :class:`sqlite3.Row` (columns by name: ``row["state"]``), or None."""
    cur = db.conn.cursor()
    cur.row_factory = sqlite3.Row
    try:
        return cur.execute(sql, params).fetchone()
    finally:
        cur.close()


def rows(db: sqlite_utils.Database, sql: str, params: Any = ()) -> list[sqlite3.Row]:
    """Every row as a :class:`sqlite3.Row` (columns by name)."""
    cur = db.conn.cursor()
    cur.row_factory = sqlite3.Row
    try:
        return cur.execute(sql, params).fetchall()
    finally:
        cur.close()


def backup(db: sqlite_utils.Database, dest: str | os.PathLike) -> None:
    """A consistent copy through SQLite's online backup, while others keep working."""
    target = sqlite3.connect(str(dest))
    try:
        db.conn.backup(target)
    finally:
        target.close()
