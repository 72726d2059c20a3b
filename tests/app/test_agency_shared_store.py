"""The agency view reads the plan from the shared store over FHIR with the worker's own token, and
acts on the Tasks its organisation owns (If-Match, Provenance); the app keeps no copy.

The shared store is our store served over HTTP with consent enforcement on; the plan in it was built
by the app's own builders (seed_plan in a clinician app) and pushed as the sync worker would."""

from __future__ import annotations

import re
import uuid

import pytest
import requests

from smart_app import create_app
from tests.support.app import TEST_ORIGIN, make_launch, seed_plan, test_config
from thrive_fhir.sandbox.server import ServerThread
from thrive_fhir.smart_scopes import Grant
from thrive_fhir.store import create_app as create_store

CUSTODIAN = "Organization/agency-test-trust"
ORG_A = "Organization/agency-school-1"
ORG_B = "Organization/agency-social-care-2"
WORKER = "Practitioner/agency-worker-1"
AGENCY_SCOPES = (
    "launch/patient openid fhirUser patient/Patient.rs patient/Consent.rs patient/Observation.rs "
    "patient/Goal.rs patient/CarePlan.rs patient/ServiceRequest.rs patient/CareTeam.rs "
    "patient/HealthcareService.rs patient/Task.rus patient/Provenance.crs"
)
JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


def _grant(token: str):
    if token == "custodian":
        return Grant.from_scope_string("sync", "system/*.cruds", organization=CUSTODIAN)
    # "agency:<org>:<patient>": the worker's token after a standalone launch for <patient>
    kind, _, rest = token.partition(":")
    if kind == "agency":
        org, _, patient = rest.partition("|")
        return Grant.from_scope_string("thrive-app", AGENCY_SCOPES, user=WORKER, organization=org, patient=patient)
    return None


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """The shared store with two young people's plans: one shared with ORG_A, one not."""
    tmp = tmp_path_factory.mktemp("agency-shared")
    server = ServerThread(name="shared-store")
    base = server.origin + "/fhir"
    store = create_store(
        f"sqlite:///{tmp / 'shared.db'}", base_url=base, token_verifier=_grant, consent_custodians=[CUSTODIAN]
    )
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    server.start(DispatcherMiddleware(lambda e, s: (s("404 Not Found", []), [b""])[1], {"/fhir": store}))
    clinician_app = create_app(test_config(tmp, journeys=False))
    shared_pid, other_pid = f"yp-{uuid.uuid4().hex[:8]}", f"yp-{uuid.uuid4().hex[:8]}"
    seed_plan(clinician_app, shared_pid, share_with=(ORG_A,))
    seed_plan(clinician_app, other_pid, share_with=(ORG_B,))
    local = clinician_app.extensions["thrive"].local_store
    tasks = {}
    for pid in (shared_pid, other_pid):
        _put(base, {"resourceType": "Patient", "id": pid, "name": [{"family": "Sharedperson", "given": ["Robin"]}]})
        for resource in local.for_patient(f"Patient/{pid}"):
            _put(base, resource)
        tid = str(uuid.uuid4())
        sr = next(r for r in local.for_patient(f"Patient/{pid}") if r["resourceType"] == "ServiceRequest")
        _put(
            base,
            {
                "resourceType": "Task",
                "id": tid,
                "status": "requested",
                "intent": "order",
                "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]},
                "focus": {"reference": f"ServiceRequest/{sr['id']}"},
                "for": {"reference": f"Patient/{pid}"},
                "authoredOn": "2025-03-04T16:10:00Z",
                "requester": {"reference": CUSTODIAN},
                "owner": {"reference": ORG_A if pid == shared_pid else ORG_B},
            },
        )
        tasks[pid] = tid
    yield type("Shared", (), {"base": base, "shared": shared_pid, "other": other_pid, "tasks": tasks})
    server.stop()


def _put(base: str, resource: dict) -> None:
    resp = requests.put(
        f"{base}/{resource['resourceType']}/{resource['id']}",
        json=resource,
        headers={**JSON, "Authorization": "Bearer custodian"},
    )
    assert resp.status_code in (200, 201), (resource["resourceType"], resp.text[:300])


def _get(base: str, path: str) -> dict:
    return requests.get(f"{base}/{path}", headers={**JSON, "Authorization": "Bearer custodian"}).json()


@pytest.fixture
def agency_app(tmp_path):
    return create_app(test_config(tmp_path, journeys=False))


def _launch(app, shared, patient: str, org: str = ORG_A):
    return make_launch(
        app,
        patient_id=patient,
        mode="standalone",
        iss=shared.base,
        organization_ref=org,
        user_ref=WORKER,
        access_token=f"agency:{org}|{patient}",
        scopes=AGENCY_SCOPES,
    )


def _text(resp) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", resp.get_data(as_text=True)))


def _store_audits(shared, patient: str) -> list[dict]:
    bundle = _get(shared.base, f"AuditEvent?patient=Patient/{patient}&_count=500")
    return [e["resource"] for e in bundle.get("entry", [])]


def test_agency_reads_the_plan_from_the_shared_store_and_keeps_no_copy(agency_app, shared):
    local = agency_app.extensions["thrive"].local_store
    assert local.for_patient(f"Patient/{shared.shared}", "Observation") == []  # nothing here: only the store has it
    launch = _launch(agency_app, shared, shared.shared)
    before = len(_store_audits(shared, shared.shared))
    resp = launch.client().get(launch.url("shared-plan"), base_url=TEST_ORIGIN)
    assert resp.status_code == 200, _text(resp)[:500]
    text = _text(resp)
    assert "Shared plan" in text and "Getting Risk Support" in text and "Staying in my room" in text
    assert "Therapy paused" not in text  # clinician notes stay with the clinical team
    assert "Requests for your organisation" in text and "Accept" in text
    # the store audited the worker's reads itself (who, organisation, young person)
    audits = _store_audits(shared, shared.shared)
    assert len(audits) >= before + 8  # the Patient read and one search per plan type
    assert all({WORKER, ORG_A} <= {ag["who"].get("reference") for ag in a["agent"]} for a in audits)
    assert {a["subtype"][0]["code"] for a in audits} >= {"read", "search-type"}
    # nothing of the plan was kept locally: only the app's own record of the read (and its Provenance)
    kept = {r["resourceType"] for r in local.for_patient(f"Patient/{shared.shared}")}
    assert kept == {"AuditEvent", "Provenance"}


def test_not_shared_young_person_is_refused_by_the_store_and_the_app(agency_app, shared):
    launch = _launch(agency_app, shared, shared.other)
    resp = launch.client().get(launch.url("shared-plan"), base_url=TEST_ORIGIN)
    assert resp.status_code == 403
    text = _text(resp)
    assert "not shared with your organisation" in text and "Staying in my room" not in text
    refused = [a for a in _store_audits(shared, shared.other) if a["outcome"] == "4"]
    assert refused and "not shared" in refused[-1]["outcomeDesc"]


def test_app_check_stays_when_the_store_shows_more(agency_app, shared, monkeypatch):
    """Defence in depth: even if the store returned an unshared young person's record, the app's own
    consent rule refuses it (here the store is asked with the custodian's token)."""
    launch = make_launch(
        agency_app,
        patient_id=shared.other,
        mode="standalone",
        iss=shared.base,
        organization_ref=ORG_A,
        user_ref=WORKER,
        access_token="custodian",
    )
    resp = launch.client().get(launch.url("shared-plan"), base_url=TEST_ORIGIN)
    assert resp.status_code == 403 and "Staying in my room" not in _text(resp)


def _task_form(resp_text: str, task_id: str) -> dict:
    block = resp_text.split(f'id="task-{task_id}"', 1)[1]
    version = re.search(r'name="version" value="(\d+)"', block).group(1)
    return {"version": version}


def test_agency_accepts_then_progresses_its_task_with_provenance(agency_app, shared):
    tid = shared.tasks[shared.shared]
    launch = _launch(agency_app, shared, shared.shared)
    client = launch.client()
    page = client.get(launch.url("shared-plan"), base_url=TEST_ORIGIN).get_data(as_text=True)
    form = _task_form(page, tid)
    done = launch.post(client, f"shared-plan/tasks/{tid}", {**form, "action": "accept"})
    assert done.status_code == 303 and "done=accepted" in done.headers["Location"]
    task = _get(shared.base, f"Task/{tid}")
    assert task["status"] == "accepted" and task["meta"]["versionId"] == str(int(form["version"]) + 1)
    provs = [e["resource"] for e in _get(shared.base, f"Provenance?target=Task/{tid}").get("entry", [])]
    assert provs, "every agency write carries a Provenance"
    agent = provs[-1]["agent"][0]
    assert agent["who"]["reference"] == WORKER and agent["onBehalfOf"]["reference"] == ORG_A
    page = client.get(launch.url("shared-plan") + "?done=accepted", base_url=TEST_ORIGIN)
    assert "The request was accepted." in _text(page)
    form = _task_form(page.get_data(as_text=True), tid)
    assert launch.post(client, f"shared-plan/tasks/{tid}", {**form, "action": "start"}).status_code == 303
    assert _get(shared.base, f"Task/{tid}")["status"] == "in-progress"


def test_a_stale_update_shows_the_conflict_and_overwrites_nothing(agency_app, shared):
    tid = shared.tasks[shared.shared]
    launch = _launch(agency_app, shared, shared.shared)
    client = launch.client()
    page = client.get(launch.url("shared-plan"), base_url=TEST_ORIGIN).get_data(as_text=True)
    form = _task_form(page, tid)
    # someone else changes the Task in between
    current = _get(shared.base, f"Task/{tid}")
    changed = {**{k: v for k, v in current.items() if k != "meta"}, "status": "completed"}
    _put(shared.base, changed)
    resp = launch.post(client, f"shared-plan/tasks/{tid}", {**form, "action": "complete"})
    assert resp.status_code == 409
    text = _text(resp)
    assert "Someone else changed this request" in text and "Nothing was saved" in text
    after = _get(shared.base, f"Task/{tid}")
    assert after["meta"]["versionId"] == str(int(current["meta"]["versionId"]) + 1)  # only the other change
    assert after["status"] == "completed"


def test_decline_needs_a_reason_and_records_it(agency_app, shared, tmp_path):
    # a fresh Task to decline
    tid = str(uuid.uuid4())
    _put(
        shared.base,
        {
            "resourceType": "Task",
            "id": tid,
            "status": "requested",
            "intent": "order",
            "for": {"reference": f"Patient/{shared.shared}"},
            "authoredOn": "2025-03-04T16:10:00Z",
            "owner": {"reference": ORG_A},
            "requester": {"reference": CUSTODIAN},
        },
    )
    launch = _launch(agency_app, shared, shared.shared)
    client = launch.client()
    form = _task_form(client.get(launch.url("shared-plan"), base_url=TEST_ORIGIN).get_data(as_text=True), tid)
    no_reason = launch.post(client, f"shared-plan/tasks/{tid}", {**form, "action": "decline", "reason": "  "})
    assert no_reason.status_code == 400 and "Say why you are declining" in _text(no_reason)
    assert _get(shared.base, f"Task/{tid}")["status"] == "requested"
    ok = launch.post(
        client,
        f"shared-plan/tasks/{tid}",
        {**form, "action": "decline", "reason": "No places this term; try the youth hub"},
    )
    assert ok.status_code == 303
    task = _get(shared.base, f"Task/{tid}")
    assert task["status"] == "rejected" and task["statusReason"]["text"] == "No places this term; try the youth hub"


def test_cannot_act_on_another_organisations_or_another_young_persons_task(agency_app, shared):
    launch = _launch(agency_app, shared, shared.shared)
    client = launch.client()
    other_task = shared.tasks[shared.other]
    resp = launch.post(client, f"shared-plan/tasks/{other_task}", {"version": "1", "action": "accept"})
    assert resp.status_code == 404
    assert _get(shared.base, f"Task/{other_task}")["status"] == "requested"
    bad = launch.post(client, "shared-plan/tasks/..%2Fx", {"version": "1", "action": "accept"})
    assert bad.status_code in (403, 404)
    # a Task of this young person owned by another organisation: not shown, not changeable
    tid = str(uuid.uuid4())
    _put(
        shared.base,
        {
            "resourceType": "Task",
            "id": tid,
            "status": "requested",
            "intent": "order",
            "for": {"reference": f"Patient/{shared.shared}"},
            "authoredOn": "2025-03-04T16:10:00Z",
            "owner": {"reference": ORG_B},
            "requester": {"reference": CUSTODIAN},
        },
    )
    page = client.get(launch.url("shared-plan"), base_url=TEST_ORIGIN).get_data(as_text=True)
    assert f'id="task-{tid}"' not in page
    resp = launch.post(client, f"shared-plan/tasks/{tid}", {"version": "1", "action": "accept"})
    assert resp.status_code == 400 and "not for your organisation" in _text(resp)
    assert _get(shared.base, f"Task/{tid}")["status"] == "requested"


def test_the_app_audits_each_read_through_it_too(agency_app, shared):
    """Besides the store's own audit, the app records each read through it (allowed and refused),
    naming the PractitionerRole when the sign-in gives one."""
    local = agency_app.extensions["thrive"].local_store
    launch = make_launch(
        agency_app,
        patient_id=shared.shared,
        mode="standalone",
        iss=shared.base,
        organization_ref=ORG_A,
        user_ref="PractitionerRole/role-1",
        practitioner_role_ref="PractitionerRole/role-1",
        access_token=f"agency:{ORG_A}|{shared.shared}",
        scopes=AGENCY_SCOPES,
    )
    for _ in range(2):
        assert launch.client().get(launch.url("shared-plan"), base_url=TEST_ORIGIN).status_code == 200
    events = local.for_patient(f"Patient/{shared.shared}", type="AuditEvent")
    assert [e["outcome"] for e in events] == ["0", "0"]
    ev = events[0]
    assert ev["agent"][0]["who"]["reference"] == "PractitionerRole/role-1" and ev["agent"][0]["requestor"]
    assert ev["meta"]["profile"] == ["https://thrive-fhir.org/fhir/StructureDefinition/thrive-read-audit"]
    assert any(e["what"]["reference"].startswith("CarePlan/") for e in ev["entity"])
    stranger = _launch(agency_app, shared, shared.other)
    assert stranger.client().get(stranger.url("shared-plan"), base_url=TEST_ORIGIN).status_code == 403
    assert [e["outcome"] for e in local.for_patient(f"Patient/{shared.other}", type="AuditEvent")] == ["4"]


def test_risk_banner_only_after_the_consent_check_and_from_the_shared_record(agency_app, shared):
    stranger = _launch(agency_app, shared, shared.other)
    refused = stranger.client().get(stranger.url("shared-plan"), base_url=TEST_ORIGIN)
    assert refused.status_code == 403
    assert 'id="risk-alert"' not in refused.get_data(as_text=True) and "Getting Risk Support" not in _text(refused)
    allowed = _launch(agency_app, shared, shared.shared)
    shown = allowed.client().get(allowed.url("shared-plan"), base_url=TEST_ORIGIN)
    assert shown.status_code == 200 and 'id="risk-alert"' in shown.get_data(as_text=True)


def test_a_task_addressed_to_one_of_the_agencys_services_is_theirs(agency_app, shared):
    service = f"hs-{uuid.uuid4().hex[:8]}"
    _put(
        shared.base,
        {
            "resourceType": "HealthcareService",
            "id": service,
            "name": "School counselling",
            "providedBy": {"reference": ORG_A},
        },
    )
    tid = str(uuid.uuid4())
    _put(
        shared.base,
        {
            "resourceType": "Task",
            "id": tid,
            "status": "requested",
            "intent": "order",
            "for": {"reference": f"Patient/{shared.shared}"},
            "authoredOn": "2025-03-04T16:10:00Z",
            "owner": {"reference": f"HealthcareService/{service}"},
            "requester": {"reference": CUSTODIAN},
        },
    )
    launch = _launch(agency_app, shared, shared.shared)
    client = launch.client()
    form = _task_form(client.get(launch.url("shared-plan"), base_url=TEST_ORIGIN).get_data(as_text=True), tid)
    assert launch.post(client, f"shared-plan/tasks/{tid}", {**form, "action": "accept"}).status_code == 303
    assert _get(shared.base, f"Task/{tid}")["status"] == "accepted"


# --- confirming the safety plan items that name the organisation -------------------------------------


def _plan_in_store(shared, pid: str) -> dict:
    bundle = _get(shared.base, f"CarePlan?patient={pid}")
    return next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "CarePlan")


def _own_item(plan: dict) -> str:
    from thrive_fhir.entry_confirmation import agency_entries

    return next(e.id for e in agency_entries(plan) if ORG_A in e.performers)


def test_agency_confirms_its_safety_plan_item_and_the_clinician_summary_shows_it(agency_app, shared, tmp_path):
    plan = _plan_in_store(shared, shared.shared)
    item = _own_item(plan)
    launch = _launch(agency_app, shared, shared.shared)
    client = launch.client()
    page = client.get(launch.url("shared-plan"), base_url=TEST_ORIGIN).get_data(as_text=True)
    assert f'id="{item}-confirm"' in page and f'id="{item}-unconfirmed"' in page
    version = re.search(rf'entries/{item}/confirm".*?name="version" value="(\d+)"', page, re.S).group(1)
    assert version == plan["meta"]["versionId"]
    done = launch.post(client, f"shared-plan/entries/{item}/confirm", {"version": version})
    assert done.status_code == 303 and "done=confirmed" in done.headers["Location"]
    # the agency's own Provenance, in the worker's and organisation's name; the plan itself unchanged
    provs = [e["resource"] for e in _get(shared.base, f"Provenance?target=CarePlan/{plan['id']}")["entry"]]
    [conf] = [p for p in provs if p.get("activity", {}).get("coding", [{}])[0].get("code") == "agency-confirmed"]
    assert conf["agent"][0]["who"]["reference"] == WORKER and conf["agent"][0]["onBehalfOf"]["reference"] == ORG_A
    assert conf["target"][0]["reference"] == f"CarePlan/{plan['id']}/_history/{version}"
    assert _plan_in_store(shared, shared.shared)["meta"]["versionId"] == version
    page = client.get(launch.url("shared-plan") + "?done=confirmed", base_url=TEST_ORIGIN).get_data(as_text=True)
    assert f'id="{item}-confirmed"' in page and f'id="{item}-confirm"' not in page
    assert "confirmation was recorded" in _text_of(page)
    # a second confirmation of the same item is refused by the app, nothing written
    again = launch.post(client, f"shared-plan/entries/{item}/confirm", {"version": version})
    assert again.status_code == 400 and "already confirmed" in _text(again)
    assert len(_get(shared.base, f"Provenance?target=CarePlan/{plan['id']}")["entry"]) == len(provs)

    # the clinician Summary (reading the shared store with its Backend Services credentials) shows it
    from smart_app.summary.data import build_summary

    summary = build_summary(
        None,
        f"Patient/{shared.shared}",
        records=_records(shared, shared.shared),
        confirmations=provs,
    )
    [(_label, items)] = [(lbl, i) for lbl, i in summary.safety_plan.sections if any(x.id == item for x in i)]
    [entry] = [x for x in items if x.id == item]
    assert entry.confirmed.startswith("Confirmed by") and entry.can_confirm is False


def _records(shared, pid: str):
    from smart_app.records import PatientRecords

    rows = []
    for rtype in ("CarePlan", "Observation", "Goal", "Consent"):
        for e in _get(shared.base, f"{rtype}?patient={pid}").get("entry", []):
            r = e["resource"]
            rows.append((rtype, r["id"], int(r["meta"]["versionId"]), r))
    return PatientRecords(f"Patient/{pid}", rows)


def _text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_a_reworded_item_shows_the_conflict_and_confirms_nothing(agency_app, shared):
    plan = _plan_in_store(shared, shared.shared)
    item = _own_item(plan)
    launch = _launch(agency_app, shared, shared.shared)
    client = launch.client()
    client.get(launch.url("shared-plan"), base_url=TEST_ORIGIN)
    # the clinician rewords the item meanwhile (a new version of the plan syncs to the store)
    reworded = {k: v for k, v in plan.items() if k != "meta"}
    reworded["activity"] = [
        {**a, "id": a["id"] + "-new", "detail": {**a["detail"], "description": "A quiet room at lunch"}}
        if a.get("id") == item
        else a
        for a in plan["activity"]
    ]
    _put(shared.base, reworded)
    before = len(_get(shared.base, f"Provenance?target=CarePlan/{plan['id']}").get("entry", []))
    resp = launch.post(client, f"shared-plan/entries/{item}/confirm", {"version": plan["meta"]["versionId"]})
    assert resp.status_code == 409
    text = _text(resp)
    assert "The safety plan was changed while you were looking at it" in text and "Nothing was saved" in text
    assert "A quiet room at lunch" in text  # the plan as it is now
    assert len(_get(shared.base, f"Provenance?target=CarePlan/{plan['id']}").get("entry", [])) == before


def test_another_organisations_item_has_no_button_and_is_refused(agency_app, shared):
    launch = _launch(agency_app, shared, shared.shared, org=ORG_B)  # ORG_B is not shared this young person
    resp = launch.post(launch.client(), "shared-plan/entries/entry-0123/confirm", {"version": "1"})
    assert resp.status_code == 403
    launch = _launch(agency_app, shared, shared.shared)
    resp = launch.post(launch.client(), "shared-plan/entries/entry-0123/confirm", {"version": "1"})
    assert resp.status_code == 409  # no such item in the plan: as a plan that changed
    bad = launch.post(launch.client(), "shared-plan/entries/..%2Fx/confirm", {"version": "1"})
    assert bad.status_code in (403, 404)  # as for a Task: refused by the path check or the launch guard
