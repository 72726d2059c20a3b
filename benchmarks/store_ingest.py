"""Ingest throughput: 100-entry transaction Bundles into our store and sekmet-fhir, side by side.

Each server runs as its own process on loopback (ours via ``thrive store serve``, sekmet via
``sekmet serve``), so client and server never share a GIL. Bundles are the sync worker's shape:
``PUT Type/<uuid>`` entries, 20 Patients and 80 Observations referencing them, pre-serialised so the
client costs almost nothing. Prints resources/s per server and the ratios, and the server's own CPU
time per resource (from /proc: what the server spent, whatever else the shared machine was doing).

    .venv/bin/python -m benchmarks.store_ingest [--bundles 60] [--clients 2] [--no-postgres]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests

from benchmarks.proc_stats import cpu_seconds
from tests.support.servers import OwnStoreProcess, SekmetProcess, create_pg_database

HEADERS = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json", "Prefer": "return=minimal"}


def start_ours(workdir: Path, database: str, *, validate: bool = True) -> OwnStoreProcess:
    server = OwnStoreProcess(workdir / f"ours-{uuid.uuid4().hex[:6]}", database=database, validate=validate)
    server.name = (
        f"ours ({'postgres' if 'postgresql' in database else 'sqlite'}, validation {'on' if validate else 'off'})"
    )
    return server.start()


def start_sekmet(workdir: Path) -> SekmetProcess:
    server = SekmetProcess(workdir / "sekmet")
    server.name = "sekmet-fhir 0.1.1 (sqlite)"
    return server.start()


def synthetic_bundle(n_patients: int = 20, obs_per_patient: int = 4) -> bytes:
    entries = []
    for p in range(n_patients):
        pid = str(uuid.uuid4())
        entries.append(
            {
                "resource": {
                    "resourceType": "Patient",
                    "id": pid,
                    "identifier": [{"system": "https://example.org/bench", "value": pid}],
                    "name": [{"family": "Bench", "given": [f"P{p}"]}],
                    "gender": "unknown",
                    "birthDate": "2011-02-03",
                },
                "request": {"method": "PUT", "url": f"Patient/{pid}"},
            }
        )
        for o in range(obs_per_patient):
            oid = str(uuid.uuid4())
            entries.append(
                {
                    "resource": {
                        "resourceType": "Observation",
                        "id": oid,
                        "status": "final",
                        "identifier": [{"system": "https://example.org/bench-obs", "value": oid}],
                        "category": [
                            {
                                "coding": [
                                    {
                                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                        "code": "survey",
                                    }
                                ]
                            }
                        ],
                        "code": {"coding": [{"system": "http://loinc.org", "code": "72166-2"}]},
                        "subject": {"reference": f"Patient/{pid}"},
                        "effectiveDateTime": f"2024-0{1 + o}-15T10:00:00Z",
                        "valueInteger": o + 3,
                    },
                    "request": {"method": "PUT", "url": f"Observation/{oid}"},
                }
            )
    return json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries}).encode()


def ingest(base: str, bundles: list[bytes], clients: int, server_pid: int | None = None) -> tuple[float, float]:
    """(resources per second, server CPU µs per resource) for posting ``bundles`` with ``clients``
    concurrent connections."""
    work = list(bundles)
    lock = threading.Lock()
    errors = []

    def worker():
        session = requests.Session()
        while True:
            with lock:
                if not work:
                    return
                body = work.pop()
            resp = session.post(base, data=body, headers=HEADERS, timeout=120)
            if resp.status_code != 200:
                errors.append(f"{resp.status_code} {resp.text[:200]}")

    cpu0 = cpu_seconds(server_pid, with_children=True) if server_pid else 0.0
    start = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    cpu = cpu_seconds(server_pid, with_children=True) - cpu0 if server_pid else float("nan")
    if errors:
        raise RuntimeError(f"{len(errors)} bundles failed, first: {errors[0]}")
    resources = sum(len(json.loads(b)["entry"]) for b in bundles)
    return resources / elapsed, cpu * 1e6 / resources


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundles", type=int, default=60, help="100-entry bundles per server (default 60)")
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--no-postgres", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="store-ingest-"))
    warmup = [synthetic_bundle() for _ in range(2)]
    results = {}
    cleanups = []
    try:
        setups = [
            ("ours-sqlite-validate", lambda: start_ours(tmp, f"sqlite:///{tmp / 'v.db'}")),
            ("ours-sqlite-novalidate", lambda: start_ours(tmp, f"sqlite:///{tmp / 'n.db'}", validate=False)),
        ]
        if not args.no_postgres:
            url, drop = create_pg_database("thrive_bench")
            cleanups.append(drop)
            setups.append(("ours-postgres-validate", lambda: start_ours(tmp, url)))
        setups.append(("sekmet", lambda: start_sekmet(tmp)))
        for key, make in setups:
            server = make()
            try:
                ingest(server.base_url, warmup, 1)
                data = [synthetic_bundle() for _ in range(args.bundles)]
                rate, cpu_us = ingest(server.base_url, data, args.clients, server.pid)
                results[key] = (server.name, rate)
                print(
                    f"{server.name:35s} {rate:6.0f} resources/s  server CPU {cpu_us:4.0f} µs/resource  "
                    f"({args.bundles} x 100-entry transactions, {args.clients} clients, "
                    f"load average {os.getloadavg()[0]:.1f})",
                    flush=True,
                )
            finally:
                server.stop()
    finally:
        for c in cleanups:
            c()
        shutil.rmtree(tmp, ignore_errors=True)
    if "sekmet" in results:
        base = results["sekmet"][1]
        for key, (name, rate) in results.items():
            if key != "sekmet":
                print(f"ratio {name} / sekmet-fhir: {rate / base:.2f}x")
    v = results.get("ours-sqlite-validate", (None, 0))[1]
    print(f"target >= 3000 resources/s on SQLite with validation: {'MET' if v >= 3000 else 'NOT MET'} ({v:.0f})")


if __name__ == "__main__":
    main()
