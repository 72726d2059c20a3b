"""Delivery across store processes sharing one database, and the notification's shape as a unit.

Two store apps (each with its own engine, pool and dispatcher, as two ``thrive store serve``
processes would have) write to one database while both deliver: every event reaches the
subscription once, numbered 1..N without gaps or repeats (the planner's advisory lock and the
subscription lease, ``FOR UPDATE SKIP LOCKED`` on PostgreSQL)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest
import requests
from sqlalchemy import text

from tests.support.notify_receiver import Hook, NotifyReceiver, subscription
from tests.support.servers import OwnStoreProcess, create_pg_database
from tests.support.store_servers import start_ours
from thrive_fhir.canonical import BACKPORT_SD
from thrive_fhir.canonical import TOPIC_SHARED_PLAN_CHANGED as TOPIC
from thrive_fhir.store.subscriptions.dispatcher import RetryPolicy
from thrive_fhir.store.subscriptions.notification import Event, notification_bundle
from thrive_fhir.store.subscriptions.spec import _url_parts, covers

JSON = {"Content-Type": "application/fhir+json"}


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_two_store_processes_deliver_each_event_once_in_number_order(backend, tmp_path):
    drop = None
    if backend == "postgres":
        url, drop = create_pg_database()
    else:
        url = f"sqlite:///{tmp_path / 'store.db'}"
    with NotifyReceiver() as rx:
        options = {
            "validate_on_write": False,
            "subscription_endpoints": [rx.origin + "/hooks/"],
            "subscription_retry": RetryPolicy(base=0.1, cap=0.5, max_failures=5),
            "subscription_poll": 0.05,
        }
        one = start_ours(url, **options)
        two = start_ours(url, **options)
        try:
            hook = Hook(rx)
            resp = requests.post(one.url("Subscription"), json=subscription(hook.url), headers=JSON, timeout=10)
            assert resp.status_code == 201
            hook.wait(lambda h: h.got("handshake"))
            writes = [(one if i % 2 else two, f"Patient/p{i % 7}-{uuid.uuid4().hex[:6]}") for i in range(120)]

            def write(item):
                server, ref = item
                rid = ref.split("/")[1]
                r = requests.put(server.url(ref), json={"resourceType": "Patient", "id": rid}, headers=JSON, timeout=30)
                assert r.status_code == 201, r.text
                return ref

            with ThreadPoolExecutor(8) as pool:
                written = set(pool.map(write, writes))
            hook.wait(lambda h: len(h.events()) >= len(written), timeout=30)
            events = hook.events()
            assert sorted(n for n, _f, _p in events) == list(range(1, len(written) + 1))  # once each, no gaps
            assert {f for _n, f, _p in events} == written
            numbers_in_arrival_order = [n for r in hook.got("event-notification") for n in r.event_numbers]
            assert numbers_in_arrival_order == sorted(numbers_in_arrival_order)  # one deliverer at a time
        finally:
            one.stop()
            two.stop()
            if drop:
                drop()


def test_id_only_notification_never_holds_a_resource_and_empty_holds_no_reference():
    events = [
        Event(7, datetime(2025, 3, 4, 16, 10), "Task", "t1", 3, "PUT", "yp1"),
        Event(8, datetime(2025, 3, 4, 16, 11), "Observation", "o1", 1, "POST", "yp1"),
        Event(9, datetime(2025, 3, 4, 16, 12), "Goal", "g1", 2, "DELETE", "yp1"),
    ]
    bundle = notification_bundle("https://store.example", "s1", "active", "event-notification", 9, events, "id-only")
    assert bundle["type"] == "history"
    assert [e["fullUrl"] for e in bundle["entry"][1:]] == [
        "https://store.example/Task/t1",
        "https://store.example/Observation/o1",
        "https://store.example/Goal/g1",
    ]
    assert all("resource" not in e for e in bundle["entry"][1:])
    assert [e["request"]["method"] for e in bundle["entry"][1:]] == ["PUT", "POST", "DELETE"]
    assert [e["response"]["status"] for e in bundle["entry"][1:]] == ["200", "201", "204"]
    params = bundle["entry"][0]["resource"]["parameter"]
    notified = [p for p in params if p["name"] == "notification-event"]
    assert [[q["name"] for q in p["part"]] for p in notified] == [
        ["event-number", "timestamp", "focus", "additional-context"]
    ] * 3

    empty = notification_bundle("https://store.example", "s1", "active", "event-notification", 9, events, "empty")
    assert len(empty["entry"]) == 1
    text = str(empty)
    assert "Task/t1" not in text and "yp1" not in text


@pytest.mark.parametrize(
    ("prefix", "endpoint", "allowed"),
    [
        ("https://app.example.org/notify/", "https://app.example.org/notify/abc", True),
        ("https://app.example.org/notify", "https://app.example.org/notify/abc", True),
        ("https://app.example.org/notify", "https://app.example.org/notifyx", False),
        ("https://app.example.org", "https://app.example.org.evil.test/", False),
        ("https://app.example.org", "https://APP.example.org:443/x", True),
        ("https://app.example.org", "http://app.example.org/x", False),
        ("https://app.example.org", "https://app.example.org:8443/x", False),
    ],
)
def test_allowlist_compares_parsed_urls_not_strings(prefix, endpoint, allowed):
    parts = _url_parts(endpoint)
    assert parts is not None
    assert covers(prefix, parts) is allowed


def test_retry_delay_doubles_with_jitter_up_to_the_cap():
    policy = RetryPolicy(base=1.0, cap=8.0)
    for failures, (low, high) in {1: (0.5, 1.0), 2: (1.0, 2.0), 3: (2.0, 4.0), 6: (4.0, 8.0)}.items():
        delays = [policy.delay(failures) for _ in range(200)]
        assert all(low <= d < high for d in delays)
        assert len(set(delays)) > 1  # jittered


def test_thrive_store_serve_delivers_and_refuses_a_bad_allowlist(tmp_path):
    """The CLI path: ``--subscription-endpoint`` on a real ``thrive store serve`` process."""
    with NotifyReceiver() as rx:
        server = OwnStoreProcess(
            tmp_path / "store", validate=False, extra=("--subscription-endpoint", rx.origin + "/hooks/")
        ).start()
        try:
            meta = requests.get(f"{server.base_url}/metadata", timeout=10).json()
            assert meta["rest"][0]["extension"] == [
                {"url": f"{BACKPORT_SD}/capabilitystatement-subscriptiontopic-canonical", "valueCanonical": TOPIC}
            ]
            sub = next(r for r in meta["rest"][0]["resource"] if r["type"] == "Subscription")
            assert {o["name"] for o in sub["operation"]} == {"status", "events"}
            hook = Hook(rx)
            resp = requests.post(
                f"{server.base_url}/Subscription", json=subscription(hook.url), headers=JSON, timeout=10
            )
            assert resp.status_code == 201
            hook.wait(lambda h: h.got("handshake"))
            requests.put(
                f"{server.base_url}/Patient/cli-1",
                json={"resourceType": "Patient", "id": "cli-1"},
                headers=JSON,
                timeout=10,
            )
            hook.wait(lambda h: h.events() == [(1, "Patient/cli-1", "Patient/cli-1")])
        finally:
            server.stop()
    thrive = str(Path(sys.executable).parent / "thrive")
    bad = subprocess.run(
        [thrive, "store", "serve", "-d", str(tmp_path / "x.db"), "--subscription-endpoint", "ftp://x/"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "thrive store: --subscription-endpoint: expected an http(s) URL prefix, got 'ftp://x/'"
    ]


def test_without_an_allowlist_subscriptions_are_refused_and_not_advertised(tmp_path):
    server = start_ours(f"sqlite:///{tmp_path / 'plain.db'}", validate_on_write=False)
    try:
        meta = requests.get(server.url("metadata"), timeout=10).json()
        assert "extension" not in meta["rest"][0]
        resp = requests.post(
            server.url("Subscription"), json=subscription("https://app.example.org/hook"), headers=JSON, timeout=10
        )
        assert resp.status_code == 422
        assert "accepts no subscription endpoints" in resp.json()["issue"][0]["diagnostics"]
    finally:
        server.stop()


def test_delivered_events_older_than_the_retention_are_pruned_undelivered_ones_kept(tmp_path):
    with NotifyReceiver() as rx:
        server = start_ours(
            f"sqlite:///{tmp_path / 'prune.db'}",
            validate_on_write=False,
            subscription_endpoints=[rx.origin + "/hooks/"],
            subscription_poll=0.05,
        )
        try:
            hook = Hook(rx)
            resp = requests.post(server.url("Subscription"), json=subscription(hook.url), headers=JSON, timeout=10)
            sid = resp.json()["id"]
            hook.wait(lambda h: h.got("handshake"))
            for i in range(3):
                requests.put(
                    server.url(f"Patient/pr-{i}"),
                    json={"resourceType": "Patient", "id": f"pr-{i}"},
                    headers=JSON,
                    timeout=10,
                )
            hook.wait(lambda h: len(h.events()) == 3)
            engine = server.app.engine
            with engine.begin() as conn:  # events 1-2 are old; 3 is old too but not acknowledged
                conn.execute(text("UPDATE subscription_deliveries SET created = '2001-01-01 00:00:00.000000'"))
                conn.execute(text("UPDATE subscriptions SET delivered_through = 2 WHERE id = :i"), {"i": sid})
            dispatcher = server.app.subscriptions.dispatcher
            dispatcher._tx(dispatcher._prune)
            with engine.connect() as conn:
                left = [r[0] for r in conn.execute(text("SELECT number FROM subscription_deliveries ORDER BY number"))]
            assert left == [3]
        finally:
            server.stop()
