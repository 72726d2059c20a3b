"""A real loopback HTTP endpoint that records the notifications a FHIR store POSTs to it.

Used by the store's Subscription tests and benchmarks/notify_latency.py: each POST is kept with its
arrival time, headers and parsed JSON body; ``answer`` sets the status it replies with (a failing
receiver answers 500), ``wait_for`` polls until a condition on what arrived holds.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from thrive_fhir.canonical import BACKPORT_SD, TOPIC_SHARED_PLAN_CHANGED


@dataclass
class Received:
    at: float  # time.time() on arrival
    path: str
    headers: dict[str, str]
    body: dict | None

    @property
    def kind(self) -> str | None:
        """The notification type (handshake, heartbeat, event-notification) from its status Parameters."""
        try:
            params = self.body["entry"][0]["resource"]["parameter"]
        except (KeyError, IndexError, TypeError):
            return None
        return next((p.get("valueCode") for p in params if p.get("name") == "type"), None)

    @property
    def event_numbers(self) -> list[int]:
        params = (self.body or {}).get("entry", [{}])[0].get("resource", {}).get("parameter", [])
        return [
            int(part["valueString"])
            for p in params
            if p.get("name") == "notification-event"
            for part in p.get("part", [])
            if part.get("name") == "event-number"
        ]


class NotifyReceiver:
    """``with NotifyReceiver() as rx: ... rx.url ...`` (or start()/stop())."""

    def __init__(self, path: str = "/hook", *, parse: bool = True):
        """``parse=False`` keeps no bodies (a benchmark's receiver should cost its process little)."""
        self.path = path
        self.received: list[Received] = []
        self.status = 200
        self.statuses: dict[str, int] = {}  # per path, over ``status``
        self.delay = 0.0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw) if raw and parse else None
                except ValueError:
                    body = None
                with receiver._lock:
                    receiver.received.append(Received(time.time(), self.path, dict(self.headers), body))
                    status = receiver.statuses.get(self.path, receiver.status)
                    delay = receiver.delay
                if delay:
                    time.sleep(delay)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):  # keep test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def url(self) -> str:
        return self.origin + self.path

    def answer(self, status: int, *, path: str | None = None, delay: float | None = None) -> None:
        """Reply ``status`` from now on (to POSTs on ``path`` only, when given)."""
        with self._lock:
            if path is None:
                self.status = status
            else:
                self.statuses[path] = status
            if delay is not None:
                self.delay = delay

    def snapshot(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.received if path is None or r.path == path]

    def of_kind(self, kind: str, path: str | None = None) -> list[Received]:
        return [r for r in self.snapshot(path) if r.kind == kind]

    def wait_for(
        self, condition: Callable[[list[Received]], bool], timeout: float = 10, *, path: str | None = None
    ) -> list[Received]:
        """Poll until ``condition(what arrived [on path])`` holds; AssertionError after ``timeout``."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            got = self.snapshot(path)
            if condition(got):
                return got
            time.sleep(0.02)
        raise AssertionError(f"receiver: condition not met in {timeout}s; got {[r.kind for r in self.snapshot(path)]}")

    def start(self) -> NotifyReceiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> NotifyReceiver:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def subscription(
    endpoint: str, *, filters=(), heartbeat=None, content="id-only", headers=("Authorization: Bearer s3cret",)
):
    channel: dict = {
        "type": "rest-hook",
        "endpoint": endpoint,
        "payload": "application/fhir+json",
        "_payload": {"extension": [{"url": f"{BACKPORT_SD}/backport-payload-content", "valueCode": content}]},
        "header": list(headers),
    }
    if heartbeat:
        channel["extension"] = [{"url": f"{BACKPORT_SD}/backport-heartbeat-period", "valueUnsignedInt": heartbeat}]
    body = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "shared plan changes",
        "criteria": TOPIC_SHARED_PLAN_CHANGED,
        "channel": channel,
    }
    if filters:
        body["_criteria"] = {
            "extension": [{"url": f"{BACKPORT_SD}/backport-filter-criteria", "valueString": f} for f in filters]
        }
    return body


class Hook:
    """One subscription's own path on a shared receiver, and what arrived there."""

    def __init__(self, rx: NotifyReceiver):
        self.rx = rx
        self.path = f"/hooks/{uuid.uuid4().hex}"
        self.url = rx.origin + self.path

    def got(self, kind: str) -> list[Received]:
        return self.rx.of_kind(kind, self.path)

    def events(self) -> list[tuple[int, str, str]]:
        """(event number, focus, patient) of every event notified so far."""
        out = []
        for r in self.got("event-notification"):
            for p in r.body["entry"][0]["resource"]["parameter"]:
                if p["name"] == "notification-event":
                    parts = {q["name"]: q for q in p["part"]}
                    out.append(
                        (
                            int(parts["event-number"]["valueString"]),
                            parts["focus"]["valueReference"]["reference"],
                            parts["additional-context"]["valueReference"]["reference"],
                        )
                    )
        return out

    def wait(self, condition, timeout: float = 10):
        return self.rx.wait_for(lambda _got: condition(self), timeout, path=self.path)
