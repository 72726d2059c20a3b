"""Fixtures shared by every test folder, and the rule that marks tests ``postgres``, ``browser`` and
``slow``. Folder-specific fixtures live in that folder's conftest; shared helper modules live in
``tests/support/``.

The markers are applied here, from what a test uses, rather than by hand on each test: a test that
asks for a PostgreSQL fixture or runs under a ``postgres`` parameter needs the server, one that asks
for the browser needs Chromium. New tests are marked without anyone remembering to. ``make
test-fast`` deselects all three (``-m "not postgres and not browser and not slow"``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.servers import PG_ADMIN_URL, create_pg_database, free_port

__all__ = ["PG_ADMIN_URL", "REPO", "THRIVE", "free_port"]

# Bytecode caches on, for this run and the processes it starts, even where the environment turns them
# off (PYTHONDONTWRITEBYTECODE=1, as on this project's development machines): otherwise every worker
# compiles every module again, and so does every `thrive` process a test starts (hundreds of them),
# and pytest rewrites every test module's asserts again (collection took 20 s a worker instead of 7 s).
# The caches go to __pycache__ folders, which git ignores.
sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

#: Fixtures that need the PostgreSQL server (a parameter id containing "postgres" counts too).
POSTGRES_FIXTURES = frozenset({"fresh_postgres_url", "ours_postgres"})
#: Fixtures that start Debian's Chromium through Playwright (tests/app/conftest.py).
BROWSER_FIXTURES = frozenset({"browser", "browser_page"})
#: Fixtures whose tests take many seconds: long-running ``thrive`` processes, fault injection
#: (tests/sync/test_faults.py restarts stores and kills workers under a fault proxy).
SLOW_FIXTURES = frozenset({"start_thrive", "proxy_factory"})
#: Folders (relative to tests/) whose every test is slow: each starts every part of the demo.
SLOW_FOLDERS = ("demo",)
#: Single tests measured at over 10 s on the 2-core machine (``pytest --durations``).
SLOW_TESTS = frozenset(
    {
        "test_committed_json_matches_a_fresh_sushi_build",  # runs SUSHI (Node) over every profile
        "test_tables_are_built_once_then_loaded",  # builds the validator's tables from scratch
    }
)


def pytest_collection_modifyitems(config, items):
    """Mark each collected test ``postgres`` / ``browser`` / ``slow`` from the fixtures it uses,
    its parameter ids and its folder (see the module docstring)."""
    tests_dir = Path(__file__).resolve().parent
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        callspec = getattr(item, "callspec", None)
        param_ids = callspec.id.lower() if callspec is not None else ""
        if fixtures & POSTGRES_FIXTURES or "postgres" in param_ids:
            item.add_marker(pytest.mark.postgres)
        if fixtures & BROWSER_FIXTURES:
            item.add_marker(pytest.mark.browser)
        try:
            folder = Path(item.path).resolve().relative_to(tests_dir).parts[0]
        except ValueError:
            folder = ""
        if fixtures & SLOW_FIXTURES or folder in SLOW_FOLDERS or item.originalname in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
    _long_modules_first(items)


def _long_modules_first(items) -> None:
    """Reorder so that modules with a slow test come first, then modules with a browser test, each
    module's own tests keeping their order.

    ``make test`` runs the suite on several workers, module by module (pytest-xdist ``--dist
    loadscope --no-loadscope-reorder``, which hands out modules in this order). A module of several
    minutes handed out last would leave the other workers idle while it runs; handed out first, the
    many short modules fill in around it. The order is the same in every worker (xdist requires it).
    """

    def module(item) -> str:
        return str(getattr(item, "path", "")) or item.nodeid.split("::", 1)[0]

    def weight(item) -> int:
        names = {mark.name for mark in item.iter_markers()}
        return 2 if "slow" in names else 1 if "browser" in names else 0

    module_weight: dict[str, int] = {}
    for item in items:
        module_weight[module(item)] = max(module_weight.get(module(item), 0), weight(item))
    items.sort(key=lambda item: -module_weight[module(item)])


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
        proc = subprocess.Popen([*THRIVE, *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
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
