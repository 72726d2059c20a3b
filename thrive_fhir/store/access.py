"""Scope enforcement and read auditing: where a Grant meets the store's operations.

The rules live in ``thrive_fhir.smart_scopes``; this module only turns a refusal into a 403
OperationOutcome and decides how a search is narrowed under ``patient/`` scopes.
"""

from __future__ import annotations

import uuid

from ..canonical import PROFILE_READ_AUDIT
from ..smart_scopes import Grant, letter_for, permits
from .errors import FhirError

AUDIT_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL_INTERACTION = "http://hl7.org/fhir/restful-interaction"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
PARTICIPATION_TYPE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"


def require(
    grant: Grant | None, rtype: str, interaction: str, patient_key: str | None, resource: dict | None = None
) -> None:
    """Raise 403 unless ``grant`` allows the interaction (no grant = access control off)."""
    if grant is None:
        return
    if permits(grant, rtype, interaction, patient_key, resource=resource):
        return
    if (
        patient_key is not None
        and grant.patient is not None
        and patient_key != grant.patient
        and permits(grant, rtype, interaction, grant.patient, resource=resource)
    ):
        raise FhirError(403, f"The access token's patient context does not cover this {rtype}", "forbidden")
    raise FhirError(403, f"The access token's scopes do not allow '{interaction}' on {rtype}", "forbidden")


def search_restriction(grant: Grant | None, rtype: str, interaction: str = "search") -> str | None:
    """The patient a search must be narrowed to, None for no narrowing; 403 when not allowed at all."""
    if grant is None:
        return None
    letter = letter_for(interaction)
    wide = [
        s
        for s in grant.scopes
        if s.context != "patient" and letter in s.permissions and s.covers_type(rtype) and not s.query
    ]
    if wide and not grant.expired():
        return None
    if grant.patient is not None and permits(grant, rtype, interaction, grant.patient):
        return grant.patient
    raise FhirError(403, f"The access token's scopes do not allow '{interaction}' on {rtype}", "forbidden")


def check_patient_params(restrict: str | None, params: list[tuple[str, str]]) -> None:
    """Under a patient restriction, naming another patient in the query is refused, not emptied."""
    if restrict is None:
        return
    for name, value in params:
        base = name.split(":", 1)[0]
        if base not in ("patient", "subject"):
            continue
        for v in value.split(","):
            ref = v.rsplit("/", 2)
            pid = ref[-1]
            is_patient = len(ref) == 1 or ref[-2] == "Patient"
            if base == "subject" and not is_patient:
                continue
            if pid != restrict:
                raise FhirError(403, "The access token's patient context does not cover this search", "forbidden")


def audit_event(
    grant: Grant | None,
    subtype: str,
    entities: list[tuple[str, str, str | None]],
    now_instant: str,
    query: str | None = None,
) -> dict:
    """An AuditEvent recording one read or search (docs/design/fhir-model.md section 4). Holds references only."""
    if grant is not None and (grant.user or grant.organization):
        who: dict = {"reference": grant.user or grant.organization}
    elif grant is not None:
        who = {"identifier": {"system": "urn:ietf:params:oauth:client-id", "value": grant.client_id}}
    else:
        who = {"display": "unauthenticated client (access control off)"}
    agent = {
        "type": {"coding": [{"system": PARTICIPATION_TYPE, "code": "IRCP", "display": "information recipient"}]},
        "who": who,
        "requestor": True,
    }
    agents = [agent]
    if grant is not None and grant.user and grant.organization:
        agents.append({"who": {"reference": grant.organization}, "requestor": False})
    patients = sorted({p for _t, _i, p in entities if p})
    entity: list[dict] = [{"what": {"reference": f"{t}/{i}"}} for t, i, _p in entities]
    for p in patients:
        if f"Patient/{p}" not in {e["what"]["reference"] for e in entity}:
            entity.append(
                {
                    "what": {"reference": f"Patient/{p}"},
                    "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"},
                }
            )
    if query:
        entity.append(
            {
                "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2"},
                "query": _b64(query),
            }
        )
    event = {
        "resourceType": "AuditEvent",
        "id": str(uuid.uuid4()),
        "meta": {"profile": [PROFILE_READ_AUDIT]},
        "type": {"system": AUDIT_EVENT_TYPE, "code": "rest", "display": "RESTful Operation"},
        "subtype": [{"system": RESTFUL_INTERACTION, "code": subtype}],
        "action": "R" if subtype == "read" else "E",
        "recorded": now_instant,
        "outcome": "0",
        "purposeOfEvent": [{"coding": [{"system": ACT_REASON, "code": "TREAT", "display": "treatment"}]}],
        "agent": agents,
        "source": {"observer": {"display": "THRIVE-FHIR embedded FHIR store"}},
        "entity": entity,
    }
    return event


def _b64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()
