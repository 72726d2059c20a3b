"""The Provenance written with every clinician save (fhir-model.md section 4).

One Provenance per save, in the same local transaction and later in the same store transaction as the
resources it covers. Its id derives from the outbox row's public uid, so a re-sent row lands on the same
Provenance instead of adding another.

Kept minimal on purpose: when ``thrive_fhir.builders`` gains a profiled Provenance builder, this module
should delegate to it (one home per concept).
"""

from __future__ import annotations

from datetime import datetime, timezone

from .. import canonical
from ..ids import resource_id

DATA_OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
PARTICIPANT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
ACTIVITY_CODES = {"create": "CREATE", "update": "UPDATE"}


def provenance_id(outbox_uid: str) -> str:
    """Deterministic Provenance id for one save (``uuid5({base}/Id/provenance|<row uid>)``).

    R4 Provenance has no ``identifier`` element, so the business identifier only feeds the id.
    """
    return resource_id("provenance", outbox_uid)


def _business_identifier(resource: dict) -> dict | None:
    """The resource's own identifier in one of our ``{base}/Id/<kind>`` systems, if it has one."""
    prefix = canonical.id_system("")
    for ident in resource.get("identifier") or []:
        if isinstance(ident, dict) and str(ident.get("system", "")).startswith(prefix):
            return {"system": ident["system"], "value": ident.get("value")}
    return None


def build_save_provenance(
    *,
    outbox_uid: str,
    resources: list[tuple[dict, int]],
    recorded: float,
    activity: str,
    author_ref: str,
    organization_ref: str,
    reason: str | None = None,
) -> dict:
    """Provenance for one save: ``resources`` is ``[(resource, local_version), ...]``."""
    if activity not in ACTIVITY_CODES:
        raise ValueError(f"activity must be one of {sorted(ACTIVITY_CODES)}")
    when = datetime.fromtimestamp(recorded, tz=timezone.utc).isoformat(timespec="milliseconds")
    entities = []
    for resource, version in resources:
        what: dict = {"reference": f"{resource['resourceType']}/{resource['id']}"}
        ident = _business_identifier(resource)
        if ident:
            what["identifier"] = ident
        what["display"] = f"local version {version}"
        entities.append({"role": "source", "what": what})
    prov: dict = {
        "resourceType": "Provenance",
        "id": provenance_id(outbox_uid),
        "meta": {"profile": [canonical.PROFILE_PROVENANCE]},
        "target": [{"reference": f"{r['resourceType']}/{r['id']}"} for r, _ in resources],
        "recorded": when,
        "activity": {
            "coding": [
                {"system": DATA_OPERATION, "code": ACTIVITY_CODES[activity], "display": activity}
            ]
        },
        "agent": [
            {
                "type": {"coding": [{"system": PARTICIPANT_TYPE, "code": "author"}]},
                "who": {"reference": author_ref},
                "onBehalfOf": {"reference": organization_ref},
            }
        ],
        "entity": entities,
    }
    if reason:
        prov["reason"] = [{"text": reason}]
    return prov
