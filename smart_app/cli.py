"""``thrive app serve``: run the clinician SMART app with waitress; ``thrive app subscribe``: make
sure the deployment's Subscription to the shared store's changes exists (smart_app.subscribe).

    thrive app serve --config app.toml --port 8101 [--host 127.0.0.1] [--threads 8]
    thrive app subscribe --config app.toml

With change notifications configured (``[shared_store] notification_endpoint``), ``serve`` also
subscribes on start, and again whenever no notification has arrived for two heartbeat periods.

The config file format (TOML, JSON or YAML) is documented in ``smart_app/config.py``. The command is
registered in the ``thrive.commands`` entry-point group (pyproject.toml), so the library's ``thrive``
command finds it without importing the app (docs/architecture.md, "Layers").
"""

from __future__ import annotations

import logging
import sys
import threading

import click
import waitress

from . import create_app
from .config import ConfigError, load_config
from .security import install_log_redaction

#: How often (seconds) Python asks a running thread to hand the GIL to a waiting one. The default
#: 5 ms lets a thread that just got its answer from the database or the shared store wait up to 5 ms
#: for each hand-back while page renders run, and a Summary makes several such calls in a row.
#: 1 ms measured lower: 20 clinicians at a person's pace, 4 runs each way alternated
#: (benchmarks/shared_summary.py, load 2 to 12), Summary p95 over every open 93 to 157 ms at 1 ms
#: against 102 to 204 ms at 5 ms, lower in every pair; the launch's store read finished sooner too.
SWITCH_INTERVAL = 0.001


def tune_for_latency() -> None:
    """The served app's thread scheduling (see :data:`SWITCH_INTERVAL`); ``thrive app serve`` and
    the benchmark's app server call it before serving."""
    sys.setswitchinterval(SWITCH_INTERVAL)


@click.group(name="app")
def app_command() -> None:
    """Run the clinician SMART app."""


@app_command.command()
@click.option(
    "--config",
    "config_path",
    envvar="THRIVE_APP_CONFIG",
    type=click.Path(dir_okay=False),
    help="App config file (.toml, .json or .yaml): registered EHRs, database, ODS code. "
    "THRIVE_APP_* environment variables override it (see smart_app/config.py); "
    "without it, the environment alone configures the app.",
)
@click.option("--port", type=click.IntRange(1, 65535), default=8101, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--threads", type=click.IntRange(1, 64), default=8, show_default=True)
def serve(config_path: str | None, port: int, host: str, threads: int) -> None:
    """Serve the app until interrupted."""
    try:
        cfg = load_config(config_path)
    except ConfigError as exc:
        raise click.ClickException(f"config: {exc}") from None
    try:
        application = create_app(cfg)
    except ConfigError as exc:
        raise click.ClickException(f"config: {exc}") from None
    except Exception as exc:  # database unreachable, migrations failing, ...
        raise click.ClickException(f"cannot start the app: {type(exc).__name__}: {exc}") from None

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    install_log_redaction(application)  # again, now that basicConfig added the root handler
    click.echo(f"THRIVE app on http://{host}:{port}/ ({len(cfg.ehrs)} EHR(s) registered)")
    if cfg.shared_store is not None and cfg.shared_store.notifications:
        from .subscribe import keep_subscribed

        threading.Thread(
            target=keep_subscribed,
            args=(cfg.shared_store, application.extensions["thrive"].changes, threading.Event()),
            name="thrive-subscribe",
            daemon=True,
        ).start()
    tune_for_latency()
    waitress.serve(application, host=host, port=port, threads=threads, ident="thrive-app")


@app_command.command()
@click.option(
    "--config",
    "config_path",
    envvar="THRIVE_APP_CONFIG",
    type=click.Path(dir_okay=False),
    help="App config file with a [shared_store] section naming notification_endpoint and notification_secret_file.",
)
def subscribe(config_path: str | None) -> None:
    """Find or create this deployment's Subscription to shared-plan changes (safe to repeat)."""
    from .subscribe import SubscribeError, ensure

    try:
        cfg = load_config(config_path)
    except ConfigError as exc:
        raise click.ClickException(f"config: {exc}") from None
    if cfg.shared_store is None or not cfg.shared_store.notifications:
        raise click.ClickException(
            "config: [shared_store] needs notification_endpoint and notification_secret_file to subscribe"
        )
    try:
        done = ensure(cfg.shared_store)
    except SubscribeError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:  # the key file went away since the config was read
        raise click.ClickException(f"cannot read the Backend Services key: {exc.strerror}") from None
    if done.status == "error":
        raise click.ClickException(
            f"Subscription/{done.subscription_id} is in error: the store could not deliver its handshake to "
            f"{cfg.shared_store.notification_endpoint} (is the app serving there?)"
        )
    click.echo(f"Subscription/{done.subscription_id}: {done.action} (status {done.status or 'unknown'})")
