"""Behaviour only our store claims (sekmet-fhir lacks it or differs; see docs/store-vs-sekmet.md)."""

from __future__ import annotations

import json
import socket
import time
import uuid

import requests

from tests.support.store_data import careplan, goal, local_identifier, observation, patient

JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


def ids(bundle: dict, mode: str | None = None) -> list[str]:
    return [
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in bundle.get("entry", [])
        if mode is None or e["search"]["mode"] == mode
    ]


def make_plan(server) -> dict:
    """A patient with two goals, a care plan naming them, and GBO-style scores focused on each goal."""
    pid = str(uuid.uuid4())
    assert requests.put(server.url(f"Patient/{pid}"), json=patient(pid), headers=JSON).status_code == 201
    goals = [
        requests.post(server.url("Goal"), json=goal(f"Patient/{pid}"), headers=JSON).json()["id"] for _ in range(2)
    ]
    plan = requests.post(
        server.url("CarePlan"), json=careplan(f"Patient/{pid}", [f"Goal/{g}" for g in goals]), headers=JSON
    ).json()["id"]
    scores = [
        requests.post(
            server.url("Observation"), json=observation(f"Patient/{pid}", focus=f"Goal/{g}"), headers=JSON
        ).json()["id"]
        for g in goals
        for _ in range(2)
    ]
    return {"patient": pid, "goals": goals, "plan": plan, "scores": scores}


def test_capability_statement_lists_exactly_what_is_implemented(ours):
    cs = requests.get(ours.url("metadata"), headers=JSON).json()
    by_type = {r["type"]: r for r in cs["rest"][0]["resource"]}
    goal_params = {p["name"] for p in by_type["Goal"]["searchParam"]}
    assert {"_id", "_lastUpdated", "patient", "identifier", "lifecycle-status"} <= goal_params
    assert "Observation:focus" in by_type["Goal"]["searchRevInclude"]
    assert "CarePlan:goal" in by_type["CarePlan"]["searchInclude"]
    # Every advertised parameter is accepted under strict handling (the statement tells the truth).
    for rtype in ("Patient", "Observation", "Goal", "CarePlan", "Consent", "Provenance", "AuditEvent"):
        for param in by_type[rtype]["searchParam"]:
            value = {"date": "ge2024-01-01", "reference": "x", "string": "a"}.get(param["type"], "a")
            resp = requests.get(
                ours.url(f"{rtype}?{param['name']}={value}"), headers={**JSON, "Prefer": "handling=strict"}
            )
            assert resp.status_code == 200, (rtype, param["name"], resp.text)
    assert {i["code"] for i in cs["rest"][0]["interaction"]} == {"transaction", "batch", "history-system"}


def test_plan_view_with_include_and_revinclude(ours):
    plan = make_plan(ours)
    pid = plan["patient"]
    resp = requests.get(ours.url(f"CarePlan?patient={pid}&_include=CarePlan:goal"), headers=JSON).json()
    assert ids(resp, "match") == [f"CarePlan/{plan['plan']}"]
    assert sorted(ids(resp, "include")) == sorted(f"Goal/{g}" for g in plan["goals"])
    resp = requests.get(ours.url(f"Goal?patient={pid}&_revinclude=Observation:focus"), headers=JSON).json()
    assert sorted(ids(resp, "match")) == sorted(f"Goal/{g}" for g in plan["goals"])
    assert sorted(ids(resp, "include")) == sorted(f"Observation/{o}" for o in plan["scores"])
    one_goal = plan["goals"][0]
    focus = requests.get(ours.url(f"Observation?focus=Goal/{one_goal}"), headers=JSON).json()
    assert len(focus["entry"]) == 2


def test_goal_search_parameters_work(ours):
    plan = make_plan(ours)
    resp = requests.get(ours.url(f"Goal?patient={plan['patient']}&lifecycle-status=active"), headers=JSON).json()
    assert sorted(ids(resp)) == sorted(f"Goal/{g}" for g in plan["goals"])
    g = goal(f"Patient/{plan['patient']}")
    criteria = "identifier=" + local_identifier(g)
    first = requests.put(ours.url("Goal?" + criteria), json=g, headers=JSON)
    assert first.status_code == 201
    again = requests.put(ours.url("Goal?" + criteria), json=g, headers=JSON)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]


def test_sort_by_last_updated_both_ways(ours):
    pid = str(uuid.uuid4())
    requests.put(ours.url(f"Patient/{pid}"), json=patient(pid), headers=JSON)
    made = [
        requests.post(ours.url("Observation"), json=observation(f"Patient/{pid}"), headers=JSON).json()["id"]
        for _ in range(4)
    ]
    newest = requests.get(ours.url(f"Observation?patient={pid}&_sort=-_lastUpdated&_count=2"), headers=JSON).json()
    assert [e["resource"]["id"] for e in newest["entry"]] == made[::-1][:2]
    nxt = next(link["url"] for link in newest["link"] if link["relation"] == "next")
    rest = requests.get(nxt, headers=JSON).json()
    assert [e["resource"]["id"] for e in rest["entry"]] == made[::-1][2:]
    oldest = requests.get(ours.url(f"Observation?patient={pid}&_sort=_lastUpdated"), headers=JSON).json()
    assert [e["resource"]["id"] for e in oldest["entry"]] == made


def test_paging_is_stable_while_resources_are_added(ours):
    pid = str(uuid.uuid4())
    requests.put(ours.url(f"Patient/{pid}"), json=patient(pid), headers=JSON)
    first_ids = {
        requests.post(ours.url("Observation"), json=observation(f"Patient/{pid}"), headers=JSON).json()["id"]
        for _ in range(6)
    }
    page = requests.get(ours.url(f"Observation?patient={pid}&_count=3&_sort=_lastUpdated"), headers=JSON).json()
    seen = [e["resource"]["id"] for e in page["entry"]]
    for _ in range(3):  # added while paging: after the cursor in _lastUpdated order, so they follow
        requests.post(ours.url("Observation"), json=observation(f"Patient/{pid}"), headers=JSON)
    url = next(link["url"] for link in page["link"] if link["relation"] == "next")
    while url:
        page = requests.get(url, headers=JSON).json()
        seen += [e["resource"]["id"] for e in page.get("entry", [])]
        url = next((link["url"] for link in page["link"] if link["relation"] == "next"), None)
    assert len(seen) == len(set(seen)) == 9
    assert first_ids <= set(seen)


def test_lenient_unknown_parameter_is_ignored_and_left_out_of_self_link(ours):
    pid = str(uuid.uuid4())
    requests.put(ours.url(f"Patient/{pid}"), json=patient(pid), headers=JSON)
    resp = requests.get(ours.url(f"Patient?_id={pid}&colour=blue"), headers=JSON)
    assert resp.status_code == 200
    body = resp.json()
    assert ids(body, "match") == [f"Patient/{pid}"]
    self_link = next(link["url"] for link in body["link"] if link["relation"] == "self")
    assert "colour" not in self_link and f"_id={pid}" in self_link
    outcome = [e["resource"] for e in body["entry"] if e["search"]["mode"] == "outcome"]
    assert "colour" in outcome[0]["issue"][0]["diagnostics"]  # said, not silently dropped


def test_invalid_search_values_are_400(ours):
    for query in (
        "Observation?date=yesterday",
        "Observation?_lastUpdated=gt2024-13-45",
        "Patient?_count=many",
        "Patient?identifier=",
        "Observation?code:fuzzy=x",
        "Patient?_cursor=!!!",
    ):
        resp = requests.get(ours.url(query), headers=JSON)
        assert resp.status_code == 400, query
        assert resp.json()["resourceType"] == "OperationOutcome"


def test_prefer_return_variants(ours):
    minimal = requests.post(ours.url("Patient"), json=patient(), headers={**JSON, "Prefer": "return=minimal"})
    assert minimal.status_code == 201 and minimal.content == b"" and minimal.headers["Location"]
    oo = requests.post(ours.url("Patient"), json=patient(), headers={**JSON, "Prefer": "return=OperationOutcome"})
    assert oo.status_code == 201 and oo.json()["resourceType"] == "OperationOutcome"
    assert "validation passed" in oo.json()["issue"][0]["details"]["text"]  # the validator's verdict
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": patient(), "request": {"method": "POST", "url": "Patient"}}],
    }
    tx = requests.post(ours.base, json=bundle, headers={**JSON, "Prefer": "return=OperationOutcome"}).json()
    assert "validation passed" in tx["entry"][0]["response"]["outcome"]["issue"][0]["details"]["text"]
    tx = requests.post(ours.base, json=bundle, headers=JSON).json()
    assert "outcome" not in tx["entry"][0]["response"]
    rep = requests.post(ours.url("Patient"), json=patient(), headers={**JSON, "Prefer": "return=representation"})
    assert rep.json()["resourceType"] == "Patient"
    assert rep.headers["Last-Modified"].endswith("GMT")


def test_invalid_resource_is_422_and_not_stored(ours):
    bad = observation("Patient/whoever")
    bad["status"] = "not-a-status"
    resp = requests.post(ours.url("Observation"), json=bad, headers=JSON)
    assert resp.status_code == 422
    outcome = resp.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert any("Observation.status" in e for i in outcome["issue"] for e in i.get("expression", []))
    assert requests.get(ours.url("Observation?identifier=" + local_identifier(bad)), headers=JSON).json()["total"] == 0
    # ...and one invalid entry rejects the whole transaction.
    good = patient()
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": good, "request": {"method": "POST", "url": "Patient"}},
            {"resource": bad, "request": {"method": "POST", "url": "Observation"}},
        ],
    }
    resp = requests.post(ours.base, json=bundle, headers=JSON)
    assert resp.status_code == 422
    assert "Bundle.entry[1]" in json.dumps(resp.json())
    assert requests.get(ours.url("Patient?identifier=" + local_identifier(good)), headers=JSON).json()["total"] == 0


def test_http_errors_are_outcomes(ours):
    pid = str(uuid.uuid4())
    requests.put(ours.url(f"Patient/{pid}"), json=patient(pid), headers=JSON)
    cases = [
        (requests.post(ours.url(f"Patient/{pid}"), json=patient(), headers=JSON), 405),
        (requests.get(ours.url(f"Patient/{pid}"), headers={"Accept": "application/fhir+xml"}), 406),
        (requests.get(ours.url(f"Patient/{pid}?_format=xml")), 406),
        (requests.post(ours.url("Patient"), data="<Patient/>", headers={"Content-Type": "application/fhir+xml"}), 415),
        (requests.put(ours.url(f"Patient/{pid}"), json={"resourceType": "Patient"}, headers=JSON), 400),  # no id
        (requests.put(ours.url("Patient/bad id!"), json=patient("bad id!"), headers=JSON), 400),
        (requests.put(ours.url(f"Patient/{pid}"), json=patient(pid), headers={**JSON, "If-Match": "banana"}), 400),
        (requests.post(ours.url("Patient"), data=b"[1, 2]", headers=JSON), 400),
        (requests.post(ours.url("Patient"), data=b'{"resourceType": "Patient", "x": NaN}', headers=JSON), 400),
        (requests.post(ours.url("Patient"), data=b"", headers=JSON), 400),
        (requests.post(ours.base, json={"resourceType": "Bundle", "type": "collection"}, headers=JSON), 400),
        (requests.get(ours.url(f"Patient/{pid}/_history/99"), headers=JSON), 404),
        (requests.get(ours.url("Patient/$everything"), headers=JSON), 404),
    ]
    for resp, status in cases:
        assert resp.status_code == status, (resp.request.method, resp.request.url, resp.text)
        assert resp.json()["resourceType"] == "OperationOutcome"
    deep = b'{"resourceType": "Patient", "extension": ' + b"[" * 100000 + b"]" * 100000 + b"}"
    resp = requests.post(ours.url("Patient"), data=deep, headers=JSON)
    assert resp.status_code == 400 and resp.json()["resourceType"] == "OperationOutcome"


def test_50_mb_body_is_413_without_being_read(ours):
    """The app refuses on Content-Length; a raw socket shows the answer comes before we finish sending."""
    host, port = ours.base.split("//")[1].split(":")
    size = 50 * 1024 * 1024
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(
            f"POST /Patient HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/fhir+json\r\n"
            f"Content-Length: {size}\r\nConnection: close\r\n\r\n".encode()
        )
        sock.sendall(b'{"resourceType":"Patient","x":"' + b"a" * (size - 33) + b'"}')
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), head[:100]
    assert json.loads(body)["resourceType"] == "OperationOutcome"


def test_delete_semantics_and_conditional_delete(ours):
    pid = str(uuid.uuid4())
    requests.put(ours.url(f"Patient/{pid}"), json=patient(pid), headers=JSON)
    assert requests.delete(ours.url(f"Patient/{pid}"), headers={**JSON, "If-Match": 'W/"3"'}).status_code == 412
    assert requests.delete(ours.url(f"Patient/{pid}"), headers=JSON).status_code == 204
    assert requests.delete(ours.url(f"Patient/{pid}"), headers=JSON).status_code == 204  # idempotent
    gone = requests.get(ours.url(f"Patient/{pid}"), headers=JSON)
    assert gone.status_code == 410 and gone.headers["ETag"] == 'W/"2"'
    assert requests.get(ours.url(f"Patient?_id={pid}"), headers=JSON).json()["total"] == 0
    again = requests.put(ours.url(f"Patient/{pid}"), json=patient(pid), headers=JSON)
    assert again.status_code == 201 and again.json()["meta"]["versionId"] == "3"
    body = patient()
    requests.post(ours.url("Patient"), json=body, headers=JSON)
    crit = "identifier=" + local_identifier(body)
    assert requests.delete(ours.url("Patient?" + crit), headers=JSON).status_code == 204
    assert requests.get(ours.url("Patient?" + crit), headers=JSON).json()["total"] == 0


def test_transaction_conditional_entries_and_get(ours):
    existing = patient()
    requests.post(ours.url("Patient"), json=existing, headers=JSON)
    crit = "identifier=" + local_identifier(existing)
    p_urn = f"urn:uuid:{uuid.uuid4()}"
    g = goal(p_urn)
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": p_urn,
                "resource": existing,
                "request": {"method": "POST", "url": "Patient", "ifNoneExist": crit},
            },
            {"resource": g, "request": {"method": "PUT", "url": "Goal?identifier=" + local_identifier(g)}},
            {"request": {"method": "GET", "url": "Patient?" + crit}},
        ],
    }
    resp = requests.post(ours.base, json=bundle, headers={**JSON, "Prefer": "return=representation"})
    assert resp.status_code == 200, resp.text
    entries = resp.json()["entry"]
    assert entries[0]["response"]["status"].startswith("200")
    assert entries[1]["response"]["status"].startswith("201")
    pid = entries[0]["response"]["location"].split("/")[1]
    assert entries[1]["resource"]["subject"]["reference"] == f"Patient/{pid}"
    assert entries[2]["resource"]["total"] == 1


def test_transaction_unresolved_urn_is_rejected(ours):
    marker = patient()
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": marker, "request": {"method": "POST", "url": "Patient"}},
            {"resource": observation(f"urn:uuid:{uuid.uuid4()}"), "request": {"method": "POST", "url": "Observation"}},
        ],
    }
    resp = requests.post(ours.base, json=bundle, headers=JSON)
    assert resp.status_code == 400
    assert requests.get(ours.url("Patient?identifier=" + local_identifier(marker)), headers=JSON).json()["total"] == 0


def test_patient_export_and_cancel(ours):
    plan = make_plan(ours)
    kick = requests.get(
        ours.url("Patient/$export?_type=Patient,Goal,Observation"),
        headers={"Accept": "application/fhir+json", "Prefer": "respond-async"},
    )
    assert kick.status_code == 202
    status_url = kick.headers["Content-Location"]
    deadline = time.time() + 30
    while (poll := requests.get(status_url)).status_code == 202:
        assert "X-Progress" in poll.headers and time.time() < deadline
        time.sleep(0.1)
    manifest = poll.json()
    assert manifest["requiresAccessToken"] is False
    got = {}
    for out in manifest["output"]:
        resp = requests.get(out["url"])
        assert resp.headers["Content-Type"].startswith("application/fhir+ndjson")
        got[out["type"]] = {json.loads(line)["id"] for line in resp.text.splitlines()}
        assert len(got[out["type"]]) == out["count"]
    assert set(plan["goals"]) <= got["Goal"] and set(plan["scores"]) <= got["Observation"]
    assert requests.delete(status_url).status_code == 202
    assert requests.get(status_url).status_code == 404
    assert requests.get(manifest["output"][0]["url"]).status_code == 404
    no_async = requests.get(ours.url("$export"), headers={"Accept": "application/fhir+json"})
    assert no_async.status_code == 400 and no_async.json()["resourceType"] == "OperationOutcome"


def test_system_history_and_paging(ours):
    pid = str(uuid.uuid4())
    for family in ("A", "B", "C"):
        requests.put(ours.url(f"Patient/{pid}"), json=patient(pid, family=family), headers=JSON)
    resp = requests.get(ours.url(f"Patient/{pid}/_history?_count=2"), headers=JSON).json()
    assert [e["resource"]["meta"]["versionId"] for e in resp["entry"]] == ["3", "2"]
    nxt = next(link["url"] for link in resp["link"] if link["relation"] == "next")
    rest = requests.get(nxt, headers=JSON).json()
    assert [e["resource"]["meta"]["versionId"] for e in rest["entry"]] == ["1"]
    assert rest["entry"][0]["request"]["method"] == "POST"
    system = requests.get(ours.url("_history?_count=1"), headers=JSON).json()
    assert system["type"] == "history" and len(system["entry"]) == 1


def test_transaction_conditional_references_and_if_none_exist(ours):
    """Conditional references resolve inside the transaction (the prepared fast path steps aside)."""
    p = patient()
    pid = requests.post(ours.url("Patient"), json=p, headers=JSON).json()["id"]
    obs = observation(f"Patient?identifier={local_identifier(p)}")
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": obs, "request": {"method": "POST", "url": "Observation"}},
            {
                "resource": patient(),
                "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier={local_identifier(p)}"},
            },
        ],
    }
    resp = requests.post(ours.base, json=bundle, headers=JSON)
    assert resp.status_code == 200, resp.text
    first, second = resp.json()["entry"]
    stored = requests.get(ours.url(first["response"]["location"].split("/_history")[0]), headers=JSON).json()
    assert stored["subject"]["reference"] == f"Patient/{pid}"
    assert second["response"]["status"].startswith("200") and f"Patient/{pid}/" in second["response"]["location"]
    missing = observation("Patient?identifier=https://example.org/none|nobody")
    resp = requests.post(
        ours.base,
        json={
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [{"resource": missing, "request": {"method": "POST", "url": "Observation"}}],
        },
        headers=JSON,
    )
    assert resp.status_code == 404 and resp.json()["resourceType"] == "OperationOutcome"
    assert (
        requests.get(ours.url("Observation?identifier=" + local_identifier(missing)), headers=JSON).json()["total"] == 0
    )
