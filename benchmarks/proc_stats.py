"""What a running process has used, read from Linux ``/proc``: the benchmarks' measure of a server's
CPU and memory, which other work on a shared machine does not inflate the way it does wall time."""

from __future__ import annotations

import os
from pathlib import Path


def cpu_seconds(pid: int, *, with_children: bool = False) -> float:
    """User + system CPU seconds process ``pid`` has used so far; ``with_children``: plus those of
    its children that have exited (a server that forks its workers)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = fields[11:15] if with_children else fields[11:13]
    return sum(int(f) for f in ticks) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` now, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0
