"""Client-controlled values at the edges of what the databases hold: answered 2xx/4xx, never 500.

Dates at the ends of the FHIR range, integers past the columns' range, and searches with hundreds
of values (SQLite's expression-tree depth), directly and inside batch/transaction GET entries, on
SQLite and PostgreSQL.
"""

from __future__ import annotations

import uuid

import pytest
import requests

from tests.support.store_data import patient
from thrive_fhir.store.fhirdates import MAX, MIN, date_range

JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


def _batch(server, urls: list[str]) -> list[dict]:
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": u}} for u in urls],
    }
    resp = requests.post(server.base, json=bundle, headers=JSON)
    assert resp.status_code == 200, resp.text
    return resp.json()["entry"]


@pytest.mark.parametrize(
    "text,low,high",
    [
        ("9999-12-31", "9999-12-31T00:00:00", MAX.isoformat()),
        ("9999-12", "9999-12-01T00:00:00", MAX.isoformat()),
        ("9999-12-31T23:59:59Z", "9999-12-31T23:59:59", MAX.isoformat()),
        ("9999-12-31T23:00:00-14:00", MAX.isoformat(), MAX.isoformat()),
        ("0001-01-01T00:00:00+14:00", MIN.isoformat(), "0001-01-01T00:00:00.999999"),
        ("0001-01-01", "0001-01-01T00:00:00", "0001-01-01T23:59:59.999999"),
    ],
)
def test_date_range_at_the_edges_is_clamped(text, low, high):
    lo, hi = date_range(text)
    assert (lo.isoformat(), hi.isoformat()) == (low, high)


EDGE_DATE_QUERIES = [
    "Patient?birthdate=9999-12-31",
    "Patient?birthdate=9999-12",
    "Patient?birthdate=0001-01-01T00:00:00%2B14:00",
    "Patient?birthdate=le9999-12-31T23:59:59-14:00",
    "Patient?_lastUpdated=ge9999-12-31T23:59:59Z",
    "Patient/_history?_since=9999-12-31T23:59:59Z",
    "_history?_since=9999-12-31T23:59:59.999Z",
]


def test_dates_at_the_edge_of_the_range(ours):
    pid = str(uuid.uuid4())
    far = {**patient(pid), "birthDate": "9999-12-31"}
    assert requests.put(ours.url(f"Patient/{pid}"), json=far, headers=JSON).status_code == 201
    for query in EDGE_DATE_QUERIES:
        resp = requests.get(ours.url(query), headers=JSON)
        assert resp.status_code == 200, (query, resp.text)
    found = requests.get(ours.url(f"Patient?_id={pid}&birthdate=9999-12-31"), headers=JSON).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [pid]
    for entry in _batch(ours, EDGE_DATE_QUERIES):
        assert entry["response"]["status"].startswith("200"), entry
    kick = requests.get(
        ours.url("$export?_since=9999-12-31T23:59:59Z"),
        headers={"Accept": "application/fhir+json", "Prefer": "respond-async"},
    )
    assert kick.status_code == 202


def test_integers_past_the_columns(ours):
    pid = str(uuid.uuid4())
    assert requests.put(ours.url(f"Patient/{pid}"), json=patient(pid), headers=JSON).status_code == 201
    for version in (2**31, 2**63, 2**64 + 5, "9" * 40, "²"):
        resp = requests.get(ours.url(f"Patient/{pid}/_history/{version}"), headers=JSON)
        assert resp.status_code == 404 and resp.json()["resourceType"] == "OperationOutcome", (version, resp.text)
    for cursor in (2**63, 2**64, "9" * 40):
        resp = requests.get(ours.url(f"_history?_cursor={cursor}"), headers=JSON)
        assert resp.status_code == 400, (cursor, resp.text)
    assert requests.get(ours.url(f"_history?_cursor={2**63 - 1}&_count=1"), headers=JSON).status_code == 200
    for count in ("²", "99999999999999999999999999"):
        resp = requests.get(ours.url(f"Patient?_count={count}"), headers=JSON)
        assert resp.status_code == (400 if count == "²" else 200), (count, resp.text)
    resp = requests.put(ours.url(f"Patient/{pid}"), json=patient(pid), headers={**JSON, "If-Match": f'W/"{2**63}"'})
    assert resp.status_code in (400, 412)
    entries = _batch(
        ours,
        [
            f"Patient/{pid}/_history/{2**63}",
            f"Patient/{pid}/_history/{2**31}",
            f"_history?_cursor={2**63}",
            f"Patient/{pid}/_history/1",
        ],
    )
    assert [e["response"]["status"][:3] for e in entries] == ["404", "404", "400", "200"]


def test_long_or_lists_and_repeated_parameters(ours):
    pid = str(uuid.uuid4())
    requests.put(ours.url(f"Patient/{pid}"), json=patient(pid), headers=JSON)
    values = [f"sys{i}|code{i}" for i in range(600)] + [f"{patient(pid)['identifier'][0]['system']}|x"]
    queries = {
        "or-tokens": "Patient?identifier=" + ",".join(values),
        "or-ids": "Patient?_id=" + ",".join([str(uuid.uuid4()) for _ in range(900)] + [pid]),
        "or-dates": "Patient?birthdate=" + ",".join(f"19{i % 100:02d}-01-01" for i in range(700)) + ",2010-04-01",
        "repeated": "Patient?" + "&".join(f"gender:not=x{i}" for i in range(1100)) + f"&_id={pid}",
    }
    for name, query in queries.items():
        resp = requests.get(ours.url(query), headers=JSON)
        assert resp.status_code == 200, (name, resp.text[:300])
    repeated = requests.get(ours.url(queries["repeated"]), headers=JSON).json()
    assert [e["resource"]["id"] for e in repeated["entry"]] == [pid]
    posted = requests.post(
        ours.url("Patient/_search"),
        data=queries["repeated"].split("?", 1)[1],
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/fhir+json"},
    )
    assert posted.status_code == 200
    for entry in _batch(ours, [queries["or-tokens"], queries["repeated"]]):
        assert entry["response"]["status"].startswith("200"), entry
    too_many = requests.get(ours.url("Patient?_id=" + ",".join(str(i) for i in range(5000))), headers=JSON)
    assert too_many.status_code == 400 and "at most" in too_many.json()["issue"][0]["diagnostics"]


@pytest.mark.parametrize("rid", ["abc%0A", "abc%0D%0ALocation:%20x", "a%0A"])
def test_an_id_with_a_trailing_newline_is_not_an_id(ours, rid):
    """``$`` in the id pattern matched before a final newline: the id reached stored JSON and headers."""
    from urllib.parse import unquote

    body = {**patient(), "id": unquote(rid)}
    resp = requests.put(ours.url(f"Patient/{rid}"), json=body, headers=JSON)
    assert resp.status_code == 400, resp.text
    assert requests.get(ours.url(f"Patient/{rid}"), headers=JSON).status_code == 400
    tx = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": body, "request": {"method": "PUT", "url": f"Patient/{rid}"}}],
    }
    assert requests.post(ours.base, json=tx, headers=JSON).status_code == 400
