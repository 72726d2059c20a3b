"""Fixtures for the store tests: our store on SQLite and PostgreSQL, and sekmet-fhir 0.1.1, so one set
of REST contract tests runs against two independent implementations."""

from __future__ import annotations

import pytest

from tests.support.servers import create_pg_database
from tests.support.store_servers import Server, start_ours, start_sekmet


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
    return request.getfixturevalue(
        {"ours-sqlite": "ours_sqlite", "ours-postgres": "ours_postgres", "sekmet": "sekmet"}[request.param]
    )


@pytest.fixture(params=["ours-sqlite", "ours-postgres"])
def ours(request) -> Server:
    """Our store on both databases: features only ours claims."""
    return request.getfixturevalue({"ours-sqlite": "ours_sqlite", "ours-postgres": "ours_postgres"}[request.param])
