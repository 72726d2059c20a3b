"""``thrive audit``: who read or changed a young person's shared record, from the store's AuditEvents.

The store writes an AuditEvent for every request made with an agency token, refused ones included
(thrive_fhir.store.agency_audit), and the app writes one for reads through it. This lists them,
newest first, for one young person, found by id or NHS number. It reads with the ``--auth``
credentials (the record holder's; agency tokens are never shown AuditEvents).
"""

from __future__ import annotations

import json
import sys

import click

from ..canonical import NHS_NUMBER
from ..client.fhir_http import next_link
from ..ids import is_valid_nhs_number
from .fhir_source import open_client, outcome_text

OUTCOMES = {"0": "ok", "4": "refused", "8": "failed", "12": "failed"}


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--patient", "patient", required=True, help="The young person: Patient id or NHS number.")
@click.option("--source", required=True, help="FHIR base URL of the store (e.g. the shared store).")
@click.option(
    "--auth",
    "auth_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="TOML file with an [auth] table (sync config format).",
)
@click.option(
    "--limit",
    type=click.IntRange(1, 100000),
    default=200,
    show_default=True,
    help="At most this many events, newest first.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the AuditEvents as NDJSON instead of a table.")
def audit(patient: str, source: str, auth_path: str | None, limit: int, as_json: bool) -> None:
    """List the AuditEvents about one young person, newest first."""
    client = open_client(source, auth_path)
    try:
        pid = _patient_id(client, patient.strip())
        events = _events(client, pid, limit)
    finally:
        client.close()
    if as_json:
        for event in events:
            click.echo(json.dumps(event, separators=(",", ":")))
        return
    if not events:
        click.echo(f"No AuditEvents about Patient/{pid} at {source}.")
        return
    rows = [_row(e, pid) for e in events]
    headers = ("recorded", "outcome", "interaction", "who", "organisation", "what", "reason")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers[:-1])]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)) + "  " + cells[-1]  # noqa: E731
    click.echo(line(headers).rstrip())
    for r in rows:
        click.echo(line(r).rstrip())
    click.echo(f"{len(rows)} event(s) about Patient/{pid}.")


def _fail(message: str) -> None:
    click.echo(f"thrive audit: {message}", err=True)
    sys.exit(1)


def _get(client, path: str) -> dict:
    reply = client.request("GET", path)
    if not reply.ok:
        _fail(f"{client.base_url}: {reply.error or 'no answer'}: {outcome_text(reply.body, 'no OperationOutcome')}")
    if not isinstance(reply.body, dict):
        _fail(f"{client.base_url}: the answer is not FHIR JSON")
    return reply.body


def _patient_id(client, given: str) -> str:
    digits = given.replace(" ", "")
    if digits.isdigit() and len(digits) == 10:
        if not is_valid_nhs_number(digits):
            _fail(f"{given!r} is not a valid NHS number (check digit)")
        bundle = _get(client, f"Patient?identifier={NHS_NUMBER}|{digits}")
        ids = [e["resource"]["id"] for e in bundle.get("entry") or [] if (e.get("resource") or {}).get("id")]
        if not ids:
            _fail(f"no young person with NHS number {digits} at {client.base_url}")
        if len(ids) > 1:
            _fail(
                f"{len(ids)} Patients carry NHS number {digits} at {client.base_url}: give the id ("
                + ", ".join(ids[:5])
                + ")"
            )
        return ids[0]
    if not given or "/" in given.removeprefix("Patient/"):
        _fail(f"--patient takes a Patient id or a ten-digit NHS number, not {given!r}")
    return given.removeprefix("Patient/")


def _events(client, pid: str, limit: int) -> list[dict]:
    events: list[dict] = []
    path: str | None = f"AuditEvent?patient=Patient/{pid}&_sort=-_lastUpdated&_count={min(limit, 500)}"
    while path and len(events) < limit:
        bundle = _get(client, path)
        events += [
            e["resource"]
            for e in bundle.get("entry") or []
            if (e.get("resource") or {}).get("resourceType") == "AuditEvent"
        ]
        path = next_link(bundle, client.base_url)  # never a link off the store (our token)
    return events[:limit]


def _row(event: dict, pid: str) -> tuple[str, ...]:
    agents = event.get("agent") or []
    who = next((_ref(a.get("who")) for a in agents if a.get("requestor")), "") or (
        _ref(agents[0].get("who")) if agents else ""
    )
    orgs = [_ref(a.get("who")) for a in agents if _ref(a.get("who")).startswith("Organization/")]
    subtype = ",".join(c.get("code", "") for c in event.get("subtype") or []) or (event.get("type") or {}).get(
        "code", ""
    )
    whats = [_ref(e.get("what")) for e in event.get("entity") or [] if e.get("what")]
    whats = [w for w in whats if w and w != f"Patient/{pid}"]
    what = ", ".join(whats[:3]) + (f" (+{len(whats) - 3})" if len(whats) > 3 else "") or f"Patient/{pid}"
    return (
        event.get("recorded", ""),
        OUTCOMES.get(str(event.get("outcome")), str(event.get("outcome", ""))),
        subtype,
        who,
        ", ".join(o for o in orgs if o != who),
        what,
        event.get("outcomeDesc", ""),
    )


def _ref(value) -> str:
    if not isinstance(value, dict):
        return ""
    if value.get("reference"):
        return value["reference"]
    ident = value.get("identifier") or {}
    return f"{ident.get('value', '')}" if ident else value.get("display", "")


__all__ = ["audit"]
