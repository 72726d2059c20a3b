"""Signposting and referrals -> ServiceRequest (profile thrive-signposting) and, for referrals, a Task
(profile thrive-referral-task) that the receiving agency updates instead of the ServiceRequest.

Signposting is a ``proposal`` (the family chooses whether to go); a referral is an ``order``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .. import canonical
from ._common import (
    BuildError,
    Coded,
    Record,
    check_code,
    check_datetime,
    check_local_offer,
    check_ref,
    check_refs,
    check_text,
    coding,
    concept,
    episode_extension,
    fhir_datetime,
    now_utc,
    ref,
    reorder,
    start_resource,
)

REQUEST_STATUSES = ("draft", "active", "on-hold", "revoked", "completed", "entered-in-error")
TASK_STATUSES = (
    "draft",
    "requested",
    "received",
    "accepted",
    "rejected",
    "ready",
    "cancelled",
    "in-progress",
    "on-hold",
    "failed",
    "completed",
    "entered-in-error",
)
TASK_CODE_SYSTEM = "http://hl7.org/fhir/CodeSystem/task-code"
_INTENT = {"signposting": "proposal", "referral": "order"}


@dataclass(frozen=True, kw_only=True)
class SignpostInput(Record):
    """Signposting (``kind="signposting"``) or a referral (``kind="referral"``) to one local service.

    ``reason`` is the grouping in force (``Observation/<id>``); ``goals`` the goals this helps with.
    """

    kind: str
    offer: Coded
    subject: str
    episode: str
    authored_on: datetime
    requester: str
    performer: str
    reason: str
    goals: tuple[str, ...] = ()
    based_on: str | None = None
    note: str | None = None
    status: str = "active"
    replaces: str | None = None  # a referral made again: the earlier ServiceRequest it replaces


@dataclass(frozen=True, kw_only=True)
class ReferralTaskInput(Record):
    """The Task that tracks a referral: ``owner`` is the receiving Organization or HealthcareService."""

    service_request: str
    subject: str
    requester: str
    authored_on: datetime
    owner: str | None = None
    status: str = "requested"
    status_reason: str | None = None
    last_modified: datetime | None = None


def build_signposting(s: SignpostInput, *, now: datetime | None = None) -> dict:
    """Build the ServiceRequest; raises :class:`BuildError` naming the field at fault."""
    now = now or now_utc()
    kind = check_code(s.kind, "kind", tuple(_INTENT), "signposting or referral")
    offer = check_local_offer(s.offer, "offer")
    subject = check_ref(s.subject, "subject", ("Patient",), "the young person")
    episode = check_ref(s.episode, "episode", ("EpisodeOfCare",), "the episode of care")
    authored = check_datetime(s.authored_on, "authored_on", "when this was made", not_after=now)
    requester = check_ref(
        s.requester,
        "requester",
        ("PractitionerRole", "Practitioner", "Organization"),
        "who is signposting or referring",
    )
    performer = check_ref(s.performer, "performer", ("HealthcareService", "Organization"), "the service")
    reason = check_ref(s.reason, "reason", ("Observation",), "the grouping in force")
    goals = check_refs(s.goals, "goals", ("Goal",), "a goal this helps with")
    based_on = check_ref(s.based_on, "based_on", ("CarePlan",), "the support plan") if s.based_on else None
    note = check_text(s.note, "note", "a note", required=False)
    status = check_code(s.status, "status", REQUEST_STATUSES, "the request's status")
    replaces = check_ref(s.replaces, "replaces", ("ServiceRequest",), "the earlier referral") if s.replaces else None

    sr = start_resource("ServiceRequest", "signposting", s, canonical.PROFILE_SIGNPOSTING)
    sr["extension"] = [episode_extension(episode)] + [
        {"url": canonical.EXT_PERTAINS_TO_GOAL, "valueReference": ref(g)} for g in goals
    ]
    if based_on:
        sr["basedOn"] = [ref(based_on)]
    if replaces:
        sr["replaces"] = [ref(replaces)]
    sr["status"] = status
    sr["intent"] = _INTENT[kind]
    sr["category"] = [concept(canonical.CS_CONCEPTS, kind)]
    sr["code"] = concept(offer.system, offer.code, offer.display)
    sr["subject"] = ref(subject)
    sr["authoredOn"] = fhir_datetime(authored)
    sr["requester"] = ref(requester)
    sr["performer"] = [ref(performer)]
    sr["reasonReference"] = [ref(reason)]
    if note:
        sr["note"] = [{"text": note}]
    return reorder(sr, ("extension",))


def build_referral_task(t: ReferralTaskInput, *, now: datetime | None = None) -> dict:
    """Build the referral Task; raises :class:`BuildError` naming the field at fault."""
    now = now or now_utc()
    status = check_code(t.status, "status", TASK_STATUSES, "the referral's status")
    focus = check_ref(t.service_request, "service_request", ("ServiceRequest",), "the referral")
    subject = check_ref(t.subject, "subject", ("Patient",), "the young person")
    requester = check_ref(
        t.requester, "requester", ("PractitionerRole", "Practitioner", "Organization"), "who is referring"
    )
    authored = check_datetime(t.authored_on, "authored_on", "when the referral was made", not_after=now)
    owner = (
        check_ref(t.owner, "owner", ("Organization", "HealthcareService"), "the receiving service") if t.owner else None
    )
    if owner is None and status != "draft":
        raise BuildError("owner", "Choose the service receiving the referral.")
    reason = check_text(
        t.status_reason,
        "status_reason",
        "why the referral was turned down or cancelled",
        required=status in ("rejected", "cancelled"),
    )
    last_modified = None
    if t.last_modified is not None:
        last_modified = check_datetime(
            t.last_modified, "last_modified", "when the referral was last updated", not_after=now
        )
        if last_modified < authored:
            raise BuildError("last_modified", "A referral cannot be updated before it was made.")

    task = start_resource("Task", "referral-task", t, canonical.PROFILE_REFERRAL_TASK)
    task["status"] = status
    if reason:
        task["statusReason"] = {"text": reason}
    task["intent"] = "order"
    task["code"] = {"coding": [coding(TASK_CODE_SYSTEM, "fulfill")]}
    task["focus"] = ref(focus)
    task["for"] = ref(subject)
    task["authoredOn"] = fhir_datetime(authored)
    if last_modified:
        task["lastModified"] = fhir_datetime(last_modified)
    task["requester"] = ref(requester)
    if owner:
        task["owner"] = ref(owner)
    return task
