"""Search semantics pinned on SQLite and PostgreSQL: every kind of condition the hand-written search SQL
builds (token forms, :not, :missing, string prefix and :contains with LIKE metacharacters, reference
forms, every date prefix, comma OR, _id, _lastUpdated, _include/_revinclude, counts and paging)."""

from __future__ import annotations

import uuid

import pytest
import requests

from tests.support.store_data import LOCAL, LOINC, patient

JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


def _put(server, resource: dict) -> dict:
    rid = resource["id"]
    resp = requests.put(server.url(f"{resource['resourceType']}/{rid}"), json=resource, headers=JSON)
    assert resp.status_code == 201, resp.text
    return resp.json()


def _obs(oid: str, pid: str, *, status="final", code=("http://loinc.org", "72166-2"), when=None, focus=None):
    res = {
        "resourceType": "Observation",
        "id": oid,
        "status": status,
        "code": {"coding": [{"system": code[0], "code": code[1]} if code[0] else {"code": code[1]}]},
        "subject": {"reference": f"Patient/{pid}"},
        "valueInteger": 3,
    }
    if when:
        res["effectiveDateTime"] = when
    if focus:
        res["focus"] = [{"reference": focus}]
    return res


@pytest.fixture
def world(ours):
    tag = uuid.uuid4().hex[:8]
    pid, other = f"p-{tag}", f"q-{tag}"
    _put(ours, {**patient(pid, family=f"Zz{tag}100%_x"), "id": pid})
    _put(ours, {**patient(other, family=f"Zz{tag}smith"), "id": other})
    goal = f"g-{tag}"
    _put(
        ours,
        {
            "resourceType": "Goal",
            "id": goal,
            "lifecycleStatus": "active",
            "description": {"text": "sleep"},
            "subject": {"reference": f"Patient/{pid}"},
        },
    )
    _put(
        ours,
        {
            "resourceType": "CarePlan",
            "id": f"cp-{tag}",
            "status": "active",
            "intent": "plan",
            "subject": {"reference": f"Patient/{pid}"},
            "goal": [{"reference": f"Goal/{goal}"}],
        },
    )
    obs = {
        "a": _obs(f"a-{tag}", pid, when="2024-01-15T10:00:00Z", focus=f"Goal/{goal}"),
        "b": _obs(f"b-{tag}", pid, when="2024-03-15", code=("http://snomed.info/sct", "1234")),
        "c": _obs(f"c-{tag}", pid, status="amended", when="2024-06-30T23:30:00+01:00", code=("", "nosys")),
        "d": _obs(f"d-{tag}", pid, status="preliminary"),  # no effective date
    }
    written = {k: _put(ours, v) for k, v in obs.items()}
    return {"server": ours, "tag": tag, "pid": pid, "other": other, "goal": goal, "obs": written}


def _found(server, query: str, mode: str = "match") -> set[str]:
    resp = requests.get(server.url(query), headers=JSON)
    assert resp.status_code == 200, resp.text
    return {e["resource"]["id"] for e in resp.json().get("entry", []) if e["search"]["mode"] == mode}


def _letters(world, ids: set[str]) -> str:
    return "".join(sorted(i.split("-")[0] for i in ids))


CASES = [
    ("status=final", "ab"),
    ("status:not=final", "cd"),
    ("status=amended,preliminary", "cd"),
    (f"code={LOINC}|72166-2", "ad"),
    ("code=http://snomed.info/sct|", "b"),
    ("code=|nosys", "c"),
    ("code=72166-2,1234", "abd"),
    ("date=2024-03", "b"),
    ("date=2024-03-15", "b"),
    ("date=ne2024-03", "ac"),
    ("date=gt2024-03-15", "c"),
    ("date=ge2024-03-15", "bc"),
    ("date=lt2024-03-15", "a"),
    ("date=le2024-03-15", "ab"),
    ("date=sa2024-03-01", "bc"),
    ("date=eb2024-03-16", "ab"),
    ("date=2024-06-30T22:30:00Z", "c"),  # +01:00 is stored as UTC
    ("date=2024-01,2024-06", "ac"),
    ("date:missing=true", "d"),
    ("focus:missing=false", "a"),
]


@pytest.mark.parametrize("query,expected", CASES)
def test_observation_search_conditions(world, query, expected):
    found = _found(world["server"], f"Observation?patient={world['pid']}&{query}")
    assert _letters(world, found) == expected


def test_reference_forms_id_and_last_updated(world):
    server, pid, tag = world["server"], world["pid"], world["tag"]
    assert _letters(world, _found(server, f"Observation?subject={pid}")) == "abcd"  # bare id: any type
    assert _letters(world, _found(server, f"Observation?subject:Patient={pid}")) == "abcd"
    assert _found(server, f"Observation?subject:Group={pid}") == set()
    assert _letters(world, _found(server, f"Observation?subject={server.base}/Patient/{pid}")) == "abcd"
    assert _letters(world, _found(server, f"Observation?focus=Goal/{world['goal']}")) == "a"
    assert _letters(world, _found(server, f"Observation?_id=a-{tag},c-{tag},zz")) == "ac"
    b_updated = world["obs"]["b"]["meta"]["lastUpdated"]
    assert _letters(world, _found(server, f"Observation?patient={pid}&_lastUpdated=gt{b_updated}")) == "cd"
    assert _letters(world, _found(server, f"Observation?patient={pid}&_lastUpdated=le{b_updated}")) == "ab"


def test_string_search_escapes_like_metacharacters(world):
    server, tag = world["server"], world["tag"]
    ids = f"_id={world['pid']},{world['other']}"
    assert _found(server, f"Patient?{ids}&family=zz{tag}") == {world["pid"], world["other"]}  # prefix, any case
    assert _found(server, f"Patient?{ids}&family:contains=100%25_x") == {world["pid"]}
    assert _found(server, f"Patient?{ids}&family:contains=0%25") == {world["pid"]}
    assert _found(server, f"Patient?{ids}&family:contains=1_0") == set()  # '_' is literal, not a wildcard
    assert _found(server, f"Patient?{ids}&family:contains=%25smith") == set()  # '%' is literal too
    assert _found(server, f"Patient?{ids}&family=smith") == set()  # not a prefix
    assert _found(server, f"Patient?{ids}&family:contains=SMITH") == {world["other"]}
    assert _found(server, f"Patient?identifier={LOCAL}|nope") == set()


def test_includes_counts_and_paging(world):
    server, pid, tag = world["server"], world["pid"], world["tag"]
    assert _found(server, f"CarePlan?patient={pid}&_include=CarePlan:goal", "include") == {world["goal"]}
    assert _found(server, f"CarePlan?patient={pid}&_include=CarePlan:goal:Goal", "include") == {world["goal"]}
    assert _found(server, f"CarePlan?patient={pid}&_include=CarePlan:goal:Condition", "include") == set()
    assert _found(server, f"Goal?patient={pid}&_revinclude=Observation:focus", "include") == {f"a-{tag}"}
    total = requests.get(server.url(f"Observation?patient={pid}&_summary=count"), headers=JSON).json()
    assert total["total"] == 4 and "entry" not in total
    seen, url, pages = [], server.url(f"Observation?patient={pid}&_count=3&_sort=-_id&_total=accurate"), 0
    while url:
        page = requests.get(url, headers=JSON).json()
        assert page["total"] == 4
        seen += [e["resource"]["id"] for e in page["entry"]]
        url = next((link["url"] for link in page["link"] if link["relation"] == "next"), None)
        pages += 1
    assert seen == sorted(seen, reverse=True) and len(seen) == 4 and pages == 2
