"""Prometheus text-format metrics for the sync worker (a file for node_exporter, or an HTTP endpoint).

Written by hand (the format is a few lines of text) rather than adding prometheus_client: the worker
needs counters, a handful of gauges from the outbox, and nothing else.
"""

from __future__ import annotations

import os
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Metrics:
    """Counters the worker bumps, plus gauges refreshed from the outbox."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # a dict, not a Counter: values may be float; missing keys start at int 0 so whole counts print as "1"
        self.counters: dict[tuple, float] = {}
        self.gauges: dict[str, float] = {}

    def inc(self, name: str, value: float = 1, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self.counters[key] = self.counters.get(key, 0) + value

    def set_queue(self, fig: dict) -> None:
        with self._lock:
            self.gauges = {
                "thrive_sync_queue_depth": fig["queued"] + fig["in_flight"],
                "thrive_sync_in_flight": fig["in_flight"],
                "thrive_sync_dead_letters": fig["dead"],
                "thrive_sync_conflicts": fig["conflicts"],
                "thrive_sync_oldest_pending_age_seconds": fig["oldest_pending_age_seconds"],
                "thrive_sync_lag_seconds": fig["lag_seconds"] or 0.0,
            }

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            for name, value in sorted(self.gauges.items()):
                lines += [f"# TYPE {name} gauge", f"{name} {value}"]
            typed: set[str] = set()
            for (name, labels), value in sorted(self.counters.items()):
                if name not in typed:
                    lines.append(f"# TYPE {name} counter")
                    typed.add(name)
                lab = ",".join(f'{k}="{v}"' for k, v in labels)
                lines.append(f"{name}{{{lab}}} {value}" if lab else f"{name} {value}")
        return "\n".join(lines) + "\n"

    def write_file(self, path: str) -> None:
        """Atomic replace, so a scraper never reads half a file."""
        directory = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".metrics-")
        with os.fdopen(fd, "w") as f:
            f.write(self.render())
        os.replace(tmp, path)

    def serve(self, port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
        metrics = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # http.server API
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                body = metrics.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # keep stderr for JSON logs only
                return

        server = ThreadingHTTPServer((host, port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True, name="metrics").start()
        return server
