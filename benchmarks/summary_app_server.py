"""The clinician app as its own process for benchmarks/shared_summary.py: the app from a config file,
served by waitress as ``thrive app serve`` serves it (same server, thread count and GIL switch
interval, ``smart_app.cli.tune_for_latency``), so the
benchmark's clients reach it over HTTP on loopback and their CPU is not the server's.

    .venv/bin/python -m benchmarks.summary_app_server CONFIG.json PORT [--threads 8] [--loading-wait 0.06]

Benchmark-only routes under ``/_bench/`` stand in for the OAuth launch (which the benchmark does not
measure); a deployment never has them:

- ``POST /_bench/launch?patient=<id>[&prefetch=1]``: what the launch callback leaves behind, a
  launch record (tests/support/app.py ``make_launch``) and, with ``prefetch``, the shared read
  started in the background (``shared_history.prefetch``, as the callback does). Answers
  ``{"url": "/l/<id>/summary", "cookie": [name, value], "launch_id": ...}``.
- ``GET /_bench/ready/<launch_id>``: waits for that launch's shared read, answers the seconds from
  the ``/_bench/launch`` answer until the read was done (``null`` when there was none).
- ``POST /_bench/batch?ok=0|1``: the reader sends its searches side by side (0) or as one batch (1).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import waitress
from werkzeug.wrappers import Request, Response

from smart_app import create_app
from smart_app.cli import tune_for_latency
from smart_app.context import COOKIE_NAME
from smart_app.summary import shared_history
from tests.support.app import make_launch


def bench_routes(app):
    """The app's WSGI callable with the ``/_bench/`` routes in front."""
    launched: dict[str, float] = {}  # launch id -> perf_counter() when its launch answer was sent

    def launch(req: Request) -> Response:
        made = make_launch(app, patient_id=req.args["patient"])
        if req.args.get("prefetch") == "1":
            shared_history.prefetch(app, made.record)
        launched[made.launch_id] = time.perf_counter()
        body = {"url": made.url("summary"), "cookie": [COOKIE_NAME, made.binding], "launch_id": made.launch_id}
        return Response(json.dumps(body), content_type="application/json")

    def ready(launch_id: str) -> Response:
        entry = shared_history._cache.get(launch_id)
        took = None
        if entry is not None and entry.done.wait(30) and launch_id in launched:
            took = entry.finished_at - launched[launch_id]
        return Response(json.dumps(took), content_type="application/json")

    def batch(req: Request) -> Response:
        reader = shared_history.reader_for(app)
        if reader is None:
            return Response("no shared store", status=404)
        was = reader.batch_ok
        reader.batch_ok = req.args.get("ok") == "1"
        return Response(json.dumps(was), content_type="application/json")

    def wsgi(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if not path.startswith("/_bench/"):
            return app.wsgi_app(environ, start_response)
        req = Request(environ)
        if path == "/_bench/launch" and req.method == "POST":
            with app.app_context():
                resp = launch(req)
        elif path.startswith("/_bench/ready/"):
            resp = ready(path.rsplit("/", 1)[1])
        elif path == "/_bench/batch" and req.method == "POST":
            resp = batch(req)
        else:
            resp = Response("not found", status=404)
        return resp(environ, start_response)

    return wsgi


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config", type=Path, help="JSON file: the config dict create_app takes")
    ap.add_argument("port", type=int)
    ap.add_argument("--threads", type=int, default=8, help="waitress threads (thrive app serve's default)")
    ap.add_argument(
        "--loading-wait", type=float, default=shared_history.LOADING_WAIT, help="seconds a Summary waits for a read"
    )
    args = ap.parse_args()
    shared_history.LOADING_WAIT = args.loading_wait
    app = create_app(json.loads(args.config.read_text()))
    tune_for_latency()  # as thrive app serve does
    waitress.serve(bench_routes(app), host="127.0.0.1", port=args.port, threads=args.threads, ident="thrive-app")


if __name__ == "__main__":
    main()
