"""The CLI end to end: `thrive sync run --once` with a bearer token, JSON-lines logs that carry no
health data and no token, Prometheus metrics (file and endpoint), `thrive sync status`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import requests
from click.testing import CliRunner

from tests.support.servers import SekmetProcess, free_port
from tests.support.sync_synthetic import Scenario, put_patients
from tests.support.sync_workers import new_patients
from thrive_fhir.cli.sync_cmd import sync as sync_cli
from thrive_fhir.ids import new_local_id
from thrive_fhir.localstore import ChangeSet, LocalStore
from thrive_fhir.sync import runner
from thrive_fhir.sync.config import ConfigError, load_config

TOKEN = "s3cr3t-static-token-for-tests-0123456789"
NHS = "9990000018"  # a test-range NHS number with a valid check digit


def test_run_once_logs_no_health_data_and_no_token(tmp_path):
    server = SekmetProcess(
        tmp_path / "bearer", strict=True, server_auth={"types": ["bearer"], "tokens": [TOKEN]}
    ).start()
    try:
        db = f"sqlite:///{tmp_path / 'local.db'}"
        store = LocalStore(db)
        store.migrate()
        patients = new_patients(3)
        put_patients(server.base_url, patients, headers={"Authorization": f"Bearer {TOKEN}"})
        sc = Scenario(store, patients)
        secret_text = "Wants to stop self-harming before exams"
        for p in patients:
            sc.new_goal(p, secret_text)
        bad = {
            "resourceType": "Observation",
            "id": new_local_id(),
            "status": "final",
            "code": {"text": secret_text},
            "subject": {"reference": f"Patient/{patients[0]}", "identifier": {"value": NHS}},
            "valueInteger": "bad",
        }
        with store.session() as s:
            store.record(
                s,
                ChangeSet(
                    patient_key=f"Patient/{patients[0]}",
                    author_ref="PractitionerRole/a",
                    organization_ref="Organization/b",
                ).put(bad),
            )
        log_file, metrics_file = tmp_path / "sync.log", tmp_path / "metrics.prom"
        cfg = tmp_path / "sync.toml"
        cfg.write_text(
            f'database_url = "{db}"\nfhir_base = "{server.base_url}"\nods_code = "RXX"\n'
            f'[auth]\ntype = "bearer"\ntoken_env = "SYNC_TEST_TOKEN"\n'
        )
        env = dict(os.environ, SYNC_TEST_TOKEN=TOKEN)
        thrive = os.path.join(os.path.dirname(sys.executable), "thrive")
        done = subprocess.run(
            [
                thrive,
                "sync",
                "run",
                "--config",
                str(cfg),
                "--once",
                "--max-wait",
                "20",
                "--log-file",
                str(log_file),
                "--metrics-file",
                str(metrics_file),
            ],
            env=env,
            capture_output=True,
            timeout=120,
        )
        # the dead letter makes the run fail visibly: non-zero exit and how many rows need a person
        assert done.returncode == 3, done.stderr.decode()[-2000:]
        assert "1 row(s) dead-lettered and 0 parked" in done.stderr.decode()
        text = log_file.read_text()
        events = [json.loads(line) for line in text.splitlines()]
        assert {"worker_started", "batch_sent", "dead_lettered", "worker_stopped"} <= {e["event"] for e in events}
        for forbidden in [TOKEN, secret_text, NHS, *patients]:
            assert forbidden not in text and forbidden not in done.stderr.decode()
        metrics = metrics_file.read_text()
        assert "thrive_sync_queue_depth 0" in metrics and "thrive_sync_dead_letters 1" in metrics
        assert "thrive_sync_rows_sent_total 3" in metrics

        status = CliRunner().invoke(sync_cli, ["status", "--json", "--database", db])
        fig = json.loads(status.output)
        assert (fig["queued"], fig["in_flight"], fig["sent"], fig["dead"], fig["conflicts"]) == (0, 0, 3, 1, 0)
        human = CliRunner().invoke(sync_cli, ["status", "--database", db])
        assert "dead" in human.output and human.exit_code == 0
        store.dispose()
    finally:
        server.stop()


def test_metrics_endpoint_while_running(tmp_path, sekmet):
    db = f"sqlite:///{tmp_path / 'local.db'}"
    store = LocalStore(db)
    store.migrate()
    patients = new_patients(2)
    put_patients(sekmet.base_url, patients)
    Scenario(store, patients).random_saves(5)
    port = free_port()
    cfg = load_config(
        None,
        env={},
        database_url=db,
        fhir_base=sekmet.base_url,
        ods_code="RXX",
        metrics_port=port,
        metrics_interval=0.2,
        poll_interval=0.1,
    )
    stop = threading.Event()
    t = threading.Thread(target=runner.run, args=(cfg,), kwargs={"stop": stop}, daemon=True)
    t.start()
    body = ""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "thrive_sync_rows_sent_total 5" not in body:
        try:
            body = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
        except requests.RequestException:
            pass
        time.sleep(0.1)
    stop.set()
    t.join(30)
    assert "thrive_sync_rows_sent_total 5" in body and "# TYPE thrive_sync_queue_depth gauge" in body
    store.dispose()


def test_bad_configuration_is_one_readable_line(tmp_path):
    runner_ = CliRunner()
    res = runner_.invoke(
        sync_cli, ["run", "--once", "--database", f"sqlite:///{tmp_path / 'x.db'}"], env={"THRIVE_SYNC_FHIR_BASE": ""}
    )
    assert res.exit_code == 1 and "fhir_base" in res.output and "Traceback" not in res.output
    bad = tmp_path / "bad.toml"
    bad.write_text("fhir_base = [\n")
    res = runner_.invoke(sync_cli, ["status", "--config", str(bad)])
    assert res.exit_code == 1 and "not valid TOML" in res.output
    try:
        load_config(None, env={"THRIVE_SYNC_MAX_ENTRIES": "lots"})
    except ConfigError as exc:
        assert "max_entries" in str(exc)
    else:
        raise AssertionError("bad number accepted")
    cfg = load_config(None, env={"THRIVE_SYNC_AUTH_TYPE": "bearer", "THRIVE_SYNC_AUTH_TOKEN": TOKEN})
    assert TOKEN not in repr(cfg)
