"""Per-entry answers the real stores in the other tests never give on demand: an entry answered 503 or
422 inside a 200 Bundle, and a Provenance the store kept for a save whose resource was refused.
``responses`` stands in for the store (error branches only); the local database is real."""

from __future__ import annotations

import json

import responses

from tests.support.sync_synthetic import Scenario
from tests.support.sync_workers import make_worker, new_patients
from thrive_fhir.ids import resource_id
from thrive_fhir.localstore import LocalStore
from thrive_fhir.localstore import outbox as queue
from thrive_fhir.sync import admin

BASE = "https://store.example/fhir"


def _answer(status: str, rtype: str | None = None, rid: str | None = None, outcome: dict | None = None) -> dict:
    resp = {"status": status}
    if rtype:
        resp |= {"location": f"{rtype}/{rid}/_history/1", "etag": 'W/"1"'}
    if outcome:
        resp["outcome"] = outcome
    return {"response": resp}


def _outcome(text):
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "invalid", "diagnostics": text}],
    }


def _three_goals(sqlite_url):
    store = LocalStore(sqlite_url)
    store.migrate()
    patients = new_patients(3)
    sc = Scenario(store, patients)
    goals = [sc.new_goal(p) for p in patients]
    with store.engine.connect() as c:
        uids = [r.uid for r in c.execute(queue.o.select().order_by(queue.o.c.id)).all()]
    return store, goals, uids


@responses.activate
def test_each_entry_is_classed_on_its_own_in_a_non_atomic_batch(sqlite_url):
    store, goals, uids = _three_goals(sqlite_url)
    # phase one: the three goals; the second answered 503, the third refused with its reason
    responses.post(
        BASE + "/",
        json={
            "resourceType": "Bundle",
            "type": "batch-response",
            "entry": [
                _answer("201 Created", "Goal", goals[0]["id"]),
                _answer("503 Service Unavailable"),
                _answer("422 Unprocessable Entity", outcome=_outcome("Goal.lifecycleStatus: unknown code")),
            ],
        },
    )
    # phase two: the Provenance of the only save whose resources all landed
    responses.post(
        BASE + "/",
        json={
            "resourceType": "Bundle",
            "type": "batch-response",
            "entry": [
                _answer("201 Created", "Provenance", resource_id("provenance", uids[0])),
            ],
        },
    )
    worker = make_worker(store, BASE, atomic_transactions=False)
    assert worker.step() == 3
    sent = [json.loads(c.request.body) for c in responses.calls]
    assert [e["request"]["method"] for e in sent[0]["entry"]] == ["PUT"] * 3 and sent[0]["type"] == "batch"
    assert [e["resource"]["resourceType"] for e in sent[1]["entry"]] == ["Provenance"]  # only the landed save's
    fig = queue.figures(store)
    assert (fig["sent"], fig["dead"], fig["queued"] + fig["in_flight"]) == (1, 1, 1)
    [dead] = admin.list_rows(store, "dead")
    detail = admin.show_row(store, dead["id"])
    assert detail["uid"] == uids[2] and detail["last_status"] == 422
    assert "unknown code" in detail["last_error"] and detail["outcome"]["resourceType"] == "OperationOutcome"
    [waiting] = admin.list_rows(store, "pending")
    assert waiting["uid"] == uids[1] and waiting["last_status"] == 503
    store.dispose()


@responses.activate
def test_transaction_answered_as_batch_withdraws_the_provenance_of_a_refused_save(sqlite_url):
    store, goals, uids = _three_goals(sqlite_url)
    refused = goals[1]["id"]
    prov_refused = resource_id("provenance", uids[1])
    responses.post(
        BASE + "/",
        json={
            "resourceType": "Bundle",
            "type": "transaction-response",
            "entry": [
                _answer("201 Created", "Goal", goals[0]["id"]),
                _answer("201 Created", "Provenance", resource_id("provenance", uids[0])),
                _answer("412 Precondition Failed", outcome=_outcome("version conflict")),
                _answer("201 Created", "Provenance", prov_refused),
                _answer("201 Created", "Goal", goals[2]["id"]),
                _answer("201 Created", "Provenance", resource_id("provenance", uids[2])),
            ],
        },
    )
    theirs = dict(goals[1], meta={"versionId": "4", "source": "https://school.example/fhir"})
    responses.get(f"{BASE}/Goal/{refused}", json=theirs)
    responses.delete(f"{BASE}/Provenance/{prov_refused}", status=204)
    worker = make_worker(store, BASE)
    assert worker.step() == 3
    assert worker.atomic is False  # from now on it sends in two phases
    fig = queue.figures(store)
    assert (fig["sent"], fig["conflicts"]) == (2, 1)
    [parked] = admin.list_rows(store, "conflict")
    assert parked["uid"] == uids[1]
    assert [c.request.method for c in responses.calls] == ["POST", "DELETE", "GET"]
    store.dispose()
