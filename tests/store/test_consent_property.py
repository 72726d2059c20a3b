"""Property: for random sharing Consents and random requests, an agency token never receives a
resource of a young person whose record is not shared with its organisation (store over HTTP).

The oracle here is written independently of thrive_fhir.consent_rule, in day offsets: a Consent
shares with an organisation today when it is active, names it, starts on or before today and ends on
or after today (a date-only end is inclusive).
"""

from __future__ import annotations

import uuid

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.consent_data import CUSTODIAN, GRANTS, ORG_A, ORG_B, auth, consent, day, task, verifier
from tests.support.servers import create_pg_database
from tests.support.store_data import observation, patient
from tests.support.store_servers import start_ours
from thrive_fhir.smart_scopes import Grant

ORG_C = "Organization/org-youth-justice-c"
ORGS = [ORG_A, ORG_B, ORG_C]
N_PATIENTS = 4
SLOTS = 2  # Consents per young person

TOKENS = {"agency-a": ORG_A, "agency-b": ORG_B, "agency-c": ORG_C, "agency-noorg": None}


def _verifier(token: str):
    if token == "agency-c":
        return Grant.from_scope_string(
            "thrive-app", "openid fhirUser user/*.rs", user="Practitioner/worker-c", organization=ORG_C
        )
    return verifier(token)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request, tmp_path_factory):
    if request.param == "sqlite":
        url, drop = f"sqlite:///{tmp_path_factory.mktemp('consent-prop') / 'store.db'}", (lambda: None)
    else:
        url, drop = create_pg_database("thrive_consent_prop")
    server = start_ours(url, token_verifier=_verifier, consent_custodians=[CUSTODIAN])
    pids = [str(uuid.uuid4()) for _ in range(N_PATIENTS)]
    obs = [str(uuid.uuid4()) for _ in range(N_PATIENTS)]

    def put(r):
        requests.put(server.url(f"{r['resourceType']}/{r['id']}"), json=r, headers=auth("custodian")).raise_for_status()

    for org in ORGS:
        put({"resourceType": "Organization", "id": org.split("/")[1], "name": org})
    for i, pid in enumerate(pids):
        put(patient(pid))
    for i, pid in enumerate(pids):  # each Observation points at the next young person's Observation
        put(observation(f"Patient/{pid}", oid=obs[i], focus=f"Observation/{obs[(i + 1) % N_PATIENTS]}"))
        put(task(str(uuid.uuid4()), pid, ORGS[i % len(ORGS)], focus=f"Observation/{obs[i]}"))
    slots = [[str(uuid.uuid4()) for _ in range(SLOTS)] for _ in pids]
    yield server, pids, obs, slots
    server.stop()
    drop()


consent_spec = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {
            "status": st.sampled_from(["active", "active", "active", "inactive", "draft"]),
            "start": st.one_of(st.none(), st.integers(-3, 3)),
            "end": st.one_of(st.none(), st.integers(-3, 3)),
            "actors": st.lists(st.sampled_from(ORGS), min_size=1, max_size=3, unique=True),
        }
    ).filter(lambda c: c["start"] is None or c["end"] is None or c["start"] <= c["end"]),
)

request_kind = st.sampled_from(
    [
        "read-patient",
        "read-observation",
        "search-patient",
        "search-observation",
        "include",
        "revinclude",
        "history-system",
        "history-observation",
        "history-instance",
        "batch",
        "search-task",
        "search-consent",
    ]
)


def shared_today(specs: list, org: str | None) -> bool:
    for c in specs:
        if c is None or org is None or c["status"] != "active" or org not in c["actors"]:
            continue
        if (c["start"] is None or c["start"] <= 0) and (c["end"] is None or c["end"] >= 0):
            return True
    return False


def owner_of(resource: dict) -> str | None:
    """The young person a returned resource belongs to (None for directory resources)."""
    rtype = resource["resourceType"]
    if rtype == "Patient":
        return resource["id"]
    if rtype in ("Organization",):
        return None
    ref = (resource.get("subject") or resource.get("for") or resource.get("patient") or {}).get("reference")
    assert ref, f"an agency received a {rtype} the test cannot attribute"
    return ref.split("/")[-1]


def resources_in(answer: dict):
    if answer.get("resourceType") == "Bundle":
        for entry in answer.get("entry") or []:
            if "resource" in entry:
                yield from resources_in(entry["resource"])
    elif answer.get("resourceType") not in (None, "OperationOutcome"):
        yield answer


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    specs=st.lists(st.lists(consent_spec, min_size=SLOTS, max_size=SLOTS), min_size=N_PATIENTS, max_size=N_PATIENTS),
    token=st.sampled_from(sorted(TOKENS)),
    kind=request_kind,
    target=st.integers(0, N_PATIENTS - 1),
)
def test_agency_never_receives_an_unshared_young_persons_resource(store, specs, token, kind, target):
    server, pids, obs, slots = store
    for i, pid in enumerate(pids):
        for slot, spec in zip(slots[i], specs[i]):
            if spec is None:
                requests.delete(server.url(f"Consent/{slot}"), headers=auth("custodian"))
                continue
            body = consent(
                slot,
                pid,
                spec["actors"],
                status=spec["status"],
                start=None if spec["start"] is None else day(spec["start"]),
                end=None if spec["end"] is None else day(spec["end"]),
            )
            resp = requests.put(server.url(f"Consent/{slot}"), json=body, headers=auth("custodian"))
            assert resp.status_code in (200, 201), resp.text
    org = TOKENS[token]
    allowed = {pid for i, pid in enumerate(pids) if shared_today(specs[i], org)}
    url, params = {
        "read-patient": (f"Patient/{pids[target]}", {}),
        "read-observation": (f"Observation/{obs[target]}", {}),
        "search-patient": ("Patient", {"_count": "100"}),
        "search-observation": ("Observation", {"_count": "100"}),
        "include": ("Observation", {"_include": "Observation:focus", "_count": "100"}),
        "revinclude": ("Patient", {"_revinclude": "Observation:subject", "_count": "100"}),
        "history-system": ("_history", {"_count": "1000"}),
        "history-observation": ("Observation/_history", {"_count": "1000"}),
        "history-instance": (f"Patient/{pids[target]}/_history", {}),
        "batch": ("", {}),
        "search-task": ("Task", {"_include": "Task:focus"}),
        "search-consent": ("Consent", {"_count": "100"}),
    }[kind]
    if kind == "batch":
        bundle = {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [{"request": {"method": "GET", "url": f"Patient/{p}"}} for p in pids]
            + [{"request": {"method": "GET", "url": "Observation?_include=Observation:focus"}}],
        }
        resp = requests.post(server.url(""), json=bundle, headers=auth(token))
    else:
        resp = requests.get(server.url(url), params=params, headers=auth(token))
    assert resp.status_code in (200, 404), resp.text
    answer = resp.json()
    got = list(resources_in(answer))
    for res in got:
        owner = owner_of(res)
        if res["resourceType"] == "AuditEvent":
            pytest.fail("an agency token received an AuditEvent")
        assert owner is None or owner in allowed, (kind, res["resourceType"])
    if kind.startswith("read") or kind == "history-instance":
        pid = pids[target]
        assert (resp.status_code == 200) == (pid in allowed)
    if kind == "search-patient":
        assert {r["id"] for r in got} == allowed


def test_grants_cover_the_tokens_used():
    assert set(TOKENS) - {"agency-c"} <= set(GRANTS)
