"""``thrive store``: run the embedded FHIR R4 server, or export its database as NDJSON."""

from __future__ import annotations

import sys
from pathlib import Path

import click


class _OneLineUsageError(click.UsageError):
    """Usage errors as one readable line (exit 2), not a usage block."""

    def show(self, file=None) -> None:
        click.echo(f"thrive store: {self.format_message()}", err=True)


class _Command(click.Command):
    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            if isinstance(exc, _OneLineUsageError):
                raise
            raise _OneLineUsageError(exc.format_message(), exc.ctx) from None


def _database_url(value: str) -> str:
    """Accept a SQLAlchemy URL or a plain file path (meaning a SQLite file)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if "://" not in value:
        return "sqlite:///" + str(Path(value).resolve())
    try:
        url = make_url(value)
    except ArgumentError:
        raise _OneLineUsageError(f"--database: not a database URL: {value.split('://')[0]}://...") from None
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise _OneLineUsageError("--database: only sqlite:/// and postgresql+psycopg:// URLs are supported")
    return value


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def store() -> None:
    """Run the embedded FHIR R4 server (SQLite file or PostgreSQL)."""


@store.command(cls=_Command)
@click.option(
    "--database",
    "-d",
    required=True,
    envvar="THRIVE_STORE_DATABASE",
    help="SQLAlchemy URL or a SQLite file path (created if missing); env THRIVE_STORE_DATABASE. "
    "Keep a PostgreSQL password out of it: libpq reads PGPASSFILE.",
)
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Interface to bind (keep loopback unless behind TLS)."
)
@click.option("--port", "-p", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option("--base-url", default=None, help="Public base URL used in links (default: from the request Host).")
@click.option("--no-validate", is_flag=True, help="Store resources without validating them.")
@click.option("--warn-only", is_flag=True, help="Validate but store invalid resources, reporting the issues.")
@click.option("--audit-reads", is_flag=True, help="Write an AuditEvent for every read or search of patient data.")
@click.option(
    "--threads",
    type=click.IntRange(1, 64),
    default=32,
    show_default=True,
    help="Server threads; a quarter (at least 2) are kept for reads while writes queue.",
)
@click.option("--max-body-mb", type=click.IntRange(1, 1024), default=20, show_default=True)
@click.option(
    "--quirks",
    default=None,
    help="TESTING ONLY: behave like other FHIR servers (medplum, or a comma list; see thrive_fhir/store/quirks.py).",
)
@click.option(
    "--auth-issuer",
    envvar="THRIVE_STORE_AUTH_ISSUER",
    default=None,
    help="Authorization server whose JWT access tokens this store accepts (its iss); turns on SMART "
    "scopes, consent enforcement and audit. Env THRIVE_STORE_AUTH_ISSUER.",
)
@click.option(
    "--auth-audience",
    envvar="THRIVE_STORE_AUTH_AUDIENCE",
    default=None,
    help="This store's base URL as tokens name it in aud (default: --base-url). Env THRIVE_STORE_AUTH_AUDIENCE.",
)
@click.option(
    "--auth-jwks-url",
    envvar="THRIVE_STORE_AUTH_JWKS_URL",
    default=None,
    help="The issuer's JWKS (default: jwks_uri from its discovery document). Env THRIVE_STORE_AUTH_JWKS_URL.",
)
@click.option(
    "--auth-discovery-url",
    envvar="THRIVE_STORE_AUTH_DISCOVERY_URL",
    default=None,
    help="The issuer's discovery document (default: <issuer>/.well-known/smart-configuration, then "
    "openid-configuration). Env THRIVE_STORE_AUTH_DISCOVERY_URL.",
)
@click.option(
    "--auth-jwks-refetch",
    envvar="THRIVE_STORE_AUTH_JWKS_REFETCH",
    type=click.FloatRange(0, 3600),
    default=30.0,
    show_default=True,
    help="Least seconds between JWKS refetches for an unknown key id.",
)
@click.option(
    "--auth-introspect",
    envvar="THRIVE_STORE_AUTH_INTROSPECT",
    default=None,
    help="Check every token at this RFC 7662 introspection endpoint instead of as a JWT (opaque "
    "tokens). Env THRIVE_STORE_AUTH_INTROSPECT.",
)
@click.option(
    "--auth-introspect-client",
    envvar="THRIVE_STORE_AUTH_INTROSPECT_CLIENT",
    default=None,
    type=click.Path(dir_okay=False),
    help="TOML file with client_id and client_secret for introspection.",
)
@click.option(
    "--consent-custodian",
    "custodians",
    multiple=True,
    envvar="THRIVE_STORE_CONSENT_CUSTODIANS",
    help="Organization/<id> holding the record (repeatable; env: space-separated). Tokens of any other "
    "organisation see only young people whose sharing Consent names it.",
)
@click.option(
    "--subscription-endpoint",
    "subscription_endpoints",
    multiple=True,
    envvar="THRIVE_STORE_SUBSCRIPTION_ENDPOINTS",
    help="URL prefix a Subscription's rest-hook endpoint must fall under (repeatable; env: space-separated). "
    "Without one, Subscriptions are refused. Loopback and http:// endpoints only when listed.",
)
@click.option(
    "--require-auth",
    is_flag=True,
    envvar="THRIVE_STORE_REQUIRE_AUTH",
    help="Refuse to start without --auth-issuer (set it in production). Env THRIVE_STORE_REQUIRE_AUTH=1.",
)
def serve(
    database,
    host,
    port,
    base_url,
    no_validate,
    warn_only,
    audit_reads,
    threads,
    max_body_mb,
    quirks,
    auth_issuer,
    auth_audience,
    auth_jwks_url,
    auth_discovery_url,
    auth_jwks_refetch,
    auth_introspect,
    auth_introspect_client,
    custodians,
    subscription_endpoints,
    require_auth,
) -> None:
    """Serve FHIR R4 over HTTP until Ctrl-C."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import OperationalError

    from ..store import create_app
    from ..store import serve as run

    if no_validate and warn_only:
        raise _OneLineUsageError("--no-validate and --warn-only exclude each other")
    url = _database_url(database)
    validate = False if no_validate else ("warn" if warn_only else True)
    auth = _token_verifier(
        auth_issuer,
        auth_audience or base_url,
        auth_jwks_url,
        auth_discovery_url,
        auth_jwks_refetch,
        custodians,
        require_auth,
        quirks,
        introspect=(auth_introspect, auth_introspect_client),
    )
    if auth:
        auth["consent_custodians"] = list(custodians) or None
    from ..store.subscriptions.spec import valid_prefix

    bad = [e for e in subscription_endpoints if not valid_prefix(e)]
    if bad:
        raise _OneLineUsageError(f"--subscription-endpoint: expected an http(s) URL prefix, got {bad[0]!r}")
    subscriptions = {"subscription_endpoints": list(subscription_endpoints)} if subscription_endpoints else {}

    def make_app(**extra):
        return create_app(
            url,
            base_url=base_url,
            validate_on_write=validate,
            audit_reads=audit_reads,
            max_body=max_body_mb * 1024 * 1024,
            **auth,
            **subscriptions,
            **extra,
        )

    try:
        if quirks:
            from ..store.quirks import QuirksError, wrap

            try:
                app = wrap(make_app, quirks)
            except QuirksError as exc:
                raise _OneLineUsageError(f"--quirks: {exc}") from None
            click.echo(
                f"thrive store: QUIRKS MODE ({app.quirks.describe()}): a test double, never for real data", err=True
            )
        else:
            app = make_app()
    except OperationalError as exc:
        click.echo(f"thrive store: cannot open the database ({type(exc.orig).__name__})", err=True)
        sys.exit(1)
    shown = make_url(url).render_as_string(hide_password=True)
    click.echo(f"THRIVE-FHIR store: http://{host}:{port}/metadata  database: {shown}  validation: {validate}")
    if auth:
        click.echo(
            f"access tokens: issuer {auth_issuer}, audience {auth_audience or base_url}; "
            f"consent custodians: {' '.join(custodians) or 'none (consent gate off)'}"
        )
    else:
        click.echo("thrive store: no --auth-issuer: every request is served WITHOUT access control", err=True)
    if subscription_endpoints:
        click.echo(f"subscriptions: endpoints allowed under {' '.join(subscription_endpoints)}")
    try:
        run(app, host, port, threads=threads)
    except OSError as exc:
        click.echo(f"thrive store: cannot listen on {host}:{port} ({exc.strerror})", err=True)
        sys.exit(1)
    finally:
        if getattr(app, "subscriptions", None) is not None:
            app.subscriptions.stop()  # the delivery thread ends with the server


def _token_verifier(
    issuer, audience, jwks_url, discovery_url, refetch, custodians, require_auth, quirks, *, introspect=(None, None)
) -> dict:
    """create_app's ``token_verifier`` and ``smart_configuration`` for --auth-* (empty: no access control)."""
    bad = [c for c in custodians if not (c.startswith("Organization/") and len(c) > len("Organization/"))]
    if bad:
        raise _OneLineUsageError(f"--consent-custodian: expected Organization/<id>, got {bad[0]!r}")
    if not issuer:
        if require_auth:
            raise _OneLineUsageError("--require-auth: no --auth-issuer given, so no token could be verified")
        if custodians or jwks_url or discovery_url or any(introspect):
            raise _OneLineUsageError("--consent-custodian and --auth-* need --auth-issuer")
        return {}
    if quirks:
        raise _OneLineUsageError("--quirks and --auth-issuer exclude each other")
    if not audience:
        raise _OneLineUsageError("--auth-issuer needs --auth-audience (or --base-url): the URL tokens name in aud")
    from ..store.token_verification import AuthConfigError, AuthSettings, build_verifier

    settings = AuthSettings(
        issuer=issuer,
        audience=audience,
        jwks_url=jwks_url,
        discovery_url=discovery_url,
        refetch_interval=refetch,
        require_organization=bool(custodians),
    )
    try:
        verifier, smart = build_verifier(settings, introspect_url=introspect[0], introspect_client=introspect[1])
    except AuthConfigError as exc:
        click.echo(f"thrive store: {exc}", err=True)
        sys.exit(1)
    return {"token_verifier": verifier, "smart_configuration": smart}


@store.command(cls=_Command)
@click.option("--database", "-d", required=True, help="SQLAlchemy URL or a SQLite file path.")
@click.option(
    "--out", "-o", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder for NDJSON files."
)
@click.option("--type", "types", multiple=True, help="Resource type to export (repeatable; default: all).")
@click.option("--since", default=None, help="Only resources changed after this instant.")
def export(database, out_dir, types, since) -> None:
    """Write current resources as one NDJSON file per type, straight from the database."""
    import threading

    from ..store.bulk_export import Exporter
    from ..store.fhirdates import date_range, utcnow
    from ..store.resource_types import resource_types
    from ..store.schema import make_engine

    url = _database_url(database)
    known = resource_types()
    bad = [t for t in types if t not in known]
    if bad:
        raise _OneLineUsageError(f"--type: unknown resource type {bad[0]!r}")
    since_dt = None
    if since:
        rng = date_range(since)
        if rng is None:
            raise _OneLineUsageError("--since: expected a FHIR instant such as 2024-05-01T00:00:00Z")
        since_dt = rng[0]
    if "sqlite" in url and not Path(url.split("///", 1)[-1]).exists():
        raise _OneLineUsageError("--database: no such SQLite file")
    engine = make_engine(url)
    exporter = Exporter(engine, Path(out_dir), known, tokens_required=False)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    now = utcnow()
    total = 0
    for rtype in types or sorted(known):
        count = exporter.export_type(rtype, "system", since_dt, now, out, threading.Event())
        if count:
            click.echo(f"{rtype}: {count}")
            total += count
    click.echo(f"exported {total} resources to {out}")


@store.command(name="import", cls=_Command)
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--url", required=True, help="FHIR base URL of the server to load into (any FHIR R4 server).")
@click.option(
    "--auth",
    "auth_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="TOML file with an [auth] table (sync config format).",
)
@click.option(
    "--batch",
    "batch_size",
    type=click.IntRange(1, 1000),
    default=100,
    show_default=True,
    help="Resources per transaction Bundle.",
)
def import_(source, url, auth_path, batch_size) -> None:
    """Load DIR (every *.ndjson in it) or FILE.ndjson into the server at --url, in reference order."""
    from .store_import import run_import

    sys.exit(run_import(source, url, auth_path, batch_size))
