"""Peak memory and time of ``thrive synth`` at two sizes, side by side.

Streaming claim: memory does not grow with the population (each patient is built, written and
forgotten). Runs the generator in a fresh child process per size, reads the child's peak RSS,
and prints resources, seconds, resources/s, peak RSS and the large/small RSS ratio.

    .venv/bin/python -m benchmarks.synth_memory [--small 4000] [--large 40000] [--provenance]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, resource, sys, time
from thrive_fhir.synth import generate
n, out, prov = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
t = time.perf_counter()
truth = generate(n, 1, out, provenance=prov)
print(json.dumps({"resources": truth["resources_total"], "seconds": time.perf_counter() - t,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(n: int, provenance: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "pop"
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(n), str(out), "1" if provenance else "0"],
            check=True,
            capture_output=True,
            text=True,
        )
        result = json.loads(proc.stdout)
        result["bytes"] = sum(p.stat().st_size for p in out.iterdir())
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", type=int, default=4000)
    ap.add_argument("--large", type=int, default=40000)
    ap.add_argument("--provenance", action="store_true")
    args = ap.parse_args()
    rows = []
    for n in (args.small, args.large):
        r = run(n, args.provenance)
        rows.append((n, r))
        print(
            f"patients={n:>7,}  resources={r['resources']:>9,}  output={r['bytes'] / 1e6:8.1f} MB  "
            f"time={r['seconds']:6.1f} s  rate={r['resources'] / r['seconds']:8,.0f}/s  peak RSS={r['peak_rss_mb']:6.1f} MB"
        )
    (_, a), (_, b) = rows
    print(
        f"peak RSS ratio large/small = {b['peak_rss_mb'] / a['peak_rss_mb']:.2f} "
        f"for {b['resources'] / a['resources']:.1f}x the resources"
    )


if __name__ == "__main__":
    main()
