"""One young person's story, told as FHIR resources built with :mod:`thrive_fhir.builders`.

The story: a referral opens an episode; a first grouping is agreed at the first or second contact;
the grouping is reviewed every few contacts and may change (with a reason and a derivedFrom link
to the grouping it replaces); goals are set on first entering Getting Help or Getting More Help and
rated 0-10 at every later contact; Getting Risk Support brings a co-produced safety plan, a care
team, a risk flag and consent to share with chosen agencies; Getting Advice brings signposting,
and help groupings bring referrals (ServiceRequest + Task). Episodes that end before the cut-off
are finished and their goals closed; the rest are still open (censored).

Nothing here computes ground truth: that is counted from the resources as they are written.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from ..builders import (
    CareTeamInput,
    CareTeamMember,
    Coded,
    ConsentInput,
    EpisodeInput,
    GoalAcceptance,
    GoalInput,
    GoalScoreInput,
    GroupingDecision,
    PatientInput,
    PreviousGrouping,
    ProvenanceInput,
    ReferralTaskInput,
    RelatedPersonInput,
    RiskFlagInput,
    SafetyPlanInput,
    SafetyPlanItem,
    SignpostInput,
    SourceRecord,
    build_care_team,
    build_consent,
    build_episode,
    build_gbo_score,
    build_goal,
    build_grouping,
    build_patient,
    build_provenance,
    build_referral_task,
    build_related_person,
    build_risk_flag,
    build_safety_plan,
    build_signposting,
    close_goal,
    withdraw_all,
)
from ..terminology import display
from . import phrases
from .directory import OFFER_SYSTEM, TRUST_ODS, Directory
from .ids import local_id
from .names import FAMILY_NAMES, GIVEN_NAMES, PARENT_RELATIONSHIPS

UTC = UTC
#: The default "as of" day. Nothing happens on or after the as-of day, and it is always given, never
#: read from the clock, so the same (size, seed, as-of) gives the same bytes on any day.
DEFAULT_AS_OF = date(2026, 1, 1)
#: Referrals fall in the ~3 years before as-of; the last is 34 days before, so its first contact
#: (7-28 days later, plus a weekend) still comes before the last day.
FIRST_REFERRAL_DAYS = 1095
LAST_REFERRAL_DAYS = 34
#: Staff roles started this long before as-of (2020-09-01 for the default), before any referral.
STAFF_START_DAYS = 1948
DEVICE_REF = "Device/thrive-synth-app"

INITIAL = {"thriving": 4, "getting-advice": 30, "getting-help": 36, "getting-more-help": 20, "getting-risk-support": 10}
#: Next grouping at a review, given the current one (staying the same is a review without change).
NEXT = {
    "thriving": {"thriving": 40, "getting-advice": 35, "getting-help": 25},
    "getting-advice": {
        "getting-advice": 25,
        "thriving": 30,
        "getting-help": 32,
        "getting-more-help": 9,
        "getting-risk-support": 4,
    },
    "getting-help": {
        "getting-help": 25,
        "getting-advice": 25,
        "thriving": 15,
        "getting-more-help": 23,
        "getting-risk-support": 12,
    },
    "getting-more-help": {
        "getting-more-help": 30,
        "getting-help": 28,
        "getting-advice": 10,
        "thriving": 12,
        "getting-risk-support": 20,
    },
    "getting-risk-support": {
        "getting-risk-support": 25,
        "getting-more-help": 40,
        "getting-help": 25,
        "getting-advice": 10,
    },
}
#: Contacts in one spell before the next review or the end.
SPELL = {
    "thriving": (1, 2),
    "getting-advice": (1, 3),
    "getting-help": (3, 6),
    "getting-more-help": (4, 8),
    "getting-risk-support": (3, 6),
}
#: Chance that the episode ends after a spell in this grouping.
END_AFTER = {
    "thriving": 0.9,
    "getting-advice": 0.65,
    "getting-help": 0.5,
    "getting-more-help": 0.4,
    "getting-risk-support": 0.25,
}
MAX_DECISIONS = 5
HELP = ("getting-help", "getting-more-help")


@dataclass(frozen=True)
class Timeline:
    """Every fixed point of the story, placed relative to ``as_of`` (the day the data is "as of").

    Events (contacts, decisions, scores, saves) all fall on or before ``last_day``; only agreed
    future dates (a safety plan's review date, a consent's end date) may lie after ``as_of``, which
    is what keeps recent plans and consents in date on that day.
    """

    as_of: date = DEFAULT_AS_OF

    @property
    def first_referral(self) -> date:
        return self.as_of - timedelta(days=FIRST_REFERRAL_DAYS)

    @property
    def last_referral(self) -> date:
        return self.as_of - timedelta(days=LAST_REFERRAL_DAYS)

    @property
    def last_day(self) -> date:
        """The last day anything happens (as_of - 1 day)."""
        return self.as_of - timedelta(days=1)

    @property
    def now(self) -> datetime:
        """The clock the builders check against: midnight UTC at the start of as_of."""
        return datetime.combine(self.as_of, time(0), UTC)

    @property
    def staff_start(self) -> date:
        return self.as_of - timedelta(days=STAFF_START_DAYS)


def _pick(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def change_reason(rng: random.Random, old: str, new: str) -> str | None:
    """A plausible reason for a change; None when the grouping stayed the same."""
    if old == new:
        return None
    if new == "getting-risk-support":
        return rng.choice(("risk-increased", "not-benefiting"))
    if old == "getting-risk-support":
        return "risk-reduced"
    if new in ("thriving", "getting-advice") and old in HELP:
        return rng.choice(("goals-achieved", "goals-achieved", "yp-or-family-choice"))
    if new == "getting-more-help":
        return rng.choice(("needs-changed", "needs-changed", "not-benefiting"))
    return rng.choice(("needs-changed", "yp-or-family-choice", "service-change", "other"))


@dataclass
class _Save:
    """What one contact wrote (for the optional Provenance)."""

    targets: list[str] = field(default_factory=list)
    sources: list[SourceRecord] = field(default_factory=list)
    informants: list[str] = field(default_factory=list)
    recorded: datetime | None = None


class PatientStory:
    """Builds the resources of patient ``index`` from its own random stream."""

    def __init__(
        self,
        rng: random.Random,
        index: int,
        directory: Directory,
        nhs_number: str,
        provenance: bool = False,
        timeline: Timeline = Timeline(),
    ):
        self.rng = rng
        self.t = timeline
        self.now = timeline.now
        self.index = index
        self.d = directory
        self.nhs_number = nhs_number
        self.provenance = provenance
        self.out: list[dict] = []
        self.saves: dict[int, _Save] = {}

    # --- helpers ---------------------------------------------------------------------------
    def _id(self) -> str:
        return local_id(self.rng)

    def _emit(
        self,
        resource: dict,
        contact: int | None = None,
        kind: str | None = None,
        lid: str | None = None,
        informants: tuple[str, ...] = (),
    ) -> str:
        self.out.append(resource)
        ref = f"{resource['resourceType']}/{resource['id']}"
        if contact is not None and self.provenance:
            save = self.saves.setdefault(contact, _Save())
            save.targets.append(ref)
            if kind and lid:
                save.sources.append(SourceRecord(kind=kind, local_id=lid, version=1))
            save.informants += [i for i in informants if i not in save.informants]
        return ref

    def _next_contact(self, after: datetime) -> datetime:
        day = after.date() + timedelta(days=self.rng.randint(7, 28))
        while day.weekday() >= 5:
            day += timedelta(days=1)
        return datetime.combine(day, time(self.rng.randint(9, 16), self.rng.choice((0, 15, 30, 45))), UTC)

    # --- the story -------------------------------------------------------------------------
    def tell(self) -> list[dict]:
        rng = self.rng
        t = self.t
        span = (t.last_referral - t.first_referral).days
        referral = t.first_referral + timedelta(days=rng.randrange(span))
        age = rng.randint(6, 17)
        birth = referral - timedelta(days=age * 365 + rng.randrange(365))
        family_name = rng.choice(FAMILY_NAMES)
        patient_lid = self._id()
        patient = build_patient(
            PatientInput(
                local_id=patient_lid,
                nhs_number=self.nhs_number,
                family=family_name,
                given=(rng.choice(GIVEN_NAMES),),
                birth_date=birth,
                gender=rng.choices(("female", "male", "other"), weights=(48, 48, 4))[0],
                source_ods=TRUST_ODS,
            )
        )
        pat = self._emit(patient)
        parent = None
        if rng.random() < 0.9:
            parent = self._emit(
                build_related_person(
                    RelatedPersonInput(
                        local_id=self._id(),
                        patient=pat,
                        relationship=rng.choice(PARENT_RELATIONSHIPS),
                        family=family_name,
                        given=(rng.choice(GIVEN_NAMES),),
                        phone="07700 900" + f"{rng.randrange(1000):03d}",
                        source_ods=TRUST_ODS,
                    )
                )
            )
        school_org = rng.choice(self.d.schools)
        school_role = next(r for r in self.d.roles["school"] if self.d.org_of_role[r] == school_org)

        # Contacts and grouping decisions.
        contacts = [self._next_contact(datetime.combine(referral, time(9), UTC))]
        if rng.random() < 0.4:  # an assessment contact before the first agreed grouping
            assessment = self._next_contact(contacts[-1])
            if assessment.date() < t.last_day:
                contacts.append(assessment)
        groupings = [_pick(rng, INITIAL)]
        decision_at = [len(contacts) - 1]
        finished = False
        while True:
            censored = False
            for _ in range(rng.randint(*SPELL[groupings[-1]])):
                nxt = self._next_contact(contacts[-1])
                if nxt.date() >= t.last_day:
                    censored = True
                    break
                contacts.append(nxt)
            if censored:
                break
            if len(groupings) >= MAX_DECISIONS or rng.random() < END_AFTER[groupings[-1]]:
                finished = True
                break
            nxt = self._next_contact(contacts[-1])
            if nxt.date() >= t.last_day:
                break
            contacts.append(nxt)
            groupings.append(_pick(rng, NEXT[groupings[-1]]))
            decision_at.append(len(contacts) - 1)
        # last_referral + at most 28 days + a weekend stays before the last day: nothing spills over.
        # An explicit check, not ``assert``: under ``python -O`` a broken story must still stop here.
        if contacts[-1].date() >= t.last_day:
            raise RuntimeError(f"synthetic story runs past its last day ({contacts[-1].date()} >= {t.last_day})")

        end = None
        if finished:
            end = min(contacts[-1].date() + timedelta(days=rng.randint(0, 14)), t.last_day)
        lead = rng.choice(
            self.d.roles[
                "mhst" if groupings[0] in ("getting-advice", "getting-help") and rng.random() < 0.5 else "camhs"
            ]
        )
        lead_practitioner = self.d.practitioner_of_role[lead]
        eoc_lid = self._id()
        eoc = self._emit(
            build_episode(
                EpisodeInput(
                    local_id=eoc_lid,
                    subject=pat,
                    managing_organization=self.d.trust,
                    start=contacts[0].date(),
                    end=end,
                    status="finished" if finished else "active",
                    type_text="Community CAMHS and partners (THRIVE)",
                    care_manager=lead,
                    source_ods=TRUST_ODS,
                    assigner_ods=TRUST_ODS,
                )
            ),
            0,
            "episode",
            eoc_lid,
        )

        # Grouping decisions.
        grouping_refs: list[str] = []
        prev: PreviousGrouping | None = None
        goals_set = False
        plan_made = False
        for n, (g, ci) in enumerate(zip(groupings, decision_at)):
            agreed = contacts[ci] + timedelta(minutes=rng.randint(30, 50))
            obs_ref, informants = self._grouping(
                n, g, ci, agreed, pat, parent, eoc, lead, lead_practitioner, school_role, prev
            )
            grouping_refs.append(obs_ref)
            prev = PreviousGrouping(observation=obs_ref, grouping=g, agreed_at=agreed)
            if g in HELP and not goals_set:
                goals_set = True
                self._goals(ci, contacts, pat, parent, eoc, age, end)
            if g == "getting-risk-support" and not plan_made and rng.random() < 0.75:
                plan_made = True
                self._safety_plan(ci, agreed, pat, parent, eoc, lead, school_org, school_role, obs_ref, end, informants)
            self._signpost_or_refer(ci, agreed, g, pat, eoc, lead, obs_ref, finished)

        if self.provenance:
            self._provenances(contacts, lead, pat)
        return self.out

    def _grouping(self, n, g, ci, agreed, pat, parent, eoc, lead, lead_practitioner, school_role, prev):
        rng = self.rng
        yp = rng.choices(("agreed", "partly-agreed", "not-agreed", "not-involved"), weights=(74, 13, 5, 8))[0]
        if parent:
            family = rng.choices(("agreed", "partly-agreed", "not-agreed", "not-involved"), weights=(70, 12, 4, 14))[0]
        else:
            family = "not-applicable"
        participants = []
        if yp != "not-involved":
            participants.append(pat)
        if parent and family in ("agreed", "partly-agreed", "not-agreed"):
            participants.append(parent)
        if rng.random() < 0.2:
            participants.append(school_role)
        disagreed = yp == "not-agreed" or (family == "not-agreed" and yp != "agreed")
        method = "decided-without-agreement" if disagreed else "shared-decision-making"
        reason = change_reason(rng, prev.grouping, g) if prev else None
        note = None
        if method == "decided-without-agreement":
            note = rng.choice(phrases.WITHOUT_AGREEMENT_NOTES)
        elif reason == "other":
            note = rng.choice(phrases.OTHER_REASON_NOTES)
        lid = self._id()
        obs = build_grouping(
            GroupingDecision(
                local_id=lid,
                source_ods=TRUST_ODS,
                assigner_ods=TRUST_ODS,
                grouping=g,
                subject=pat,
                episode=eoc,
                agreed_at=agreed,
                recorded_at=agreed + timedelta(minutes=rng.randint(5, 120)),
                clinician=lead,
                participants=tuple(participants),
                yp_involvement=yp,
                family_involvement=family,
                not_involved_reason=rng.choice(phrases.NOT_INVOLVED_REASONS) if yp == "not-involved" else None,
                previous=prev,
                change_reason=reason,
                method=method,
                note=note,
                note_author=lead_practitioner,
                yp_words=rng.choice(phrases.YP_WORDS) if yp != "not-involved" and n == 0 else None,
            ),
            now=self.now,
        )
        informants = tuple(p for p in participants if p.startswith(("Patient/", "RelatedPerson/")))
        return self._emit(obs, ci, "grouping", lid, informants), informants

    def _goals(self, start_ci, contacts, pat, parent, eoc, age, end):
        rng = self.rng
        setter = parent if parent and age < 10 else pat
        n_goals = rng.choices((1, 2, 3), weights=(25, 35, 40))[0]
        descriptions = rng.sample(phrases.GOALS, n_goals)
        rated_at = contacts[start_ci:]
        for slot, words in enumerate(descriptions, start=1):
            kind = rng.choices(("improve", "same", "worse"), weights=(55, 33, 12))[0]
            if kind == "worse":
                first = rng.randint(4, 8)
                delta = -rng.randint(3, 6)
            else:
                first = rng.randint(0, 5)
                delta = rng.randint(3, 7) if kind == "improve" else rng.randint(-2, 2)
            last = max(0, min(10, first + delta))
            m = len(rated_at)
            scores = []
            for j in range(m):
                if j == 0:
                    s = first
                elif j == m - 1:
                    s = last
                else:
                    s = round(first + (last - first) * j / (m - 1)) + rng.choice((-1, 0, 0, 1))
                scores.append(max(0, min(10, s)))
            goal_lid = self._id()
            goal_in = GoalInput(
                local_id=goal_lid,
                source_ods=TRUST_ODS,
                assigner_ods=TRUST_ODS,
                slot=slot,
                description=words,
                subject=pat,
                start_date=rated_at[0].date(),
                expressed_by=setter,
                acceptance=(GoalAcceptance(individual=setter, status="agree"),),
                achievement_status="in-progress"
                if m < 2
                else ("improving" if last > first else "worsening" if last < first else "no-change"),
            )
            if end is not None:
                achieved = last >= 7 and last - first >= 3
                goal_in = close_goal(
                    goal_in,
                    "achieved" if achieved else "not-achieved",
                    end,
                    reason="Goal met" if achieved else "Help ended before the goal was met",
                )
            goal = build_goal(goal_in)
            goal_ref = self._emit(goal, start_ci, "gbo-goal", goal_lid)
            for j, (when, s) in enumerate(zip(rated_at, scores)):
                score_lid = self._id()
                self._emit(
                    build_gbo_score(
                        GoalScoreInput(
                            local_id=score_lid,
                            source_ods=TRUST_ODS,
                            assigner_ods=TRUST_ODS,
                            goal=goal_ref,
                            slot=slot,
                            score=s,
                            rater=setter,
                            subject=pat,
                            episode=eoc,
                            effective=when + timedelta(minutes=50),
                            goal_start_date=rated_at[0].date(),
                        ),
                        now=self.now,
                    ),
                    start_ci + j,
                    "gbo-score",
                    score_lid,
                )

    def _safety_plan(self, ci, agreed, pat, parent, eoc, lead, school_org, school_role, grouping_ref, end, informants):
        rng = self.rng
        agencies = [school_org]
        team_roles = [school_role]
        if rng.random() < 0.6:
            agencies.append(self.d.social_care)
            team_roles.append(rng.choice(self.d.roles["social-care"]))
        if rng.random() < 0.25:
            agencies.append(self.d.youth_justice)
            team_roles.append(rng.choice(self.d.roles["youth-justice"]))
        if rng.random() < 0.3:
            vol = rng.choice(self.d.voluntary)
            agencies.append(vol)
            team_roles.append(next(r for r in self.d.roles["voluntary-sector"] if self.d.org_of_role[r] == vol))
        members = [
            CareTeamMember(member=pat, role="Young person"),
            CareTeamMember(member=lead, role="Lead professional"),
        ]
        if parent:
            members.insert(1, CareTeamMember(member=parent, role="Parent or carer"))
        members += [CareTeamMember(member=r, role="Agency worker") for r in team_roles]
        team_lid = self._id()
        team = self._emit(
            build_care_team(
                CareTeamInput(
                    local_id=team_lid,
                    source_ods=TRUST_ODS,
                    subject=pat,
                    episode=eoc,
                    members=tuple(members),
                    name="Multi-agency team",
                    start=agreed.date(),
                    managing_organization=self.d.trust,
                    status="inactive" if end else "active",
                )
            ),
            ci,
            "care-team",
            team_lid,
        )

        sections = [
            "warning-signs",
            "professionals-agencies",
            *rng.sample(
                [
                    "internal-coping",
                    "social-distraction",
                    "people-to-ask",
                    "safe-environment",
                    "reasons-for-living",
                    "agency-actions",
                ],
                rng.randint(2, 5),
            ),
        ]
        items = []
        for section in sorted(sections, key=list(phrases.SAFETY_ITEMS).index):
            if section == "professionals-agencies":
                who = (self.d.services["crisis-line"], lead)
            elif section in ("people-to-ask", "safe-environment") and parent:
                who = (parent,)
            elif section == "agency-actions":
                who = tuple(team_roles)
            else:
                who = (pat,)
            items.append(
                SafetyPlanItem(section=section, text=rng.choice(phrases.SAFETY_ITEMS[section]), performer_refs=who)
            )
        created = agreed + timedelta(minutes=rng.randint(20, 40))
        yp_in = pat in informants or rng.random() < 0.5
        contributors = ([pat] if yp_in else []) + ([parent] if parent else []) + team_roles
        plan_lid = self._id()
        plan = self._emit(
            build_safety_plan(
                SafetyPlanInput(
                    local_id=plan_lid,
                    source_ods=TRUST_ODS,
                    assigner_ods=TRUST_ODS,
                    subject=pat,
                    start_date=agreed.date(),
                    review_date=agreed.date() + timedelta(days=90),
                    created=created,
                    author=lead,
                    items=tuple(items),
                    status="completed" if end else "active",
                    contributors=tuple(contributors),
                    care_team=team,
                    supporting_info=(grouping_ref,),
                    episode=eoc,
                    note=None
                    if yp_in
                    else "Written with the family and agencies; to go through with the young person when they are ready.",
                ),
                now=self.now,
            ),
            ci,
            "safety-plan",
            plan_lid,
            informants,
        )

        if rng.random() < 0.85:
            performer = pat if (parent is None or rng.random() < 0.8) else parent
            consent_lid = self._id()
            consent_in = ConsentInput(
                local_id=consent_lid,
                source_ods=TRUST_ODS,
                assigner_ods=TRUST_ODS,
                subject=pat,
                performer=(performer,),
                agencies=tuple(agencies),
                custodian=self.d.trust,
                plan=plan,
                date_time=created + timedelta(minutes=5),
                start_date=agreed.date(),
                end_date=agreed.date() + timedelta(days=365),
            )
            if end and rng.random() < 0.2:
                consent_in = withdraw_all(consent_in)
            self._emit(build_consent(consent_in, now=self.now), ci, "sharing-consent", consent_lid)

        flag_lid = self._id()
        cleared = max(datetime.combine(end, time(17), UTC), created + timedelta(hours=1)) if end else None
        self._emit(
            build_risk_flag(
                RiskFlagInput(
                    local_id=flag_lid,
                    source_ods=TRUST_ODS,
                    subject=pat,
                    author=lead,
                    start=created,
                    end=cleared,
                    status="inactive" if end else "active",
                ),
                now=self.now,
            ),
            ci,
            "flag",
            flag_lid,
        )

    def _signpost_or_refer(self, ci, agreed, g, pat, eoc, lead, grouping_ref, finished):
        rng = self.rng
        codes = self.d.serving.get(g, [])
        if g in ("thriving", "getting-advice"):
            if rng.random() >= 0.8:
                return
            for code in rng.sample(codes, min(len(codes), rng.randint(1, 2))):
                lid = self._id()
                self._emit(
                    build_signposting(
                        SignpostInput(
                            local_id=lid,
                            source_ods=TRUST_ODS,
                            assigner_ods=TRUST_ODS,
                            kind="signposting",
                            offer=Coded(OFFER_SYSTEM, code, display(OFFER_SYSTEM, code)),
                            subject=pat,
                            episode=eoc,
                            authored_on=agreed + timedelta(minutes=10),
                            requester=lead,
                            performer=self.d.services[code],
                            reason=grouping_ref,
                            status="completed" if finished else "active",
                        ),
                        now=self.now,
                    ),
                    ci,
                    "signposting",
                    lid,
                )
            return
        if rng.random() >= 0.5:
            return
        code = rng.choice(codes)
        service = self.d.services[code]
        sr_lid = self._id()
        authored = agreed + timedelta(minutes=15)
        sr = self._emit(
            build_signposting(
                SignpostInput(
                    local_id=sr_lid,
                    source_ods=TRUST_ODS,
                    assigner_ods=TRUST_ODS,
                    kind="referral",
                    offer=Coded(OFFER_SYSTEM, code, display(OFFER_SYSTEM, code)),
                    subject=pat,
                    episode=eoc,
                    authored_on=authored,
                    requester=lead,
                    performer=service,
                    reason=grouping_ref,
                    status="completed" if finished else "active",
                ),
                now=self.now,
            ),
            ci,
            "signposting",
            sr_lid,
        )
        status = rng.choices(
            ("completed", "accepted", "in-progress", "rejected", "requested"), weights=(45, 20, 15, 10, 10)
        )[0]
        modified = None
        if status != "requested":
            modified = min(authored + timedelta(days=rng.randint(1, 20)), self.now - timedelta(hours=1))
        task_lid = self._id()
        self._emit(
            build_referral_task(
                ReferralTaskInput(
                    local_id=task_lid,
                    source_ods=TRUST_ODS,
                    assigner_ods=TRUST_ODS,
                    service_request=sr,
                    subject=pat,
                    requester=lead,
                    authored_on=authored,
                    owner=service,
                    status=status,
                    status_reason=rng.choice(phrases.REJECTED_REASONS) if status == "rejected" else None,
                    last_modified=modified,
                ),
                now=self.now,
            ),
            ci,
            "referral-task",
            task_lid,
        )

    def _provenances(self, contacts, lead, pat):
        for ci in sorted(self.saves):
            save = self.saves[ci]
            self.out.append(
                build_provenance(
                    ProvenanceInput(
                        outbox_row_id=f"{self.index}-{ci}",
                        targets=tuple(save.targets),
                        recorded=contacts[min(ci, len(contacts) - 1)] + timedelta(hours=3),
                        activity="CREATE",
                        author=lead,
                        on_behalf_of=self.d.trust,
                        assembler=DEVICE_REF,
                        sources=tuple(save.sources),
                        informants=tuple(save.informants),
                        source_ods=TRUST_ODS,
                    ),
                    now=self.now,
                )
            )
