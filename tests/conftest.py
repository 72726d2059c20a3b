"""Fixtures shared by every test folder. Folder-specific fixtures live in that folder's conftest."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

#: ``thrive`` as a user runs it, from the checkout (no reliance on the console script being installed).
THRIVE = [sys.executable, "-c", "from thrive_fhir.cli import main; main()"]
REPO = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = os.environ.get("THRIVE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def start_thrive():
    """Start a long-running ``thrive`` command as its own process, as a user would.

    ``start_thrive(*args, ready="Ctrl-C", timeout=120)`` runs ``thrive <args>`` from the checkout
    with stdout and stderr merged, reads its output up to the first line containing ``ready`` (or
    until a line arrives after ``timeout`` seconds) and returns ``(process, output so far)``; the
    test goes on to read the rest with ``communicate``. Any process still running when the test
    ends is killed, so a failed assertion never leaves a server behind.
    """
    started: list[subprocess.Popen] = []

    def start(*args: str, ready: str = "Ctrl-C", timeout: float = 120) -> tuple[subprocess.Popen, str]:
        proc = subprocess.Popen([*THRIVE, *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
        started.append(proc)
        lines = []
        deadline = time.monotonic() + timeout
        for line in proc.stdout:
            lines.append(line)
            if ready in line or time.monotonic() > deadline:
                break
        return proc, "".join(lines)

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture
def fresh_postgres_url():
    """A brand-new PostgreSQL database for one test, dropped afterwards.

    Tests of concurrency must run on PostgreSQL (SQLite serialises writers). The database server
    is started by .ci/run; a test that needs it fails loudly rather than skipping when it is down.
    """
    sqlalchemy = pytest.importorskip("sqlalchemy")
    name = f"thrive_t_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
