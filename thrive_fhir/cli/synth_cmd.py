"""``thrive synth``: write a deterministic synthetic population as NDJSON, with ground truth.

Usage errors (bad numbers, an unusable folder) are one line on stderr and exit status 2; a failure
while generating is one line and exit status 1. Never a traceback.
"""

from __future__ import annotations

import time
from datetime import date, datetime
from pathlib import Path

import click


class _OneLineUsage(click.Command):
    """Report usage errors as a single ``Error: ...`` line (no usage block) with exit status 2."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            if exc.ctx is None:
                raise
            raise click.UsageError(exc.format_message()) from None


class _BadRequest(click.ClickException):
    """A usage problem found after parsing: ``Error: <message>`` and exit status 2, like click's own."""

    exit_code = 2


def _usage(message: str) -> click.ClickException:
    return _BadRequest(message)


@click.command(cls=_OneLineUsage, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--patients",
    "-n",
    "patients",
    type=int,
    required=True,
    help="How many young people to generate (1 to 900,000; ~25 resources each).",
)
@click.option(
    "--seed",
    "-s",
    type=int,
    default=1,
    show_default=True,
    help="Random seed: the same seed and size give byte-identical files.",
)
@click.option(
    "--out",
    "-o",
    "out",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Folder for <Type>.ndjson and ground_truth.json (created if missing).",
)
@click.option(
    "--provenance/--no-provenance",
    default=False,
    show_default=True,
    help="Also write one Provenance per save (and the app Device).",
)
@click.option(
    "--as-of",
    "as_of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default="2026-01-01",
    show_default=True,
    help="The day the data is as of (YYYY-MM-DD): referrals in the three years before it, nothing on or "
    "after it, recent safety plans and consents still in date on it. Not after today.",
)
@click.option("--overwrite", is_flag=True, help="Replace a population already in the folder.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing on success.")
def synth(patients: int, seed: int, out: Path, provenance: bool, as_of: datetime, overwrite: bool, quiet: bool) -> None:
    """Write a synthetic THRIVE population (all invented; NHS numbers from the 999 test range).

    One NDJSON file per resource type: organisations, practitioners and the local offer; then per
    young person: Patient, parent, episode, grouping Observations over time with transitions,
    GBO goals and scores, safety plans, care teams, consents, risk flags, signposting and
    referrals. ground_truth.json holds the counts a report should recover, counted from the
    written files.

    The default --as-of is fixed so a seed always gives the same files; pass today's date for a
    population whose recent plans and sharing agreements are still in date today.
    """
    from thrive_fhir.synth import MAX_PATIENTS, SynthError, generate

    if patients < 1:
        raise _usage("--patients must be at least 1")
    if patients > MAX_PATIENTS:
        raise _usage(f"--patients must be at most {MAX_PATIENTS} (the NHS test number range holds no more)")
    day = as_of.date()
    if day > date.today():
        raise _usage(f"--as-of {day.isoformat()} is after today: the records would be dated in the future")
    started = time.perf_counter()
    try:
        truth = generate(patients, seed, out, provenance=provenance, overwrite=overwrite, as_of=day)
    except SynthError as exc:
        raise _usage(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"writing {out} failed: {exc.strerror or exc}") from None
    if not quiet:
        seconds = time.perf_counter() - started
        click.echo(
            f"wrote {truth['resources_total']:,} resources for {truth['patients']:,} young people to {out} "
            f"in {seconds:.1f} s (ground truth: {out / 'ground_truth.json'})"
        )
