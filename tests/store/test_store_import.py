"""``thrive store import DIR|FILE.ndjson --url BASE [--auth CONFIG]`` against our store and sekmet-fhir."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest
import requests
from click.testing import CliRunner

from tests.support.consent_data import CUSTODIAN, verifier
from tests.support.store_data import observation, patient
from tests.support.store_servers import start_ours
from thrive_fhir.cli import cli
from thrive_fhir.client.ndjson_import import reference_order


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from thrive_fhir.cli import main; main()",
            "synth",
            "--patients",
            "3",
            "--seed",
            "11",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return out


def run(*args):
    return CliRunner().invoke(cli, ["store", "import", *map(str, args)], catch_exceptions=False)


def _counts(folder) -> dict[str, int]:
    counts: dict[str, int] = {}
    for f in folder.glob("*.ndjson"):
        for line in f.read_text().splitlines():
            if line.strip():
                t = json.loads(line)["resourceType"]
                counts[t] = counts.get(t, 0) + 1
    return counts


def test_reference_order_puts_targets_first():
    org = {"resourceType": "Organization", "id": "o"}
    pat = {"resourceType": "Patient", "id": "p", "managingOrganization": {"reference": "Organization/o"}}
    member = {"resourceType": "Observation", "id": "m", "subject": {"reference": "Patient/p"}}
    panel = {
        "resourceType": "Observation",
        "id": "panel",
        "subject": {"reference": "http://x/fhir/Patient/p"},
        "hasMember": [{"reference": "Observation/m"}],
    }
    task = {
        "resourceType": "Task",
        "id": "t",
        "focus": {"reference": "Observation/panel/_history/2"},
        "owner": {"reference": "Organization/o"},
    }
    ordered = reference_order([task, panel, member, pat, org])
    keys = [f"{r['resourceType']}/{r['id']}" for r in ordered]
    assert keys == ["Organization/o", "Patient/p", "Observation/m", "Observation/panel", "Task/t"]


def test_loads_synthetic_population_into_every_server(server, synth_dir):
    result = run(synth_dir, "--url", server.base, "--batch", "25")
    assert result.exit_code == 0, result.output
    expected = _counts(synth_dir)
    assert f"Loaded {sum(expected.values())} of {sum(expected.values())} resources" in result.output
    for rtype, n in expected.items():
        assert f"  {rtype}: {n}" in result.output
        resp = requests.get(
            server.url(rtype), params={"_summary": "count"}, headers={"Accept": "application/fhir+json"}
        )
        assert resp.json()["total"] >= n, rtype
    # loading again updates rather than duplicates (ids are kept)
    again = run(synth_dir, "--url", server.base)
    assert again.exit_code == 0
    pid = json.loads((synth_dir / "Patient.ndjson").read_text().splitlines()[0])["id"]
    assert requests.get(server.url(f"Patient/{pid}"), headers={"Accept": "application/fhir+json"}).status_code == 200


def test_failures_are_summarised_with_the_servers_outcome(ours_sqlite, tmp_path):
    good = patient(str(uuid.uuid4()))
    bad = {**observation(f"Patient/{good['id']}", oid=str(uuid.uuid4())), "status": "not-a-status"}
    fine = observation(f"Patient/{good['id']}", oid=str(uuid.uuid4()))
    path = tmp_path / "mixed.ndjson"
    path.write_text("\n".join(json.dumps(r) for r in (bad, good, fine)) + "\n")
    result = run(path, "--url", ours_sqlite.base)
    assert result.exit_code == 1
    assert "Loaded 2 of 3 resources" in result.output
    assert "1 resource(s) failed:" in result.output
    line = next(li for li in result.output.splitlines() if li.strip().startswith(f"Observation/{bad['id']}"))
    assert "HTTP 422" in line and "status" in line  # the store's own diagnostics
    assert requests.get(ours_sqlite.url(f"Observation/{fine['id']}")).status_code == 200
    assert requests.get(ours_sqlite.url(f"Observation/{bad['id']}")).status_code == 404


def test_with_auth_config_against_a_secured_store(tmp_path, synth_dir):
    server = start_ours(f"sqlite:///{tmp_path / 'sec.db'}", token_verifier=verifier, consent_custodians=[CUSTODIAN])
    try:
        no_auth = run(synth_dir / "Organization.ndjson", "--url", server.base)
        assert no_auth.exit_code == 1 and "HTTP 401" in no_auth.output
        (tmp_path / "token").write_text("custodian")
        conf = tmp_path / "auth.toml"
        conf.write_text(f'[auth]\ntype = "bearer"\ntoken_file = "{tmp_path / "token"}"\n')
        result = run(synth_dir, "--url", server.base, "--auth", conf)
        assert result.exit_code == 0, result.output
    finally:
        server.stop()


def test_bad_input_is_one_readable_line(tmp_path, ours_sqlite):
    broken = tmp_path / "broken.ndjson"
    broken.write_text('{"resourceType": "Patient", "id": "a"}\nnot json\n')
    result = run(broken, "--url", ours_sqlite.base)
    assert result.exit_code == 1
    assert result.output.strip() == "thrive store import: broken.ndjson line 2: not JSON"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run(empty, "--url", ours_sqlite.base).exit_code == 1
    assert run(broken, "--url", "ftp://x").exit_code == 2


def test_unreachable_server_stops_with_one_reason():
    from tests.support.servers import free_port
    from thrive_fhir.client.fhir_http import FhirClient
    from thrive_fhir.client.ndjson_import import Importer, Unreachable

    slept: list[float] = []
    importer = Importer(FhirClient(f"http://127.0.0.1:{free_port()}"), sleep=slept.append)
    with pytest.raises(Unreachable, match="connection refused after 5 attempts"):
        importer.run([patient(str(uuid.uuid4()))])
    assert slept == [0.5, 1.0, 2.0, 4.0]
