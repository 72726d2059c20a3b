"""One young person's THRIVE records, read from the local store ONCE per request, in the shapes the
pages need: the current grouping and its history, GBO goals with their ratings, the safety plan,
sharing consents, signposts and referrals, the care team, the episode and the risk Flag.

Why one home: the Summary, every journey, the every-page risk banner and the risk Flag all ask the
same questions ("what is the current grouping?", "is there a safety plan?"); answering them in one
place means they cannot disagree. Why one read: the Summary is the app's busiest page, and a page
used to ask the store again for every question (and once more per goal for its version). Here one
query returns every current resource of the patient *with its local version*, so an edit form can
send back the version its content came from, and later questions are answered from memory.

Inside a request the snapshot is kept in ``flask.g`` (:func:`of`); a save drops it (:func:`forget`)
so a page drawn after a save, or a conflict page after a refused save, reads again.

The local store is the app's system of record (every save lands there first), so pages read from it
rather than from the EHR. Resources are picked out by the codes our profiles fix (the grouping
Observation's code, the safety plan's category), never by position or by id patterns.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from thrive_fhir import canonical

OPEN_GOAL_STATUSES = ("proposed", "accepted", "active", "on-hold")
OPEN_REQUEST_STATUSES = ("draft", "active", "on-hold")
OPEN_TASK_STATUSES = ("draft", "requested", "received", "accepted", "ready", "in-progress", "on-hold")
_G_KEY = "_thrive_patient_records"


# --- small FHIR helpers ----------------------------------------------------------------------
def codes(cc: dict | None, system: str | None = None) -> list[str]:
    """The codes of a CodeableConcept (optionally only those from ``system``)."""
    return [c.get("code") for c in (cc or {}).get("coding", []) if system is None or c.get("system") == system]


def has_code(ccs: list[dict] | dict | None, system: str, code: str) -> bool:
    if isinstance(ccs, dict):
        ccs = [ccs]
    return any(code in codes(cc, system) for cc in ccs or [])


def parse_when(text: str | None) -> datetime | date | None:
    """A FHIR date (-> ``date``; a year or year-month -> its first day) or dateTime (-> ``datetime``)."""
    if not text or not isinstance(text, str):
        return None
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        if len(text) == 7:
            return date.fromisoformat(text + "-01")
        if len(text) == 4:
            return date.fromisoformat(text + "-01-01")
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def as_utc(value: date | datetime | None) -> datetime | None:
    """A date or datetime as an aware UTC datetime (a date is its midnight), for ordering and comparing."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


_EARLIEST = datetime.min.replace(tzinfo=UTC)


# --- record shapes ---------------------------------------------------------------------------
@dataclass
class Versioned:
    """A resource with the local version a form must send back when editing it."""

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
        """Our business identifier's value (the local record id the builders were given)."""
        for ident in self.resource.get("identifier", []):
            if ident.get("system", "").startswith(canonical.BASE + "/Id/"):
                return ident["value"]
        return self.resource["identifier"][0]["value"]


@dataclass(frozen=True)
class Rating:
    """One GBO rating of a goal: when, the score 0-10, and who rated it (a reference)."""

    when: date | datetime
    score: int
    rater: str | None = None
    #: The rating Observation (``Observation/<id>``): who recorded it, and whether it is synced yet.
    ref: str | None = None


@dataclass
class GroupingRecord(Versioned):
    version: int = 1

    @property
    def code(self) -> str | None:
        found = codes(self.resource.get("valueCodeableConcept"), canonical.CS_GROUPING)
        return found[0] if found else None

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
            if code in codes(comp.get("code"), canonical.CS_CONCEPTS):
                if "valueString" in comp:
                    return comp["valueString"]
                found = codes(comp.get("valueCodeableConcept"), system)
                return found[0] if found else None
        return None

    @property
    def notes(self) -> list[str]:
        return [n.get("text", "") for n in self.resource.get("note", [])]


@dataclass
class GoalRecord(Versioned):
    ratings: list[Rating] = field(default_factory=list)

    @property
    def slot(self) -> int | None:
        found = [c.get("code") for t in self.resource.get("target", []) for c in t.get("measure", {}).get("coding", [])]
        for slot, (code, _display) in canonical.GBO_SCORE_CODES.items():
            if code in found:
                return slot
        return next((canonical.GBO_SCORE_CODES_LEGACY[c] for c in found if c in canonical.GBO_SCORE_CODES_LEGACY), None)

    @property
    def description(self) -> str:
        return self.resource.get("description", {}).get("text", "")

    @property
    def is_open(self) -> bool:
        return self.resource.get("lifecycleStatus") in OPEN_GOAL_STATUSES

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


@dataclass
class Signpost:
    request: dict
    task: dict | None

    @property
    def kind(self) -> str:
        return "referral" if self.request.get("intent") == "order" else "signposting"

    @property
    def id(self) -> str:
        return self.request["id"]

    @property
    def is_open_referral(self) -> bool:
        """A referral the receiving service has not finished, refused or had cancelled."""
        return (
            self.kind == "referral"
            and self.request.get("status") in OPEN_REQUEST_STATUSES
            and (self.task is None or self.task.get("status") in OPEN_TASK_STATUSES)
        )

    @property
    def service_code(self) -> str | None:
        found = codes(self.request.get("code"))
        return found[0] if found else None


def is_grouping(obs: dict) -> bool:
    return "thrive-grouping" in codes(obs.get("code"), canonical.CS_CONCEPTS)


def is_safety_plan(plan: dict) -> bool:
    return has_code(plan.get("category"), canonical.CS_CONCEPTS, "safety-plan")


def _live(resource: dict) -> bool:
    return resource.get("status") != "entered-in-error" and resource.get("lifecycleStatus") != "entered-in-error"


# --- the snapshot ----------------------------------------------------------------------------
class PatientRecords:
    """Every current local resource of one young person, and the answers pages ask of them."""

    def __init__(self, patient_ref: str, rows: list[tuple[str, str, int, dict]]):
        self.patient_ref = patient_ref
        self._by_ref: dict[str, Versioned] = {}
        self._by_type: dict[str, list[Versioned]] = {}
        for rtype, rid, version, resource in rows:
            item = Versioned(resource, version)
            self._by_ref[f"{rtype}/{rid}"] = item
            self._by_type.setdefault(rtype, []).append(item)

    # --- generic ---
    def all(self, rtype: str) -> list[dict]:
        """Current versions of every ``rtype`` resource (store order: oldest update first)."""
        return [v.resource for v in self._by_type.get(rtype, [])]

    def versioned(self, rtype: str) -> list[Versioned]:
        return list(self._by_type.get(rtype, []))

    def get(self, ref: str) -> Versioned | None:
        """A resource saved under this patient by reference (``Type/id``), else None."""
        return self._by_ref.get(ref)

    # --- groupings ---
    @functools.cached_property
    def groupings(self) -> list[GroupingRecord]:
        """Every grouping decision (not entered in error), newest agreed first."""
        rows = [
            GroupingRecord(v.resource, v.version)
            for v in self._by_type.get("Observation", [])
            if is_grouping(v.resource) and _live(v.resource)
        ]
        rows.sort(
            key=lambda g: (
                as_utc(parse_when(g.resource.get("effectiveDateTime"))) or _EARLIEST,
                g.resource.get("issued", ""),
            ),
            reverse=True,
        )
        return rows

    @property
    def current_grouping(self) -> GroupingRecord | None:
        return self.groupings[0] if self.groupings else None

    # --- goals ---
    @functools.cached_property
    def goals(self) -> list[GoalRecord]:
        """GBO goals with their ratings (oldest rating first): open goals first, then by slot."""
        found: dict[str, GoalRecord] = {}
        for v in self._by_type.get("Goal", []):
            goal = v.resource
            if not _live(goal) or not has_code(goal.get("category"), canonical.CS_CONCEPTS, "gbo-goal"):
                continue
            found[v.ref] = GoalRecord(goal, v.version)
        for v in self._by_type.get("Observation", []):
            obs = v.resource
            if (
                not _live(obs)
                or not isinstance(obs.get("valueInteger"), int)
                or isinstance(obs.get("valueInteger"), bool)
            ):
                continue
            for focus in obs.get("focus", []):
                goal = found.get(focus.get("reference"))
                when = parse_when(obs.get("effectiveDateTime"))
                if goal is not None and when is not None:
                    rater = (obs.get("performer") or [{}])[0].get("reference")
                    goal.ratings.append(Rating(when, obs["valueInteger"], rater, v.ref))
        for goal in found.values():
            goal.ratings.sort(key=lambda r: as_utc(r.when))
        return sorted(found.values(), key=lambda g: (not g.is_open, g.slot or 9, g.resource.get("startDate", "")))

    def goal(self, goal_id: str) -> GoalRecord | None:
        return next((g for g in self.goals if g.id == goal_id), None)

    # --- safety plan ---
    @functools.cached_property
    def safety_plan(self) -> Versioned | None:
        """The young person's safety plan (one per young person; an active one first, then newest)."""
        plans = [v for v in self._by_type.get("CarePlan", []) if is_safety_plan(v.resource) and _live(v.resource)]
        if not plans:
            return None
        plans.sort(
            key=lambda v: (
                v.resource.get("status") == "active",
                v.resource.get("created", ""),
                v.resource.get("meta", {}).get("lastUpdated", ""),
            ),
            reverse=True,
        )
        return plans[0]

    # --- sharing consent ---
    @functools.cached_property
    def consents(self) -> list[Versioned]:
        """Sharing consents (not entered in error): active first, then newest."""
        items = [v for v in self._by_type.get("Consent", []) if _live(v.resource)]
        items.sort(key=lambda v: (v.resource.get("status") == "active", v.resource.get("dateTime", "")), reverse=True)
        return items

    @property
    def consent(self) -> Versioned | None:
        return self.consents[0] if self.consents else None

    # --- signposting and referrals ---
    @functools.cached_property
    def signposts(self) -> list[Signpost]:
        """Signposts and referrals (with the referral's Task), newest first."""
        tasks = {t.get("focus", {}).get("reference"): t for t in self.all("Task")}
        out = [Signpost(sr, tasks.get(f"ServiceRequest/{sr['id']}")) for sr in self.all("ServiceRequest") if _live(sr)]
        out.sort(key=lambda s: s.request.get("authoredOn", ""), reverse=True)
        return out

    # --- care team ---
    @functools.cached_property
    def care_team(self) -> Versioned | None:
        """The young person's care team (one per young person; the active one, else the newest)."""
        teams = [v for v in self._by_type.get("CareTeam", []) if _live(v.resource)]
        if not teams:
            return None
        teams.sort(
            key=lambda v: (
                v.resource.get("status") in ("active", "proposed"),
                v.resource.get("period", {}).get("start", ""),
            ),
            reverse=True,
        )
        return teams[0]

    # --- episode and flag ---
    def active_episode(self, organization_ref: str | None) -> Versioned | None:
        for v in self._by_type.get("EpisodeOfCare", []):
            eoc = v.resource
            if eoc.get("status") in ("active", "planned", "waitlist", "onhold") and (
                organization_ref is None or eoc.get("managingOrganization", {}).get("reference") == organization_ref
            ):
                return v
        return None

    @property
    def active_flag(self) -> Versioned | None:
        for v in self._by_type.get("Flag", []):
            flag = v.resource
            if flag.get("status") == "active" and "risk-support-alert" in codes(
                flag.get("code"), canonical.CS_CONCEPTS
            ):
                return v
        return None


def load(store, patient_ref: str) -> PatientRecords:
    """Read every current resource of ``patient_ref`` with its local version, in one snapshot query
    (``LocalStore.for_patient_versioned``: content and version numbers always belong together)."""
    return PatientRecords(patient_ref, store.for_patient_versioned(patient_ref))


def of(store, patient_ref: str) -> PatientRecords:
    """The request's snapshot of ``patient_ref`` (read on first use, then kept in ``flask.g``)."""
    from flask import g, has_app_context

    if not has_app_context():
        return load(store, patient_ref)
    cache = g.setdefault(_G_KEY, {})
    key = (id(store), patient_ref)
    if key not in cache:
        cache[key] = load(store, patient_ref)
    return cache[key]


def use_snapshot(store, patient_ref: str, records: PatientRecords) -> None:
    """Make ``records`` the request's snapshot of ``patient_ref`` (the agency view reads the record
    from the shared store; the risk banner then draws from what was read there)."""
    from flask import g

    g.setdefault(_G_KEY, {})[(id(store), patient_ref)] = records


def forget() -> None:
    """Drop the request's snapshots (after a save, so what is drawn next is read again)."""
    from flask import g, has_app_context

    if has_app_context():
        g.pop(_G_KEY, None)


# --- the questions journeys ask, by (store, patient) -----------------------------------------
def groupings(store, patient_ref: str) -> list[GroupingRecord]:
    return of(store, patient_ref).groupings


def current_grouping(store, patient_ref: str) -> GroupingRecord | None:
    return of(store, patient_ref).current_grouping


def goals(store, patient_ref: str) -> list[GoalRecord]:
    return of(store, patient_ref).goals


def safety_plan(store, patient_ref: str) -> Versioned | None:
    return of(store, patient_ref).safety_plan


def consent(store, patient_ref: str) -> Versioned | None:
    return of(store, patient_ref).consent


def signposts(store, patient_ref: str) -> list[Signpost]:
    return of(store, patient_ref).signposts


def care_team(store, patient_ref: str) -> Versioned | None:
    return of(store, patient_ref).care_team


def active_episode(store, patient_ref: str, organization_ref: str | None) -> Versioned | None:
    return of(store, patient_ref).active_episode(organization_ref)


def active_flag(store, patient_ref: str) -> Versioned | None:
    return of(store, patient_ref).active_flag


def consent_agencies(c: Versioned | None) -> list[str]:
    """Organization references the young person currently agrees to share with."""
    if c is None or c.resource.get("status") != "active":
        return []
    return [a.get("reference", {}).get("reference") for a in c.resource.get("provision", {}).get("actor", [])]
