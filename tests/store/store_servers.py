"""Helpers shared by the store tests and benchmarks: start our store (waitress on loopback, in a
thread) or sekmet-fhir 0.1.1 (a real subprocess), and make throwaway PostgreSQL databases."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import requests
import sqlalchemy

PG_ADMIN_URL = os.environ.get("THRIVE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    _wait_up(base + "/metadata")

    def stop():
        stopping.set()
        server.close()
        thread.join(5)
        app.exporter.wait(5)
        app.engine.dispose()

    kind = "ours-postgres" if database_url.startswith("postgresql") else "ours-sqlite"
    return Server(kind, base, app, stop)


def _wait_up(url: str, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server did not come up: {url}")


def create_pg_database() -> tuple[str, callable]:
    name = f"thrive_st_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))

    def drop():
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name, drop


def start_sekmet(work: Path) -> Server:
    """sekmet-fhir 0.1.1 as its own process: loopback, simulator off, its own SQLite file."""
    import yaml

    port = free_port()
    settings = {
        "base_url": f"http://127.0.0.1:{port}/fhir",
        "host": "127.0.0.1",
        "port": port,
        "data_dir": str(work / "data"),
        "db_path": str(work / "sekmet.db"),
        "own_private_key_path": str(work / "keys" / "sekmet_private.pem"),
        "simulator": {"enabled": False},
        "log_inbound": False,
    }
    (work / "settings.yaml").write_text(yaml.safe_dump(settings))
    log = open(work / "sekmet.log", "wb")
    proc = subprocess.Popen([str(VENV_BIN / "sekmet"), "serve", "-c", str(work / "settings.yaml")], cwd=work,
                            stdout=log, stderr=subprocess.STDOUT)

    def stop():
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()

    try:
        _wait_up(settings["base_url"] + "/metadata", timeout=60)
    except RuntimeError:
        stop()
        raise
    return Server("sekmet", settings["base_url"], stop=stop, extra={"pid": proc.pid})
