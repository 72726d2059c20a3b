"""The clinician Summary with the shared record: 20 concurrent clinicians, side by side with the
local-only Summary, in one run, with every part in its own process as deployed.

    .venv/bin/python -m benchmarks.shared_summary [--clinicians 20] [--rounds 10] [--think 1] [--paced-only]

Processes (what is measured where):
  - the shared store: ``thrive store serve`` (SQLite, validation and consent enforcement on) trusting
    the sandbox authorization server (tests/support/shared_store_stack.py ``start_stack(...,
    store_process=True)``), holding another team's plan for each young person, shared with our
    deployment by Consent;
  - two apps, each its own process served by waitress with ``thrive app serve``'s 8 threads
    (benchmarks/summary_app_server.py): one with ``[shared_store]`` (reads the store with real
    Backend Services tokens), one without (each clinician's young person saved locally by the same
    seed);
  - this process: the clinicians, one thread each doing only HTTP on loopback with its own
    keep-alive connection (as a browser tab), and the sandbox authorization server on a thread (it
    answers one token request per app per 5 minutes).

A Summary's time is from sending the GET to the last byte of the page, so it is the app's server
time plus loopback HTTP; the clients' CPU is not the app's, but all processes share the machine's
cores (2 here, shared with other work), so the load average is printed with every figure.

Each clinician has their own launch (the launch record and, with "read at launch", the background
shared read the launch callback starts: ``/_bench/launch``, standing in for the OAuth launch, which
is not measured) and opens the Summary ``--rounds`` times; the first open of each launch needs the
store's record (cold), later ones use the launch's cache (warm, the freshness rule in
smart_app/summary/shared_history.py).

Back-to-back passes (all clinicians launch at once and open without pause: 20 requests at once on
one Python process, which measures queueing on its GIL as much as the Summary):
  - "read at launch": the first open finds the read in flight or done, waits at most
    ``LOADING_WAIT`` and otherwise says the shared record is still loading (counted, and the time
    from the launch answer until the read was done is reported);
  - "read on first open": no read at launch, the first Summary reads the store itself (one batch
    Bundle of searches; what an expired cache costs), and the same with the searches sent side by
    side as before batching;
  - later opens of each launch: the launch's cache (warm).
Then the paced run, the realistic one: the same clinicians at a person's pace, launches spread over
~``--think`` s and ~``--think`` s of reading between opens (0.5 to 1.5 times), read at launch; it
prints first opens, later opens and every open, and the verdict on the target.

Target (issue 11): Summary p95 under 100 ms at 20 users.

Figures (2026-12-02, this shared 2-core machine with other helpers' work running; the 1-minute load
average is printed with each run and moved between 1.5 and 15 within minutes, so wall times vary run
to run; the CPU per open is the steadier figure):
  - paced, Summary p95 over every open, every run after the CPU cuts (either switch interval): at
    load 1.6 to 8.9, 71.2, 78.9, 85.4, 89.6, 93.0, 96.1 ms (meets) and 100.0, 101.9, 110.4, 111.4,
    119.4, 132.5, 135.6, 135.8 ms (misses); at load 9.8 to 15.5, 111 to 483 ms. Later opens p50 16 to 30 / p95 28 to 78 ms at load below 9. First opens
    decide the p95 (they are 1 in 10 opens, so the p95 is about their median): p50 74 to 116 /
    p95 123 to 238 ms, because the store read started at launch took 51 to 257 ms (p50) to finish
    under these 20 launches, about 25 ms on its own, so most first opens wait the whole
    ``LOADING_WAIT`` (60 ms) and say "still loading";
  - the last full run (load 3.8 to 6.5): paced p95 111.4 ms (first opens 116 / 171 ms, 12 of 20
    "still loading"; later opens 29 / 59 ms); back to back, every open p50 335 / p95 653 ms, local
    only later opens 326 / 458 ms: 20 requests at once queue on one Python process;
  - CPU per open, launch and its store read included: app 13.0 to 15.9 ms, store 1.7 to 2.3 ms;
    before the cuts of 2026-12-02 (outbox query, the read's Session), alternated with after at load
    10 to 11: app 18.5 and 20.1 ms before, 16.4 and 17.0 ms after;
  - GIL switch interval (``thrive app serve``, smart_app/cli.py): 4 alternated pairs, p95 93 to 157
    ms at 1 ms against 102 to 204 ms at Python's default 5 ms, lower in every pair.
On the quiet machine (nothing else running, load 1.2 to 1.4, 16:32 to 16:34 UTC, the merged code):
  - paced, Summary p95 over every open: 60.0, 80.0, 58.8 ms (``--paced-only``) and 48.5 ms (the full
    run): **meets < 100 ms**. Later opens p95 28 to 35 ms; first opens p50 46 to 62 / p95 101 to
    111 ms, 3 to 5 of 20 saying "still loading"; CPU per open: app 12.9 to 13.9 ms, store 1.7 to
    1.9 ms;
  - back to back (same full run): local only later opens p50 247 / p95 376 ms; shared, every open
    272 / 465 ms; read on first open 531 / 702 ms (searches side by side 737 / 938 ms).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from benchmarks.proc_stats import cpu_seconds
from smart_app import create_app
from smart_app.summary import shared_history
from tests.support.app import seed_plan, test_config
from tests.support.servers import free_port, wait_up
from tests.support.shared_store_stack import OUR_ODS, OURS, shared_config, start_stack

REPO = Path(__file__).resolve().parents[1]


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    k = max(0, min(len(values) - 1, round(p / 100 * len(values) + 0.5) - 1))
    return values[k]


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


class AppProcess:
    """The app in its own process (benchmarks/summary_app_server.py: waitress, as ``thrive app serve``)."""

    def __init__(self, config: dict, workdir: Path, threads: int, loading_wait: float) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "config.json").write_text(json.dumps(config))
        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        argv = [sys.executable, "-m", "benchmarks.summary_app_server", str(workdir / "config.json"), str(self.port)]
        with open(workdir / "app.log", "ab") as log:
            self.proc = subprocess.Popen(
                [*argv, "--threads", str(threads), "--loading-wait", str(loading_wait)],
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_up(self.origin + "/healthz", proc=self.proc)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


class Run:
    def __init__(self) -> None:
        self.cold: list[float] = []
        self.warm: list[float] = []
        self.ready: list[float] = []  # launch completion -> shared read done (read at launch)
        self.loading = 0  # first opens that said "still loading"


def run(origin: str, pids: list[str], rounds: int, *, at_launch: bool = False, think: float = 0.0) -> Run:
    """Each clinician (a thread here doing only HTTP, with its own keep-alive connection, as a
    browser tab) launches and opens the Summary ``rounds`` times; the time is from sending the
    request to the last byte of the page. ``think``: mean seconds a clinician reads between opens
    (and launches are spread over that long); 0: back to back, all launching at once."""
    out = Run()
    lock = threading.Lock()

    def clinician(pid: str) -> None:
        rng = random.Random(pid)
        if think:
            time.sleep(rng.uniform(0, think))
        http = requests.Session()
        http.trust_env = False  # loopback: no proxy look-ups in the client's time
        launch = http.post(f"{origin}/_bench/launch", params={"patient": pid, "prefetch": int(at_launch)}, timeout=30)
        launch.raise_for_status()
        made = launch.json()
        headers = {"Cookie": "=".join(made["cookie"])}
        for i in range(rounds):
            t0 = time.perf_counter()
            resp = http.get(origin + made["url"], headers=headers, timeout=60)
            took = time.perf_counter() - t0
            assert resp.status_code == 200, resp.status_code
            with lock:
                (out.cold if i == 0 else out.warm).append(took)
                if i == 0 and 'id="shared-record-loading"' in resp.text:
                    out.loading += 1
            if think:
                time.sleep(rng.uniform(0.5, 1.5) * think)
        if at_launch:
            took = http.get(f"{origin}/_bench/ready/{made['launch_id']}", timeout=60).json()
            if took is not None:
                with lock:
                    out.ready.append(took)
        http.close()

    with ThreadPoolExecutor(len(pids)) as pool:
        list(pool.map(clinician, pids))
    return out


def show(label: str, values: list[float]) -> None:
    print(
        f"  {label:<36} n={len(values):>4}  p50 {statistics.median(values) * 1000:7.1f} ms"
        f"  p95 {pct(values, 95) * 1000:7.1f} ms  max {max(values) * 1000:7.1f} ms"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clinicians", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument(
        "--loading-wait",
        type=float,
        default=shared_history.LOADING_WAIT,
        help="seconds a Summary waits for a read in flight",
    )
    ap.add_argument("--think", type=float, default=1.0, help="mean seconds a clinician reads between opens (paced run)")
    ap.add_argument("--threads", type=int, default=8, help="the app's waitress threads (thrive app serve's default)")
    ap.add_argument("--paced-only", action="store_true", help="only the paced run (the realistic one)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        pids = [f"yp-bench-{uuid.uuid4().hex[:8]}" for _ in range(args.clinicians)]
        started = time.perf_counter()
        stack = start_stack(tmp_path, tuple((pid, (OURS,)) for pid in pids), store_process=True)
        apps: list[AppProcess] = []
        try:
            (tmp_path / "local").mkdir()
            shared_cfg = test_config(
                tmp_path / "shared", ods_code=OUR_ODS, journeys=False, shared_store=shared_config(stack)
            )
            local_cfg = test_config(tmp_path / "local", ods_code=OUR_ODS, journeys=False)
            seeder = create_app(local_cfg)  # the local-only app's young people, saved before it serves
            for pid in pids:
                seed_plan(seeder, pid)
            local = AppProcess(local_cfg, tmp_path / "local", args.threads, args.loading_wait)
            apps.append(local)
            shared = AppProcess(shared_cfg, tmp_path / "shared", args.threads, args.loading_wait)
            apps.append(shared)
            print(
                f"set-up: {args.clinicians} young people in the shared store (own process, pid {stack.store_pid}) "
                f"and locally; two app processes ({time.perf_counter() - started:.1f} s)"
            )
            for origin in (local.origin, shared.origin):  # warm-up: templates compiled, token fetched, pools open
                run(origin, pids[:1], 2)
            if args.paced_only:
                # The store and the app as after running a while: every young person read once, all
                # at once (the back-to-back passes do this otherwise). Without it the store's first
                # reads after start cost more (measured: read done p50 257 ms against 69 ms, 13 ms
                # more store CPU per read; new pool connections and statement caches, most likely),
                # which a store that has been up for a while does not pay.
                run(shared.origin, pids, 1, at_launch=True)
            if not args.paced_only:
                print(f"Back to back: {args.clinicians} clinicians at once x {args.rounds} opens each (load {load()}):")
                local_run = run(local.origin, pids, args.rounds)
                on_open = run(shared.origin, pids, args.rounds)
                requests.post(f"{shared.origin}/_bench/batch", params={"ok": 0}, timeout=10)
                on_open_searches = run(shared.origin, pids, 1)  # the searches side by side (before batching)
                requests.post(f"{shared.origin}/_bench/batch", params={"ok": 1}, timeout=10)
                at_launch = run(shared.origin, pids, args.rounds, at_launch=True)
                show("local only, first open", local_run.cold)
                show("local only, later opens", local_run.warm)
                show("shared, read on first open", on_open.cold)
                show("  same, searches side by side", on_open_searches.cold)
                show("shared, read at launch, first open", at_launch.cold)
                show("shared, launch -> read done", at_launch.ready)
                show("shared, later opens (cache)", at_launch.warm + on_open.warm)
                show("shared, every open (read at launch)", at_launch.cold + at_launch.warm)
                print(
                    f"  first opens that said 'still loading': {at_launch.loading} of {len(at_launch.cold)} "
                    f"(waiting at most {args.loading_wait * 1000:.0f} ms for the read); load average {load()}"
                )
            # The same clinicians at a person's pace: launches spread over ~think s, ~think s of
            # reading between opens. New launches, so each first open needs its own read again.
            app_cpu, store_cpu = cpu_seconds(shared.proc.pid), cpu_seconds(stack.store_pid)
            paced = run(shared.origin, pids, args.rounds, at_launch=True, think=args.think)
            app_cpu, store_cpu = cpu_seconds(shared.proc.pid) - app_cpu, cpu_seconds(stack.store_pid) - store_cpu
            print(f"At a clinician's pace (~{args.think:g} s reading between opens, launches spread):")
            show("shared, read at launch, first open", paced.cold)
            show("shared, launch -> read done", paced.ready)
            show("shared, later opens", paced.warm)
            every = paced.cold + paced.warm
            show("shared, every open", every)
            verdict = "meets" if pct(every, 95) < 0.1 else "MISSES"
            print(
                f"  Summary p95 over every open: {pct(every, 95) * 1000:.1f} ms, {verdict} < 100 ms; "
                f"first opens that said 'still loading': {paced.loading} of {len(paced.cold)}; "
                f"load average {load()}"
            )
            opens = len(every)
            print(
                f"  CPU per Summary open (launch and store read included): app process "
                f"{app_cpu / opens * 1000:.1f} ms, store process {store_cpu / opens * 1000:.1f} ms "
                f"({app_cpu:.2f} / {store_cpu:.2f} CPU-s for {opens} opens of {len(paced.cold)} launches)"
            )
        finally:
            for a in apps:
                a.stop()
            stack.stop()


if __name__ == "__main__":
    main()
