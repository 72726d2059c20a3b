"""``thrive sync``: run the sync worker and look after the outbox.

Every failure is one readable line and a non-zero exit; no tracebacks, no tokens, no resource content
except in ``show`` (which prints the store's OperationOutcome or conflicting version for a person to read).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="TOML config file (THRIVE_SYNC_* environment variables override it).",
)
db_option = click.option("--database", "database_url", default=None, help="Local database URL (overrides config).")


def _cfg(config_path, **overrides):
    from thrive_fhir.sync.config import ConfigError, load_config

    try:
        return load_config(config_path, **overrides)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _store(cfg):
    from thrive_fhir.localstore import LocalStore

    try:
        store = LocalStore(cfg.database_url)
        store.migrate()
    except Exception as exc:  # bad URL, server down: say so in one line
        raise click.ClickException(f"cannot open the local database: {type(exc).__name__}") from None
    return store


def _when(ts):
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds") if ts else "-"


@click.group()
def sync() -> None:
    """Push saved changes to the shared FHIR store; inspect the outbox."""


@sync.command()
@config_option
@db_option
@click.option(
    "--once",
    is_flag=True,
    help="Drain the queue and exit: 0 all sent, 3 if rows were dead-lettered or "
    "parked as conflicts in this run, 1 if rows are still waiting.",
)
@click.option(
    "--max-wait",
    type=float,
    default=60.0,
    show_default=True,
    help="With --once: give up after this long with nothing ready.",
)
@click.option("--fhir-base", default=None, help="Store FHIR base URL (overrides config).")
@click.option("--concurrency", type=int, default=None, help="Worker threads in this process.")
@click.option("--metrics-port", type=int, default=None, help="Serve Prometheus metrics on 127.0.0.1:PORT/metrics.")
@click.option("--metrics-file", default=None, help="Write Prometheus text metrics to this file.")
@click.option("--log-file", default=None, help="JSON-lines log file (default stderr).")
def run(
    config_path, database_url, once, max_wait, fhir_base, concurrency, metrics_port, metrics_file, log_file
) -> None:
    """Run the sync worker (long-running unless --once)."""
    from thrive_fhir.sync import logs, runner
    from thrive_fhir.sync.config import ConfigError

    cfg = _cfg(
        config_path,
        database_url=database_url,
        fhir_base=fhir_base,
        concurrency=concurrency,
        metrics_port=metrics_port,
        metrics_file=metrics_file,
        log_file=log_file,
    )
    try:
        cfg.validate()
        logs.configure(cfg.log_file, cfg.log_level)
        summary: dict = {}
        code = runner.run(cfg, once=once, max_wait=max_wait, summary=summary)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if once and (summary.get("dead_lettered") or summary.get("parked")):
        click.echo(
            f"thrive sync: {summary['dead_lettered']} row(s) dead-lettered and {summary['parked']} parked as "
            "conflicts in this run; see 'thrive sync dead-letters list' and 'thrive sync conflicts list'",
            err=True,
        )
    elif once and code:
        click.echo(
            f"thrive sync: {summary.get('pending', 0)} row(s) still waiting (store unreachable or backing off)",
            err=True,
        )
    if code:
        raise click.exceptions.Exit(code)


@sync.command()
@config_option
@db_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(config_path, database_url, as_json) -> None:
    """Queued, in flight, sent, dead, conflicts, oldest age and lag."""
    from thrive_fhir.localstore import outbox as queue

    store = _store(_cfg(config_path, database_url=database_url))
    fig = queue.figures(store)
    store.dispose()
    if as_json:
        click.echo(json.dumps(fig))
        return
    for key in (
        "queued",
        "in_flight",
        "sent",
        "dead",
        "conflicts",
        "discarded",
        "oldest_pending_age_seconds",
        "lag_seconds",
    ):
        click.echo(f"{key.replace('_', ' '):28} {fig[key] if fig[key] is not None else '-'}")


def _print_rows(rows) -> None:
    if not rows:
        click.echo("none")
    for r in rows:
        click.echo(
            f"{r['id']:>8}  {r['uid']}  {_when(r['created_at'])}  attempts={r['attempts']}  "
            f"http={r['last_status'] or '-'}  {', '.join(r['resources'])}"
        )


def _show(store, row_id: int, as_json: bool) -> None:
    from thrive_fhir.sync.admin import AdminError, show_row

    try:
        detail = show_row(store, row_id)
    except AdminError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(detail, indent=2))
        return
    click.echo(
        f"row {detail['id']} ({detail['uid']}): {detail['status']}, {detail['attempts']} attempts, "
        f"last HTTP {detail['last_status'] or '-'}: {detail['last_error'] or '-'}"
    )
    click.echo("resources: " + ", ".join(detail["resources"]))
    click.echo("history:")
    for e in detail["history"]:
        click.echo(f"  {_when(e['at'])}  {e['kind']:<16} {e['http_status'] or '-':<4} {e['detail'] or ''}")
    if detail["outcome"] is not None:
        label = "store's current version" if detail["status"] == "conflict" else "store's answer"
        click.echo(f"{label}:")
        click.echo(json.dumps(detail["outcome"], indent=2))


def _add_list_and_show(group: click.Group, status: str, what: str) -> None:
    """``list`` and ``show ROW_ID`` for one parked status: dead letters and conflicts read the same way."""

    @group.command("list", help=f"Every {what}, oldest first.")
    @config_option
    @db_option
    def list_rows_cmd(config_path, database_url) -> None:
        from thrive_fhir.sync.admin import list_rows

        _print_rows(list_rows(_store(_cfg(config_path, database_url=database_url)), status))

    @group.command("show", help=f"One {what}: its resources, attempts and the store's answer.")
    @config_option
    @db_option
    @click.argument("row_id", type=int)
    @click.option("--json", "as_json", is_flag=True)
    def show_row_cmd(config_path, database_url, row_id, as_json) -> None:
        _show(_store(_cfg(config_path, database_url=database_url)), row_id, as_json)


@sync.group("dead-letters")
def dead_letters() -> None:
    """Rows the store rejected (with its OperationOutcome)."""


_add_list_and_show(dead_letters, "dead", "dead letter")


@dead_letters.command("retry")
@config_option
@db_option
@click.argument("row_id", type=int)
def dl_retry(config_path, database_url, row_id) -> None:
    """Re-queue a dead letter (after fixing the cause); its history stays."""
    from thrive_fhir.sync.admin import AdminError, requeue

    try:
        requeue(_store(_cfg(config_path, database_url=database_url)), row_id)
    except AdminError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"row {row_id} re-queued")


@sync.group()
def conflicts() -> None:
    """Rows parked because the store holds a version someone else wrote."""


_add_list_and_show(conflicts, "conflict", "conflict")


@conflicts.command("resolve")
@config_option
@db_option
@click.argument("row_id", type=int)
@click.option("--theirs", "choice", flag_value="theirs", help="The store's version stands and becomes the local one.")
@click.option("--mine", "choice", flag_value="ours", help="Send our version over the store's current one (If-Match).")
@click.option(
    "--keep",
    type=click.Choice(["ours", "theirs"]),
    default=None,
    help="The same choice spelled --keep ours|theirs.",
)
@click.option("--fhir-base", default=None)
def cf_resolve(config_path, database_url, row_id, choice, keep, fhir_base) -> None:
    """Close a conflict: --theirs brings the store's current version into the local store (no push);
    --mine re-sends ours with If-Match on the store's current version. Both read the store with the
    worker's configured credentials."""
    from thrive_fhir.sync import runner
    from thrive_fhir.sync.admin import AdminError, resolve_conflict
    from thrive_fhir.sync.config import ConfigError

    if choice and keep and choice != keep:
        raise click.UsageError("choose one of --theirs and --mine")
    keep = choice or keep
    if keep is None:
        raise click.UsageError("say which version to keep: --theirs or --mine")
    cfg = _cfg(config_path, database_url=database_url, fhir_base=fhir_base)
    store = _store(cfg)
    try:
        resolve_conflict(store, runner.build_client(cfg.validate()), row_id, keep)
    except (AdminError, ConfigError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"row {row_id} resolved: kept {'the store' if keep == 'theirs' else 'our'} version")


@sync.command()
@config_option
@click.option("--fhir-base", default=None, help="Store FHIR base URL (overrides config).")
def check(config_path, fhir_base) -> None:
    """Probe the store (ids, transactions, If-Match, conditional update, searches, Bundle size, scope),
    delete what the probe wrote, and name the settings to use. Exit 1 when no safe setting exists."""
    from thrive_fhir.sync import probe, runner
    from thrive_fhir.sync.config import ConfigError

    cfg = _cfg(config_path, fhir_base=fhir_base)
    if not cfg.fhir_base.startswith(("http://", "https://")):
        raise click.ClickException("fhir_base must be the store's FHIR base URL (http:// or https://)")
    try:
        client = runner.build_client(cfg)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    scope = cfg.auth.scope if cfg.auth.type == "backend-services" else ""
    try:
        report = probe.Probe(client, requested_scope=scope).check()
    finally:
        client.close()
    for line in probe.render(report):
        click.echo(line)
    if not report.usable:
        raise click.exceptions.Exit(1)
