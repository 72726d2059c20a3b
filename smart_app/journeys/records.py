"""Reading one young person's THRIVE records back from the local store, in the shapes pages need.

The local store is the app's system of record (every save lands there first), so the journeys read
from it rather than from the EHR. Resources are picked out by the codes our profiles fix (the
grouping Observation's code, the safety plan's category), never by position or by id patterns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from thrive_fhir import canonical

from .gbo import Rating


@dataclass
class Versioned:
    """A long-lived resource with the local version a form must send back when editing it."""

    resource: dict
    version: int

    @property
    def id(self) -> str:
        return self.resource["id"]

    @property
    def ref(self) -> str:
        return f"{self.resource['resourceType']}/{self.resource['id']}"

    @property
    def local_id(self) -> str:
        return self.resource["identifier"][0]["value"]


def _codes(cc: dict | None, system: str | None = None) -> list[str]:
    return [c.get("code") for c in (cc or {}).get("coding", []) if system is None or c.get("system") == system]


def _has_code(ccs: list[dict] | None, system: str, code: str) -> bool:
    return any(code in _codes(cc, system) for cc in ccs or [])


def parse_when(text: str | None) -> datetime | date | None:
    if not text:
        return None
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


# --- groupings --------------------------------------------------------------------------------
@dataclass
class GroupingRecord:
    resource: dict

    @property
    def id(self) -> str:
        return self.resource["id"]

    @property
    def ref(self) -> str:
        return f"Observation/{self.id}"

    @property
    def code(self) -> str | None:
        codes = _codes(self.resource.get("valueCodeableConcept"), canonical.CS_GROUPING)
        return codes[0] if codes else None

    @property
    def agreed_at(self) -> datetime | None:
        value = parse_when(self.resource.get("effectiveDateTime"))
        return value if isinstance(value, datetime) else None

    @property
    def previous_id(self) -> str | None:
        for d in self.resource.get("derivedFrom", []):
            return d.get("reference", "").split("/", 1)[-1]
        return None

    def component(self, code: str, system: str | None = None) -> str | None:
        for comp in self.resource.get("component", []):
            if code in _codes(comp.get("code"), canonical.CS_CONCEPTS):
                if "valueString" in comp:
                    return comp["valueString"]
                found = _codes(comp.get("valueCodeableConcept"), system)
                return found[0] if found else None
        return None

    @property
    def notes(self) -> list[str]:
        return [n.get("text", "") for n in self.resource.get("note", [])]


def is_grouping(obs: dict) -> bool:
    return "thrive-grouping" in _codes(obs.get("code"), canonical.CS_CONCEPTS)


def groupings(store, patient_ref: str) -> list[GroupingRecord]:
    """Every grouping decision (not entered in error), newest first."""
    rows = [
        GroupingRecord(o)
        for o in store.for_patient(patient_ref, "Observation")
        if is_grouping(o) and o.get("status") != "entered-in-error"
    ]
    rows.sort(key=lambda g: (g.resource.get("effectiveDateTime", ""), g.resource.get("issued", "")), reverse=True)
    return rows


def current_grouping(store, patient_ref: str) -> GroupingRecord | None:
    rows = groupings(store, patient_ref)
    return rows[0] if rows else None


# --- episode ----------------------------------------------------------------------------------
def active_episode(store, patient_ref: str, organization_ref: str | None) -> Versioned | None:
    for eoc in store.for_patient(patient_ref, "EpisodeOfCare"):
        if eoc.get("status") in ("active", "planned", "waitlist", "onhold") and (
            organization_ref is None or eoc.get("managingOrganization", {}).get("reference") == organization_ref
        ):
            return Versioned(eoc, store.current_version("EpisodeOfCare", eoc["id"]))
    return None


# --- goals ------------------------------------------------------------------------------------
@dataclass
class GoalRecord(Versioned):
    ratings: list[Rating] = field(default_factory=list)

    @property
    def slot(self) -> int | None:
        codes = [c.get("code") for t in self.resource.get("target", []) for c in t.get("measure", {}).get("coding", [])]
        return next((s for s, (code, _) in canonical.GBO_SCORE_CODES.items() if code in codes), None)

    @property
    def description(self) -> str:
        return self.resource.get("description", {}).get("text", "")

    @property
    def is_open(self) -> bool:
        return self.resource.get("lifecycleStatus") in ("proposed", "accepted", "active", "on-hold")

    @property
    def discussions(self) -> list[dict]:
        """Notes recorded when the goal was not progressing (they carry a time)."""
        return [n for n in self.resource.get("note", []) if n.get("time")]

    @property
    def last_discussed(self) -> datetime | None:
        times = [parse_when(n["time"]) for n in self.discussions]
        times = [t for t in times if isinstance(t, datetime)]
        return max(times) if times else None

    @property
    def start_date(self) -> date | None:
        value = parse_when(self.resource.get("startDate"))
        return value if isinstance(value, date) and not isinstance(value, datetime) else None


def goals(store, patient_ref: str) -> list[GoalRecord]:
    """GBO goals with their ratings (oldest rating first), open goals first, by slot."""
    found: dict[str, GoalRecord] = {}
    for goal in store.for_patient(patient_ref, "Goal"):
        if goal.get("lifecycleStatus") == "entered-in-error":
            continue
        if not any(_has_code([c], canonical.CS_CONCEPTS, "gbo-goal") for c in goal.get("category", [])):
            continue
        found[f"Goal/{goal['id']}"] = GoalRecord(goal, store.current_version("Goal", goal["id"]))
    for obs in store.for_patient(patient_ref, "Observation"):
        if obs.get("status") == "entered-in-error" or "valueInteger" not in obs:
            continue
        for focus in obs.get("focus", []):
            goal = found.get(focus.get("reference"))
            when = parse_when(obs.get("effectiveDateTime"))
            if goal is not None and when is not None:
                goal.ratings.append(Rating(when, obs["valueInteger"]))
    for goal in found.values():
        goal.ratings.sort(key=lambda r: _sort_key(r.when))
    return sorted(found.values(), key=lambda g: (not g.is_open, g.slot or 9, g.resource.get("startDate", "")))


def _sort_key(value: date | datetime) -> str:
    return value.isoformat() if isinstance(value, datetime) else value.isoformat() + "T00:00:00"


# --- safety plan ------------------------------------------------------------------------------
def is_safety_plan(plan: dict) -> bool:
    return _has_code(plan.get("category"), canonical.CS_CONCEPTS, "safety-plan")


def safety_plan(store, patient_ref: str) -> Versioned | None:
    """The young person's safety plan (one per young person; the newest if there were ever two)."""
    plans = [p for p in store.for_patient(patient_ref, "CarePlan") if is_safety_plan(p) and p.get("status") != "entered-in-error"]
    if not plans:
        return None
    plans.sort(key=lambda p: (p.get("status") == "active", p.get("created", "")), reverse=True)
    plan = plans[0]
    return Versioned(plan, store.current_version("CarePlan", plan["id"]))


def plan_is_active(plan: Versioned | None, today: date) -> bool:
    if plan is None or plan.resource.get("status") != "active":
        return False
    end = parse_when(plan.resource.get("period", {}).get("end"))
    return not isinstance(end, date) or end >= today


# --- consent ----------------------------------------------------------------------------------
def consent(store, patient_ref: str) -> Versioned | None:
    items = [c for c in store.for_patient(patient_ref, "Consent") if c.get("status") != "entered-in-error"]
    if not items:
        return None
    items.sort(key=lambda c: (c.get("status") == "active", c.get("dateTime", "")), reverse=True)
    return Versioned(items[0], store.current_version("Consent", items[0]["id"]))


def consent_agencies(c: Versioned | None) -> list[str]:
    """Organization references the young person currently agrees to share with."""
    if c is None or c.resource.get("status") != "active":
        return []
    return [a.get("reference", {}).get("reference") for a in c.resource.get("provision", {}).get("actor", [])]


# --- signposting and referrals ----------------------------------------------------------------
@dataclass
class Signpost:
    request: dict
    task: dict | None

    @property
    def kind(self) -> str:
        return "referral" if self.request.get("intent") == "order" else "signposting"

    @property
    def service_code(self) -> str | None:
        codes = _codes(self.request.get("code"))
        return codes[0] if codes else None


def signposts(store, patient_ref: str) -> list[Signpost]:
    tasks = {}
    for task in store.for_patient(patient_ref, "Task"):
        tasks[task.get("focus", {}).get("reference")] = task
    out = [
        Signpost(sr, tasks.get(f"ServiceRequest/{sr['id']}"))
        for sr in store.for_patient(patient_ref, "ServiceRequest")
        if sr.get("status") != "entered-in-error"
    ]
    out.sort(key=lambda s: s.request.get("authoredOn", ""), reverse=True)
    return out


# --- risk flag --------------------------------------------------------------------------------
def active_flag(store, patient_ref: str) -> Versioned | None:
    for flag in store.for_patient(patient_ref, "Flag"):
        if flag.get("status") == "active" and "risk-support-alert" in _codes(flag.get("code"), canonical.CS_CONCEPTS):
            return Versioned(flag, store.current_version("Flag", flag["id"]))
    return None
