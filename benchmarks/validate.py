"""Validator throughput vs fhir.resources' bare parse, side by side in one run, one core.

    .venv/bin/python -m benchmarks.validate [--n 100000] [--seed 7] [--skip-cold]

Corpus: ``thrive synth`` output (read from its NDJSON) until N resources; if the synthetic
population generator is unavailable, variations of ``profiles/examples``. Both contenders get the
same list of already-decoded JSON dicts (our validator never builds models; fhir.resources'
``R4B.<type>.<Type>.model_validate(dict)`` is its cheapest entry point), so the figures compare
validation work only. Also printed: start-up (cold: compile tables into an empty cache; warm:
unpickle), the bytes path (JSON decode + validate), and peak RSS.

Targets (Foundation issue): >= 10,000 resources/s AND at least half fhir.resources' parse rate.
"""

from __future__ import annotations

import argparse
import copy
import gc
import glob
import importlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def corpus(n: int, seed: int) -> tuple[list[dict], str]:
    try:
        from thrive_fhir.synth import generate
    except ImportError:
        generate = None
    if generate is not None:
        out = Path(tempfile.mkdtemp(prefix="thrive-bench-"))
        patients = max(1, n // 20)
        while True:
            for f in out.glob("*"):
                f.unlink()
            generate(patients, seed, out)
            res = []
            for f in sorted(out.glob("*.ndjson")):
                with open(f, "rb") as fh:
                    res.extend(json.loads(line) for line in fh if line.strip())
            if len(res) >= n:
                # interleave types so neither contender benefits from runs of one type
                res.sort(key=lambda r: hash((r.get("id"), seed)))
                return res[:n], f"thrive synth ({patients} patients, seed {seed})"
            patients = int(patients * n / max(1, len(res)) * 1.05) + 1
    base = [json.loads(Path(f).read_text()) for f in sorted(glob.glob(str(ROOT / "profiles/examples/*.json")))]
    res = []
    i = 0
    while len(res) < n:
        r = copy.deepcopy(base[i % len(base)])
        r["id"] = f"{r.get('id', 'x')[:40]}-{i}"
        res.append(r)
        i += 1
    return res, "variations of profiles/examples"


def fhir_resources_parser():
    cache = {}

    def parse(d: dict):
        rt = d["resourceType"]
        cls = cache.get(rt)
        if cls is None:
            mod = importlib.import_module(f"fhir.resources.R4B.{rt.lower()}")
            cls = cache[rt] = getattr(mod, rt)
        return cls.model_validate(d)

    return parse


def startup_cold() -> float:
    """Start-up with an empty cache, in a child process (clean interpreter, real build)."""
    with tempfile.TemporaryDirectory() as tmp:
        code = (
            "import time;t=time.perf_counter();from thrive_fhir.validation import Validator;"
            "v=Validator.default();print(time.perf_counter()-t)"
        )
        env = dict(os.environ, THRIVE_CACHE_DIR=tmp)
        cold = float(subprocess.check_output([sys.executable, "-c", code], env=env, cwd=ROOT).decode().split()[-1])
        warm = float(subprocess.check_output([sys.executable, "-c", code], env=env, cwd=ROOT).decode().split()[-1])
    return cold, warm


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=int(os.environ.get("BENCH_N", 100_000)))
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--skip-cold", action="store_true", help="skip the cold/warm start-up measurement")
    args = ap.parse_args()

    if not args.skip_cold:
        cold, warm = startup_cold()
        print(f"start-up: cold (build + cache) {cold:.2f} s, warm (cached tables) {warm:.2f} s")

    t = time.perf_counter()
    resources, source = corpus(args.n, args.seed)
    n = len(resources)
    print(f"corpus: {n:,} resources from {source} ({time.perf_counter() - t:.1f} s to prepare)")

    from thrive_fhir.validation import Validator

    v = Validator.default()
    for r in resources[:2000]:  # warm-up: lazily compiled invariants, CPU caches
        v.issues(r)
    gc.collect()
    invalid = 0
    c = time.process_time()
    t = time.perf_counter()
    for r in resources:
        issues = v.issues(r)
        for i in issues:
            if i[0] == "error" or i[0] == "fatal":
                invalid += 1
                break
    ours = time.perf_counter() - t
    ours_cpu = time.process_time() - c
    ours_rate = n / ours
    rss_ours = rss_mb()

    blobs = [json.dumps(r).encode() for r in resources[: min(n, 20_000)]]
    t = time.perf_counter()
    for b in blobs:
        v.validate_bytes(b)
    bytes_rate = len(blobs) / (time.perf_counter() - t)
    del blobs

    parse = fhir_resources_parser()
    for r in resources[:2000]:
        try:
            parse(r)
        except Exception:
            pass
    gc.collect()
    failed = 0
    c = time.process_time()
    t = time.perf_counter()
    for r in resources:
        try:
            parse(r)
        except Exception:
            failed += 1
    theirs = time.perf_counter() - t
    theirs_cpu = time.process_time() - c
    theirs_rate = n / theirs

    ratio = ours_rate / theirs_rate
    print(f"thrive validator : {ours_rate:10,.0f} resources/s  ({ours:.2f} s; {invalid} invalid)")
    print(f"  from JSON bytes: {bytes_rate:10,.0f} resources/s  (decode + validate_bytes, first {min(n, 20_000):,})")
    print(
        f"fhir.resources   : {theirs_rate:10,.0f} resources/s  ({theirs:.2f} s; R4B model_validate, {failed} rejected)"
    )
    print(
        f"per CPU second   : ours {n / ours_cpu:,.0f}/s, fhir.resources {n / theirs_cpu:,.0f}/s "
        f"(process time; wall-clock rates above suffer when other work shares the cores)"
    )
    print(f"ratio            : {ratio:.2f}x fhir.resources' parse rate (target >= 0.50x)")
    print(f"peak RSS         : {rss_ours:.0f} MB after our run, {rss_mb():.0f} MB at the end (corpus held in memory)")
    # Judge each target on its own line: the ratio holds however busy the machine is (both sides
    # share it), the absolute rate does not; a busy machine shows as a slow fhir.resources too
    # (it parses 8-9k/s on an idle core of this machine class).
    rate_ok, ratio_ok = ours_rate >= 10_000, ratio >= 0.5
    print(f"target rate      : {'met' if rate_ok else 'NOT met'} (>= 10,000 resources/s wall clock, one core)")
    print(f"target ratio     : {'met' if ratio_ok else 'NOT met'} (no slower than 2x fhir.resources' parse)")
    return 0 if rate_ok and ratio_ok else 1


if __name__ == "__main__":
    sys.exit(main())
