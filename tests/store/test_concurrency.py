"""Races against a real server: optimistic locking and transaction rollback under concurrent writers."""

from __future__ import annotations

import threading
import uuid

import pytest
import requests

from tests.support.servers import create_pg_database
from tests.support.store_data import local_identifier, observation, patient
from tests.support.store_servers import start_ours

JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


@pytest.fixture(params=["sqlite", "postgres"])
def two_process_store(request, tmp_path):
    """Two store apps (separate engines and pools) on one database: the race crosses process-like
    boundaries, so only the database can decide it."""
    if request.param == "sqlite":
        url, drop = f"sqlite:///{tmp_path / 'race.db'}", (lambda: None)
    else:
        url, drop = create_pg_database()
    servers = [start_ours(url), start_ours(url)]
    yield servers
    for s in servers:
        s.stop()
    drop()


def test_two_writers_with_the_same_if_match_exactly_one_wins(two_process_store):
    a, b = two_process_store
    for _round in range(5):
        pid = str(uuid.uuid4())
        assert requests.put(a.url(f"Patient/{pid}"), json=patient(pid), headers=JSON).status_code == 201
        barrier = threading.Barrier(2)
        statuses = []

        def write(server, family):
            barrier.wait()
            resp = requests.put(
                server.url(f"Patient/{pid}"), json=patient(pid, family=family), headers={**JSON, "If-Match": 'W/"1"'}
            )
            statuses.append((resp.status_code, family, resp.json()["resourceType"]))

        threads = [threading.Thread(target=write, args=(a, "Ay")), threading.Thread(target=write, args=(b, "Bee"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        codes = sorted(s[0] for s in statuses)
        assert codes == [200, 412], statuses
        winner = next(f for code, f, _ in statuses if code == 200)
        loser_type = next(rt for code, _, rt in statuses if code == 412)
        assert loser_type == "OperationOutcome"
        current = requests.get(b.url(f"Patient/{pid}"), headers=JSON).json()
        assert current["meta"]["versionId"] == "2" and current["name"][0]["family"] == winner
        history = requests.get(a.url(f"Patient/{pid}/_history"), headers=JSON).json()
        assert len(history["entry"]) == 2


def test_failing_entry_rolls_back_concurrent_transactions(two_process_store):
    """Many transactions at once; each has a valid patient + observation and, in half, a stale
    If-Match entry. Exactly the good half is stored, and nothing of the failing half."""
    a, b = two_process_store
    anchor = str(uuid.uuid4())
    requests.put(a.url(f"Patient/{anchor}"), json=patient(anchor), headers=JSON)
    markers, results = [], {}

    def send(i, server):
        p, p_urn = patient(), f"urn:uuid:{uuid.uuid4()}"
        obs = observation(p_urn)
        entries = [
            {"fullUrl": p_urn, "resource": p, "request": {"method": "POST", "url": "Patient"}},
            {"resource": obs, "request": {"method": "POST", "url": "Observation"}},
        ]
        if i % 2:
            entries.append(
                {
                    "resource": patient(anchor),
                    "request": {"method": "PUT", "url": f"Patient/{anchor}", "ifMatch": 'W/"99"'},
                }
            )
        markers.append((i, p, obs))
        resp = requests.post(
            server.base, json={"resourceType": "Bundle", "type": "transaction", "entry": entries}, headers=JSON
        )
        results[i] = resp.status_code

    threads = [threading.Thread(target=send, args=(i, (a, b)[i % 2 == 0 and i % 4 == 0])) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, p, obs in markers:
        expected = 0 if i % 2 else 1
        assert results[i] == (412 if i % 2 else 200)
        found_p = requests.get(a.url("Patient?identifier=" + local_identifier(p)), headers=JSON).json()["total"]
        found_o = requests.get(b.url("Observation?identifier=" + local_identifier(obs)), headers=JSON).json()["total"]
        assert (found_p, found_o) == (expected, expected), i
    assert requests.get(a.url(f"Patient/{anchor}"), headers=JSON).json()["meta"]["versionId"] == "1"


def test_concurrent_creates_on_the_same_new_id_never_duplicate(two_process_store):
    a, b = two_process_store
    pid = str(uuid.uuid4())
    barrier = threading.Barrier(4)
    codes = []

    def put(server):
        barrier.wait()
        codes.append(requests.put(server.url(f"Patient/{pid}"), json=patient(pid), headers=JSON).status_code)

    threads = [threading.Thread(target=put, args=((a, b)[i % 2],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes.count(201) == 1 and codes.count(200) == 3, codes
    history = requests.get(a.url(f"Patient/{pid}/_history"), headers=JSON).json()
    assert sorted(e["resource"]["meta"]["versionId"] for e in history["entry"]) == ["1", "2", "3", "4"]
