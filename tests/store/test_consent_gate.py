"""The store enforces sharing Consents on agency tokens: the authorization matrix, on SQLite and
PostgreSQL, against our store served over HTTP. Each case checks the exact answer and the AuditEvent
the store wrote for it."""

from __future__ import annotations

import base64
import time
import uuid
from datetime import timedelta

import pytest
import requests

from tests.support.consent_data import (
    CUSTODIAN,
    ORG_A,
    ORG_B,
    WORKER_A,
    auth,
    consent,
    day,
    instant,
    now_utc,
    task,
    verifier,
)
from tests.support.servers import create_pg_database
from tests.support.store_data import observation, patient
from tests.support.store_servers import start_ours

#: One young person per case of the matrix.
CASES = {
    "named": dict(actors=[ORG_A], start=day(-30), end=day(30)),
    "not-named": dict(actors=[ORG_B], start=day(-30), end=day(30)),
    "withdrawn": dict(actors=[ORG_A], start=day(-30), end=day(30), status="inactive"),
    "expired": dict(actors=[ORG_A], start=day(-60), end=day(-1)),
    "not-yet-started": dict(actors=[ORG_A], start=day(1), end=day(60)),
    "no-consent": None,
}


class World:
    """The store and the ids of what was put in it."""

    def __init__(self, server):
        self.server = server
        self.pid = {name: str(uuid.uuid4()) for name in CASES}
        self.obs: dict[str, str] = {}
        self.tasks: dict[str, str] = {}
        self.consents: dict[str, str] = {}

    def url(self, path: str) -> str:
        return self.server.url(path)

    def put(self, resource: dict, token: str = "custodian") -> requests.Response:
        resp = requests.put(
            self.url(f"{resource['resourceType']}/{resource['id']}"), json=resource, headers=auth(token)
        )
        assert resp.status_code in (200, 201), resp.text
        return resp

    def latest_audit(self) -> dict:
        """The newest AuditEvent (read with the custodian's token, which is not itself audited)."""
        bundle = requests.get(
            self.url("AuditEvent"), params={"_sort": "-_lastUpdated", "_count": "1"}, headers=auth("custodian")
        ).json()
        return bundle["entry"][0]["resource"]

    def audit_count(self) -> int:
        return requests.get(self.url("AuditEvent"), params={"_summary": "count"}, headers=auth("custodian")).json()[
            "total"
        ]


def _populate(world: World) -> None:
    for org, name in ((ORG_A, "School A"), (ORG_B, "Social care B"), (CUSTODIAN, "Trust")):
        world.put({"resourceType": "Organization", "id": org.split("/")[1], "name": name})
    for name, spec in CASES.items():
        pid = world.pid[name]
        world.put(patient(pid))
        oid = str(uuid.uuid4())
        world.put(observation(f"Patient/{pid}", oid=oid))
        world.obs[name] = oid
        tid = str(uuid.uuid4())
        world.put(task(tid, pid, ORG_A, focus=f"Observation/{oid}"))
        world.tasks[name] = tid
        if spec is not None:
            cid = str(uuid.uuid4())
            world.put(consent(cid, pid, **spec))
            world.consents[name] = cid
    # the shared young person's Observation points at an unshared young person's Observation
    world.shared_obs_with_focus = str(uuid.uuid4())
    world.put(
        observation(
            f"Patient/{world.pid['named']}",
            oid=world.shared_obs_with_focus,
            focus=f"Observation/{world.obs['no-consent']}",
        )
    )


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def world(request, tmp_path_factory):
    if request.param == "sqlite":
        url, drop = f"sqlite:///{tmp_path_factory.mktemp('consent') / 'store.db'}", (lambda: None)
    else:
        url, drop = create_pg_database("thrive_consent")
    server = start_ours(url, token_verifier=verifier, consent_custodians=[CUSTODIAN])
    w = World(server)
    _populate(w)
    yield w
    server.stop()
    drop()


def _agents(event: dict) -> dict:
    return {a["who"].get("reference"): a for a in event["agent"]}


def _patients(event: dict) -> set[str]:
    return {e["what"]["reference"] for e in event["entity"] if (e.get("role") or {}).get("code") == "1"}


def _whats(event: dict) -> set[str]:
    return {e["what"]["reference"] for e in event["entity"] if "what" in e}


def check_audit(
    world: World,
    *,
    subtype: str,
    outcome: str,
    patients: set[str],
    whats: set[str] = frozenset(),
    before: int | None = None,
    worker: str = WORKER_A,
    org: str = ORG_A,
) -> dict:
    event = world.latest_audit()
    if before is not None:
        assert world.audit_count() == before + 1, "exactly one AuditEvent per agency request"
    assert event["type"]["code"] == "rest"
    assert event["subtype"][0]["code"] == subtype
    assert event["outcome"] == outcome
    agents = _agents(event)
    assert agents[worker]["requestor"] is True
    assert org in agents and agents[org]["requestor"] is False
    assert _patients(event) == patients
    assert whats <= _whats(event)
    assert abs(now_utc().timestamp() - _ts(event["recorded"])) < 60
    return event


def _ts(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _missing_body_for(world: World, path: str, real_id: str) -> tuple[int, dict]:
    """The answer for the same URL with an id that does not exist, with the id put back."""
    fake = str(uuid.uuid4())
    resp = requests.get(world.url(path.replace(real_id, fake)), headers=auth("agency-a"))
    return resp.status_code, _swap(resp.json(), fake, real_id)


def _swap(node, old: str, new: str):
    if isinstance(node, dict):
        return {k: _swap(v, old, new) for k, v in node.items()}
    if isinstance(node, list):
        return [_swap(v, old, new) for v in node]
    return node.replace(old, new) if isinstance(node, str) else node


# --- reads ------------------------------------------------------------------------------------------


def test_organisation_named_reads_the_young_person(world):
    pid = world.pid["named"]
    before = world.audit_count()
    resp = requests.get(world.url(f"Patient/{pid}"), headers=auth("agency-a"))
    assert resp.status_code == 200 and resp.json()["id"] == pid
    check_audit(world, subtype="read", outcome="0", patients={f"Patient/{pid}"}, before=before)
    obs = requests.get(world.url(f"Observation/{world.obs['named']}"), headers=auth("agency-a"))
    assert obs.status_code == 200
    check_audit(
        world, subtype="read", outcome="0", patients={f"Patient/{pid}"}, whats={f"Observation/{world.obs['named']}"}
    )


@pytest.mark.parametrize("case", ["not-named", "withdrawn", "expired", "not-yet-started", "no-consent"])
@pytest.mark.parametrize("kind", ["Patient", "Observation", "Task"])
def test_not_shared_reads_answer_exactly_as_missing(world, case, kind):
    rid = {"Patient": world.pid, "Observation": world.obs, "Task": world.tasks}[kind][case]
    path = f"{kind}/{rid}"
    before = world.audit_count()
    resp = requests.get(world.url(path), headers=auth("agency-a"))
    event = check_audit(
        world,
        subtype="read",
        outcome="4",
        patients={f"Patient/{world.pid[case]}"},
        whats={path} if kind != "Patient" else set(),
        before=before,
    )
    assert "not shared" in event["outcomeDesc"]
    status, body = _missing_body_for(world, path, rid)
    assert resp.status_code == status == 404
    assert resp.json() == body
    assert "ETag" not in resp.headers and "Last-Modified" not in resp.headers
    # the custodian sees it: it is there
    assert requests.get(world.url(path), headers=auth("custodian")).status_code == 200


def test_forged_id_in_url_vread_and_instance_history(world):
    oid = world.obs["no-consent"]
    for path in (f"Observation/{oid}/_history/1", f"Observation/{oid}/_history"):
        before = world.audit_count()
        resp = requests.get(world.url(path), headers=auth("agency-a"))
        check_audit(
            world,
            subtype="vread" if path.endswith("/1") else "history-instance",
            outcome="4",
            patients={f"Patient/{world.pid['no-consent']}"},
            before=before,
        )
        status, body = _missing_body_for(world, path, oid)
        assert resp.status_code == status == 404 and resp.json() == body


def test_another_young_person_in_search_parameters_finds_nothing(world):
    for params in (
        {"subject": f"Patient/{world.pid['not-named']}"},
        {"_id": world.obs["no-consent"]},
        {"patient": world.pid["withdrawn"]},
    ):
        before = world.audit_count()
        bundle = requests.get(world.url("Observation"), params=params, headers=auth("agency-a")).json()
        assert bundle["total"] == 0 and "entry" not in bundle
        check_audit(world, subtype="search-type", outcome="0", patients=set(), before=before)


def test_search_returns_only_shared_young_people(world):
    bundle = requests.get(world.url("Patient"), headers=auth("agency-a")).json()
    assert [e["resource"]["id"] for e in bundle["entry"]] == [world.pid["named"]]
    event = check_audit(world, subtype="search-type", outcome="0", patients={f"Patient/{world.pid['named']}"})
    obs = requests.get(world.url("Observation"), params={"_count": "100"}, headers=auth("agency-a")).json()
    assert {e["resource"]["subject"]["reference"] for e in obs["entry"]} == {f"Patient/{world.pid['named']}"}
    assert obs["total"] == 2
    count = requests.get(world.url("Observation"), params={"_summary": "count"}, headers=auth("agency-a")).json()
    assert count["total"] == 2
    # the directory stays readable
    orgs = requests.get(world.url("Organization"), headers=auth("agency-a")).json()
    assert orgs["total"] == 3
    assert event["entity"][-1]["description"] == "/Patient"
    # another organisation sees its own young person only
    other = requests.get(world.url("Patient"), headers=auth("agency-b")).json()
    assert [e["resource"]["id"] for e in other["entry"]] == [world.pid["not-named"]]
    check_audit(
        world,
        subtype="search-type",
        outcome="0",
        patients={f"Patient/{world.pid['not-named']}"},
        worker="Practitioner/worker-b",
        org=ORG_B,
    )


def test_token_without_organisation_sees_no_one(world):
    for path in ("Patient", "Observation", "Task"):
        bundle = requests.get(world.url(path), headers=auth("agency-noorg")).json()
        assert bundle["total"] == 0
    resp = requests.get(world.url(f"Patient/{world.pid['named']}"), headers=auth("agency-noorg"))
    assert resp.status_code == 404


def test_system_scoped_agency_token_is_still_gated(world):
    bundle = requests.get(world.url("Patient"), headers=auth("agency-a-system")).json()
    assert [e["resource"]["id"] for e in bundle["entry"]] == [world.pid["named"]]


def test_include_does_not_reach_an_unshared_young_person(world):
    before = world.audit_count()
    bundle = requests.get(
        world.url("Observation"),
        params={"_id": world.shared_obs_with_focus, "_include": "Observation:focus"},
        headers=auth("agency-a"),
    ).json()
    assert [e["resource"]["id"] for e in bundle["entry"]] == [world.shared_obs_with_focus]
    event = check_audit(
        world, subtype="search-type", outcome="0", patients={f"Patient/{world.pid['named']}"}, before=before
    )
    assert f"Observation/{world.obs['no-consent']}" not in _whats(event)
    # the custodian gets the included resource: the include itself works
    full = requests.get(
        world.url("Observation"),
        params={"_id": world.shared_obs_with_focus, "_include": "Observation:focus"},
        headers=auth("custodian"),
    ).json()
    assert len(full["entry"]) == 2


def test_revinclude_does_not_reach_an_unshared_young_person(world):
    bundle = requests.get(
        world.url("Organization"),
        params={"_id": ORG_A.split("/")[1], "_revinclude": "Task:owner"},
        headers=auth("agency-a"),
    ).json()
    tasks = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Task"]
    assert [t["id"] for t in tasks] == [world.tasks["named"]]
    check_audit(world, subtype="search-type", outcome="0", patients={f"Patient/{world.pid['named']}"})
    full = requests.get(
        world.url("Organization"),
        params={"_id": ORG_A.split("/")[1], "_revinclude": "Task:owner"},
        headers=auth("custodian"),
    ).json()
    assert len(full["entry"]) == 1 + len(CASES)


def test_chained_and_has_searches_stay_within_shared_young_people(world):
    """Chained parameters and ``_has`` are refused (400) for everyone and in every handling mode: the
    store does not support them, and ignoring them would return resources the client excluded."""
    chained = requests.get(
        world.url("Observation"), params={"subject:Patient.name": "Testperson"}, headers=auth("agency-a")
    )
    assert chained.status_code == 400
    check_audit(world, subtype="search-type", outcome="4", patients=set())
    params = {"_has:Observation:subject:code": "72166-2"}
    lenient = requests.get(world.url("Patient"), params=params, headers=auth("agency-a"))
    assert lenient.status_code == 400
    check_audit(world, subtype="search-type", outcome="4", patients=set())
    strict = requests.get(
        world.url("Patient"), params=params, headers={**auth("agency-a"), "Prefer": "handling=strict"}
    )
    assert strict.status_code == 400


def test_history_returns_only_shared_young_people(world):
    allowed = {world.pid["named"]}
    for path in ("_history", "Observation/_history", "Patient/_history", "Consent/_history"):
        bundle = requests.get(world.url(path), params={"_count": "1000"}, headers=auth("agency-a")).json()
        assert bundle["entry"], path
        for entry in bundle["entry"]:
            res = entry.get("resource") or {}
            rtype = res.get("resourceType")
            if rtype in ("Organization", "AuditEvent"):  # directory; AuditEvents are checked below
                continue
            ref = (res.get("subject") or res.get("for") or res.get("patient") or {}).get(
                "reference"
            ) or f"Patient/{res.get('id')}"
            assert ref.split("/")[1] in allowed, (path, rtype)
        subtype = {"_history": "history-system"}.get(path, "history-type")
        check_audit(world, subtype=subtype, outcome="0", patients={f"Patient/{world.pid['named']}"})
    # AuditEvents (which can name several young people) never show up for an agency
    system = requests.get(world.url("_history"), params={"_count": "1000"}, headers=auth("agency-a")).json()
    assert "AuditEvent" not in {e["resource"]["resourceType"] for e in system["entry"]}
    assert requests.get(world.url("AuditEvent"), headers=auth("agency-a")).json()["total"] == 0
    event = world.latest_audit()
    assert requests.get(world.url(f"AuditEvent/{event['id']}"), headers=auth("agency-a")).status_code == 404


@pytest.mark.parametrize("path", ["$export", "Patient/$export"])
def test_export_is_refused_to_agency_tokens(world, path):
    before = world.audit_count()
    resp = requests.get(
        world.url(path), headers={**auth("agency-a"), "Prefer": "respond-async", "Accept": "application/fhir+json"}
    )
    assert resp.status_code == 403
    assert resp.json()["issue"][0]["diagnostics"] == "Bulk export is not available to agency access tokens"
    check_audit(world, subtype="operation", outcome="4", patients=set(), before=before)


def test_batch_entries_obey_the_rule(world):
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": f"Patient/{world.pid['named']}"}},
            {"request": {"method": "GET", "url": f"Patient/{world.pid['no-consent']}"}},
            {"request": {"method": "GET", "url": "Observation?_count=100"}},
        ],
    }
    resp = requests.post(world.url(""), json=bundle, headers=auth("agency-a"))
    assert resp.status_code == 200
    entries = resp.json()["entry"]
    assert entries[0]["response"]["status"].startswith("200")
    assert entries[1]["response"]["status"].startswith("404")
    found = entries[2]["resource"]
    assert {e["resource"]["subject"]["reference"] for e in found["entry"]} == {f"Patient/{world.pid['named']}"}
    event = check_audit(world, subtype="batch", outcome="0", patients={f"Patient/{world.pid['named']}"})
    assert f"Observation/{world.obs['named']}" in _whats(event)


def test_conditional_create_never_matches_a_hidden_resource(world):
    hidden_prov = str(uuid.uuid4())
    world.put(
        {
            "resourceType": "Provenance",
            "id": hidden_prov,
            "recorded": "2025-03-04T16:10:00Z",
            "target": [{"reference": f"Task/{world.tasks['no-consent']}"}],
            "agent": [{"who": {"reference": CUSTODIAN}}],
        }
    )
    resp = requests.post(
        world.url("Provenance"),
        json={
            "resourceType": "Provenance",
            "target": [{"reference": f"Task/{world.tasks['named']}"}],
            "recorded": "2025-03-04T16:10:00Z",
            "agent": [{"who": {"reference": WORKER_A}}],
        },
        headers={**auth("agency-a"), "If-None-Exist": f"_id={hidden_prov}"},
    )
    assert resp.status_code == 201 and resp.json()["id"] != hidden_prov
    check_audit(
        world,
        subtype="create",
        outcome="0",
        patients={f"Patient/{world.pid['named']}"},
        whats={f"Provenance/{resp.json()['id']}"},
    )
    # a search by identifier of the hidden young person finds nothing
    hidden = requests.get(world.url(f"Patient/{world.pid['no-consent']}"), headers=auth("custodian")).json()
    ident = hidden["identifier"][0]
    bundle = requests.get(
        world.url("Patient"), params={"identifier": f"{ident['system']}|{ident['value']}"}, headers=auth("agency-a")
    ).json()
    assert bundle["total"] == 0


# --- writes -----------------------------------------------------------------------------------------


def test_agency_updates_its_shared_task_with_if_match(world):
    tid = world.tasks["named"]
    current = requests.get(world.url(f"Task/{tid}"), headers=auth("agency-a"))
    etag = current.headers["ETag"]
    body = {**current.json(), "status": "accepted"}
    before = world.audit_count()
    ok = requests.put(world.url(f"Task/{tid}"), json=body, headers={**auth("agency-a"), "If-Match": etag})
    assert ok.status_code == 200, ok.text
    check_audit(
        world,
        subtype="update",
        outcome="0",
        patients={f"Patient/{world.pid['named']}"},
        whats={f"Task/{tid}"},
        before=before,
    )
    stale = requests.put(
        world.url(f"Task/{tid}"), json={**body, "status": "in-progress"}, headers={**auth("agency-a"), "If-Match": etag}
    )
    assert stale.status_code == 412
    check_audit(world, subtype="update", outcome="4", patients={f"Patient/{world.pid['named']}"})


def test_agency_cannot_write_into_an_unshared_young_person(world):
    tid = world.tasks["no-consent"]
    body = task(tid, world.pid["no-consent"], ORG_A, status="accepted")
    before = world.audit_count()
    # whatever the content and the If-Match, the answer is the one for an id that does not exist
    moved = task(tid, world.pid["named"], ORG_A, status="accepted")  # content placed in a shared record
    for content in (body, moved):
        for headers in ({"If-Match": 'W/"1"'}, {"If-Match": 'W/"7"'}, {}):
            resp = requests.put(world.url(f"Task/{tid}"), json=content, headers={**auth("agency-a"), **headers})
            check_audit(
                world, subtype="update", outcome="4", patients={f"Patient/{world.pid['no-consent']}"}, before=before
            )
            ghost = str(uuid.uuid4())
            missing = requests.put(
                world.url(f"Task/{ghost}"), json={**content, "id": ghost}, headers={**auth("agency-a"), **headers}
            )
            before = world.audit_count()
            if content is moved and not headers:  # agencies never create Tasks; a taken id is as missing
                assert missing.status_code == 403 and resp.status_code == 404
                assert resp.json()["issue"][0]["diagnostics"] == f"Task/{tid} is not known"
                continue
            assert resp.status_code == missing.status_code, (headers, resp.text, missing.text)
            assert resp.json() == _swap(missing.json(), ghost, tid)
    assert requests.get(world.url(f"Task/{tid}"), headers=auth("custodian")).json()["status"] == "requested"
    # a new resource in an unshared record: 403, the same for a young person who does not exist
    prov = {
        "resourceType": "Provenance",
        "target": [{"reference": f"Task/{tid}"}],
        "recorded": "2025-03-04T16:10:00Z",
        "agent": [{"who": {"reference": WORKER_A}}],
    }
    refused = requests.post(world.url("Provenance"), json=prov, headers=auth("agency-a"))
    assert refused.status_code == 403
    check_audit(world, subtype="create", outcome="4", patients={f"Patient/{world.pid['no-consent']}"})
    ghost = requests.post(
        world.url("Provenance"),
        json={**prov, "target": [{"reference": f"Patient/{uuid.uuid4()}"}]},
        headers=auth("agency-a"),
    )
    assert ghost.status_code == 403 and ghost.json() == refused.json()


# --- withdrawal and expiry take effect on the next request -------------------------------------------


def test_withdrawal_and_reinstatement_take_effect_on_the_next_request(world):
    pid, cid = world.pid["named"], world.consents["named"]
    assert requests.get(world.url(f"Patient/{pid}"), headers=auth("agency-a")).status_code == 200
    world.put(consent(cid, pid, [ORG_A], status="inactive", start=day(-30), end=day(30)))
    assert requests.get(world.url(f"Patient/{pid}"), headers=auth("agency-a")).status_code == 404
    assert requests.get(world.url("Patient"), headers=auth("agency-a")).json()["total"] == 0
    # withdrawing one agency = a new version without it
    world.put(consent(cid, pid, [ORG_B], start=day(-30), end=day(30)))
    assert requests.get(world.url(f"Patient/{pid}"), headers=auth("agency-a")).status_code == 404
    assert requests.get(world.url(f"Patient/{pid}"), headers=auth("agency-b")).status_code == 200
    world.put(consent(cid, pid, [ORG_A], start=day(-30), end=day(30)))
    assert requests.get(world.url(f"Patient/{pid}"), headers=auth("agency-a")).status_code == 200
    # deleting the Consent ends the sharing
    extra = str(uuid.uuid4())
    world.put(consent(extra, world.pid["no-consent"], [ORG_A], start=day(-1), end=day(1)))
    assert requests.get(world.url(f"Patient/{world.pid['no-consent']}"), headers=auth("agency-a")).status_code == 200
    assert requests.delete(world.url(f"Consent/{extra}"), headers=auth("custodian")).status_code == 204
    assert requests.get(world.url(f"Patient/{world.pid['no-consent']}"), headers=auth("agency-a")).status_code == 404


def test_expiry_takes_effect_when_the_period_ends(world):
    pid = str(uuid.uuid4())
    world.put(patient(pid))
    ends = now_utc() + timedelta(seconds=3)
    world.put(consent(str(uuid.uuid4()), pid, [ORG_A], start=day(-1), end=instant(ends)))
    assert requests.get(world.url(f"Patient/{pid}"), headers=auth("agency-a")).status_code == 200
    time.sleep(max(0.0, (ends - now_utc()).total_seconds()) + 1.2)
    assert requests.get(world.url(f"Patient/{pid}"), headers=auth("agency-a")).status_code == 404


def test_audit_query_is_recorded(world):
    requests.get(world.url("Observation"), params={"code": "72166-2"}, headers=auth("agency-a"))
    event = world.latest_audit()
    query = next(e for e in event["entity"] if "query" in e)
    assert base64.b64decode(query["query"]).decode() == "code=72166-2"


def test_custodian_is_not_gated_and_not_audited(world):
    before = world.audit_count()
    bundle = requests.get(world.url("Patient"), params={"_count": "100"}, headers=auth("custodian")).json()
    assert bundle["total"] >= len(CASES)
    assert world.audit_count() == before
