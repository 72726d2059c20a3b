"""``thrive app serve``: starts on a loopback port from a config file; bad config -> one clear line."""

from __future__ import annotations

import signal
import subprocess
import sys

import requests

from tests.support.app import serve_app_process

THRIVE = [sys.executable, "-c", "from thrive_fhir.cli import main; main()"]


def test_serve_starts_and_answers(tmp_path):
    proc, origin = serve_app_process(tmp_path)
    try:
        r = requests.get(f"{origin}/healthz", timeout=5)
        assert r.json() == {"status": "ok"}
        home = requests.get(f"{origin}/", timeout=5)
        assert home.status_code == 200 and "frame-ancestors 'none'" in home.headers["Content-Security-Policy"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def test_bad_config_is_one_readable_line(tmp_path):
    missing = subprocess.run(
        [*THRIVE, "app", "serve", "--config", str(tmp_path / "nope.toml")], capture_output=True, text=True, timeout=60
    )
    assert missing.returncode != 0 and "Traceback" not in missing.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('secret_key = "short"\n')
    out = subprocess.run([*THRIVE, "app", "serve", "--config", str(bad)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "secret_key" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_serving_hands_the_gil_over_every_millisecond():
    """``thrive app serve`` (and the benchmark's app server) tune the GIL switch interval for page
    latency (smart_app.cli.SWITCH_INTERVAL, why in its comment)."""
    from smart_app.cli import SWITCH_INTERVAL, tune_for_latency

    before = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.005)
        tune_for_latency()
        assert abs(sys.getswitchinterval() - SWITCH_INTERVAL) < 1e-6 and SWITCH_INTERVAL == 0.001
    finally:
        sys.setswitchinterval(before)
