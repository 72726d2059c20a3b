"""Save-to-visible latency at a steady save rate (target p95 < 2 s at 50 saves/s).

Real saves through ``LocalStore.record`` at ``--rate`` per second for ``--seconds``, while the sync
worker runs (as in production, polling every ``--poll`` s). Visible = the store answered 2xx to the
transaction holding the save (``outbox.sent_at``); latency = sent_at - save commit time.

    .venv/bin/python -m benchmarks.sync_latency --store sekmet --rate 50 --seconds 30
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

from sqlalchemy import select

from benchmarks.sync_common import put_patients, save_at_rate, start_store
from thrive_fhir.client.fhir_http import FhirClient
from thrive_fhir.localstore import LocalStore
from thrive_fhir.localstore import models as m
from thrive_fhir.sync.worker import Worker


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--store", default="sekmet", choices=["sekmet", "own"])
    ap.add_argument("--rate", type=float, default=50.0)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--patients", type=int, default=200)
    ap.add_argument("--poll", type=float, default=0.2)
    ap.add_argument("--database", default="", help="local DB URL (default: a temporary SQLite file)")
    args = ap.parse_args()
    patients = [str(uuid.uuid4()) for _ in range(args.patients)]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        server = start_store(args.store, tmp / "store")
        try:
            put_patients(server.base_url, patients)
            store = LocalStore(args.database or f"sqlite:///{tmp / 'local.db'}")
            store.migrate()
            worker = Worker(store, FhirClient(server.base_url), ods_code="RXX", max_entries=50)
            stop = threading.Event()
            t = threading.Thread(target=worker.run, args=(stop,), kwargs={"poll_interval": args.poll})
            t.start()
            n, achieved = save_at_rate(store, patients, args.rate, args.seconds)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with store.engine.connect() as c:
                    left = c.execute(select(m.outbox.c.id).where(m.outbox.c.status != "sent").limit(1)).first()
                if left is None:
                    break
                time.sleep(0.2)
            stop.set()
            t.join()
            with store.engine.connect() as c:
                lat = sorted(
                    r.sent_at - r.created_at
                    for r in c.execute(select(m.outbox.c.sent_at, m.outbox.c.created_at)).all()
                    if r.sent_at is not None
                )
            store.dispose()
        finally:
            server.stop()
    q = statistics.quantiles(lat, n=100)
    print(f"store={args.store} saves={n} achieved_rate={achieved:.1f}/s poll={args.poll}s visible={len(lat)}")
    print(f"save-to-visible latency p50 {q[49]:.3f} s   p95 {q[94]:.3f} s   max {lat[-1]:.3f} s   (target p95 < 2 s)")


if __name__ == "__main__":
    main()
