"""``thrive demo``: seed and start every part on this machine; Ctrl-C stops all. Development only.

Registered in the ``thrive.commands`` entry-point group (pyproject.toml). The orchestrator is
imported when the command runs, so ``thrive --help`` does not start the whole app to list it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command(
    name="demo",
    short_help="Seed and start every part on this machine; Ctrl-C stops all.",
    help="Seed two FHIR stores with synthetic data and start the sandbox EHR, SMART auth, shared "
    "store, SMART app and sync worker on this machine (development and testing only).",
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("var/demo"),
    show_default=True,
    help="Working folder for keys, configs and databases.",
)
@click.option(
    "--port-base",
    type=click.IntRange(0, 65533),
    default=8100,
    show_default=True,
    help="Sandbox on P, app on P+1, shared store on P+2, sync metrics on P+3 (0: any free ports).",
)
@click.option(
    "--patients", type=click.IntRange(1, 5000), default=25, show_default=True, help="Size of the synthetic population."
)
@click.option("--seed", "seed_value", type=int, default=42, show_default=True, help="Synthetic data seed.")
@click.option("--no-seed", is_flag=True, help="Do not generate or load synthetic data.")
@click.option("--smoke", is_flag=True, help="Start everything, check each part answers over HTTP, stop, exit.")
def demo_command(workdir: Path, port_base: int, patients: int, seed_value: int, no_seed: bool, smoke: bool) -> None:
    from .orchestrator import Demo, DemoError

    d = Demo(
        workdir.resolve(),
        port_base=port_base,
        patients=patients,
        seed=not no_seed,
        seed_value=seed_value,
        say=lambda m: click.echo(m),
    )
    d.stopper.install_signal_handlers()
    try:
        d.start()
    except DemoError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot set up {workdir}: {exc.strerror or exc}") from None
    try:
        click.echo(d.banner())
        sys.stdout.flush()
        if smoke:
            click.echo("Smoke check:")
            failures = d.smoke_check()
            if failures:
                raise click.ClickException(f"{len(failures)} part(s) did not answer: " + "; ".join(failures))
            click.echo("All running parts answered.")
        else:
            d.stopper.wait()
    finally:
        click.echo("Stopping ...")
        d.stop()
        click.echo("Stopped.")
