"""The judge against hostile endpoints (tests/hostile_llm.py, real sockets on 127.0.0.1).

1. The API key goes only to the URL configured beside it: a URL typed on the page runs without
   it (and the tab says so before the run), redirects are not followed, and a key echoed back
   (a 401 body, an answer, a URL) is scrubbed from every stored or shown string.
2. Calls are bounded: a total deadline per call (connect, headers, body, retries), a size cap
   per response, every transport error an UNKNOWN with a reason, Cancel stopping calls in flight.
"""

from __future__ import annotations

import os
import threading
import time
import tracemalloc

import pytest

from review import auth, datasets, demo, judge, store
from tests.helpers import ROOT, copy_db
from tests.hostile_llm import Hostile
from tests.llm_server import FakeLLM

KEY = "sk-hostile-SECRET-9317abc"
OTHER = "sk-other-SECRET-5555xyz"
MSGS = judge.prompt(["a", "b"], "some text", "a")


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(judge, "BACKOFF_S", 0.01)
    monkeypatch.setattr(judge, "MAX_BACKOFF_S", 0.05)
    for k in (judge.ENV_URL, judge.ENV_MODEL, judge.ENV_KEY):
        monkeypatch.delenv(k, raising=False)


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """The demo, audited once per module; each test works on a copy."""
    path = tmp_path_factory.mktemp("tpl") / "template.db"
    db = store.connect(path)
    admin = auth.create_user(db, "alice", "admin", "correct horse battery", None)
    lead = auth.create_user(db, "lena", "lead", "correct horse battery", admin)
    auth.create_user(db, "anna", "annotator", "correct horse battery", admin)
    demo.load_demo(db, lead)
    db.conn.close()
    return path, lead


@pytest.fixture
def env(template, tmp_path):
    path, lead = template
    dest = copy_db(path, tmp_path / "t.db")
    db = store.connect(dest)
    yield db, datasets.get(db, demo.DEMO_NAME), lead, dest
    db.conn.close()


def everything(db) -> str:
    """Every string the database holds (judgments, scores, the audit trail)."""
    return "\n".join(db.conn.iterdump())


def no_key_in(text: str, *keys: str) -> None:
    for k in keys or (KEY,):
        assert k not in text
        assert k[6:-3] not in text  # not even a piece of it
    assert "Bearer sk-" not in text


# ============================================================================ 1. where the key goes


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_a_redirect_is_not_followed_and_the_other_origin_never_sees_the_key(code):
    with Hostile("ok") as other, Hostile(f"redirect:{code}:{other.url}/chat/completions") as first:
        answer, why = judge.call(judge.JudgeConfig(first.url, "m", KEY), MSGS, timeout=5)
        time.sleep(0.2)
        assert answer is None
        assert f"HTTP {code}" in why and "redirect" in why and other.url in why, why
        assert other.requests == []  # never reached, with or without the key
        assert first.auth_headers == [f"Bearer {KEY}"]  # the configured URL did get it
        no_key_in(why)


def test_a_redirect_through_run_judge_is_unknown_naming_where_it_pointed(env):
    db, ds, lead, _ = env
    with Hostile("ok") as other, Hostile("ok") as first:
        first.behave = lambda req: f"redirect:302:{other.url}/chat/completions?k={KEY}"
        got = judge.run_judge(db, ds, lead, judge.JudgeConfig(first.url, "m", KEY), limit=3, workers=2, timeout=5)
        assert (got.UNKNOWN, got.calls) == (3, 3)
        assert other.requests == []
    reasons = [r[0] for r in db.execute("SELECT reason FROM judgments")]
    assert len(reasons) == 3 and all("redirect" in r and f"127.0.0.1:{other.port}" in r for r in reasons), reasons
    no_key_in(everything(db))


def test_a_401_echoing_the_key_is_scrubbed_everywhere_it_is_stored_or_shown(env, monkeypatch):
    db, ds, lead, path = env
    rows = judge.candidates(db, ds, 6)
    plan = {r["text"]: ("echo401" if k % 2 == 0 else "echo200") for k, r in enumerate(rows)}

    def behave(req):
        import json

        user = json.loads(req["body"])["messages"][-1]["content"]
        return next(how for text, how in plan.items() if text in user)

    with Hostile(behave) as llm:
        # the key also in the URL (userinfo and query): the trail's endpoint and the errors must not show it
        cfg = judge.JudgeConfig(llm.url.replace("http://", f"http://user:{KEY}@") + f"?api_key={KEY}", "m", KEY)
        got = judge.run_judge(db, ds, lead, cfg, limit=6, workers=3, timeout=5)
        assert got.UNKNOWN == 6
        assert set(llm.auth_headers) == {f"Bearer {KEY}"}  # the server did see it: it is the configured one
    dump = everything(db)
    no_key_in(dump)
    reasons = [r[0] for r in db.execute("SELECT reason FROM judgments")]
    answers = [r[0] for r in db.execute("SELECT answer FROM judgments")]
    scored = [r[0] for r in db.execute("SELECT judge_reason FROM scores WHERE judge_reason IS NOT NULL")]
    assert len(scored) == 6
    assert any("HTTP 401" in r and judge.REMOVED in r for r in reasons), reasons
    assert any(judge.REMOVED in a for a in answers), answers
    trail = store.scalar(db, "SELECT payload FROM audit_log WHERE action='judge_run'")
    assert "127.0.0.1" in trail
    no_key_in(trail)

    # and what an annotator sees on the Review page
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("REVIEW_DB", str(path))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.session_state["user"] = ("anna", "annotator", time.time())
    at.session_state["dataset_name"] = demo.DEMO_NAME
    at.switch_page("pages/3_Review.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    shown = "\n".join(str(getattr(e, "value", "")) for e in [*at.caption, *at.markdown, *at.info, *at.error])
    assert "The judge gave no usable answer" in shown
    no_key_in(shown)


def test_scrub_removes_the_key_and_anything_shaped_like_a_bearer_token():
    s = judge.scrub(f'x {KEY} y Authorization: Bearer abc.DEF-123_x z "api_key": "zzz-top" and {KEY[:-1]}', KEY)
    assert KEY not in s and "abc.DEF-123_x" not in s and "zzz-top" not in s
    assert s.count(judge.REMOVED) >= 3
    assert judge.scrub("nothing here", KEY) == "nothing here"
    assert (
        judge.scrub("basic questions, Basic Plan, bearer of news", KEY) == "basic questions, Basic Plan, bearer of news"
    )
    assert judge.scrub("Authorization: Basic dXNlcjpwYXNz", KEY) == f"Authorization: Basic {judge.REMOVED}"
    assert judge.scrub(f"x%20Bearer%20{KEY}", "") == f"x%20Bearer {judge.REMOVED}"
    assert judge.scrub(f"http://u:{KEY}@host/v1?key={KEY}", "").count(KEY) == 0


def test_a_typed_url_other_than_the_configured_one_runs_without_the_key(env, monkeypatch):
    db, ds, lead, _ = env
    with Hostile("ok") as configured, Hostile("ok") as typed:
        monkeypatch.setenv(judge.ENV_URL, configured.url)
        monkeypatch.setenv(judge.ENV_KEY, KEY)
        monkeypatch.setenv(judge.ENV_MODEL, "m")
        assert judge.config_from({}).api_key == KEY  # the configured URL: with the key
        same = judge.config_from({"base_url": configured.url.replace("127.0.0.1", "127.0.0.1") + "/"})
        assert same.api_key == KEY and not same.key_withheld  # the same URL typed: still with it
        cfg = judge.config_from({"base_url": typed.url})
        assert cfg.api_key == "" and cfg.key_withheld and cfg.base_url == typed.url
        assert KEY not in repr(cfg)
        for sneaky in (
            f"http://127.0.0.1:{configured.port}@127.0.0.1:{typed.port}/v1",  # userinfo that looks like the host
            f"https://127.0.0.1:{configured.port}/v1",  # another scheme
            f"http://127.0.0.1:{configured.port}/v2",  # another path
            f"http://localhost:{configured.port}/v1",
        ):  # another name for it
            c = judge.config_from({"base_url": sneaky})
            assert c.api_key == "" and c.key_withheld, sneaky
        got = judge.run_judge(db, ds, lead, cfg, limit=3, timeout=5)
        assert got.YES == 3
        assert typed.auth_headers == ["", "", ""] and configured.requests == []

        # secrets: a key is bound to the URL beside it, and the environment's key to the environment's URL
        sec = {"base_url": typed.url, "api_key": OTHER}
        assert judge.config_from({}, secrets=sec).api_key == OTHER  # secrets' URL wins, its key with it
        assert judge.config_from({"base_url": configured.url}, secrets=sec).api_key == KEY  # the env's pair
        c = judge.config_from({"base_url": "http://127.0.0.1:9/v1"}, secrets=sec)
        assert c.api_key == "" and c.key_withheld
        monkeypatch.delenv(judge.ENV_URL)
        c = judge.config_from({"base_url": typed.url})  # a key with no URL beside it
        assert c.api_key == "" and c.key_withheld


def test_the_judge_tab_says_the_typed_url_runs_without_the_key_before_the_run(env, monkeypatch):
    db, ds, lead, path = env
    from streamlit.testing.v1 import AppTest

    with Hostile("ok") as configured, Hostile("ok") as typed:
        monkeypatch.setenv(judge.ENV_URL, configured.url)
        monkeypatch.setenv(judge.ENV_KEY, KEY)
        monkeypatch.setenv(judge.ENV_MODEL, "m")
        monkeypatch.setenv("REVIEW_DB", str(path))
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
        at.session_state["user"] = (lead.name, lead.role, time.time())
        at.session_state["dataset_name"] = demo.DEMO_NAME
        at.switch_page("pages/2_Audit.py")
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        assert not any("WITHOUT the key" in w.value for w in at.warning)
        at.text_input(key="judge_base_url").set_value(typed.url)
        at.number_input(key="judge_limit").set_value(2)
        at.run()
        warned = [w.value for w in at.warning if "WITHOUT the key" in w.value]
        assert warned and typed.url in warned[0], [w.value for w in at.warning]
        assert typed.requests == [] and configured.requests == []
        at.button(key="judge_run").click()
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        assert typed.auth_headers == ["", ""] and configured.requests == []
        assert any("Judged 2 rows" in s.value for s in at.success)
    no_key_in(everything(db))


# ============================================================================ 2. bounded calls


@pytest.mark.parametrize("how", ["huge", "huge-nolength", "huge-chunked"])
def test_a_huge_response_is_refused_at_the_cap_without_being_read_whole(how):
    with Hostile(how) as llm:
        tracemalloc.start()
        try:
            t0 = time.monotonic()
            answer, why = judge.call(judge.JudgeConfig(llm.url, "m", KEY), MSGS, timeout=20)
            elapsed = time.monotonic() - t0
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        deadline = time.monotonic() + 5
        while not llm.sent and time.monotonic() < deadline:
            time.sleep(0.05)
    assert answer is None and "1 MiB" in why and "larger" in why, why
    assert peak < 16 * 2**20, f"peak {peak / 2**20:.1f} MiB"
    assert llm.sent and llm.sent[0] < 64 * 2**20, llm.sent  # the client hung up long before 800 MiB
    assert elapsed < 10


@pytest.mark.parametrize("how", ["drip-headers", "drip-body", "silent"])
def test_a_drip_ends_at_the_deadline(how):
    with Hostile(how, drip_s=15) as llm:
        t0 = time.monotonic()
        answer, why = judge.call(judge.JudgeConfig(llm.url, "m", KEY), MSGS, timeout=2)
        elapsed = time.monotonic() - t0
    assert answer is None and "no answer within 2 s" in why, why
    assert 1.8 < elapsed < 3.5, elapsed


BROKEN = {
    "truncated": "cut off",
    "badstatus": "not HTTP",
    "reset": "reset",
    "close": "closed",
    "deep-json": "JSON",
    "bad-utf8": "JSON",
    "not-json": "JSON",
    "long-header": "",
    "many-headers": "",
}


@pytest.mark.parametrize("how", sorted(BROKEN))
def test_a_broken_response_is_a_reason_not_an_exception(how):
    with Hostile(how) as llm:
        answer, why = judge.call(judge.JudgeConfig(llm.url, "m", KEY), MSGS, timeout=5)
    assert answer is None and why and BROKEN[how] in why, why
    no_key_in(why)


def test_every_transport_failure_in_a_run_is_unknown_with_a_reason(env):
    db, ds, lead, _ = env
    hows = [
        "truncated",
        "badstatus",
        "reset",
        "close",
        "deep-json",
        "bad-utf8",
        "not-json",
        "huge-chunked",
        "drip-body",
        "long-header",
        "echo401",
        "ok",
    ]
    rows = judge.candidates(db, ds, len(hows))
    plan = {}
    for r, how in zip(rows, hows):
        plan.setdefault(r["text"], how)

    def behave(req):
        import json

        user = json.loads(req["body"])["messages"][-1]["content"]
        return next(h for text, h in plan.items() if f'"""\n{text}\n"""' in user)

    with Hostile(behave, drip_s=10) as llm:
        t0 = time.monotonic()
        got = judge.run_judge(db, ds, lead, judge.JudgeConfig(llm.url, "m", KEY), limit=len(hows), workers=4, timeout=2)
        assert time.monotonic() - t0 < 8
    assert got.calls == len(hows) and got.YES == sum(1 for h in plan.values() if h == "ok")
    assert got.UNKNOWN == len(hows) - got.YES
    reasons = [r[0] for r in db.execute("SELECT reason FROM judgments WHERE verdict='UNKNOWN'")]
    assert len(reasons) == got.UNKNOWN and all(r and "Traceback" not in r for r in reasons), reasons
    no_key_in(everything(db))


def test_retries_respect_the_deadline_and_cancel(monkeypatch):
    monkeypatch.setattr(judge, "MAX_BACKOFF_S", 200.0)
    with Hostile("429-long") as llm:
        t0 = time.monotonic()
        answer, why = judge.call(judge.JudgeConfig(llm.url, "m"), MSGS, timeout=1.5)
        assert answer is None and "429" in why and time.monotonic() - t0 < 2.5, why
        assert len(llm.requests) == 1  # Retry-After: 100 is past the deadline: no second try
    monkeypatch.setattr(judge, "BACKOFF_S", 5.0)
    monkeypatch.setattr(judge, "MAX_BACKOFF_S", 8.0)
    with FakeLLM(lambda text, given, labels: "500") as llm:
        t0 = time.monotonic()
        answer, why = judge.call(
            judge.JudgeConfig(llm.url, "m"), MSGS, timeout=30, cancelled=lambda: time.monotonic() - t0 > 0.5
        )
        assert answer is None and why == "cancelled" and time.monotonic() - t0 < 1.5
        t0 = time.monotonic()
        answer, why = judge.call(judge.JudgeConfig(llm.url, "m"), MSGS, timeout=1.0)
        assert answer is None and "HTTP 500" in why and time.monotonic() - t0 < 2.0, why


def test_cancel_stops_calls_in_flight(env):
    db, ds, lead, _ = env
    cancel = threading.Event()
    with Hostile("drip-body", drip_s=20) as llm:
        timer = threading.Timer(1.0, cancel.set)
        t0 = time.monotonic()
        timer.start()
        got = judge.run_judge(
            db, ds, lead, judge.JudgeConfig(llm.url, "m", KEY), limit=6, workers=3, timeout=30, cancel=cancel
        )
        elapsed = time.monotonic() - t0
        timer.cancel()
    assert got.cancelled and got.calls == 0
    assert elapsed < 1.0 + 2.0, elapsed
    assert store.scalar(db, "SELECT COUNT(*) FROM judgments") == 0


def test_a_stopped_script_run_stops_the_calls_in_flight(env):
    """Streamlit's Cancel reruns the script: the next progress call raises; it must come while calls drip."""
    db, ds, lead, _ = env

    class Stop(Exception):
        pass

    t0 = time.monotonic()

    def progress(f, msg):
        if time.monotonic() - t0 > 1.0:
            raise Stop

    with Hostile("drip-headers", drip_s=20) as llm:
        with pytest.raises(Stop):
            judge.run_judge(
                db, ds, lead, judge.JudgeConfig(llm.url, "m", KEY), limit=4, workers=2, timeout=30, progress=progress
            )
        assert time.monotonic() - t0 < 3.0
    assert store.scalar(db, "SELECT COUNT(*) FROM audit_log WHERE action='judge_run'") == 1


# ============================================================================ TLS and proxies


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 (openssl), trusted only where a test says so."""
    import shutil
    import subprocess

    if not shutil.which("openssl"):  # CI does not skip: the TLS cases must run there
        if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
            pytest.fail("CI: openssl is missing: install it (apt-get install openssl) to test the judge over TLS")
        pytest.skip("openssl is missing")
    d = tmp_path_factory.mktemp("tls")
    crt, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(crt),
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return str(crt), str(key)


def test_https_verifies_the_certificate_and_is_bounded_too(cert, monkeypatch):
    with Hostile("ok", tls=cert) as llm:
        answer, why = judge.call(judge.JudgeConfig(llm.url, "m", KEY), MSGS, timeout=5)
        assert answer is None and "TLS failed" in why and "certificate" in why, why  # not trusted: refused
        assert llm.requests == []  # the key never went out
        monkeypatch.setenv("SSL_CERT_FILE", cert[0])
        answer, why = judge.call(judge.JudgeConfig(llm.url, "m", KEY), MSGS, timeout=5)
        assert (answer, why) == ("VERDICT: YES\nCORRECT_LABEL: SAME", "answered") and llm.auth_headers == [
            f"Bearer {KEY}"
        ]
    monkeypatch.setenv("SSL_CERT_FILE", cert[0])
    with Hostile("drip-body", tls=cert, drip_s=15) as llm:
        t0 = time.monotonic()
        answer, why = judge.call(judge.JudgeConfig(llm.url, "m", KEY), MSGS, timeout=2)
        assert answer is None and "no answer within 2 s" in why and time.monotonic() - t0 < 3.5, why
        t0 = time.monotonic()
        answer, why = judge.call(
            judge.JudgeConfig(llm.url, "m", KEY), MSGS, timeout=30, cancelled=lambda: time.monotonic() - t0 > 1.0
        )
        assert why == "cancelled" and time.monotonic() - t0 < 2.5


def test_the_environment_proxies_are_honoured(cert, monkeypatch):
    for k in (
        "no_proxy",
        "NO_PROXY",
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", cert[0])
    with Hostile("proxy") as proxy, Hostile("ok", tls=cert) as target:
        monkeypatch.setenv("http_proxy", proxy.origin)
        answer, why = judge.call(judge.JudgeConfig("http://127.0.0.1:9/v1", "m"), MSGS, timeout=5)
        assert why == "answered" and proxy.requests[0]["path"] == "http://127.0.0.1:9/v1/chat/completions"
        monkeypatch.setenv("https_proxy", proxy.origin)
        answer, why = judge.call(judge.JudgeConfig(target.url, "m", KEY), MSGS, timeout=5)
        assert why == "answered", why
        connect = proxy.requests[1]
        assert connect["method"] == "CONNECT" and connect["path"] == f"127.0.0.1:{target.port}"
        assert "authorization" not in connect["headers"]  # the key travels inside the TLS tunnel only
        assert target.auth_headers == [f"Bearer {KEY}"]
        monkeypatch.setenv("no_proxy", "127.0.0.1")
        answer, why = judge.call(judge.JudgeConfig(target.url, "m", KEY), MSGS, timeout=5)
        assert why == "answered" and len(proxy.requests) == 2  # exempted: straight to the endpoint


def test_a_refused_connection_and_an_unknown_host_are_reasons():
    with Hostile("ok") as llm:
        port = llm.port
    answer, why = judge.call(judge.JudgeConfig(f"http://127.0.0.1:{port}/v1", "m", KEY), MSGS, timeout=3)
    assert answer is None and "could not reach" in why, why
    answer, why = judge.call(judge.JudgeConfig("http://no-such-host.invalid/v1", "m", KEY), MSGS, timeout=3)
    assert answer is None and "could not reach" in why, why
