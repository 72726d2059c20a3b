"""Ground truth counted from the resources as they are written (never from the generator's plans).

Reports are tested against these numbers, so they are derived the way a report would derive them:
groupings from the grouping Observations (value code, effective, derivedFrom), goal progress from
the GBO score Observations (focus, performer, effective, valueInteger), episode state from the
EpisodeOfCare. Resources arrive patient by patient; per-patient state is dropped at
:meth:`GroundTruth.end_patient`, so memory stays flat however large the population.

Definitions (also written into ``ground_truth.json`` under ``definitions``):

- ``groupings.current``: per episode, the grouping of the latest grouping Observation (by effective).
- ``groupings.ever``: young people with at least one grouping Observation of that grouping.
- ``transitions[from][to]``: each grouping Observation with ``derivedFrom`` counts one pair (previous
  grouping -> this grouping); ``from == to`` is a review that kept the grouping.
- ``gbo``: per goal and rater, first = earliest score, last = latest score; goals with at least two
  scores are paired; change = last - first; >= +3 reliable improvement, <= -3 reliable deterioration,
  otherwise no reliable change. ``gbo.paired_closed_episodes`` counts only scores in finished episodes
  (the NHS England basis: closed referrals).
- ``in_date.safety_plans``: active safety plans (CarePlan) whose period (start to review date)
  covers the as-of day; after the review date a plan is out of date.
- ``in_date.consents``: active permit Consents whose provision period covers the as-of day (what an
  agency view needs to show a shared plan on that day).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, date, datetime, time

from .. import canonical

_GBO_CODES = {code for code, _ in canonical.GBO_SCORE_CODES.values()}
DEFINITIONS = {
    "groupings.current": "per episode, the grouping of the latest grouping Observation by effective",
    "groupings.ever": "young people with at least one grouping Observation of that grouping",
    "groupings.decisions": "grouping Observations per grouping",
    "transitions": "transitions[from][to]: one per grouping Observation with derivedFrom (previous -> this); from == to is a review that kept the grouping",
    "gbo": "per goal (focus) and rater: first = earliest, last = latest score; paired when >= 2 scores; change >= +3 reliable improvement, <= -3 reliable deterioration, else no reliable change",
    "gbo.paired_closed_episodes": "as gbo.paired, counting only scores whose episode is finished",
    "in_date.safety_plans": "active safety plans (CarePlan) whose period start <= as_of <= period end (the review date)",
    "in_date.consents": "active permit Consents whose provision.period start <= as_of <= end (no end: open)",
    "first_contact_to_first_grouping_days": "per episode with a grouping: days from EpisodeOfCare.period.start to the earliest grouping effective date",
    "involvement": "grouping Observations by the young person's / the family's involvement component code (not-recorded when absent)",
    "risk_support": "episodes whose latest grouping is getting-risk-support; of those, the young person has an active safety plan in date on as_of; and such a plan is named by an active permit Consent in date on as_of",
}


def _effective(resource: dict) -> str:
    return resource.get("effectiveDateTime", "")


def _when(text: str) -> datetime:
    """An instant to order by; a bare date counts as midnight UTC."""
    if "T" in text:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    return datetime.combine(date.fromisoformat(text), time(0), UTC)


def _episode_of(resource: dict) -> str | None:
    for ext in resource.get("extension", []):
        if ext.get("url") == canonical.EXT_EPISODE:
            return ext["valueReference"]["reference"]
    return None


def _covers(period: dict | None, day: str) -> bool:
    """Whether a FHIR period covers ``day`` (ISO date), comparing by calendar day: in date on the
    end day itself, as the app treats a review date or a consent's end date."""
    period = period or {}
    start, end = period.get("start"), period.get("end")
    return (start is None or start[:10] <= day) and (end is None or day <= end[:10])


def classify(change: int) -> str:
    if change >= canonical.GBO_RELIABLE_CHANGE:
        return "reliable_improvement"
    if change <= -canonical.GBO_RELIABLE_CHANGE:
        return "reliable_deterioration"
    return "no_reliable_change"


class GroundTruth:
    """Streaming tally. Call :meth:`observe` for every resource written, :meth:`end_patient` after each
    patient's resources, :meth:`as_dict` at the end."""

    def __init__(self, as_of: date | None = None) -> None:
        #: The day the in-date counts are taken (None: not counted).
        self.as_of = as_of.isoformat() if as_of is not None else None
        self.plans_in_date = 0
        self.consents_in_date = 0
        self.resources: Counter[str] = Counter()
        self.patients = 0
        self.decisions: Counter[str] = Counter()
        self.current: Counter[str] = Counter()
        self.ever: Counter[str] = Counter()
        self.transitions: dict[str, Counter[str]] = defaultdict(Counter)
        self.change_reasons: Counter[str] = Counter()
        self.goals = 0
        self.paired: Counter[str] = Counter()
        self.paired_closed: Counter[str] = Counter()
        self.episodes: Counter[str] = Counter()
        self.plans: Counter[str] = Counter()
        self.consents: Counter[str] = Counter()
        self.flags: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()
        self.tasks: Counter[str] = Counter()
        self.first_grouping_days = 0
        self.first_grouping_episodes = 0
        self.involvement: dict[str, Counter[str]] = {"young-person": Counter(), "family": Counter()}
        self.risk_support: Counter[str] = Counter()
        self._reset()

    def _reset(self) -> None:
        self._groupings: dict[str, dict] = {}  # Observation/id -> facts
        self._scores: dict[tuple[str, str], list[tuple[str, int, str | None]]] = defaultdict(list)
        self._episodes: dict[str, dict] = {}
        self._plans_in_date: set[str] = set()  # CarePlan/id of active plans in date on as_of
        self._shared_plans: set[str] = set()  # CarePlan/id named by an active permit Consent in date

    # --- per resource ----------------------------------------------------------------------
    def observe(self, r: dict) -> None:
        rt = r["resourceType"]
        self.resources[rt] += 1
        if rt == "Patient":
            self.patients += 1
        elif rt == "Observation":
            codes = {(c.get("system"), c.get("code")) for c in r.get("code", {}).get("coding", [])}
            if r.get("status") == "entered-in-error":
                return
            if (canonical.CS_CONCEPTS, "thrive-grouping") in codes:
                value = next(
                    c["code"] for c in r["valueCodeableConcept"]["coding"] if c["system"] == canonical.CS_GROUPING
                )
                reason = None
                involvement = {"young-person": "not-recorded", "family": "not-recorded"}
                for comp in r.get("component", []):
                    ccode = comp["code"]["coding"][0]["code"]
                    if ccode == "grouping-change-reason":
                        reason = comp["valueCodeableConcept"]["coding"][0]["code"]
                    elif ccode == "young-person-involvement":
                        involvement["young-person"] = comp["valueCodeableConcept"]["coding"][0]["code"]
                    elif ccode == "family-involvement":
                        involvement["family"] = comp["valueCodeableConcept"]["coding"][0]["code"]
                for who, code in involvement.items():
                    self.involvement[who][code] += 1
                self._groupings[f"Observation/{r['id']}"] = {
                    "subject": r["subject"]["reference"],
                    "episode": _episode_of(r),
                    "code": value,
                    "effective": _effective(r),
                    "previous": r["derivedFrom"][0]["reference"] if r.get("derivedFrom") else None,
                    "reason": reason,
                }
            elif any(s == canonical.SNOMED and c in _GBO_CODES for s, c in codes):
                key = (r["focus"][0]["reference"], r["performer"][0]["reference"])
                self._scores[key].append((_effective(r), r["valueInteger"], _episode_of(r)))
        elif rt == "Goal":
            self.goals += 1
        elif rt == "EpisodeOfCare":
            self.episodes[r["status"]] += 1
            self._episodes[f"EpisodeOfCare/{r['id']}"] = {"status": r["status"], "start": r["period"]["start"]}
        elif rt == "CarePlan":
            self.plans[r["status"]] += 1
            if self.as_of and r["status"] == "active" and _covers(r.get("period"), self.as_of):
                self.plans_in_date += 1
                self._plans_in_date.add(f"CarePlan/{r['id']}")
        elif rt == "Consent":
            self.consents[r["status"]] += 1
            provision = r.get("provision") or {}
            if (
                self.as_of
                and r["status"] == "active"
                and provision.get("type") == "permit"
                and _covers(provision.get("period"), self.as_of)
            ):
                self.consents_in_date += 1
                for d in provision.get("data", []):
                    self._shared_plans.add(d["reference"]["reference"])
        elif rt == "Flag":
            self.flags[r["status"]] += 1
        elif rt == "ServiceRequest":
            self.requests[r["category"][0]["coding"][0]["code"]] += 1
        elif rt == "Task":
            self.tasks[r["status"]] += 1

    # --- per patient -----------------------------------------------------------------------
    def end_patient(self) -> None:
        ever: set[tuple[str, str]] = set()
        latest: dict[str, tuple[datetime, str]] = {}
        earliest: dict[str, datetime] = {}
        for ref, g in self._groupings.items():
            self.decisions[g["code"]] += 1
            ever.add((g["subject"], g["code"]))
            when = _when(g["effective"])
            ep = g["episode"]
            if ep not in latest or when > latest[ep][0]:
                latest[ep] = (when, g["code"])
            if ep not in earliest or when < earliest[ep]:
                earliest[ep] = when
            if g["previous"] is not None:
                prev = self._groupings.get(g["previous"])
                if prev is None:
                    raise ValueError(f"{ref} derives from {g['previous']}, which was not written for this patient")
                self.transitions[prev["code"]][g["code"]] += 1
                if g["reason"]:
                    self.change_reasons[g["reason"]] += 1
        for _, code in latest.values():
            self.current[code] += 1
            if code == "getting-risk-support":
                self.risk_support["in_risk_support"] += 1
                if self._plans_in_date:
                    self.risk_support["with_in_date_plan"] += 1
                if self._plans_in_date & self._shared_plans:
                    self.risk_support["with_shared_in_date_plan"] += 1
        for _, code in ever:
            self.ever[code] += 1
        for ep, when in earliest.items():
            facts = self._episodes.get(ep)
            if facts is not None:
                self.first_grouping_days += (when.date() - date.fromisoformat(facts["start"])).days
                self.first_grouping_episodes += 1
        for scores in self._scores.values():
            if len(scores) < 2:
                continue
            ordered = sorted(scores, key=lambda s: _when(s[0]))
            outcome = classify(ordered[-1][1] - ordered[0][1])
            self.paired[outcome] += 1
            if all(s[2] is not None and self._episodes.get(s[2], {}).get("status") == "finished" for s in ordered):
                self.paired_closed[outcome] += 1
        self._reset()

    # --- result ----------------------------------------------------------------------------
    def as_dict(self) -> dict:
        groupings = canonical.GROUPINGS

        def per_grouping(counter: Counter[str]) -> dict[str, int]:
            return {g: counter.get(g, 0) for g in groupings}

        def outcomes(counter: Counter[str]) -> dict[str, int]:
            keys = ("reliable_improvement", "no_reliable_change", "reliable_deterioration")
            return {"goals": sum(counter.values()), **{k: counter.get(k, 0) for k in keys}}

        changed = sum(n for f, row in self.transitions.items() for t, n in row.items() if f != t)
        kept = sum(row.get(f, 0) for f, row in self.transitions.items())
        return {
            "patients": self.patients,
            "resources": dict(sorted(self.resources.items())),
            "resources_total": sum(self.resources.values()),
            "groupings": {
                "decisions": per_grouping(self.decisions),
                "current": per_grouping(self.current),
                "ever": per_grouping(self.ever),
            },
            "transitions": {f: {t: self.transitions.get(f, Counter()).get(t, 0) for t in groupings} for f in groupings},
            "transitions_changed": changed,
            "transitions_kept": kept,
            "change_reasons": dict(sorted(self.change_reasons.items())),
            "gbo": {
                "reliable_change_threshold": canonical.GBO_RELIABLE_CHANGE,
                "goals": self.goals,
                "paired": outcomes(self.paired),
                "paired_closed_episodes": outcomes(self.paired_closed),
            },
            "episodes": dict(sorted(self.episodes.items())),
            "safety_plans": dict(sorted(self.plans.items())),
            "consents": dict(sorted(self.consents.items())),
            "risk_flags": dict(sorted(self.flags.items())),
            "in_date": {"as_of": self.as_of, "safety_plans": self.plans_in_date, "consents": self.consents_in_date},
            "service_requests": dict(sorted(self.requests.items())),
            "referral_tasks": dict(sorted(self.tasks.items())),
            "first_contact_to_first_grouping_days": {
                "episodes": self.first_grouping_episodes,
                "total_days": self.first_grouping_days,
            },
            "involvement": {who: dict(sorted(c.items())) for who, c in self.involvement.items()},
            "risk_support": {
                k: self.risk_support.get(k, 0)
                for k in ("in_risk_support", "with_in_date_plan", "with_shared_in_date_plan")
            },
            "definitions": DEFINITIONS,
        }
