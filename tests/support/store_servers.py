"""The store tests' servers: our store (waitress on loopback, in a thread) or sekmet-fhir 0.1.1 (a
real subprocess), each as a :class:`Server`. Ports, waiting, throwaway PostgreSQL databases and
sekmet's settings come from :mod:`tests.support.servers`, shared with ``benchmarks/``."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.servers import SekmetProcess, free_port, wait_up


@dataclass
class Server:
    """A running FHIR server under test."""

    kind: str  # "ours-sqlite" | "ours-postgres" | "sekmet"
    base: str
    app: object = None
    stop: object = None
    extra: dict = field(default_factory=dict)

    @property
    def ours(self) -> bool:
        return self.kind.startswith("ours")

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}"


def start_ours(database_url: str, **kwargs) -> Server:
    """create_app + waitress on a free loopback port, in a daemon thread."""
    import waitress

    from thrive_fhir.store import create_app

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app = create_app(database_url, base_url=base, **kwargs)
    server = waitress.create_server(app, host="127.0.0.1", port=port, threads=8, max_request_body_size=256 << 20)
    stopping = threading.Event()

    def run():
        try:
            server.run()
        except OSError:
            if not stopping.is_set():  # closing the socket under select() is how waitress stops
                raise

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    wait_up(base + "/metadata")

    def stop():
        stopping.set()
        server.close()
        thread.join(5)
        app.subscriptions.stop()
        app.exporter.wait(5)
        app.engine.dispose()

    kind = "ours-postgres" if database_url.startswith("postgresql") else "ours-sqlite"
    return Server(kind, base, app, stop)


def start_sekmet(work: Path) -> Server:
    """sekmet-fhir 0.1.1 as its own process: loopback, simulator off, its own SQLite file."""
    process = SekmetProcess(work).start()
    return Server("sekmet", process.base_url, stop=process.stop, extra={"pid": process.pid})
