"""``thrive demo`` as a user runs it: a child process that starts everything, answers, and stops clean."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
THRIVE = [sys.executable, "-c", "from thrive_fhir.cli import main; main()"]


def processes_mentioning(text: str) -> list[int]:
    """Pids whose command line contains ``text`` (the demo's children all name its workdir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found


def ports_in(output: str) -> set[int]:
    return {int(p) for p in re.findall(r"http://127\.0\.0\.1:(\d+)/", output)}


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_demo_smoke_starts_everything_checks_it_and_stops_clean(tmp_path):
    workdir = tmp_path / "demo"
    proc = subprocess.run(
        [*THRIVE, "demo", "--workdir", str(workdir), "--port-base", "0", "--patients", "3", "--smoke"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "development and testing only" in out
    assert "All running parts answered." in out and "Stopped." in out
    # Every part this build has is started, none skipped or failed.
    assert "[skipped]" not in out and "[ failed]" not in out, out
    assert re.search(r"Seeded the EHR store: .*\d+ Patient", out), out
    assert re.search(r"Seeded the shared store: .*\d+ Patient", out), out
    # Keys, registry and the two separate stores are in the working folder.
    for name in (
        "keys/sandbox-auth.pem",
        "keys/app-client.pem",
        "keys/sync-client.pem",
        "clients.json",
        "ehr.db",
        "shared.db",
    ):
        assert (workdir / name).exists(), name
    assert oct((workdir / "keys" / "sync-client.pem").stat().st_mode & 0o777) == "0o600"
    assert processes_mentioning(str(workdir)) == []
    ports = ports_in(out)
    assert len(ports) >= 3
    assert not any(listening(p) for p in ports)


def test_demo_stops_everything_on_sigterm(tmp_path, start_thrive):
    workdir = tmp_path / "demo"
    proc, out = start_thrive(
        "demo", "--workdir", str(workdir), "--port-base", "0", "--no-seed", ready="Press Ctrl-C", timeout=300
    )
    assert "Press Ctrl-C" in out, out
    ehr = re.search(r"(http://127\.0\.0\.1:\d+/ehr/)", out).group(1)
    assert requests.get(ehr, timeout=10).status_code == 200
    assert processes_mentioning(str(workdir))  # the demo itself and any child it started
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out + rest
    assert "Stopped." in rest
    assert processes_mentioning(str(workdir)) == []
    assert not any(listening(p) for p in ports_in(out))
