"""``thrive audit --patient ID|NHS-NUMBER --source URL``: lists the AuditEvents the store wrote for
agency requests (allowed and refused), against our store over HTTP."""

from __future__ import annotations

import json
import uuid

import pytest
import requests
from click.testing import CliRunner

from tests.support.consent_data import CUSTODIAN, ORG_A, WORKER_A, auth, consent, day, verifier
from tests.support.store_data import observation, patient, synthetic_nhs_number
from tests.support.store_servers import start_ours
from thrive_fhir.cli import cli


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    work = tmp_path_factory.mktemp("audit-cli")
    server = start_ours(f"sqlite:///{work / 'store.db'}", token_verifier=verifier, consent_custodians=[CUSTODIAN])
    shared, hidden = str(uuid.uuid4()), str(uuid.uuid4())
    nhs = synthetic_nhs_number()

    def put(r):
        requests.put(server.url(f"{r['resourceType']}/{r['id']}"), json=r, headers=auth("custodian")).raise_for_status()

    put(patient(shared, nhs=nhs))
    put(patient(hidden))
    oid = str(uuid.uuid4())
    put(observation(f"Patient/{shared}", oid=oid))
    put(consent(str(uuid.uuid4()), shared, [ORG_A], start=day(-1), end=day(10)))
    assert requests.get(server.url(f"Observation/{oid}"), headers=auth("agency-a")).status_code == 200
    assert requests.get(server.url(f"Patient/{hidden}"), headers=auth("agency-a")).status_code == 404
    token_file = work / "token"
    token_file.write_text("custodian\n")
    conf = work / "auth.toml"
    conf.write_text(f'[auth]\ntype = "bearer"\ntoken_file = "{token_file}"\n')
    yield server, shared, hidden, nhs, oid, str(conf)
    server.stop()


def run(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_lists_an_allowed_read_by_id_and_by_nhs_number(setup):
    server, shared, _hidden, nhs, oid, conf = setup
    for who in (shared, nhs):
        result = run("audit", "--patient", who, "--source", server.base, "--auth", conf)
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert lines[0].split()[:3] == ["recorded", "outcome", "interaction"]
        row = lines[1]
        assert " ok " in row and " read " in row and WORKER_A in row and ORG_A in row and f"Observation/{oid}" in row
        assert lines[-1] == f"1 event(s) about Patient/{shared}."


def test_lists_a_refused_read_with_its_reason(setup):
    server, _shared, hidden, _nhs, _oid, conf = setup
    result = run("audit", "--patient", hidden, "--source", server.base, "--auth", conf, "--json")
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.output.splitlines()]
    assert len(events) == 1
    assert events[0]["outcome"] == "4" and "not shared" in events[0]["outcomeDesc"]
    table = run("audit", "--patient", hidden, "--source", server.base, "--auth", conf)
    assert " refused " in table.output and "not shared" in table.output


def test_bad_input_is_one_line_and_non_zero(setup):
    server, _shared, _hidden, _nhs, _oid, conf = setup
    bad_nhs = run("audit", "--patient", "9990000001", "--source", server.base, "--auth", conf)
    assert bad_nhs.exit_code == 1
    unknown = run("audit", "--patient", synthetic_nhs_number(), "--source", server.base, "--auth", conf)
    assert unknown.exit_code == 1 and "no young person with NHS number" in unknown.output
    no_token = run("audit", "--patient", "abc", "--source", server.base)
    assert no_token.exit_code == 1 and "401" in no_token.output and "Traceback" not in no_token.output
    assert len(no_token.output.strip().splitlines()) == 1
    missing_conf = run("audit", "--patient", "abc", "--source", server.base, "--auth", conf + ".nope")
    assert missing_conf.exit_code != 0 and "Traceback" not in missing_conf.output
