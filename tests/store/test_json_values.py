"""What JSON carries into the store comes back out unchanged, or is refused with a 400 that says why.

Decimals keep the text the client sent (R4 decimals keep their precision); numbers a double cannot
hold, strings FHIR forbids (control characters, lone surrogates, NUL) and JSON nested past the
documented limit are refused on both databases, in single writes, transactions and search values.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
import requests

from tests.support.store_data import LOCAL, observation, patient
from thrive_fhir.store.limits import MAX_JSON_DEPTH

JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


def _raw_obs(pid: str, value_literal: str, ident: str) -> str:
    obs = observation(f"Patient/{pid}")
    obs.pop("valueInteger")
    obs["identifier"] = [{"system": LOCAL, "value": ident}]
    obs["valueQuantity"] = {"value": "@VALUE@", "unit": "score"}
    return json.dumps(obs).replace('"@VALUE@"', value_literal)


@pytest.mark.parametrize(
    "literal",
    ["1.50", "1e2", "1.0e-400", "-0.0", "3.14159265358979323846264338327950288", "0.0000001", "12345678901234567890.5"],
)
def test_decimals_are_kept_exactly_as_sent(ours, literal):
    pid = str(uuid.uuid4())
    requests.put(ours.url(f"Patient/{pid}"), json=patient(pid), headers=JSON)
    ident = uuid.uuid4().hex
    made = requests.post(ours.url("Observation"), data=_raw_obs(pid, literal, ident), headers=JSON)
    assert made.status_code == 201, made.text
    oid = made.json()["id"]
    expected = f'"value":{literal},'
    assert expected in made.text
    assert expected in requests.get(ours.url(f"Observation/{oid}"), headers=JSON).text
    assert expected in requests.get(ours.url(f"Observation?identifier={LOCAL}|{ident}"), headers=JSON).text
    assert expected in requests.get(ours.url(f"Observation/{oid}/_history"), headers=JSON).text
    kick = requests.get(
        ours.url("$export?_type=Observation"), headers={"Accept": "application/fhir+json", "Prefer": "respond-async"}
    )
    deadline = time.time() + 30
    while (poll := requests.get(kick.headers["Content-Location"])).status_code == 202:
        assert time.time() < deadline
        time.sleep(0.05)
    ndjson = requests.get(poll.json()["output"][0]["url"]).text
    line = next(x for x in ndjson.splitlines() if oid in x)
    assert expected in line and json.loads(line)["id"] == oid


@pytest.mark.parametrize("literal", ["1e309", "-1e309", "9" * 400, "1" + "0" * 5000])
def test_numbers_json_cannot_carry_are_refused(ours, literal):
    pid = str(uuid.uuid4())
    requests.put(ours.url(f"Patient/{pid}"), json=patient(pid), headers=JSON)
    ident = uuid.uuid4().hex
    body = _raw_obs(pid, literal, ident)
    single = requests.post(ours.url("Observation"), data=body, headers=JSON)
    assert single.status_code == 400 and "too large" in single.json()["issue"][0]["diagnostics"]
    tx = (
        '{"resourceType":"Bundle","type":"transaction","entry":[{"resource":'
        + body
        + ',"request":{"method":"POST","url":"Observation"}}]}'
    )
    assert requests.post(ours.base, data=tx, headers=JSON).status_code == 400
    found = requests.get(ours.url(f"Observation?identifier={LOCAL}|{ident}"), headers=JSON)
    assert found.status_code == 200 and found.json()["total"] == 0


@pytest.mark.parametrize("escaped", ["a\\u0000b", "\\ud800", "x\\udfffy", "bell\\u0007", "\\u001f"])
def test_strings_fhir_forbids_are_refused(ours, escaped):
    pid = str(uuid.uuid4())
    body = json.dumps(patient(pid)).replace('"Alex"', f'"{escaped}"')
    assert escaped in body
    resp = requests.put(ours.url(f"Patient/{pid}"), data=body, headers=JSON)
    assert resp.status_code == 400, resp.text
    assert "name[0].given[0]" in resp.json()["issue"][0]["diagnostics"]
    assert requests.get(ours.url(f"Patient/{pid}"), headers=JSON).status_code == 404
    tx = (
        '{"resourceType":"Bundle","type":"transaction","entry":[{"resource":'
        + body
        + f',"request":{{"method":"PUT","url":"Patient/{pid}"}}}}]}}'
    )
    assert requests.post(ours.base, data=tx, headers=JSON).status_code == 400
    assert requests.get(ours.url(f"Patient/{pid}"), headers=JSON).status_code == 404


def test_pairs_of_surrogates_and_allowed_whitespace_are_kept(ours):
    pid = str(uuid.uuid4())
    body = json.dumps(patient(pid)).replace('"Alex"', '"A\\ud83d\\ude00\\tx\\ny"')
    assert requests.put(ours.url(f"Patient/{pid}"), data=body, headers=JSON).status_code == 201
    assert requests.get(ours.url(f"Patient/{pid}"), headers=JSON).json()["name"][0]["given"][0] == "A\U0001f600\tx\ny"


@pytest.mark.parametrize(
    "query",
    [
        "Patient?_id=a%00b",
        "Patient?identifier=x%00",
        "Patient?name=%00",
        "Patient?gender=male,%01",
        "Observation?subject=Patient/%00",
        "Patient?birthdate=2020%00",
    ],
)
def test_search_values_with_control_characters_are_refused(ours, query):
    resp = requests.get(ours.url(query), headers=JSON)
    assert resp.status_code == 400 and resp.json()["resourceType"] == "OperationOutcome", resp.text
    cond = requests.put(ours.url(query), json=patient(), headers=JSON)
    assert cond.status_code == 400


def _nested(levels: int) -> str:
    """An extension nested ``levels`` times (two JSON levels each), as text (json.dumps would recurse)."""
    leaf = '{"url":"http://example.org/leaf","valueString":"x"}'
    return '{"url":"http://example.org/n","extension":[' * levels + leaf + "]}" * levels


def _with_extension(ext_text: str) -> str:
    return json.dumps(patient())[:-1] + ',"extension":[' + ext_text + "]}"


@pytest.mark.parametrize("validate", [True, False])
def test_deep_json_is_refused_with_its_own_message(tmp_path, validate):
    from werkzeug.test import Client

    from thrive_fhir.store import create_app

    client = Client(create_app(f"sqlite:///{tmp_path}/s.db", validate_on_write=validate))
    for levels in (MAX_JSON_DEPTH, 2000):
        resp = client.post("/Patient", data=_with_extension(_nested(levels)), headers=JSON)
        assert resp.status_code == 400
        text = resp.get_json()["issue"][0]["diagnostics"]
        assert f"nested more than {MAX_JSON_DEPTH} levels" in text and "not valid JSON" not in text
    resp = client.post("/Patient", data=_with_extension(_nested(MAX_JSON_DEPTH // 2 - 5)), headers=JSON)
    assert resp.status_code < 500, resp.get_data(as_text=True)[:300]


def test_the_store_never_writes_a_non_json_number():
    """A Python caller handing the store a float inf gets an error, not stored ``Infinity``."""
    from thrive_fhir.store.fhirjson import loads
    from thrive_fhir.store.writes import dumps

    with pytest.raises(ValueError):
        dumps({"valueQuantity": {"value": float("inf")}})
    sent = '{"a":[1.50,1e2,-0.0,1.0e-400,0.1,3],"b":{"c":12345678901234567890.5}}'
    assert dumps(loads(sent)) == sent
