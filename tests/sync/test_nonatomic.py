"""Stores that answer a transaction as a batch (Medplum without its ``transaction-bundles`` feature).

The silent loss this guards against: the store answers 200 with a status per entry; one entry is a 412
(another agency edited the resource between our read and our write) while the save's Provenance was
written. The worker must read every entry, park the row as a conflict, and leave no Provenance for a
change that did not land.
"""

from __future__ import annotations

import pytest
import requests

from tests.support.sync_quirks import QuirksStoreProcess
from tests.support.sync_synthetic import Scenario, put_patients
from tests.support.sync_verify import verify
from tests.support.sync_workers import drain, make_worker, new_patients
from thrive_fhir.ids import resource_id
from thrive_fhir.localstore import outbox as queue


@pytest.fixture(scope="module")
def batching_store(tmp_path_factory):
    server = QuirksStoreProcess(tmp_path_factory.mktemp("batching"), "batch-transactions").start()
    yield server
    server.stop()


def _foreign_edit(base: str, goal_id: str) -> None:
    theirs = requests.get(f"{base}/Goal/{goal_id}", timeout=30).json()
    theirs["description"] = {"text": "Changed by another agency"}
    theirs["meta"] = {"source": "https://other-agency.example/fhir"}
    r = requests.put(
        f"{base}/Goal/{goal_id}", json=theirs, headers={"Content-Type": "application/fhir+json"}, timeout=30
    )
    assert r.status_code in (200, 201), r.text


def _uids(store):
    with store.engine.connect() as c:
        return [r.uid for r in c.execute(queue.o.select().order_by(queue.o.c.id)).all()]


@pytest.mark.parametrize("atomic", [True, False], ids=["transaction-answered-as-batch", "atomic_transactions-false"])
def test_foreign_edit_between_read_and_write_is_parked_not_lost(batching_store, sqlite_url, proxy_factory, atomic):
    from thrive_fhir.localstore import LocalStore

    base = batching_store.base_url
    # the default worker (atomic_transactions true) must find out from the answer itself
    kw = {} if atomic else {"atomic_transactions": False}
    store = LocalStore(sqlite_url)
    store.migrate()
    [pid] = new_patients(1)
    put_patients(base, [pid])
    sc = Scenario(store, [pid])
    g = sc.new_goal(pid, "Sleep through the night")
    drain([make_worker(store, base, **kw)])
    assert queue.figures(store)["sent"] == 1

    # Our clinician edits the goal; another agency's edit lands just before our write reaches the store.
    sc.update_goal(pid, g["id"])
    edited = []

    def edit_first_write(method, path):
        if method == "POST" and not edited:
            edited.append(path)
            _foreign_edit(base, g["id"])

    proxy = proxy_factory(base, on_request=edit_first_write)
    drain([make_worker(store, proxy.url, **kw)])
    assert edited, "the worker never wrote"

    fig = queue.figures(store)
    assert (fig["sent"], fig["conflicts"], fig["pending"] if "pending" in fig else fig["queued"]) == (1, 1, 0), fig
    assert (
        requests.get(f"{base}/Goal/{g['id']}", timeout=30).json()["description"]["text"] == "Changed by another agency"
    )
    # no Provenance claims a change that did not land
    second_uid = _uids(store)[1]
    prov = requests.get(f"{base}/Provenance/{resource_id('provenance', second_uid)}", timeout=30)
    assert prov.status_code in (404, 410), prov.text
    result = verify(store, base)
    assert (result["lost"], result["duplicated"], result["overwritten"], result["stray_provenance"]) == (0, 0, 0, 0), (
        result
    )
    store.dispose()


def test_run_once_exits_non_zero_and_counts_parked_rows(batching_store, sqlite_url, tmp_path):
    """`thrive sync run --once` must not report success while a save waits for a person."""
    from click.testing import CliRunner

    from thrive_fhir.cli.sync_cmd import sync as sync_cli
    from thrive_fhir.localstore import LocalStore

    base = batching_store.base_url
    store = LocalStore(sqlite_url)
    store.migrate()
    [pid] = new_patients(1)
    put_patients(base, [pid])
    sc = Scenario(store, [pid])
    g = sc.new_goal(pid)
    cfg = tmp_path / "sync.toml"
    cfg.write_text(
        f'database_url = "{sqlite_url}"\nfhir_base = "{base}"\nods_code = "RXX"\nbackoff_base = 0.05\n'
        f'poll_interval = 0.1\nlog_file = "{tmp_path / "sync.log"}"\n'
    )
    runner = CliRunner()
    first = runner.invoke(sync_cli, ["run", "--config", str(cfg), "--once", "--max-wait", "10"])
    assert first.exit_code == 0, first.output
    _foreign_edit(base, g["id"])
    sc.update_goal(pid, g["id"])
    sc.new_score(pid)
    second = runner.invoke(sync_cli, ["run", "--config", str(cfg), "--once", "--max-wait", "10"])
    assert second.exit_code == 3, second.output
    assert "0 row(s) dead-lettered and 1 parked as conflicts" in second.output
    # the next run has nothing new refused: success again
    third = runner.invoke(sync_cli, ["run", "--config", str(cfg), "--once", "--max-wait", "10"])
    assert third.exit_code == 0, third.output
    store.dispose()
