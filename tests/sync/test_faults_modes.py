"""The fault proof again, for stores that are not the easy case (our store in quirks mode, and a site's
own server named by THRIVE_TEST_FHIR_BASE: see sync_targets.py; no restart for that one):

- ``identifier``: the store refuses client-assigned ids (worker in identifier mode);
- ``non-atomic``: the store answers transactions as batches (worker with atomic_transactions = false);
- ``medplum-like``: both, plus empty error bodies under return=minimal (identifier mode, non-atomic).

Injected 5xx/429/timeouts/dropped connections, a worker SIGKILLed mid-batch and the store restarted:
lost = duplicated = out of order = overwritten = 0, and every conflict surfaced.
"""

from __future__ import annotations

import signal

import pytest
import requests

from tests.support.sync_quirks import QuirksStoreProcess, create_patients
from tests.support.sync_synthetic import Scenario
from tests.support.sync_verify import verify
from tests.support.sync_workers import drain, make_worker
from tests.sync.test_faults import FAULTS, _rows_touching, _wait_for, _worker_process
from thrive_fhir.localstore import LocalStore
from thrive_fhir.localstore import models as m
from thrive_fhir.localstore import outbox as queue

pytestmark = pytest.mark.slow  # about 2.5 minutes for the six stores-by-fault cases

MODES = {
    "identifier": ("server-ids", {"id_mode": "identifier"}),
    "non-atomic": ("batch-transactions", {"atomic_transactions": False}),
    "medplum-like": (
        "batch-transactions,server-ids,empty-errors",
        {"id_mode": "identifier", "atomic_transactions": False, "prefer_return": "representation"},
    ),
}


def _toml(settings: dict) -> str:
    return "".join(
        f"{k} = {str(v).lower() if isinstance(v, bool) else repr(v).replace(chr(39), chr(34))}\n"
        for k, v in settings.items()
    )


def _store_id(store, rtype, rid):
    with store.engine.connect() as c:
        return (
            c.execute(
                m.sync_resource_state.select().where(
                    m.sync_resource_state.c.resource_type == rtype, m.sync_resource_state.c.resource_id == rid
                )
            )
            .first()
            .store_id
        )


def _foreign_edit(base, store_id, headers=None):
    theirs = requests.get(f"{base}/Goal/{store_id}", headers=headers, timeout=30).json()
    theirs["description"] = {"text": "Changed by another agency"}
    theirs["meta"] = {"source": "https://other-agency.example/fhir"}
    r = requests.put(
        f"{base}/Goal/{store_id}",
        json=theirs,
        headers={"Content-Type": "application/fhir+json", **(headers or {})},
        timeout=30,
    )
    assert r.status_code == 200, r.text


class _QuirksTarget:
    """A quirks-mode store as a sync_targets.Target-like object."""

    def __init__(self, workdir, mode):
        quirks, self.settings = MODES[mode]
        self.server = QuirksStoreProcess(workdir, quirks).start()
        self.base_url = self.server.base_url

    def auth(self):
        return None

    def headers(self):
        return {}

    def patients(self, n):
        return create_patients(self.base_url, n)

    def stop(self):
        self.server.stop()


@pytest.mark.parametrize("mode", [*MODES, "external"])
def test_exactly_once_in_order_under_injected_faults(mode, sqlite_url, tmp_path, proxy_factory):
    from tests.support.sync_targets import start

    target = start("external", tmp_path) if mode == "external" else _QuirksTarget(tmp_path / "store", mode)
    settings = target.settings
    store = LocalStore(sqlite_url)
    store.migrate()
    server = target
    try:
        patients = target.patients(6)
        proxy = proxy_factory(server.base_url, seed=5, rates=FAULTS, delay=1.3)
        sc = Scenario(store, patients, seed=3)
        for p in patients:
            sc.new_goal(p)
        workers = [
            make_worker(
                store, proxy.url, read_timeout=1.0, max_entries=10, max_patients=3, auth=target.auth(), **settings
            )
            for _ in range(2)
        ]
        drain(workers)
        contested = [sc.goals[patients[0]][0], sc.goals[patients[1]][0]]
        for gid in contested:
            _foreign_edit(server.base_url, _store_id(store, "Goal", gid), target.headers())
        sc.update_goal(patients[0], contested[0])
        sc.update_goal(patients[1], contested[1])
        sc.random_saves(40)
        drain(workers)
        result = verify(store, server.base_url, target.headers())
        expected_conflicts = _rows_touching(store, contested, after_version=1)
        assert result["rows"] == sc.saves == 6 + 2 + 40
        assert result["conflict"] == expected_conflicts >= 2, result
        assert result["sent"] == sc.saves - expected_conflicts and result["pending"] == 0 and result["dead"] == 0, (
            result
        )
        assert (
            result["lost"],
            result["duplicated"],
            result["out_of_order"],
            result["overwritten"],
            result["stray_provenance"],
        ) == (0, 0, 0, 0, 0), result
        for gid in contested:
            remote = requests.get(
                f"{server.base_url}/Goal/{_store_id(store, 'Goal', gid)}", headers=target.headers(), timeout=30
            ).json()
            assert remote["description"]["text"] == "Changed by another agency"
        assert sum(proxy.counts[f] for f in FAULTS) > 0
    finally:
        store.dispose()
        target.stop()


@pytest.mark.parametrize("mode", list(MODES))
def test_worker_killed_and_store_restarted(mode, sqlite_url, tmp_path, proxy_factory):
    quirks, settings = MODES[mode]
    server = QuirksStoreProcess(tmp_path / "store", quirks).start()
    store = LocalStore(sqlite_url)
    store.migrate()
    try:
        patients = create_patients(server.base_url, 5)
        proxy = proxy_factory(server.base_url, seed=9, rates={"delay": 0.3, "drop_after": 0.1}, delay=0.4)
        sc = Scenario(store, patients, seed=21)
        sc.random_saves(50)
        cfg = tmp_path / "sync.toml"
        cfg.write_text(
            f'database_url = "{sqlite_url}"\nfhir_base = "{proxy.url}"\nods_code = "RXX"\nmax_entries = 6\n'
            f"read_timeout = 1.0\nconnect_timeout = 1.0\nlease_seconds = 3.0\nbackoff_base = 0.05\nbackoff_max = 0.5\n"
            f"poll_interval = 0.1\nconcurrency = 2\n" + _toml(settings)
        )
        proc = _worker_process(cfg)
        _wait_for(lambda: queue.figures(store)["sent"] >= 10, 60)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        killed_at = queue.figures(store)
        proc = _worker_process(cfg)
        _wait_for(lambda: queue.figures(store)["sent"] >= killed_at["sent"] + 8, 60)
        server.restart()
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        done = _worker_process(cfg, "--once", "--max-wait", "30")
        _, err = done.communicate(timeout=120)
        assert done.returncode == 0, err.decode()[-2000:]
        result = verify(store, server.base_url)
        assert result["sent"] == 50 and result["pending"] == 0, result
        assert (result["lost"], result["duplicated"], result["out_of_order"], result["stray_provenance"]) == (
            0,
            0,
            0,
            0,
        ), result
    finally:
        store.dispose()
        server.stop()
