"""Proof under faults: 5xx, 429 + Retry-After, timeouts, connections dropped before forwarding and
after the store committed, a worker killed with SIGKILL mid-batch, the store restarted.

After N saves the store must hold exactly the N effective changes, in order per young person:
lost = duplicated = out of order = 0, and conflicts surfaced, not overwritten.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import requests

from tests.support.servers import SekmetProcess
from tests.support.sync_synthetic import Scenario, put_patients
from tests.support.sync_verify import verify
from tests.support.sync_workers import drain, make_worker, new_patients
from thrive_fhir.localstore import LocalStore
from thrive_fhir.localstore import outbox as queue

FAULTS = {"500": 0.04, "503": 0.04, "429": 0.04, "delay": 0.04, "drop_before": 0.04, "drop_after": 0.05}


def _foreign_edit(base: str, goal_id: str) -> None:
    theirs = requests.get(f"{base}/Goal/{goal_id}", timeout=30).json()
    theirs["description"] = {"text": "Changed by another agency"}
    theirs["meta"] = {"source": "https://other-agency.example/fhir"}
    r = requests.put(
        f"{base}/Goal/{goal_id}", json=theirs, headers={"Content-Type": "application/fhir+json"}, timeout=30
    )
    assert r.status_code in (200, 201)


def test_exactly_once_in_order_under_injected_faults(db_url, sekmet, proxy_factory):
    store = LocalStore(db_url)
    store.migrate()
    patients = new_patients(8)
    put_patients(sekmet.base_url, patients)
    proxy = proxy_factory(sekmet.base_url, seed=5, rates=FAULTS, delay=1.3)
    sc = Scenario(store, patients, seed=3)
    for p in patients:
        sc.new_goal(p)
    workers = [make_worker(store, proxy.url, read_timeout=1.0, max_entries=10, max_patients=3) for _ in range(2)]
    drain(workers)

    # Another agency edits two goals in the store; our later edits of those goals must park.
    contested = [sc.goals[patients[0]][0], sc.goals[patients[1]][0]]
    for gid in contested:
        _foreign_edit(sekmet.base_url, gid)
    sc.update_goal(patients[0], contested[0])
    sc.update_goal(patients[1], contested[1])

    # More saves arrive while the workers run.
    stop = threading.Event()
    saver = threading.Thread(target=lambda: (sc.random_saves(70), stop.set()))
    saver.start()
    drain(workers)
    saver.join()
    drain(workers)

    result = verify(store, sekmet.base_url)
    expected_conflicts = _rows_touching(store, contested, after_version=1)
    assert result["rows"] == sc.saves == 8 + 2 + 70
    assert result["conflict"] == expected_conflicts >= 2
    assert result["sent"] == sc.saves - expected_conflicts and result["pending"] == 0 and result["dead"] == 0
    assert result["lost"] == 0
    assert result["duplicated"] == 0
    assert result["out_of_order"] == 0
    assert result["overwritten"] == 0
    for gid in contested:
        assert (
            requests.get(f"{sekmet.base_url}/Goal/{gid}", timeout=30).json()["description"]["text"]
            == "Changed by another agency"
        )
    # every kind of fault really happened
    for fault in FAULTS:
        assert proxy.counts[fault] > 0, (fault, dict(proxy.counts))
    store.dispose()


def _rows_touching(store, goal_ids, after_version):
    import json

    from sqlalchemy import select

    from thrive_fhir.localstore import models as m

    with store.engine.connect() as c:
        rows = c.execute(select(m.outbox.c.entries)).all()
    return sum(
        1 for r in rows for t, i, v in json.loads(r.entries) if t == "Goal" and i in goal_ids and v > after_version
    )


def _worker_process(config_path, *extra):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), "thrive"), "sync", "run", "--config", str(config_path), *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )


def test_worker_killed_mid_batch_and_store_restarted(db_url, tmp_path, proxy_factory):
    store = LocalStore(db_url)
    store.migrate()
    server = SekmetProcess(tmp_path / "restartable", strict=True).start()
    try:
        patients = new_patients(6)
        put_patients(server.base_url, patients)
        # delays only: many batches are in flight (sent, not yet answered) when the kill comes
        proxy = proxy_factory(server.base_url, seed=9, rates={"delay": 0.3, "drop_after": 0.1}, delay=0.4)
        sc = Scenario(store, patients, seed=21)
        sc.random_saves(80)
        cfg = tmp_path / "sync.toml"
        cfg.write_text(
            f'database_url = "{db_url}"\nfhir_base = "{proxy.url}"\nods_code = "RXX"\nmax_entries = 6\n'
            f"read_timeout = 1.0\nconnect_timeout = 1.0\nlease_seconds = 3.0\nbackoff_base = 0.05\nbackoff_max = 0.5\n"
            f"poll_interval = 0.1\nconcurrency = 2\n"
        )
        proc = _worker_process(cfg)
        _wait_for(lambda: queue.figures(store)["sent"] >= 15, 60)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        killed_at = queue.figures(store)
        assert killed_at["in_flight"] > 0 or killed_at["queued"] > 0

        proc = _worker_process(cfg)
        _wait_for(lambda: queue.figures(store)["sent"] >= killed_at["sent"] + 10, 60)
        server.restart()  # the store goes away and comes back on the same port and data
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

        done = _worker_process(cfg, "--once", "--max-wait", "30")
        _, err = done.communicate(timeout=120)
        assert done.returncode == 0, err.decode()[-2000:]
        result = verify(store, server.base_url)
        assert result["sent"] == 80 and result["pending"] == 0
        assert (result["lost"], result["duplicated"], result["out_of_order"]) == (0, 0, 0), result
    finally:
        server.stop()
        store.dispose()


def _wait_for(cond, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")
