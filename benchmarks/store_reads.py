"""Read latency under concurrency: read-by-id and the plan search, 20 concurrent clients.

Seeds a population (patients, each with goals, a care plan and GBO-style scores focused on the goals)
through transaction Bundles, then runs 20 client threads for a fixed time, half reading Observations
by id and half running the agency plan view ``CarePlan?patient=X&_include=CarePlan:goal`` plus
``Goal?patient=X&_revinclude=Observation:focus``. Prints p50/p95 per kind. The same is run against
sekmet-fhir for read-by-id (it has no Goal search parameters, so the plan search is ours only).

    .venv/bin/python benchmarks/store_reads.py [--patients 200] [--seconds 8] [--no-sekmet]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).parent))
from store_ingest import start_ours, start_sekmet  # noqa: E402

HEADERS = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


def seed(base: str, patients: int) -> tuple[list[str], list[str]]:
    """Returns (patient ids, observation ids)."""
    pids, oids = [], []
    for start in range(0, patients, 10):
        entries = []
        for _ in range(min(10, patients - start)):
            pid = str(uuid.uuid4())
            pids.append(pid)
            entries.append({"resource": {"resourceType": "Patient", "id": pid, "gender": "unknown"},
                            "request": {"method": "PUT", "url": f"Patient/{pid}"}})
            goals = [str(uuid.uuid4()) for _ in range(3)]
            for g in goals:
                entries.append({"resource": {"resourceType": "Goal", "id": g, "lifecycleStatus": "active",
                                             "description": {"text": "goal"}, "subject": {"reference": f"Patient/{pid}"}},
                                "request": {"method": "PUT", "url": f"Goal/{g}"}})
                for k in range(3):
                    oid = str(uuid.uuid4())
                    oids.append(oid)
                    entries.append({"resource": {
                        "resourceType": "Observation", "id": oid, "status": "final",
                        "code": {"coding": [{"system": "http://loinc.org", "code": "72166-2"}]},
                        "subject": {"reference": f"Patient/{pid}"}, "focus": [{"reference": f"Goal/{g}"}],
                        "effectiveDateTime": f"2024-0{k + 1}-01T10:00:00Z", "valueInteger": 4 + k},
                        "request": {"method": "PUT", "url": f"Observation/{oid}"}})
            cp = str(uuid.uuid4())
            entries.append({"resource": {"resourceType": "CarePlan", "id": cp, "status": "active", "intent": "plan",
                                         "subject": {"reference": f"Patient/{pid}"},
                                         "goal": [{"reference": f"Goal/{g}"} for g in goals]},
                            "request": {"method": "PUT", "url": f"CarePlan/{cp}"}})
        resp = requests.post(base, data=json.dumps({"resourceType": "Bundle", "type": "transaction",
                                                    "entry": entries}), headers=HEADERS, timeout=120)
        resp.raise_for_status()
    return pids, oids


def run_clients(base: str, pids: list[str], oids: list[str], seconds: float, clients: int, plan: bool) -> dict:
    timings: dict[str, list[float]] = {"read-by-id": [], "plan search": []}
    errors = []
    stop_at = time.time() + seconds
    lock = threading.Lock()

    def client(kind: str):
        session = requests.Session()
        rng = random.Random()
        local = []
        while time.time() < stop_at:
            if kind == "read-by-id":
                urls = [f"{base}/Observation/{rng.choice(oids)}"]
            else:
                pid = rng.choice(pids)
                urls = [f"{base}/CarePlan?patient={pid}&_include=CarePlan:goal",
                        f"{base}/Goal?patient={pid}&_revinclude=Observation:focus"]
            t0 = time.perf_counter()
            for url in urls:
                resp = session.get(url, headers=HEADERS, timeout=30)
                if resp.status_code != 200:
                    errors.append(resp.status_code)
            local.append((time.perf_counter() - t0) * 1000)
        with lock:
            timings[kind].extend(local)

    kinds = ["read-by-id", "plan search"] if plan else ["read-by-id"]
    threads = [threading.Thread(target=client, args=(kinds[i % len(kinds)],)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests, e.g. {errors[0]}")
    return timings


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 2 else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--no-sekmet", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="store-reads-"))
    try:
        servers = [("ours (sqlite)", lambda: start_ours(f"sqlite:///{tmp / 'r.db'}"), True)]
        if not args.no_sekmet:
            servers.append(("sekmet-fhir 0.1.1", lambda: start_sekmet(tmp), False))
        for name, make, plan in servers:
            server = make()
            try:
                pids, oids = seed(server.base, args.patients)
                timings = run_clients(server.base, pids, oids, args.seconds, args.clients, plan)
                for kind, values in timings.items():
                    if values:
                        print(f"{name:22s} {kind:12s} n={len(values):6d}  p50={pct(values, 50):7.1f} ms  "
                              f"p95={pct(values, 95):7.1f} ms  ({args.clients} clients)", flush=True)
            finally:
                server.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("target: read-by-id p95 < 20 ms under 20 concurrent clients (our store)")


if __name__ == "__main__":
    main()
