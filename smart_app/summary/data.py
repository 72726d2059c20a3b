"""Read one young person's plan out of the local store into plain view data for the Summary page.

Works on FHIR JSON as stored (the builders' output, or anything valid arriving by sync), so it
only relies on the elements fhir-model.md marks required. One ``for_patient`` query feeds the
whole page; names of people and organisations are looked up once each per request.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

from thrive_fhir import canonical

ACTIVE_GOAL_STATUSES = ("proposed", "accepted", "active", "on-hold")
OPEN_REQUEST_STATUSES = ("draft", "active", "on-hold")
ACTIVE_TASK_STATUSES = ("draft", "requested", "received", "accepted", "ready", "in-progress", "on-hold")

_GROUPING_DISPLAY = {
    "thriving": "Thriving",
    "getting-advice": "Getting Advice and Signposting",
    "getting-help": "Getting Help",
    "getting-more-help": "Getting More Help",
    "getting-risk-support": "Getting Risk Support",
}


def _display(system: str | None, code: str | None) -> str | None:
    if not system or not code:
        return None
    try:
        from thrive_fhir import terminology

        return terminology.display(system, code)
    except Exception:  # terminology package missing or code unknown: fall back to the coding
        return None


def concept_text(cc: dict | None) -> str:
    """Human text for a CodeableConcept: text, coding display, terminology display, code."""
    if not cc:
        return ""
    if cc.get("text"):
        return cc["text"]
    for c in cc.get("coding", []):
        if c.get("display"):
            return c["display"]
        shown = _display(c.get("system"), c.get("code"))
        if shown:
            return shown
    codes = [c.get("code") for c in cc.get("coding", []) if c.get("code")]
    return codes[0].replace("-", " ").capitalize() if codes else ""


def _codes(cc: dict | None) -> set[tuple[str, str]]:
    return {(c.get("system", ""), c.get("code", "")) for c in (cc or {}).get("coding", [])}


def _has_code(ccs: list[dict] | dict | None, system: str, code: str) -> bool:
    if isinstance(ccs, dict):
        ccs = [ccs]
    return any((system, code) in _codes(cc) for cc in ccs or [])


def parse_when(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        if len(value) == 10:
            return datetime.fromisoformat(value).replace(tzinfo=timezone.utc)
        if len(value) in (4, 7):
            return datetime.fromisoformat(value + ("-01-01" if len(value) == 4 else "-01")).replace(tzinfo=timezone.utc)
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def show_date(value: str | None, with_time: bool = False) -> str:
    dt = parse_when(value)
    if dt is None:
        return value or ""
    if with_time and value and len(value) > 10:
        return dt.strftime("%-d %B %Y, %H:%M")
    return dt.strftime("%-d %B %Y")


def person_name(resource: dict | None) -> str | None:
    """A readable name for Practitioner, RelatedPerson, Patient, Organization, HealthcareService…"""
    if not resource:
        return None
    if isinstance(resource.get("name"), str):
        return resource["name"]
    names = resource.get("name") or []
    if names:
        n = names[0]
        if n.get("text"):
            return n["text"]
        given = " ".join(n.get("given", []))
        parts = [p for p in (n.get("prefix") and " ".join(n["prefix"]), given, n.get("family")) if p]
        if parts:
            return " ".join(parts)
    return None


class Names:
    """Resolves references to display names via the local store, once per reference per page."""

    def __init__(self, store, patient_ref: str | None = None, patient_name: str | None = None):
        self.store = store
        self.cache: dict[str, str] = {}
        if patient_ref:
            self.cache[patient_ref] = patient_name or "The young person"

    def __call__(self, ref: dict | str | None) -> str:
        if not ref:
            return ""
        if isinstance(ref, dict):
            if ref.get("display"):
                return ref["display"]
            ref = ref.get("reference") or ""
        if ref in self.cache:
            return self.cache[ref]
        name = None
        if "/" in ref and self.store is not None:
            rtype, rid = ref.split("/", 1)
            try:
                resource = self.store.current(rtype, rid)
            except Exception:
                resource = None
            if rtype == "PractitionerRole" and resource:
                who = self(resource.get("practitioner"))
                role = concept_text((resource.get("code") or [None])[0])
                org = self(resource.get("organization")) if resource.get("organization") else ""
                name = ", ".join(p for p in (who, role, org) if p)
            else:
                name = person_name(resource)
        if not name:
            kind = ref.split("/", 1)[0] if "/" in ref else "record"
            name = {
                "Practitioner": "A clinician",
                "PractitionerRole": "A clinician",
                "RelatedPerson": "A parent or carer",
                "Organization": "An organisation",
                "HealthcareService": "A service",
                "Patient": "The young person",
            }.get(kind, "Someone") + f" ({ref.split('/')[-1][:8]})"
        self.cache[ref] = name
        return name


@dataclass
class GroupingView:
    id: str
    code: str
    label: str
    agreed_at: str
    agreed_display: str
    recorded_display: str
    performers: list[str]
    involvement: str
    change_reason: str
    notes: list[str]
    status: str


@dataclass
class ScorePoint:
    when: datetime
    when_display: str
    value: int
    rater: str


@dataclass
class GoalView:
    id: str
    text: str
    slot: int | None
    status: str
    start_display: str
    scores: list[ScorePoint] = field(default_factory=list)

    @property
    def latest(self) -> ScorePoint | None:
        return self.scores[-1] if self.scores else None

    @property
    def first(self) -> ScorePoint | None:
        return self.scores[0] if self.scores else None

    @property
    def change(self) -> int | None:
        if len(self.scores) < 2:
            return None
        return self.scores[-1].value - self.scores[0].value


@dataclass
class SafetyPlanView:
    id: str
    status: str
    title: str
    review_display: str
    overdue: bool
    author: str
    sections: list[tuple[str, list[str]]]


@dataclass
class RequestView:
    kind: str  # signposting | referral
    what: str
    to: str
    when_display: str
    status: str


@dataclass
class PlanSummary:
    patient_ref: str
    current: GroupingView | None
    timeline: list[GroupingView]
    goals: list[GoalView]
    safety_plan: SafetyPlanView | None
    requests: list[RequestView]
    shared_with: list[str]
    consent_period: str
    consents: list[dict]
    care_team: list[tuple[str, str]]
    safety_plan_id: str | None = None

    @property
    def risk_support(self) -> bool:
        return bool(self.current and self.current.code == "getting-risk-support")


def _grouping_view(obs: dict, names: Names) -> GroupingView:
    value = obs.get("valueCodeableConcept") or {}
    code = next(
        (c.get("code") for c in value.get("coding", []) if c.get("system") == canonical.CS_GROUPING), ""
    )
    comps = {}
    for comp in obs.get("component", []):
        key = next((c.get("code") for c in comp.get("code", {}).get("coding", [])), None)
        if key:
            comps[key] = concept_text(comp.get("valueCodeableConcept")) or comp.get("valueString", "")
    return GroupingView(
        id=obs.get("id", ""),
        code=code,
        label=_GROUPING_DISPLAY.get(code) or concept_text(value),
        agreed_at=obs.get("effectiveDateTime", ""),
        agreed_display=show_date(obs.get("effectiveDateTime"), with_time=True),
        recorded_display=show_date(obs.get("issued"), with_time=True),
        performers=[names(p) for p in obs.get("performer", [])],
        involvement=comps.get("young-person-involvement", ""),
        change_reason=comps.get("grouping-change-reason", ""),
        notes=[n.get("text", "") for n in obs.get("note", []) if n.get("text")],
        status=obs.get("status", ""),
    )


def _is_grouping(obs: dict) -> bool:
    return _has_code(obs.get("code"), canonical.CS_CONCEPTS, "thrive-grouping")


def is_safety_plan(cp: dict) -> bool:
    return _has_code(cp.get("category"), canonical.CS_CONCEPTS, "safety-plan")


def active_safety_plan(careplans: list[dict], today: date | None = None) -> dict | None:
    plans = [cp for cp in careplans if is_safety_plan(cp) and cp.get("status") == "active"]
    plans.sort(key=lambda cp: (cp.get("created") or "", cp.get("meta", {}).get("lastUpdated") or ""))
    return plans[-1] if plans else None


def current_grouping(observations: list[dict]) -> dict | None:
    groupings = [o for o in observations if _is_grouping(o) and o.get("status") != "entered-in-error"]
    groupings.sort(key=lambda o: parse_when(o.get("effectiveDateTime")) or datetime.min.replace(tzinfo=timezone.utc))
    return groupings[-1] if groupings else None


def grouping_code(obs: dict | None) -> str | None:
    if not obs:
        return None
    return next(
        (c.get("code") for c in (obs.get("valueCodeableConcept") or {}).get("coding", [])
         if c.get("system") == canonical.CS_GROUPING),
        None,
    )


def _slot_of(goal: dict) -> int | None:
    for target in goal.get("target", []):
        for c in (target.get("measure") or {}).get("coding", []):
            for slot, (code, _d) in canonical.GBO_SCORE_CODES.items():
                if c.get("code") == code:
                    return slot
            if c.get("code") in canonical.GBO_SCORE_CODES_LEGACY:
                return canonical.GBO_SCORE_CODES_LEGACY[c["code"]]
    return None


def build_summary(store, patient_ref: str, *, patient_name: str | None = None, today: date | None = None) -> PlanSummary:
    today = today or date.today()
    names = Names(store, patient_ref, patient_name)
    by_type: dict[str, list[dict]] = defaultdict(list)
    for r in store.for_patient(patient_ref):
        by_type[r.get("resourceType", "")].append(r)

    observations = by_type["Observation"]
    groupings = [o for o in observations if _is_grouping(o) and o.get("status") != "entered-in-error"]
    groupings.sort(key=lambda o: parse_when(o.get("effectiveDateTime")) or datetime.min.replace(tzinfo=timezone.utc))
    timeline = [_grouping_view(o, names) for o in groupings]
    current = timeline[-1] if timeline else None

    scores_by_goal: dict[str, list[ScorePoint]] = defaultdict(list)
    for o in observations:
        if o.get("status") == "entered-in-error" or not isinstance(o.get("valueInteger"), int):
            continue
        for f in o.get("focus", []):
            ref = f.get("reference", "")
            if ref.startswith("Goal/"):
                when = parse_when(o.get("effectiveDateTime"))
                if when:
                    scores_by_goal[ref[5:]].append(
                        ScorePoint(when, show_date(o.get("effectiveDateTime")), o["valueInteger"],
                                   names((o.get("performer") or [None])[0]))
                    )
    goals = []
    for g in by_type["Goal"]:
        if g.get("lifecycleStatus") not in ACTIVE_GOAL_STATUSES:
            continue
        view = GoalView(
            id=g.get("id", ""),
            text=(g.get("description") or {}).get("text", ""),
            slot=_slot_of(g),
            status=g.get("lifecycleStatus", ""),
            start_display=show_date(g.get("startDate")),
            scores=sorted(scores_by_goal.get(g.get("id", ""), []), key=lambda s: s.when),
        )
        goals.append(view)
    goals.sort(key=lambda v: (v.slot or 9, v.start_display))

    plan = active_safety_plan(by_type["CarePlan"])
    plan_view = None
    if plan:
        end = (plan.get("period") or {}).get("end")
        end_dt = parse_when(end)
        sections: dict[str, list[str]] = {}
        for act in plan.get("activity", []):
            detail = act.get("detail") or {}
            label = concept_text(detail.get("code")) or "Other"
            sections.setdefault(label, []).append(detail.get("description", ""))
        plan_view = SafetyPlanView(
            id=plan.get("id", ""),
            status=plan.get("status", ""),
            title=plan.get("title") or "Safety plan",
            review_display=show_date(end),
            overdue=bool(end_dt and end_dt.date() < today),
            author=names(plan.get("author")),
            sections=list(sections.items()),
        )

    requests = []
    tasks_by_focus = {
        (t.get("focus") or {}).get("reference", ""): t for t in by_type["Task"]
    }
    for sr in by_type["ServiceRequest"]:
        if sr.get("status") not in OPEN_REQUEST_STATUSES:
            continue
        kind = "referral" if _has_code(sr.get("category"), canonical.CS_CONCEPTS, "referral") else "signposting"
        status = sr.get("status", "")
        task = tasks_by_focus.get(f"ServiceRequest/{sr.get('id')}")
        if task:
            status = task.get("status", status)
            if status not in ACTIVE_TASK_STATUSES:
                continue
        requests.append(
            RequestView(
                kind=kind,
                what=concept_text(sr.get("code")),
                to=", ".join(names(p) for p in sr.get("performer", [])),
                when_display=show_date(sr.get("authoredOn")),
                status=status.replace("-", " "),
            )
        )

    shared_with: list[str] = []
    consent_period = ""
    active_consents = [c for c in by_type["Consent"] if c.get("status") == "active"]
    for c in active_consents:
        provision = c.get("provision") or {}
        if provision.get("type", "permit") != "permit":
            continue
        for actor in provision.get("actor", []):
            name = names(actor.get("reference"))
            if name not in shared_with:
                shared_with.append(name)
        period = provision.get("period") or {}
        if period.get("end"):
            consent_period = f"until {show_date(period['end'])}"

    care_team: list[tuple[str, str]] = []
    for ct in by_type["CareTeam"]:
        if ct.get("status") not in (None, "active", "proposed"):
            continue
        for p in ct.get("participant", []):
            role = concept_text((p.get("role") or [None])[0])
            who = names(p.get("member"))
            org = names(p.get("onBehalfOf")) if p.get("onBehalfOf") else ""
            care_team.append((who, ", ".join(x for x in (role, org) if x)))

    return PlanSummary(
        patient_ref=patient_ref,
        current=current,
        timeline=list(reversed(timeline)),
        goals=goals,
        safety_plan=plan_view,
        requests=requests,
        shared_with=shared_with,
        consent_period=consent_period,
        consents=active_consents,
        care_team=care_team,
        safety_plan_id=plan_view.id if plan_view else None,
    )


def risk_status(store, patient_ref: str) -> dict[str, Any]:
    """What the every-page risk alert needs: Getting Risk Support now? an active safety plan?"""
    observations = store.for_patient(patient_ref, type="Observation")
    careplans = store.for_patient(patient_ref, type="CarePlan")
    current = current_grouping(observations)
    plan = active_safety_plan(careplans)
    return {
        "risk_support": grouping_code(current) == "getting-risk-support",
        "safety_plan": plan is not None,
        "safety_plan_id": plan.get("id") if plan else None,
        "safety_plan_review": show_date((plan.get("period") or {}).get("end")) if plan else None,
    }
