"""SMART scope enforcement and read auditing, with a stub token verifier (the sandbox auth server
plugs its real one into the same hook)."""

from __future__ import annotations

import time
import uuid

import pytest
import requests

from tests.support.store_data import goal, observation, patient
from tests.support.store_servers import start_ours
from thrive_fhir.smart_scopes import Grant

JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
P1, P2 = str(uuid.uuid4()), str(uuid.uuid4())

GRANTS = {
    "admin": Grant.from_scope_string("admin", "system/*.cruds"),
    "app-p1": Grant.from_scope_string(
        "app",
        "launch openid fhirUser patient/Patient.r patient/Observation.crs patient/Goal.cs patient/Provenance.c",
        patient=P1,
        user="Practitioner/dr-1",
        organization="Organization/org-1",
    ),
    "reader-v1": Grant.from_scope_string("agency", "user/Observation.read user/Patient.read", user="Practitioner/r"),
    "expired": Grant.from_scope_string("old", "system/*.cruds", expires=time.time() - 10),
    "worker": Grant.from_scope_string("sync", "system/Goal.ru system/Observation.cu"),
    "bulk": Grant.from_scope_string("bulk", "system/Patient.read system/Observation.read"),
}


def verifier(token: str):
    return GRANTS.get(token)


def auth(token: str) -> dict:
    return {**JSON, "Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    server = start_ours(
        f"sqlite:///{tmp_path_factory.mktemp('sec') / 'sec.db'}", token_verifier=verifier, audit_reads=True
    )
    for pid in (P1, P2):
        assert requests.put(server.url(f"Patient/{pid}"), json=patient(pid), headers=auth("admin")).status_code == 201
    yield server
    server.stop()


def test_metadata_and_discovery_need_no_token(secured):
    resp = requests.get(secured.url("metadata"), headers=JSON)
    assert resp.status_code == 200
    assert resp.json()["rest"][0]["security"]["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic YTpi"}, {"Authorization": "Bearer expired"}],
)
def test_missing_bad_or_expired_token_is_401(secured, headers):
    resp = requests.get(secured.url(f"Patient/{P1}"), headers={**JSON, **headers})
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert resp.json()["resourceType"] == "OperationOutcome"


def test_patient_scope_reads_own_patient_only(secured):
    assert requests.get(secured.url(f"Patient/{P1}"), headers=auth("app-p1")).status_code == 200
    other = requests.get(secured.url(f"Patient/{P2}"), headers=auth("app-p1"))
    assert other.status_code == 403 and other.json()["resourceType"] == "OperationOutcome"


def test_patient_scope_writes_only_in_own_compartment(secured):
    ok = requests.post(secured.url("Observation"), json=observation(f"Patient/{P1}"), headers=auth("app-p1"))
    assert ok.status_code == 201
    wrong = requests.post(secured.url("Observation"), json=observation(f"Patient/{P2}"), headers=auth("app-p1"))
    assert wrong.status_code == 403
    # c without u: no update, even of its own resource; no delete at all
    oid = ok.json()["id"]
    upd = requests.put(
        secured.url(f"Observation/{oid}"), json={**ok.json(), "status": "amended"}, headers=auth("app-p1")
    )
    assert upd.status_code == 403
    assert requests.delete(secured.url(f"Observation/{oid}"), headers=auth("app-p1")).status_code == 403
    # moving an existing resource of another patient into mine is refused too
    theirs = requests.post(secured.url("Observation"), json=observation(f"Patient/{P2}"), headers=auth("admin")).json()
    moved = requests.put(
        secured.url(f"Observation/{theirs['id']}"),
        json={**theirs, "subject": {"reference": f"Patient/{P1}"}},
        headers=auth("worker"),
    )
    assert moved.status_code == 200  # system scope may; a patient scope could not have read it


def test_patient_scope_search_is_restricted_and_other_patient_refused(secured):
    requests.post(secured.url("Observation"), json=observation(f"Patient/{P2}"), headers=auth("admin"))
    mine = requests.get(secured.url("Observation"), headers=auth("app-p1")).json()
    subjects = {e["resource"]["subject"]["reference"] for e in mine.get("entry", [])}
    assert subjects == {f"Patient/{P1}"}
    assert requests.get(secured.url(f"Observation?patient={P2}"), headers=auth("app-p1")).status_code == 403
    # Goal has c and s but not r: search allowed, read refused
    g = requests.post(secured.url("Goal"), json=goal(f"Patient/{P1}"), headers=auth("app-p1")).json()
    assert requests.get(secured.url(f"Goal?patient={P1}"), headers=auth("app-p1")).status_code == 200
    assert requests.get(secured.url(f"Goal/{g['id']}"), headers=auth("app-p1")).status_code == 403


def test_type_and_interaction_outside_scopes_is_403(secured):
    assert requests.get(secured.url("Consent"), headers=auth("app-p1")).status_code == 403
    assert requests.post(secured.url("Patient"), json=patient(), headers=auth("reader-v1")).status_code == 403
    assert requests.get(secured.url(f"Patient/{P2}"), headers=auth("reader-v1")).status_code == 200  # v1 .read = rs
    assert requests.get(secured.url("Goal"), headers=auth("reader-v1")).status_code == 403


def test_transactions_are_authorised_per_entry(secured):
    o_urn = f"urn:uuid:{uuid.uuid4()}"
    obs = observation(f"Patient/{P1}")
    prov = {
        "resourceType": "Provenance",
        "target": [{"reference": o_urn}],
        "recorded": "2024-05-01T10:00:00Z",
        "agent": [{"who": {"reference": "Practitioner/dr-1"}}],
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": o_urn, "resource": obs, "request": {"method": "POST", "url": "Observation"}},
            {"resource": prov, "request": {"method": "POST", "url": "Provenance"}},
        ],
    }
    assert requests.post(secured.base, json=bundle, headers=auth("app-p1")).status_code == 200
    # the same with a Consent entry (no scope) fails as a whole
    consent = {
        "resourceType": "Consent",
        "status": "active",
        "scope": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{P1}"},
        "policyRule": {"text": "share"},
    }
    marker = observation(f"Patient/{P1}")
    bundle["entry"] = [
        {"resource": marker, "request": {"method": "POST", "url": "Observation"}},
        {"resource": consent, "request": {"method": "POST", "url": "Consent"}},
    ]
    resp = requests.post(secured.base, json=bundle, headers=auth("app-p1"))
    assert resp.status_code == 403
    ident = marker["identifier"][0]
    found = requests.get(
        secured.url(f"Observation?identifier={ident['system']}|{ident['value']}"), headers=auth("admin")
    )
    assert found.json()["total"] == 0
    # a Provenance about another patient's data is outside the patient context
    theirs = requests.post(secured.url("Observation"), json=observation(f"Patient/{P2}"), headers=auth("admin")).json()
    prov_other = {**prov, "target": [{"reference": f"Observation/{theirs['id']}"}]}
    assert requests.post(secured.url("Provenance"), json=prov_other, headers=auth("app-p1")).status_code == 403


def test_reads_are_audited_without_health_data(secured):
    oid = requests.post(secured.url("Observation"), json=observation(f"Patient/{P1}"), headers=auth("admin")).json()[
        "id"
    ]
    assert requests.get(secured.url(f"Observation/{oid}"), headers=auth("reader-v1")).status_code == 200
    events = requests.get(secured.url(f"AuditEvent?entity=Observation/{oid}"), headers=auth("admin")).json()
    assert events["total"] == 1
    event = events["entry"][0]["resource"]
    assert event["type"]["code"] == "rest" and event["subtype"][0]["code"] == "read"
    assert event["agent"][0]["who"] == {"reference": "Practitioner/r"}
    assert event["purposeOfEvent"][0]["coding"][0]["code"] == "TREAT"
    refs = {e["what"]["reference"] for e in event["entity"] if "what" in e}
    assert {f"Observation/{oid}", f"Patient/{P1}"} <= refs
    assert "valueInteger" not in str(event)
    by_patient = requests.get(secured.url(f"AuditEvent?patient={P1}&subtype=search-type"), headers=auth("admin"))
    assert by_patient.status_code == 200


def test_bulk_export_needs_system_read_scopes_and_binds_job_to_client(secured):
    headers = {"Accept": "application/fhir+json", "Prefer": "respond-async"}
    refused = requests.get(secured.url("$export?_type=Goal"), headers={**headers, "Authorization": "Bearer bulk"})
    assert refused.status_code == 403
    assert (
        requests.get(secured.url("$export"), headers={**headers, "Authorization": "Bearer app-p1"}).status_code == 403
    )
    kick = requests.get(secured.url("$export?_type=Patient"), headers={**headers, "Authorization": "Bearer bulk"})
    assert kick.status_code == 202
    status_url = kick.headers["Content-Location"]
    assert requests.get(status_url).status_code == 401
    assert requests.get(status_url, headers={"Authorization": "Bearer admin"}).status_code == 403
    deadline = time.time() + 20
    while (poll := requests.get(status_url, headers={"Authorization": "Bearer bulk"})).status_code == 202:
        assert time.time() < deadline
        time.sleep(0.1)
    manifest = poll.json()
    assert manifest["requiresAccessToken"] is True
    url = manifest["output"][0]["url"]
    assert requests.get(url).status_code == 401
    assert requests.get(url, headers={"Authorization": "Bearer bulk"}).status_code == 200
