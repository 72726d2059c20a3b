"""``$export`` of a large store streams with flat memory.

Loads N resources (default 1,000,000 Observations across 10,000 Patients) by direct multi-row inserts
into the store's tables (the HTTP path is measured by store_ingest.py; this keeps the run bounded),
then starts the store in this process, kicks off a system ``$export`` over HTTP, polls it to the end
and prints the server process RSS before and after, the peak RSS seen while exporting, throughput,
and the NDJSON bytes written.

    .venv/bin/python -m benchmarks.store_export [--resources 1000000] [--database URL]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests
import waitress

from tests.support.servers import free_port
from thrive_fhir.store import create_app
from thrive_fhir.store.fhirdates import to_instant, utcnow
from thrive_fhir.store.schema import create_schema, make_engine
from thrive_fhir.store.schema import resource_versions as rv


def rss_mb() -> float:
    """Current resident set size of this process (Linux /proc), in MB."""
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * resource.getpagesize() / 1e6


def load(database: str, total: int) -> None:
    engine = make_engine(database)
    create_schema(engine)
    now = utcnow()
    stamp = to_instant(now)
    patients = max(1, total // 100)
    batch = []
    with engine.begin() as conn:

        def flush():
            conn.execute(rv.insert(), batch)
            batch.clear()

        for p in range(patients):
            pid = uuid.uuid4().hex
            batch.append(
                {
                    "res_type": "Patient",
                    "res_id": pid,
                    "version_id": 1,
                    "last_updated": now,
                    "deleted": False,
                    "is_current": True,
                    "patient_key": pid,
                    "content": json.dumps(
                        {"resourceType": "Patient", "id": pid, "meta": {"versionId": "1", "lastUpdated": stamp}}
                    ),
                }
            )
            for _ in range(total // patients - 1):
                oid = uuid.uuid4().hex
                batch.append(
                    {
                        "res_type": "Observation",
                        "res_id": oid,
                        "version_id": 1,
                        "last_updated": now,
                        "deleted": False,
                        "is_current": True,
                        "patient_key": pid,
                        "content": json.dumps(
                            {
                                "resourceType": "Observation",
                                "id": oid,
                                "meta": {"versionId": "1", "lastUpdated": stamp},
                                "status": "final",
                                "code": {"coding": [{"system": "http://loinc.org", "code": "72166-2"}]},
                                "subject": {"reference": f"Patient/{pid}"},
                                "effectiveDateTime": "2024-05-01T10:00:00Z",
                                "valueInteger": 5,
                            }
                        ),
                    }
                )
            if len(batch) >= 20000:
                flush()
        if batch:
            flush()
    engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resources", type=int, default=1_000_000)
    ap.add_argument("--database", default=None, help="default: a temporary SQLite file")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="store-export-"))
    database = args.database or f"sqlite:///{tmp / 'export.db'}"
    try:
        t0 = time.perf_counter()
        load(database, args.resources)
        print(f"loaded {args.resources} resources by direct insert in {time.perf_counter() - t0:.1f} s", flush=True)
        app = create_app(database, validate_on_write=False, export_dir=tmp / "exports")
        port = free_port()
        server = waitress.create_server(app, host="127.0.0.1", port=port, threads=4)
        threading.Thread(target=server.run, daemon=True).start()
        base = f"http://127.0.0.1:{port}"
        requests.get(base + "/metadata").raise_for_status()
        before = rss_mb()
        peak = [before]
        done = threading.Event()

        def sample():  # RSS every 20 ms while the export thread runs
            while not done.is_set():
                peak[0] = max(peak[0], rss_mb())
                time.sleep(0.02)

        threading.Thread(target=sample, daemon=True).start()
        t0 = time.perf_counter()
        kick = requests.get(base + "/$export", headers={"Prefer": "respond-async", "Accept": "application/fhir+json"})
        assert kick.status_code == 202, kick.text
        status_url = kick.headers["Content-Location"]
        while True:
            poll = requests.get(status_url)
            if poll.status_code == 200:
                break
            assert poll.status_code == 202, poll.text
            time.sleep(0.5)
        elapsed = time.perf_counter() - t0
        done.set()
        after = rss_mb()
        peak = peak[0]
        manifest = poll.json()
        count = sum(o["count"] for o in manifest["output"])
        size = sum(p.stat().st_size for p in (tmp / "exports").rglob("*.ndjson"))
        print(
            f"exported {count} resources in {elapsed:.1f} s ({count / elapsed:.0f} resources/s), "
            f"{size / 1e6:.0f} MB NDJSON"
        )
        print(
            f"server RSS before {before:.0f} MB, after {after:.0f} MB, peak while exporting {peak:.0f} MB "
            f"(growth {peak - before:+.0f} MB for {count} resources)"
        )
        server.close()
        app.engine.dispose()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
