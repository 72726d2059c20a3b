"""Helpers the sync tests import (``from tests.support.sync_workers import ...``): new patient ids, a
worker with test-sized timeouts, and draining a queue with worker threads.

They live here, not in conftest.py: a conftest is pytest's, not a module to import helpers from.
"""

from __future__ import annotations


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
    threads = [
        threading.Thread(target=lambda w=w: results.append(w.run(stop, once=True, max_wait=timeout))) for w in workers
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 30)
    stop.set()
    assert all(results) and len(results) == len(workers), "queue did not drain"
