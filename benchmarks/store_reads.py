"""Read latency under concurrency: read-by-id and the plan search, 20 concurrent clients.

Seeds a population (patients, each with goals, a care plan and GBO-style scores focused on the goals)
through transaction Bundles, then runs 20 concurrent clients for a fixed time, twice:
- mixed: half read Observations by id, half run the agency plan view
  ``CarePlan?patient=X&_include=CarePlan:goal`` followed by ``Goal?patient=X&_revinclude=Observation:focus``
  (one "plan search" = that pair). The target is read-by-id p95 under this load.
- reads: all 20 clients read by id. This is also run against sekmet-fhir, which cannot run the plan
  search (no Goal search parameters).
Each client is a closed loop (next request as soon as the answer is read, no think time) on its own
keep-alive connection.

Fairness: the server is its own process (``thrive store serve`` / ``sekmet serve``); every client is
its own process with a plain ``http.client`` connection, so no client waits on another client's GIL
and the latency printed is what a client sees (send to last byte read). The first second is warm-up
and not counted. Server CPU per request (from /proc) is printed too: it is the server's cost,
independent of how busy the shared machine is.

    .venv/bin/python -m benchmarks.store_reads [--patients 200] [--seconds 8] [--clients 20] [--no-sekmet]

Readers under writes (``--writers N``): ``--readers`` clients run the plan search, first alone, then
while N clients post 100-entry transaction Bundles in a closed loop (ingest at the store's full
rate); both p95 figures and the ingest rate are printed from the one run:

    .venv/bin/python -m benchmarks.store_reads --writers 10 --readers 5 --patients 50 --seconds 6
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import random
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import requests

from benchmarks.proc_stats import cpu_seconds
from benchmarks.store_ingest import start_ours, start_sekmet

HEADERS = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
WARMUP = 1.0


def seed(base: str, patients: int) -> tuple[list[str], list[str]]:
    """Returns (patient ids, observation ids)."""
    pids, oids = [], []
    session = requests.Session()
    for start in range(0, patients, 10):
        entries = []
        for _ in range(min(10, patients - start)):
            pid = str(uuid.uuid4())
            pids.append(pid)
            entries.append(
                {
                    "resource": {"resourceType": "Patient", "id": pid, "gender": "unknown"},
                    "request": {"method": "PUT", "url": f"Patient/{pid}"},
                }
            )
            goals = [str(uuid.uuid4()) for _ in range(3)]
            for g in goals:
                entries.append(
                    {
                        "resource": {
                            "resourceType": "Goal",
                            "id": g,
                            "lifecycleStatus": "active",
                            "description": {"text": "goal"},
                            "subject": {"reference": f"Patient/{pid}"},
                        },
                        "request": {"method": "PUT", "url": f"Goal/{g}"},
                    }
                )
                for k in range(3):
                    oid = str(uuid.uuid4())
                    oids.append(oid)
                    entries.append(
                        {
                            "resource": {
                                "resourceType": "Observation",
                                "id": oid,
                                "status": "final",
                                "code": {"coding": [{"system": "http://loinc.org", "code": "72166-2"}]},
                                "subject": {"reference": f"Patient/{pid}"},
                                "focus": [{"reference": f"Goal/{g}"}],
                                "effectiveDateTime": f"2024-0{k + 1}-01T10:00:00Z",
                                "valueInteger": 4 + k,
                            },
                            "request": {"method": "PUT", "url": f"Observation/{oid}"},
                        }
                    )
            cp = str(uuid.uuid4())
            entries.append(
                {
                    "resource": {
                        "resourceType": "CarePlan",
                        "id": cp,
                        "status": "active",
                        "intent": "plan",
                        "subject": {"reference": f"Patient/{pid}"},
                        "goal": [{"reference": f"Goal/{g}"} for g in goals],
                    },
                    "request": {"method": "PUT", "url": f"CarePlan/{cp}"},
                }
            )
        resp = session.post(
            base,
            data=json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries}),
            headers=HEADERS,
            timeout=120,
        )
        resp.raise_for_status()
    return pids, oids


def _client(
    out, base: str, kind: str, pids: list[str], oids: list[str], start_at: float, stop_at: float, seed_: int
) -> None:
    """One client process: a closed loop on one keep-alive connection; sends (latencies ms, errors)."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    prefix = parts.path.rstrip("/")
    rng = random.Random(seed_)
    headers = {"Accept": "application/fhir+json"}
    latencies, errors = [], []
    while time.time() < start_at:
        time.sleep(0.005)
    while True:
        now = time.time()
        if now >= stop_at:
            break
        if kind == "read-by-id":
            paths = [f"{prefix}/Observation/{rng.choice(oids)}"]
        else:
            pid = rng.choice(pids)
            paths = [
                f"{prefix}/CarePlan?patient={pid}&_include=CarePlan:goal",
                f"{prefix}/Goal?patient={pid}&_revinclude=Observation:focus",
            ]
        t0 = time.perf_counter()
        for path in paths:
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                errors.append(resp.status)
        elapsed = (time.perf_counter() - t0) * 1000
        if now >= start_at + WARMUP:
            latencies.append(elapsed)
    conn.close()
    out.send((kind, latencies, errors))
    out.close()


def _writer(out, base: str, start_at: float, stop_at: float, seed_: int) -> None:
    """One writer process: 100-entry transaction Bundles (20 patients x 4 observations + the patients)
    in a closed loop; sends (resources written, errors)."""
    from benchmarks.store_ingest import synthetic_bundle

    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
    bodies = [synthetic_bundle(20, 4) for _ in range(4)]  # fresh ids per round below
    written, busy, errors, n = 0, 0, [], 0
    while time.time() < start_at:
        time.sleep(0.005)
    while time.time() < stop_at:
        body = bodies[n % len(bodies)] if n < len(bodies) else synthetic_bundle(20, 4)
        n += 1
        conn.request("POST", parts.path or "/", body=body, headers=headers)
        resp = conn.getresponse()
        resp.read()
        if resp.status == 503:  # the store keeps threads for reads: back off as told, as a client should
            busy += 1
            time.sleep(float(resp.getheader("Retry-After") or 1))
            n -= 1
        elif resp.status != 200:
            errors.append(resp.status)
        elif time.time() >= start_at + WARMUP:
            written += 100
    conn.close()
    out.send(("writes", [written, busy], errors))
    out.close()


def run_with_writers(base: str, pids: list[str], seconds: float, readers: int, writers: int) -> tuple[list, float, int]:
    """Plan searches by ``readers`` clients while ``writers`` clients ingest transactions:
    (search latencies ms, resources written per second, 503 answers the writers backed off on)."""
    ctx = multiprocessing.get_context("fork")
    start_at = time.time() + 1.5
    stop_at = start_at + WARMUP + seconds
    pipes, procs = [], []
    for i in range(readers + writers):
        receive, send = ctx.Pipe(duplex=False)
        if i < readers:
            proc = ctx.Process(target=_client, args=(send, base, "plan search", pids, [], start_at, stop_at, i))
        else:
            proc = ctx.Process(target=_writer, args=(send, base, start_at, stop_at, i))
        proc.start()
        send.close()
        pipes.append(receive)
        procs.append(proc)
    latencies, written, busy, errors = [], 0, 0, []
    for receive in pipes:
        kind, values, errs = receive.recv()
        if kind == "writes":
            written += values[0]
            busy += values[1]
        else:
            latencies.extend(values)
        errors.extend(errs)
    for proc in procs:
        proc.join()
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests, e.g. {errors[0]}")
    return latencies, written / seconds, busy


def run_clients(
    base: str, server_pid: int, pids: list[str], oids: list[str], seconds: float, clients: int, mixed: bool
) -> tuple[dict, float]:
    """({kind: [latency ms]}, server CPU ms per HTTP request) for ``seconds`` of closed-loop load."""
    ctx = multiprocessing.get_context("fork")
    start_at = time.time() + 1.5  # every client connected and waiting before the clock starts
    stop_at = start_at + WARMUP + seconds
    pipes, procs = [], []
    for i in range(clients):
        kind = "plan search" if mixed and i % 2 else "read-by-id"
        receive, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_client, args=(send, base, kind, pids, oids, start_at, stop_at, i))
        proc.start()
        send.close()
        pipes.append(receive)
        procs.append(proc)
    while time.time() < start_at + WARMUP:
        time.sleep(0.01)
    cpu0 = cpu_seconds(server_pid)
    timings: dict[str, list[float]] = {"read-by-id": [], "plan search": []}
    errors = []
    for receive in pipes:
        kind, latencies, errs = receive.recv()
        timings[kind].extend(latencies)
        errors.extend(errs)
    cpu = cpu_seconds(server_pid) - cpu0  # the clients stop at stop_at, so this window is the measured one
    for proc in procs:
        proc.join()
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests, e.g. {errors[0]}")
    requests_done = len(timings["read-by-id"]) + len(timings["plan search"]) * 2
    return timings, cpu * 1000 / max(requests_done, 1)


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 2 else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--no-sekmet", action="store_true")
    ap.add_argument(
        "--writers",
        type=int,
        default=0,
        help="also measure plan searches by --readers clients with and without this many clients "
        "ingesting 100-entry transactions (our store only)",
    )
    ap.add_argument("--readers", type=int, default=10)
    ap.add_argument("--database", default=None, help="SQLAlchemy URL for our store (default: SQLite in a temp dir)")
    args = ap.parse_args()
    if args.writers:
        readers_under_writes(args)
        return
    tmp = Path(tempfile.mkdtemp(prefix="store-reads-"))
    p95_ours = None
    try:
        servers = [("ours (sqlite)", lambda: start_ours(tmp, f"sqlite:///{tmp / 'r.db'}"), (True, False))]
        if not args.no_sekmet:
            servers.append(("sekmet-fhir 0.1.1", lambda: start_sekmet(tmp), (False,)))
        for name, make, mixes in servers:
            server = make()
            try:
                pids, oids = seed(server.base_url, args.patients)
                for mixed in mixes:
                    timings, cpu_ms = run_clients(
                        server.base_url, server.pid, pids, oids, args.seconds, args.clients, mixed
                    )
                    load = "mixed" if mixed else "reads"
                    for kind, values in timings.items():
                        if values:
                            print(
                                f"{name:18s} {load:5s} {kind:12s} n={len(values):6d}  p50={pct(values, 50):6.1f} ms"
                                f"  p95={pct(values, 95):6.1f} ms  ({args.clients} clients)",
                                flush=True,
                            )
                    print(
                        f"{name:18s} {load:5s} server CPU {cpu_ms:.2f} ms per HTTP request "
                        f"(load average {os.getloadavg()[0]:.1f})",
                        flush=True,
                    )
                    if mixed:
                        p95_ours = pct(timings["read-by-id"], 95)
            finally:
                server.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if p95_ours is not None:
        print(
            f"target: read-by-id p95 < 20 ms with {args.clients} concurrent clients, half of them running the "
            f"plan search (our store): {'MET' if p95_ours < 20 else 'NOT MET'} ({p95_ours:.1f} ms)"
        )


def readers_under_writes(args) -> None:
    """Plan-search p95 with no writers, then with ``args.writers`` ingesting at full rate: same server,
    same data, one run. Target: p95 under 100 ms while ingest runs."""
    tmp = Path(tempfile.mkdtemp(prefix="store-reads-"))
    try:
        server = start_ours(tmp, args.database or f"sqlite:///{tmp / 'r.db'}")
        try:
            pids, _oids = seed(server.base_url, args.patients)
            quiet, _, _ = run_with_writers(server.base_url, pids, args.seconds, args.readers, 0)
            busy, rate, backed_off = run_with_writers(server.base_url, pids, args.seconds, args.readers, args.writers)
        finally:
            server.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    name = server.name
    for label, values in (("no writers", quiet), (f"{args.writers} writers", busy)):
        print(
            f"{name}: plan search, {args.readers} readers, {label:11s} n={len(values):6d}  "
            f"p50={pct(values, 50):7.1f} ms  p95={pct(values, 95):7.1f} ms",
            flush=True,
        )
    print(
        f"{name}: ingest with {args.writers} writers: {rate:.0f} resources/s, {backed_off} busy answers (503) "
        f"backed off on (load average {os.getloadavg()[0]:.1f})"
    )
    p95 = pct(busy, 95)
    print(f"target: plan search p95 < 100 ms while ingest runs: {'MET' if p95 < 100 else 'NOT MET'} ({p95:.1f} ms)")


if __name__ == "__main__":
    main()
