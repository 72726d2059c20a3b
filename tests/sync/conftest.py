"""Fixtures for the sync tests: local databases on SQLite and PostgreSQL, and synthetic saves."""

from __future__ import annotations

import pytest

from tests.support.servers import SekmetProcess
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


#: Stores the same contract tests run against (see sync_targets.py): sekmet-fhir with strict inbound
#: validation (so a malformed resource really is rejected with 400), our store, our store in quirks
#: mode as Medplum, and a site's own server when THRIVE_TEST_FHIR_BASE names one (otherwise that path runs
#: against our store, started as a stand-in).
TARGETS = ["sekmet", "own", "medplum-like", "external"]


@pytest.fixture(scope="module", params=TARGETS)
def target(request, tmp_path_factory):
    """A running FHIR store (shared by a module's tests; each test uses its own patients)."""
    from tests.support.sync_targets import start

    server = start(request.param, tmp_path_factory.mktemp(request.param))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sekmet(tmp_path_factory):
    server = SekmetProcess(tmp_path_factory.mktemp("sekmet"), strict=True).start()
    yield server
    server.stop()


@pytest.fixture
def proxy_factory():
    from tests.support.sync_faultproxy import FaultProxy

    made = []

    def make(upstream: str, **kw):
        p = FaultProxy(upstream, **kw).start()
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop()
