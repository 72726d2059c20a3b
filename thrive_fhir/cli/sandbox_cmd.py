"""``thrive sandbox``: the development-only SMART sandbox (EHR page + authorization server + EHR store).

FOR DEVELOPMENT AND TESTING ONLY: users sign in by picking a name and sessions live in memory.
"""

from __future__ import annotations

import ipaddress
import logging
import sys
from pathlib import Path

import click

from thrive_fhir.sandbox import DEV_ONLY_NOTICE


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.group(
    help="Development-only SMART sandbox: a mock EHR page, SMART authorization server and "
    "EHR FHIR store on one origin. Not for real patients."
)
def sandbox() -> None:
    pass


@sandbox.command(help="Serve the EHR page (/ehr/), auth server (/auth/) and EHR FHIR store (/fhir) on one port.")
@click.option(
    "--database",
    "database_url",
    required=True,
    metavar="URL",
    help="SQLAlchemy URL of the EHR FHIR store, e.g. sqlite:///var/ehr.db",
)
@click.option("--port", type=click.IntRange(0, 65535), default=8100, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback only unless --allow-remote.")
@click.option("--app-launch-url", metavar="URL", help="The SMART app's launch URL for the 'Launch' button.")
@click.option(
    "--clients",
    "clients_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Client registry (JSON; see thrive_fhir/sandbox/registry.py for the format).",
)
@click.option(
    "--key",
    "key_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="PEM file of the signing key (created if missing). Default: a new key each start.",
)
@click.option("--public-url", metavar="URL", help="Origin clients use, if not http://HOST:PORT.")
@click.option("--allow-remote", is_flag=True, help="Allow a non-loopback --host (the sandbox is not secure).")
def serve(
    database_url: str,
    port: int,
    host: str,
    app_launch_url: str | None,
    clients_file: Path | None,
    key_file: Path | None,
    public_url: str | None,
    allow_remote: bool,
) -> None:
    from thrive_fhir.sandbox.keys import SigningKey
    from thrive_fhir.sandbox.registry import Registry, RegistryError
    from thrive_fhir.sandbox.runner import Stopper
    from thrive_fhir.sandbox.server import ServerThread, build_sandbox

    if not _is_loopback(host) and not allow_remote:
        raise click.ClickException(
            f"refusing to serve the sandbox on {host}: it is for development only "
            "(use 127.0.0.1, or --allow-remote if you really mean it)"
        )
    try:
        registry = Registry.load(clients_file) if clients_file else Registry()
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        key = SigningKey.load_or_create(key_file) if key_file else SigningKey.generate("RS256")
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"cannot use signing key {key_file}: {exc}") from None
    try:
        server = ServerThread(host, port, name="sandbox")
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    origin = (public_url or server.origin).rstrip("/")
    try:
        sb = build_sandbox(
            database_url, origin, registry=registry, key=key, app_launch_url=app_launch_url, persist_state=True
        )
    except Exception as exc:  # a bad database URL and the like: one readable line
        server.stop()
        raise click.ClickException(f"cannot open the EHR store at {database_url}: {exc}") from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    stopper = Stopper()
    stopper.install_signal_handlers()
    server.start(sb.wsgi)
    stopper.on_stop("sandbox", server.stop)
    click.echo(f"*** {DEV_ONLY_NOTICE} ***")
    click.echo(f"EHR page:        {origin}/ehr/")
    click.echo(f"FHIR base (iss): {sb.fhir_base}")
    click.echo(f"Discovery:       {sb.fhir_base}/.well-known/smart-configuration")
    click.echo(f"Clients:         {', '.join(registry.clients) or '(none registered)'}")
    switches = {
        "(sandbox)": registry.quirks.to_dict(),
        **{c.client_id: c.quirks.to_dict() for c in registry.clients.values()},
    }
    for who, values in switches.items():
        if values:
            click.echo(f"Mock switches:   {who} " + ", ".join(f"{k}={v}" for k, v in values.items()))
    click.echo("Press Ctrl-C to stop.")
    sys.stdout.flush()
    try:
        stopper.wait()
    finally:
        stopper.stop_all()
