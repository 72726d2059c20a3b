"""Transaction and batch rules: an entry's request.url is routed as REST routes it, every batch entry
gets its own answer, and a transaction refuses entries that would write the same thing twice."""

from __future__ import annotations

import uuid

import pytest
import requests

from tests.support.store_data import LOCAL, patient

JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


def _post(server, kind: str, entries: list[dict]) -> requests.Response:
    return requests.post(server.base, json={"resourceType": "Bundle", "type": kind, "entry": entries}, headers=JSON)


def _put_patient(server) -> str:
    pid = str(uuid.uuid4())
    assert requests.put(server.url(f"Patient/{pid}"), json=patient(pid), headers=JSON).status_code == 201
    return pid


@pytest.mark.parametrize(
    "method,url,rest_status",
    [
        ("DELETE", "Patient/{pid}/_history/1", 405),
        ("PUT", "Patient/{pid}/_history/1", 405),
        ("POST", "Patient/{pid}", 405),
        ("DELETE", "http://other.example/Patient/{pid}", None),
        ("PUT", "https://other.example/fhir/Patient/{pid}", None),
        ("GET", "//other.example/Patient/{pid}", None),
        ("DELETE", "Patient/{pid}/extra/bits", 404),
    ],
)
def test_entry_urls_are_routed_like_rest(ours, method, url, rest_status):
    pid = _put_patient(ours)
    url = url.format(pid=pid)
    resource = {**patient(pid), "id": pid} if method in ("PUT", "POST") else None
    if rest_status is not None:  # what REST answers for the same URL
        rest = requests.request(method, ours.url(url), json=resource, headers=JSON)
        assert rest.status_code == rest_status
    entry = {"request": {"method": method, "url": url}}
    if resource:
        entry["resource"] = resource
    tx = _post(ours, "transaction", [entry])
    assert tx.status_code == (rest_status or 400), tx.text
    assert tx.json()["resourceType"] == "OperationOutcome"
    batch = _post(ours, "batch", [entry])
    assert batch.json()["entry"][0]["response"]["status"].startswith(str(rest_status or 400))
    current = requests.get(ours.url(f"Patient/{pid}"), headers=JSON)
    assert current.status_code == 200 and current.json()["meta"]["versionId"] == "1"


def test_history_urls_in_batch_get_entries(ours):
    pid = _put_patient(ours)
    requests.put(ours.url(f"Patient/{pid}"), json=patient(pid), headers=JSON)
    entries = _post(
        ours,
        "batch",
        [
            {"request": {"method": "GET", "url": u}}
            for u in (
                f"Patient/{pid}/_history",
                f"Patient/{pid}/_history/1",
                "Patient/_history?_count=1",
                "_history?_count=1",
            )
        ],
    ).json()["entry"]
    assert [e["response"]["status"][:3] for e in entries] == ["200"] * 4
    assert [x["resource"]["meta"]["versionId"] for x in entries[0]["resource"]["entry"]] == ["2", "1"]
    assert entries[1]["resource"]["meta"]["versionId"] == "1"
    assert entries[2]["resource"]["type"] == entries[3]["resource"]["type"] == "history"


def test_a_failing_batch_entry_leaves_the_others_their_answers(ours, monkeypatch):
    """An unexpected error in one entry (injected: read of one id raises) is that entry's 500; the
    entries before and after it keep their own answers, so a client retries only what failed."""
    store = ours.app.store
    real_read = store.read
    boom = str(uuid.uuid4())

    def read(ctx, rtype, rid, **kwargs):
        if rid == boom:
            raise RuntimeError("injected")
        return real_read(ctx, rtype, rid, **kwargs)

    monkeypatch.setattr(store, "read", read)
    first, last = patient(), patient()
    resp = _post(
        ours,
        "batch",
        [
            {"resource": first, "request": {"method": "POST", "url": "Patient"}},
            {"request": {"method": "GET", "url": f"Patient/{boom}"}},
            {"resource": last, "request": {"method": "POST", "url": "Patient"}},
        ],
    )
    assert resp.status_code == 200, resp.text
    statuses = [e["response"]["status"][:3] for e in resp.json()["entry"]]
    assert statuses == ["201", "500", "201"]
    assert resp.json()["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    for made in (first, last):
        ident = made["identifier"][1]["value"]
        found = requests.get(ours.url(f"Patient?identifier={LOCAL}|{ident}"), headers=JSON).json()
        assert found["total"] == 1


def _cond_put(criteria: str, res: dict) -> dict:
    return {"resource": res, "request": {"method": "PUT", "url": f"Patient?{criteria}"}}


def test_duplicate_conditional_entries_are_refused(ours):
    ident = uuid.uuid4().hex
    a, b = patient(), patient()
    for res in (a, b):
        res["identifier"] = [{"system": LOCAL, "value": ident}]
    cases = {
        "two conditional PUTs": [
            _cond_put(f"identifier={LOCAL}|{ident}", a),
            _cond_put(f"identifier={LOCAL}|{ident}", b),
        ],
        "criteria in another order": [
            _cond_put(f"identifier={LOCAL}|{ident}&active=true", a),
            _cond_put(f"active=true&identifier={LOCAL}|{ident}", b),
        ],
        "two ifNoneExist": [
            {
                "resource": r,
                "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier={LOCAL}|{ident}"},
            }
            for r in (a, b)
        ],
        "PUT and ifNoneExist": [
            _cond_put(f"identifier={LOCAL}|{ident}", a),
            {
                "resource": b,
                "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier={LOCAL}|{ident}"},
            },
        ],
    }
    for name, entries in cases.items():
        resp = _post(ours, "transaction", entries)
        assert resp.status_code == 400, (name, resp.text)
        assert "conditional criteria" in resp.json()["issue"][0]["diagnostics"]
    found = requests.get(ours.url(f"Patient?identifier={LOCAL}|{ident}"), headers=JSON).json()
    assert found["total"] == 0
    # one conditional write per criteria still works, and later conditional updates find one match
    assert _post(ours, "transaction", [_cond_put(f"identifier={LOCAL}|{ident}", a)]).status_code == 200
    assert requests.put(ours.url(f"Patient?identifier={LOCAL}|{ident}"), json=b, headers=JSON).status_code == 200


def test_duplicate_full_url_is_refused(ours):
    """bdl-7: a reference to a fullUrl named twice used to resolve silently to the last entry."""
    full = f"urn:uuid:{uuid.uuid4()}"
    a, b = patient(), patient()
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "subject": {"reference": full},
        "identifier": [{"system": LOCAL, "value": uuid.uuid4().hex}],
    }
    entries = [
        {"fullUrl": full, "resource": a, "request": {"method": "POST", "url": "Patient"}},
        {"fullUrl": full, "resource": b, "request": {"method": "POST", "url": "Patient"}},
        {"resource": obs, "request": {"method": "POST", "url": "Observation"}},
    ]
    resp = _post(ours, "transaction", entries)
    assert resp.status_code == 400 and "bdl-7" in resp.json()["issue"][0]["diagnostics"]
    for res in (a, b):
        found = requests.get(ours.url(f"Patient?identifier={LOCAL}|{res['identifier'][1]['value']}"), headers=JSON)
        assert found.json()["total"] == 0
