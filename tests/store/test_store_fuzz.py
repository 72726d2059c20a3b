"""Hypothesis fuzzing of the store's search and write surfaces, against ``thrive store serve`` as its
own process (SQLite with validation, PostgreSQL without: the store's own indexing then sees any JSON).

Oracle, for every request: never a 5xx, the answer is valid JSON (no ``Infinity``/``NaN`` tokens)
and a Bundle or an OperationOutcome; a write refused as a whole (single write or transaction, 4xx)
changes nothing — the per-type counts and the newest entry of the system ``_history`` are as before.
Values are drawn from the places this store has broken before: dates at the ends of the range,
integers past the columns, numbers past a double, control characters and lone surrogates, long OR
lists, unsupported parameters and modifiers, and wrong JSON shapes anywhere in a resource.
"""

from __future__ import annotations

import copy
import json
import uuid
from urllib.parse import quote, urlencode

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.servers import OwnStoreProcess, create_pg_database
from tests.support.store_data import observation, patient

pytestmark = pytest.mark.slow

JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
TYPES = ["Patient", "Observation", "Goal", "CarePlan"]
PARAMS = {
    "Patient": ["identifier", "name", "family", "birthdate", "gender", "active", "organization"],
    "Observation": ["subject", "patient", "code", "status", "date", "focus", "value-concept"],
    "Goal": ["patient", "subject", "lifecycle-status", "target-date", "start-date"],
    "CarePlan": ["patient", "status", "date", "goal", "part-of"],
}
COMMON = [
    "_id",
    "_lastUpdated",
    "_count",
    "_sort",
    "_include",
    "_revinclude",
    "_summary",
    "_total",
    "_cursor",
    "_elements",
    "_has:Observation:subject:code",
    "_filter",
    "_text",
    "colour",
    "subject.name",
    "_format",
]
MODIFIERS = ["", "", "", ":not", ":missing", ":contains", ":exact", ":Patient", ":text", ":above", ":x.y"]
EDGE = [
    "",
    "x",
    "9999-12-31",
    "9999-12",
    "0001-01-01T00:00:00+14:00",
    "ge9999-12-31T23:59:59Z",
    "le0001-01-01",
    "2024-02-30",
    "2024-05-01T10:00",
    str(2**31),
    str(2**63),
    str(2**64),
    "-1",
    "1e309",
    "0",
    "true",
    "count",
    "\x00",
    "a\x00b",
    "\x07",
    "%",
    "_",
    "\\",
    "\\,",
    "|",
    "a|b",
    "|b",
    "a|",
    "Patient/x",
    "Patient/",
    "http://x.example/Patient/1",
    "urn:uuid:1",
    ",",
    ",,,",
    "x" * 600,
    "é",
    "\U0001f600",
    "Patient:goal",
    "*",
    "CarePlan:goal:Goal",
    "-_lastUpdated",
    "_id",
    "'; DROP TABLE resource_versions; --",
]
values = st.one_of(
    st.sampled_from(EDGE),
    st.text(max_size=12),
    st.lists(st.sampled_from(EDGE[:12]), min_size=2, max_size=40).map(",".join),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
)


@pytest.fixture(
    scope="module", params=["sqlite-validating", pytest.param("postgres-no-validation", marks=pytest.mark.postgres)]
)
def store(request, tmp_path_factory):
    work = tmp_path_factory.mktemp("fuzz")
    if request.param.startswith("sqlite"):
        server, drop = OwnStoreProcess(work).start(), (lambda: None)
    else:
        url, drop = create_pg_database()
        server = OwnStoreProcess(work, database=url, validate=False).start()
    base = server.base_url
    seeded = []
    for _ in range(3):  # something to find, page and include
        pid = str(uuid.uuid4())
        requests.put(f"{base}/Patient/{pid}", json=patient(pid), headers=JSON)
        requests.post(f"{base}/Observation", json=observation(f"Patient/{pid}"), headers=JSON)
        seeded.append(pid)
    yield base, seeded
    server.stop()
    drop()


def _reject(name):
    raise ValueError(f"{name} in an answer")


def check_answer(resp: requests.Response, what: str) -> dict | None:
    assert resp.status_code < 500, f"{resp.status_code} for {what}: {resp.text[:400]}"
    if not resp.content:
        return None
    body = json.loads(resp.content.decode("utf-8"), parse_constant=_reject)
    assert body.get("resourceType") in ("Bundle", "OperationOutcome", *TYPES), (what, resp.text[:200])
    if resp.status_code >= 400:
        assert body["resourceType"] == "OperationOutcome", (what, resp.text[:200])
    return body


def snapshot(base: str) -> tuple:
    counts = tuple(requests.get(f"{base}/{t}?_summary=count", headers=JSON).json()["total"] for t in TYPES)
    newest = requests.get(f"{base}/_history?_count=1", headers=JSON).json().get("entry", [{}])[0]
    return counts, newest.get("fullUrl"), newest.get("response", {}).get("etag")


@st.composite
def searches(draw):
    rtype = draw(st.sampled_from(TYPES))
    pairs = []
    for _ in range(draw(st.integers(1, 4))):
        name = draw(st.sampled_from(PARAMS[rtype] + COMMON)) + draw(st.sampled_from(MODIFIERS))
        pairs.append((name, draw(values)))
    if draw(st.booleans()):
        query = urlencode(pairs)
    else:  # raw, with percent-escapes no encoder would produce (bad UTF-8, a lone surrogate's bytes)
        junk = draw(st.sampled_from(["%ED%A0%80", "%FF", "%00", "%C0%AE", "%", "%%", "+", "&&", "=", "%E2%82"]))
        query = "&".join(f"{quote(k)}={quote(v)}" for k, v in pairs) + f"&{junk}={junk}"
    how = draw(st.sampled_from(["GET", "POST _search", "batch GET", "history"]))
    return rtype, query, how


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=searches())
def test_search_surface_never_fails(store, case):
    base, _seeded = store
    rtype, query, how = case
    if how == "GET":
        resp = requests.get(f"{base}/{rtype}?{query}", headers=JSON)
    elif how == "POST _search":
        resp = requests.post(
            f"{base}/{rtype}/_search",
            data=query.encode("latin-1", "replace"),
            headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/fhir+json"},
        )
    elif how == "history":
        resp = requests.get(f"{base}/{rtype}/_history?{query}", headers=JSON)
    else:
        bundle = {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [{"request": {"method": "GET", "url": f"{rtype}?{query}"}}],
        }
        resp = requests.post(base, json=bundle, headers=JSON)
    body = check_answer(resp, f"{how} {rtype}?{query}")
    if how == "batch GET" and body is not None and resp.status_code == 200:
        entry = body["entry"][0]
        assert not entry["response"]["status"].startswith("5"), entry


RAW_NUMBERS = ["1e309", "-1e309", "1.0e-400", "1.50", "9" * 400, "0.1", "-0", "1E2", str(2**64)]
WRONG = [
    None,
    True,
    0,
    -1,
    3.5,
    "",
    "x",
    [],
    {},
    [1],
    {"a": 1},
    ["active"],
    {"reference": 1},
    "2025-13-45",
    "9999-12-31",
    "0001-01-01T00:00:00+14:00",
    "Patient?identifier=x|y",
    "urn:uuid:1",
    "a\x00b",
    "\ud800",
    "bell\x07",
    "\U0001f600",
    "x" * 2000,
]


def _deep(levels: int):
    node: object = "leaf"
    for _ in range(levels):
        node = [node]
    return node


@st.composite
def resources(draw):
    rtype = draw(st.sampled_from(["Patient", "Observation"]))
    res = patient() if rtype == "Patient" else observation(f"Patient/{uuid.uuid4()}")
    raw: dict[str, str] = {}
    for _ in range(draw(st.integers(0, 3))):
        paths = list(_paths(res))
        path = draw(st.sampled_from(paths))
        choice = draw(st.integers(0, 2))
        if choice == 0:
            marker = f"@raw{len(raw)}@"
            raw[marker] = draw(st.sampled_from(RAW_NUMBERS))
            value: object = marker
        elif choice == 1:
            value = copy.deepcopy(draw(st.sampled_from(WRONG)))  # later mutations must not change WRONG
        else:
            value = _deep(draw(st.sampled_from([3, 150, 400])))
        _set(res, path, value)
    if draw(st.booleans()):  # an extension or id on a primitive, as EHR data and bulk exports carry them
        key = "_birthDate" if rtype == "Patient" else "_status"
        res[key] = copy.deepcopy(
            draw(
                st.sampled_from(
                    [
                        {
                            "extension": [
                                {
                                    "url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                                    "valueDateTime": "2010-04-01T10:00:00Z",
                                }
                            ]
                        },
                        {"id": "p1"},
                        {
                            "extension": [
                                {
                                    "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
                                    "valueCode": "unknown",
                                }
                            ]
                        },
                        [],
                        "x",
                        None,
                    ]
                )
            )
        )
    text = json.dumps(res)
    for marker, literal in raw.items():
        text = text.replace(f'"{marker}"', literal)
    return rtype, res, text


def _paths(obj, prefix=()):
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k != "resourceType":
                yield (*prefix, k)
                yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield (*prefix, i)
            yield from _paths(v, (*prefix, i))


def _set(obj, path, value):
    for key in path[:-1]:
        obj = obj[key]
    obj[path[-1]] = value


def _bundle_text(kind: str, entries: list[tuple[str, str, str]]) -> str:
    parts = []
    for method, url, body in entries:
        resource = f'"resource":{body},' if body else ""
        parts.append(
            "{"
            + f'"fullUrl":"urn:uuid:{uuid.uuid4()}",'
            + resource
            + f'"request":{{"method":"{method}","url":"{url}"}}'
            + "}"
        )
    return '{"resourceType":"Bundle","type":"' + kind + '","entry":[' + ",".join(parts) + "]}"


@st.composite
def writes(draw):
    how = draw(st.sampled_from(["PUT", "POST", "conditional PUT", "DELETE", "transaction", "batch"]))
    items = [draw(resources()) for _ in range(draw(st.integers(1, 3)))]
    if_match = draw(st.sampled_from([None, 'W/"1"', 'W/"9223372036854775808"', '"x"', 'W/"²"']))
    url_tail = draw(st.sampled_from(["", "", "/_history/1", "/_history/99999999999", "/extra"]))
    return how, items, if_match, url_tail


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=writes())
def test_write_surface_never_fails_and_a_refused_write_changes_nothing(store, case):
    base, seeded = store
    how, items, if_match, url_tail = case
    rtype, res, text = items[0]
    rid = res.get("id") if isinstance(res.get("id"), str) else str(uuid.uuid4())
    headers = {**JSON, **({"If-Match": if_match} if if_match else {})}
    before = snapshot(base)
    if how == "PUT":
        text = text if '"id"' in text else text[:-1] + f',"id":"{rid}"}}'
        resp = requests.put(f"{base}/{rtype}/{rid}{url_tail}", data=text.encode(), headers=headers)
    elif how == "POST":  # the drawn If-Match value doubles as If-None-Exist criteria
        extra = {"If-None-Exist": f"identifier={if_match}"} if if_match else {}
        resp = requests.post(f"{base}/{rtype}{url_tail}", data=text.encode(), headers={**JSON, **extra})
    elif how == "conditional PUT":
        resp = requests.put(f"{base}/{rtype}?identifier={uuid.uuid4().hex}", data=text.encode(), headers=headers)
    elif how == "DELETE":
        target = seeded[0] if url_tail else rid
        resp = requests.delete(f"{base}/Patient/{target}{url_tail}", headers=headers)
    else:
        entries = []
        for i, (etype, eres, etext) in enumerate(items):
            method = ["POST", "PUT", "DELETE"][i % 3] if how == "transaction" else ["PUT", "POST", "DELETE"][i % 3]
            eid = eres.get("id") if isinstance(eres.get("id"), str) else str(uuid.uuid4())
            if method == "PUT" and '"id"' not in etext:
                etext = etext[:-1] + f',"id":"{eid}"}}'
            url = etype if method == "POST" else f"{etype}/{eid}{url_tail}"
            entries.append((method, url, etext if method != "DELETE" else ""))
        resp = requests.post(base, data=_bundle_text(how, entries).encode(), headers=JSON)
    body = check_answer(resp, f"{how} {rtype}{url_tail}: {text[:200]}")
    if how == "batch" and body is not None and resp.status_code == 200:
        for entry in body["entry"]:
            assert not entry["response"]["status"].startswith("5"), entry
    if resp.status_code >= 400 and how != "batch":
        assert snapshot(base) == before, f"a refused {how} ({resp.status_code}) changed the store"
