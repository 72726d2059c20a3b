"""Unsupported search and export parameters: ignored only where that is safe, and said so.

Lenient handling (the default) may ignore a parameter only when the answer still holds exactly the
matches (unordered, without includes, with whole resources); the Bundle then carries an
OperationOutcome entry (search mode ``outcome``) naming what was ignored. Filters the server cannot
apply are refused in every mode; ``Prefer: handling=strict`` refuses everything unsupported.
"""

from __future__ import annotations

import uuid

import pytest
import requests

from tests.support.store_data import patient

JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
STRICT = {**JSON, "Prefer": "handling=strict"}
ASYNC = {"Accept": "application/fhir+json", "Prefer": "respond-async"}


@pytest.fixture
def pid(ours) -> str:
    pid = str(uuid.uuid4())
    assert requests.put(ours.url(f"Patient/{pid}"), json=patient(pid), headers=JSON).status_code == 201
    return pid


@pytest.mark.parametrize(
    "param",
    [
        "_sort=name",
        "_include=*",
        "_include=Patient:link",
        "_elements=name",
        "_summary=true",
        "_summary=text",
        "_revinclude=*",
        "colour=blue",
    ],
)
def test_safe_to_ignore_is_ignored_and_said(ours, pid, param):
    resp = requests.get(ours.url(f"Patient?_id={pid}&{param}"), headers=JSON)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    matches = [e for e in body["entry"] if e["search"]["mode"] == "match"]
    assert [e["resource"]["id"] for e in matches] == [pid]
    outcomes = [e["resource"] for e in body["entry"] if e["search"]["mode"] == "outcome"]
    assert len(outcomes) == 1 and outcomes[0]["resourceType"] == "OperationOutcome"
    name = param.split("=")[0]
    assert any(name in i["diagnostics"] and i["severity"] == "warning" for i in outcomes[0]["issue"])
    self_link = next(link["url"] for link in body["link"] if link["relation"] == "self")
    assert name not in self_link
    count = requests.get(ours.url(f"Patient?_id={pid}&{param}&_summary=count"), headers=JSON).json()
    assert count["total"] == 1 and count["entry"][0]["search"]["mode"] == "outcome"
    strict = requests.get(ours.url(f"Patient?_id={pid}&{param}"), headers=STRICT)
    assert strict.status_code == 400 and strict.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize(
    "param",
    [
        "_has:Observation:subject:code=1234",
        "general-practitioner.name=Smith",
        "organization.name=x",
        "_filter=name eq x",
        "_text=anxiety",
        "_content=x",
        "_list=42",
        "_id:not=abc",
        "_lastUpdated:missing=true",
        "_summary=junk",
        "_total=maybe",
    ],
)
def test_filters_that_cannot_be_applied_are_refused_in_every_mode(ours, pid, param):
    for headers in (JSON, STRICT):
        resp = requests.get(ours.url(f"Patient?{param}"), headers=headers)
        assert resp.status_code == 400, (param, resp.text[:300])
        assert resp.json()["resourceType"] == "OperationOutcome"


def test_supported_result_parameters_add_no_outcome(ours, pid):
    body = requests.get(
        ours.url(f"Patient?_id={pid}&_sort=-_lastUpdated&_summary=false&_total=accurate&_count=5"), headers=JSON
    ).json()
    assert [e["search"]["mode"] for e in body["entry"]] == ["match"]


@pytest.mark.parametrize(
    "query",
    [
        "$export?_type=,,,",
        "$export?_type=",
        "$export?_typeFilter=Patient%3Fgender%3Dmale",
        "$export?patient=Patient/x",
        "$export?includeAssociatedData=LatestProvenanceResources",
    ],
)
def test_export_parameters_it_cannot_honour_are_refused(ours, query):
    resp = requests.get(ours.url(query), headers=ASYNC)
    assert resp.status_code == 400, resp.text
    assert resp.json()["resourceType"] == "OperationOutcome"


def test_export_ignores_an_unknown_parameter_only_when_asked_to_be_lenient(ours):
    lenient = requests.get(
        ours.url("$export?_type=Patient&includeAssociatedData=x"),
        headers={**ASYNC, "Prefer": "respond-async, handling=lenient"},
    )
    assert lenient.status_code == 202
    narrowing = requests.get(
        ours.url("$export?_type=Patient&_typeFilter=Patient%3Fgender%3Dmale"),
        headers={**ASYNC, "Prefer": "respond-async, handling=lenient"},
    )
    assert narrowing.status_code == 400
