"""The `review` command, run as a real subprocess against real SQLite files.

The commands are run once per module (independent ones in parallel, to keep the suite
fast); each test then checks one part of the contract on their recorded results.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from review import auth, store

ADMIN_PW = "cli-admin-password-123"
LEAD_PW = "cli-lead-password-456"


@dataclass
class Result:
    args: list[str]
    code: int
    out: str
    err: str


def _start(args, stdin: str | None = None, exe: list[str] | None = None) -> tuple[list[str], subprocess.Popen]:
    cmd = (exe or [sys.executable, "-m", "review.cli"]) + [str(a) for a in args]
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    env.pop("REVIEW_DB", None)
    p = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8", env=env
    )
    if stdin is not None:
        p.stdin.write(stdin)
        p.stdin.flush()
    return cmd, p


def _wait(started: dict[str, tuple]) -> dict[str, Result]:
    out = {}
    for name, (cmd, p) in started.items():
        stdout, stderr = p.communicate(timeout=300)
        out[name] = Result(cmd, p.returncode, stdout, stderr)
    return out


def _run_all(jobs: dict[str, tuple]) -> dict[str, Result]:
    """Start every job at once, then wait for all: {name: (args, stdin, exe)} -> {name: Result}."""
    return _wait({name: _start(*job) for name, job in jobs.items()})


def ag_news_file(path: Path) -> Path:
    """A headerless AG-News style CSV: label, title, description (no id column)."""
    topics = {
        "1": (
            "World",
            [
                "leaders meet at summit on border talks",
                "election results spark protests abroad",
                "ceasefire agreed after weeks of fighting",
                "un envoy visits capital for peace talks",
            ],
        ),
        "2": (
            "Sports",
            [
                "striker scores twice as club wins league",
                "coach praises defence after cup final",
                "tennis champion reaches semi final",
                "record crowd watches derby match",
            ],
        ),
        "3": (
            "Business",
            [
                "shares rise as profits beat forecasts",
                "central bank holds interest rates",
                "oil prices fall on weak demand",
                "retailer reports strong quarterly sales",
            ],
        ),
        "4": (
            "Sci/Tech",
            [
                "new chip doubles processor speed",
                "software update fixes security flaw",
                "space probe sends images of comet",
                "researchers unveil faster wireless network",
            ],
        ),
    }
    lines = []
    for i in range(30):
        for label, (name, phrases) in topics.items():
            phrase = phrases[i % len(phrases)]
            lines.append(f'"{label}","{name} headline {i}","{phrase}, report {i} says"')
    # a few wrong labels: a sports story labelled Business, a tech story labelled World
    lines[1] = '"3","Sports headline 0","striker scores twice as club wins league, report 0 says"'
    lines[7] = '"1","Sci/Tech headline 1","software update fixes security flaw, report 1 says"'
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    main_db, demo_db, err_db = d / "main.db", d / "demo.db", d / "err.db"
    store.connect(err_db).conn.close()  # an existing, empty database
    news = ag_news_file(d / "ag_news.csv")
    r: dict[str, Result] = {}
    # on their own databases, in the background while the main sequence runs
    background = {
        name: _start(*job)
        for name, job in {
            "demo": (["demo", "--db", demo_db],),
            "err_no_dataset": (["audit", "nosuch", "--db", err_db],),
        }.items()
    }
    r.update(
        _run_all(
            {
                "ingest": (
                    [
                        "ingest",
                        news,
                        "--name",
                        "news",
                        "--no-header",
                        "--text-col",
                        "2,3",
                        "--label-col",
                        "1",
                        "--db",
                        main_db,
                    ],
                ),
            }
        )
    )
    # the first account is added while the audit runs (two writers on one file)
    r.update(
        _run_all(
            {
                "audit": (["audit", "news", "--db", main_db],),
                "users_add": (
                    ["users", "add", "root", "--role", "admin", "--password-stdin", "--db", main_db],
                    ADMIN_PW + "\n",
                ),
            }
        )
    )
    # a tampered copy, taken with SQLite's own backup API
    tampered = d / "tampered.db"
    src, dst = sqlite3.connect(str(main_db)), sqlite3.connect(str(tampered))
    src.backup(dst)
    src.close()
    dst.execute("DROP TRIGGER audit_log_no_update")
    dst.execute("UPDATE audit_log SET actor='mallory' WHERE id=2")
    dst.commit()
    dst.close()
    review_exe = shutil.which("review")  # the installed console script, once
    r.update(
        _run_all(
            {
                "suspects_csv": (["suspects", "news", "--db", main_db],),
                "suspects_json": (["suspects", "news", "--format", "json", "--db", main_db],),
                "export": (["export", "news", "--out", d / "cleaned.csv", "--db", main_db],),
                "backup": (["backup", d / "backup.db", "--db", main_db],),
                "verify_ok": (["verify-trail", "--db", main_db], None, [review_exe] if review_exe else None),
                "verify_bad": (["verify-trail", "--db", tampered],),
            }
        )
    )
    r.update(_wait(background))
    return {"dir": d, "main_db": main_db, "demo_db": demo_db, "news": news, "results": r}


def main_in_process(argv, capsys, stdin: str | None = None, monkeypatch=None) -> tuple[int, str, str]:
    """review.cli.main in this process (the same code path as the command), for extra cases."""
    from review import cli as cli_module

    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = cli_module.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def ok(cli, name) -> Result:
    res = cli["results"][name]
    assert res.code == 0, (res.args, res.code, res.err[-2000:])
    return res


def test_users_add_password_stdin(cli, tmp_path, capsys, monkeypatch):
    assert "added admin root" in ok(cli, "users_add").out
    db_file = tmp_path / "users.db"
    shutil.copy(cli["dir"] / "backup.db", db_file)
    code, out, err = main_in_process(
        ["users", "add", "lena", "--role", "lead", "--password-stdin", "--db", db_file],
        capsys,
        LEAD_PW + "\n",
        monkeypatch,
    )
    assert (code, out.strip()) == (0, "added lead lena"), err
    db = store.connect(db_file)
    try:
        assert auth.sign_in(db, "root", ADMIN_PW) == auth.User("root", "admin")
        assert auth.sign_in(db, "lena", LEAD_PW) == auth.User("lena", "lead")
        hashes = [r[0] for r in db.execute("SELECT password_hash FROM users")]
        assert len(hashes) == 2 and all(h.startswith("scrypt$") for h in hashes)
    finally:
        db.conn.close()
    blob = b"".join(p.read_bytes() for p in cli["dir"].glob("main.db*"))
    assert b"root" in blob and ADMIN_PW.encode() not in blob
    blob = b"".join(p.read_bytes() for p in tmp_path.glob("users.db*"))
    assert LEAD_PW.encode() not in blob


def test_first_user_must_be_admin_via_cli(tmp_path, capsys, monkeypatch):
    db_file = tmp_path / "first.db"
    code, out, err = main_in_process(
        ["users", "add", "lena", "--role", "lead", "--password-stdin", "--db", db_file],
        capsys,
        LEAD_PW + "\n",
        monkeypatch,
    )
    assert code == 2 and out == ""
    assert err.startswith("error: ") and "first account must be an admin" in err
    db = store.connect(db_file)
    try:
        assert not auth.has_users(db)
    finally:
        db.conn.close()


def test_ingest_ag_news_headerless(cli):
    out = ok(cli, "ingest").out
    assert "ingested 120 rows into dataset 'news'" in out
    assert "text: 2, 3" in out and "label: 1" in out and "classes: 1, 2, 3, 4" in out
    db = store.connect(cli["main_db"])
    try:
        rows = db.execute("SELECT key, text, given_label, meta FROM items ORDER BY idx LIMIT 2").fetchall()
        assert rows[0] == ("0", "World headline 0\nleaders meet at summit on border talks, report 0 says", "1", None)
        assert rows[1][2] == "3"
        # ingest runs the free integrity checks as a first run
        kinds = [r[0] for r in db.execute("SELECT kind FROM runs ORDER BY id")]
        assert kinds[0] == "integrity"
    finally:
        db.conn.close()


def test_audit_prints_summary(cli):
    out = ok(cli, "audit").out
    assert "suspects among 120 rows" in out and out.startswith("run ")
    assert "[" in cli["results"]["audit"].err  # the progress bar goes to stderr


REQUIRED = ["id", "given_label", "predicted_label", "confidence", "quality", "is_issue", "rank"]


def test_suspects_csv(cli):
    rows = list(csv.DictReader(io.StringIO(ok(cli, "suspects_csv").out)))
    assert rows, "no suspects"
    assert set(REQUIRED) <= set(rows[0])
    ranks = [int(r["rank"]) for r in rows]
    assert ranks == sorted(ranks) and ranks[0] == 1  # most suspect first
    assert all(r["is_issue"] == "1" for r in rows)
    qualities = [float(r["quality"]) for r in rows]
    assert all(0.0 <= q <= 1.0 for q in qualities)
    ids = {r["id"] for r in rows}
    assert {"1", "7"} <= ids  # the two planted wrong labels (0-based rows)
    row1 = next(r for r in rows if r["id"] == "1")
    assert row1["given_label"] == "3" and row1["predicted_label"] == "2"


def test_suspects_json_matches_csv(cli):
    data = json.loads(ok(cli, "suspects_json").out)
    rows = list(csv.DictReader(io.StringIO(cli["results"]["suspects_csv"].out)))
    assert [d["id"] for d in data] == [r["id"] for r in rows]
    for d in data:
        assert set(REQUIRED) <= set(d)
        assert isinstance(d["rank"], int) and isinstance(d["quality"], float) and d["is_issue"] == 1
        assert isinstance(d["id"], str)
    assert [d["rank"] for d in data] == sorted(d["rank"] for d in data)


def test_suspects_all_with_limit(cli, capsys):
    code, out, err = main_in_process(
        ["suspects", "news", "--all", "--limit", "50", "--format", "json", "--db", cli["dir"] / "backup.db"], capsys
    )
    assert code == 0, err
    data = json.loads(out)
    assert len(data) == 50
    assert [d["rank"] for d in data] == list(range(1, 51))
    flags = [d["is_issue"] for d in data]
    assert flags == sorted(flags, reverse=True)  # flagged rows first
    assert 0 in flags  # --all includes unflagged rows


def test_export_writes_cleaned_csv(cli):
    assert "wrote cleaned labels of 'news'" in ok(cli, "export").out
    with open(cli["dir"] / "cleaned.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == [
        "id",
        "text",
        "given_label",
        "cleaned_label",
        "proposed_label",
        "status",
        "reviewer",
        "verified_by",
        "self_approved",
        "excluded",
        "ambiguous",
        "quality",
        "rank",
    ]
    assert len(rows) == 120
    assert rows[1]["given_label"] == rows[1]["cleaned_label"] == "3" and rows[1]["status"] == "unreviewed"


def test_verify_trail_ok_and_after_tampering(cli):
    res = ok(cli, "verify_ok")
    assert "intact" in res.out
    bad = cli["results"]["verify_bad"]
    assert bad.code == 1
    assert "audit row 2 " in bad.out


def test_backup_is_a_readable_copy(cli):
    assert "backed up" in ok(cli, "backup").out
    copy = sqlite3.connect(str(cli["dir"] / "backup.db"))
    src = sqlite3.connect(str(cli["main_db"]))
    try:
        for table in ("datasets", "items", "runs", "scores", "findings"):
            q = f"SELECT * FROM {table} ORDER BY 1, 2"
            assert copy.execute(q).fetchall() == src.execute(q).fetchall(), table
        assert len(copy.execute("SELECT * FROM items").fetchall()) == 120
        # the trail in the copy is the source's trail up to the moment of the backup
        trail = copy.execute("SELECT * FROM audit_log ORDER BY id").fetchall()
        assert [r[3] for r in trail[:2]] == ["upload", "integrity_run"]
        assert {"user_add", "audit_run"} <= {r[3] for r in trail}
        assert trail == src.execute("SELECT * FROM audit_log ORDER BY id").fetchall()[: len(trail)]
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        copy.close()
        src.close()


def test_demo_command(cli):
    assert "demo dataset 'demo-support-tickets' loaded" in ok(cli, "demo").out
    db = store.connect(cli["demo_db"])
    try:
        assert store.scalar(db, "SELECT n_items FROM datasets WHERE name='demo-support-tickets'") == 400
        assert store.scalar(db, "SELECT COUNT(*) FROM runs WHERE kind='audit' AND status='done'") == 1
        assert store.scalar(db, "SELECT COUNT(*) FROM scores WHERE is_issue=1") > 0
    finally:
        db.conn.close()


def test_missing_database_is_an_error_not_a_new_file(tmp_path):
    missing = tmp_path / "typo" / "review.db"
    res = _run_all({"r": (["audit", "x", "--db", missing],)})["r"]
    assert res.code == 2 and "No database at" in res.err
    assert not missing.exists() and not missing.parent.exists()


def test_error_exits_2_with_message(cli):
    res = cli["results"]["err_no_dataset"]
    assert res.code == 2, (res.code, res.err)
    assert res.err.startswith("error: ") and "No dataset named 'nosuch'" in res.err
    assert "Traceback" not in res.err
    assert res.out == ""


def test_more_errors_exit_2(cli, tmp_path, capsys):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    backup = cli["dir"] / "backup.db"
    cases = [
        (["ingest", empty, "--name", "x", "--db", tmp_path / "e.db"], "empty.csv is empty"),
        (["ingest", tmp_path / "missing.csv", "--name", "x", "--db", tmp_path / "e.db"], "No file at"),
        (["ingest", cli["news"], "--name", "news", "--no-header", "--db", backup], "'news' exists already"),
        (
            ["ingest", cli["news"], "--name", "y", "--no-header", "--text-col", "9", "--db", backup],
            "Column '9' is not in the file",
        ),
        (["export", "nosuch", "--out", tmp_path / "o.csv", "--db", backup], "No dataset named 'nosuch'"),
    ]
    for argv, message in cases:
        code, out, err = main_in_process(argv, capsys)
        assert code == 2, (argv, err)
        assert err.startswith("error: ") and message in err, (argv, err)
        assert out == ""
    assert not (tmp_path / "o.csv").exists()


def test_env_review_db_is_used(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REVIEW_DB", str(tmp_path / "env.db"))
    code, out, err = main_in_process(
        ["users", "add", "root", "--role", "admin", "--password-stdin"], capsys, ADMIN_PW + "\n", monkeypatch
    )
    assert code == 0, err
    assert (tmp_path / "env.db").exists() and not (tmp_path / "review.db").exists()


def test_users_db_option_before_subcommand_is_honoured(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REVIEW_DB", raising=False)
    code, out, err = main_in_process(
        ["users", "--db", tmp_path / "x.db", "add", "root", "--role", "admin", "--password-stdin"],
        capsys,
        ADMIN_PW + "\n",
        monkeypatch,
    )
    assert code in (0, 2)
    assert not (tmp_path / "review.db").exists()  # nothing written to a database nobody named


@pytest.mark.parametrize(
    "argv",
    [
        ["backup", "{tmp}/no/such/dir/copy.db"],
        ["export", "news", "--out", "{tmp}/no/such/dir/out.csv"],
    ],
    ids=["backup", "export"],
)
def test_unwritable_output_path_is_a_clean_error(cli, tmp_path, capsys, argv):
    db_file = tmp_path / "copy.db"
    shutil.copy(cli["dir"] / "backup.db", db_file)
    args = [a.replace("{tmp}", str(tmp_path)) for a in argv] + ["--db", db_file]
    try:
        code, out, err = main_in_process(args, capsys)
    except Exception as exc:  # a traceback for the user: the bug
        pytest.fail(f"{argv[0]} raised {type(exc).__name__}: {exc}")
    assert code == 2 and err.startswith("error: ")


def test_verify_trail_on_missing_database_does_not_report_intact(tmp_path, capsys):
    missing = tmp_path / "typo" / "revew.db"
    code, out, err = main_in_process(["verify-trail", "--db", missing], capsys)
    assert code != 0
    assert not missing.exists()
