"""The ``thrive`` command.

Each of the library's own subcommands lives in its own module under ``thrive_fhir.cli`` and is
imported only when it is invoked, so ``thrive validate`` does not pay for Flask or SQLAlchemy
start-up. To add a library command, add a module exposing a click command or group and list it in
``COMMANDS``.

Commands that need more than the library (``thrive app`` needs the clinician app, ``thrive demo``
needs everything) are registered by their own packages in the ``thrive.commands`` entry-point group
of ``pyproject.toml``, as Flask does with ``flask.commands``. That keeps the dependencies one way:
the library never imports the app (docs/architecture.md, "Layers").
"""

from __future__ import annotations

import importlib
import sys
from importlib.metadata import EntryPoint, entry_points

import click

#: name -> ("module", "attribute", "one-line help shown by ``thrive --help``")
COMMANDS: dict[str, tuple[str, str, str]] = {
    "validate": (
        "thrive_fhir.cli.validate_cmd",
        "validate",
        "Validate FHIR JSON, Bundles or NDJSON against the THRIVE profiles.",
    ),
    "synth": (
        "thrive_fhir.cli.synth_cmd",
        "synth",
        "Write a deterministic synthetic population as NDJSON with ground truth.",
    ),
    "terminology": (
        "thrive_fhir.cli.terminology_cmd",
        "terminology",
        "Look up THRIVE codes and translate grouping synonyms.",
    ),
    "store": ("thrive_fhir.cli.store_cmd", "store", "Run the embedded FHIR R4 server."),
    "sandbox": (
        "thrive_fhir.cli.sandbox_cmd",
        "sandbox",
        "Run the development-only SMART sandbox (EHR page + auth server).",
    ),
    "sync": ("thrive_fhir.cli.sync_cmd", "sync", "Push saved changes to the shared store; inspect the outbox."),
    "view": ("thrive_fhir.cli.view_cmd", "view", "Run a SQL on FHIR v2 ViewDefinition over NDJSON or a FHIR server."),
    "report": (
        "thrive_fhir.cli.report_cmd",
        "report",
        "Reports for data teams: groupings, transitions, outcomes (CSV/Parquet/DuckDB/HTML).",
    ),
    "audit": (
        "thrive_fhir.cli.audit_cmd",
        "audit",
        "List who read or changed a young person's shared record (AuditEvents).",
    ),
}

#: Entry-point group through which other packages add commands (``name = "module:attribute"``).
ENTRY_POINT_GROUP = "thrive.commands"


def plugin_commands() -> dict[str, EntryPoint]:
    """Commands registered by installed packages, by name; a library command of the same name wins."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name not in COMMANDS}


class LazyGroup(click.Group):
    """A click group that imports each subcommand's module on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *plugin_commands()})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        entry = COMMANDS.get(name)
        if entry is not None:
            module_name, attr, _help = entry
            return getattr(importlib.import_module(module_name), attr)
        plugin = plugin_commands().get(name)
        return plugin.load() if plugin is not None else None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # The library's commands use their static help text, so `thrive --help` imports none of them;
        # a registered command is loaded to ask for its help (it belongs to another package).
        rows = []
        plugins = plugin_commands()
        for name in self.list_commands(ctx):
            if name in COMMANDS:
                rows.append((name, COMMANDS[name][2]))
                continue
            try:
                rows.append((name, plugins[name].load().get_short_help_str(limit=100)))
            except Exception as exc:  # a broken optional package must not hide the other commands
                rows.append((name, f"(cannot be loaded: {type(exc).__name__})"))
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
