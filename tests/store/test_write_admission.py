"""Writers never take every server thread: past the write limit a write is a 503 with Retry-After,
and reads are still served while the admitted writes are stuck (see thrive_fhir/store/admission.py)."""

from __future__ import annotations

import threading
import uuid

import requests

from tests.support.store_data import patient
from tests.support.store_servers import start_ours
from thrive_fhir.store.admission import reserved_for_reads

JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


def test_reads_are_served_while_writers_fill_their_share_of_threads(tmp_path, monkeypatch):
    server = start_ours(f"sqlite:///{tmp_path / 'a.db'}")  # waitress with 8 threads
    try:
        server.app.admission.configure(8)
        limit = 8 - reserved_for_reads(8)
        pid = str(uuid.uuid4())
        assert requests.put(server.url(f"Patient/{pid}"), json=patient(pid), headers=JSON).status_code == 201
        store = server.app.store
        real_create = store.create
        release, inside = threading.Event(), threading.Semaphore(0)

        def slow_create(*args, **kwargs):  # a write that holds its thread (as one waiting for the lock does)
            inside.release()
            assert release.wait(30)
            return real_create(*args, **kwargs)

        monkeypatch.setattr(store, "create", slow_create)
        results = []
        writers = [
            threading.Thread(
                target=lambda: results.append(
                    requests.post(server.url("Patient"), json=patient(), headers=JSON).status_code
                )
            )
            for _ in range(limit)
        ]
        for w in writers:
            w.start()
        for _ in range(limit):
            assert inside.acquire(timeout=10)
        refused = requests.post(server.url("Patient"), json=patient(), headers=JSON, timeout=5)
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
        assert refused.json()["issue"][0]["code"] == "transient"
        for _ in range(3):  # reads (and POST _search) still get a thread at once
            assert requests.get(server.url(f"Patient/{pid}"), headers=JSON, timeout=5).status_code == 200
            assert (
                requests.post(
                    server.url("Patient/_search"),
                    data=f"_id={pid}",
                    timeout=5,
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                ).status_code
                == 200
            )
        release.set()
        for w in writers:
            w.join(30)
        assert results == [201] * limit
        assert requests.post(server.url("Patient"), json=patient(), headers=JSON).status_code == 201
    finally:
        server.stop()


def test_on_postgresql_writes_also_leave_pool_connections_to_reads():
    from thrive_fhir.store.admission import WriteAdmission

    admission = WriteAdmission()
    admission.configure(32)  # SQLite: reads do not use the pool
    assert admission.limit == 32 - reserved_for_reads(32)
    admission.configure(32, connections=20)  # PostgreSQL, pool of 10 + 10 overflow
    assert admission.limit == 20 - reserved_for_reads(20) < 20
