"""Fixtures for the sync tests: local databases on SQLite and PostgreSQL, and synthetic saves."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# Helper modules of this folder (sync_*.py) are imported by name; pytest's importlib mode does not
# put the folder on sys.path by itself.
sys.path.insert(0, str(Path(__file__).parent))

from thrive_fhir.localstore import LocalStore


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    """A fresh, empty local database URL of each supported kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'local.db'}"
    return request.getfixturevalue("fresh_postgres_url")


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'local.db'}"


@pytest.fixture
def local_store(db_url):
    store = LocalStore(db_url)
    store.migrate()
    yield store
    store.dispose()
