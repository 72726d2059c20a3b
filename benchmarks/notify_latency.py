"""Save-to-notification latency at a steady save rate (target p95 < 2 s at 50 saves/s, issue 11).

The whole path of a change notification: real saves through ``LocalStore.record`` at ``--rate`` per
second for ``--seconds``; the sync worker (polling every ``--poll`` s, as in production) pushes them
to ``thrive store serve`` (its own process, ``--subscription-endpoint`` naming a loopback receiver);
the store records a topic event with each write and its dispatcher POSTs an id-only notification to
the receiver (a real HTTP server in this process). Latency = arrival of the notification naming the
saved Observation - the moment ``record`` returned.

    .venv/bin/python -m benchmarks.notify_latency --rate 50 --seconds 30
    .venv/bin/python -m benchmarks.notify_latency --postgres
    .venv/bin/python -m benchmarks.notify_latency --ingest-cost   # what subscriptions cost a bulk load

``--ingest-cost`` loads the same 100-entry transaction Bundles (benchmarks/store_ingest.py) into the
store without subscriptions and with one active id-only subscriber (every resource an event, each
notification carrying up to 100), and prints both rates and their ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests
from sqlalchemy import select

from benchmarks.sync_common import put_patients, save_at_rate
from tests.support.notify_receiver import Hook, NotifyReceiver, subscription
from tests.support.servers import OwnStoreProcess, create_pg_database
from thrive_fhir.client.fhir_http import FhirClient
from thrive_fhir.localstore import LocalStore
from thrive_fhir.localstore import models as m
from thrive_fhir.sync.worker import Worker


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else (values[0] if values else float("nan"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rate", type=float, default=50.0)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--patients", type=int, default=200)
    ap.add_argument("--poll", type=float, default=0.2, help="sync worker poll interval (s)")
    ap.add_argument("--postgres", action="store_true", help="the store on a throwaway PostgreSQL database")
    ap.add_argument("--ingest-cost", action="store_true", help="measure bulk-load cost with and without a subscriber")
    ap.add_argument("--bundles", type=int, default=40, help="with --ingest-cost: 100-entry bundles per run")
    args = ap.parse_args()
    if args.ingest_cost:
        ingest_cost(args.bundles)
        return
    patients = [str(uuid.uuid4()) for _ in range(args.patients)]
    drop = None
    store_db = None
    if args.postgres:
        store_db, drop = create_pg_database("thrive_bench")
    saved: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp_name, NotifyReceiver() as rx:
        tmp = Path(tmp_name)
        allowed = ("--subscription-endpoint", rx.origin + "/hooks/")
        server = OwnStoreProcess(tmp / "store", database=store_db, validate=False, extra=allowed).start()
        try:
            put_patients(server.base_url, patients)
            hook = Hook(rx)
            resp = requests.post(
                f"{server.base_url}/Subscription",
                json=subscription(hook.url),
                headers={"Content-Type": "application/fhir+json"},
                timeout=10,
            )
            resp.raise_for_status()
            hook.wait(lambda h: h.got("handshake"))
            local = LocalStore(f"sqlite:///{tmp / 'local.db'}")
            local.migrate()
            worker = Worker(local, FhirClient(server.base_url), ods_code="RXX", max_entries=50)
            stop = threading.Event()
            t = threading.Thread(target=worker.run, args=(stop,), kwargs={"poll_interval": args.poll})
            t.start()
            n, achieved = save_at_rate(
                local,
                patients,
                args.rate,
                args.seconds,
                on_saved=lambda obs: saved.__setitem__(f"Observation/{obs['id']}", time.time()),
            )
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and len(_arrivals(hook, saved)) < n:
                time.sleep(0.2)
            stop.set()
            t.join()
            with local.engine.connect() as c:
                rows = c.execute(select(m.outbox.c.sent_at, m.outbox.c.created_at, m.outbox.c.entries)).all()
            push = sorted(r.sent_at - r.created_at for r in rows if r.sent_at is not None)
            # when the worker saw the store's 2xx, per saved Observation (the store's own share follows)
            acked = {
                f"{rtype}/{rid}": r.sent_at
                for r in rows
                if r.sent_at is not None
                for rtype, rid, _v in json.loads(r.entries)
                if rtype == "Observation"
            }
            local.dispose()
            arrivals = _arrivals(hook, saved)
            notifications = len(hook.got("event-notification"))
        finally:
            server.stop()
            if drop:
                drop()
    lat = sorted(arrivals[ref] - saved[ref] for ref in arrivals)
    after_ack = sorted(arrivals[ref] - acked[ref] for ref in arrivals if ref in acked)
    print(
        f"store={'postgresql' if args.postgres else 'sqlite'} saves={n} achieved_rate={achieved:.1f}/s "
        f"worker_poll={args.poll}s notifications={notifications} delivered={len(lat)}/{n}"
    )
    print(
        f"sync push (save -> store 2xx)  p50 {pct(push, 50):.3f} s   p95 {pct(push, 95):.3f} s   max {push[-1]:.3f} s"
    )
    print(
        f"save -> notification          p50 {pct(lat, 50):.3f} s   p95 {pct(lat, 95):.3f} s   max {lat[-1]:.3f} s"
        "   (target p95 < 2 s)"
    )
    print(
        f"store 2xx seen by worker -> notification  p50 {pct(after_ack, 50):+.3f} s   p95 {pct(after_ack, 95):+.3f} s"
        "   (the store's share; negative: the notification beat the worker's own bookkeeping)"
    )


def ingest_cost(bundles: int) -> None:
    from benchmarks.store_ingest import ingest, synthetic_bundle

    rates = {}
    with tempfile.TemporaryDirectory() as tmp_name, NotifyReceiver(parse=False) as rx:
        tmp = Path(tmp_name)
        for label, subscribed in (("no subscription", False), ("one id-only subscriber", True)):
            extra = ("--subscription-endpoint", rx.origin + "/hooks/") if subscribed else ()
            server = OwnStoreProcess(tmp / label.replace(" ", "-"), validate=False, extra=extra).start()
            try:
                hook = Hook(rx)
                sid = None
                if subscribed:
                    resp = requests.post(
                        f"{server.base_url}/Subscription",
                        json=subscription(hook.url),
                        headers={"Content-Type": "application/fhir+json"},
                        timeout=10,
                    )
                    resp.raise_for_status()
                    sid = resp.json()["id"]
                    rx.wait_for(bool, path=hook.path)  # the handshake
                ingest(server.base_url, [synthetic_bundle()], 1)
                data = [synthetic_bundle() for _ in range(bundles)]
                rate, cpu_us = ingest(server.base_url, data, 2, server.pid)
                if sid is not None:  # every event numbered and the last notification answered
                    deadline = time.monotonic() + 120
                    while time.monotonic() < deadline and _status_events(server.base_url, sid) < 100 * (bundles + 1):
                        time.sleep(0.1)
                rates[label] = rate
                print(f"{label:24s} {rate:6.0f} resources/s  server CPU {cpu_us:4.0f} µs/resource", flush=True)
            finally:
                server.stop()
    ratio = rates["one id-only subscriber"] / rates["no subscription"]
    print(f"ingest with a subscriber / without: {ratio:.2f}x ({bundles} x 100-entry transactions, SQLite)")


def _status_events(base: str, sid: str) -> int:
    bundle = requests.get(f"{base}/Subscription/{sid}/$status", timeout=10).json()
    params = bundle["entry"][0]["resource"]["parameter"]
    return int(next(p["valueString"] for p in params if p["name"] == "events-since-subscription-start"))


def _arrivals(hook: Hook, saved: dict[str, float]) -> dict[str, float]:
    """Focus reference -> first arrival time, for the saved Observations."""
    first: dict[str, float] = {}
    for r in hook.got("event-notification"):
        for p in r.body["entry"][0]["resource"]["parameter"]:
            if p["name"] != "notification-event":
                continue
            focus = next(q for q in p["part"] if q["name"] == "focus")["valueReference"]["reference"]
            if focus in saved and focus not in first:
                first[focus] = r.at
    return first


if __name__ == "__main__":
    main()
