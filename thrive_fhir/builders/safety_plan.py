"""Co-produced safety plan -> CarePlan (profile thrive-safety-plan).

One activity per item, in the young person's words; crisis numbers belong in the item text too,
so the plan still reads in a crisis when a HealthcareService reference cannot be resolved.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime

from .. import canonical
from . import _codes
from ._common import (
    BuildError,
    Record,
    check_code,
    check_date,
    check_datetime,
    check_ref,
    check_refs,
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

CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
PLAN_STATUSES = ("draft", "active", "on-hold", "revoked", "completed", "entered-in-error")
#: CarePlan.status -> activity.detail.status (items follow the plan).
_ITEM_STATUS = {
    "draft": "not-started",
    "active": "in-progress",
    "on-hold": "on-hold",
    "revoked": "cancelled",
    "completed": "completed",
    "entered-in-error": "entered-in-error",
}
ITEM_PERFORMER_TYPES = (
    "Patient",
    "RelatedPerson",
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "HealthcareService",
    "CareTeam",
)
CONTRIBUTOR_TYPES = ("Patient", "RelatedPerson", "Practitioner", "PractitionerRole", "Organization", "CareTeam")
#: Sections an active plan cannot do without (thr-sp-2).
REQUIRED_ACTIVE_SECTIONS = ("warning-signs", "professionals-agencies")


def entry_id(section: str, text: str, performers: tuple[str, ...] | list[str], taken: set[str] | None = None) -> str:
    """The element id of an agency's plan item (``CarePlan.activity.id``, set on the items of "What
    each agency will do"): derived from what the item says
    and who does it, so the same item keeps its id across saves of the plan and a reworded one gets
    a new id. An agency's confirmation points at this id (``thrive_fhir.entry_confirmation``), so it
    lapses exactly when the words it confirmed change. ``taken``: ids already used in this plan (two
    identical items get ``-2``, ``-3``...)."""
    digest = hashlib.sha256("\x1f".join([section, text, *sorted(performers)]).encode()).hexdigest()[:16]
    found = f"entry-{digest}"
    n = 1
    while taken is not None and found in taken:
        n += 1
        found = f"entry-{digest}-{n}"
    if taken is not None:
        taken.add(found)
    return found


@dataclass(frozen=True, kw_only=True)
class SafetyPlanItem:
    """One line of the plan: its section, the young person's words and who acts on it."""

    section: str
    text: str
    performer_refs: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class SafetyPlanInput(Record):
    """A safety plan. ``review_date`` is the agreed review date (CarePlan.period.end; out of date after it)."""

    subject: str
    start_date: date
    review_date: date
    created: datetime
    author: str
    items: tuple[SafetyPlanItem, ...]
    status: str = "active"
    title: str = "My safety plan"
    contributors: tuple[str, ...] = ()
    care_team: str | None = None
    supporting_info: tuple[str, ...] = ()
    episode: str | None = None
    note: str | None = None


def build_safety_plan(p: SafetyPlanInput, *, now: datetime | None = None) -> dict:
    """Build the safety plan CarePlan; raises :class:`BuildError` naming the field at fault."""
    now = now or now_utc()
    status = check_code(p.status, "status", PLAN_STATUSES, "the plan's status")
    subject = check_ref(p.subject, "subject", ("Patient",), "the young person")
    start = check_date(p.start_date, "start_date", "the date the plan starts")
    review = check_date(p.review_date, "review_date", "the review date")
    if review < start:
        raise BuildError("review_date", "The review date cannot be before the plan starts.")
    created = check_datetime(p.created, "created", "when the plan was written", not_after=now)
    author = check_ref(p.author, "author", ("PractitionerRole", "Practitioner"), "the lead professional")
    contributors = check_refs(p.contributors, "contributors", CONTRIBUTOR_TYPES, "someone who helped write the plan")
    for i, c in enumerate(contributors):
        if c.startswith("Patient/") and c != subject:
            raise BuildError(f"contributors[{i}]", "Only the young person the plan is for can contribute as a patient.")
    care_team = check_ref(p.care_team, "care_team", ("CareTeam",), "the care team") if p.care_team else None
    supporting = check_refs(
        p.supporting_info, "supporting_info", ("Observation", "QuestionnaireResponse"), "supporting information"
    )
    episode = check_ref(p.episode, "episode", ("EpisodeOfCare",), "the episode of care") if p.episode else None
    title = check_text(p.title, "title", "a title for the plan")
    note = check_text(p.note, "note", "a note", required=False)
    if subject not in contributors and note is None:
        raise BuildError(
            "contributors",
            "Add the young person as a contributor, or say in a note why they did not help write the plan.",
        )
    if not isinstance(p.items, (list, tuple)) or not p.items:
        raise BuildError("items", "Add at least one item to the plan.")
    activities = []
    sections = set()
    taken: set[str] = set()
    for i, item in enumerate(p.items):
        if not isinstance(item, SafetyPlanItem):
            raise BuildError(f"items[{i}]", "Each item needs a section, its words and who does it.")
        section = check_code(item.section, f"items[{i}].section", _codes.SAFETY_PLAN_SECTIONS, "a section of the plan")
        text = check_text(item.text, f"items[{i}].text", "what this item says")
        performers = check_refs(
            item.performer_refs, f"items[{i}].performer_refs", ITEM_PERFORMER_TYPES, "who acts on this item"
        )
        sections.add(section)
        detail: dict = {
            "code": concept(canonical.CS_SAFETY_PLAN_SECTION, section),
            "status": _ITEM_STATUS[status],
            "description": text,
        }
        if performers:
            detail["performer"] = [ref(r) for r in performers]
        # Items an agency holds get an element id, which the agency's confirmation points at.
        ident = {"id": entry_id(section, text, performers, taken)} if section == "agency-actions" else {}
        activities.append({**ident, "detail": detail})
    if status == "active":
        for section in REQUIRED_ACTIVE_SECTIONS:
            if section not in sections:
                label = "warning signs" if section == "warning-signs" else "professionals and services to contact"
                raise BuildError("items", f"An active safety plan needs at least one item under {label}.")

    plan = start_resource("CarePlan", "safety-plan", p, canonical.PROFILE_SAFETY_PLAN)
    plan["meta"]["security"] = [{"system": CONFIDENTIALITY, "code": "R"}]
    if episode:
        plan["extension"] = [episode_extension(episode)]
    plan["status"] = status
    plan["intent"] = "plan"
    plan["category"] = [
        concept(canonical.SNOMED, *canonical.SNOMED_CRISIS_PLAN),
        concept(canonical.CS_CONCEPTS, "safety-plan"),
    ]
    plan["title"] = title
    plan["subject"] = ref(subject)
    plan["period"] = {"start": fhir_date(start), "end": fhir_date(review)}
    plan["created"] = fhir_datetime(created)
    plan["author"] = ref(author)
    if contributors:
        plan["contributor"] = [ref(c) for c in contributors]
    if care_team:
        plan["careTeam"] = [ref(care_team)]
    if supporting:
        plan["supportingInfo"] = [ref(s) for s in supporting]
    plan["activity"] = activities
    if note:
        plan["note"] = [{"text": note}]
    return reorder(plan, ("extension",))
