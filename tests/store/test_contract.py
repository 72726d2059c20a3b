"""REST contract: written once, run against our store (SQLite, PostgreSQL) and sekmet-fhir 0.1.1.

Only behaviour both servers claim is here; behaviour only ours claims is in test_store_features.py,
and every difference found is recorded in docs/store-vs-sekmet.md.
"""

from __future__ import annotations

import time
import uuid

import requests

from tests.support.store_data import LOCAL, goal, local_identifier, observation, patient

JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


def is_outcome(resp) -> bool:
    return resp.json().get("resourceType") == "OperationOutcome"


def count(server, query: str) -> int:
    resp = requests.get(server.url(query), headers=JSON)
    assert resp.status_code == 200, resp.text
    return len(resp.json().get("entry", []))


def test_metadata_is_r4_capability_statement(server):
    resp = requests.get(server.url("metadata"), headers=JSON)
    assert resp.status_code == 200
    body = resp.json()
    assert body["resourceType"] == "CapabilityStatement"
    assert body["fhirVersion"].startswith("4.0")
    types = {r["type"] for r in body["rest"][0]["resource"]}
    # Goal is left out: sekmet-fhir serves Goal but does not list it (docs/store-vs-sekmet.md).
    assert {"Patient", "Observation", "CarePlan", "Consent", "Provenance"} <= types


def test_create_read_and_version_headers(server):
    resp = requests.post(server.url("Patient"), json=patient(), headers=JSON)
    assert resp.status_code == 201
    created = resp.json()
    pid = created["id"]
    assert created["meta"]["versionId"] == "1"
    assert f"Patient/{pid}/_history/1" in resp.headers["Location"]
    assert resp.headers["ETag"] == 'W/"1"'
    read = requests.get(server.url(f"Patient/{pid}"), headers=JSON)
    assert read.status_code == 200
    assert read.json()["identifier"] == created["identifier"]
    assert read.headers["ETag"] == 'W/"1"'


def test_update_with_client_id_creates_then_versions(server):
    pid = str(uuid.uuid4())
    first = requests.put(server.url(f"Patient/{pid}"), json=patient(pid), headers=JSON)
    assert first.status_code == 201
    body = patient(pid, family="Renamed")
    second = requests.put(server.url(f"Patient/{pid}"), json=body, headers=JSON)
    assert second.status_code == 200
    assert second.json()["meta"]["versionId"] == "2"
    v1 = requests.get(server.url(f"Patient/{pid}/_history/1"), headers=JSON)
    assert v1.status_code == 200 and v1.json()["name"][0]["family"] == "Testperson"
    v2 = requests.get(server.url(f"Patient/{pid}/_history/2"), headers=JSON)
    assert v2.json()["name"][0]["family"] == "Renamed"


def test_if_match_mismatch_is_412_and_match_updates(server):
    pid = str(uuid.uuid4())
    requests.put(server.url(f"Patient/{pid}"), json=patient(pid), headers=JSON)
    stale = requests.put(
        server.url(f"Patient/{pid}"), json=patient(pid, family="Stale"), headers={**JSON, "If-Match": 'W/"7"'}
    )
    assert stale.status_code == 412 and is_outcome(stale)
    fresh = requests.put(
        server.url(f"Patient/{pid}"), json=patient(pid, family="Fresh"), headers={**JSON, "If-Match": 'W/"1"'}
    )
    assert fresh.status_code == 200
    assert requests.get(server.url(f"Patient/{pid}"), headers=JSON).json()["name"][0]["family"] == "Fresh"


def test_delete_then_read_is_410_and_history_keeps_versions(server):
    pid = str(uuid.uuid4())
    requests.put(server.url(f"Patient/{pid}"), json=patient(pid), headers=JSON)
    resp = requests.delete(server.url(f"Patient/{pid}"), headers=JSON)
    assert resp.status_code in (200, 204)
    gone = requests.get(server.url(f"Patient/{pid}"), headers=JSON)
    assert gone.status_code == 410 and is_outcome(gone)
    history = requests.get(server.url(f"Patient/{pid}/_history"), headers=JSON).json()
    assert history["type"] == "history"
    assert len(history["entry"]) == 2
    assert requests.get(server.url(f"Patient/{pid}/_history/1"), headers=JSON).status_code == 200


def test_unknown_id_and_unknown_type_are_404_outcomes(server):
    resp = requests.get(server.url(f"Patient/{uuid.uuid4()}"), headers=JSON)
    assert resp.status_code == 404 and is_outcome(resp)
    resp = requests.get(server.url("NotAType/1"), headers=JSON)
    assert resp.status_code == 404 and is_outcome(resp)


def test_conditional_create_does_not_duplicate(server):
    body = patient()
    criteria = "identifier=" + local_identifier(body)
    first = requests.post(server.url("Patient"), json=body, headers={**JSON, "If-None-Exist": criteria})
    assert first.status_code == 201
    second = requests.post(server.url("Patient"), json=body, headers={**JSON, "If-None-Exist": criteria})
    assert second.status_code == 200
    assert count(server, "Patient?" + criteria) == 1


def test_conditional_update_on_identifier(server):
    body = patient()
    criteria = "identifier=" + local_identifier(body)
    first = requests.put(server.url("Patient?" + criteria), json=body, headers=JSON)
    assert first.status_code == 201
    body["gender"] = "female"
    second = requests.put(server.url("Patient?" + criteria), json=body, headers=JSON)
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["meta"]["versionId"] == "2"


def _transaction(entries):
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def test_transaction_resolves_urn_uuid_references_everywhere(server):
    p_urn, o_urn = f"urn:uuid:{uuid.uuid4()}", f"urn:uuid:{uuid.uuid4()}"
    prov = {
        "resourceType": "Provenance",
        "target": [{"reference": o_urn}],
        "recorded": "2024-05-01T10:00:00Z",
        "agent": [{"who": {"reference": p_urn}}],  # nested references
        "entity": [{"role": "source", "what": {"reference": o_urn}}],
    }
    bundle = _transaction(
        [
            {"resource": prov, "request": {"method": "POST", "url": "Provenance"}},
            {"fullUrl": p_urn, "resource": patient(), "request": {"method": "POST", "url": "Patient"}},
            {"fullUrl": o_urn, "resource": observation(p_urn), "request": {"method": "POST", "url": "Observation"}},
        ]
    )
    resp = requests.post(server.base, json=bundle, headers=JSON)
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["type"] == "transaction-response"
    statuses = [e["response"]["status"] for e in out["entry"]]
    assert all(s.startswith("201") for s in statuses)
    locations = [e["response"]["location"] for e in out["entry"]]
    prov_id = locations[0].split("Provenance/")[1].split("/")[0]
    pid = locations[1].split("Patient/")[1].split("/")[0]
    oid = locations[2].split("Observation/")[1].split("/")[0]
    stored = requests.get(server.url(f"Observation/{oid}"), headers=JSON).json()
    assert stored["subject"]["reference"].endswith(f"Patient/{pid}")
    stored_prov = requests.get(server.url(f"Provenance/{prov_id}"), headers=JSON).json()
    assert stored_prov["target"][0]["reference"].endswith(f"Observation/{oid}")
    assert stored_prov["agent"][0]["who"]["reference"].endswith(f"Patient/{pid}")
    assert stored_prov["entity"][0]["what"]["reference"].endswith(f"Observation/{oid}")
    assert all(e["response"].get("etag", 'W/"1"') == 'W/"1"' for e in out["entry"])


def test_transaction_is_all_or_nothing(server):
    marker = patient()
    existing = str(uuid.uuid4())
    requests.put(server.url(f"Patient/{existing}"), json=patient(existing), headers=JSON)
    bundle = _transaction(
        [
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": marker,
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": patient(existing, family="Changed"),
                "request": {"method": "PUT", "url": f"Patient/{existing}", "ifMatch": 'W/"9"'},
            },
        ]
    )
    resp = requests.post(server.base, json=bundle, headers=JSON)
    assert 400 <= resp.status_code < 500
    assert is_outcome(resp)
    assert count(server, "Patient?identifier=" + local_identifier(marker)) == 0
    assert requests.get(server.url(f"Patient/{existing}"), headers=JSON).json()["name"][0]["family"] == "Testperson"


def test_batch_entries_are_independent(server):
    good = patient()
    existing = str(uuid.uuid4())
    requests.put(server.url(f"Patient/{existing}"), json=patient(existing), headers=JSON)
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"resource": good, "request": {"method": "POST", "url": "Patient"}},
            {
                "resource": patient(existing),
                "request": {"method": "PUT", "url": f"Patient/{existing}", "ifMatch": 'W/"9"'},
            },
            {"request": {"method": "GET", "url": f"Patient/{existing}"}},
        ],
    }
    resp = requests.post(server.base, json=bundle, headers=JSON)
    assert resp.status_code == 200
    statuses = [e["response"]["status"][:3] for e in resp.json()["entry"]]
    assert statuses == ["201", "412", "200"]
    assert count(server, "Patient?identifier=" + local_identifier(good)) == 1


def test_search_by_patient_code_date_identifier_and_lastupdated(server):
    pid = str(uuid.uuid4())
    requests.put(server.url(f"Patient/{pid}"), json=patient(pid), headers=JSON)
    start = requests.get(server.url(f"Patient/{pid}"), headers=JSON).json()["meta"]["lastUpdated"]
    early = observation(f"Patient/{pid}", code="1111-1", when="2024-01-15T09:00:00Z")
    late = observation(f"Patient/{pid}", code="2222-2", when="2024-06-15T09:00:00Z")
    for o in (early, late):
        assert requests.post(server.url("Observation"), json=o, headers=JSON).status_code == 201
    assert count(server, f"Observation?patient={pid}") == 2
    assert count(server, f"Observation?subject=Patient/{pid}") == 2
    assert count(server, f"Observation?patient={pid}&code={'http://loinc.org'}|1111-1") == 1
    assert count(server, f"Observation?patient={pid}&date=ge2024-03-01") == 1
    assert count(server, f"Observation?patient={pid}&date=lt2024-03-01") == 1
    assert count(server, "Observation?identifier=" + local_identifier(late)) == 1
    since = requests.utils.quote(start)
    assert count(server, f"Observation?patient={pid}&_lastUpdated=ge{since}") == 2


def test_paging_with_next_links_returns_each_match_once(server):
    pid = str(uuid.uuid4())
    requests.put(server.url(f"Patient/{pid}"), json=patient(pid), headers=JSON)
    made = set()
    for i in range(7):
        resp = requests.post(server.url("Observation"), json=observation(f"Patient/{pid}"), headers=JSON)
        made.add(resp.json()["id"])
    url, seen, pages = server.url(f"Observation?patient={pid}&_count=3"), [], 0
    while url:
        page = requests.get(url, headers=JSON).json()
        pages += 1
        seen += [e["resource"]["id"] for e in page.get("entry", [])]
        url = next((link["url"] for link in page.get("link", []) if link["relation"] == "next"), None)
        assert pages < 10
    assert pages == 3
    assert sorted(seen) == sorted(made)


def test_summary_count(server):
    pid = str(uuid.uuid4())
    requests.put(server.url(f"Patient/{pid}"), json=patient(pid), headers=JSON)
    for _ in range(3):
        requests.post(server.url("Observation"), json=observation(f"Patient/{pid}"), headers=JSON)
    resp = requests.get(server.url(f"Observation?patient={pid}&_summary=count"), headers=JSON).json()
    assert resp["total"] == 3
    assert not resp.get("entry")


def test_strict_handling_rejects_unknown_search_parameter(server):
    resp = requests.get(server.url("Patient?no-such-param=1"), headers={**JSON, "Prefer": "handling=strict"})
    assert resp.status_code == 400 and is_outcome(resp)


def test_type_history_since(server):
    pid = str(uuid.uuid4())
    requests.put(server.url(f"Patient/{pid}"), json=patient(pid), headers=JSON)
    marker = requests.get(server.url(f"Patient/{pid}"), headers=JSON).json()["meta"]["lastUpdated"]
    time.sleep(0.01)
    requests.put(server.url(f"Patient/{pid}"), json=patient(pid, family="Later"), headers=JSON)
    resp = requests.get(server.url(f"Patient/_history?_since={requests.utils.quote(marker)}"), headers=JSON)
    assert resp.status_code == 200
    ids = [e.get("resource", {}).get("id") for e in resp.json().get("entry", [])]
    assert pid in ids
    versions = {
        e["resource"]["meta"]["versionId"] for e in resp.json()["entry"] if e.get("resource", {}).get("id") == pid
    }
    assert "2" in versions
    # R4: _since is "at or after" the instant.
    assert all(e["resource"]["meta"]["lastUpdated"] >= marker for e in resp.json()["entry"] if "resource" in e)


def test_bad_input_gets_4xx_outcome_and_stores_nothing(server):
    before = count(server, "Patient?family=Badinput")
    cases = [
        (b"{not json", {}),
        ("\xff\xfe{}".encode("latin-1"), {}),
    ]
    for data, _ in cases:
        resp = requests.post(server.url("Patient"), data=data, headers=JSON)
        assert 400 <= resp.status_code < 500 and is_outcome(resp), resp.text
    wrong_type = requests.post(
        server.url("Patient"), json={**observation("Patient/x"), "resourceType": "Observation"}, headers=JSON
    )
    assert wrong_type.status_code == 400 and is_outcome(wrong_type)
    body = patient("abc", family="Badinput")
    mismatch = requests.put(server.url("Patient/xyz"), json=body, headers=JSON)
    assert mismatch.status_code == 400 and is_outcome(mismatch)
    assert requests.get(server.url("Patient/xyz"), headers=JSON).status_code == 404
    assert count(server, "Patient?family=Badinput") == before


def test_bulk_export_kickoff_poll_download(server):
    pid = str(uuid.uuid4())
    requests.put(server.url(f"Patient/{pid}"), json=patient(pid), headers=JSON)
    kick = requests.get(
        server.url("$export?_type=Patient"), headers={"Accept": "application/fhir+json", "Prefer": "respond-async"}
    )
    assert kick.status_code == 202
    status_url = kick.headers["Content-Location"]
    deadline = time.time() + 30
    while True:
        poll = requests.get(status_url, headers={"Accept": "application/json"})
        if poll.status_code == 200:
            break
        assert poll.status_code == 202
        assert time.time() < deadline
        time.sleep(0.2)
    manifest = poll.json()
    assert manifest["output"] and all(o["type"] == "Patient" for o in manifest["output"])
    lines = []
    for out in manifest["output"]:
        lines += requests.get(out["url"], headers={"Accept": "application/fhir+ndjson"}).text.splitlines()
    ids = {__import__("json").loads(line)["id"] for line in lines}
    assert pid in ids


def test_goal_read_and_identifier_search(server):
    pid = str(uuid.uuid4())
    requests.put(server.url(f"Patient/{pid}"), json=patient(pid), headers=JSON)
    g = goal(f"Patient/{pid}")
    resp = requests.post(server.url("Goal"), json=g, headers=JSON)
    assert resp.status_code == 201
    assert requests.get(server.url(f"Goal/{resp.json()['id']}"), headers=JSON).status_code == 200
    assert LOCAL in local_identifier(g)
