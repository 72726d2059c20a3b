"""``thrive terminology``: look up THRIVE codes and translate grouping labels from the shell.

Every failure is one readable line on stderr and exit status 1 (click's usage errors exit 2).
"""

from __future__ import annotations

import json

import click

from thrive_fhir import canonical


def _system_url(system: str) -> str:
    """Accept a full canonical URL, or the id of one of our CodeSystems (``thrive-grouping``)."""
    if "://" in system or system.startswith("urn:"):
        return system
    if system.lower() in ("sct", "snomed"):
        return canonical.SNOMED
    return canonical.cs(system)


def _load():
    from thrive_fhir import terminology

    try:
        terminology.load()
    except terminology.TerminologyMissing as exc:
        raise click.ClickException(str(exc)) from None
    return terminology


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def terminology() -> None:
    """Look up THRIVE codes and translate grouping synonyms (offline, from terminology/)."""


@terminology.command()
@click.option(
    "--definitions/--no-definitions",
    default=True,
    show_default=True,
    help="Show each grouping's plain-language definition.",
)
def groupings(definitions: bool) -> None:
    """List the five THRIVE groupings (code, display, definition).

    They are listed in the CodeSystem's order, which is not an order of severity.
    """
    term = _load()
    for g in term.groupings():
        click.echo(f"{g.code}\t{g.display}")
        if definitions:
            click.echo(f"\t{g.definition}")


@terminology.command()
@click.argument("system")
@click.argument("code")
def lookup(system: str, code: str) -> None:
    """Show the display and definition of CODE in SYSTEM.

    SYSTEM is a canonical URL or the id of one of our CodeSystems, e.g.
    ``thrive terminology lookup thrive-grouping getting-help`` or
    ``thrive terminology lookup sct 1638531000000102``.
    """
    term = _load()
    url = _system_url(system)
    shown = term.display(url, code)
    if shown is None:
        raise click.ClickException(f"code {code!r} not found in {url}")
    click.echo(f"{url}#{code}\t{shown}")
    meaning = term.definition(url, code)
    if meaning:
        click.echo(f"\t{meaning}")


@terminology.command()
@click.argument("label")
@click.option("--json", "as_json", is_flag=True, help="Print the FHIR Coding as JSON.")
def translate(label: str, as_json: bool) -> None:
    """Translate a received grouping LABEL to the canonical THRIVE grouping code.

    Accepts codes, displays and known variants (Coping, Getting Additional Help, ...) in any case
    or punctuation; anything else is rejected, never guessed.
    """
    term = _load()
    try:
        coding = term.translate_grouping_coding(label)
    except term.UnmatchedGrouping as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(coding))
    else:
        click.echo(f"{coding['code']}\t{coding['display']}")
