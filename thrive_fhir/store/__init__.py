"""Embedded FHIR R4 server: a WSGI app over SQLAlchemy (SQLite file or PostgreSQL), served by waitress.

It is the sandbox EHR's FHIR API, the default shared cross-agency store in the demo and tests, and a
real option for small deployments. Public interface::

    app = create_app("sqlite:///store.db", validate_on_write=True, token_verifier=verify)
    serve(app, "127.0.0.1", 8080)

``token_verifier(bearer_token) -> thrive_fhir.smart_scopes.Grant | None``; when given, every request
but ``/metadata`` and ``/.well-known/*`` needs a valid token and SMART scopes are enforced.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..smart_scopes import Grant

DEFAULT_MAX_BODY = 20 * 1024 * 1024
DEFAULT_THREADS = 32

log = logging.getLogger("thrive_fhir.store")


def create_app(
    database_url: str,
    *,
    base_url: str | None = None,
    validate_on_write: bool | str = True,
    token_verifier: Callable[[str], Grant | None] | None = None,
    audit_reads: bool = False,
    max_body: int = DEFAULT_MAX_BODY,
    export_dir: str | Path | None = None,
    smart_configuration: dict | None = None,
    pool_size: int = 10,
    consent_custodians: list[str] | None = None,
    subscription_endpoints: list[str] | tuple[str, ...] | None = None,
    subscription_retry=None,
    subscription_poll: float = 0.5,
):
    """Build the WSGI app; creates the tables if missing.

    ``validate_on_write``: True rejects invalid resources (422), "warn" stores them and reports the
    issues, False skips validation. ``base_url`` fixes the URLs in links and Location headers; by
    default they follow the request's Host. ``consent_custodians``: the organisations holding the
    record (``Organization/<id>``); when given, tokens of any other organisation are agency tokens and
    see only young people whose sharing Consent names them (consent_gate.py). ``smart_configuration`` is served at
    ``/.well-known/smart-configuration`` (the sandbox auth server passes its discovery document).
    ``subscription_endpoints``: URL prefixes Subscription endpoints must fall under (docs/subscriptions.md);
    when given, every committed write in a patient compartment is recorded as a topic event and a
    dispatcher thread delivers notifications (``app.subscriptions.stop()`` ends it). Without it,
    Subscriptions are refused. ``subscription_retry``: a ``subscriptions.RetryPolicy``.
    """
    from .bulk_export import Exporter
    from .capability import capability_statement
    from .consent_gate import ConsentGate
    from .resource_types import resource_types
    from .schema import create_schema, make_engine
    from .service import Store
    from .wsgi import StoreApp

    if validate_on_write not in (True, False, "warn"):
        raise ValueError("validate_on_write must be True, False or 'warn'")
    engine = make_engine(database_url, pool_size=pool_size)
    create_schema(engine)
    types = resource_types()
    store = Store(engine, validate_on_write=validate_on_write, resource_types=types)
    store.consent = ConsentGate(engine, consent_custodians)
    store.consent.install()
    from .subscriptions import Subscriptions

    allowlist = tuple(subscription_endpoints or ())
    subscriptions = Subscriptions(store, allowlist, policy=subscription_retry, poll=subscription_poll)
    if allowlist:
        # events are recorded in the write's own transaction (writes.apply -> subscriptions.events)
        store.writer = engine.execution_options(write=True, subscription_events=True)
        store.after_commit = subscriptions.wake
    if validate_on_write:
        from .validation_hook import project_validator

        project_validator()  # load now: the first write should not pay for it, and failures show at start
    if export_dir is None:
        db_file = engine.url.database if engine.dialect.name == "sqlite" else None
        export_dir = (
            Path(db_file + ".exports")
            if db_file and db_file != ":memory:"
            else Path(tempfile.mkdtemp(prefix="thrive-store-export-"))
        )
    # Subscriptions are shown only to their creators (subscriptions/api.py), never in a bulk export.
    exporter = Exporter(engine, Path(export_dir), types - {"Subscription"}, tokens_required=token_verifier is not None)
    cache: dict[str, dict] = {}

    def capability(base: str) -> dict:
        if base not in cache:
            from .. import __version__ as version

            cache[base] = capability_statement(
                base,
                types,
                software_version=str(version),
                smart_configuration=smart_configuration,
                access_control=token_verifier is not None,
                subscriptions=bool(allowlist),
            )
        return cache[base]

    app = StoreApp(
        store,
        exporter,
        base_url=base_url,
        token_verifier=token_verifier,
        audit_reads=audit_reads,
        max_body=max_body,
        capability=capability,
        smart_configuration=smart_configuration,
    )
    app.engine = engine
    app.subscriptions = subscriptions
    subscriptions.start()
    # PostgreSQL: every request holds a pooled connection (pool_size + the same overflow, see
    # schema.make_engine), so writes must leave some of those to reads too. SQLite reads do not
    # use the pool.
    app.connections = None if engine.dialect.name == "sqlite" else 2 * pool_size
    return app


def serve(
    app, host: str = "127.0.0.1", port: int = 8080, *, threads: int = DEFAULT_THREADS, max_body: int | None = None
) -> None:
    """Serve ``app`` with waitress until interrupted.

    A quarter of the threads (at least 2) are kept from writes, so reads are served while writers
    saturate the store (see :mod:`.admission`); waiting threads cost little, hence the default of 32.

    waitress reads whole request bodies before calling the app; its own hard cap is set a little above
    the app's limit so oversized bodies still get the app's OperationOutcome 413, while a client
    cannot make the server spool gigabytes to disk.
    """
    import waitress

    limit = max_body or getattr(app, "max_body", DEFAULT_MAX_BODY)
    if hasattr(app, "admission"):
        app.admission.configure(threads, getattr(app, "connections", None))
    waitress.serve(
        app,
        host=host,
        port=port,
        threads=threads,
        max_request_body_size=max(limit * 4, 64 << 20),
        ident="thrive-fhir-store",
        clear_untrusted_proxy_headers=True,
    )


__all__ = ["DEFAULT_MAX_BODY", "Grant", "create_app", "serve"]
