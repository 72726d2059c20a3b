"""``thrive store import``: NDJSON into any FHIR server, with a progress bar and a closing summary.

The loading itself is :mod:`thrive_fhir.client.ndjson_import` (reference order, transaction
batches, a failed batch retried resource by resource); this module is the command's input and output.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from ..client.ndjson_import import Importer, InputError, Unreachable, read_input, reference_order
from .fhir_source import open_client

SHOW_FAILURES = 20


def run_import(source: Path, url: str, auth_path: str | None, batch_size: int) -> int:
    """Returns the exit code: 0 all loaded, 1 some failed or the input/server could not be used."""
    if not url.startswith(("http://", "https://")):
        raise click.UsageError(f"--url must be an http(s) FHIR base URL, not {url!r}")
    try:
        resources = reference_order(read_input(source))
    except InputError as exc:
        click.echo(f"thrive store import: {exc}", err=True)
        return 1
    if not resources:
        click.echo(f"thrive store import: {source} holds no resources", err=True)
        return 1
    client = open_client(url, auth_path, user_agent="thrive-store-import")
    started = time.monotonic()
    try:
        with click.progressbar(
            length=len(resources), label=f"Loading {len(resources)} resources", file=sys.stderr, show_pos=True
        ) as bar:
            report = Importer(client, batch_size=batch_size).run(resources, bar.update)
    except Unreachable as exc:
        click.echo(f"\nthrive store import: {exc}; nothing more was sent", err=True)
        return 1
    finally:
        client.close()
    elapsed = time.monotonic() - started
    click.echo(
        f"Loaded {report.total} of {len(resources)} resources into {url} in {elapsed:.1f} s "
        f"({report.batches} transaction batches of up to {batch_size})."
    )
    for rtype, n in sorted(report.loaded.items()):
        click.echo(f"  {rtype}: {n}")
    if report.failures:
        click.echo(f"{len(report.failures)} resource(s) failed:")
        for f in report.failures[:SHOW_FAILURES]:
            status = f"HTTP {f.status}" if f.status else "no answer"
            click.echo(f"  {f.reference}: {status}: {f.message}")
        if len(report.failures) > SHOW_FAILURES:
            click.echo(f"  ... and {len(report.failures) - SHOW_FAILURES} more")
        return 1
    return 0
