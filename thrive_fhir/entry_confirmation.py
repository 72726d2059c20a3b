"""An agency confirms what the safety plan says it will do.

The safety plan's "What each agency will do" section (``agency-actions``) names, per item, the
organisation (or one of its services) that acts. That agency confirms the item by recording a
**Provenance** of its own (docs/design/fhir-model.md, "Agency confirmation of a safety plan item"):

- ``target``: the plan version the worker read (``CarePlan/<id>/_history/<v>``), with the
  ``targetElement`` extension (HL7 extensions pack; US Core uses it on R4 for element-level
  Provenance) naming the item's element id (``CarePlan.activity.id``, derived from
  the item's words and holder by :func:`thrive_fhir.builders.safety_plan.entry_id`);
- ``activity``: ``thrive-concepts#agency-confirmed``;
- ``agent``: the worker (``who``) acting for their organisation (``onBehalfOf``), type ``attester``;
- profile ``thrive-agency-confirmation`` (profiles/input/fsh/profiles/provenance.fsh).

Why a Provenance, not a change to the CarePlan: the plan is the clinician's, rebuilt on every save
from the clinician's local record; an agency writing into it would be overwritten by (or would
conflict with) the next save. A Provenance is the agency's own statement about one item of one
version, so nothing the agency writes can change the plan, and because the item id follows the
words, a reworded item shows as unconfirmed until the agency confirms the new words.

The shared store enforces who may write one (``thrive_fhir.store.agency_writes``); readers
(:func:`confirmations`) apply the same rule again as defence in depth.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from . import canonical
from .consent_rule import organization_ref

TARGET_ELEMENT = "http://hl7.org/fhir/StructureDefinition/targetElement"
PARTICIPANT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
CONFIRMED = "agency-confirmed"
AGENCY_SECTION = "agency-actions"


@dataclass(frozen=True)
class Entry:
    """One item of the plan's "What each agency will do" section."""

    id: str
    text: str
    performers: tuple[str, ...]


def agency_entries(plan: dict | None) -> list[Entry]:
    """The plan's agency-actions items that carry an element id (plans saved before ids have none)."""
    out = []
    for activity in (plan or {}).get("activity") or []:
        detail = activity.get("detail") or {}
        codes = [c.get("code") for c in (detail.get("code") or {}).get("coding") or []]
        if AGENCY_SECTION in codes and isinstance(activity.get("id"), str):
            performers = tuple(
                p["reference"] for p in detail.get("performer") or [] if isinstance(p.get("reference"), str)
            )
            out.append(Entry(activity["id"], detail.get("description", ""), performers))
    return out


def held_by(performers: tuple[str, ...], organization: str, services: frozenset[str] = frozenset()) -> bool:
    """Whether an item with these holders (``Entry.performers``) is held by ``organization`` itself
    or one of its ``services`` (``HealthcareService/<id>``)."""
    org = organization_ref(organization)
    return any(organization_ref(p) == org or _plain(p) in services for p in performers) if org else False


def build_confirmation(
    plan_id: str, plan_version: str, entry: str, *, worker: str, organization: str, recorded: datetime
) -> dict:
    """The Provenance by which ``organization`` (through ``worker``) confirms item ``entry`` of the plan."""
    when = recorded.isoformat(timespec="seconds").replace("+00:00", "Z")
    return {
        "resourceType": "Provenance",
        "meta": {"profile": [canonical.PROFILE_AGENCY_CONFIRMATION]},
        "target": [
            {
                "extension": [{"url": TARGET_ELEMENT, "valueUri": entry}],
                "reference": f"CarePlan/{plan_id}/_history/{plan_version}",
            }
        ],
        "recorded": when,
        "activity": {
            "coding": [
                {"system": canonical.CS_CONCEPTS, "code": CONFIRMED, "display": "Agency confirmed its safety plan item"}
            ]
        },
        "agent": [
            {
                "type": {"coding": [{"system": PARTICIPANT_TYPE, "code": "attester", "display": "Attester"}]},
                "who": {"reference": worker},
                "onBehalfOf": {"reference": organization},
            }
        ],
    }


def is_confirmation(provenance: dict) -> bool:
    activity = provenance.get("activity") or {}
    return any(
        c.get("system") == canonical.CS_CONCEPTS and c.get("code") == CONFIRMED for c in activity.get("coding") or []
    )


def confirmed_item(provenance: dict) -> tuple[str, str] | None:
    """``("CarePlan/<id>", entry id)`` a confirmation points at, or None when it is not one or is malformed."""
    if not is_confirmation(provenance):
        return None
    targets = provenance.get("target") or []
    if len(targets) != 1 or not isinstance(targets[0], dict):
        return None
    ref = targets[0].get("reference")
    elements = [
        e.get("valueUri")
        for e in targets[0].get("extension") or []
        if isinstance(e, dict) and e.get("url") == TARGET_ELEMENT
    ]
    if not isinstance(ref, str) or len(elements) != 1 or not isinstance(elements[0], str):
        return None
    parts = ref.split("/")
    if len(parts) not in (2, 4) or parts[0] != "CarePlan" or (len(parts) == 4 and parts[2] != "_history"):
        return None
    return f"CarePlan/{parts[1]}", elements[0]


def confirming_organisation(provenance: dict) -> str | None:
    agents = provenance.get("agent") or []
    return organization_ref(((agents[0] if agents else {}).get("onBehalfOf") or {}).get("reference"))


def confirmations(plan: dict, provenances: list[dict]) -> dict[str, dict]:
    """Item id -> the newest confirmation of that item of ``plan`` by an organisation the item names.

    A confirmation by anyone else is ignored (a store that does not enforce the rule still shows
    nothing false here). A HealthcareService holder is trusted to the store's check, which knows
    which organisation provides the service."""
    entries = {e.id: e for e in agency_entries(plan)}
    plan_ref = f"CarePlan/{plan.get('id')}"
    out: dict[str, dict] = {}
    for prov in provenances:
        found = confirmed_item(prov)
        if found is None or found[0] != plan_ref or found[1] not in entries:
            continue
        org = confirming_organisation(prov)
        entry = entries[found[1]]
        held = any(p.startswith("HealthcareService/") for p in entry.performers)
        if org is None or not (held_by(entry.performers, org) or held):
            continue
        if found[1] not in out or (prov.get("recorded") or "") > (out[found[1]].get("recorded") or ""):
            out[found[1]] = prov
    return out


def _plain(reference: str) -> str:
    parts = reference.rstrip("/").split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    return "/".join(parts[-2:])


__all__ = [
    "AGENCY_SECTION",
    "CONFIRMED",
    "TARGET_ELEMENT",
    "Entry",
    "agency_entries",
    "build_confirmation",
    "confirmations",
    "confirmed_item",
    "confirming_organisation",
    "held_by",
    "is_confirmation",
]
