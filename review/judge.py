"""A second opinion on flagged rows from an LLM judge (any OpenAI-compatible chat endpoint).

The judge never trained on the labels: it is shown the label set, the text and the given
label and must answer exactly two lines, ``VERDICT: YES|NO`` and
``CORRECT_LABEL: <label>|SAME``. Anything else (another format, a label outside the set, a
timeout, an HTTP error after retries) is recorded as UNKNOWN with the reason, never
guessed. Answers are cached in SQLite by (dataset, row, prompt hash, model), so a second
run spends nothing on rows already judged. The API key comes from the environment (or the
page's secrets) and is never written to the database, the audit trail or a log.

Fused action per flagged row: relabel (judge says NO and names a label), keep but
ambiguous (judge says YES), needs review (not judged, or UNKNOWN); unflagged rows: keep.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import re
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Callable

import sqlite_utils

from . import store
from .auth import User, require
from .datasets import Dataset, latest_run
from .errors import ReviewError

Progress = Callable[[float, str], None]
ENV_URL, ENV_MODEL, ENV_KEY = "LLM_BASE_URL", "LLM_MODEL", "LLM_API_KEY"
TIMEOUT_S = 30.0
RETRIES = 4                 # further attempts after a 429 or 5xx
BACKOFF_S = 0.5             # first wait; doubles, with jitter, capped by MAX_BACKOFF_S
MAX_BACKOFF_S = 8.0
WORKERS = 4                 # calls in flight at once
MAX_TEXT = 4000             # characters of the text sent to the judge
AMBIGUOUS = "keep but ambiguous"
SETUP_HELP = (f"Set {ENV_URL} (an OpenAI-compatible endpoint, e.g. https://api.openai.com/v1), {ENV_MODEL} and "
              f"{ENV_KEY} in the environment of the app, or put llm_base_url, llm_model and llm_api_key in "
              ".streamlit/secrets.toml. The key is read from there only; it is never stored.")

SYSTEM = ("You check labels of a text classification dataset. You answer with exactly two lines and nothing else:\n"
          "VERDICT: YES or NO (YES if the given label is correct for the text, NO if it is wrong)\n"
          "CORRECT_LABEL: the correct label, copied exactly from the label set, or SAME if the given label is correct")


@dataclass(frozen=True)
class JudgeConfig:
    base_url: str
    model: str
    api_key: str = ""

    def __repr__(self) -> str:   # never print the key
        return f"JudgeConfig(base_url={self.base_url!r}, model={self.model!r}, api_key={'***' if self.api_key else ''!r})"


def config_from(values: dict | None = None) -> JudgeConfig | None:
    """A config from ``values`` (keys base_url, model, api_key; blanks ignored) over the
    environment (LLM_BASE_URL, LLM_MODEL, LLM_API_KEY). None when no endpoint or model is set."""
    values = {k: (v or "").strip() for k, v in (values or {}).items()}
    url = values.get("base_url") or os.environ.get(ENV_URL, "").strip()
    model = values.get("model") or os.environ.get(ENV_MODEL, "").strip()
    key = values.get("api_key") or os.environ.get(ENV_KEY, "").strip()
    if not url or not model:
        return None
    if not re.match(r"^https?://", url):
        raise ReviewError(f"The judge's base URL {url!r} must start with http:// or https://.")
    return JudgeConfig(url.rstrip("/"), model, key)


def prompt(labels: list[str], text: str, given: str) -> list[dict]:
    """The chat messages for one row."""
    shown = text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + " …"
    user = (f"Label set: {', '.join(labels)}\n\nText:\n\"\"\"\n{shown}\n\"\"\"\n\nGiven label: {given}\n\n"
            "Is the given label correct? Answer with the two lines only.")
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def prompt_hash(messages: list[dict]) -> str:
    return hashlib.sha256(json.dumps(messages, ensure_ascii=False, sort_keys=True).encode("utf-8")).hexdigest()[:32]


def parse_answer(answer: str, labels: list[str], given: str) -> tuple[str, str | None, str]:
    """The judge's text -> (verdict YES|NO|UNKNOWN, correct label or None, reason)."""
    lines = [l.strip() for l in (answer or "").strip().splitlines() if l.strip()]
    if len(lines) != 2:
        return "UNKNOWN", None, f"expected two lines, got {len(lines)}: {answer[:200]!r}"
    m1 = re.fullmatch(r"VERDICT:\s*(YES|NO)", lines[0], flags=re.I)
    m2 = re.fullmatch(r"CORRECT_LABEL:\s*(.+)", lines[1], flags=re.I)
    if not m1 or not m2:
        return "UNKNOWN", None, f"not in the VERDICT / CORRECT_LABEL format: {answer[:200]!r}"
    verdict, label = m1.group(1).upper(), m2.group(1).strip().strip("\"'`")
    if label.upper() == "SAME":
        label = given
    if label not in labels:
        return "UNKNOWN", None, f"label {label!r} is not in the label set"
    if verdict == "YES" and label != given:
        return "UNKNOWN", None, f"says YES but names another label ({label!r})"
    if verdict == "NO" and label == given:
        return "UNKNOWN", None, "says NO but names no other label"
    return verdict, (label if verdict == "NO" else None), "answered"


class _Retryable(Exception):
    def __init__(self, reason: str, wait_s: float | None = None):
        super().__init__(reason)
        self.wait_s = wait_s


def call(config: JudgeConfig, messages: list[dict], timeout: float = TIMEOUT_S, retries: int = RETRIES,
         cancelled: Callable[[], bool] = lambda: False) -> tuple[str | None, str]:
    """POST {base_url}/chat/completions -> (answer text or None, reason). Retries 429 and 5xx
    with exponential backoff (Retry-After honoured); a timeout or other HTTP error ends it."""
    body = json.dumps({"model": config.model, "messages": messages, "temperature": 0, "max_tokens": 40}).encode()
    headers = {"Content-Type": "application/json"}
    if config.api_key:
        headers["Authorization"] = f"Bearer {config.api_key}"
    last = ""
    for attempt in range(retries + 1):
        if cancelled():
            return None, "cancelled"
        try:
            req = urllib.request.Request(f"{config.base_url}/chat/completions", data=body, headers=headers, method="POST")
            with urllib.request.urlopen(req, timeout=timeout) as r:
                data = json.loads(r.read().decode("utf-8"))
            try:
                return str(data["choices"][0]["message"]["content"]), "answered"
            except (KeyError, IndexError, TypeError):
                return None, f"the response has no choices[0].message.content: {str(data)[:200]!r}"
        except urllib.error.HTTPError as e:
            if e.code == 429 or 500 <= e.code < 600:
                retry_after = e.headers.get("Retry-After") if e.headers else None
                last = f"HTTP {e.code}" + (" (rate limited)" if e.code == 429 else "")
                wait_s = float(retry_after) if retry_after and retry_after.replace(".", "", 1).isdigit() else None
            else:
                return None, f"HTTP {e.code}: {e.read()[:200].decode('utf-8', 'replace')}"
        except (TimeoutError, OSError) as e:   # socket timeouts, refused connections, URLError
            reason = getattr(e, "reason", e)
            if isinstance(reason, TimeoutError) or "timed out" in str(reason):
                return None, f"no answer within {timeout:g} s"
            return None, f"could not reach {config.base_url}: {reason}"
        except ValueError as e:
            return None, f"the response is not JSON: {e}"
        if attempt < retries:
            time.sleep(min(MAX_BACKOFF_S, wait_s if wait_s is not None else BACKOFF_S * 2 ** attempt * (1 + random.random() / 2)))
    return None, f"{last} after {retries + 1} attempts"


def candidates(db: sqlite_utils.Database, ds: Dataset, limit: int | None = None) -> list[dict]:
    """The flagged rows of the latest run, most suspect first (at most ``limit``), with their prompt hash."""
    if ds.task != "text" or ds.mapping.multi:
        raise ReviewError("The judge works on single-label text classification datasets.")
    run = latest_run(db, ds.id, "audit")
    if not run:
        raise ReviewError(f"Run the audit of {ds.name!r} first: the judge looks at its flagged rows.")
    rows = list(db.query(
        "SELECT s.idx, i.text, i.given_label FROM scores s JOIN items i ON i.dataset_id=? AND i.idx=s.idx"
        " WHERE s.run_id=? AND s.is_issue=1 ORDER BY s.rank" + (" LIMIT ?" if limit else ""),
        [ds.id, run["id"], *([int(limit)] if limit else [])]))
    for r in rows:
        r["messages"] = prompt(ds.labels, r["text"] or "", r["given_label"] or "(none)")
        r["hash"] = prompt_hash(r["messages"])
        r["run_id"] = run["id"]
    return rows


def plan(db: sqlite_utils.Database, ds: Dataset, model: str, limit: int | None = None) -> dict:
    """What a run would cost: rows to judge, how many are cached, how many calls it makes."""
    rows = candidates(db, ds, limit)
    cached = _cached(db, ds, rows, model)
    return {"rows": len(rows), "cached": len(cached), "calls": len(rows) - len(cached)}


def _cached(db, ds: Dataset, rows: list[dict], model: str) -> dict[int, tuple]:
    out = {}
    for start in range(0, len(rows), 500):
        part = rows[start:start + 500]
        for idx, h, verdict, label, reason in db.execute(
                f"SELECT idx, prompt_hash, verdict, label, reason FROM judgments WHERE dataset_id=? AND model=? AND idx IN "
                f"({','.join('?' * len(part))})", [ds.id, model, *[r['idx'] for r in part]]):
            out[(idx, h)] = (verdict, label, reason)
    return {r["idx"]: out[(r["idx"], r["hash"])] for r in rows if (r["idx"], r["hash"]) in out}


def fused(is_issue: bool, quality: float | None, verdict: str | None, label: str | None) -> tuple[str, float]:
    """(action, trust in the given label, 0-1) from the flag, cleanlab's quality and the verdict."""
    q = 0.0 if quality is None else float(quality)
    if not is_issue:
        return "keep", q
    if verdict == "NO" and label:
        return "relabel", q / 2
    if verdict == "YES":
        return AMBIGUOUS, (q + 1) / 2
    return "needs review", q


def _apply(db, run_id: int, idx: int, verdict: str, label: str | None, reason: str) -> None:
    row = db.execute("SELECT is_issue, quality FROM scores WHERE run_id=? AND idx=?", [run_id, idx]).fetchone()
    action, trust = fused(bool(row[0]), row[1], verdict, label)
    db.execute("UPDATE scores SET judge_verdict=?, judge_label=?, judge_reason=?, fused_action=?, fused_trust=? WHERE run_id=? AND idx=?",
               [verdict, label, reason, action, trust, run_id, idx])


def run_judge(db: sqlite_utils.Database, ds: Dataset, user: User, config: JudgeConfig, limit: int | None = None,
              progress: Progress = lambda f, m: None, cancel: threading.Event | None = None,
              workers: int = WORKERS, timeout: float = TIMEOUT_S) -> dict:
    """Judge the flagged rows of the latest run (at most ``limit``), ``workers`` calls at a time.

    Each verdict is stored (and the row's fused action updated) as soon as it arrives, so a
    cancel or a crash keeps what was paid for. ``progress`` may raise to stop the run (a
    Streamlit rerun does): calls not started are dropped. Returns counts per verdict."""
    require(user, "lead", "run the judge")
    if config is None:
        raise ReviewError("No judge is configured. " + SETUP_HELP)
    cancel = cancel or threading.Event()
    rows = candidates(db, ds, limit)
    cached = _cached(db, ds, rows, config.model)
    todo = [r for r in rows if r["idx"] not in cached]
    counts = {"YES": 0, "NO": 0, "UNKNOWN": 0, "cached": len(cached), "calls": 0, "rows": len(rows)}
    t0 = time.perf_counter()
    with store.transaction(db):
        for r in rows:
            if r["idx"] in cached:
                v, lab, why = cached[r["idx"]]
                _apply(db, r["run_id"], r["idx"], v, lab, why)
                counts[v] += 1
    progress(len(cached) / max(len(rows), 1), f"{len(cached):,} cached; {len(todo):,} calls to make")

    def judge_one(r: dict) -> tuple[dict, str, str | None, str, str | None]:
        answer, why = call(config, r["messages"], timeout=timeout, cancelled=cancel.is_set)
        if answer is None:
            return r, "UNKNOWN", None, why, None
        v, lab, why = parse_answer(answer, ds.labels, r["given_label"] or "")
        return r, v, lab, why, answer

    done = 0
    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    try:
        pending = set()
        it = iter(todo)
        for r in it:
            pending.add(pool.submit(judge_one, r))
            if len(pending) >= workers * 2:
                break
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                r, v, lab, why, answer = fut.result()
                if why == "cancelled":
                    continue
                with store.transaction(db):
                    db.execute("INSERT OR REPLACE INTO judgments(dataset_id, idx, prompt_hash, model, verdict, label, reason, answer, at)"
                               " VALUES (?,?,?,?,?,?,?,?,?)",
                               [ds.id, r["idx"], r["hash"], config.model, v, lab, why, (answer or "")[:500], store.now_iso()])
                    _apply(db, r["run_id"], r["idx"], v, lab, why)
                counts[v] += 1
                counts["calls"] += 1
                done += 1
                progress((len(cached) + done) / max(len(rows), 1), f"Judged {len(cached) + done:,} of {len(rows):,} rows")
            if not cancel.is_set():
                for r in it:
                    pending.add(pool.submit(judge_one, r))
                    if len(pending) >= workers * 2:
                        break
    except BaseException:
        cancel.set()
        raise
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        counts["seconds"] = round(time.perf_counter() - t0, 2)
        counts["cancelled"] = cancel.is_set()
        store.log(db, user.name, "judge_run", ds.id, model=config.model, endpoint=config.base_url,
                  **{k: v for k, v in counts.items()})
    return counts


def verdict_counts(db: sqlite_utils.Database, ds: Dataset) -> dict:
    """Of the flagged rows of the latest run: judged YES / NO / UNKNOWN / not judged, and the
    share where the judge agrees with cleanlab (says the given label is wrong) among YES+NO."""
    run = latest_run(db, ds.id, "audit")
    if not run:
        return {}
    from .stats import aggregates
    got = dict(db.execute("SELECT judge_verdict, COUNT(*) FROM scores WHERE run_id=? AND judge_verdict IS NOT NULL GROUP BY 1",
                          [run["id"]]).fetchall())     # judged rows only (partial index): as quick at a million rows
    flagged = aggregates(db, ds, run)["flagged"]
    yes, no = got.get("YES", 0), got.get("NO", 0)
    return {"YES": yes, "NO": no, "UNKNOWN": got.get("UNKNOWN", 0), "not judged": flagged - sum(got.values()),
            "agreement": (no / (yes + no)) if yes + no else None}
