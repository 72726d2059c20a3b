"""What an agency token may *say* when it writes, on top of where it may write (``consent_gate``).

Agency tokens write two things: updates of the Tasks sent to them (their scopes allow Task update)
and Provenance resources (their scopes allow create). ``consent_gate`` already keeps both inside the
young people shared with the organisation. This module checks what they say:

- a Task update is of a Task the organisation owns (``owner`` is the organisation or a service it
  provides) and keeps its owner and the young person it is for; an agency never creates a Task
  (another agency's referral of a young person shared with both stays out of its reach);

- every agent names the signed-in worker (the token's ``fhirUser``) or their organisation, and any
  ``onBehalfOf`` is that organisation: an agency cannot record a change in someone else's name;
- a confirmation of a safety plan item (``thrive_fhir.entry_confirmation``) must point at an item
  of the plan's *current* version that names the token's organisation, or one of the services it
  provides, as its holder. A confirmation of an item that has since been reworded or removed is a
  409 (the worker is shown the plan as it is now), of another agency's item a 403, and of a plan the
  token may not see answers as a missing plan.

The request is audited like every agency request (``agency_audit``), refusals included.
"""

from __future__ import annotations

import json

from sqlalchemy.engine import Connection

from ..consent_rule import organization_ref
from ..entry_confirmation import agency_entries, confirmed_item, held_by, is_confirmation
from ..smart_scopes import Grant
from . import rawsql
from .consent_gate import Agency, ConsentGate
from .errors import FhirError

NOT_IN_NAME = "A Provenance written with an agency access token must name the signed-in worker and their organisation"
NOT_YOUR_TASK = (
    "An agency may only update the Tasks sent to its organisation, without changing whose or whom they are for"
)

_CURRENT = "SELECT content, patient_key FROM resource_versions WHERE res_type = ? AND res_id = ? AND is_current AND NOT deleted"


def check(gate: ConsentGate, grant: Grant | None, op, conn: Connection | None) -> None:
    """Refuse a write by an agency token whose content the organisation may not state (see module)."""
    agency = gate.agency(grant)
    if agency is None or op.rtype not in ("Provenance", "Task") or op.method == "DELETE" or op.resource is None:
        return
    try:
        if op.rtype == "Task":
            if conn is None:
                raise FhirError(403, NOT_YOUR_TASK, "forbidden")
            _updates_own_task(agency, op, conn)
            return
        _names_the_token(agency, op.resource)
        if is_confirmation(op.resource):
            if conn is None:  # every write path passes its transaction; refuse rather than skip the check
                raise FhirError(403, NOT_IN_NAME, "forbidden")
            _confirms_own_item(gate, grant, agency, op.resource, conn)
    except FhirError as refused:
        refused.audit_patient = op.patient_key  # for the AuditEvent only, never in the answer (as consent_gate)
        raise


def _plain(reference) -> str | None:
    if not isinstance(reference, str) or "://" in reference:
        return None
    parts = reference.rstrip("/").split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    return "/".join(parts[-2:]) if len(parts) >= 2 else None


def _names_the_token(agency: Agency, provenance: dict) -> None:
    agents = provenance.get("agent")
    if not isinstance(agents, list) or not agents:
        raise FhirError(403, NOT_IN_NAME, "forbidden")
    allowed_who = {r for r in (_plain(agency.user), agency.organization) if r}
    for agent in agents:
        if not isinstance(agent, dict):
            raise FhirError(403, NOT_IN_NAME, "forbidden")
        who = _plain((agent.get("who") or {}).get("reference"))
        if who not in allowed_who:
            raise FhirError(403, NOT_IN_NAME, "forbidden")
        behalf = agent.get("onBehalfOf")
        if behalf is not None and organization_ref((behalf or {}).get("reference")) != agency.organization:
            raise FhirError(403, NOT_IN_NAME, "forbidden")


def _confirms_own_item(
    gate: ConsentGate, grant: Grant | None, agency: Agency, provenance: dict, conn: Connection
) -> None:
    found = confirmed_item(provenance)
    if found is None:
        raise FhirError(400, "A confirmation names exactly one item of one CarePlan (targetElement)", "invalid")
    plan_ref, item = found
    plan_id = plan_ref.split("/", 1)[1]
    sql, dbapi = rawsql.for_connection(conn)
    rows = sql.fetch(dbapi, _CURRENT, ("CarePlan", plan_id))
    if not rows or gate.hides(grant, "CarePlan", rows[0][1], dbapi):
        raise FhirError(404, f"{plan_ref} is not known", "not-found")  # as a read of a missing plan
    entry = next((e for e in agency_entries(json.loads(rows[0][0])) if e.id == item), None)
    if entry is None:
        raise FhirError(
            409, "The safety plan item was changed or removed after it was read; nothing was saved", "conflict"
        )
    services = frozenset(
        ref
        for ref in (_plain(p) for p in entry.performers)
        if ref and ref.startswith("HealthcareService/") and _provided_by(sql, dbapi, ref) == agency.organization
    )
    if agency.organization is None or not held_by(entry.performers, agency.organization, services):
        raise FhirError(403, "This safety plan item is not for your organisation", "forbidden")


def _updates_own_task(agency: Agency, op, conn: Connection) -> None:
    """A Task update by an agency: the stored Task is owned by the organisation (or a service it
    provides), and the update keeps its owner and the young person it is for. Agencies never create
    Tasks (an update-as-create is refused)."""
    sql, dbapi = rawsql.for_connection(conn)
    rows = sql.fetch(dbapi, _CURRENT, ("Task", op.rid))
    if not rows and op.if_match is not None:
        return  # If-Match on a missing Task: the store's 412 follows, exactly as for a hidden one
    if not rows or agency.organization is None:
        raise FhirError(403, NOT_YOUR_TASK, "forbidden")
    stored = json.loads(rows[0][0])
    owner = _plain((stored.get("owner") or {}).get("reference"))
    owned = owner is not None and (
        owner == agency.organization
        or (owner.startswith("HealthcareService/") and _provided_by(sql, dbapi, owner) == agency.organization)
    )
    same = all(
        _plain((op.resource.get(key) or {}).get("reference")) == _plain((stored.get(key) or {}).get("reference"))
        for key in ("owner", "for")
    )
    if not owned or not same:
        raise FhirError(403, NOT_YOUR_TASK, "forbidden")


def _provided_by(sql: rawsql.Sql, dbapi, service_ref: str) -> str | None:
    rows = sql.fetch(dbapi, _CURRENT, ("HealthcareService", service_ref.split("/", 1)[1]))
    if not rows:
        return None
    return organization_ref((json.loads(rows[0][0]).get("providedBy") or {}).get("reference"))


__all__ = ["NOT_IN_NAME", "check"]
