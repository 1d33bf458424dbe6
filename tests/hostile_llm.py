"""A hostile "LLM endpoint" on 127.0.0.1 for the judge's hardening tests: a raw socket server
(no http.server, so it can break HTTP on purpose) that records every request it gets and answers
according to ``behave(request) -> str`` (or a fixed string), one of:

'ok'                 a good two-line answer
'redirect:<code>:<url>'  that redirect (Location: url)
'echo401'            401 whose body and headers echo the request's Authorization header
'echo200'            200 whose answer echoes the Authorization header
'huge'               200, Content-Length 800 MiB, zeros streamed until the client hangs up
'huge-nolength'      the same without Content-Length (close-delimited)
'huge-chunked'       the same, chunked
'drip-headers'       the status line, then the headers one byte a second
'drip-body'          full headers (Content-Length 2000), then the body one byte a second
'truncated'          Content-Length 500, 40 bytes, then the connection closes
'badstatus'          a status line that is not HTTP
'reset'              reads the request, then resets the connection (RST)
'close'              reads the request, closes without a word
'deep-json'          200, a JSON array nested 200,000 deep
'bad-utf8'           200, bytes that are not UTF-8
'not-json'           200, text that is not JSON
'429-long'           429 with Retry-After: 100
'long-header'        a header line of 1 MiB
'many-headers'       500 headers
'silent'             reads the request, never answers (until the server stops)
'proxy'              a proxy: CONNECT host:port opens a tunnel there; a request for an absolute
                     URL (http://...) is answered 'ok' (``requests`` shows what it was sent)

``tls=(certfile, keyfile)`` speaks HTTPS instead (the handshake first, then the behaviour).

A drip stops after ``drip_s`` seconds (so a client that cannot stop it does not hang a test run
forever). Nothing leaves the machine."""

from __future__ import annotations

import json
import socket
import ssl
import struct
import threading
import time

ANSWER = "VERDICT: YES\nCORRECT_LABEL: SAME"


def completion(content: str) -> bytes:
    return json.dumps(
        {
            "id": "x",
            "object": "chat.completion",
            "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        }
    ).encode()


class Hostile:
    def __init__(self, behave="ok", drip_s: float = 12.0, tls: tuple[str, str] | None = None):
        self.behave = behave if callable(behave) else (lambda req, how=behave: how)
        self.tls = None
        if tls:
            self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls.load_cert_chain(*tls)
        self.drip_s = drip_s
        self.requests: list[dict] = []  # {"method", "path", "headers" (lower-case names), "body"}
        self.sent: list[int] = []  # bytes written per connection (huge answers)
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.origin = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.url = f"{self.origin}/v1"
        self.thread = threading.Thread(target=self._serve, daemon=True)

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        try:  # shutdown first: a close alone leaves the accept() blocked in the server thread listening
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass

    @property
    def auth_headers(self) -> list[str]:
        with self.lock:
            return [r["headers"].get("authorization", "") for r in self.requests]

    def _serve(self):
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    # ------------------------------------------------------------------ one connection
    def _read_request(self, conn) -> dict | None:
        conn.settimeout(10)
        buf = b""
        while b"\r\n\r\n" not in buf:
            got = conn.recv(65536)
            if not got:
                return None
            buf += got
        head, _, body = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = (lines[0].split(" ") + ["", ""])[:3]
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", "0") or 0)
        while len(body) < n:
            got = conn.recv(65536)
            if not got:
                break
            body += got
        req = {"method": method, "path": path, "headers": headers, "body": body}
        with self.lock:
            self.requests.append(req)
        return req

    def _handle(self, conn):
        try:
            if self.tls:
                conn.settimeout(10)
                conn = self.tls.wrap_socket(conn, server_side=True)
            req = self._read_request(conn)
            if req is None:
                return
            self._answer(conn, req, self.behave(req))
        except (OSError, ssl.SSLError):
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def _drip(self, conn, data: bytes) -> None:
        end = time.monotonic() + self.drip_s
        for k in range(len(data)):
            if self.stopping.is_set() or time.monotonic() > end:
                return
            conn.sendall(data[k : k + 1])
            time.sleep(1.0)

    def _stream_zeros(self, conn, total: int, chunked: bool) -> None:
        block = b"0" * 65536
        sent = 0
        try:
            while sent < total and not self.stopping.is_set():
                conn.sendall(b"%x\r\n%s\r\n" % (len(block), block) if chunked else block)
                sent += len(block)
        except OSError:
            pass
        finally:
            with self.lock:
                self.sent.append(sent)

    def _answer(self, conn, req, how: str) -> None:
        auth = req["headers"].get("authorization", "")

        def send(code: int, reason: str, body: bytes, headers: dict | None = None):
            head = [
                f"HTTP/1.1 {code} {reason}",
                "Content-Type: application/json",
                f"Content-Length: {len(body)}",
                "Connection: close",
            ]
            head += [f"{k}: {v}" for k, v in (headers or {}).items()]
            conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)

        if how == "ok":
            return send(200, "OK", completion(ANSWER))
        if how.startswith("redirect:"):
            _, code, url = how.split(":", 2)
            return send(int(code), "Moved", b"", {"Location": url})
        if how == "echo401":
            body = json.dumps(
                {"error": {"message": f"Invalid credentials: {auth}", "header": auth, "key": auth.split(" ", 1)[-1]}}
            ).encode()
            return send(401, "Unauthorized", body, {"WWW-Authenticate": f'Bearer realm="{auth}"'})
        if how == "echo200":
            return send(200, "OK", completion(f"VERDICT: YES\nCORRECT_LABEL: you sent {auth}"))
        if how in ("huge", "huge-nolength", "huge-chunked"):
            size = 800 * 2**20
            head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
            head += {"huge": f"Content-Length: {size}\r\n", "huge-chunked": "Transfer-Encoding: chunked\r\n"}.get(
                how, ""
            )
            conn.sendall((head + "\r\n").encode())
            return self._stream_zeros(conn, size, chunked=how == "huge-chunked")
        if how == "drip-headers":
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            return self._drip(conn, b"X-Slow: " + b"a" * 200 + b"\r\n\r\n")
        if how == "drip-body":
            body = completion(ANSWER).ljust(2000)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2000\r\n\r\n")
            return self._drip(conn, body)
        if how == "truncated":
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n"
                + completion(ANSWER)[:40]
            )
            return
        if how == "badstatus":
            conn.sendall(b"HELLO THERE\r\n\r\n{}")
            return
        if how == "reset":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return  # close() with linger 0 sends RST
        if how == "close":
            return
        if how == "deep-json":
            return send(200, "OK", b"[" * 200_000 + b"]" * 200_000)
        if how == "bad-utf8":
            return send(200, "OK", b'{"choices": "\xff\xfe\xfa"}')
        if how == "not-json":
            return send(200, "OK", b"<html>hello</html>")
        if how == "429-long":
            return send(429, "Too Many Requests", b'{"error": "slow down"}', {"Retry-After": "100"})
        if how == "long-header":
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 2**20 + b"\r\n\r\n")
            return
        if how == "many-headers":
            conn.sendall(b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: 1\r\n" % k for k in range(500)) + b"\r\n")
            return
        if how == "silent":
            self.stopping.wait(self.drip_s)
            return
        if how == "proxy":
            if req["method"] != "CONNECT":
                return send(200, "OK", completion(ANSWER))
            host, _, port = req["path"].rpartition(":")
            upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            conn.settimeout(None)
            upstream.settimeout(None)

            def pipe(a, b):
                try:
                    while True:
                        data = a.recv(65536)
                        if not data:
                            break
                        b.sendall(data)
                except OSError:
                    pass
                finally:
                    for s in (a, b):
                        try:
                            s.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass

            t = threading.Thread(target=pipe, args=(upstream, conn), daemon=True)
            t.start()
            pipe(conn, upstream)
            t.join(10)
            upstream.close()
            return
        raise ValueError(f"unknown behaviour {how!r}")
