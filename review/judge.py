"""A second opinion on flagged rows from an LLM judge (any OpenAI-compatible chat endpoint).

The judge never trained on the labels: it is shown the label set, the text and the given
label and must answer exactly two lines, ``VERDICT: YES|NO`` and
``CORRECT_LABEL: <label>|SAME``. Anything else (another format, a label outside the set, a
timeout, an HTTP error after retries) is recorded as UNKNOWN with the reason, never
guessed. Answers are cached in SQLite by (dataset, row, prompt hash, model), so a second
run spends nothing on rows already judged. The API key comes from the environment (or the
page's secrets) and is never written to the database, the audit trail or a log.

The key goes only to the URL configured beside it (LLM_BASE_URL with LLM_API_KEY, or
llm_base_url with llm_api_key in .streamlit/secrets.toml): a URL typed on the page that is not
that URL gets no key. Redirects are not followed. Whatever an endpoint sends back is scrubbed of
the key (and of anything shaped like ``Bearer xxx``) before it is stored or shown. A call is
bounded: one deadline covers connect, headers, body and retries; a response is read to at most
MAX_RESPONSE bytes; a cancel shuts the sockets of the calls in flight; every transport failure
is an UNKNOWN with its reason.

Fused action per flagged row: relabel (judge says NO and names a label), keep but
ambiguous (judge says YES), needs review (not judged, or UNKNOWN); unflagged rows: keep.
"""

from __future__ import annotations

import base64
import errno
import functools
import hashlib
import http.client
import ipaddress
import json
import os
import random
import re
import selectors
import socket
import ssl
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass

import sqlite_utils

from review import store, trail
from review.auth import User, require
from review.datasets import Dataset, latest_run
from review.errors import ReviewError

Progress = Callable[[float, str], None]
ENV_URL, ENV_MODEL, ENV_KEY = "LLM_BASE_URL", "LLM_MODEL", "LLM_API_KEY"
TIMEOUT_S = 30.0  # one deadline per call: connect, headers, body and every retry
MAX_RESPONSE = 2**20  # bytes of one response (status line, headers, body) read at most
TICK_S = 0.1  # how often a call in flight looks at its deadline and the cancel
CANCEL_GRACE_S = 1.0  # after a cancel, how long a run waits for the calls in flight to wind down
RETRIES = 4  # further attempts after a 429 or 5xx
BACKOFF_S = 0.5  # first wait; doubles, with jitter, capped by MAX_BACKOFF_S
MAX_BACKOFF_S = 8.0
WORKERS = 4  # calls in flight at once
MAX_TEXT = 4000  # characters of the text sent to the judge
AMBIGUOUS = "keep but ambiguous"
SETUP_HELP = (
    f"Set {ENV_URL} (an OpenAI-compatible endpoint, e.g. https://api.openai.com/v1), {ENV_MODEL} and "
    f"{ENV_KEY} in the environment of the app, or put llm_base_url, llm_model and llm_api_key in "
    ".streamlit/secrets.toml. The key is read from there only; it is never stored, and it is sent only to "
    "the URL configured beside it, never to another URL."
)

SYSTEM = (
    "You check labels of a text classification dataset. You answer with exactly two lines and nothing else:\n"
    "VERDICT: YES or NO (YES if the given label is correct for the text, NO if it is wrong)\n"
    "CORRECT_LABEL: the correct label, copied exactly from the label set, or SAME if the given label is correct"
)


@dataclass(frozen=True)
class JudgeConfig:
    base_url: str
    model: str
    api_key: str = ""  # sent to base_url (and only there) as Authorization: Bearer
    key_withheld: bool = False  # a key is configured, but for another URL: this one runs without it
    keyed_url: str = ""  # the URL the withheld key is configured for ("" if none is set beside it)

    def __repr__(self) -> str:  # never print the key
        return (
            f"JudgeConfig(base_url={shown_url(self.base_url, self.api_key)!r}, model={self.model!r}, "
            f"api_key={'***' if self.api_key else ''!r}, key_withheld={self.key_withheld!r})"
        )


# ----------------------------------------------------------------------------- the key stays home

REMOVED = "[key removed]"
_SECRET_SHAPES = [
    # Bearer / Basic credentials, however they are echoed (a header, a JSON string, URL-encoded)
    (re.compile(r"(?i)(?<![a-z])(bearer)(?:\s+|%20|\+)(?!\[key removed)[A-Za-z0-9._~+/=\-]{3,}"), r"\1 " + REMOVED),
    (
        re.compile(
            r"(?<![A-Za-z])((?i:basic))(?:\s+|%20|\+)(?=[A-Za-z0-9+/]*(?:[0-9+/=]|[a-z][A-Z]))[A-Za-z0-9+/]{8,}={0,2}"
        ),
        r"\1 " + REMOVED,
    ),
    # name: value / name=value of the usual credential fields
    (
        re.compile(
            r"(?i)((?:authorization|proxy-authorization|x-api-key|api[-_]?key|access[-_]?token|\bkey|\bpassword)"
            r"[\"']?\s*[:=]\s*[\"']?)(?!\[key removed|bearer\b|basic\b)[^\s\"',;&}\]]+"
        ),
        r"\1" + REMOVED,
    ),
    # OpenAI-style keys
    (re.compile(r"(?<![A-Za-z])sk-[A-Za-z0-9_\-]{8,}"), REMOVED),
    # user:password@ in a URL
    (re.compile(r"(?<=://)[^/@\s:]*:[^/@\s]*@"), REMOVED + "@"),
]


def scrub(text, *keys: str, shapes: bool = True) -> str:
    """``text`` with every ``key`` (as is, URL- or JSON-encoded, in any case) and, with ``shapes``,
    anything shaped like a credential (``Bearer xxx``, ``Basic dXNlcjpw``, ``api_key=xxx``,
    ``sk-xxx``, ``user:pass@``) replaced by REMOVED. Scrub before cutting a string short, so no
    piece of a key survives the cut."""
    if text is None:
        return ""
    s = str(text)
    for key in {k for k in keys if k and len(k) >= 4}:
        for form in {key, urllib.parse.quote(key, safe=""), urllib.parse.quote_plus(key), json.dumps(key)[1:-1]}:
            s = re.sub(re.escape(form), REMOVED, s, flags=re.I)
    for pattern, repl in _SECRET_SHAPES if shapes else ():
        s = pattern.sub(repl, s)
    return s


def shown_url(url: str, *keys: str) -> str:
    """A URL fit to show or log: no key, no user:password."""
    return scrub(url, *keys)


def _url_parts(url: str) -> tuple | None:
    """What makes two base URLs the same endpoint: scheme, user info, host, port, path, query."""
    try:
        p = urllib.parse.urlsplit(url.strip())
        port = p.port
    except ValueError:
        return None
    scheme = p.scheme.lower()
    return (
        scheme,
        p.username,
        p.password,
        (p.hostname or "").lower(),
        port or {"http": 80, "https": 443}.get(scheme),
        p.path.rstrip("/"),
        p.query,
    )


def same_url(a: str, b: str) -> bool:
    pa, pb = _url_parts(a or ""), _url_parts(b or "")
    return pa is not None and pa == pb


def _check_url(url: str, keys: list[str]) -> None:
    shown = shown_url(url, *keys)
    if not re.match(r"^https?://", url, flags=re.I):
        raise ReviewError(f"The judge's base URL {shown!r} must start with http:// or https://.")
    if re.search(r"[\x00-\x20\x7f]", url):
        raise ReviewError(f"The judge's base URL {shown!r} must not contain spaces or control characters.")
    try:
        p = urllib.parse.urlsplit(url)
        _ = p.port  # raises ValueError on a port that is not a number
    except ValueError as exc:
        raise ReviewError(f"The judge's base URL {shown!r} is not a URL: {exc}.") from None
    if not p.hostname:
        raise ReviewError(f"The judge's base URL {shown!r} names no host.")


def config_from(values: dict | None = None, secrets: dict | None = None) -> JudgeConfig | None:
    """A config from the page's ``values`` (base_url, model; blanks ignored) over ``secrets``
    (base_url, model, api_key from .streamlit/secrets.toml) over the environment (LLM_BASE_URL,
    LLM_MODEL, LLM_API_KEY). None when no endpoint or model is set.

    A key is bound to the URL configured beside it (in the same place: the environment, the
    secrets, or ``values`` if a caller puts an api_key there): the config carries the key only
    when its URL is that URL; otherwise it runs without it and ``key_withheld`` says so."""
    clean = lambda d: {k: ("" if v is None else str(v)).strip() for k, v in (d or {}).items()}
    page, sec = clean(values), clean(secrets)
    env = {
        "base_url": os.environ.get(ENV_URL, "").strip(),
        "model": os.environ.get(ENV_MODEL, "").strip(),
        "api_key": os.environ.get(ENV_KEY, "").strip(),
    }
    sources = (page, sec, env)
    url = next((s["base_url"] for s in sources if s.get("base_url")), "")
    model = next((s["model"] for s in sources if s.get("model")), "")
    keys = [s.get("api_key", "") for s in sources if s.get("api_key")]
    if not url or not model:
        return None
    _check_url(url, keys)
    keyed = [(s.get("base_url", ""), s["api_key"]) for s in sources if s.get("api_key")]
    key = next((k for u, k in keyed if u and same_url(u, url)), "")
    withheld = bool(keyed) and not key
    keyed_url = next((u.rstrip("/") for u, _ in keyed if u), "") if withheld else ""
    return JudgeConfig(url.rstrip("/"), model, key, withheld, keyed_url)


def key_status(config: JudgeConfig | None, url: Callable[[str], str] = str) -> str:
    """One sentence for the Judge tab: whether the key goes with the calls, and why not. ``url``
    formats each URL named (the page puts them in code spans)."""
    if config is None:
        return ""
    if config.api_key:
        return f"API key: set (from the environment or secrets); sent to {url(shown_url(config.base_url, config.api_key))} only."
    if config.key_withheld:
        where = (
            f"is configured for {url(shown_url(config.keyed_url))}"
            if config.keyed_url
            else f"has no URL configured beside it ({ENV_URL} or llm_base_url)"
        )
        return (
            f"The judge runs WITHOUT the key at {url(shown_url(config.base_url))}: the API key {where}, and it goes only "
            "to the URL configured beside it, never to a URL typed on this page. Clear the Base URL field to use "
            "the configured endpoint with its key."
        )
    return "API key: none (the endpoint must not need one)."


def prompt(labels: list[str], text: str, given: str) -> list[dict]:
    """The chat messages for one row."""
    shown = text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + " …"
    user = (
        f'Label set: {", ".join(labels)}\n\nText:\n"""\n{shown}\n"""\n\nGiven label: {given}\n\n'
        "Is the given label correct? Answer with the two lines only."
    )
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


class _Stopped(Exception):
    """The call's deadline passed or the run was cancelled (the watchdog shut its socket)."""

    def __init__(self, cancelled: bool):
        super().__init__("cancelled" if cancelled else "deadline")
        self.cancelled = cancelled


class _Refused(Exception):
    """The response is refused (too large, cut off, not HTTP...): the reason, not yet scrubbed."""


def _mib(n: int) -> str:
    return f"{n / 2**20:g} MiB" if n >= 2**20 else f"{n:,} bytes"


class _Watch:
    """A watchdog for one attempt: when the deadline passes or ``cancelled()`` turns true, it shuts
    down the attempt's socket (a blocked connect, TLS handshake, read of headers or body returns at
    once), at most TICK_S late. ``check()`` raises _Stopped for the code between blocking calls."""

    def __init__(self, deadline: float, cancelled: Callable[[], bool]):
        self.deadline, self.cancelled = deadline, cancelled
        self.sock: socket.socket | None = None
        self.fired: _Stopped | None = None
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True, name="judge-watchdog")

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()

    def _due(self) -> _Stopped | None:
        if self.fired is None:
            if self.cancelled():
                self.fired = _Stopped(True)
            elif time.monotonic() >= self.deadline:
                self.fired = _Stopped(False)
        return self.fired

    def _run(self) -> None:
        while not self._done.wait(TICK_S):
            with self._lock:
                if self._due():
                    self._shut()
                    return

    def _shut(self) -> None:
        if self.sock is not None:
            try:  # the plain socket's shutdown, also for an SSLSocket (whose own would drop its state under the reader)
                socket.socket.shutdown(self.sock, socket.SHUT_RDWR)
            except (OSError, ValueError):
                pass

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self.sock = sock
            if self.fired:
                self._shut()

    def check(self) -> None:
        with self._lock:
            if self._due():
                raise self.fired

    def remaining(self) -> float:
        return max(0.01, self.deadline - time.monotonic())


class _Capped:
    """A response's file object that refuses to hand over more than ``cap`` bytes in all
    (status line, headers and body): past it, _Refused."""

    def __init__(self, fp, cap: int):
        self._fp, self._left, self._cap = fp, cap, cap

    def _took(self, data_or_n):
        self._left -= data_or_n if isinstance(data_or_n, int) else len(data_or_n)
        if self._left < 0:
            raise _Refused(f"the response is larger than {_mib(self._cap)}: refused, not read further")
        return data_or_n

    def _want(self, n) -> int:
        return self._left + 1 if n is None or n < 0 else min(n, self._left + 1)

    def read(self, n=-1):
        return self._took(self._fp.read(self._want(n)))

    def read1(self, n=-1):
        return self._took(self._fp.read1(self._want(n)))

    def readline(self, limit=-1):
        return self._took(self._fp.readline(self._want(limit)))

    def readinto(self, b):
        return self._took(self._fp.readinto(memoryview(b)[: self._left + 1]))

    def __getattr__(self, name):  # close, flush, fileno, peek...
        return getattr(self._fp, name)


class _CappedResponse(http.client.HTTPResponse):
    def __init__(self, sock, *args, cap: int = MAX_RESPONSE, **kwargs):
        super().__init__(sock, *args, **kwargs)
        self.fp = _Capped(self.fp, cap)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def _connect(host: str, port: int, watch: _Watch) -> socket.socket:
    """A connected TCP socket, the name resolved and the connection made within the deadline
    (both given up at once on a cancel)."""
    if _is_ip(host):
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    else:  # getaddrinfo cannot be interrupted: it runs aside, the call waits for it only as long as allowed
        box: dict = {}

        def resolve():
            try:
                box["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as exc:
                box["error"] = exc

        t = threading.Thread(target=resolve, daemon=True, name="judge-resolve")
        t.start()
        while t.is_alive():
            watch.check()
            t.join(TICK_S)
        if "error" in box:
            raise box["error"]
        infos = box["infos"]
    last: OSError | None = None
    for family, kind, proto, _, addr in infos:
        sock = socket.socket(family, kind, proto)
        watch.watch(sock)
        try:
            sock.setblocking(False)
            err = sock.connect_ex(addr)
            if err not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY):
                raise OSError(err, os.strerror(err))
            with selectors.DefaultSelector() as sel:
                sel.register(sock, selectors.EVENT_WRITE)
                while err != 0:
                    watch.check()
                    if sel.select(TICK_S):
                        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                        if err:
                            raise OSError(err, os.strerror(err))
                        break
            sock.setblocking(True)
            sock.settimeout(watch.remaining())  # a backstop: the watchdog ends a slow call first
            return sock
        except _Stopped:
            sock.close()
            raise
        except OSError as exc:
            sock.close()
            last = exc
    raise last or OSError(f"{host} has no address")


def _proxy_for(scheme: str, host: str) -> urllib.parse.SplitResult | None:
    """The proxy the environment names for ``scheme`` (http_proxy, https_proxy), unless no_proxy
    exempts ``host``."""
    proxy = urllib.request.getproxies().get(scheme)
    if not proxy or urllib.request.proxy_bypass(host):
        return None
    return urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _tunnel(sock: socket.socket, host: str, port: int, extra: dict) -> None:
    """CONNECT host:port through the proxy on ``sock`` (the TLS to the endpoint goes inside)."""
    target = _host_port(host if host.isascii() else host.encode("idna").decode("ascii"), port)
    head = [f"CONNECT {target} HTTP/1.1", f"Host: {target}", *[f"{k}: {v}" for k, v in extra.items()]]
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
    resp = _CappedResponse(sock, method="CONNECT", cap=64 * 1024)
    try:
        resp.begin()
        if resp.status != 200:
            raise _Refused(f"the proxy refused the tunnel to {target}: HTTP {resp.status} {resp.reason}")
    finally:
        resp.close()


def _post(config: JudgeConfig, body: bytes, headers: dict, watch: _Watch, cap: int):
    """One POST to {base_url}/chat/completions -> (status, headers, body of at most ``cap`` bytes).
    Redirects are answered as they come (never followed). Raises _Stopped, _Refused or a transport error."""
    u = urllib.parse.urlsplit(config.base_url)
    https = u.scheme.lower() == "https"
    host, port = u.hostname or "", u.port or (443 if https else 80)
    path = (u.path.rstrip("/") or "") + "/chat/completions" + (f"?{u.query}" if u.query else "")
    proxy = _proxy_for(u.scheme.lower(), host)  # HTTP(S)_PROXY / NO_PROXY, as urllib honoured them
    conn = None
    try:
        if proxy is None:
            sock = _connect(host, port, watch)
        else:
            sock = _connect(proxy.hostname or "", proxy.port or 80, watch)
            proxy_auth = {}
            if proxy.username:
                creds = f"{urllib.parse.unquote(proxy.username)}:{urllib.parse.unquote(proxy.password or '')}"
                proxy_auth["Proxy-Authorization"] = "Basic " + base64.b64encode(creds.encode()).decode()
            if https:
                _tunnel(sock, host, port, proxy_auth)
            else:  # a plain-HTTP proxy is sent the absolute URL (and sees the request, key included)
                path = f"http://{_host_port(host, port)}{path}"
                headers = {**headers, **proxy_auth}
        if https:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
            watch.watch(sock)
            sock.do_handshake()
        conn = (http.client.HTTPSConnection if https else http.client.HTTPConnection)(host, port)
        conn.sock = sock  # connected by us: http.client never connects (nor follows a redirect)
        conn.response_class = functools.partial(_CappedResponse, cap=cap)
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        if 300 <= resp.status < 400:
            return resp.status, resp.headers, b""
        declared = resp.getheader("Content-Length")
        declared = int(declared) if declared and declared.strip().isdigit() else None
        if declared is not None and declared > cap:
            raise _Refused(f"the response is larger than {_mib(cap)} ({declared:,} bytes announced): refused, not read")
        chunks, n = [], 0
        while True:
            part = resp.read(65536)
            if not part:
                break
            n += len(part)
            if n > cap:
                raise _Refused(f"the response is larger than {_mib(cap)}: refused, not read further")
            chunks.append(part)
        if watch.fired:  # an end of body caused by the watchdog is the deadline, not a short answer
            raise watch.fired
        if declared is not None and n < declared:
            raise _Refused(f"the response was cut off: {n:,} of {declared:,} bytes")
        return resp.status, resp.headers, b"".join(chunks)
    except (_Stopped, _Refused):
        raise
    except BaseException:
        if watch.fired:  # whatever the shut socket raised: it was the deadline or the cancel
            raise watch.fired from None
        raise
    finally:
        if conn is not None:
            conn.close()
        elif watch.sock is not None:
            watch.sock.close()


def _transport_reason(exc: BaseException, config: JudgeConfig, timeout: float) -> str:
    """Why a call failed, in words, for a transport error of any kind."""
    where = shown_url(config.base_url, config.api_key)
    if isinstance(exc, http.client.IncompleteRead):
        return f"the response was cut off: {len(exc.partial):,} bytes" + (
            f", {exc.expected:,} more expected" if exc.expected else ""
        )
    if isinstance(exc, http.client.RemoteDisconnected):
        return f"{where} closed the connection without an answer"
    if isinstance(exc, http.client.BadStatusLine):
        return f"the answer is not HTTP (status line {str(exc)[:100]!r})"
    if isinstance(exc, http.client.HTTPException):
        return f"a broken HTTP response ({type(exc).__name__}: {str(exc)[:200]})"
    if isinstance(exc, ConnectionResetError):
        return f"{where} reset the connection"
    if isinstance(exc, (BrokenPipeError, ConnectionAbortedError)):
        return f"{where} closed the connection while the request was being sent"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed with {where}: {str(exc)[:200]}"
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, OSError):
        return f"could not reach {where}: {exc.strerror or exc}"
    if isinstance(exc, ValueError):
        return f"a broken HTTP response ({str(exc)[:200]})"
    return f"unexpected error talking to {where}: {type(exc).__name__}: {str(exc)[:200]}"


def _content(data: bytes) -> tuple[str | None, str]:
    """The answer text from a chat-completions body."""
    try:
        parsed = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return None, f"the response is not JSON (not UTF-8: {exc.reason} at byte {exc.start})"
    except RecursionError:
        return None, "the response is not JSON that can be read (nested too deep)"
    except ValueError as exc:
        return None, f"the response is not JSON: {exc}"
    try:
        content = parsed["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        try:
            shown = str(parsed)
        except RecursionError:
            shown = "(nested too deep to show)"
        return None, f"the response has no choices[0].message.content: {shown[:400]!r}"
    if content is None:
        return None, "the response's message has no content (null)"
    try:
        return (content if isinstance(content, str) else str(content)), "answered"
    except RecursionError:
        return None, "the response's content is not text (nested too deep)"


def _pause(seconds: float, cancelled: Callable[[], bool]) -> bool:
    """Sleep ``seconds`` (in ticks); True if cancelled meanwhile."""
    end = time.monotonic() + seconds
    while True:
        if cancelled():
            return True
        left = end - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(TICK_S, left))


def call(
    config: JudgeConfig,
    messages: list[dict],
    timeout: float = TIMEOUT_S,
    retries: int = RETRIES,
    cancelled: Callable[[], bool] = lambda: False,
    max_bytes: int | None = None,
) -> tuple[str | None, str]:
    """POST {base_url}/chat/completions -> (answer text or None, reason), both scrubbed of the key
    (the reason of anything shaped like a credential too; the answer not, so that a label such as
    "bearer bonds" still parses: run_judge scrubs what it stores).

    One deadline, ``timeout`` seconds, covers the whole call: connecting, the headers, the body
    and the retries of 429 and 5xx (exponential backoff, Retry-After honoured, no wait that would
    end past the deadline). ``cancelled()`` turning true stops a call in flight within TICK_S.
    A response is read to at most ``max_bytes`` (MAX_RESPONSE); a redirect is not followed; any
    failure (transport, HTTP, JSON) is a reason, never an exception."""
    answer, why = _call(config, messages, timeout, retries, cancelled, MAX_RESPONSE if max_bytes is None else max_bytes)
    return (None if answer is None else scrub(answer, config.api_key, shapes=False)), scrub(why, config.api_key)


def _call(config, messages, timeout, retries, cancelled, cap) -> tuple[str | None, str]:
    deadline = time.monotonic() + timeout
    body = json.dumps({"model": config.model, "messages": messages, "temperature": 0, "max_tokens": 40}).encode()
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if config.api_key:
        headers["Authorization"] = f"Bearer {config.api_key}"
    last = ""
    for attempt in range(retries + 1):
        if cancelled():
            return None, "cancelled"
        try:
            with _Watch(deadline, cancelled) as watch:
                watch.check()
                status, got_headers, data = _post(config, body, headers, watch, cap)
        except _Stopped as stop:
            if stop.cancelled:
                return None, "cancelled"
            return None, f"no answer within {timeout:g} s" + (f" ({last} before)" if last else "")
        except _Refused as exc:
            return None, str(exc)
        except Exception as exc:  # every transport failure is a reason
            return None, _transport_reason(exc, config, timeout)
        if 300 <= status < 400:
            where = scrub(got_headers.get("Location", "") or "(no Location)", config.api_key)
            return None, (
                f"HTTP {status}: the endpoint redirected to {where[:300]!r}; redirects are not followed "
                "(set the base URL to where it points if you trust it)"
            )
        if status == 429 or 500 <= status < 600:
            retry_after = (got_headers.get("Retry-After") or "").strip()
            last = f"HTTP {status}" + (" (rate limited)" if status == 429 else "")
            wait_s = float(retry_after) if retry_after.replace(".", "", 1).isdigit() else None
        elif 200 <= status < 300:
            return _content(data)
        else:
            return None, f"HTTP {status}: " + scrub(data.decode("utf-8", "replace"), config.api_key)[:200]
        if attempt < retries:
            pause = min(
                MAX_BACKOFF_S, wait_s if wait_s is not None else BACKOFF_S * 2**attempt * (1 + random.random() / 2)
            )
            if time.monotonic() + pause >= deadline:
                return None, (
                    f"{last} after {attempt + 1} attempt{'s' if attempt else ''}; the next would start past "
                    f"the {timeout:g} s deadline"
                )
            if _pause(pause, cancelled):
                return None, "cancelled"
    return None, f"{last} after {retries + 1} attempts"


def candidates(db: sqlite_utils.Database, ds: Dataset, limit: int | None = None) -> list[dict]:
    """The flagged rows of the latest run, most suspect first (at most ``limit``), with their prompt hash."""
    if ds.task != "text" or ds.mapping.multi:
        raise ReviewError("The judge works on single-label text classification datasets.")
    run = latest_run(db, ds.id, "audit")
    if not run:
        raise ReviewError(f"Run the audit of {ds.name!r} first: the judge looks at its flagged rows.")
    rows = list(
        db.query(
            "SELECT s.idx, i.text, i.given_label FROM scores s JOIN items i ON i.dataset_id=? AND i.idx=s.idx"
            " WHERE s.run_id=? AND s.is_issue=1 ORDER BY s.rank" + (" LIMIT ?" if limit else ""),
            [ds.id, run["id"], *([int(limit)] if limit else [])],
        )
    )
    for r in rows:
        r["messages"] = prompt(ds.labels, r["text"] or "", r["given_label"] or "(none)")
        r["hash"] = prompt_hash(r["messages"])
        r["run_id"] = run["id"]
    return rows


@dataclass(frozen=True)
class JudgePlan:
    """What a run would cost: rows to judge, how many of them are cached, how many calls it makes."""

    rows: int
    cached: int
    calls: int


@dataclass(frozen=True)
class JudgeRun:
    """What a run did: rows judged, calls made, answers from the cache, verdicts, seconds, whether it was
    cancelled. The trail's ``judge_run`` row carries the same fields."""

    rows: int
    calls: int
    cached: int
    YES: int
    NO: int
    UNKNOWN: int
    seconds: float
    cancelled: bool


def plan(db: sqlite_utils.Database, ds: Dataset, model: str, limit: int | None = None) -> JudgePlan:
    """What a run would cost: rows to judge, how many are cached, how many calls it makes."""
    rows = candidates(db, ds, limit)
    cached = _cached(db, ds, rows, model)
    return JudgePlan(rows=len(rows), cached=len(cached), calls=len(rows) - len(cached))


def _cached(db, ds: Dataset, rows: list[dict], model: str) -> dict[int, tuple]:
    out = {}
    for start in range(0, len(rows), 500):
        part = rows[start : start + 500]
        for idx, h, verdict, label, reason in db.execute(
            f"SELECT idx, prompt_hash, verdict, label, reason FROM judgments WHERE dataset_id=? AND model=? AND idx IN "
            f"({','.join('?' * len(part))})",
            [ds.id, model, *[r["idx"] for r in part]],
        ):
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
    db.execute(
        "UPDATE scores SET judge_verdict=?, judge_label=?, judge_reason=?, fused_action=?, fused_trust=? WHERE run_id=? AND idx=?",
        [verdict, label, reason, action, trust, run_id, idx],
    )


def run_judge(
    db: sqlite_utils.Database,
    ds: Dataset,
    user: User,
    config: JudgeConfig,
    limit: int | None = None,
    progress: Progress = lambda f, m: None,
    cancel: threading.Event | None = None,
    workers: int = WORKERS,
    timeout: float = TIMEOUT_S,
) -> JudgeRun:
    """Judge the flagged rows of the latest run (at most ``limit``), ``workers`` calls at a time.

    Each verdict is stored (and the row's fused action updated) as soon as it arrives, so a
    cancel or a crash keeps what was paid for. ``progress`` is called at least every half second
    and may raise to stop the run (a Streamlit rerun does); that, or ``cancel`` set, drops the
    calls not started and shuts the sockets of those in flight (the run returns within about
    CANCEL_GRACE_S). ``timeout`` is each call's total deadline. Every string stored (reasons,
    answers, the trail's endpoint) is scrubbed of the key. Returns a JudgeRun."""
    require(user, "lead", "run the judge")
    if config is None:
        raise ReviewError("No judge is configured. " + SETUP_HELP)
    cancel = cancel or threading.Event()
    rows = candidates(db, ds, limit)
    cached = _cached(db, ds, rows, config.model)
    todo = [r for r in rows if r["idx"] not in cached]
    counts = {"YES": 0, "NO": 0, "UNKNOWN": 0, "cached": len(cached), "calls": 0, "rows": len(rows)}
    t0 = time.perf_counter()
    key = config.api_key
    with store.transaction(db):
        if key:  # a key a judge echoed before answers were scrubbed: out of what is stored and shown
            db.execute(
                "UPDATE judgments SET reason=replace(reason, ?1, ?2), answer=replace(answer, ?1, ?2)"
                " WHERE dataset_id=?3 AND (instr(reason, ?1) > 0 OR instr(answer, ?1) > 0)",
                [key, REMOVED, ds.id],
            )
            if rows:
                db.execute(
                    "UPDATE scores SET judge_reason=replace(judge_reason, ?1, ?2) WHERE run_id=?3"
                    " AND judge_verdict IS NOT NULL AND instr(judge_reason, ?1) > 0",
                    [key, REMOVED, rows[0]["run_id"]],
                )
        for r in rows:
            if r["idx"] in cached:
                v, lab, why = cached[r["idx"]]
                _apply(db, r["run_id"], r["idx"], v, lab, scrub(why, key))
                counts[v] += 1
    last_progress = [len(cached) / max(len(rows), 1), f"{len(cached):,} cached; {len(todo):,} calls to make"]
    progress(*last_progress)

    def judge_one(r: dict) -> tuple[dict, str, str | None, str, str | None]:
        try:
            answer, why = call(config, r["messages"], timeout=timeout, cancelled=cancel.is_set)
            if answer is None:
                return r, "UNKNOWN", None, why, None
            v, lab, why = parse_answer(answer, ds.labels, r["given_label"] or "")
            return r, v, lab, why, answer
        except Exception as exc:  # never a traceback on the page: an UNKNOWN with the reason
            return r, "UNKNOWN", None, scrub(f"unexpected error: {type(exc).__name__}: {exc}", key)[:300], None

    done = 0
    cancelled_at = None
    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    try:
        pending = set()
        it = iter(todo)
        for r in it:
            pending.add(pool.submit(judge_one, r))
            if len(pending) >= workers * 2:
                break
        while pending:
            finished, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            if not finished:
                # nothing arrived: the progress callback still runs (a stopped Streamlit run raises there and
                # the except below shuts the calls in flight), and a cancel does not wait on a stuck call
                if cancel.is_set():
                    cancelled_at = cancelled_at or time.monotonic()
                    if time.monotonic() - cancelled_at > CANCEL_GRACE_S:
                        break
                progress(*last_progress)
                continue
            for fut in finished:
                r, v, lab, why, answer = fut.result()
                if why == "cancelled":
                    continue
                why, answer = scrub(why, key)[:1000], scrub(answer or "", key)[:500]
                with store.transaction(db):
                    db.execute(
                        "INSERT OR REPLACE INTO judgments(dataset_id, idx, prompt_hash, model, verdict, label, reason, answer, at)"
                        " VALUES (?,?,?,?,?,?,?,?,?)",
                        [ds.id, r["idx"], r["hash"], config.model, v, lab, why, answer, store.now_iso()],
                    )
                    _apply(db, r["run_id"], r["idx"], v, lab, why)
                counts[v] += 1
                counts["calls"] += 1
                done += 1
                last_progress = [
                    (len(cached) + done) / max(len(rows), 1),
                    f"Judged {len(cached) + done:,} of {len(rows):,} rows",
                ]
                progress(*last_progress)
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
        done = JudgeRun(**counts, seconds=round(time.perf_counter() - t0, 2), cancelled=cancel.is_set())
        trail.log(
            db,
            user.name,
            "judge_run",
            ds.id,
            model=config.model,
            endpoint=shown_url(config.base_url, key),
            key_sent=bool(key),
            **asdict(done),
        )
    return done


def verdict_counts(db: sqlite_utils.Database, ds: Dataset) -> dict:
    """Of the flagged rows of the latest run: judged YES / NO / UNKNOWN / not judged, and the
    share where the judge agrees with cleanlab (says the given label is wrong) among YES+NO."""
    run = latest_run(db, ds.id, "audit")
    if not run:
        return {}
    from review.stats import aggregates

    got = dict(
        db.execute(
            "SELECT judge_verdict, COUNT(*) FROM scores WHERE run_id=? AND judge_verdict IS NOT NULL GROUP BY 1",
            [run["id"]],
        ).fetchall()
    )  # judged rows only (partial index): as quick at a million rows
    flagged = aggregates(db, ds, run)["flagged"]
    yes, no = got.get("YES", 0), got.get("NO", 0)
    return {
        "YES": yes,
        "NO": no,
        "UNKNOWN": got.get("UNKNOWN", 0),
        "not judged": flagged - sum(got.values()),
        "agreement": (no / (yes + no)) if yes + no else None,
    }
