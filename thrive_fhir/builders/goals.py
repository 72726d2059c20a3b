"""Goals Based Outcomes: goals (profile thrive-gbo-goal) and their 0-10 scores (thrive-gbo-score).

A goal's slot (1, 2 or 3) fixes the SNOMED CT score code used for the goal and every rating of
it; NHS England pairs first and last scores per code per referral, so a slot is never reused for a
different goal in one episode (:func:`check_goal_slots`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from .. import canonical
from . import _codes
from ._common import (
    BuildError,
    Record,
    check_code,
    check_date,
    check_datetime,
    check_ref,
    check_text,
    concept,
    episode_extension,
    fhir_date,
    fhir_datetime,
    now_utc,
    ref,
    reorder,
    start_resource,
)

MAX_OPEN_GOALS = 3
RATER_TYPES = ("Patient", "RelatedPerson", "Practitioner", "PractitionerRole")


@dataclass(frozen=True, kw_only=True)
class GoalAcceptance:
    """Whether someone agrees with the goal (R4 goal-acceptance extension)."""

    individual: str
    status: str = "agree"


GoalOutcome = Literal["achieved", "not-achieved", "ended"]


@dataclass(frozen=True, kw_only=True)
class GoalClosing:
    """How a goal ended: ``achieved``, ``not-achieved`` (completed either way) or ``ended`` (stopped early)."""

    outcome: GoalOutcome
    on: date
    reason: str | None = None
    achievement: str | None = None  # for "ended": the last known progress, if any


@dataclass(frozen=True, kw_only=True)
class GoalInput(Record):
    """A GBO goal. ``description`` is the young person's own words, stored exactly as written."""

    slot: int
    description: str
    subject: str
    start_date: date
    expressed_by: str
    acceptance: tuple[GoalAcceptance, ...] = ()
    lifecycle_status: str = "active"
    achievement_status: str | None = None
    status_date: date | None = None
    status_reason: str | None = None
    note: str | None = None
    closing: GoalClosing | None = None


@dataclass(frozen=True, kw_only=True)
class GoalScoreInput(Record):
    """One 0-10 rating of one goal at one contact. ``effective`` is a date or an aware datetime."""

    goal: str
    slot: int
    score: int
    rater: str
    subject: str
    episode: str
    effective: date | datetime
    encounter: str | None = None
    goal_start_date: date | None = None  # when known, the rating must not be before the goal was set
    status: str = "final"


def check_slot(value: object, field: str = "slot") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value not in canonical.GBO_SCORE_CODES:
        raise BuildError(field, "Choose goal 1, 2 or 3.")
    return value


def slot_concept(slot: int) -> dict:
    code, display = canonical.GBO_SCORE_CODES[slot]
    return concept(canonical.SNOMED, code, display)


def close_goal(
    goal: GoalInput, outcome: GoalOutcome, on: date, reason: str | None = None, achievement: str | None = None
) -> GoalInput:
    """The same goal, closed: the new version to build and send with ``If-Match``."""
    return dataclasses.replace(
        goal, closing=GoalClosing(outcome=outcome, on=on, reason=reason, achievement=achievement)
    )


_CLOSING = {
    # outcome -> (lifecycleStatus, achievementStatus)
    "achieved": ("completed", "achieved"),
    "not-achieved": ("completed", "not-achieved"),
    "ended": ("cancelled", None),
}


def build_goal(g: GoalInput) -> dict:
    """Build the Goal; raises :class:`BuildError` naming the field at fault."""
    slot = check_slot(g.slot)
    check_text(g.description, "description", "the goal in the young person's own words")
    subject = check_ref(g.subject, "subject", ("Patient",), "the young person")
    start = check_date(g.start_date, "start_date", "the date the goal was set")
    expressed_by = check_ref(g.expressed_by, "expressed_by", ("Patient", "RelatedPerson"), "who set the goal")
    if expressed_by.startswith("Patient/") and expressed_by != subject:
        raise BuildError("expressed_by", "A goal can only be set by the young person it is for or a related person.")
    lifecycle = check_code(g.lifecycle_status, "lifecycle_status", _codes.GOAL_LIFECYCLE, "the goal's status")
    achievement = (
        check_code(g.achievement_status, "achievement_status", _codes.GOAL_ACHIEVEMENT, "progress towards the goal")
        if g.achievement_status is not None
        else None
    )
    status_date = check_date(g.status_date, "status_date", "the date the status changed") if g.status_date else None
    status_reason = check_text(g.status_reason, "status_reason", "why the status changed", required=False)
    if g.closing is not None:
        c = g.closing
        outcome = check_code(c.outcome, "closing", tuple(_CLOSING), "how the goal ended")
        lifecycle, fixed = _CLOSING[outcome]
        achievement = fixed or (
            check_code(c.achievement, "closing", _codes.GOAL_ACHIEVEMENT, "progress towards the goal")
            if c.achievement
            else achievement
        )
        status_date = check_date(c.on, "closing", "the date the goal ended")
        status_reason = (
            check_text(c.reason, "closing", "why the goal ended", required=(outcome == "ended")) or status_reason
        )
    if status_date is not None and status_date < start:
        raise BuildError(
            "status_date" if g.closing is None else "closing", "A goal cannot end or change before it was set."
        )
    note = check_text(g.note, "note", "a note", required=False)

    goal = start_resource("Goal", "gbo-goal", g, canonical.PROFILE_GBO_GOAL)
    exts = []
    for i, a in enumerate(g.acceptance):
        who = check_ref(a.individual, f"acceptance[{i}]", ("Patient", "Practitioner", "RelatedPerson"), "who agreed")
        st = check_code(a.status, f"acceptance[{i}]", _codes.GOAL_ACCEPTANCE, "whether they agree")
        exts.append(
            {
                "url": canonical.EXT_GOAL_ACCEPTANCE,
                "extension": [{"url": "individual", "valueReference": ref(who)}, {"url": "status", "valueCode": st}],
            }
        )
    if exts:
        goal["extension"] = exts
    goal["lifecycleStatus"] = lifecycle
    if achievement:
        goal["achievementStatus"] = concept(_codes.GOAL_ACHIEVEMENT_SYSTEM, achievement)
    goal["category"] = [concept(canonical.CS_CONCEPTS, "gbo-goal")]
    goal["description"] = {"text": g.description}
    goal["subject"] = ref(subject)
    goal["startDate"] = fhir_date(start)
    goal["target"] = [{"measure": slot_concept(slot)}]
    if status_date:
        goal["statusDate"] = fhir_date(status_date)
    if status_reason:
        goal["statusReason"] = status_reason
    goal["expressedBy"] = ref(expressed_by)
    if note:
        goal["note"] = [{"text": note}]
    return reorder(goal, ("extension",))


def build_gbo_score(s: GoalScoreInput, *, now: datetime | None = None) -> dict:
    """Build the GBO score Observation; raises :class:`BuildError` naming the field at fault."""
    now = now or now_utc()
    if isinstance(s.score, bool) or not isinstance(s.score, int):
        raise BuildError("score", "Choose a whole-number score from 0 to 10.")
    if not 0 <= s.score <= 10:
        raise BuildError("score", "The score must be between 0 and 10.")
    slot = check_slot(s.slot)
    goal = check_ref(s.goal, "goal", ("Goal",), "the goal being rated")
    rater = check_ref(s.rater, "rater", RATER_TYPES, "who gave the score")
    subject = check_ref(s.subject, "subject", ("Patient",), "the young person")
    if rater.startswith("Patient/") and rater != subject:
        raise BuildError("rater", "Only the young person the goal is for can rate it as a patient.")
    episode = check_ref(s.episode, "episode", ("EpisodeOfCare",), "the episode of care")
    encounter = check_ref(s.encounter, "encounter", ("Encounter",), "the contact") if s.encounter else None
    status = check_code(s.status, "status", ("final", "amended", "corrected", "entered-in-error"), "a record status")
    if isinstance(s.effective, datetime):
        eff = check_datetime(s.effective, "effective", "when the goal was rated", not_after=now)
        eff_date, eff_text = eff.date(), fhir_datetime(eff)
    else:
        eff_date = check_date(s.effective, "effective", "when the goal was rated")
        if eff_date > now.date():
            raise BuildError("effective", "When the goal was rated cannot be in the future.")
        eff_text = fhir_date(eff_date)
    if s.goal_start_date is not None and eff_date < check_date(
        s.goal_start_date, "goal_start_date", "the date the goal was set"
    ):
        raise BuildError("effective", "A goal cannot be rated before it was set.")

    obs = start_resource("Observation", "gbo-score", s, canonical.PROFILE_GBO_SCORE)
    obs["extension"] = [episode_extension(episode)]
    obs["status"] = status
    obs["category"] = [concept(canonical.OBS_CATEGORY, "survey")]
    obs["code"] = slot_concept(slot)
    obs["subject"] = ref(subject)
    obs["focus"] = [ref(goal)]
    if encounter:
        obs["encounter"] = ref(encounter)
    obs["effectiveDateTime"] = eff_text
    obs["performer"] = [ref(rater)]
    obs["valueInteger"] = s.score
    return reorder(obs, ("extension",))


def _goal_facts(goal: GoalInput | dict) -> tuple[str, str, int | None, str]:
    """(local id or FHIR id, subject, slot, lifecycle) from an input or a built Goal."""
    if isinstance(goal, GoalInput):
        lifecycle = _CLOSING[goal.closing.outcome][0] if goal.closing else goal.lifecycle_status
        from ..ids import resource_id

        return resource_id("gbo-goal", goal.local_id), goal.subject, goal.slot, lifecycle
    codes = [c.get("code") for t in goal.get("target", []) for c in t.get("measure", {}).get("coding", [])]
    slot = next((s for s, (code, _) in canonical.GBO_SCORE_CODES.items() if code in codes), None)
    return goal.get("id", ""), goal.get("subject", {}).get("reference", ""), slot, goal.get("lifecycleStatus", "")


def check_goal_slots(new: GoalInput, episode_goals: Iterable[GoalInput | dict]) -> None:
    """Refuse a goal that would break the three-goal rules for this young person's episode.

    ``episode_goals`` are the goals already held for the same young person and episode (inputs or
    built Goals; the new goal's earlier versions are ignored). At most three goals may be open
    (proposed, accepted, active, on hold), and a slot is never reused for a different goal.
    """
    from ..ids import resource_id

    new_id = resource_id("gbo-goal", new.local_id)
    slot = check_slot(new.slot)
    open_count = 0
    used_slots = set()
    for other in episode_goals:
        oid, subject, oslot, lifecycle = _goal_facts(other)
        if oid == new_id or subject != new.subject or lifecycle == "entered-in-error":
            continue
        used_slots.add(oslot)
        if lifecycle in _codes.GOAL_OPEN:
            open_count += 1
    new_lifecycle = _CLOSING[new.closing.outcome][0] if new.closing else new.lifecycle_status
    if new_lifecycle in _codes.GOAL_OPEN and open_count >= MAX_OPEN_GOALS:
        raise BuildError("slot", "This young person already has three open goals; close one before adding another.")
    if slot in used_slots:
        raise BuildError(
            "slot", f"Goal {slot} has already been used for another goal in this episode; choose a free goal number."
        )
