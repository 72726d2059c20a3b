"""Who changed what: one Provenance per clinician save (profile thrive-provenance, docs/design/fhir-model.md section 4).

Its id comes from the outbox row id, so a retried transaction lands on the same Provenance
instead of adding a second one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .. import canonical
from ..ids import resource_id
from ._common import (
    BuildError,
    check_code,
    check_datetime,
    check_local_id,
    check_ods,
    check_ref,
    check_refs,
    coding,
    fhir_datetime,
    now_utc,
    ref,
)

DATA_OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
PARTICIPANT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
ACTIVITIES = ("CREATE", "UPDATE")  # thr-prov-1
_ROW_ID_MAX = 64


@dataclass(frozen=True, kw_only=True)
class SourceRecord:
    """The local record a save came from: its identifier kind, local id and version."""

    kind: str
    local_id: str
    version: int


@dataclass(frozen=True, kw_only=True)
class ProvenanceInput:
    """One clinician save. R4 Provenance has no ``identifier``: the business key
    ``{BASE}/Id/provenance|<outbox row id>`` lives only in the derived id."""

    outbox_row_id: str | int
    targets: tuple[str, ...]
    recorded: datetime
    activity: str
    author: str
    on_behalf_of: str
    assembler: str
    sources: tuple[SourceRecord, ...] = ()
    informants: tuple[str, ...] = ()
    source_ods: str | None = None


def build_provenance(p: ProvenanceInput, *, now: datetime | None = None) -> dict:
    """Build the Provenance; raises :class:`BuildError` naming the field at fault."""
    now = now or now_utc()
    row = p.outbox_row_id
    if (
        isinstance(row, bool)
        or not isinstance(row, (str, int))
        or str(row).strip() == ""
        or len(str(row)) > _ROW_ID_MAX
    ):
        raise BuildError("outbox_row_id", "The outbox row id is missing.")
    row = str(row)
    targets = check_refs(p.targets, "targets", _TARGET_TYPES, "a resource written in this save", min_items=1)
    recorded = check_datetime(p.recorded, "recorded", "when the change was saved", not_after=now)
    activity = check_code(p.activity, "activity", ACTIVITIES, "what kind of change this was")
    author = check_ref(p.author, "author", ("PractitionerRole", "Practitioner"), "who made the change")
    on_behalf_of = check_ref(p.on_behalf_of, "on_behalf_of", ("Organization",), "the organisation they work for")
    assembler = check_ref(p.assembler, "assembler", ("Device",), "the app deployment")
    informants = check_refs(p.informants, "informants", ("Patient", "RelatedPerson"), "someone who took part")
    entities = []
    for i, s in enumerate(p.sources):
        if not isinstance(s, SourceRecord) or not isinstance(s.kind, str) or not s.kind:
            raise BuildError(f"sources[{i}]", "Each source needs its record kind, id and version.")
        local_id = check_local_id(s.local_id, f"sources[{i}]")
        if isinstance(s.version, bool) or not isinstance(s.version, int) or s.version < 1:
            raise BuildError(f"sources[{i}]", "The record version must be a whole number from 1.")
        entities.append(
            {
                "role": "source",
                "what": {
                    "identifier": {"system": canonical.id_system(s.kind), "value": local_id},
                    "display": f"local record version {s.version}",
                },
            }
        )

    meta: dict = {"profile": [canonical.PROFILE_PROVENANCE]}
    if p.source_ods is not None:
        meta["source"] = f"{canonical.source_uri(check_ods(p.source_ods, 'source_ods'))}#{row}"
    agents = [
        {
            "type": {"coding": [coding(PARTICIPANT_TYPE, "author", "Author")]},
            "who": ref(author),
            "onBehalfOf": ref(on_behalf_of),
        },
        {"type": {"coding": [coding(PARTICIPANT_TYPE, "assembler", "Assembler")]}, "who": ref(assembler)},
    ] + [{"type": {"coding": [coding(PARTICIPANT_TYPE, "informant", "Informant")]}, "who": ref(i)} for i in informants]
    prov = {
        "resourceType": "Provenance",
        "id": resource_id("provenance", row),
        "meta": meta,
        "target": [ref(t) for t in targets],
        "recorded": fhir_datetime(recorded),
        "activity": {"coding": [coding(DATA_OPERATION, activity)]},
        "agent": agents,
    }
    if entities:
        prov["entity"] = entities
    return prov


_TARGET_TYPES = (
    "Observation",
    "Goal",
    "CarePlan",
    "CareTeam",
    "Consent",
    "ServiceRequest",
    "Task",
    "EpisodeOfCare",
    "Flag",
    "HealthcareService",
    "QuestionnaireResponse",
    "Patient",
    "RelatedPerson",
    # also saved through the local store's outbox: agency read audits and directory people
    "AuditEvent",
    "Practitioner",
    "PractitionerRole",
    "Organization",
)
