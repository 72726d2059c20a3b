"""Fixtures shared by every test folder. Folder-specific fixtures live in that folder's conftest."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from thrive_fhir.testing.servers import PG_ADMIN_URL, create_pg_database, free_port

__all__ = ["PG_ADMIN_URL", "REPO", "THRIVE", "free_port"]

#: ``thrive`` as a user runs it, from the checkout (no reliance on the console script being installed).
THRIVE = [sys.executable, "-c", "from thrive_fhir.cli import main; main()"]
REPO = Path(__file__).resolve().parents[1]


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
    url, drop = create_pg_database("thrive_t")
    try:
        yield url
    finally:
        drop()
