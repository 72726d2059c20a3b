"""Change notifications in the app (issue 11 item 5): the receiver, the Summary's cache dropped by a
notification, the longer max age while the subscription is alive, and ``thrive app subscribe``.

Real parts: the app served on a loopback port (notifications are POSTed to it by a real HTTP client,
shaped as the store sends them: tests/support/notifications.py), the sandbox authorization server
issuing real Backend Services tokens, and our store as the shared store (it accepts a Subscription as
a resource, which is what the subscribe step needs)."""

from __future__ import annotations

import json
import re
import secrets
import time
import uuid
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from click.testing import CliRunner

from smart_app import create_app, subscribe
from smart_app.cli import app_command
from smart_app.config import parse_config
from smart_app.notification_receiver import MAX_BODY, PATH
from smart_app.shared_changes import EVERYONE, changes
from smart_app.summary import shared_history
from tests.support.app import TEST_ORIGIN, make_launch, test_config
from tests.support.notifications import notification, post, r4b_notification
from tests.support.shared_store_stack import OUR_ODS, OURS, get, put, shared_config, start_stack
from thrive_fhir import canonical
from thrive_fhir.client.notifications import parse
from thrive_fhir.sandbox.server import ServerThread
from thrive_fhir.store.subscriptions import RetryPolicy

SECRET = secrets.token_urlsafe(32)


def _text(resp) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", resp.get_data(as_text=True)))


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    pid = f"yp-{uuid.uuid4().hex[:8]}"
    s = start_stack(
        tmp_path_factory.mktemp("notify-stack"),
        ((pid, (OURS,)),),
        backend_scopes=frozenset({"system/*.rs", "system/Subscription.cruds"}),
    )
    s.pid = pid
    yield s
    s.stop()


def _notify_config(stack, tmp_path, endpoint: str, **extra) -> dict:
    secret_file = tmp_path / "notification-secret"
    secret_file.write_text(SECRET + "\n")
    return shared_config(
        stack, notification_endpoint=endpoint, notification_secret_file=str(secret_file), heartbeat_seconds=30, **extra
    )


@pytest.fixture
def live(tmp_path, stack):
    """The app on a loopback port, its receiver the endpoint it subscribes with."""
    server = ServerThread(name="app")
    endpoint = server.origin + PATH
    app = create_app(
        test_config(tmp_path, ods_code=OUR_ODS, journeys=False, shared_store=_notify_config(stack, tmp_path, endpoint))
    )
    server.start(app.wsgi_app)
    live = type("Live", (), {"app": app, "url": endpoint, "base": server.origin})
    yield live
    server.stop()


def _rows(app) -> dict[str, tuple]:
    with app.extensions["thrive"].changes.engine.connect() as conn:
        return {r.patient_id: (r.received_at, r.event_number) for r in conn.execute(sa.select(changes))}


def _outcome(resp) -> dict:
    assert resp.headers["Content-Type"].startswith("application/fhir+json"), resp.headers["Content-Type"]
    body = resp.json()
    assert body["resourceType"] == "OperationOutcome"
    return body


# --- the receiver -----------------------------------------------------------------------------
def test_the_receiver_needs_the_channel_secret(live):
    event = notification("sub-1", events=[(1, "Task/t1", "Patient/p1")], since_start=1)
    for secret in (None, "", "wrong", SECRET[:-1] + ("A" if SECRET[-1] != "A" else "B"), SECRET + "x"):
        resp = post(live.url, event, secret=secret)
        assert resp.status_code == 401 and _outcome(resp)["issue"][0]["code"] == "login"
    assert _rows(live.app) == {}
    assert post(live.url, event, secret=SECRET).status_code == 200
    assert set(_rows(live.app)) == {"p1"}


def test_handshake_heartbeat_and_events_in_both_shapes_are_recorded(live):
    changes_ = live.app.extensions["thrive"].changes
    assert not changes_.subscription_active(60)
    assert post(live.url, notification("sub-2", "handshake", since_start=0), secret=SECRET).status_code == 200
    assert changes_.subscription_active(60) and _rows(live.app) == {}
    assert post(live.url, notification("sub-2", "heartbeat", since_start=0), secret=SECRET).status_code == 200
    resp = post(
        live.url,
        notification("sub-2", events=[(1, "Task/t1", "Patient/p1"), (2, "Goal/g1", "Patient/p2")], since_start=2),
        secret=SECRET,
    )
    assert resp.status_code == 200 and _outcome(resp)["issue"][0]["severity"] == "information"
    assert (
        post(
            live.url,
            r4b_notification("sub-2", "event-notification", events=[(3, "Observation/o", "Patient/p3")]),
            secret=SECRET,
        ).status_code
        == 200
    )
    rows = _rows(live.app)
    assert {k: v[1] for k, v in rows.items()} == {"p1": 1, "p2": 2, "p3": 3}


def test_a_repeated_event_number_changes_nothing(live):
    event = notification("sub-3", events=[(5, "Task/t1", "Patient/p5")], since_start=5)
    assert post(live.url, notification("sub-3", "handshake", since_start=4), secret=SECRET).status_code == 200
    assert post(live.url, event, secret=SECRET).status_code == 200
    first = _rows(live.app)["p5"]
    time.sleep(0.05)
    assert post(live.url, event, secret=SECRET).status_code == 200  # the store retried a delivery
    assert _rows(live.app)["p5"] == first and EVERYONE not in _rows(live.app)


def test_missed_events_make_every_cached_read_stale(live):
    changes_ = live.app.extensions["thrive"].changes
    assert post(live.url, notification("sub-4", "handshake", since_start=0), secret=SECRET).status_code == 200
    assert post(live.url, notification("sub-4", events=[(1, "Task/a", "Patient/p1")]), secret=SECRET).status_code == 200
    before = time.time()
    assert not changes_.changed_after(["someone-else"], before)
    assert post(live.url, notification("sub-4", events=[(4, "Task/b", "Patient/p4")]), secret=SECRET).status_code == 200
    assert EVERYONE in _rows(live.app) and changes_.changed_after(["someone-else"], before)
    # a heartbeat that counts more events than were received is a gap too
    later = time.time()
    assert post(live.url, notification("sub-4", "heartbeat", since_start=9), secret=SECRET).status_code == 200
    assert changes_.changed_after(["someone-else"], later)


def test_an_event_naming_no_young_person_makes_every_read_stale(live):
    before = time.time()
    assert post(live.url, notification("sub-5", events=[(1, "Task/t9", None)]), secret=SECRET).status_code == 200
    assert live.app.extensions["thrive"].changes.changed_after(["anyone"], before)


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"not json", "application/fhir+json", 400),
        (b'{"resourceType": "Patient"}', "application/fhir+json", 400),
        (b"[" * 100_000 + b"]" * 100_000, "application/fhir+json", 400),
        (
            b'{"resourceType": "Bundle", "type": "history", "entry": [{"resource": {"resourceType": "Parameters", "parameter": [{"name": "type", "valueCode": "handshake"}, {"name": "topic", "valueCanonical": "https://elsewhere.example/topic"}]}}]}',
            "application/fhir+json",
            400,
        ),
        (b"{}", "text/plain", 415),
        (b"\xff\xfe\x00", "application/json", 400),
    ],
)
def test_bad_input_is_an_operation_outcome_never_a_500(live, body, content_type, status):
    import requests

    resp = requests.post(
        live.url, data=body, headers={"Content-Type": content_type, "Authorization": f"Bearer {SECRET}"}, timeout=10
    )
    assert resp.status_code == status, resp.text[:300]
    _outcome(resp)


def test_an_oversized_body_and_other_methods_are_refused(live):
    import requests

    huge = json.dumps({"resourceType": "Bundle", "type": "history", "pad": "x" * MAX_BODY})
    resp = post(live.url, huge, secret=SECRET)
    assert resp.status_code == 413 and _outcome(resp)
    resp = requests.get(live.url, timeout=10)
    assert resp.status_code == 405 and _outcome(resp)


def test_without_notifications_configured_the_receiver_is_not_there(tmp_path):
    app = create_app(test_config(tmp_path, journeys=False))
    resp = app.test_client().post(PATH, data="{}", headers={"Content-Type": "application/fhir+json"})
    assert resp.status_code == 404 and resp.get_json()["resourceType"] == "OperationOutcome"


# --- the Summary's cache ------------------------------------------------------------------------
def _task_line(page: str) -> str:
    return re.search(r"School counselling \(example\).{0,400}", page).group(0)


def test_a_notification_shows_the_change_on_the_next_summary_not_after_30_seconds(live, stack):
    launch = make_launch(live.app, patient_id=stack.pid)
    client = launch.client()
    page = _text(client.get(launch.url("summary"), base_url=TEST_ORIGIN))
    assert "Accepted" in _task_line(page)
    # the agency completes the referral in the shared store
    task = get(stack, f"Task/{stack.plans[stack.pid]['task']}")
    put(stack, {k: v for k, v in task.items() if k != "meta"} | {"status": "completed"})
    page = _text(client.get(launch.url("summary"), base_url=TEST_ORIGIN))
    assert "Accepted" in _task_line(page)  # still the launch's cached read (the 30 s rule)
    note = notification("sub-6", events=[(1, f"Task/{task['id']}", f"Patient/{stack.pid}")], since_start=1)
    assert post(live.url, note, secret=SECRET).status_code == 200
    page = _text(client.get(launch.url("summary"), base_url=TEST_ORIGIN))
    assert "Completed" in _task_line(page) and "Accepted" not in _task_line(page)


def test_with_an_active_subscription_the_cache_may_live_long(live):
    reader = shared_history.reader_for(live.app)
    now = time.time()
    assert shared_history.max_age(live.app, reader, now) == 30  # nothing heard from the store yet
    assert post(live.url, notification("sub-7", "heartbeat", since_start=0), secret=SECRET).status_code == 200
    assert shared_history.max_age(live.app, reader, time.time()) == 900
    # two heartbeat periods (30 s) and 15 s without a word: the subscription is not trusted any more
    assert shared_history.max_age(live.app, reader, time.time() + 2 * 30 + 16) == 30


# --- subscribing ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def subscribe_stack(tmp_path_factory):
    """A store that lets Subscriptions deliver to loopback port 9 (nothing listens there: the
    handshake fails at once, and the second try, 1.5 to 3 s later, puts the Subscription in ``error``). Our
    deployment is not a custodian: the store shows a Subscription only to the client that made it,
    so these tests read it with the deployment's own client."""
    s = start_stack(
        tmp_path_factory.mktemp("subscribe-stack"),
        (),
        backend_scopes=frozenset({"system/*.rs", "system/Subscription.cruds"}),
        subscription_endpoints=("http://127.0.0.1:9/",),
        subscription_retry=RetryPolicy(base=3.0, cap=3.0, max_failures=2, timeout=1.0),
    )
    yield s
    s.stop()


def _cli_config(tmp_path, stack, endpoint: str) -> str:
    path = tmp_path / "app.json"
    cfg = test_config(
        tmp_path, ods_code=OUR_ODS, journeys=False, shared_store=_notify_config(stack, tmp_path, endpoint)
    )
    path.write_text(json.dumps(cfg))
    return str(path)


def _subscribe(config: str):
    result = CliRunner().invoke(app_command, ["subscribe", "--config", config])
    return result.exit_code, result.output.strip()


def test_subscribe_creates_once_finds_it_again_and_re_requests_one_in_error(tmp_path, subscribe_stack):
    stack = subscribe_stack
    endpoint = f"http://127.0.0.1:9/{uuid.uuid4().hex}/notifications/shared-plan"
    config = _cli_config(tmp_path, stack, endpoint)
    code, out = _subscribe(config)
    assert code == 0, out
    sub_id = re.fullmatch(r"Subscription/([A-Za-z0-9\-.]+): created \(status \w+\)", out).group(1)
    cfg = parse_config(json.loads(Path(config).read_text())).shared_store
    ours = subscribe.client_for(cfg)
    sub = ours.request("GET", f"Subscription/{sub_id}").body
    assert sub["criteria"] == canonical.TOPIC_SHARED_PLAN_CHANGED
    channel = sub["channel"]
    assert channel["type"] == "rest-hook" and channel["endpoint"] == endpoint
    assert channel["header"] == ["Authorization: (hidden)"]  # the store never reads the secret back
    assert channel["_payload"]["extension"][0] == {
        "url": f"{canonical.BACKPORT_SD}/backport-payload-content",
        "valueCode": "id-only",
    }
    assert channel["extension"][0]["valueUnsignedInt"] == 30
    # anyone else (here the store operator's token) is told it does not exist
    assert (
        requests.get(
            f"{stack.base}/Subscription/{sub_id}", headers={"Authorization": f"Bearer {stack.admin()}"}, timeout=10
        ).status_code
        == 404
    )
    # again, before the store's second try: found by its endpoint, nothing new made
    code, out = _subscribe(config)
    assert code == 0 and out.startswith(f"Subscription/{sub_id}: existing"), out
    # the store gives up its handshake (nothing listens at port 9): asked for again, same Subscription
    deadline = time.time() + 20
    while ours.request("GET", f"Subscription/{sub_id}").body["status"] != "error" and time.time() < deadline:
        time.sleep(0.1)
    assert ours.request("GET", f"Subscription/{sub_id}").body["status"] == "error"
    code, out = _subscribe(config)
    assert code == 0 and out.startswith(f"Subscription/{sub_id}: re-requested"), out
    assert ours.request("GET", f"Subscription/{sub_id}").body["status"] in ("requested", "active", "error")
    mine = [
        e["resource"]["id"]
        for e in ours.request("GET", "Subscription?_count=200").body.get("entry", [])
        if e["resource"]["channel"]["endpoint"] == endpoint
    ]
    assert mine == [sub_id]


def test_subscribe_without_notification_settings_or_store_is_one_line_and_non_zero(tmp_path, stack):
    path = tmp_path / "plain.json"
    path.write_text(json.dumps(test_config(tmp_path, shared_store=shared_config(stack))))
    code, out = _subscribe(str(path))
    assert code != 0 and "notification_endpoint" in out and len(out.splitlines()) == 1
    down = tmp_path / "down.json"
    cfg = json.loads(_cli_config(tmp_path, stack, "http://127.0.0.1:9/n") and (tmp_path / "app.json").read_text())
    cfg["shared_store"]["fhir_base"] = "http://127.0.0.1:9/fhir"
    cfg["shared_store"]["timeout_seconds"] = 2
    down.write_text(json.dumps(cfg))
    code, out = _subscribe(str(down))
    assert code != 0 and len(out.splitlines()) == 1 and "Traceback" not in out, out


# --- configuration ----------------------------------------------------------------------------
def test_notification_settings_are_checked(tmp_path, stack):
    from smart_app.config import ConfigError, apply_environment, parse_config

    good = _notify_config(stack, tmp_path, "https://thrive.example.nhs.uk/notifications/shared-plan")
    cfg = parse_config(test_config(tmp_path, shared_store=good)).shared_store
    assert cfg.notifications and cfg.notification_secret == SECRET and cfg.heartbeat_seconds == 30
    assert SECRET not in repr(cfg)  # never printed with the config
    short = tmp_path / "short-secret"
    short.write_text("too-short")
    spaced = tmp_path / "spaced-secret"
    spaced.write_text("a" * 20 + " \r\nX-Injected: 1" + "b" * 20)
    for bad in (
        {"notification_secret_file": str(short)},
        {"notification_secret_file": str(spaced)},
        {"notification_secret_file": str(tmp_path / "missing")},
        {"notification_endpoint": "http://thrive.example.nhs.uk/notifications/shared-plan"},  # not https
        {"notification_endpoint": None},
        {"heartbeat_seconds": 1},
        {"subscription_scope": "system/*.cruds"},
    ):
        with pytest.raises(ConfigError):
            parse_config(test_config(tmp_path, shared_store={**good, **bad}))
    # the environment names the secret file and endpoint of a [shared_store] section
    raw = apply_environment(
        {"shared_store": shared_config(stack)},
        {
            "THRIVE_APP_SHARED_STORE_NOTIFICATION_SECRET_FILE": good["notification_secret_file"],
            "THRIVE_APP_SHARED_STORE_NOTIFICATION_ENDPOINT": "https://app.example/notifications/shared-plan",
        },
    )
    assert parse_config(test_config(tmp_path, **raw)).shared_store.notifications


def test_serve_subscribes_on_start_and_not_again_while_notifications_arrive(tmp_path, subscribe_stack):
    """``thrive app serve``'s background loop (smart_app.subscribe.keep_subscribed)."""
    import threading

    endpoint = f"http://127.0.0.1:9/{uuid.uuid4().hex}/notifications/shared-plan"
    cfg = parse_config(
        test_config(tmp_path, shared_store=_notify_config(subscribe_stack, tmp_path, endpoint))
    ).shared_store
    app = create_app(test_config(tmp_path, journeys=False))
    changes_ = app.extensions["thrive"].changes
    calls: list[str] = []
    real_ensure = subscribe.ensure

    def counting(c):
        done = real_ensure(c)
        calls.append(done.action)
        return done

    stop = threading.Event()
    subscribe.ensure, saved = counting, subscribe.ensure
    try:
        loop = threading.Thread(
            target=subscribe.keep_subscribed, args=(cfg, changes_, stop), kwargs={"every": 0.2, "first": 0.0}
        )
        loop.start()
        deadline = time.time() + 20
        while not calls and time.time() < deadline:
            time.sleep(0.05)
        assert calls == ["created"]
        changes_.record(parse(notification("sub-x", "heartbeat", since_start=0)))
        time.sleep(0.6)  # several loop turns: the subscription is alive, nothing is asked
        assert len(calls) in (1, 2)  # at most one turn may have started before the heartbeat landed
    finally:
        stop.set()
        loop.join(5)
        subscribe.ensure = saved
    mine = [
        e["resource"]["id"]
        for e in subscribe.client_for(cfg).request("GET", "Subscription?_count=200").body.get("entry", [])
        if e["resource"]["channel"]["endpoint"] == endpoint
    ]
    assert len(mine) == 1


def test_subscribe_says_so_when_the_store_put_the_subscription_in_error(tmp_path, subscribe_stack, monkeypatch):
    """Error branch: the store could not deliver its handshake (the app is not serving there)."""

    monkeypatch.setattr(subscribe, "ensure", lambda cfg: subscribe.Subscribed("sub-e", "error", "created"))
    code, out = _subscribe(_cli_config(tmp_path, subscribe_stack, "http://127.0.0.1:9/notifications/shared-plan"))
    assert code != 0 and "Subscription/sub-e is in error" in out and "is the app serving there?" in out


def test_a_database_failure_is_a_503_the_store_retries_not_a_500(live, monkeypatch):
    """Error branch: the app's database cannot record the notification just now."""
    from sqlalchemy.exc import OperationalError

    def broken(note, **kw):
        raise OperationalError("INSERT", {}, Exception("database is down"))

    monkeypatch.setattr(live.app.extensions["thrive"].changes, "record", broken)
    resp = post(live.url, notification("sub-db", events=[(1, "Task/t", "Patient/p")]), secret=SECRET)
    assert resp.status_code == 503 and _outcome(resp)["issue"][0]["code"] == "transient"
