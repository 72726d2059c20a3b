"""Sync worker throughput vs a plain client posting the same data, side by side, per store.

For each store (sekmet-fhir 0.1.1 and the project's own store): two fresh instances; one receives the
data as raw 100-entry transaction Bundles from a plain `requests` loop, the other from the sync worker
draining an outbox holding the same saves. Prints resources/s for both and the ratio (target >= 0.8).
By default neither store validates on write (the fastest store shows the worker's own cost most);
``--strict`` turns validation on in both.

    .venv/bin/python -m benchmarks.sync_throughput                 # moderate: 20,000 changes
    .venv/bin/python -m benchmarks.sync_throughput --changes 100000
    .venv/bin/python -m benchmarks.sync_throughput --changes 100000 --strict
    .venv/bin/python -m benchmarks.sync_throughput --stores own --id-modes deterministic,identifier --changes 5000

``--id-modes identifier``: the worker creates by conditional update on the business identifier and
learns the store's ids (for stores that assign their own); the raw client then sends the same
conditional updates and POSTs (sync_common.raw_bundles_by_identifier).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests

from benchmarks.sync_common import (
    bulk_enqueue,
    make_changes,
    put_patients,
    raw_bundles,
    raw_bundles_by_identifier,
    start_store,
)
from thrive_fhir.client.fhir_http import FhirClient
from thrive_fhir.localstore import LocalStore
from thrive_fhir.sync.worker import Worker


def run_raw(base: str, changes, size: int, id_mode: str = "deterministic") -> float:
    session = requests.Session()
    n = 0
    bundles = raw_bundles_by_identifier(changes, size) if id_mode == "identifier" else raw_bundles(changes, size)
    t0 = time.perf_counter()
    for bundle in bundles:
        r = session.post(
            base,
            json=bundle,
            headers={"Content-Type": "application/fhir+json", "Prefer": "return=minimal"},
            timeout=300,
        )
        r.raise_for_status()
        n += len(bundle["entry"])
    return n / (time.perf_counter() - t0)


def run_worker(
    base: str, changes, size: int, workdir: Path, concurrency: int, outbox: str, id_mode: str = "deterministic"
) -> float:
    """Fill an outbox with ``changes`` (SQLite file, or a throwaway PostgreSQL database where the
    worker threads claim with FOR UPDATE SKIP LOCKED), drain it, return resources/s."""
    drop = None
    if outbox == "postgres":
        from tests.support.servers import create_pg_database

        url, drop = create_pg_database("thrive_bench")
    else:
        url = f"sqlite:///{workdir / 'local.db'}"
    try:
        return _drain(url, base, changes, size, concurrency, id_mode)
    finally:
        if drop:
            drop()


def _drain(url: str, base: str, changes, size: int, concurrency: int, id_mode: str = "deterministic") -> float:
    store = LocalStore(url)
    store.migrate()
    bulk_enqueue(store, changes)
    workers = [
        Worker(
            store,
            FhirClient(base, read_timeout=300),
            ods_code="RXX",
            max_entries=size,
            max_patients=size,
            id_mode=id_mode,
        )
        for _ in range(concurrency)
    ]
    stop = threading.Event()
    t0 = time.perf_counter()
    threads = [
        threading.Thread(target=w.run, args=(stop,), kwargs={"once": True, "poll_interval": 0.05, "max_wait": 30})
        for w in workers
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    from thrive_fhir.localstore import outbox as queue

    fig = queue.figures(store)
    assert fig["sent"] == len(changes) and fig["queued"] == 0, fig
    store.dispose()
    return 2 * len(changes) / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--changes", type=int, default=20000, help="saves to push (each = 1 Observation + 1 Provenance)")
    ap.add_argument("--patients", type=int, default=1000)
    ap.add_argument("--bundle", type=int, default=100, help="entries per transaction Bundle (raw and worker)")
    ap.add_argument("--concurrency", type=int, default=2, help="worker threads")
    ap.add_argument("--stores", default="sekmet,own")
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="raw/worker pairs per store and mode (medians reported: a busy machine is noisy)",
    )
    ap.add_argument(
        "--id-modes",
        default="deterministic",
        help="comma list: deterministic (PUT Type/<uuid5>) and/or identifier (conditional update)",
    )
    ap.add_argument(
        "--outbox",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="the worker's local database (postgres: 127.0.0.1:5432, a throwaway database)",
    )
    ap.add_argument(
        "--strict",
        action="store_true",
        help="stores validate on write (sekmet strict inbound, ours profiles): slower stores",
    )
    args = ap.parse_args()
    patients = [str(uuid.uuid4()) for _ in range(args.patients)]
    print(
        f"changes={args.changes} patients={args.patients} bundle={args.bundle} worker_threads={args.concurrency} "
        f"store validation={'on' if args.strict else 'off'} outbox={args.outbox}"
    )
    for kind in args.stores.split(","):
        for id_mode in args.id_modes.split(","):
            pairs = []
            for _ in range(args.repeat):
                changes = make_changes(args.changes, patients)
                with tempfile.TemporaryDirectory() as tmp:
                    tmp = Path(tmp)
                    raw_store = start_store(kind, tmp / "raw", strict=args.strict)
                    put_patients(raw_store.base_url, patients)
                    try:
                        raw = run_raw(raw_store.base_url, changes, args.bundle, id_mode)
                    finally:
                        raw_store.stop()
                    worker_store = start_store(kind, tmp / "worker", strict=args.strict)
                    put_patients(worker_store.base_url, patients)
                    try:
                        worker = run_worker(
                            worker_store.base_url, changes, args.bundle, tmp, args.concurrency, args.outbox, id_mode
                        )
                    finally:
                        worker_store.stop()
                pairs.append((raw, worker))
                print(f"  {kind} {id_mode}: raw {raw:.0f}/s worker {worker:.0f}/s ratio {worker / raw:.2f}", flush=True)
            raw = statistics.median(r for r, _ in pairs)
            worker = statistics.median(w for _, w in pairs)
            ratio = statistics.median(w / r for r, w in pairs)
            print(
                f"{kind:7} {id_mode:13} raw client {raw:8.0f} resources/s   sync worker {worker:8.0f} resources/s   "
                f"ratio {ratio:.2f} (median of {len(pairs)}; target >= 0.8)",
                flush=True,
            )


if __name__ == "__main__":
    main()
