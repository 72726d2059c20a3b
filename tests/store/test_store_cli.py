"""``thrive store``: bad arguments give one line and exit 2; serve and export work end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import requests

from tests.support.servers import free_port, wait_up
from tests.support.store_data import patient

THRIVE = str(Path(sys.executable).parent / "thrive")


def run(*args, timeout=60):
    return subprocess.run([THRIVE, "store", *args], capture_output=True, text=True, timeout=timeout)


def test_bad_arguments_exit_2_with_one_line(tmp_path):
    for args in (
        ["serve"],
        ["serve", "-d", str(tmp_path / "x.db"), "--port", "99999"],
        ["serve", "-d", "mysql://u@h/db"],
        ["serve", "-d", "x.db", "--no-validate", "--warn-only"],
        ["export", "-d", str(tmp_path / "missing.db"), "-o", str(tmp_path / "o")],
        ["export", "-d", str(tmp_path / "x.db"), "-o", str(tmp_path / "o"), "--type", "Nope"],
    ):
        result = run(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr
    assert run("serve", "--help").returncode == 0


def test_serve_then_export(tmp_path):
    db = tmp_path / "cli.db"
    port = free_port()
    proc = subprocess.Popen(
        [THRIVE, "store", "serve", "-d", str(db), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_up(base + "/metadata", timeout=60, proc=proc)
        resp = requests.post(base + "/Patient", json=patient(), headers={"Content-Type": "application/fhir+json"})
        assert resp.status_code == 201
        pid = resp.json()["id"]
    finally:
        proc.terminate()
        proc.wait(10)
    result = run("export", "-d", str(db), "-o", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert pid in (tmp_path / "out" / "Patient.ndjson").read_text()
