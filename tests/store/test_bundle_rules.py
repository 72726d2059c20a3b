"""Transaction and batch rules: an entry's request.url is routed as REST routes it, every batch entry
gets its own answer, and a transaction refuses entries that would write the same thing twice."""

from __future__ import annotations

import uuid

import pytest
import requests

from store_data import LOCAL, patient

JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


def _post(server, kind: str, entries: list[dict]) -> requests.Response:
    return requests.post(server.base, json={"resourceType": "Bundle", "type": kind, "entry": entries}, headers=JSON)


def _put_patient(server) -> str:
    pid = str(uuid.uuid4())
    assert requests.put(server.url(f"Patient/{pid}"), json=patient(pid), headers=JSON).status_code == 201
    return pid


@pytest.mark.parametrize("method,url,rest_status", [
    ("DELETE", "Patient/{pid}/_history/1", 405),
    ("PUT", "Patient/{pid}/_history/1", 405),
    ("POST", "Patient/{pid}", 405),
    ("DELETE", "http://other.example/Patient/{pid}", None),
    ("PUT", "https://other.example/fhir/Patient/{pid}", None),
    ("GET", "//other.example/Patient/{pid}", None),
    ("DELETE", "Patient/{pid}/extra/bits", 404),
])
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
    entries = _post(ours, "batch", [{"request": {"method": "GET", "url": u}} for u in
                                    (f"Patient/{pid}/_history", f"Patient/{pid}/_history/1", "Patient/_history?_count=1",
                                     "_history?_count=1")]).json()["entry"]
    assert [e["response"]["status"][:3] for e in entries] == ["200"] * 4
    assert [x["resource"]["meta"]["versionId"] for x in entries[0]["resource"]["entry"]] == ["2", "1"]
    assert entries[1]["resource"]["meta"]["versionId"] == "1"
    assert entries[2]["resource"]["type"] == entries[3]["resource"]["type"] == "history"
