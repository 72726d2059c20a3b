"""The app's log as a server writes it (issue 16 item 9): each line once, and one record per line.

Run through ``thrive app serve`` in its own process, as an operator runs it: the duplicate came from
the interplay of Flask's own handler and the server's logging set-up, which only the real start-up
order shows.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import requests

from tests.support.servers import free_port, wait_up

THRIVE = [sys.executable, "-c", "from thrive_fhir.cli import main; main()"]


def _serve(tmp_path):
    cfg = tmp_path / "app.toml"
    (tmp_path / "secret").write_text("s" * 48)
    cfg.write_text(
        'secret_key_file = "secret"\n'
        f'database_url = "sqlite:///{tmp_path}/app.db"\n'
        "journeys = false\n"
        "[[ehr]]\n"
        'iss = "https://ehr.example.test/fhir"\nclient_id = "thrive-app"\nauth_method = "public"\n'
    )
    port = free_port()
    proc = subprocess.Popen(
        [*THRIVE, "app", "serve", "--config", str(cfg), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    origin = f"http://127.0.0.1:{port}"
    try:
        wait_up(origin + "/healthz", timeout=60, proc=proc)
    except RuntimeError:
        proc.kill()
        raise AssertionError("app did not start: " + (proc.stdout.read() or "")) from None
    return proc, origin


def test_each_app_log_line_is_written_once_and_values_cannot_forge_lines(tmp_path):
    proc, origin = _serve(tmp_path)
    try:
        # A callback with no pending sign-in is logged (INFO, smart_app.launch) and refused.
        r = requests.get(
            origin + "/callback", params={"state": "nope", "error": "x\nFORGED smart_app line"}, timeout=10
        )
        assert r.status_code == 400
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=15)
    lines = [line for line in output.splitlines() if "callback rejected" in line]
    assert len(lines) == 1, output
    assert not [line for line in output.splitlines() if line.startswith("FORGED")]
