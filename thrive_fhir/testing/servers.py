"""Real servers for tests and benchmarks: a free loopback port, waiting until a server answers,
throwaway PostgreSQL databases, and sekmet-fhir 0.1.1 (the independent second FHIR server).

Each test folder and benchmark used to carry its own copy of these; they live here so a fix (a
longer wait, a different admin database) reaches all of them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Callable

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
        except requests.ConnectionError:
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


def sekmet_command(workdir: Path) -> tuple[list[str], str]:
    """Configure sekmet-fhir 0.1.1 for a free loopback port: simulator off, inbound logging off, its
    own SQLite file and keys under ``workdir`` (written to ``workdir/settings.yaml``).

    Returns (the command to start it, run with ``cwd=workdir``; its FHIR base URL).
    """
    import yaml

    port = free_port()
    settings = {
        "base_url": f"http://127.0.0.1:{port}/fhir",
        "host": "127.0.0.1",
        "port": port,
        "data_dir": str(workdir / "data"),
        "db_path": str(workdir / "sekmet.db"),
        "own_private_key_path": str(workdir / "keys" / "sekmet_private.pem"),
        "simulator": {"enabled": False},
        "log_inbound": False,
    }
    (workdir / "settings.yaml").write_text(yaml.safe_dump(settings))
    return [str(VENV_BIN / "sekmet"), "serve", "-c", str(workdir / "settings.yaml")], settings["base_url"]
