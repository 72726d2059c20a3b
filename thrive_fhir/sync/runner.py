"""Wire configuration to workers: auth, FHIR client, worker threads, metrics, signals."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

from ..client.backend_services import BackendServicesAuth, discover_token_url
from ..client.fhir_http import Auth, FhirClient, NoAuth, StaticBearer, TokenError
from ..localstore import LocalStore
from ..localstore import outbox as q
from .config import ConfigError, SyncConfig
from .metrics import Metrics
from .worker import Worker

log = logging.getLogger("thrive_fhir.sync")


def build_auth(cfg: SyncConfig) -> Auth:
    a = cfg.auth
    if a.type == "none":
        return NoAuth()
    if a.type == "bearer":
        return StaticBearer(cfg.bearer_token())
    try:
        key = Path(a.private_key_file).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read auth.private_key_file: {exc.strerror}") from None
    try:
        token_url = discover_token_url(cfg.fhir_base, alg=a.alg, pinned=a.token_url or None)
    except TokenError as exc:
        raise ConfigError(f"SMART discovery refused: {exc.detail or exc.kind}") from None
    return BackendServicesAuth(
        token_url=token_url, client_id=a.client_id, private_key_pem=key, kid=a.kid, alg=a.alg, scope=a.scope
    )


def build_client(cfg: SyncConfig, auth: Auth | None = None) -> FhirClient:
    return FhirClient(
        cfg.fhir_base, auth or build_auth(cfg), connect_timeout=cfg.connect_timeout, read_timeout=cfg.read_timeout
    )


def make_worker(cfg: SyncConfig, store: LocalStore, client: FhirClient, metrics: Metrics) -> Worker:
    return Worker(
        store,
        client,
        ods_code=cfg.ods_code,
        max_entries=cfg.max_entries,
        max_patients=cfg.max_patients,
        lease_seconds=cfg.lease_seconds,
        backoff_base=cfg.backoff_base,
        backoff_max=cfg.backoff_max,
        max_conflict_retries=cfg.max_conflict_retries,
        metrics=metrics,
        atomic_transactions=cfg.atomic_transactions,
        id_mode=cfg.id_mode,
        identifier_create=cfg.identifier_create,
        prefer_return=cfg.prefer_return,
    )


#: ``thrive sync run --once`` exit codes: rows still waiting (store down, backing off) ...
EXIT_WAITING = 1
#: ... and rows the store refused in this run (dead-lettered, or parked as conflicts): a person must look.
EXIT_REFUSED = 3


def run(
    cfg: SyncConfig,
    *,
    once: bool = False,
    max_wait: float = 60.0,
    stop: threading.Event | None = None,
    summary: dict | None = None,
) -> int:
    """Run ``cfg.concurrency`` worker threads.

    Exit code 0; with ``once``: EXIT_REFUSED when rows were dead-lettered or parked as conflicts during
    this run (a cron job must not report success while saves sit waiting for a person), otherwise
    EXIT_WAITING when rows are still waiting. ``summary`` (a dict) receives the run's figures:
    ``dead_lettered``, ``parked``, ``pending``."""
    cfg.validate()
    store = LocalStore(cfg.database_url)
    store.migrate()
    q.refresh_statistics(store)  # an outbox bulk-filled before start would otherwise be planned blind
    auth = build_auth(cfg)  # shared: one token cache and one single-flight lock for all threads
    metrics = Metrics()
    stop = stop or threading.Event()
    server = metrics.serve(cfg.metrics_port) if cfg.metrics_port else None
    if server:
        log.info("metrics_listening", extra={"port": server.server_address[1]})

    def refresh_metrics() -> None:
        try:
            metrics.set_queue(q.figures(store, sent_total=False))
            if cfg.metrics_file:
                metrics.write_file(cfg.metrics_file)
        except Exception as exc:  # metrics must never stop the worker
            log.warning("metrics_failed", extra={"error": type(exc).__name__})

    def metrics_loop() -> None:
        while not stop.wait(cfg.metrics_interval):
            refresh_metrics()

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    results: list[bool] = []

    def one(worker: Worker) -> None:
        results.append(worker.run(stop, once=once, poll_interval=cfg.poll_interval, max_wait=max_wait))

    threads = []
    clients = []
    for _ in range(cfg.concurrency):
        client = build_client(cfg, auth)
        clients.append(client)
        threads.append(threading.Thread(target=one, args=(make_worker(cfg, store, client, metrics),), daemon=True))
    refresh_metrics()
    mt = threading.Thread(target=metrics_loop, daemon=True, name="metrics-refresh")
    mt.start()
    log.info("worker_started", extra={"worker": f"x{cfg.concurrency}"})
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(0.5)
    stop.set()
    refresh_metrics()
    fig = q.figures(store)
    dead_now = int(sum(v for (name, _l), v in metrics.counters.items() if name == "thrive_sync_dead_letters_total"))
    parked_now = int(sum(v for (name, _l), v in metrics.counters.items() if name == "thrive_sync_conflicts_total"))
    log.info(
        "worker_stopped",
        extra={
            "pending": fig["queued"] + fig["in_flight"],
            "sent": fig["sent"],
            "dead": fig["dead"],
            "conflicts": fig["conflicts"],
            "dead_lettered_this_run": dead_now,
            "parked_this_run": parked_now,
        },
    )
    if summary is not None:
        summary.update(dead_lettered=dead_now, parked=parked_now, pending=fig["queued"] + fig["in_flight"])
    for c in clients:
        c.close()
    if server:
        server.shutdown()
    store.dispose()
    if not once:
        return 0
    if dead_now or parked_now:
        return EXIT_REFUSED
    return 0 if all(results) else EXIT_WAITING
