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


class Scenario:
    """Drives synthetic clinician saves into a LocalStore, remembering what it saved."""

    def __init__(self, store, patients: list[str], seed: int = 7):
        import random

        self.store = store
        self.patients = patients
        self.rng = random.Random(seed)
        self.goals: dict[str, list[str]] = {p: [] for p in patients}
        self.saves = 0

    def _cs(self, patient_id: str, activity: str):
        from thrive_fhir.localstore import ChangeSet

        return ChangeSet(
            patient_key=f"Patient/{patient_id}", author_ref=AUTHOR, organization_ref=ORG, activity=activity
        )

    def new_goal(self, patient_id: str, text: str = "Feel able to go to school") -> dict:
        g = goal(new_local_id(), patient_id, text)
        with self.store.session() as s:
            self.store.record(s, self._cs(patient_id, "create").put(g, expected_local_version=0))
        self.goals[patient_id].append(g["id"])
        self.saves += 1
        return g

    def update_goal(self, patient_id: str, goal_id: str) -> int:
        current = self.store.current("Goal", goal_id)
        version = self.store.current_version("Goal", goal_id)
        changed = dict(
            current, description={"text": f"{current['description']['text'].split(' (')[0]} (edit {version + 1})"}
        )
        with self.store.session() as s:
            self.store.record(s, self._cs(patient_id, "update").put(changed, expected_local_version=version))
        self.saves += 1
        return version + 1

    def new_score(self, patient_id: str) -> dict:
        gid = self.goals[patient_id][0] if self.goals[patient_id] else None
        obs = score(patient_id, self.rng.randint(0, 10), gid)
        with self.store.session() as s:
            self.store.record(s, self._cs(patient_id, "create").put(obs))
        self.saves += 1
        return obs

    def random_saves(self, n: int) -> None:
        """n saves spread over the patients: new goals, goal edits and scores."""
        for _ in range(n):
            p = self.rng.choice(self.patients)
            roll = self.rng.random()
            if not self.goals[p] or roll < 0.15:
                self.new_goal(p)
            elif roll < 0.6:
                self.update_goal(p, self.rng.choice(self.goals[p]))
            else:
                self.new_score(p)


def put_patients(base_url: str, patient_ids: list[str], headers: dict | None = None) -> None:
    import requests

    for pid in patient_ids:
        r = requests.put(
            f"{base_url}/Patient/{pid}",
            json=patient_resource(pid),
            headers={"Content-Type": "application/fhir+json", **(headers or {})},
            timeout=30,
        )
        r.raise_for_status()
