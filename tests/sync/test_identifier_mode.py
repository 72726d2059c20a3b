"""Identifier mode: stores that assign their own ids (Medplum for ordinary clients; cloud stores without
update-as-create), emulated by our store's quirks mode.

The worker creates by business identifier, learns the store's id from the answer, and rewrites
references through its local id -> store id map, including references to resources created in the
same Bundle (``urn:uuid`` fullUrls)."""

from __future__ import annotations

import json

import pytest
import requests

from tests.support.sync_quirks import QuirksStoreProcess, create_patients
from tests.support.sync_synthetic import Scenario
from tests.support.sync_verify import verify
from tests.support.sync_workers import drain, make_worker
from thrive_fhir.localstore import LocalStore
from thrive_fhir.localstore import models as m
from thrive_fhir.localstore import outbox as queue


@pytest.fixture(scope="module")
def server_ids_store(tmp_path_factory):
    server = QuirksStoreProcess(tmp_path_factory.mktemp("server-ids"), "server-ids").start()
    yield server
    server.stop()


def _store(url):
    s = LocalStore(url)
    s.migrate()
    return s


def _map(store) -> dict[tuple[str, str], str]:
    with store.engine.connect() as c:
        rows = c.execute(m.sync_resource_state.select()).all()
    return {(r.resource_type, r.resource_id): r.store_id for r in rows}


def test_deterministic_ids_are_refused_by_such_a_store(server_ids_store, sqlite_url):
    """Why the mode exists: PUT Type/<our uuid> answers 404, every save would be dead-lettered."""
    store = _store(sqlite_url)
    [pid] = create_patients(server_ids_store.base_url, 1)
    sc = Scenario(store, [pid])
    sc.new_goal(pid)
    drain([make_worker(store, server_ids_store.base_url)])
    fig = queue.figures(store)
    assert fig["dead"] == 1 and fig["sent"] == 0
    store.dispose()


@pytest.mark.parametrize("create", ["conditional-update", "if-none-exist"])
def test_identifier_mode_lands_every_save_once_in_order_with_rewritten_references(server_ids_store, sqlite_url, create):
    base = server_ids_store.base_url
    store = _store(sqlite_url)
    patients = create_patients(base, 4)
    sc = Scenario(store, patients, seed=5)
    # a goal and a score pointing at it in the same batch: the reference must go through urn:uuid
    for p in patients:
        sc.new_goal(p)
        sc.new_score(p)
    sc.random_saves(30)
    drain([make_worker(store, base, id_mode="identifier", identifier_create=create, max_entries=20)])
    result = verify(store, base)
    assert result["sent"] == sc.saves and result["pending"] == 0 and result["dead"] == 0, result
    assert (result["lost"], result["duplicated"], result["out_of_order"]) == (0, 0, 0), result
    ids = _map(store)
    for p in patients:
        for gid in sc.goals[p]:
            store_id = ids[("Goal", gid)]
            assert store_id and store_id != gid  # the store chose its own id
            remote = requests.get(f"{base}/Goal/{store_id}", timeout=30).json()
            assert remote["description"] == store.current("Goal", gid)["description"]
    # every reference to one of our resources points at the store's id, never at our local id
    history = requests.get(f"{base}/Observation", params={"_count": 500}, timeout=30).json()
    local_goal_ids = {g for p in patients for g in sc.goals[p]}
    store_goal_ids = {ids[("Goal", g)] for g in local_goal_ids}
    refs = [
        ext["valueReference"]["reference"]
        for e in history.get("entry") or []
        for ext in e["resource"].get("extension") or []
        if "valueReference" in ext and e["resource"]["subject"]["reference"].split("/")[1] in patients
    ]
    assert refs and all(r.split("/")[1] in store_goal_ids for r in refs), refs[:3]
    provs = requests.get(f"{base}/Provenance", params={"_count": 500}, timeout=30).json()
    targets = [t["reference"] for e in provs["entry"] for t in e["resource"]["target"]]
    assert len(targets) >= sc.saves
    assert not any(t.split("/")[1] in local_goal_ids for t in targets)
    store.dispose()


def test_identifier_mode_conflict_is_parked(server_ids_store, sqlite_url):
    base = server_ids_store.base_url
    store = _store(sqlite_url)
    [pid] = create_patients(base, 1)
    sc = Scenario(store, [pid])
    g = sc.new_goal(pid)
    drain([make_worker(store, base, id_mode="identifier")])
    store_id = _map(store)[("Goal", g["id"])]
    theirs = requests.get(f"{base}/Goal/{store_id}", timeout=30).json()
    theirs["description"] = {"text": "Edited by the school nurse"}
    theirs["meta"] = {"source": "https://school.example/fhir"}
    assert (
        requests.put(
            f"{base}/Goal/{store_id}",
            data=json.dumps(theirs),
            headers={"Content-Type": "application/fhir+json"},
            timeout=30,
        ).status_code
        == 200
    )
    sc.update_goal(pid, g["id"])
    drain([make_worker(store, base, id_mode="identifier")])
    fig = queue.figures(store)
    assert (fig["sent"], fig["conflicts"]) == (1, 1)
    assert (
        requests.get(f"{base}/Goal/{store_id}", timeout=30).json()["description"]["text"]
        == "Edited by the school nurse"
    )
    store.dispose()
