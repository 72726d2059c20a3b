"""Fixtures for the store tests: our store on SQLite and PostgreSQL, and sekmet-fhir 0.1.1, so one set
of REST contract tests runs against two independent implementations."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# Helper modules of this folder (store_*.py) are imported by name; pytest's importlib mode does not
# put the folder on sys.path by itself.
sys.path.insert(0, str(Path(__file__).parent))

from store_servers import Server, start_ours, start_sekmet  # noqa: E402

from thrive_fhir.testing.servers import create_pg_database  # noqa: E402


@pytest.fixture(scope="session")
def ours_sqlite(tmp_path_factory):
    server = start_ours(f"sqlite:///{tmp_path_factory.mktemp('store') / 'store.db'}")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ours_postgres():
    url, drop = create_pg_database()
    server = start_ours(url)
    yield server
    server.stop()
    drop()


@pytest.fixture(scope="session")
def sekmet(tmp_path_factory):
    """sekmet-fhir 0.1.1 as its own process: loopback, simulator off, its own SQLite file."""
    server = start_sekmet(tmp_path_factory.mktemp("sekmet"))
    yield server
    server.stop()


@pytest.fixture(params=["ours-sqlite", "ours-postgres", "sekmet"])
def server(request) -> Server:
    """Every server that claims the feature under test (the REST contract)."""
    return request.getfixturevalue({"ours-sqlite": "ours_sqlite", "ours-postgres": "ours_postgres",
                                    "sekmet": "sekmet"}[request.param])


@pytest.fixture(params=["ours-sqlite", "ours-postgres"])
def ours(request) -> Server:
    """Our store on both databases: features only ours claims."""
    return request.getfixturevalue({"ours-sqlite": "ours_sqlite", "ours-postgres": "ours_postgres"}[request.param])
