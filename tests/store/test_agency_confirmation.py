"""What an agency token may state when it writes (thrive_fhir.store.agency_writes). Which safety plan
items it may confirm:
only an item of the plan's current version that names the token's organisation (or a service it
provides), only in the token's own name, only for a young person shared with it. Each case checks the
exact answer and the AuditEvent the store wrote; on SQLite and PostgreSQL, our store over HTTP."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
import requests

from tests.support.consent_data import (
    CUSTODIAN,
    ORG_A,
    ORG_B,
    WORKER_A,
    WORKER_B,
    auth,
    consent,
    day,
    task,
    verifier,
)
from tests.support.servers import create_pg_database
from tests.support.store_data import patient
from tests.support.store_servers import start_ours
from thrive_fhir.builders import SafetyPlanInput, SafetyPlanItem, build_safety_plan
from thrive_fhir.entry_confirmation import agency_entries, build_confirmation

SERVICE_A = "HealthcareService/svc-school-a-counselling"


def _plan(pid: str, agency_text: str = "School will give a quiet room at break") -> dict:
    now = datetime.now(UTC).replace(microsecond=0)
    return build_safety_plan(
        SafetyPlanInput(
            local_id=str(uuid.uuid4()),
            source_ods="RXX",
            subject=f"Patient/{pid}",
            start_date=date.today(),
            review_date=date.today() + timedelta(days=60),
            created=now - timedelta(minutes=5),
            author="PractitionerRole/prr-camhs-1",
            contributors=(f"Patient/{pid}",),
            items=(
                SafetyPlanItem(section="warning-signs", text="Staying in my room"),
                SafetyPlanItem(section="professionals-agencies", text="Crisis line 0800 000 0000"),
                SafetyPlanItem(section="agency-actions", text=agency_text, performer_refs=(ORG_A,)),
                SafetyPlanItem(section="agency-actions", text="Social worker visits weekly", performer_refs=(ORG_B,)),
                SafetyPlanItem(
                    section="agency-actions", text="Counsellor sees them on Mondays", performer_refs=(SERVICE_A,)
                ),
            ),
        ),
        now=now,
    )


class World:
    def __init__(self, server):
        self.server = server

    def url(self, path: str) -> str:
        return self.server.url(path)

    def put(self, resource: dict) -> dict:
        resp = requests.put(
            self.url(f"{resource['resourceType']}/{resource['id']}"), json=resource, headers=auth("custodian")
        )
        assert resp.status_code in (200, 201), resp.text
        return resp.json()

    def latest_audit(self) -> dict:
        bundle = requests.get(
            self.url("AuditEvent"), params={"_sort": "-_lastUpdated", "_count": "1"}, headers=auth("custodian")
        ).json()
        return bundle["entry"][0]["resource"]

    def audit_count(self) -> int:
        return requests.get(self.url("AuditEvent"), params={"_summary": "count"}, headers=auth("custodian")).json()[
            "total"
        ]

    def confirm(self, provenance: dict, token: str = "agency-a") -> requests.Response:
        return requests.post(self.url("Provenance"), json=provenance, headers=auth(token))


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def world(request, tmp_path_factory):
    if request.param == "sqlite":
        url, drop = f"sqlite:///{tmp_path_factory.mktemp('confirm') / 'store.db'}", (lambda: None)
    else:
        url, drop = create_pg_database("thrive_confirm")
    server = start_ours(url, token_verifier=verifier, consent_custodians=[CUSTODIAN])
    w = World(server)
    for org in (ORG_A, ORG_B, CUSTODIAN):
        w.put({"resourceType": "Organization", "id": org.split("/")[1], "name": org})
    w.put({"resourceType": "HealthcareService", "id": SERVICE_A.split("/")[1], "providedBy": {"reference": ORG_A}})
    w.shared, w.unshared = str(uuid.uuid4()), str(uuid.uuid4())
    for pid, actors in ((w.shared, [ORG_A, ORG_B]), (w.unshared, [ORG_B])):
        w.put(patient(pid))
        w.put(consent(str(uuid.uuid4()), pid, actors, start=day(-30), end=day(30)))
    w.tasks = {
        name: w.put(task(str(uuid.uuid4()), w.shared, owner))["id"]
        for name, owner in (("a", ORG_A), ("b", ORG_B), ("service-a", SERVICE_A))
    }
    w.plan = w.put(_plan(w.shared))
    w.other_plan = w.put(_plan(w.unshared))
    yield w
    server.stop()
    drop()


def _item(plan: dict, text_start: str) -> str:
    return next(e.id for e in agency_entries(plan) if e.text.startswith(text_start))


def _confirmation(plan: dict, item: str, worker: str = WORKER_A, org: str = ORG_A) -> dict:
    return build_confirmation(
        plan["id"], plan["meta"]["versionId"], item, worker=worker, organization=org, recorded=datetime.now(UTC)
    )


def _audited(world: World, before: int, outcome: str, pid: str) -> dict:
    assert world.audit_count() == before + 1, "exactly one AuditEvent per agency request"
    event = world.latest_audit()
    assert event["subtype"][0]["code"] == "create" and event["outcome"] == outcome
    agents = {a["who"].get("reference"): a for a in event["agent"]}
    assert agents[WORKER_A]["requestor"] is True and ORG_A in agents
    assert f"Patient/{pid}" in {(e.get("what") or {}).get("reference") for e in event["entity"]}
    return event


def test_agency_confirms_its_own_item_and_the_store_audits_it(world):
    item = _item(world.plan, "School will")
    before = world.audit_count()
    resp = world.confirm(_confirmation(world.plan, item))
    assert resp.status_code == 201, resp.text
    _audited(world, before, "0", world.shared)
    found = requests.get(
        world.url("Provenance"), params={"target": f"CarePlan/{world.plan['id']}"}, headers=auth("agency-a")
    ).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [resp.json()["id"]]


def test_an_item_held_by_a_service_the_organisation_provides_can_be_confirmed(world):
    resp = world.confirm(_confirmation(world.plan, _item(world.plan, "Counsellor")))
    assert resp.status_code == 201, resp.text


def test_another_agencys_item_is_refused(world):
    before = world.audit_count()
    resp = world.confirm(_confirmation(world.plan, _item(world.plan, "Social worker")))
    assert resp.status_code == 403 and "not for your organisation" in resp.text
    _audited(world, before, "4", world.shared)


def test_a_reworded_item_is_a_conflict_nothing_saved(world):
    seen = world.plan
    item = _item(seen, "School will")
    reworded = {**_plan(world.shared, "School will give a quiet room at lunch"), "id": seen["id"]}
    world.put(reworded)
    try:
        before = world.audit_count()
        resp = world.confirm(_confirmation(seen, item))
        assert resp.status_code == 409 and "changed or removed" in resp.text
        _audited(world, before, "4", world.shared)
    finally:
        world.plan = world.put({k: v for k, v in seen.items() if k != "meta"})  # the original wording, a new version


def test_in_someone_elses_name_is_refused(world):
    item = _item(world.plan, "School will")
    for worker, org in ((WORKER_B, ORG_A), (WORKER_A, ORG_B)):
        resp = world.confirm(_confirmation(world.plan, item, worker=worker, org=org))
        assert resp.status_code == 403 and "name the signed-in worker" in resp.text
    # also for a plain Provenance (as sent with a Task update)
    plain = {
        "resourceType": "Provenance",
        "target": [{"reference": f"CarePlan/{world.plan['id']}"}],
        "recorded": "2025-03-04T16:10:00Z",
        "agent": [{"who": {"reference": CUSTODIAN}}],
    }
    assert world.confirm(plain).status_code == 403


def test_a_plan_not_shared_answers_as_a_missing_one(world):
    """A young person not shared with the agency: the same answer as for a plan that does not exist."""
    hidden = world.confirm(_confirmation(world.other_plan, _item(world.other_plan, "School will")))
    missing = world.confirm(_confirmation({**world.other_plan, "id": str(uuid.uuid4())}, "entry-0000"))
    assert hidden.status_code == missing.status_code == 403
    assert hidden.json()["issue"] == missing.json()["issue"]


def test_a_malformed_confirmation_is_refused_and_the_custodian_is_not_gated(world):
    item = _item(world.plan, "School will")
    bad = _confirmation(world.plan, item)
    del bad["target"][0]["extension"]
    resp = world.confirm(bad)  # claims the profile: its invariant refuses it
    assert resp.status_code == 422 and "thr-conf-1" in resp.text
    del bad["meta"]
    resp = world.confirm(bad)  # claims no profile: the store's own rule still does
    assert resp.status_code == 400 and "exactly one item" in resp.json()["issue"][0]["diagnostics"]
    assert world.confirm(_confirmation(world.plan, item), token="custodian").status_code == 201


# --- Task updates: only the organisation's own Tasks, keeping whose and whom they are for ----------


def _update_task(world: World, tid: str, token: str = "agency-a", **changes) -> requests.Response:
    current = requests.get(world.url(f"Task/{tid}"), headers=auth("custodian")).json()
    body = {**{k: v for k, v in current.items() if k != "meta"}, "status": "accepted", **changes}
    return requests.put(
        world.url(f"Task/{tid}"), json=body, headers={**auth(token), "If-Match": f'W/"{current["meta"]["versionId"]}"'}
    )


def test_agency_updates_its_own_tasks_and_those_of_its_services(world):
    assert _update_task(world, world.tasks["a"]).status_code == 200
    assert _update_task(world, world.tasks["service-a"]).status_code == 200


def test_another_agencys_task_of_a_young_person_shared_with_both_is_refused(world):
    """Before: any agency the young person shares with could accept or decline another agency's referral."""
    before = world.audit_count()
    resp = _update_task(world, world.tasks["b"])
    assert resp.status_code == 403 and "Tasks sent to its organisation" in resp.text
    assert world.audit_count() == before + 1 and world.latest_audit()["outcome"] == "4"
    stored = requests.get(world.url(f"Task/{world.tasks['b']}"), headers=auth("custodian")).json()
    assert stored["status"] == "requested"


def test_an_agency_cannot_reassign_or_create_a_task(world):
    assert _update_task(world, world.tasks["a"], owner={"reference": ORG_B}).status_code == 403
    assert _update_task(world, world.tasks["a"], **{"for": {"reference": f"Patient/{world.unshared}"}}).status_code in (
        403,
        404,
    )
    new = task(str(uuid.uuid4()), world.shared, ORG_A)
    created = requests.put(world.url(f"Task/{new['id']}"), json=new, headers=auth("agency-a"))
    assert created.status_code == 403
