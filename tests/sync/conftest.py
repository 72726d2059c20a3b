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


from sync_servers import OwnStore, Sekmet, own_store_available  # noqa: E402

#: Stores the same contract tests run against: sekmet-fhir always, our own store once it exists.
TARGETS = ["sekmet", *(["own"] if own_store_available() else [])]


def _start(kind: str, workdir):
    return (Sekmet(workdir) if kind == "sekmet" else OwnStore(workdir)).start()


@pytest.fixture(scope="module", params=TARGETS)
def target(request, tmp_path_factory):
    """A running FHIR store (shared by a module's tests; each test uses its own patients)."""
    server = _start(request.param, tmp_path_factory.mktemp(request.param))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sekmet(tmp_path_factory):
    server = Sekmet(tmp_path_factory.mktemp("sekmet")).start()
    yield server
    server.stop()


@pytest.fixture
def proxy_factory():
    from sync_faultproxy import FaultProxy

    made = []

    def make(upstream: str, **kw):
        p = FaultProxy(upstream, **kw).start()
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop()


def new_patients(n: int) -> list[str]:
    import uuid

    return [str(uuid.uuid4()) for _ in range(n)]


def make_worker(store, base_url: str, **kw):
    """A worker with test-sized timeouts and back-off."""
    from thrive_fhir.client.fhir_http import FhirClient
    from thrive_fhir.sync.worker import Worker

    client = FhirClient(base_url, kw.pop("auth", None), connect_timeout=1.0, read_timeout=kw.pop("read_timeout", 5.0))
    defaults = dict(ods_code="RXX", backoff_base=0.05, backoff_max=0.5, lease_seconds=30.0)
    defaults.update(kw)
    return Worker(store, client, **defaults)


def drain(workers, timeout: float = 120.0) -> None:
    """Run workers (threads) until the queue is empty; fail if it does not empty in time."""
    import threading

    stop = threading.Event()
    results = []
    threads = [threading.Thread(target=lambda w=w: results.append(w.run(stop, once=True, max_wait=timeout)))
               for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 30)
    stop.set()
    assert all(results) and len(results) == len(workers), "queue did not drain"
