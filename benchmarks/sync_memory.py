"""Worker memory with a deep outbox: RSS must stay flat (and under 250 MB) while draining 1M queued rows.

Bulk-inserts ``--rows`` saves (Observation + Provenance each) straight into a local SQLite outbox, then
runs ``thrive sync run`` as its own process against sekmet-fhir for ``--seconds`` and samples the
worker's RSS every second. Prints RSS at start/end, min/max, and the queue depth drained.

    .venv/bin/python -m benchmarks.sync_memory                       # 1,000,000 rows, 60 s
    .venv/bin/python -m benchmarks.sync_memory --rows 100000 --seconds 30
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks.proc_stats import rss_mb
from benchmarks.sync_common import bulk_enqueue, make_changes, put_patients, start_store
from thrive_fhir.localstore import LocalStore
from thrive_fhir.localstore import outbox as queue


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--patients", type=int, default=10_000)
    ap.add_argument("--seconds", type=float, default=60.0)
    args = ap.parse_args()
    patients = [str(uuid.uuid4()) for _ in range(args.patients)]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        db = f"sqlite:///{tmp / 'local.db'}"
        store = LocalStore(db)
        store.migrate()
        t0 = time.perf_counter()
        for i in range(0, args.rows, 50_000):
            bulk_enqueue(store, make_changes(min(50_000, args.rows - i), patients))
        fill = time.perf_counter() - t0
        before = queue.figures(store)
        server = start_store("sekmet", tmp / "store")
        try:
            put_patients(server.base_url, patients)
            cfg = tmp / "sync.toml"
            cfg.write_text(
                f'database_url = "{db}"\nfhir_base = "{server.base_url}"\nods_code = "RXX"\n'
                f"max_entries = 100\npoll_interval = 0.2\nmetrics_interval = 5\n"
            )
            log = open(tmp / "sync.log", "w")
            proc = subprocess.Popen(
                [os.path.join(os.path.dirname(sys.executable), "thrive"), "sync", "run", "--config", str(cfg)],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
            samples = []
            end = time.monotonic() + args.seconds
            while time.monotonic() < end and proc.poll() is None:
                time.sleep(1.0)
                samples.append(rss_mb(proc.pid))
            proc.terminate()
            proc.wait(30)
        finally:
            server.stop()
        after = queue.figures(store)
        store.dispose()
    drained = after["sent"] - before["sent"]
    first, last = samples[: len(samples) // 4 or 1], samples[-(len(samples) // 4 or 1) :]
    print(
        f"queued rows at start {before['queued']:,} (filled in {fill:.0f} s); worker ran {len(samples)} s, "
        f"pushed {drained:,} rows ({drained / max(1, len(samples)):.0f} rows/s); still queued {after['queued']:,}"
    )
    print(
        f"worker RSS MB: min {min(samples):.1f}  max {max(samples):.1f}  first-quarter avg "
        f"{sum(first) / len(first):.1f}  last-quarter avg {sum(last) / len(last):.1f}  (target flat, < 250 MB)"
    )


if __name__ == "__main__":
    main()
