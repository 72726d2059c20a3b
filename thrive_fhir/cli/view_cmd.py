"""``thrive view run VIEW.json --source DIR|URL --out FILE``: run one's own ViewDefinition.

Bad input (a view that does not compile, an unreadable source, a bad output name) is one line on
stderr and a non-zero exit; never a traceback.
"""

from __future__ import annotations

from pathlib import Path

import click

from .view_cache_options import cache_options, say_if_built, view_cache_for


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def view() -> None:
    """Run SQL on FHIR v2 ViewDefinitions (DuckDB, or Spark with --engine spark)."""


@view.command("run")
@click.argument("view_file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--source", required=True, help="A folder of NDJSON (plain or .gz) or a FHIR server base URL.")
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="Output file: .csv, .parquet or .duckdb (chosen by the extension).",
)
@click.option("--engine", type=click.Choice(["duckdb", "spark"]), default="duckdb", show_default=True)
@click.option("--master", default=None, help="Spark master URL (with --engine spark), e.g. spark://host:7077.")
@click.option("--show-sql", is_flag=True, help="Print the compiled SQL instead of running it.")
@cache_options
def run(
    view_file: Path,
    source: str,
    out: Path,
    engine: str,
    master: str | None,
    show_sql: bool,
    use_cache: bool,
    cache_dir: Path | None,
) -> None:
    """Run VIEW_FILE (a ViewDefinition JSON file) over SOURCE and write its rows to OUT."""
    from ..reporting.compiler import ViewError, compile_view
    from ..reporting.engine import load_view_file
    from ..reporting.run import RunError, open_source, run_view_to_file

    def progress(message: str) -> None:
        click.echo(message, err=True)

    try:
        vd = load_view_file(view_file)
        compiled = compile_view(vd, engine)  # a bad view fails here, before any download
        if show_sql:
            click.echo(compiled.sql("<source>"))
            return
        cache = view_cache_for(use_cache, cache_dir, engine, source)
        with open_source(source, types=[compiled.resource], progress=progress) as folder:
            n = run_view_to_file(vd, folder, out, engine=engine, master=master, cache=cache)
        say_if_built(cache, progress)
    except (ViewError, RunError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{n} rows written to {out}")


@view.command("conformance")
@click.argument("tests", type=click.Path(path_type=Path))
@click.option("--engine", type=click.Choice(["duckdb", "spark"]), default="duckdb", show_default=True)
@click.option(
    "--report",
    "report_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write the results here, in the shape of the SQL on FHIR test_report.json.",
)
@click.option("--verbose", "-v", is_flag=True, help="Print each failing test and why.")
def conformance(tests: Path, engine: str, report_file: Path | None, verbose: bool) -> None:
    """Run SQL on FHIR v2 test files (a folder of them, or one) and print how many pass."""
    import json

    from ..reporting.conformance import ConformanceError, run_dir, summary

    try:
        report = run_dir(tests, engine=engine)
    except ConformanceError as exc:
        raise click.ClickException(str(exc)) from None
    if report_file is not None:
        try:
            report_file.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            raise click.ClickException(f"{report_file}: cannot write it ({exc.strerror})") from None
    if verbose:
        for name, body in report.items():
            for t in body["tests"]:
                if not t["result"]["passed"]:
                    click.echo(f"FAIL {name} / {t['name']}: {t['result'].get('reason', '')}")
    click.echo(f"{summary(report)} ({engine})")
