"""The ``thrive`` command.

Each subcommand lives in its own module under ``thrive_fhir.cli`` and is imported only when it is
invoked, so ``thrive validate`` does not pay for Flask or SQLAlchemy start-up and a broken optional
part cannot stop the others from running. To add a command, add a module exposing a click command
or group and list it in ``COMMANDS``.
"""

from __future__ import annotations

import importlib
import sys

import click

#: name -> ("module", "attribute", "one-line help shown by ``thrive --help``")
COMMANDS: dict[str, tuple[str, str, str]] = {
    "validate": ("thrive_fhir.cli.validate_cmd", "validate", "Validate FHIR JSON, Bundles or NDJSON against the THRIVE profiles."),
    "synth": ("thrive_fhir.cli.synth_cmd", "synth", "Write a deterministic synthetic population as NDJSON with ground truth."),
    "terminology": ("thrive_fhir.cli.terminology_cmd", "terminology", "Look up THRIVE codes and translate grouping synonyms."),
    "store": ("thrive_fhir.cli.store_cmd", "store", "Run the embedded FHIR R4 server."),
    "sandbox": ("thrive_fhir.cli.sandbox_cmd", "sandbox", "Run the development-only SMART sandbox (EHR page + auth server)."),
    "sync": ("thrive_fhir.cli.sync_cmd", "sync", "Push saved changes to the shared store; inspect the outbox."),
    "app": ("thrive_fhir.cli.app_cmd", "app", "Run the clinician SMART app."),
    "demo": ("thrive_fhir.cli.demo_cmd", "demo", "Seed and start every part on this machine; Ctrl-C stops all."),
    "audit": ("thrive_fhir.cli.audit_cmd", "audit", "List who read or changed a young person's shared record (AuditEvents)."),
}


class LazyGroup(click.Group):
    """A click group that imports each subcommand's module on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        entry = COMMANDS.get(name)
        if entry is None:
            return None
        module_name, attr, help_text = entry
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            # Listed but not built yet: say so plainly instead of a traceback.
            @click.command(name=name, help=help_text + " (not available in this build)")
            def unavailable() -> None:
                raise click.ClickException(f"'thrive {name}' is not available in this build")

            return unavailable
        return getattr(module, attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Use the static help text so `thrive --help` imports nothing heavy.
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="thrive-fhir")
def cli() -> None:
    """THRIVE-FHIR: record and share THRIVE needs-based groupings as FHIR R4."""


def main() -> None:
    """Console entry point. Exit codes: 0 success, 1 the command's own failure, 2 usage error."""
    try:
        cli.main(prog_name="thrive", standalone_mode=True)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
