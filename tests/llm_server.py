"""A real HTTP server on 127.0.0.1 that speaks the OpenAI chat-completions protocol, for the
judge's tests. ``behave(text, given, labels) -> str`` picks, per request, one of:
'yes' (VERDICT: YES / SAME), 'no:<label>', 'garbage', 'outside', 'slow', '429x<N>' (429 for
the first N attempts of that prompt, then a good answer), '500', '400'. Nothing leaves the machine."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeLLM:
    def __init__(self, behave, slow_s: float = 2.0):
        self.behave = behave
        self.slow_s = slow_s
        self.calls = Counter()  # per user prompt
        self.auth_headers: list[str] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                user = body["messages"][-1]["content"]
                with outer.lock:
                    outer.calls[user] += 1
                    n = outer.calls[user]
                    outer.auth_headers.append(self.headers.get("Authorization", ""))
                text = re.search(r'Text:\n"""\n(.*)\n"""', user, re.S).group(1)
                given = re.search(r"Given label: (.*)\n", user).group(1)
                labels = re.search(r"Label set: (.*)\n", user).group(1).split(", ")
                how = outer.behave(text, given, labels)
                if how.startswith("429x") and n <= int(how[4:]):
                    return self._send(429, {"error": "slow down"}, {"Retry-After": "0.05"})
                if how == "500":
                    return self._send(500, {"error": "boom"})
                if how == "400":
                    return self._send(400, {"error": "bad request"})
                if how == "slow":
                    time.sleep(outer.slow_s)
                content = {
                    "yes": "VERDICT: YES\nCORRECT_LABEL: SAME",
                    "garbage": "I think it is probably fine.",
                    "outside": "VERDICT: NO\nCORRECT_LABEL: weather",
                    "slow": "VERDICT: YES\nCORRECT_LABEL: SAME",
                }.get(how)
                if how.startswith("429x"):
                    content = "VERDICT: YES\nCORRECT_LABEL: SAME"
                if how.startswith("no:"):
                    content = f"VERDICT: NO\nCORRECT_LABEL: {how[3:]}"
                self._send(
                    200,
                    {
                        "id": "x",
                        "object": "chat.completion",
                        "model": body["model"],
                        "choices": [
                            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                        ],
                    },
                )

            def _send(self, code, payload, headers=None):
                data = json.dumps(payload).encode()
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())
