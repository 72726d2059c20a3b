"""Real servers for tests and benchmarks: a free loopback port, waiting until a server answers,
throwaway PostgreSQL databases, and FHIR servers as processes: sekmet-fhir 0.1.1 (the independent
second FHIR server) and our own store.

Each test folder and benchmark used to carry its own copy of these; they live here so a fix (a
longer wait, a different admin database) reaches all of them.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import requests

#: Where throwaway databases are created from (``THRIVE_TEST_PG`` overrides; PostgreSQL runs on
#: 127.0.0.1:5432 with trust auth on development machines and in CI).
PG_ADMIN_URL = os.environ.get("THRIVE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
#: The venv's bin folder: console scripts (``thrive``, ``sekmet``) of the running interpreter.
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, *, timeout: float = 30, proc: subprocess.Popen | None = None, interval: float = 0.1) -> None:
    """Poll ``url`` until it answers 200. With ``proc`` (the server's process), a server that exits
    first fails at once instead of after the whole timeout."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}) before answering {url}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):
            # A server still importing, or one starved of CPU by a parallel test run, accepts the
            # connection but answers late: that is "not up yet", not a failure.
            pass
        time.sleep(interval)
    raise RuntimeError(f"server did not come up: {url}")


def create_pg_database(prefix: str = "thrive_t", admin_url: str = PG_ADMIN_URL) -> tuple[str, Callable[[], None]]:
    """A brand-new, empty PostgreSQL database: returns (its SQLAlchemy URL, a function that drops it).

    The drop uses ``WITH (FORCE)`` so a server still holding connections cannot keep it alive.
    """
    import sqlalchemy

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return admin_url.rsplit("/", 1)[0] + "/" + name, drop


class ServerProcess:
    """A FHIR server as its own process on a loopback port, stopped and started again on the same
    port and data (the sync fault tests restart the store under a running worker).

    Output goes to ``workdir/<kind>.log``; the process gets its own session so a signal for it does
    not reach the test run.
    """

    kind = "server"

    def __init__(self, workdir: Path, port: int | None = None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/fhir"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float = 60) -> ServerProcess:
        with open(self.workdir / f"{self.kind}.log", "ab") as log:
            self.proc = subprocess.Popen(
                self.command(),
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(os.environ, PYTHONUNBUFFERED="1"),
                start_new_session=True,
            )
        try:
            wait_up(f"{self.base_url}/metadata", timeout=timeout, proc=self.proc, interval=0.2)
        except RuntimeError:
            self.stop()
            raise
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


class SekmetProcess(ServerProcess):
    """sekmet-fhir 0.1.1, the independent second FHIR server: simulator and inbound logging off, its
    own SQLite file and keys under ``workdir``.

    ``strict=True`` turns on its strict structural validation, so a malformed resource really is
    rejected with 400 (the sync dead-letter tests need that). ``server_auth`` is its ``server_auth``
    setting (bearer tokens, SMART Backend Services clients)."""

    kind = "sekmet"

    def __init__(
        self, workdir: Path, port: int | None = None, *, strict: bool = False, server_auth: dict | None = None
    ):
        super().__init__(workdir, port)
        import yaml

        settings = {
            "base_url": self.base_url,
            "host": "127.0.0.1",
            "port": self.port,
            "data_dir": str(self.workdir / "data"),
            "db_path": str(self.workdir / "data" / "sekmet.db"),
            "own_private_key_path": str(self.workdir / "keys" / "sekmet_private.pem"),
            "simulator": {"enabled": False},
            "log_inbound": False,
        }
        if strict:
            settings["validation"] = {"inbound": "strict"}
        if server_auth:
            settings["server_auth"] = server_auth
        (self.workdir / "settings.yaml").write_text(yaml.safe_dump(settings))

    def command(self) -> list[str]:
        return [str(VENV_BIN / "sekmet"), "serve", "-c", str(self.workdir / "settings.yaml")]


class OwnStoreProcess(ServerProcess):
    """The project's embedded store (``thrive store serve``); SQLite under ``workdir`` unless a
    ``database`` URL is given. ``validate=False`` skips profile validation on write (benchmarks of
    other parts, which should not measure the validator); ``extra`` are more ``serve`` options."""

    kind = "thrive-store"

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        *,
        database: str | None = None,
        validate: bool = True,
        extra: tuple[str, ...] = (),
    ):
        super().__init__(workdir, port)
        self.database = database or f"sqlite:///{self.workdir / 'store.db'}"
        self.validate = validate
        self.extra_args = extra

    @property
    def base_url(self) -> str:  # the embedded store serves FHIR at the root
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        argv = [str(VENV_BIN / "thrive"), "store", "serve", "--database", self.database, "--port", str(self.port)]
        return [*argv, *(() if self.validate else ("--no-validate",)), *self.extra_args]
