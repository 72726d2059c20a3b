"""Synthetic resources for sync tests and benchmarks (invented people, test NHS numbers only)."""

from __future__ import annotations

from thrive_fhir import canonical
from thrive_fhir.ids import new_local_id, resource_id

AUTHOR = "PractitionerRole/7b6f2d56-1f43-4a51-9a39-3f2f6c1f0a01"
ORG = "Organization/0d1f1c55-9a6c-4a77-8f39-6a0c3c1f4b02"


def patient_resource(patient_id: str) -> dict:
    """A minimal Patient the store can hold (tests create it in the store before syncing)."""
    return {"resourceType": "Patient", "id": patient_id, "active": True}


def goal(local_id: str, patient_id: str, text: str, status: str = "active") -> dict:
    """A GBO-style Goal (long-lived: edits are new versions of the same id)."""
    return {
        "resourceType": "Goal",
        "id": resource_id("gbo-goal", local_id),
        "identifier": [{"system": canonical.id_system("gbo-goal"), "value": local_id}],
        "lifecycleStatus": status,
        "description": {"text": text},
        "subject": {"reference": f"Patient/{patient_id}"},
    }


def score(patient_id: str, value: int, goal_id: str | None = None) -> dict:
    """A GBO score Observation (an event: a new resource every time)."""
    local_id = new_local_id()
    code, display = canonical.GBO_SCORE_CODES[1]
    obs = {
        "resourceType": "Observation",
        "id": resource_id("gbo-score", local_id),
        "identifier": [{"system": canonical.id_system("gbo-score"), "value": local_id}],
        "status": "final",
        "code": {"coding": [{"system": canonical.SNOMED, "code": code, "display": display}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": "2025-01-15",
        "valueInteger": value,
    }
    if goal_id:
        obs["extension"] = [{"url": canonical.EXT_PERTAINS_TO_GOAL, "valueReference": {"reference": f"Goal/{goal_id}"}}]
    return obs
