"""The same contract against every target store: order, exactly once, Provenance, meta.source,
If-Match conflicts parked (never overwritten), rejected payloads dead-lettered with the store's answer.

Targets (conftest.TARGETS, sync_targets.py): sekmet-fhir, our store, our store in quirks mode as
Medplum (identifier mode, non-atomic), and a site's own server named by THRIVE_TEST_FHIR_BASE."""

from __future__ import annotations

import json

import requests
from click.testing import CliRunner

from tests.support.sync_synthetic import Scenario
from tests.support.sync_verify import verify
from tests.support.sync_workers import drain
from thrive_fhir import canonical
from thrive_fhir.cli.sync_cmd import sync as sync_cli
from thrive_fhir.ids import resource_id
from thrive_fhir.localstore import ChangeSet, LocalStore
from thrive_fhir.localstore import outbox as queue


def _store(url):
    s = LocalStore(url)
    s.migrate()
    return s


def _get(target, path):
    r = requests.get(f"{target.base_url}/{path}", headers=target.headers(), timeout=30)
    r.raise_for_status()
    return r.json()


def _goal(target, store, local_id):
    return _get(target, f"Goal/{target.store_id(store, 'Goal', local_id)}")


def test_every_save_lands_once_in_order_with_provenance(target, sqlite_url):
    store = _store(sqlite_url)
    patients = target.patients(6)
    sc = Scenario(store, patients, seed=11)
    sc.random_saves(60)
    drain([target.worker(store, max_entries=12)])
    result = verify(store, target.base_url, target.headers())
    assert result["sent"] == 60 and result["pending"] == 0
    assert (result["lost"], result["duplicated"], result["out_of_order"]) == (0, 0, 0), result
    # current store state of every goal equals the newest local version, with our meta.source
    for p in patients:
        for gid in sc.goals[p]:
            remote = _goal(target, store, gid)
            assert remote["description"] == store.current("Goal", gid)["description"]
            assert remote["meta"]["source"].startswith(canonical.source_uri("RXX") + "#")
    # one Provenance per save, deterministic id, pointing at what the save wrote
    rows = queue.figures(store)
    assert rows["sent"] == 60
    with store.engine.connect() as c:
        uids = [r.uid for r in c.execute(queue.o.select()).all()]
    prov = _get(target, f"Provenance/{target.store_id(store, 'Provenance', resource_id('provenance', uids[0]))}")
    assert prov["target"] and prov["agent"][0]["who"]["reference"].startswith("PractitionerRole/")
    store.dispose()


def test_foreign_edit_is_parked_as_conflict_never_overwritten(target, sqlite_url, tmp_path):
    store = _store(sqlite_url)
    [pid] = target.patients(1)
    sc = Scenario(store, [pid])
    g = sc.new_goal(pid, "Sleep through the night")
    drain([target.worker(store)])
    # another agency edits the goal in the shared store
    theirs = _goal(target, store, g["id"])
    theirs["description"] = {"text": "Edited by the school nurse"}
    theirs["meta"] = {"source": "https://school.example/fhir"}
    r = requests.put(
        f"{target.base_url}/Goal/{theirs['id']}",
        json=theirs,
        headers={"Content-Type": "application/fhir+json", **target.headers()},
        timeout=30,
    )
    assert r.status_code in (200, 201)
    sc.update_goal(pid, g["id"])  # our clinician edits the older version
    sc.update_goal(pid, g["id"])
    sc.new_score(pid)  # unrelated change for the same young person still flows
    drain([target.worker(store)])
    fig = queue.figures(store)
    assert fig["conflicts"] == 2 and fig["sent"] == 2
    assert _goal(target, store, g["id"])["description"]["text"] == "Edited by the school nurse"
    result = verify(store, target.base_url, target.headers())
    assert result["overwritten"] == 0 and result["lost"] == 0 and result["duplicated"] == 0

    runner = CliRunner()
    listed = runner.invoke(sync_cli, ["conflicts", "list", "--database", sqlite_url])
    assert listed.exit_code == 0 and "Goal/" in listed.output
    first_id = int(listed.output.split()[0])
    shown = runner.invoke(sync_cli, ["conflicts", "show", str(first_id), "--json", "--database", sqlite_url])
    assert json.loads(shown.output)["outcome"]["description"]["text"] == "Edited by the school nurse"
    # a person decides: drop the first edit (theirs stands), keep our second edit over theirs
    second_id = int(listed.output.strip().splitlines()[1].split()[0])
    cfg = tmp_path / "sync.toml"
    cfg.write_text(target.config(sqlite_url))
    res = runner.invoke(
        sync_cli,
        ["conflicts", "resolve", str(first_id), "--keep", "theirs", "--config", str(cfg)],
        env={"THRIVE_SYNC_ODS_CODE": "RXX"},
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        sync_cli,
        ["conflicts", "resolve", str(second_id), "--keep", "ours", "--config", str(cfg)],
        env={"THRIVE_SYNC_ODS_CODE": "RXX"},
    )
    assert res.exit_code == 0, res.output
    drain([target.worker(store)])
    assert _goal(target, store, g["id"])["description"] == store.current("Goal", g["id"])["description"]
    fig = queue.figures(store)
    assert (fig["conflicts"], fig["discarded"], fig["sent"]) == (0, 1, 3)
    store.dispose()


def test_rejected_payload_is_dead_lettered_alone_with_outcome(target, sqlite_url):
    store = _store(sqlite_url)
    patients = target.patients(3)
    sc = Scenario(store, patients)
    for p in patients:
        sc.new_goal(p)
    bad = {
        "resourceType": "Observation",
        "id": "7d1c5b9e-3f0a-4c8e-9d1b-2a6f4e8c0b13",
        "status": "final",
        "code": {"text": "x"},
        "subject": {"reference": f"Patient/{patients[1]}"},
        "valueInteger": "not a number",
    }
    with store.session() as s:
        store.record(
            s,
            ChangeSet(
                patient_key=f"Patient/{patients[1]}", author_ref="PractitionerRole/a", organization_ref="Organization/b"
            ).put(bad),
        )
    for p in patients:
        sc.new_score(p)
    drain([target.worker(store, max_entries=50)])
    fig = queue.figures(store)
    assert fig["dead"] == 1 and fig["sent"] == 6
    runner = CliRunner()
    listed = runner.invoke(sync_cli, ["dead-letters", "list", "--database", sqlite_url])
    row_id = int(listed.output.split()[0])
    shown = json.loads(
        runner.invoke(sync_cli, ["dead-letters", "show", str(row_id), "--json", "--database", sqlite_url]).output
    )
    assert shown["outcome"]["resourceType"] == "OperationOutcome" and shown["last_status"] in (400, 422)
    assert [h["kind"] for h in shown["history"]] == ["dead"]
    # re-queued unchanged it is rejected again, and its history keeps both
    assert runner.invoke(sync_cli, ["dead-letters", "retry", str(row_id), "--database", sqlite_url]).exit_code == 0
    drain([target.worker(store)])
    shown = json.loads(
        runner.invoke(sync_cli, ["dead-letters", "show", str(row_id), "--json", "--database", sqlite_url]).output
    )
    assert [h["kind"] for h in shown["history"]] == ["dead", "requeued", "dead"]
    bad_retry = runner.invoke(sync_cli, ["dead-letters", "retry", "999999", "--database", sqlite_url])
    assert bad_retry.exit_code == 1 and "not a dead letter" in bad_retry.output
    store.dispose()
