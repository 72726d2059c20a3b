"""Resolving a parked sync conflict, against a real store process on loopback, with the local side on
SQLite and PostgreSQL.

"theirs": the store's current version becomes the local version (the app shows and edits it from
then on), nothing is pushed back, and the next local edit meets the store without a new conflict.
"mine": our version is sent again with If-Match on the store's current version.

Targets: our store as its own process, and our store behaving as Medplum (identifier mode: the
store names its own ids; SMART Backend Services auth), so the resolution uses the worker's own
configuration and credentials.
"""

from __future__ import annotations

import pytest
import requests
from click.testing import CliRunner

from tests.support.sync_synthetic import Scenario
from tests.support.sync_workers import drain
from thrive_fhir.cli.sync_cmd import sync as sync_cli
from thrive_fhir.localstore import models as m
from thrive_fhir.localstore import outbox as queue


@pytest.fixture(scope="module", params=["own", "medplum-like"])
def target(request, tmp_path_factory):
    from tests.support.sync_targets import start

    server = start(request.param, tmp_path_factory.mktemp(request.param))
    yield server
    server.stop()


def _goal(target, store, local_id):
    r = requests.get(
        f"{target.base_url}/Goal/{target.store_id(store, 'Goal', local_id)}", headers=target.headers(), timeout=30
    )
    r.raise_for_status()
    return r.json()


def _edit_in_store(target, store, local_id, text):
    """Another agency changes the goal in the shared store."""
    theirs = _goal(target, store, local_id)
    theirs["description"] = {"text": text}
    theirs["meta"] = {"source": "https://school.example/fhir"}
    r = requests.put(
        f"{target.base_url}/Goal/{theirs['id']}",
        json=theirs,
        headers={"Content-Type": "application/fhir+json", **target.headers()},
        timeout=30,
    )
    assert r.status_code in (200, 201), r.text


def _conflict(target, local_store):
    """A goal synced, edited by someone else in the store, then edited by us: one parked conflict."""
    [pid] = target.patients(1)
    sc = Scenario(local_store, [pid])
    g = sc.new_goal(pid, "Sleep through the night")
    drain([target.worker(local_store)])
    _edit_in_store(target, local_store, g["id"], "Edited by the school nurse")
    sc.update_goal(pid, g["id"])
    drain([target.worker(local_store)])
    [row] = _rows(local_store, "conflict")
    return sc, pid, g["id"], row


def _rows(store, status):
    with store.reader.connect() as c:
        return [r.id for r in c.execute(queue.o.select().where(queue.o.c.status == status)).all()]


def _resolve(target, db_url, tmp_path, row_id, *flag):
    cfg = tmp_path / "sync.toml"
    cfg.write_text(target.config(db_url))
    return CliRunner().invoke(
        sync_cli,
        ["conflicts", "resolve", str(row_id), *flag, "--config", str(cfg)],
        env={"THRIVE_SYNC_ODS_CODE": "RXX"},
    )


def test_theirs_makes_the_stores_version_the_local_one_without_a_push(target, local_store, db_url, tmp_path):
    sc, pid, gid, row = _conflict(target, local_store)
    assert local_store.current("Goal", gid)["description"]["text"].endswith("(edit 2)")
    store_version = _goal(target, local_store, gid)["meta"]["versionId"]

    res = _resolve(target, db_url, tmp_path, row, "--theirs")
    assert res.exit_code == 0, res.output
    assert "kept the store version" in res.output

    # the local store now holds the store's version as its newest, with no new row to push
    assert local_store.current("Goal", gid)["description"]["text"] == "Edited by the school nurse"
    assert local_store.current("Goal", gid)["id"] == gid  # the local id, even where the store named its own
    assert local_store.current_version("Goal", gid) == 3
    fig = queue.figures(local_store)
    assert (fig["queued"], fig["conflicts"], fig["discarded"]) == (0, 0, 1)
    assert _rows(local_store, "pending") == [] and len(_rows(local_store, queue.IMPORTED)) == 1
    [(sv, lv, _sid)] = queue.load_states(local_store, [("Goal", gid)]).values()
    assert (sv, lv) == (store_version, 3)
    history = local_store.history("Goal", gid)
    assert [h["version"] for h in history] == [1, 2, 3] and history[-1]["author_ref"] == ""
    with local_store.reader.connect() as c:
        kinds = [e.detail for e in c.execute(m.outbox_event.select().where(m.outbox_event.c.outbox_id == row)).all()]
    assert any("now the local version: Goal/" in (k or "") for k in kinds)

    # nothing was sent back, and the next local edit goes over the store's version without a conflict
    drain([target.worker(local_store)])
    assert _goal(target, local_store, gid)["meta"]["versionId"] == store_version
    sc.update_goal(pid, gid)
    drain([target.worker(local_store)])
    assert queue.figures(local_store)["conflicts"] == 0
    assert _goal(target, local_store, gid)["description"]["text"] == "Edited by the school nurse (edit 4)"


def test_mine_resends_ours_over_the_stores_current_version(target, local_store, db_url, tmp_path):
    _sc, _pid, gid, row = _conflict(target, local_store)
    res = _resolve(target, db_url, tmp_path, row, "--mine")
    assert res.exit_code == 0, res.output
    drain([target.worker(local_store)])
    assert _goal(target, local_store, gid)["description"]["text"] == "Sleep through the night (edit 2)"
    assert queue.figures(local_store)["conflicts"] == 0 and local_store.current_version("Goal", gid) == 2


def test_theirs_leaves_a_resource_a_later_local_save_changed(target, local_store, db_url, tmp_path):
    """Two parked edits of one goal: resolving the older as theirs must not replace the newer local edit."""
    sc, pid, gid, row = _conflict(target, local_store)
    sc.update_goal(pid, gid)
    drain([target.worker(local_store)])
    later = [r for r in _rows(local_store, "conflict") if r != row]
    assert len(later) == 1
    res = _resolve(target, db_url, tmp_path, row, "--theirs")
    assert res.exit_code == 0, res.output
    assert local_store.current("Goal", gid)["description"]["text"].endswith("(edit 3)")
    assert _rows(local_store, queue.IMPORTED) == []


def test_resolve_refuses_bad_input_in_one_line(target, local_store, db_url, tmp_path):
    _sc, _pid, _gid, row = _conflict(target, local_store)
    both = _resolve(target, db_url, tmp_path, row, "--theirs", "--keep", "ours")
    assert both.exit_code != 0 and "choose one" in both.output
    neither = _resolve(target, db_url, tmp_path, row)
    assert neither.exit_code != 0 and "--theirs or --mine" in neither.output
    missing = _resolve(target, db_url, tmp_path, row + 1000, "--theirs")
    assert missing.exit_code == 1 and "no outbox row" in missing.output and "Traceback" not in missing.output
    # an unreachable store: one line, nothing changed
    cfg = tmp_path / "down.toml"
    cfg.write_text(target.config(db_url).replace(target.base_url, "http://127.0.0.1:9"))
    down = CliRunner().invoke(
        sync_cli,
        ["conflicts", "resolve", str(row), "--theirs", "--config", str(cfg)],
        env={"THRIVE_SYNC_ODS_CODE": "RXX"},
    )
    assert down.exit_code == 1 and len(down.output.strip().splitlines()) == 1 and "Traceback" not in down.output
    assert _rows(local_store, "conflict") == [row]
