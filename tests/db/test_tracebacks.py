"""Messages, not tracebacks: JSON nested too deep, a full disk, a read-only or damaged database.

Real files throughout. A full disk is SQLite's own SQLITE_FULL, reached with ``PRAGMA
max_page_count`` on the connection (the file may not grow: the same error and the same code path
as a full disk, and the space is "freed" by lifting the limit). A read-only file or folder is
chmod; these tests run as root here, and root writes through any permission bit, so the child
processes that must meet the permission bits (the CLI, the sign-in page through AppTest) run
without the capabilities that let root bypass them (``setpriv --bounding-set
-dac_override,...``: still uid 0, the owner, but bound by the owner's bits like anyone else).
Not as root, they run as they are. A ``mode=ro`` connection stands in where the app itself must
be read-only in this process (SQLITE_READONLY, the code a 0444 file gives).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlite_utils
from streamlit.testing.v1 import AppTest

from review import auth, datasets, demo, store, trail, workflow
from review.errors import IngestError, StorageError
from review.ner import store as ner_store
from review.text import ingest
from tests.helpers import ROOT, copy_db

APP = ROOT / "app.py"
PW = "correct horse battery"
DEEP = "[" * 100_000 + "]" * 100_000
NESTED = "nested deeper than 200 levels"


# ----------------------------------------------------------------------------- helpers


def _env(**extra) -> dict:
    env = dict(os.environ, PYTHONIOENCODING="utf-8", **extra)
    if "REVIEW_DB" not in extra:
        env.pop("REVIEW_DB", None)
    return env


def _cli(*args, stdin: str | None = None, prefix: list[str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*(prefix or []), sys.executable, "-m", "review.cli", *map(str, args)],
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=_env(),
        cwd=ROOT,
        timeout=300,
    )


def _no_traceback(r: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, r.stderr


def _cannot(why: str) -> None:
    """In CI (CI set) a missing means to test read-only files fails the run; elsewhere the tests skip."""
    if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
        pytest.fail(f"CI: {why}: install util-linux (setpriv) or run the tests as a user without root")
    pytest.skip(why)


@pytest.fixture(scope="module")
def unprivileged(tmp_path_factory) -> list[str]:
    """A command prefix under which the permission bits hold: [] when not root, else setpriv dropping
    the capabilities that bypass them. Checked on a real 0444 file before any test relies on it."""
    prefix = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if not setpriv:
            _cannot("root, and no setpriv to run a child bound by file permissions")
        prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner"]
    probe = tmp_path_factory.mktemp("perm") / "probe"
    probe.write_text("x")
    probe.chmod(0o444)
    r = subprocess.run([*prefix, sys.executable, "-c", f"open({str(probe)!r}, 'a')"], capture_output=True, text=True)
    if r.returncode == 0 or "Permission denied" not in r.stderr:
        _cannot(f"cannot run a child that meets the permission bits ({r.stderr.strip()[-200:]})")
    return prefix


def _users_db(path: Path) -> Path:
    db = store.connect(path)
    admin = auth.create_user(db, "alice", "admin", PW, None)
    auth.create_user(db, "anna", "annotator", PW, admin)
    db.conn.close()
    return path


def _full(db) -> None:
    """The file may not grow past its pages now: the next write needing a page fails with SQLITE_FULL."""
    n = store.scalar(db, "PRAGMA page_count")
    assert store.scalar(db, f"PRAGMA max_page_count = {n}") == n


def _copy(src: Path, dest: Path) -> Path:
    """A copy of the database file, with its audit-trail key file if it has one (review.trail.key)."""
    copy_db(src, dest)
    key = Path(str(src) + ".trail-key")
    if key.exists():
        shutil.copy2(key, str(dest) + ".trail-key")
    return dest


def _table_counts(db) -> dict:
    return {
        t: store.scalar(db, f"SELECT COUNT(*) FROM {t}")
        for t in ("users", "sessions", "reviews", "audit_log", "datasets", "items")
    }


# ----------------------------------------------------------------------------- (a) JSON nested too deep


def _text_jsonl(deep_line: str) -> bytes:
    rows = [json.dumps({"text": f"row {i} words here", "label": "ab"[i % 2]}) for i in range(5)]
    return ("\n".join(rows) + "\n" + deep_line + "\n").encode()


@pytest.mark.parametrize(
    "name,data,line",
    [
        (
            "deep.jsonl",
            _text_jsonl('{"text": "x", "label": "a", "v": ' + DEEP + "}"),
            6,
        ),  # a value deep inside a record
        ("deep.ndjson", _text_jsonl(DEEP), 6),  # a bare deep array
        ("array.json", DEEP.encode(), 1),  # a JSON array file, on one line
        ("objs.jsonl", _text_jsonl('{"v": ' + '{"a": ' * 5000 + "1" + "}" * 5000 + "}"), 6),  # objects, not lists
    ],
    ids=["record", "bare-array", "json-array-file", "objects"],
)
def test_deep_json_line_is_refused_naming_the_line(name, data, line):
    assert not ner_store.looks_like_ner(data, name)  # the upload's first question: no RecursionError either
    with pytest.raises(IngestError) as e:
        ingest.read_table(data, name)
    assert str(e.value).startswith(f"line {line} of {name} is {NESTED}") and "flatten it" in str(e.value)


def test_depth_limit_is_200_and_brackets_in_strings_do_not_count():
    ok = '{"text": "' + "[" * 5000 + '", "label": "a", "v": ' + "[" * 199 + "]" * 199 + "}"
    df = ingest.read_table((ok + "\n").encode(), "ok.jsonl")
    assert df.shape == (1, 3) and df["text"][0] == "[" * 5000
    assert ingest.json_depth(ok) == 200
    over = '{"v": ' + "[" * 200 + "]" * 200 + "}"
    with pytest.raises(IngestError, match=f"line 1 of over.jsonl is {NESTED}"):
        ingest.read_table((over + "\n").encode(), "over.jsonl")


def test_deep_ner_jsonl_is_refused_naming_the_line():
    data = (
        '{"tokens": ["Ada", "spoke"], "tags": ["B-PER", "O"]}\n'
        '{"tokens": ["Bo"], "tags": ["B-PER"], "extra": ' + DEEP + "}\n"
    ).encode()
    assert ner_store.looks_like_ner(data, "ner.jsonl")
    with pytest.raises(IngestError, match=f"line 2 of ner.jsonl is {NESTED}"):
        ner_store.read_corpus(data, "ner.jsonl")
    first_deep = ('{"tokens": ["Ada"], "tags": ["B-PER"], "x": ' + DEEP + "}\n").encode()
    assert not ner_store.looks_like_ner(first_deep, "ner.jsonl")  # then read as a table: the same message
    with pytest.raises(IngestError, match=f"line 1 of ner.jsonl is {NESTED}"):
        ingest.read_table(first_deep, "ner.jsonl")


def test_deep_jsonl_ingest_writes_nothing(db, lead):
    before = _table_counts(db)
    with pytest.raises(IngestError, match=f"line 6 of deep.jsonl is {NESTED}"):
        ingest.ingest_bytes(db, _text_jsonl(DEEP), "deep.jsonl", "deep", lead)
    assert _table_counts(db) == before


@pytest.mark.parametrize(
    "name,data,line",
    [
        ("deep.jsonl", _text_jsonl('{"text": "x", "label": "a", "v": ' + DEEP + "}"), 6),
        ("array.json", DEEP.encode(), 1),
        (
            "ner.jsonl",
            ('{"tokens": ["Ada"], "tags": ["B-PER"]}\n{"tokens": ["Bo"], "tags": ["O"], "p": ' + DEEP + "}\n").encode(),
            2,
        ),
    ],
    ids=["text-jsonl", "json-array-file", "ner-jsonl"],
)
def test_review_ingest_of_deep_json_exits_2_naming_the_line(tmp_path, name, data, line):
    f = tmp_path / name
    f.write_bytes(data)
    r = _cli("ingest", f, "--name", "deep", "--db", tmp_path / "app.db")
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith(f"error: line {line} of {name} is {NESTED}")
    _no_traceback(r)


def test_review_ingest_of_a_deep_csv_embedding_cell_exits_2(tmp_path):
    # the cell is parsed by review.text.signals: the refusal names the row and the column
    rows = [f'r{i},item {i} has some words,{"ab"[i % 2]},"[1, 2]"' for i in range(20)]
    rows[7] = f"r7,item 7 has some words,b,{DEEP}"
    f = tmp_path / "emb.csv"
    f.write_text("id,text,label,emb\n" + "\n".join(rows) + "\n")
    r = _cli("ingest", f, "--name", "emb", "--embedding-col", "emb", "--db", tmp_path / "app.db")
    assert r.returncode == 2 and "data row 8, column 'emb'" in r.stderr and "nested" in r.stderr, r.stderr
    _no_traceback(r)
    assert store.scalar(store.connect(tmp_path / "app.db"), "SELECT COUNT(*) FROM datasets") == 0


def test_a_deep_embedding_cell_is_refused_naming_the_row():
    # the Upload page and `review ingest` parse embedding cells with this function
    from review.errors import IngestError
    from review.text import signals

    with pytest.raises(IngestError, match=r"up.csv: data row 3, column 'emb': the vector is lists nested"):
        signals.parse_embedding_column(["[1, 2]", "[3, 4]", DEEP], "up.csv", "emb")


# ----------------------------------------------------------------------------- (b) a full disk


def test_full_disk_write_rolls_back_whole_and_names_the_file(db, admin):
    _full(db)
    before = _table_counts(db)
    with pytest.raises(StorageError) as e:
        with store.transaction(db):
            db.execute("INSERT INTO users(name, role, password_hash, created_at) VALUES ('zed', 'lead', 'x', 'now')")
            trail.log(db, "alice", "big", None, None, note="n" * 20_000)  # needs pages the file may not grow
    msg = str(e.value)
    assert msg.startswith(f"The disk holding {os.path.abspath(store._path_of(db))} is full") and "free space" in msg
    assert "Nothing was saved" in msg and "database or disk is full" in msg
    assert not db.conn.in_transaction and _table_counts(db) == before  # the first insert went too
    db.execute("PRAGMA max_page_count = 1073741823")  # space freed: the same write goes through
    with store.transaction(db):
        trail.log(db, "alice", "big", None, None, note="n" * 20_000)
    assert trail.verify_trail(db)[0]


def test_full_disk_keep_changes_nothing(db, admin, annotator, lead):
    ds = datasets.get(db, demo.load_demo(db, lead))
    s = workflow.claim_next(db, ds, annotator)
    state = list(db.execute("SELECT * FROM states WHERE dataset_id=? AND idx=?", [ds.id, s.idx]))
    before = _table_counts(db)
    _full(db)
    with pytest.raises(StorageError, match="is full"):
        workflow.decide(db, ds, s.idx, annotator, "keep", s.version, note="why " * 1200)
    assert _table_counts(db) == before
    assert list(db.execute("SELECT * FROM states WHERE dataset_id=? AND idx=?", [ds.id, s.idx])) == state


def test_full_disk_on_a_new_database_says_so(tmp_path, monkeypatch):
    # a database created on a full disk: the schema cannot be written (SQLITE_FULL in migrate), rolled back
    real = sqlite3.connect

    def tiny(*a, **k):
        conn = real(*a, **k)
        conn.execute("PRAGMA max_page_count = 3")
        return conn

    monkeypatch.setattr(store.sqlite3, "connect", tiny)
    with pytest.raises(StorageError, match=r"The disk holding .*new\.db is full .* then reload the page"):
        store.connect(tmp_path / "new.db")


def test_cli_full_disk_exits_2_with_the_message(tmp_path, monkeypatch, capsys):
    from review import cli

    path = _users_db(tmp_path / "app.db")
    rows = "".join(
        f"r{i},item {i} is {'great lovely ' * 20 if i % 2 else 'awful broken ' * 20},{'pos' if i % 2 else 'neg'}\n"
        for i in range(500)
    )  # 130 kB: more than the free room in the file's pages
    (tmp_path / "small.csv").write_text("id,text,label\n" + rows)
    real = store.connect

    def full_connect(*a, **k):
        db = real(*a, **k)
        _full(db)
        return db

    monkeypatch.setattr(store, "connect", full_connect)
    db = store.connect(path)
    before = _table_counts(db)
    code = cli.main(["ingest", str(tmp_path / "small.csv"), "--name", "small", "--db", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"error: The disk holding {path} is full"), err
    assert "Nothing was saved" in err and _table_counts(db) == before


# ----------------------------------------------------------------------------- (c) read-only, busy, damaged


def test_read_only_connection_names_the_file_and_chmod(tmp_path):
    path = _users_db(tmp_path / "app.db")
    ro = sqlite_utils.Database(sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None))
    with pytest.raises(StorageError) as e:
        auth.create_user(ro, "bob", "lead", PW, auth.User("alice", "admin"))
    msg = str(e.value)
    assert (
        msg.startswith(f"{path} is read-only") and "chmod u+w" in msg and "chown" in msg and "Nothing was saved" in msg
    )
    ro.conn.close()


def test_a_lock_held_too_long_is_a_message(db, admin):
    other = sqlite3.connect(store._path_of(db), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        db.execute("PRAGMA busy_timeout = 20")
        with pytest.raises(StorageError, match=r"is busy \(SQLite: database is locked\).*try again"):
            with store.transaction(db, retries=2):
                trail.log(db, "alice", "x", None, None)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert not db.conn.in_transaction


def test_not_a_database_and_damaged_and_cannot_open(tmp_path):
    bad = tmp_path / "notes.db"
    bad.write_bytes(b"these are my notes, not a database " * 200)
    with pytest.raises(StorageError, match=rf"^{bad} is not a SQLite database .*REVIEW_DB or --db"):
        store.connect(bad)
    hurt = _users_db(tmp_path / "hurt.db")
    data = bytearray(hurt.read_bytes())
    data[4096:] = b"\xde\xad\xbe\xef" * ((len(data) - 4096) // 4)  # every page but the first
    hurt.write_bytes(data)
    for f in (tmp_path / "hurt.db-wal", tmp_path / "hurt.db-shm"):
        f.unlink(missing_ok=True)
    with pytest.raises(StorageError, match=rf"^{hurt} is damaged .*malformed.*backup"):
        store.connect(hurt)
    folder = tmp_path / "a_folder.db"
    folder.mkdir()
    with pytest.raises(StorageError, match=rf"^Cannot open {folder} \(SQLite: unable to open database file\)"):
        store.connect(folder)


def test_other_sqlite_errors_pass_unchanged(db, admin):
    with pytest.raises(sqlite3.IntegrityError):
        with store.transaction(db):
            db.execute("INSERT INTO users(name, role, password_hash, created_at) VALUES ('alice', 'lead', 'x', 'now')")
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        with store.transaction(db):
            db.execute("SELECT * FROM no_such_table")
    assert not db.conn.in_transaction
    # an I/O error cannot be made on demand here: its message (no error code) is still worded
    e = store.storage_error(sqlite3.OperationalError("disk I/O error"), "/srv/app.db")
    assert (
        isinstance(e, StorageError)
        and str(e).startswith("Reading or writing /srv/app.db failed")
        and "df -h /srv" in str(e)
    )


def _perm_db(tmp_path: Path) -> Path:
    path = _users_db(tmp_path / "ro" / "app.db")
    sqlite3.connect(path).execute("PRAGMA wal_checkpoint(TRUNCATE)").connection.close()
    for f in (path.with_name("app.db-wal"), path.with_name("app.db-shm")):
        f.unlink(missing_ok=True)
    return path


def test_cli_on_a_read_only_file_and_folder_exits_2(tmp_path, unprivileged):
    path = _perm_db(tmp_path)
    path.chmod(0o444)
    try:
        r = _cli(
            "users",
            "add",
            "bob",
            "--role",
            "lead",
            "--password-stdin",
            "--db",
            path,
            stdin=PW + "\n",
            prefix=unprivileged,
        )
        assert r.returncode == 2 and r.stderr.startswith(f"error: {path} is read-only") and "chmod u+w" in r.stderr, (
            r.stderr
        )
        _no_traceback(r)
        r = _cli("verify-trail", "--db", path, prefix=unprivileged)  # reading still works
        assert r.returncode == 0 and "intact" in r.stdout, r.stderr
    finally:
        path.chmod(0o644)
    for f in (path.with_name("app.db-wal"), path.with_name("app.db-shm")):  # the reader may have made them
        f.unlink(missing_ok=True)
    path.parent.chmod(0o555)
    try:
        r = _cli(
            "users",
            "add",
            "bob",
            "--role",
            "lead",
            "--password-stdin",
            "--db",
            path,
            stdin=PW + "\n",
            prefix=unprivileged,
        )
        assert r.returncode == 2, r.stderr
        assert r.stderr.startswith(
            f"error: {path} cannot be written: the folder {path.parent} holding {path} is read-only"
        )
        assert "chmod u+w" in r.stderr and "app.db-wal" in r.stderr
        _no_traceback(r)
    finally:
        path.parent.chmod(0o755)
    assert [u["name"] for u in auth.list_users(store.connect(path), auth.SYSTEM)] == ["alice", "anna"]


def test_cli_on_a_file_that_is_not_a_database_exits_2(tmp_path):
    bad = tmp_path / "app.db"
    bad.write_bytes(b"not sqlite " * 500)
    r = _cli("verify-trail", "--db", bad)
    assert r.returncode == 2 and r.stderr.startswith(f"error: {bad} is not a SQLite database"), r.stderr
    _no_traceback(r)


# ----------------------------------------------------------------------------- pages (AppTest)

SIGN_IN_PAGE = """
import json, sys
from streamlit.testing.v1 import AppTest
at = AppTest.from_file(sys.argv[1], default_timeout=60)
at.run()
print(json.dumps({"errors": [e.value for e in at.error], "exceptions": [e.value for e in at.exception],
                  "inputs": [t.label for t in at.text_input]}))
"""


def _sign_in_page(db_path: Path, prefix: list[str]) -> dict:
    r = subprocess.run(
        [*prefix, sys.executable, "-c", SIGN_IN_PAGE, str(APP)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=_env(REVIEW_DB=str(db_path)),
        cwd=ROOT,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_sign_in_page_on_a_read_only_file_or_folder_shows_the_fix(tmp_path, unprivileged):
    path = _perm_db(tmp_path)
    path.chmod(0o444)
    try:
        got = _sign_in_page(path, unprivileged)
    finally:
        path.chmod(0o644)
    assert not got["exceptions"] and not got["inputs"], got  # no traceback, no sign-in form to fail later
    assert len(got["errors"]) == 1
    shown = got["errors"][0].replace("\\", "")  # ui.error escapes Markdown
    assert shown.startswith(f"{path} is read-only") and "chmod u+w" in shown and "chown" in shown
    for f in (path.with_name("app.db-wal"), path.with_name("app.db-shm")):
        f.unlink(missing_ok=True)
    path.parent.chmod(0o555)
    try:
        got = _sign_in_page(path, unprivileged)
    finally:
        path.parent.chmod(0o755)
    assert not got["exceptions"] and len(got["errors"]) == 1, got
    assert got["errors"][0].replace("\\", "").startswith(f"{path} cannot be written: the folder {path.parent}")
    got = _sign_in_page(path, unprivileged)  # fixed: the form is back
    assert not got["exceptions"] and not got["errors"] and got["inputs"] == ["User name", "Password"], got


def test_sign_in_page_on_a_damaged_or_foreign_file_shows_the_message(tmp_path, monkeypatch):
    bad = tmp_path / "app.db"
    bad.write_bytes(b"my spreadsheet, not a database " * 300)
    monkeypatch.setenv("REVIEW_DB", str(bad))
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.error) == 1 and at.error[0].value.replace("\\", "").startswith(f"{bad} is not a SQLite database")
    assert not at.text_input


def test_sign_in_on_a_read_only_connection_shows_the_message(tmp_path, monkeypatch):
    # the app's connection read-only (mode=ro: SQLITE_READONLY, as a 0444 file gives) though the
    # permission bits let this root process write: the write of the sign-in is refused with the message
    path = _users_db(tmp_path / "app.db")
    monkeypatch.setenv("REVIEW_DB", str(path))
    real = sqlite3.connect
    monkeypatch.setattr(store.sqlite3, "connect", lambda p, *a, **k: real(f"file:{p}?mode=ro", *a, uri=True, **k))
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    at.text_input(key="signin_name").input("anna")
    at.text_input(key="signin_pw").input(PW)
    assert [b.label for b in at.button] == ["Sign in"]  # the form's submit button
    at = at.button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    shown = [e.value.replace("\\", "") for e in at.error]
    assert len(shown) == 1 and shown[0].startswith(f"{path} is read-only") and "chmod u+w" in shown[0], shown
    monkeypatch.setattr(store.sqlite3, "connect", real)
    assert store.scalar(store.connect(path), "SELECT COUNT(*) FROM sessions") == 0


@pytest.fixture(scope="module")
def demo_template(tmp_path_factory):
    path = tmp_path_factory.mktemp("tb_template") / "demo.db"
    _users_db(path)
    db = store.connect(path)
    auth.create_user(db, "lena", "lead", PW, auth.User("alice", "admin"))
    demo.load_demo(db, auth.User("lena", "lead"))
    db.conn.close()
    return path


def test_keep_on_a_full_disk_shows_the_message_keeps_the_note_and_works_once_freed(
    tmp_path, monkeypatch, demo_template
):
    path = _copy(demo_template, tmp_path / "review.db")
    db = store.connect(path)
    db.execute("VACUUM")  # no free pages left: a new row needs the file to grow
    monkeypatch.setenv("REVIEW_DB", str(path))
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.session_state["user"] = ("anna", "annotator", time.time())
    at.switch_page("pages/3_Review.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    ds = datasets.get(db, demo.DEMO_NAME)
    idx = store.scalar(db, "SELECT idx FROM states WHERE dataset_id=? AND claimed_by='anna'", [ds.id])
    state = list(
        db.execute("SELECT state, version, current_label FROM states WHERE dataset_id=? AND idx=?", [ds.id, idx])
    )
    before = _table_counts(db)

    real = store.connect
    full = {"on": True}

    def connect(*a, **k):  # the app's connection on a disk with no room left
        conn = real(*a, **k)
        if full["on"]:
            _full(conn)
        return conn

    monkeypatch.setattr(store, "connect", connect)
    note = "the customer asks for a refund, not a bug report " * 90  # 4,500 characters: new pages
    at.text_input(key=f"note_{ds.id}_{idx}").input(note)
    at = at.button(key="keep").click().run()
    assert not at.exception, [e.value for e in at.exception]
    warned = [w.value.replace("\\", "") for w in at.warning]
    assert any(w.startswith(f"The disk holding {path} is full") and "Nothing was saved" in w for w in warned), warned
    assert _table_counts(db) == before  # nothing half-written
    assert (
        list(db.execute("SELECT state, version, current_label FROM states WHERE dataset_id=? AND idx=?", [ds.id, idx]))
        == state
    )
    assert at.text_input(key=f"note_{ds.id}_{idx}").value == note  # the input is still on the page

    full["on"] = False  # space freed: the same click goes through
    at = at.button(key="keep").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(s.value.startswith("Row ") and s.value.endswith("kept.") for s in at.success), [
        s.value for s in at.success
    ]
    r = list(db.query("SELECT decision, note, reviewer FROM reviews WHERE dataset_id=? AND idx=?", [ds.id, idx]))
    assert r == [{"decision": "keep", "note": note.strip(), "reviewer": "anna"}]
    assert trail.verify_trail(db)[0]


def test_upload_of_deep_jsonl_shows_the_line(tmp_path, monkeypatch, demo_template):
    path = _copy(demo_template, tmp_path / "review.db")
    monkeypatch.setenv("REVIEW_DB", str(path))
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.session_state["user"] = ("lena", "lead", time.time())
    at.switch_page("pages/1_Upload.py")
    at.run()
    at.file_uploader(key="upload_file").upload("deep.jsonl", _text_jsonl(DEEP), "application/json")
    at = at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.error) == 1 and at.error[0].value.replace("\\", "").startswith(f"line 6 of deep.jsonl is {NESTED}")


def test_upload_on_a_full_disk_shows_the_message_and_ingests_once_freed(tmp_path, monkeypatch, demo_template):
    path = _copy(demo_template, tmp_path / "review.db")
    db = store.connect(path)
    db.execute("VACUUM")
    monkeypatch.setenv("REVIEW_DB", str(path))
    real = store.connect
    full = {"on": True}

    def connect(*a, **k):
        conn = real(*a, **k)
        if full["on"]:
            _full(conn)
        return conn

    monkeypatch.setattr(store, "connect", connect)
    rows = "".join(
        f"r{i},item {i} is {'great lovely ' * 20 if i % 2 else 'awful broken ' * 20},{'pos' if i % 2 else 'neg'}\n"
        for i in range(300)
    )
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.session_state["user"] = ("lena", "lead", time.time())
    at.switch_page("pages/1_Upload.py")
    at.run()
    at.file_uploader(key="upload_file").upload("tickets.csv", ("id,text,label\n" + rows).encode(), "text/csv")
    at = at.run()
    at.text_input(key="dataset_name_input").input("tickets")
    before = _table_counts(db)
    at = at.button(key="ingest").click().run()
    assert not at.exception, [e.value for e in at.exception]
    shown = [e.value.replace("\\", "") for e in at.error]
    assert (
        len(shown) == 1 and shown[0].startswith(f"The disk holding {path} is full") and "Nothing was saved" in shown[0]
    )
    assert _table_counts(db) == before  # no dataset, no item, no audit row
    full["on"] = False  # space freed: the file and the mapping are still there
    assert at.text_input(key="dataset_name_input").value == "tickets"
    at = at.button(key="ingest").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert datasets.get(db, "tickets").n_items == 300
