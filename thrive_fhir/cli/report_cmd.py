"""``thrive report NAME --source DIR|URL --out FILE``: the data-team reports.

NAME is one of the reports in :mod:`thrive_fhir.reporting.reports`, ``all`` (every report, for a
.duckdb file), or ``html`` (a self-contained page with charts, plus PNG files). Small numbers are
suppressed unless ``--no-suppression``. Bad input is one line on stderr and a non-zero exit.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..reporting.reports import BY, REPORTS
from .view_cache_options import cache_options, say_if_built, view_cache_for


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("name", type=click.Choice([*list(REPORTS), "html"]))
@click.option("--source", required=True, help="A folder of NDJSON (plain or .gz) or a FHIR server base URL.")
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="Output file: .csv, .parquet or .duckdb (by extension); .html for 'html'.",
)
@click.option(
    "--from", "start", type=click.DateTime(formats=["%Y-%m-%d"]), default=None, help="First day of the period."
)
@click.option(
    "--to", "end", type=click.DateTime(formats=["%Y-%m-%d"]), default=None, help="Last day of the period (inclusive)."
)
@click.option("--by", type=click.Choice(list(BY)), default=None, help="Break the report down by agency, team or month.")
@click.option(
    "--threshold",
    type=click.IntRange(1, 10),
    default=3,
    show_default=True,
    help="Reliable change threshold for GBO scores (points).",
)
@click.option("--closed-only", is_flag=True, help="Outcomes: only goals whose episode is finished (NHS England basis).")
@click.option("--no-suppression", is_flag=True, help="Show small numbers (1-7) for internal use only.")
@click.option(
    "--since",
    default=None,
    help="With a server URL: only resources changed since this instant (_since); "
    "use with --download to add the changes to an earlier download.",
)
@click.option(
    "--download",
    "download_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="With a server URL: keep the NDJSON in this folder (runs with --since add to it).",
)
@click.option("--client-id", default=None, help="Backend Services client id (with a server URL).")
@click.option(
    "--key",
    "key_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Backend Services private key (PEM) for --client-id.",
)
@click.option("--kid", default=None, help="Key id of --key as registered with the server (default: the client id).")
@click.option("--token-url", default=None, help="Token endpoint (default: from the server's SMART configuration).")
@click.option(
    "--engine",
    type=click.Choice(["duckdb", "spark"]),
    default="duckdb",
    show_default=True,
    help="Where the views run: embedded DuckDB, or Spark for data that outgrows one machine.",
)
@click.option("--master", default=None, help="Spark master URL with --engine spark (default local[2]).")
@cache_options
def report(
    name,
    source,
    out,
    start,
    end,
    by,
    threshold,
    closed_only,
    no_suppression,
    since,
    download_dir,
    client_id,
    key_file,
    kid,
    token_url,
    engine,
    master,
    use_cache,
    cache_dir,
) -> None:
    """Write report NAME from SOURCE to OUT."""
    from ..reporting.compiler import ViewError
    from ..reporting.output import write_report_html, write_table
    from ..reporting.reports import VIEWS, Options, ReportError, run_report
    from ..reporting.run import RunError, engine_for, open_source
    from ..reporting.sources import SourceError

    opts = Options(
        start=start.date() if start else None,
        end=end.date() if end else None,
        by=by,
        threshold=threshold,
        closed_only=closed_only,
    )
    if opts.start and opts.end and opts.start > opts.end:
        raise click.UsageError("--from is after --to")
    auth = None
    if client_id:
        if not key_file:
            raise click.UsageError("--client-id needs --key")
        auth = {"client_id": client_id, "key_file": str(key_file), "token_url": token_url, "kid": kid}
    if name == "html" and out.suffix.lower() != ".html":
        raise click.UsageError("thrive report html writes an .html file (--out report.html)")
    names = list(REPORTS) if name == "html" else [name]
    types = sorted({_TYPES[v] for n in names for v in VIEWS[n]})

    def progress(message: str) -> None:
        click.echo(message, err=True)

    try:
        if since and not download_dir:
            raise click.UsageError(
                "--since needs --download DIR holding the earlier download (a report over the changes alone would be wrong)"
            )
        with open_source(source, types=types, since=since, auth=auth, progress=progress, keep=download_dir) as folder:
            cache = view_cache_for(use_cache, cache_dir, engine, source, download_dir)
            eng = engine_for(folder, engine, master, cache=cache)
            try:
                if name == "html":
                    write_report_html(eng, opts, out, suppressed=not no_suppression, progress=progress)
                    click.echo(f"report written to {out}")
                    return
                # A .duckdb output also holds the flattened views: whole, not just the report's columns.
                table = run_report(eng, name, opts, whole_views=out.suffix.lower() == ".duckdb")
                write_table(eng, table, out, suppressed=not no_suppression)
            finally:
                close = getattr(eng, "close", None)
                if close:
                    close()
                say_if_built(cache, progress)
    except (ViewError, RunError, ReportError, SourceError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{name}: {len(table.rows)} rows written to {out}")


#: View -> resource type (to ask a server's $export for only what the report reads).
_TYPES = {
    "groupings": "Observation",
    "grouping_changes": "Observation",
    "gbo_scores": "Observation",
    "goals": "Goal",
    "safety_plans": "CarePlan",
    "consents": "Consent",
    "referrals": "ServiceRequest",
    "referral_tasks": "Task",
    "episodes": "EpisodeOfCare",
    "practitioner_roles": "PractitionerRole",
    "organisations": "Organization",
    "services": "HealthcareService",
}
