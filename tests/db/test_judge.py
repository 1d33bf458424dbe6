"""The LLM judge against a real HTTP server on 127.0.0.1 speaking the chat-completions
protocol (tests/llm_server.py) that answers well, badly, slowly, with 429 and with 500;
the fused action in the queue; flag precision, the errors left and spot checks."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from review import demo, judge, precision, store, workflow
from review.errors import PermissionDenied, ReviewError
from tests.helpers import ROOT
from tests.llm_server import FakeLLM

KEY = "sk-test-SECRET-4242"
PLAN = ["no", "yes", "garbage", "outside", "slow", "429x2", "500", "400"]  # behaviours of the first 8 flagged rows


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(judge, "BACKOFF_S", 0.01)
    monkeypatch.setattr(judge, "MAX_BACKOFF_S", 0.05)


def behaviours(db, ds) -> dict[str, str]:
    """text -> behaviour for the flagged rows, in rank order."""
    rows = judge.candidates(db, ds)
    out = {}
    for k, r in enumerate(rows):
        how = PLAN[k] if k < len(PLAN) else "yes"
        if how == "no":
            how = "no:" + next(l for l in ds.labels if l != r["given_label"])
        out.setdefault(r["text"], how)  # the demo repeats a text (conflicting duplicates): the first, by rank, decides
    return out


def test_parse_answer_is_strict():
    labels = ["billing", "bug", "account"]
    assert judge.parse_answer("VERDICT: YES\nCORRECT_LABEL: SAME", labels, "bug") == ("YES", None, "answered")
    assert judge.parse_answer("verdict: no\ncorrect_label: billing\n", labels, "bug") == ("NO", "billing", "answered")
    for bad, why in [
        ("VERDICT: NO\nCORRECT_LABEL: weather", "not in the label set"),
        ("Sure! VERDICT: NO", "expected two lines"),
        ("VERDICT: NO\nCORRECT_LABEL: billing\nbecause", "expected two lines"),
        ("VERDICT: MAYBE\nCORRECT_LABEL: SAME", "format"),
        ("VERDICT: YES\nCORRECT_LABEL: billing", "says YES but names another"),
        ("VERDICT: NO\nCORRECT_LABEL: SAME", "says NO but names no other"),
        ("", "expected two lines"),
    ]:
        v, lab, reason = judge.parse_answer(bad, labels, "bug")
        assert (v, lab) == ("UNKNOWN", None) and why in reason, (bad, reason)


def test_no_judge_configured_says_how_to_set_it_up(demo_ds, db, lead, monkeypatch):
    for k in (judge.ENV_URL, judge.ENV_MODEL, judge.ENV_KEY):
        monkeypatch.delenv(k, raising=False)
    assert judge.config_from({}) is None
    with pytest.raises(ReviewError, match="LLM_BASE_URL"):
        judge.run_judge(db, demo_ds, lead, None)
    with pytest.raises(ReviewError, match="http"):
        judge.config_from({"base_url": "ftp://x", "model": "m"})


def test_run_records_answers_unknowns_retries_and_caches(demo_ds, db, lead, annotator):
    plan = behaviours(db, demo_ds)
    with FakeLLM(lambda text, given, labels: plan[text], slow_s=1.5) as llm:
        cfg = judge.JudgeConfig(llm.url, "test-model", KEY)
        with pytest.raises(PermissionDenied):
            judge.run_judge(db, demo_ds, annotator, cfg, limit=3)
        assert judge.plan(db, demo_ds, cfg.model, limit=10) == judge.JudgePlan(rows=10, cached=0, calls=10)
        got = judge.run_judge(db, demo_ds, lead, cfg, limit=10, timeout=0.5, workers=3)
        assert (got.rows, got.calls, got.cached) == (10, 10, 0)
        assert (got.YES, got.NO, got.UNKNOWN) == (4, 1, 5)  # yes, 429-then-yes, two default yes
        calls_first = llm.total_calls
        # 429 twice then an answer: three attempts; 500: every attempt; the rest once
        rows = judge.candidates(db, demo_ds, 10)
        by_how = {plan[r["text"]].split(":")[0]: r for r in rows}
        user_of = lambda how: by_how[how]["messages"][-1]["content"]
        assert llm.calls[user_of("429x2")] == 3
        assert llm.calls[user_of("500")] == judge.RETRIES + 1
        assert llm.calls[user_of("400")] == 1 and llm.calls[user_of("garbage")] == 1
        assert set(llm.auth_headers) == {f"Bearer {KEY}"}

        # a second run spends nothing on rows already judged
        assert judge.plan(db, demo_ds, cfg.model, limit=10) == judge.JudgePlan(rows=10, cached=10, calls=0)
        again = judge.run_judge(db, demo_ds, lead, cfg, limit=10, timeout=0.5)
        assert (again.calls, again.cached) == (0, 10) and llm.total_calls == calls_first
        # another model is another cache key
        assert judge.plan(db, demo_ds, "other-model", limit=10).calls == 10

    run_id = store.scalar(db, "SELECT MAX(id) FROM runs WHERE dataset_id=?", [demo_ds.id])
    scored = {
        r["idx"]: r
        for r in db.query(
            "SELECT idx, judge_verdict, judge_label, judge_reason, fused_action, fused_trust, quality FROM scores WHERE run_id=?",
            [run_id],
        )
    }
    reasons = {plan[r["text"]].split(":")[0]: scored[r["idx"]] for r in rows}
    assert reasons["no"]["judge_verdict"] == "NO" and reasons["no"]["fused_action"] == "relabel"
    assert reasons["no"]["judge_label"] == plan[by_how["no"]["text"]][3:]
    assert (
        reasons["yes"]["fused_action"] == judge.AMBIGUOUS and reasons["yes"]["fused_trust"] > reasons["yes"]["quality"]
    )
    assert "two lines" in reasons["garbage"]["judge_reason"]
    assert "not in the label set" in reasons["outside"]["judge_reason"]
    assert "no answer within 0.5 s" in reasons["slow"]["judge_reason"]
    assert "HTTP 500" in reasons["500"]["judge_reason"] and "HTTP 400" in reasons["400"]["judge_reason"]
    assert all(reasons[h]["fused_action"] == "needs review" for h in ("garbage", "outside", "slow", "500", "400"))
    assert reasons["429x2"]["judge_verdict"] == "YES"

    # the key is nowhere in the database or its audit trail
    dump = "\n".join(db.conn.iterdump())
    assert KEY not in dump and "test-model" in dump

    # the queue: filter and order by the fused action; the judge's label travels with the suspect
    s = workflow.claim_next(db, demo_ds, annotator, action="relabel")
    assert (
        s.idx == by_how["no"]["idx"] and s.judge["verdict"] == "NO" and s.judge["label"] == reasons["no"]["judge_label"]
    )
    workflow.release(db, demo_ds, s.idx, annotator)
    s = workflow.claim_next(db, demo_ds, annotator, action=judge.AMBIGUOUS)
    assert s.judge["verdict"] == "YES"
    workflow.release(db, demo_ds, s.idx, annotator)
    s = workflow.claim_next(db, demo_ds, annotator, order="action")
    assert s.idx == by_how["no"]["idx"]
    counts = judge.verdict_counts(db, demo_ds)
    assert (counts["YES"], counts["NO"], counts["UNKNOWN"]) == (4, 1, 5) and counts["agreement"] == pytest.approx(1 / 5)


def test_cancel_keeps_what_was_judged_and_stops_calling(demo_ds, db, lead):
    cancel = threading.Event()
    seen = []

    def progress(f, msg):
        seen.append(msg)
        if msg.startswith("Judged 2 "):
            cancel.set()

    with FakeLLM(lambda text, given, labels: "yes") as llm:
        got = judge.run_judge(
            db, demo_ds, lead, judge.JudgeConfig(llm.url, "m"), limit=25, progress=progress, cancel=cancel, workers=1
        )
        assert got.cancelled and 2 <= got.calls < 25 and llm.total_calls < 25
    stored = store.scalar(db, "SELECT COUNT(*) FROM judgments WHERE dataset_id=?", [demo_ds.id])
    assert stored == got.calls
    assert store.scalar(db, "SELECT COUNT(*) FROM audit_log WHERE action='judge_run'") == 1


def test_cli_judge_with_limit_uses_the_environment(tmp_path):
    db = tmp_path / "cli.db"
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    assert (
        subprocess.run(
            [sys.executable, "-m", "review.cli", "demo", "--db", str(db)], env=env, capture_output=True
        ).returncode
        == 0
    )
    with FakeLLM(lambda text, given, labels: "yes") as llm:
        env.update({judge.ENV_URL: llm.url, judge.ENV_MODEL: "m", judge.ENV_KEY: KEY})
        run = lambda: subprocess.run(
            [sys.executable, "-m", "review.cli", "judge", "demo-support-tickets", "--limit", "4", "--db", str(db)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        r = run()
        assert r.returncode == 0, r.stderr
        assert "4 rows: 4 calls, 0 cached; YES 4, NO 0, UNKNOWN 0" in r.stdout
        r = run()
        assert "4 rows: 0 calls, 4 cached" in r.stdout and llm.total_calls == 4
        assert KEY not in r.stdout + r.stderr
    env.pop(judge.ENV_URL)
    r = subprocess.run(
        [sys.executable, "-m", "review.cli", "judge", "demo-support-tickets", "--db", str(db)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "LLM_BASE_URL" in r.stderr


# ----------------------------------------------------------------------------- precision and spot checks


def test_flag_precision_remaining_errors_and_spot_checks(demo_ds, db, annotator, lead):
    flagged = judge.candidates(db, demo_ds)
    # the annotator decides the first 12 flagged rows: relabel the injected errors, keep the rest
    truth = demo.demo_truth()  # id -> true label of the rows whose label was corrupted
    wrong = 0
    for _ in range(12):
        s = workflow.claim_next(db, demo_ds, annotator)
        true = truth.get(s.key)
        if true and true != s.current_label:
            workflow.decide(db, demo_ds, s.idx, annotator, "relabel", s.version, new_label=true)
            wrong += 1
        else:
            workflow.decide(db, demo_ds, s.idx, annotator, "keep", s.version)
    res = precision.flag_precision(db, demo_ds)
    assert res.decided == 12 and res.wrong == wrong
    # exclude from training and ambiguous say nothing of the label: neither right nor wrong
    s = workflow.claim_next(db, demo_ds, annotator)
    workflow.decide(db, demo_ds, s.idx, annotator, "exclude", s.version)
    s = workflow.claim_next(db, demo_ds, annotator)
    workflow.decide(db, demo_ds, s.idx, annotator, "ambiguous", s.version, note="fits two classes")
    res = precision.flag_precision(db, demo_ds)
    assert res.decided == 12 and res.wrong == wrong
    assert sum(b.open for b in res.bands) == len(flagged) - 14
    decided = 14
    assert sum(b.flagged for b in res.bands) == len(flagged)
    p, lo, hi = precision.wilson(wrong, 12)
    assert res.precision == pytest.approx(p) and lo <= p <= hi
    rem = res.remaining
    assert rem.open == len(flagged) - decided and rem.low <= rem.estimate <= rem.high <= rem.open

    with pytest.raises(PermissionDenied):
        precision.add_spot_checks(db, demo_ds, annotator, 5)
    assert precision.add_spot_checks(db, demo_ds, lead, 5, seed=3) == 5
    spots = [r[0] for r in db.execute("SELECT idx FROM spot_checks WHERE dataset_id=?", [demo_ds.id])]
    seen = []
    for k in range(5):
        s = workflow.claim_next(db, demo_ds, annotator, spot=True)
        assert s.idx in spots and s.spot_check and s.idx not in seen
        if k == 0:
            workflow.decide(
                db,
                demo_ds,
                s.idx,
                annotator,
                "relabel",
                s.version,
                new_label=next(l for l in demo_ds.labels if l != s.current_label),
            )
        else:
            workflow.decide(db, demo_ds, s.idx, annotator, "keep", s.version)
        seen.append(s.idx)
    assert workflow.claim_next(db, demo_ds, annotator, spot=True) is None
    sp = precision.spot_results(db, demo_ds)
    assert (sp.added, sp.decided, sp.wrong) == (5, 5, 1) and sp.miss_rate == pytest.approx(0.2)
    est, lo, hi = sp.missed_estimate
    assert est == pytest.approx(0.2 * sp.unflagged) and lo < est < hi


# ----------------------------------------------------------------------------- pages (AppTest)

import time  # noqa: E402

from streamlit.testing.v1 import AppTest  # noqa: E402

APP = ROOT / "app.py"


def open_page(page: str, who, db_path, monkeypatch) -> AppTest:
    monkeypatch.setenv("REVIEW_DB", str(db_path))
    at = AppTest.from_file(str(APP), default_timeout=90)
    at.session_state["user"] = (who.name, who.role, time.time())
    at.session_state["dataset_name"] = "demo-support-tickets"
    at.switch_page(page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_judge_tab_without_endpoint_says_how_to_set_it_up(demo_ds, db, db_path, lead, monkeypatch):
    for k in (judge.ENV_URL, judge.ENV_MODEL, judge.ENV_KEY):
        monkeypatch.delenv(k, raising=False)
    at = open_page("pages/2_Audit.py", lead, db_path, monkeypatch)
    assert [t.label for t in at.tabs][-3:] == ["Judge", "Precision", "Beyond label errors"]
    assert any("LLM_BASE_URL" in c.value for c in at.caption)
    assert at.button(key="judge_run").disabled


def test_judge_tab_shows_the_cost_runs_and_the_queue_shows_verdicts(demo_ds, db, db_path, lead, annotator, monkeypatch):
    plan = behaviours(db, demo_ds)
    with FakeLLM(lambda text, given, labels: plan[text]) as llm:
        monkeypatch.setenv(judge.ENV_URL, llm.url)
        monkeypatch.setenv(judge.ENV_MODEL, "test-model")
        monkeypatch.setenv(judge.ENV_KEY, KEY)
        at = open_page("pages/2_Audit.py", lead, db_path, monkeypatch)
        assert llm.total_calls == 0  # a page load calls nothing
        at.number_input(key="judge_limit").set_value(4)
        at.run()
        assert at.button(key="judge_run").label == "Run the judge on 4 rows (4 calls, 0 cached)"
        assert llm.total_calls == 0
        at.button(key="judge_run").click()
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        assert any(s.value.startswith("Judged 4 rows: 4 calls, 0 cached; YES 1, NO 1, UNKNOWN 2") for s in at.success)
        assert at.button(key="judge_run").label == "Run the judge on 4 rows (0 calls, 4 cached)"
        assert llm.total_calls == 4
        assert KEY not in "\n".join(db.conn.iterdump())
    at = open_page("pages/3_Review.py", annotator, db_path, monkeypatch)
    at.radio(key="action_filter").set_value("Relabel")
    at.run()
    no_label = plan[judge.candidates(db, demo_ds, 1)[0]["text"]][3:]
    assert f"judge: {no_label}" in "\n".join(h.proto.body for h in at.get("html"))


def test_precision_tab_and_spot_checks_through_the_pages(demo_ds, db, db_path, lead, annotator, monkeypatch):
    for _ in range(6):
        s = workflow.claim_next(db, demo_ds, annotator)
        workflow.decide(db, demo_ds, s.idx, annotator, "keep", s.version)
    at = open_page("pages/2_Audit.py", lead, db_path, monkeypatch)
    assert "6" in [m.value for m in at.metric]
    assert any(m.label == "Really wrong" and m.value == "0%" for m in at.metric)
    at.number_input(key="spot_n").set_value(3)
    at.run()
    at.button(key="spot_add").click()
    at.run()
    assert any("Added 3 rows" in s.value for s in at.success)
    at = open_page("pages/3_Review.py", annotator, db_path, monkeypatch)
    at.radio(key="action_filter").set_value("Spot checks")
    at.run()
    assert any("Spot check: a random row the audit did not flag" in i.value for i in at.info)
