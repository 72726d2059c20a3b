"""Run until Ctrl-C or SIGTERM, then stop everything that was started, in reverse order.

Used by ``thrive sandbox serve`` and ``thrive demo``. Servers run on threads of this process and
helpers (the sync worker) as child processes in their own process group, so one stop path reaches
all of them and nothing is left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Callable
from typing import Any


class Stopper:
    """Collects stop callbacks; ``wait()`` blocks until a signal or ``request_stop()``."""

    def __init__(self) -> None:
        self._stops: list[tuple[str, Callable[[], Any]]] = []
        self.stop_event = threading.Event()

    def on_stop(self, name: str, fn: Callable[[], Any]) -> None:
        self._stops.append((name, fn))

    def request_stop(self, *_args: Any) -> None:
        self.stop_event.set()

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT set the stop event (only possible from the main thread)."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.request_stop)
            signal.signal(signal.SIGINT, self.request_stop)

    def wait(self, timeout: float | None = None) -> None:
        self.stop_event.wait(timeout)

    def stop_all(self, report: Callable[[str], Any] = lambda _m: None) -> list[str]:
        """Run every stop callback (last started, first stopped); returns the names that failed."""
        failed = []
        while self._stops:
            name, fn = self._stops.pop()
            try:
                fn()
                report(f"stopped {name}")
            except Exception as exc:  # keep stopping the others
                failed.append(name)
                report(f"could not stop {name} cleanly: {exc}")
        return failed


def start_child(
    args: list[str], *, log_path: str, env: dict[str, str] | None = None, cwd: str | None = None
) -> subprocess.Popen:
    """A child process in its own process group, output appended to ``log_path``."""
    log = open(log_path, "ab")
    try:
        proc = subprocess.Popen(  # noqa: S603 - callers pass our own thrive command lines; no shell
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    except OSError:
        log.close()
        raise
    proc._thrive_log = log  # type: ignore[attr-defined]
    return proc


def stop_child(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM the child's process group, wait, then SIGKILL whatever is left."""
    try:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout)
    finally:
        log = getattr(proc, "_thrive_log", None)
        if log is not None:
            log.close()
