"""Real FHIR stores on loopback for the sync tests: sekmet-fhir 0.1.1 and the project's own store.

Each runs as its own process on a free port and is stopped by the test. sekmet: host 127.0.0.1,
simulator off, strict structural validation (so a malformed resource really is rejected with 400).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests
import yaml

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server at {url} did not come up")


class StoreProcess:
    """A FHIR server process that can be stopped and started again on the same port and data."""

    kind = "?"

    def __init__(self, workdir: Path, port: int | None = None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/fhir"

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> "StoreProcess":
        log = open(self.workdir / f"{self.kind}.log", "ab")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(self.command(), cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        wait_up(f"{self.base_url}/metadata", self.proc)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


class Sekmet(StoreProcess):
    kind = "sekmet"

    def __init__(self, workdir: Path, port: int | None = None, server_auth: dict | None = None):
        super().__init__(workdir, port)
        settings = {
            "base_url": self.base_url,
            "host": "127.0.0.1",
            "port": self.port,
            "data_dir": str(self.workdir / "data"),
            "db_path": str(self.workdir / "data" / "sekmet.db"),
            "simulator": {"enabled": False},
            "validation": {"inbound": "strict"},
            "log_inbound": False,
            "own_private_key_path": str(self.workdir / "keys" / "sekmet_private.pem"),
        }
        if server_auth:
            settings["server_auth"] = server_auth
        (self.workdir / "settings.yaml").write_text(yaml.safe_dump(settings))

    def command(self) -> list[str]:
        return [str(VENV_BIN / "sekmet"), "serve", "-c", str(self.workdir / "settings.yaml")]


class OwnStore(StoreProcess):
    """The project's embedded store (``thrive store serve``), when it has been built."""

    kind = "thrive-store"

    def __init__(self, workdir: Path, port: int | None = None):
        super().__init__(workdir, port)
        self.database = f"sqlite:///{self.workdir / 'store.db'}"

    @property
    def base_url(self) -> str:  # the embedded store serves FHIR at the root
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [str(VENV_BIN / "thrive"), "store", "serve", "--database", self.database, "--port", str(self.port)]


def own_store_available() -> bool:
    try:
        import thrive_fhir.store as st  # noqa: F401
    except ImportError:
        return False
    return hasattr(st, "create_app") and (ROOT / "thrive_fhir" / "cli" / "store_cmd.py").exists()
