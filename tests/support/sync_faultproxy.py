"""A fault-injecting HTTP proxy on loopback, between the sync worker and a real FHIR store.

For each request it draws (from a seeded RNG) one of:
- ``500`` / ``503``: answer with that status without forwarding;
- ``429``: answer 429 with ``Retry-After`` without forwarding;
- ``delay``: wait longer than the worker's read timeout, THEN forward (the store commits after the
  worker gave up: the answer is lost but the write happened);
- ``drop_before``: close the connection without forwarding;
- ``drop_after``: forward, let the store commit, then close the connection without answering;
- ``403``: refuse (a misconfigured permission), without forwarding;
- ``ok``: forward faithfully.
It counts what it did so tests can assert every fault really happened.
"""

from __future__ import annotations

import http.client
import random
import socket
import struct
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
    "host",
    "content-length",
}


class FaultProxy:
    def __init__(
        self,
        upstream: str,
        *,
        seed: int = 1,
        rates: dict[str, float] | None = None,
        delay: float = 1.5,
        retry_after: int = 1,
        methods: tuple[str, ...] = ("POST", "GET", "PUT"),
        on_request=None,
    ):
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port
        self.upstream_path = parts.path.rstrip("/")
        self.rng = random.Random(seed)
        self.rates = rates or {}
        self.delay = delay
        self.retry_after = retry_after
        self.methods = methods
        self.counts: Counter = Counter()
        self.enabled = True
        #: ``on_request(method, path)`` runs before a request is forwarded (e.g. another agency's
        #: edit landing between the worker's read and its write).
        self.on_request = on_request
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                return

            def _handle(self):
                proxy._serve(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda request, address: None  # dropped sockets are the point
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{self.upstream_path}"

    def start(self) -> FaultProxy:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _draw(self, method: str) -> str:
        if not self.enabled or method not in self.methods:
            return "ok"
        with self._lock:
            x = self.rng.random()
        acc = 0.0
        for name, rate in self.rates.items():
            acc += rate
            if x < acc:
                return name
        return "ok"

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        fault = self._draw(h.command)
        with self._lock:
            self.counts[fault] += 1
        if fault in ("500", "503", "429", "403"):
            payload = b'{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"transient"}]}'
            h.send_response(int(fault))
            if fault == "429":
                h.send_header("Retry-After", str(self.retry_after))
            h.send_header("Content-Type", "application/fhir+json")
            h.send_header("Content-Length", str(len(payload)))
            h.end_headers()
            h.wfile.write(payload)
            return
        if fault == "drop_before":
            self._drop(h)
            return
        if fault == "delay":
            time.sleep(self.delay)
        if self.on_request is not None:
            self.on_request(h.command, h.path)
        try:
            status, headers, data = self._forward(h, body)
        except OSError:
            self._drop(h)  # upstream down (store restarting): the worker sees a lost connection
            return
        if fault == "drop_after":
            self._drop(h)
            return
        try:
            h.send_response(status)
            for k, v in headers:
                if k.lower() not in HOP_BY_HOP:
                    h.send_header(k, v)
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
        except OSError:
            pass  # the worker gave up (delay fault): the store has committed anyway

    def _forward(self, h: BaseHTTPRequestHandler, body: bytes):
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=60)
        try:
            headers = {k: v for k, v in h.headers.items() if k.lower() not in HOP_BY_HOP}
            conn.request(h.command, h.path, body=body or None, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.getheaders(), resp.read()
        finally:
            conn.close()

    @staticmethod
    def _drop(h: BaseHTTPRequestHandler) -> None:
        """Reset the connection (SO_LINGER 0) so the client sees it die without an answer."""
        h.close_connection = True
        try:
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            h.connection.close()
        except OSError:
            pass
