"""Topic-based Subscriptions against the real store (waitress on loopback) and a real loopback
receiver, on SQLite and PostgreSQL: handshake, heartbeat, id-only notifications, $status, $events,
filters, the consent rule, retries to ``error`` and recovery, and who may see a Subscription."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest
import requests

from tests.support.consent_data import (
    AGENCY_SCOPES,
    CUSTODIAN,
    GRANTS,
    ORG_A,
    WORKER_A,
    auth,
    consent,
    day,
    instant,
    now_utc,
    task,
)
from tests.support.notify_receiver import Hook, NotifyReceiver, subscription
from tests.support.servers import create_pg_database
from tests.support.store_servers import Server, start_ours
from thrive_fhir.canonical import TOPIC_SHARED_PLAN_CHANGED
from thrive_fhir.smart_scopes import Grant
from thrive_fhir.store.subscriptions import RetryPolicy

TOKENS = {
    **GRANTS,
    # the agency app, allowed to keep a Subscription of its own
    "agency-a-subs": Grant.from_scope_string(
        "thrive-app", AGENCY_SCOPES + " user/Subscription.cruds", user=WORKER_A, organization=ORG_A
    ),
    # another deployment client of the custodian: not the creator of the custodian app's subscriptions
    "custodian-other": Grant.from_scope_string("trust-reporting", "system/*.cruds", organization=CUSTODIAN),
}
POLICY = RetryPolicy(base=0.2, cap=1.0, max_failures=3, timeout=2.0)


@pytest.fixture(scope="module")
def receiver():
    with NotifyReceiver() as rx:
        yield rx


def _start(database_url: str, rx: NotifyReceiver) -> Server:
    return start_ours(
        database_url,
        validate_on_write=False,
        token_verifier=TOKENS.get,
        consent_custodians=[CUSTODIAN],
        subscription_endpoints=[rx.origin + "/hooks/"],
        subscription_retry=POLICY,
        subscription_poll=0.05,
    )


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request, receiver, tmp_path_factory):
    if request.param == "sqlite":
        server = _start(f"sqlite:///{tmp_path_factory.mktemp('subs') / 'store.db'}", receiver)
        yield server
        server.stop()
    else:
        url, drop = create_pg_database()
        server = _start(url, receiver)
        yield server
        server.stop()
        drop()


def subscribe(store: Server, hook: Hook, token: str = "custodian", **kwargs) -> str:
    resp = requests.post(
        store.url("Subscription"), json=subscription(hook.url, **kwargs), headers=auth(token), timeout=10
    )
    assert resp.status_code == 201, resp.text
    sid = resp.json()["id"]
    hook.wait(lambda h: h.got("handshake"))
    return sid


def put(store: Server, resource: dict, token: str = "custodian") -> None:
    resp = requests.put(
        store.url(f"{resource['resourceType']}/{resource['id']}"), json=resource, headers=auth(token), timeout=10
    )
    assert resp.status_code in (200, 201), resp.text


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# --- handshake, notifications, heartbeat --------------------------------------------------------


def test_handshake_then_active_and_an_id_only_notification_without_resources(store, receiver):
    hook = Hook(receiver)
    resp = requests.post(store.url("Subscription"), json=subscription(hook.url), headers=auth("custodian"), timeout=10)
    assert resp.status_code == 201
    created = resp.json()
    assert created["status"] == "requested"
    assert created["channel"]["header"] == ["Authorization: (hidden)"]  # the secret is never read back
    sid = created["id"]
    handshake = hook.wait(lambda h: h.got("handshake"))[0]
    assert handshake.headers["Authorization"] == "Bearer s3cret"
    assert len(handshake.body["entry"]) == 1
    deadline = time.time() + 5
    while (
        requests.get(store.url(f"Subscription/{sid}"), headers=auth("custodian"), timeout=10).json()["status"]
        != "active"
    ):
        assert time.time() < deadline, "never became active"
        time.sleep(0.05)

    pid = new_id("yp")
    tid = new_id("task")
    put(store, {"resourceType": "Patient", "id": pid})
    put(store, task(tid, pid, ORG_A))
    hook.wait(lambda h: len(h.events()) >= 2)
    assert hook.events()[:2] == [(1, f"Patient/{pid}", f"Patient/{pid}"), (2, f"Task/{tid}", f"Patient/{pid}")]
    bundle = hook.got("event-notification")[-1].body
    assert bundle["type"] == "history"
    status = bundle["entry"][0]["resource"]
    assert status["resourceType"] == "Parameters"
    names = [p["name"] for p in status["parameter"]]
    assert names[:5] == ["subscription", "topic", "status", "type", "events-since-subscription-start"]
    assert status["parameter"][0]["valueReference"]["reference"] == f"{store.base}/Subscription/{sid}"
    assert status["parameter"][1]["valueCanonical"] == TOPIC_SHARED_PLAN_CHANGED
    for entry in (e for r in hook.got("event-notification") for e in r.body["entry"][1:]):
        assert "resource" not in entry  # id-only: no health data travels
        assert entry["fullUrl"].startswith(store.base + "/")
        assert set(entry) == {"fullUrl", "request", "response"}


def test_audit_and_provenance_writes_raise_no_event(store, receiver):
    hook = Hook(receiver)
    subscribe(store, hook)
    pid = new_id("yp")
    put(store, {"resourceType": "Patient", "id": pid})
    put(
        store,
        {
            "resourceType": "Provenance",
            "id": new_id("prov"),
            "target": [{"reference": f"Patient/{pid}"}],
            "recorded": "2025-03-04T16:10:00Z",
            "agent": [{"who": {"reference": CUSTODIAN}}],
        },
    )
    put(
        store,
        {
            "resourceType": "Observation",
            "id": new_id("obs"),
            "status": "final",
            "code": {"text": "x"},
            "subject": {"reference": f"Patient/{pid}"},
        },
    )
    hook.wait(lambda h: len(h.events()) >= 2)
    time.sleep(0.3)
    assert [focus.split("/")[0] for _n, focus, _p in hook.events()] == ["Patient", "Observation"]


def test_heartbeat_on_its_period(store, receiver):
    hook = Hook(receiver)
    subscribe(store, hook, heartbeat=1)
    beats = hook.wait(lambda h: len(h.got("heartbeat")) >= 2, timeout=6)
    beats = hook.got("heartbeat")
    assert 0.7 <= beats[1].at - beats[0].at <= 2.5
    assert len(beats[0].body["entry"]) == 1


def test_filters_narrow_to_one_young_person_and_type(store, receiver):
    p1, p2 = new_id("yp"), new_id("yp")
    only_p1, only_tasks_p1 = Hook(receiver), Hook(receiver)
    subscribe(store, only_p1, filters=[f"Patient?_id={p1}"])
    subscribe(store, only_tasks_p1, filters=[f"Task?patient=Patient/{p1}"])
    t1 = new_id("task")
    for resource in (
        {"resourceType": "Patient", "id": p1},
        {"resourceType": "Patient", "id": p2},
        task(new_id("task"), p2, ORG_A),
        task(t1, p1, ORG_A),
    ):
        put(store, resource)
    only_p1.wait(lambda h: len(h.events()) >= 2)
    only_tasks_p1.wait(lambda h: len(h.events()) >= 1)
    time.sleep(0.3)
    assert [e[1] for e in only_p1.events()] == [f"Patient/{p1}", f"Task/{t1}"]
    assert only_tasks_p1.events() == [(1, f"Task/{t1}", f"Patient/{p1}")]


# --- $status and $events -------------------------------------------------------------------------


def test_status_and_events_catch_up(store, receiver):
    hook = Hook(receiver)
    sid = subscribe(store, hook)
    pid = new_id("yp")
    ids = [new_id("task") for _ in range(4)]
    for tid in ids:
        put(store, task(tid, pid, ORG_A))
    hook.wait(lambda h: len(h.events()) >= 4)

    status = requests.get(store.url(f"Subscription/{sid}/$status"), headers=auth("custodian"), timeout=10)
    assert status.status_code == 200
    bundle = status.json()
    assert bundle["type"] == "searchset"
    params = {p["name"]: p for p in bundle["entry"][0]["resource"]["parameter"]}
    assert params["type"]["valueCode"] == "query-status"
    assert params["status"]["valueCode"] == "active"
    assert params["events-since-subscription-start"]["valueString"] == "4"

    got = requests.get(
        store.url(f"Subscription/{sid}/$events?eventsSinceNumber=2&eventsUntilNumber=3"),
        headers=auth("custodian"),
        timeout=10,
    ).json()
    assert got["type"] == "history"
    events = [p for p in got["entry"][0]["resource"]["parameter"] if p["name"] == "notification-event"]
    assert [e["part"][0]["valueString"] for e in events] == ["2", "3"]
    assert [e["fullUrl"] for e in got["entry"][1:]] == [f"{store.base}/Task/{ids[1]}", f"{store.base}/Task/{ids[2]}"]
    assert all("resource" not in e for e in got["entry"][1:])
    kind = next(p for p in got["entry"][0]["resource"]["parameter"] if p["name"] == "type")
    assert kind["valueCode"] == "query-event"

    posted = requests.post(
        store.url(f"Subscription/{sid}/$events"),
        json={"resourceType": "Parameters", "parameter": [{"name": "eventsSinceNumber", "valueString": "4"}]},
        headers=auth("custodian"),
        timeout=10,
    ).json()
    assert [e["fullUrl"] for e in posted["entry"][1:]] == [f"{store.base}/Task/{ids[3]}"]


def test_only_the_creator_sees_a_subscription(store, receiver):
    hook = Hook(receiver)
    sid = subscribe(store, hook)
    missing = str(uuid.uuid4())
    for path in ("", "/$status", "/$events"):
        for token in ("custodian-other", "agency-a-subs"):
            theirs = requests.get(store.url(f"Subscription/{sid}{path}"), headers=auth(token), timeout=10)
            absent = requests.get(store.url(f"Subscription/{missing}{path}"), headers=auth(token), timeout=10)
            assert theirs.status_code == absent.status_code == 404
            assert theirs.text.replace(sid, "X") == absent.text.replace(missing, "X")
    assert (
        requests.delete(store.url(f"Subscription/{sid}"), headers=auth("custodian-other"), timeout=10).status_code
        == 404
    )
    listed = requests.get(store.url("Subscription"), headers=auth("custodian-other"), timeout=10).json()
    assert sid not in [e["resource"]["id"] for e in listed.get("entry", [])]
    mine = requests.get(store.url(f"Subscription?_id={sid}"), headers=auth("custodian"), timeout=10).json()
    assert [e["resource"]["id"] for e in mine["entry"]] == [sid]
    everything = requests.get(store.url("_history?_count=1000"), headers=auth("custodian-other"), timeout=10).json()
    assert not [e for e in everything.get("entry", []) if "/Subscription/" in e["fullUrl"]]
    own_history = requests.get(store.url(f"Subscription/{sid}/_history"), headers=auth("custodian"), timeout=10)
    assert own_history.status_code == 200 and own_history.json()["entry"][0]["resource"]["id"] == sid


# --- the consent rule ---------------------------------------------------------------------------


def test_agency_is_notified_only_while_the_young_person_is_shared_with_it(store, receiver):
    agency, trust = Hook(receiver), Hook(receiver)
    subscribe(store, agency, token="agency-a-subs")
    subscribe(store, trust)  # sees everything: the barrier showing each write was planned
    pid = new_id("yp")

    def write_task_and_settle() -> str:
        tid = new_id("task")
        put(store, task(tid, pid, ORG_A))
        trust.wait(lambda h: f"Task/{tid}" in [e[1] for e in h.events()])
        time.sleep(0.2)
        return tid

    before = write_task_and_settle()
    assert agency.events() == []  # not shared: the agency never learns this young person changed

    cid = new_id("consent")
    put(store, consent(cid, pid, [ORG_A], start=day(-1)))
    shared = write_task_and_settle()
    agency.wait(lambda h: f"Task/{shared}" in [e[1] for e in h.events()])
    assert f"Task/{before}" not in [e[1] for e in agency.events()]
    assert all(p == f"Patient/{pid}" for _n, _f, p in agency.events())

    put(store, consent(cid, pid, [ORG_A], status="inactive", start=day(-1)))  # withdrawn
    after = write_task_and_settle()
    assert f"Task/{after}" not in [e[1] for e in agency.events()]
    numbers = [n for n, _f, _p in agency.events()]
    assert numbers == list(range(1, len(numbers) + 1))  # its own numbering, with no gaps


# --- failures -------------------------------------------------------------------------------------


def test_failing_receiver_backs_off_then_error_and_recovers_on_requested(store, receiver):
    hook = Hook(receiver)
    sid = subscribe(store, hook)
    receiver.answer(500, path=hook.path)
    tid = new_id("task")
    put(store, task(tid, new_id("yp"), ORG_A))
    hook.wait(lambda h: len(h.got("event-notification")) >= 3, timeout=10)
    tries = [r.at for r in hook.got("event-notification")]
    assert tries[1] - tries[0] >= POLICY.base * 0.5  # back-off: base * [0.5, 1)
    assert tries[2] - tries[1] >= POLICY.base * 2 * 0.5  # doubled

    deadline = time.time() + 5
    while True:
        resource = requests.get(store.url(f"Subscription/{sid}"), headers=auth("custodian"), timeout=10).json()
        if resource["status"] == "error":
            break
        assert time.time() < deadline, "never went to error"
        time.sleep(0.05)
    assert "Delivery failed 3 times" in resource["error"]
    time.sleep(0.5)
    assert len(hook.got("event-notification")) == 3  # nothing more is sent in error

    receiver.answer(200, path=hook.path)
    resource["status"] = "requested"
    del resource["error"]
    resp = requests.put(store.url(f"Subscription/{sid}"), json=resource, headers=auth("custodian"), timeout=10)
    assert resp.status_code == 200, resp.text
    hook.wait(lambda h: len(h.got("handshake")) >= 2)
    hook.wait(lambda h: len(h.got("event-notification")) >= 4)
    last = hook.got("event-notification")[-1]
    assert last.event_numbers == [1]  # the unacknowledged event, again, with its number
    assert last.headers["Authorization"] == "Bearer s3cret"  # "(hidden)" sent back kept the secret


# --- refused subscriptions ------------------------------------------------------------------------


def _refused(store: Server, body: dict, status: int, words: str, token: str = "custodian") -> None:
    resp = requests.post(store.url("Subscription"), json=body, headers=auth(token), timeout=10)
    assert resp.status_code == status, resp.text
    outcome = resp.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert words in outcome["issue"][0]["diagnostics"]


def test_invalid_subscriptions_are_refused_with_an_operation_outcome(store, receiver):
    hook = Hook(receiver)
    good = subscription(hook.url)
    _refused(store, {**good, "criteria": "Observation?code=x"}, 422, "criteria must be the topic")
    _refused(store, {**good, "channel": {**good["channel"], "type": "websocket"}}, 422, "rest-hook")
    _refused(store, subscription(hook.url, content="full-resource"), 422, "never carry health data")
    _refused(store, subscription(hook.url, filters=["Observation?code=abc"]), 422, "Filter criteria")
    _refused(store, subscription(hook.url, headers=["Authorization: a\r\nX-Evil: 1"]), 400, "one line")
    _refused(store, subscription(hook.url, headers=["Host: elsewhere"]), 422, "may not set Host")
    _refused(store, {**good, "status": "active"}, 422, "status must be 'requested'")
    _refused(store, {"resourceType": "Patient"}, 400, "Subscription resource")
    # no scope for Subscriptions: the agency's ordinary sign-in
    resp = requests.post(store.url("Subscription"), json=good, headers=auth("agency-a"), timeout=10)
    assert resp.status_code == 403
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": good, "request": {"method": "POST", "url": "Subscription"}}],
    }
    resp = requests.post(store.url(""), json=bundle, headers=auth("custodian"), timeout=10)
    assert resp.status_code == 400 and "not in a Bundle" in resp.text


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://127.0.0.1:{port}/elsewhere",  # outside the allowed path
        "http://127.0.0.1:1/hooks/x",  # another port on loopback
        "http://localhost:{port}/hooks/x",  # another host name for loopback
        "https://127.0.0.1:{port}/hooks/x",  # another scheme
        "http://127.0.0.1:{port}.evil.test/hooks/x",
        "http://user:pw@127.0.0.1:{port}/hooks/x",  # credentials in the URL
        "http://169.254.169.254/latest/meta-data/",  # the cloud metadata service
        "file:///etc/passwd",
        "not a url",
    ],
)
def test_endpoints_off_the_allowlist_are_refused(store, receiver, endpoint):
    port = receiver.server.server_address[1]
    _refused(store, subscription(endpoint.format(port=port)), 422, "endpoint")


def test_a_subscription_is_switched_off_at_its_end(store, receiver):
    ending, trust = Hook(receiver), Hook(receiver)
    body = subscription(ending.url)
    body["end"] = instant(now_utc() + timedelta(seconds=3))
    resp = requests.post(store.url("Subscription"), json=body, headers=auth("custodian"), timeout=10)
    assert resp.status_code == 201, resp.text
    sid = resp.json()["id"]
    ending.wait(lambda h: h.got("handshake"))
    subscribe(store, trust)
    pid = new_id("yp")
    put(store, {"resourceType": "Patient", "id": pid})
    ending.wait(lambda h: len(h.events()) == 1)
    deadline = time.time() + 10
    while (
        requests.get(store.url(f"Subscription/{sid}"), headers=auth("custodian"), timeout=10).json()["status"] != "off"
    ):
        assert time.time() < deadline, "not switched off at its end"
        time.sleep(0.1)
    tid = new_id("task")
    put(store, task(tid, pid, ORG_A))
    trust.wait(lambda h: f"Task/{tid}" in [e[1] for e in h.events()])
    time.sleep(0.3)
    assert len(ending.events()) == 1

    past = subscription(ending.url)
    past["end"] = "2001-01-01T00:00:00Z"
    _refused(store, past, 422, "end is in the past")
