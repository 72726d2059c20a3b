"""The Summary page's view data: one young person's plan in words, dates and names.

The facts (current grouping, goals and ratings, safety plan, consents, signposts, care team, risk)
come from :mod:`smart_app.records` and :mod:`smart_app.risk`, the one home of those questions; this
module only turns them into what people read. It works on FHIR JSON as stored (the builders'
output, or anything valid arriving by sync), so it relies only on the elements docs/design/fhir-model.md marks
required. The request's one records snapshot feeds the whole page; names of people and
organisations come from that snapshot or the services directory, else one store read per name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from thrive_fhir import canonical, entry_confirmation

from .. import gbo
from .. import records as rec
from ..names import Names, known_names, person_name  # noqa: F401 (re-exported for older imports)
from ..records import as_utc, has_code, parse_when
from ..risk import RiskState, of_records
from ..wording import request_status

OPEN_REQUEST_STATUSES = rec.OPEN_REQUEST_STATUSES
ACTIVE_TASK_STATUSES = rec.OPEN_TASK_STATUSES

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


def show_date(value: str | None, with_time: bool = False) -> str:
    """A FHIR date or dateTime in the app's one style (``smart_app.wording``)."""
    from ..wording import date_text, datetime_text

    dt = parse_when(value)
    if dt is None:
        return value or ""
    return datetime_text(dt) if with_time else date_text(dt)


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
    took_part: list[str]
    family_involvement: str
    change_reason: str
    notes: list[str]
    status: str
    #: Who recorded it and where, and whether it waits to sync (with a shared store; else None).
    recorded: object = None


@dataclass
class ScorePoint:
    when: datetime
    when_display: str
    value: int
    rater: str
    recorded: object = None


@dataclass
class GoalView:
    id: str
    text: str
    slot: int | None
    status: str
    start_display: str
    scores: list[ScorePoint] = field(default_factory=list)
    ratings: list[rec.Rating] = field(default_factory=list)
    is_open: bool = True
    ended: str = ""  # how a closed goal ended, in words ("Achieved: she is back at school full time")
    ended_display: str = ""
    recorded: object = None

    @property
    def chart(self):
        """The goal's progress chart, the same one the Goals page draws (reliable change band)."""
        return gbo.goal_chart(self.id, self.slot, self.text, self.ratings)

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
    sections: list[tuple[str, list[PlanEntryView]]]
    recorded: object = None
    version: str = ""


@dataclass
class PlanEntryView:
    """One item of the safety plan as the Summary shows it; items under "What each agency will do"
    carry their element id, holders and the holding agency's confirmation (``thrive_fhir.entry_confirmation``)."""

    text: str
    id: str = ""
    performers: tuple[str, ...] = ()
    confirmed: str = ""  # "Confirmed by <worker>, <organisation> on <date>", or empty
    can_confirm: bool = False  # set by the agency view for the worker's own organisation's items

    def __str__(self) -> str:
        return self.text


@dataclass
class RequestView:
    kind: str  # signposting | referral
    what: str
    to: str
    when_display: str
    status: str
    recorded: object = None  # the request's
    task_recorded: object = None  # its Task's latest update (an agency accepting it, say)


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
    risk: RiskState
    safety_plan_id: str | None = None
    closed_goals: list[GoalView] = field(default_factory=list)
    #: Signposts and referrals that have ended (completed, declined, cancelled), oldest first.
    past_requests: list[RequestView] = field(default_factory=list)

    @property
    def risk_support(self) -> bool:
        return self.risk.risk_support


def _grouping_view(obs: dict, names: Names) -> GroupingView:
    value = obs.get("valueCodeableConcept") or {}
    code = next((c.get("code") for c in value.get("coding", []) if c.get("system") == canonical.CS_GROUPING), "")
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
        took_part=took_part(obs, names),
        family_involvement=comps.get("family-involvement", ""),
        change_reason=comps.get("grouping-change-reason", ""),
        notes=[n.get("text", "") for n in obs.get("note", []) if n.get("text")],
        status=obs.get("status", ""),
    )


def took_part(obs: dict, names: Names) -> list[str]:
    """Everyone who took part in a grouping decision, by name where there is one.

    Observation.performer holds the clinician, the young person and any agency chosen by name;
    the parent or carer, and a kind of agency ticked without naming one (a school), have no record
    to point at, so the grouping journey lists every kind ticked in its "Took part:" note. Both are
    read here, so nobody who was ticked is left out."""
    from ..journeys import vocab

    who = [names(p) for p in obs.get("performer", [])]
    kinds = []
    for n in obs.get("note", []):
        text = n.get("text", "")
        if text.startswith(TOOK_PART):
            first_line = text[len(TOOK_PART) :].split("\n", 1)[0]
            kinds = [k.strip() for k in first_line.split(";") if k.strip() and not k.strip().startswith("(")]
    represented = {"Young person", "Clinician"}
    agency_kinds = {c.display for c in vocab.participants() if c.code in vocab.AGENCY_PARTICIPANTS}
    named_agency = any(
        (p.get("reference") or "").startswith(("Organization/", "HealthcareService/")) for p in obs.get("performer", [])
    )
    for kind in kinds:
        if kind in represented or (named_agency and kind in agency_kinds):
            continue
        if kind not in who:
            who.append(kind)
    return who


#: How the grouping journey's note lists who took part (``smart_app.journeys.grouping``).
TOOK_PART = "Took part: "


def _none(_resource):
    return None


def _confirmed_text(provenance: dict | None, names: Names) -> str:
    """How the Summary says an agency confirmed an item: who, for which organisation, when."""
    if provenance is None:
        return ""
    agent = (provenance.get("agent") or [{}])[0]
    who = names(agent.get("who")) if agent.get("who") else ""
    org = names(agent.get("onBehalfOf")) if agent.get("onBehalfOf") else ""
    by = ", ".join(p for p in (who, org) if p and not (p == org and who and org in who))
    when = show_date(provenance.get("recorded"))
    return f"Confirmed by {by}" + (f" on {when}" if when else "") if by else f"Confirmed on {when}"


def _score_points(g: rec.GoalRecord, names: Names, recs: rec.PatientRecords, attribution) -> list[ScorePoint]:
    out = []
    for x in g.ratings:
        found = recs.get(x.ref) if x.ref else None
        out.append(
            ScorePoint(
                as_utc(x.when),
                show_date(x.when.isoformat()),
                x.score,
                names(x.rater),
                recorded=attribution(found.resource) if found is not None else None,
            )
        )
    return out


def closed_goal_view(
    g: rec.GoalRecord, names: Names, recs: rec.PatientRecords | None = None, attribution=_none
) -> GoalView:
    """A closed goal with how it ended (``Goal.achievementStatus`` / ``lifecycleStatus``) and why."""
    r = g.resource
    scores = (
        _score_points(g, names, recs, attribution)
        if recs is not None
        else [ScorePoint(as_utc(x.when), show_date(x.when.isoformat()), x.score, names(x.rater)) for x in g.ratings]
    )
    return GoalView(
        id=g.id,
        text=g.description,
        slot=g.slot,
        status=r.get("lifecycleStatus", ""),
        start_display=show_date(r.get("startDate")),
        scores=scores,
        ratings=list(g.ratings),
        is_open=False,
        ended=gbo.ending_words(r),
        ended_display=show_date(r.get("statusDate")),
        recorded=attribution(r),
    )


def build_summary(
    store,
    patient_ref: str,
    *,
    patient_name: str | None = None,
    today: date | None = None,
    records: rec.PatientRecords | None = None,
    launch=None,
    shared=None,
    confirmations: list[dict] | None = None,
) -> PlanSummary:
    """The Summary of ``patient_ref`` from the request's records snapshot (or ``records``).
    With ``launch``, names are also looked up in the EHR and kept for the launch (``smart_app.names``).
    With ``shared`` (a :class:`~smart_app.summary.shared_history.SharedHistory`), the records are the
    merged shared history and every item says who recorded it and where, or that it waits to sync.
    ``confirmations``: the agencies' confirmation Provenances of safety plan items (else the shared
    history's, if any)."""
    if confirmations is None and shared is not None:
        confirmations = getattr(shared, "confirmations", None)
    recs = records or (shared.records if shared is not None else None) or rec.of(store, patient_ref)
    risk = of_records(recs, today)
    names = Names(
        store,
        patient_ref,
        patient_name,
        recs,
        known_names(),
        launch=launch,
        shared=shared.directory if shared is not None else None,
    )
    attribution = shared.attribution(names) if shared is not None else _none

    timeline = []
    for g in recs.groupings:  # newest first
        view = _grouping_view(g.resource, names)
        view.recorded = attribution(g.resource)
        timeline.append(view)
    current = timeline[0] if timeline else None

    goals = []
    closed_goals = [closed_goal_view(g, names, recs, attribution) for g in recs.goals if not g.is_open]
    for g in recs.goals:
        if not g.is_open:
            continue
        scores = _score_points(g, names, recs, attribution)
        goals.append(
            GoalView(
                id=g.id,
                text=g.description,
                slot=g.slot,
                status=g.resource.get("lifecycleStatus", ""),
                start_display=show_date(g.resource.get("startDate")),
                scores=scores,
                ratings=list(g.ratings),
                recorded=attribution(g.resource),
            )
        )
    goals.sort(key=lambda v: (v.slot or 9, v.start_display))

    plan_view = None
    if risk.has_plan:
        plan = recs.safety_plan.resource
        confirmed = entry_confirmation.confirmations(plan, list(confirmations or ()))
        agency_items = {e.id: e for e in entry_confirmation.agency_entries(plan)}
        sections: dict[str, list[PlanEntryView]] = {}
        for act in plan.get("activity", []):
            detail = act.get("detail") or {}
            label = concept_text(detail.get("code")) or "Other"
            entry = agency_items.get(act.get("id") or "")
            view = PlanEntryView(detail.get("description", ""))
            if entry is not None:
                view.id, view.performers = entry.id, entry.performers
                view.confirmed = _confirmed_text(confirmed.get(entry.id), names)
            sections.setdefault(label, []).append(view)
        plan_view = SafetyPlanView(
            id=plan.get("id", ""),
            status=plan.get("status", ""),
            title=plan.get("title") or "Safety plan",
            review_display=show_date((plan.get("period") or {}).get("end")),
            overdue=risk.plan_overdue,
            author=names(plan.get("author")),
            sections=list(sections.items()),
            recorded=attribution(plan),
            version=str((plan.get("meta") or {}).get("versionId") or recs.safety_plan.version),
        )

    requests = []
    past_requests = []
    for sp in recs.signposts:
        sr, task = sp.request, sp.task
        kind = "referral" if has_code(sr.get("category"), canonical.CS_CONCEPTS, "referral") else "signposting"
        is_open = sr.get("status") in OPEN_REQUEST_STATUSES
        if task and task.get("status", sr.get("status", "")) not in ACTIVE_TASK_STATUSES:
            is_open = False
        view = RequestView(
            kind=kind,
            what=concept_text(sr.get("code")),
            to=", ".join(names(p) for p in sr.get("performer", [])),
            when_display=show_date(sr.get("authoredOn")),
            status=request_status(kind, task, sr.get("status")),
            recorded=attribution(sr),
            task_recorded=attribution(task) if task else None,
        )
        if is_open:
            requests.append(view)
        elif shared is not None and sr.get("status") != "entered-in-error":
            past_requests.append(view)  # the shared history: completed and declined ones too
    requests.reverse()  # oldest first, as the page lists them
    past_requests.reverse()

    shared_with: list[str] = []
    consent_period = ""
    active_consents = [v.resource for v in recs.consents if v.resource.get("status") == "active"]
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
    team = recs.care_team
    if team is not None and team.resource.get("status") in (None, "active", "proposed"):
        for p in team.resource.get("participant", []):
            role = concept_text((p.get("role") or [None])[0])
            who = names(p.get("member"))
            org = names(p.get("onBehalfOf")) if p.get("onBehalfOf") else ""
            care_team.append((who, ", ".join(x for x in (role, org) if x)))

    return PlanSummary(
        patient_ref=patient_ref,
        current=current,
        timeline=timeline,
        goals=goals,
        safety_plan=plan_view,
        requests=requests,
        shared_with=shared_with,
        consent_period=consent_period,
        consents=active_consents,
        care_team=care_team,
        risk=risk,
        safety_plan_id=plan_view.id if plan_view else None,
        closed_goals=closed_goals,
        past_requests=past_requests,
    )
