"""``thrive sandbox serve`` as a process: client registry file, one origin, clean stop; bad input -> one line."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import urljoin

import requests

from thrive_fhir.sandbox.clientkit import assertion_form
from thrive_fhir.sandbox.keys import SigningKey, jwks

REPO = Path(__file__).resolve().parents[2]
THRIVE = [sys.executable, "-c", "from thrive_fhir.cli import main; main()"]


def test_serve_with_a_registry_file_and_stop_on_sigterm(tmp_path, start_thrive):
    backend_key = SigningKey.generate("ES384")
    registry = {
        "clients": [
            {
                "client_id": "sync",
                "auth": "private_key_jwt",
                "grant_types": ["client_credentials"],
                "scopes": "system/Patient.rs",
                "jwks": jwks(backend_key),
            },
            {
                "client_id": "app",
                "auth": "none",
                "redirect_uris": ["http://127.0.0.1:9/cb"],
                "launch_url": "http://127.0.0.1:9/launch",
                "scopes": ["launch", "patient/*.rs"],
                "quirks": {"no_patient": True},
            },
        ],
        "quirks": {"relative_discovery_endpoints": True},
        "users": [{"id": "tester", "name": "Tess Sandbox", "fhirUser": "Practitioner/tess"}],
    }
    clients = tmp_path / "clients.json"
    clients.write_text(json.dumps(registry))
    key_file = tmp_path / "auth.pem"
    proc, out = start_thrive(
        "sandbox",
        "serve",
        "--database",
        f"sqlite:///{tmp_path}/ehr.db",
        "--port",
        "0",
        "--clients",
        str(clients),
        "--key",
        str(key_file),
        ready="Ctrl-C",
        timeout=120,
    )
    assert "development and testing only" in out, out
    base = re.search(r"FHIR base \(iss\): (\S+)", out).group(1)
    assert "Mock switches:   (sandbox) relative_discovery_endpoints=True" in out
    assert "Mock switches:   app no_patient=True" in out
    conf = requests.get(base + "/.well-known/smart-configuration", timeout=10).json()
    assert conf["token_endpoint"] == "/auth/token"  # the registry file's switch is in force
    token_endpoint = urljoin(base + "/", conf["token_endpoint"])
    form = {
        "grant_type": "client_credentials",
        "scope": "system/Patient.rs",
        **assertion_form(backend_key, "sync", token_endpoint),
    }
    token = requests.post(token_endpoint, data=form, timeout=10).json()["access_token"]
    search = requests.get(base + "/Patient", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert search.status_code == 200
    ehr = requests.get(base.rsplit("/fhir", 1)[0] + "/ehr/", timeout=10)
    assert "Tess Sandbox" in ehr.text  # users from the registry file
    assert key_file.exists() and oct(key_file.stat().st_mode & 0o777) == "0o600"
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == 0
    # serve keeps the auth server's state in the EHR database, so a restart logs nobody out.
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{tmp_path}/ehr.db")
    with engine.connect() as conn:
        kinds = {row[0] for row in conn.execute(sa.text("SELECT kind FROM sandbox_auth_state"))}
    engine.dispose()
    assert "jti" in kinds  # the sync client's assertion id, remembered against replay


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*THRIVE, "sandbox", "serve", *args], cwd=REPO, capture_output=True, text=True, timeout=60)


def test_bad_registry_file_is_one_readable_line(tmp_path):
    bad = tmp_path / "clients.json"
    bad.write_text(json.dumps({"clients": [{"client_id": "x", "auth": "private_key_jwt"}]}))
    proc = run("--database", f"sqlite:///{tmp_path}/ehr.db", "--port", "0", "--clients", str(bad))
    assert proc.returncode == 1
    assert proc.stderr.strip() == "Error: client 'x': private_key_jwt needs jwks_uri or jwks"
    bad.write_text("{not json")
    proc = run("--database", f"sqlite:///{tmp_path}/ehr.db", "--port", "0", "--clients", str(bad))
    assert proc.returncode == 1 and "is not valid JSON" in proc.stderr and "Traceback" not in proc.stderr


def test_refuses_a_non_loopback_host(tmp_path):
    proc = run("--database", f"sqlite:///{tmp_path}/ehr.db", "--host", "0.0.0.0", "--port", "0")
    assert proc.returncode == 1 and "development only" in proc.stderr and "Traceback" not in proc.stderr


def test_bad_mock_switch_in_the_registry_is_one_readable_line(tmp_path):
    clients = tmp_path / "clients.json"
    clients.write_text(json.dumps({"clients": [], "quirks": {"token_lifetime": -5}}))
    result = run("--database", f"sqlite:///{tmp_path}/ehr.db", "--port", "0", "--clients", str(clients))
    assert result.returncode != 0
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "token_lifetime" in lines[0] and "Traceback" not in result.stderr
