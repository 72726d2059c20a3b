"""The app's log as a server writes it (issue 16 item 9): each line once, and one record per line.

Run through ``thrive app serve`` in its own process, as an operator runs it: the duplicate came from
the interplay of Flask's own handler and the server's logging set-up, which only the real start-up
order shows.
"""

from __future__ import annotations

import signal

import requests

from tests.support.app import serve_app_process


def test_each_app_log_line_is_written_once_and_values_cannot_forge_lines(tmp_path):
    proc, origin = serve_app_process(tmp_path)
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
