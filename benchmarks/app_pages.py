"""Clinician app page timings: 20 concurrent simulated clinicians on SQLite and on PostgreSQL.

    .venv/bin/python -m benchmarks.app_pages [--clinicians 20] [--rounds 10] [--no-postgres]

For each database the app is served by waitress (--threads, default 2, own process) on loopback; each simulated
clinician has their own launch (their own patient with a seeded plan: 2 groupings, 2 goals with
ratings, safety plan, care team, signpost) and repeats: open the Summary, open Goals, save a goal
rating (the real goals journey, ``POST /goals/rate``, when H7b's journeys are installed). Server
time is measured in the server process by a WSGI middleware (``Server-Timing`` header: request in
to response rendered), so loopback and client overhead are excluded; client round trips are
printed beside it. Note the figures include waiting for the CPU on a shared machine.

Then launch-to-first-summary: a full SMART EHR launch against the real sandbox auth server
(discovery cached after the first launch, private_key_jwt token exchange, id_token validation,
Patient read for the banner) from ``GET /launch`` to the Summary's 200, measured at the client.

Targets: summary and rating-save p95 < 100 ms; launch-to-first-summary < 1 s on loopback.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from smart_app import create_app
from smart_app.context import COOKIE_NAME
from tests.support.app import live_stack, make_launch, seed_plan, test_config
from tests.support.servers import create_pg_database, free_port, wait_up


class ServerTiming:
    """WSGI middleware adding ``Server-Timing: app;dur=<ms>`` measured from request start to the
    moment the response starts (Flask has rendered the whole body by then)."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        t0 = time.perf_counter()

        def timed_start(status, headers, exc_info=None):
            headers.append(("Server-Timing", f"app;dur={(time.perf_counter() - t0) * 1000:.2f}"))
            return start_response(status, headers, exc_info)

        return self.app(environ, timed_start)


def serve(config_path: str, port: int, threads: int) -> None:
    """Server process: the app from a config file, behind ServerTiming, on waitress."""
    import logging

    import waitress

    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # queue depth notes are expected here
    app = create_app(config_path)
    app.wsgi_app = ServerTiming(app.wsgi_app)
    waitress.serve(app, host="127.0.0.1", port=port, threads=threads, ident="bench", _quiet=True)


def server_ms(resp) -> float:
    m = re.search(r"app;dur=([0-9.]+)", resp.headers.get("Server-Timing", ""))
    return float(m.group(1)) / 1000 if m else float("nan")


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    k = max(0, min(len(values) - 1, round(p / 100 * len(values) + 0.5) - 1))
    return values[k]


def ms(v: float) -> str:
    return f"{v * 1000:7.1f}"


def run_pages(label: str, database_url: str, clinicians: int, rounds: int, threads: int) -> dict:
    import json
    import secrets
    import subprocess

    tmp = Path(tempfile.mkdtemp(prefix="thrive-bench-"))
    config = test_config(tmp, database_url=database_url, secret_key=secrets.token_urlsafe(32))
    config.pop("testing")
    app = create_app(config)
    journeys = "goals.rate" in app.view_functions
    launches = []
    for i in range(clinicians):
        pid = f"bench-{uuid.uuid4().hex[:8]}"
        seed_plan(app, pid)
        launches.append(make_launch(app, patient_id=pid))
    app.extensions["thrive"].local_store.dispose()
    cfg_file = tmp / "bench.json"
    cfg_file.write_text(json.dumps(config))
    port = free_port()
    # The server runs in its own process so the simulated clinicians do not share its GIL.
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(cfg_file), "--port", str(port), "--threads", str(threads)]
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_up(base + "/healthz", timeout=30, proc=proc, interval=0.2)
        samples: dict[str, list[tuple[float, float]]] = defaultdict(list)
        errors = []
        lock = threading.Lock()

        def timed(kind, fn):
            t0 = time.perf_counter()
            r = fn()
            with lock:
                samples[kind].append((server_ms(r), time.perf_counter() - t0))
            return r

        def clinician(launch) -> None:
            s = requests.Session()
            s.headers["Cookie"] = f"{COOKIE_NAME}={launch.binding}"
            for _ in range(rounds):
                r = timed("summary", lambda: s.get(base + launch.url("summary"), timeout=30))
                if r.status_code != 200:
                    errors.append(("summary", r.status_code))
                if not journeys:
                    continue
                page = timed("goals page", lambda: s.get(base + launch.url("goals/"), timeout=30))
                token = re.search(r'name="token"[^>]*value="([^"]+)"', page.text)
                fields = sorted(set(re.findall(r'name="(score-[^"]+)"', page.text)))
                if not token or not fields:
                    errors.append(("goals page", page.status_code))
                    continue
                form = {"csrf_token": launch.csrf_token, "token": token.group(1)}
                form.update({f: "7" for f in fields})
                r = timed(
                    "save rating",
                    lambda: s.post(
                        base + launch.url("goals/rate"),
                        data=form,
                        headers={"Origin": base},
                        allow_redirects=False,
                        timeout=30,
                    ),
                )
                if r.status_code not in (200, 302, 303):
                    errors.append(("save rating", r.status_code))

        # warm-up: one round for one clinician (template compilation, connection pools)
        requests.get(base + launches[0].url("summary"), headers={"Cookie": f"{COOKIE_NAME}={launches[0].binding}"})
        t_start = time.perf_counter()
        with ThreadPoolExecutor(clinicians) as pool:
            list(pool.map(clinician, launches))
        wall = time.perf_counter() - t_start
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    print(
        f"\n== {label}: {clinicians} concurrent clinicians x {rounds} rounds, server {threads} threads, "
        f"wall {wall:.1f}s{'' if journeys else ' (journeys not installed: no rating saves)'}"
    )
    print(f"{'page':<14}{'n':>6}{'srv p50':>9}{'srv p95':>9}{'srv max':>9}{'cli p95':>9}  (ms)")
    out = {}
    for kind in ("summary", "goals page", "save rating"):
        if kind not in samples:
            continue
        srv = [a for a, _ in samples[kind]]
        cli = [b for _, b in samples[kind]]
        out[kind] = pct(srv, 95)
        print(
            f"{kind:<14}{len(srv):>6}{ms(pct(srv, 50)):>9}{ms(pct(srv, 95)):>9}{ms(max(srv)):>9}{ms(pct(cli, 95)):>9}"
        )
    if errors:
        print(f"ERRORS: {len(errors)} e.g. {errors[:3]}")
    return out


def run_launch(n: int) -> list[float]:
    from urllib.parse import urljoin

    tmp = Path(tempfile.mkdtemp(prefix="thrive-bench-launch-"))
    times = []
    with live_stack(tmp, n_patients=2) as live:
        for i in range(n):
            s = requests.Session()
            url = live.ehr_launch_url(live.patients[i % 2])
            t0 = time.perf_counter()
            cookie = None
            for _hop in range(8):
                headers = {"Cookie": f"{COOKIE_NAME}={cookie}"} if cookie and url.startswith(live.app_origin) else {}
                r = s.get(url, allow_redirects=False, timeout=20, headers=headers)
                if url.startswith(live.app_origin) and r.cookies.get(COOKIE_NAME):
                    cookie = r.cookies.get(COOKIE_NAME)
                if r.status_code in (302, 303):
                    url = urljoin(url, r.headers["Location"])
                    continue
                break
            elapsed = time.perf_counter() - t0
            if r.status_code != 200 or not url.endswith("/summary"):
                raise SystemExit(f"launch failed: {r.status_code} at {url}")
            times.append(elapsed)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clinicians", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--launches", type=int, default=10)
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument(
        "--threads",
        type=int,
        default=2,
        help="waitress threads in the server process (default: one per core of this 2-core machine)",
    )
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.threads)
        return

    results = {}
    tmp = Path(tempfile.mkdtemp(prefix="thrive-bench-sqlite-"))
    results["SQLite"] = run_pages("SQLite", f"sqlite:///{tmp}/app.db", args.clinicians, args.rounds, args.threads)
    if not args.no_postgres:
        url, drop = create_pg_database("thrive_bench")
        try:
            results["PostgreSQL"] = run_pages("PostgreSQL", url, args.clinicians, args.rounds, args.threads)
        finally:
            drop()

    times = run_launch(args.launches)
    print(
        f"\n== launch-to-first-summary (real sandbox, {len(times)} launches): "
        f"first {ms(times[0])} ms, median {ms(statistics.median(times))} ms, max {ms(max(times))} ms"
    )

    print("\n== targets")
    for db, r in results.items():
        for kind in ("summary", "save rating"):
            if kind in r:
                ok = "OK " if r[kind] < 0.100 else "MISS"
                print(f"  [{ok}] {db:<10} {kind:<12} server p95 {ms(r[kind]).strip()} ms  (< 100 ms)")
    ok = "OK " if max(times) < 1.0 else "MISS"
    print(f"  [{ok}] launch-to-first-summary max {ms(max(times)).strip()} ms  (< 1000 ms)")


if __name__ == "__main__":
    main()
