"""Crashes: a worker process is killed with SIGKILL at random moments in the middle of an
ingest, an audit run and a stream of review decisions, many times. After each kill the SQLite
file passes PRAGMA integrity_check, no half-written dataset or run is visible, every decision
the worker had acknowledged is there, and the audit trail's chain verifies."""

from __future__ import annotations

import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from review import auth, datasets, demo, store, trail
from tests.helpers import PASSWORD, ROOT, copy_db

KILLS = {"ingest": 6, "audit": 6, "decide": 10}  # kills per kind (CI-sized)

WORKER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    from review import auth, audit, datasets, store, workflow
    from review.text import ingest
    import pandas as pd
    kind, path = sys.argv[1], sys.argv[2]
    db = store.connect(path)
    lead, anna = auth.User("lena", "lead"), auth.User("anna", "annotator")
    if kind == "ingest":
        n = 100_000
        df = pd.DataFrame({{"text": [f"row {{i}} about {{'sports' if i % 2 else 'money'}}" for i in range(n)],
                           "label": ["s" if i % 2 else "m" for i in range(n)]}})
        prep = ingest.prepare(df, ingest.Mapping(text=["text"], label="label"), "big.csv", None)
        print("ready", flush=True)
        while True:
            print("ingested", ingest.write_dataset(db, prep, f"big-{{time.time_ns()}}", lead), flush=True)
    elif kind == "audit":
        from review.text import models  # the audit loads sklearn and cleanlab on use: load them before "ready",
        import cleanlab.filter, cleanlab.rank, cleanlab.dataset   # so the kills land inside runs, not in imports
        print("ready", flush=True)
        while True:
            print("run", audit.run_audit(db, "demo-support-tickets", lead), flush=True)
    else:
        ds = datasets.get(db, "demo-support-tickets")
        print("ready", flush=True)
        while True:
            s = workflow.claim_next(db, ds, anna)
            if s is None:   # the queue is empty: the lead sends every decision back, and on it goes
                for r in workflow.pending(db, ds, lead, limit=100):
                    workflow.verify(db, r["id"], lead, "reject", r["version"], note="again")
                    print("rejected", r["id"], flush=True)
                continue
            rid = workflow.decide(db, ds, s.idx, anna, "keep", s.version)
            print("ack", rid, flush=True)
""")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    path = tmp_path_factory.mktemp("crash") / "base.db"
    db = store.connect(path)
    admin = auth.create_user(db, "alice", "admin", PASSWORD, None)
    lead = auth.create_user(db, "lena", "lead", PASSWORD, admin)
    auth.create_user(db, "anna", "annotator", PASSWORD, admin)
    demo.load_demo(db, lead)
    db.conn.close()
    return path


def kill_midway(kind: str, db_path: Path, script: Path, delay: float) -> list[str]:
    """Start the worker, wait until it is ready, let it work ``delay`` s, SIGKILL it. Returns its stdout lines."""
    proc = subprocess.Popen([sys.executable, str(script), kind, str(db_path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return out.splitlines()


def check_file(db_path: Path) -> store.sqlite_utils.Database:
    raw = sqlite3.connect(str(db_path))
    assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    raw.close()
    db = store.connect(db_path)
    ok, _, message = trail.verify_trail(db)
    assert ok, message
    return db


@pytest.mark.parametrize("kind", ["ingest", "audit", "decide"])
def test_sigkill_at_random_moments_loses_nothing_acknowledged(base, tmp_path, kind):
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(root=str(ROOT)))
    rng = random.Random(hash(kind) % 1000)
    db_path = copy_db(base, tmp_path / f"{kind}.db")
    acked: list[int] = []
    rejected: list[int] = []
    interrupted = False
    for _k in range(KILLS[kind]):
        delay = rng.uniform(0.05, {"ingest": 2.5, "audit": 2.0, "decide": 0.6}[kind])
        lines = kill_midway(kind, db_path, script, delay)
        # a line the kill cut short ("ack " without its number) was never said: not acknowledged
        acked += [int(m.group(1)) for l in lines if (m := re.fullmatch(r"ack (\d+)", l.strip()))]
        rejected += [int(m.group(1)) for l in lines if (m := re.fullmatch(r"rejected (\d+)", l.strip()))]
        db = check_file(db_path)
        try:
            if kind == "ingest":
                # a dataset is whole or absent: its row count matches its items
                for ds_id, n in db.execute("SELECT id, n_items FROM datasets WHERE name LIKE 'big-%'").fetchall():
                    assert store.scalar(db, "SELECT COUNT(*) FROM items WHERE dataset_id=?", [ds_id]) == n
                orphans = db.execute(
                    "SELECT COUNT(*) FROM items WHERE dataset_id NOT IN (SELECT id FROM datasets)"
                ).fetchone()[0]
                assert orphans == 0
                uploads = store.scalar(db, "SELECT COUNT(*) FROM audit_log WHERE action='upload'")
                assert uploads == store.scalar(db, "SELECT COUNT(*) FROM datasets")
            elif kind == "audit":
                # a run's scores are all there once it is done, and none are visible before
                for run_id, kind_, status, flagged in db.execute(
                    "SELECT id, kind, status, json_extract(metrics, '$.flagged') FROM runs"
                ).fetchall():
                    n = store.scalar(db, "SELECT COUNT(*) FROM scores WHERE run_id=?", [run_id])
                    want = 0 if status != "done" else (400 if kind_ == "audit" else flagged)
                    assert n == want, (run_id, kind_, status, n)
                ds = datasets.get(db, "demo-support-tickets")
                assert datasets.latest_run(db, ds.id)["status"] == "done"
                # a run the kill cut short is shown as interrupted, not as running forever
                statuses = {r["status"] for r in datasets.runs(db, ds.id)}
                assert "running" not in statuses
                interrupted = "interrupted" in statuses
            else:
                have = {r[0] for r in db.execute("SELECT id FROM reviews")}
                assert set(acked) <= have, sorted(set(acked) - have)[:5]
                status = dict(db.execute("SELECT id, status FROM reviews").fetchall())
                assert all(status[r] == "rejected" for r in rejected)
                # and no decision without its audit row
                logged = {
                    int(r[0])
                    for r in db.execute(
                        "SELECT json_extract(payload, '$.review') FROM audit_log WHERE action='decision'"
                    )
                }
                assert have <= logged
        finally:
            db.conn.close()
    if kind == "decide":
        assert acked, "the worker never acknowledged a decision: lengthen the delays"
    if kind == "audit":
        assert interrupted, "no kill landed inside a run: the check above tested nothing"


RACER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    from review import auth, datasets, store, workflow
    from review.errors import StaleViewError
    path, name, idx, version, start = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    db = store.connect(path)
    ds = datasets.get(db, "demo-support-tickets")
    user = auth.User(name, "annotator")
    time.sleep(max(0.0, start - time.time()))
    try:
        print("won", workflow.decide(db, ds, idx, user, "keep", version, note=name))
    except StaleViewError as e:
        print("stale", str(e).replace(chr(10), " "))
    except Exception as e:
        print("other", type(e).__name__, e)
""")


def test_processes_racing_on_one_suspect_exactly_one_wins(base, tmp_path):
    """8 processes decide on the same suspect at the same instant, 5 suspects in a row."""
    script = tmp_path / "racer.py"
    script.write_text(RACER.format(root=str(ROOT)))
    db_path = copy_db(base, tmp_path / "race.db")
    db = store.connect(db_path)
    for k in range(8):  # real accounts: an action re-checks its user against the users table
        auth.create_user(db, f"p{k}", "annotator", PASSWORD, auth.User("alice", "admin"))
    ds = datasets.get(db, "demo-support-tickets")
    run_id = datasets.latest_run(db, ds.id)["id"]
    rows = [
        r[0] for r in db.execute("SELECT idx FROM scores WHERE run_id=? AND is_issue=1 ORDER BY rank LIMIT 5", [run_id])
    ]
    tally = {"won": 0, "stale": 0, "other": 0}
    try:
        for idx in rows:
            start = time.time() + 1.5  # after every interpreter has started
            procs = [
                subprocess.Popen(
                    [sys.executable, str(script), str(db_path), f"p{k}", str(idx), "0", str(start)],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for k in range(8)
            ]
            outs = [p.communicate(timeout=120) for p in procs]
            kinds = [o.split()[0] if o.strip() else "other" for o, _ in outs]
            assert kinds.count("won") == 1 and kinds.count("stale") == 7, [(o, e[-300:]) for o, e in outs]
            for k in kinds:
                tally[k] += 1
            winner = next(o.split()[1] for o, _ in outs if o.startswith("won"))
            assert (
                db.execute("SELECT COUNT(*) FROM reviews WHERE dataset_id=? AND idx=?", [ds.id, idx]).fetchone()[0] == 1
            )
            assert store.scalar(db, "SELECT id FROM reviews WHERE dataset_id=? AND idx=?", [ds.id, idx]) == int(winner)
        ok, _, msg = trail.verify_trail(db)
        assert ok, msg
        assert tally == {"won": 5, "stale": 35, "other": 0}
    finally:
        db.conn.close()
