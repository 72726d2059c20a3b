"""Episode of care, care team, risk flag and the local-offer directory entry.

These carry the context the THRIVE records hang off: the episode a grouping and its scores belong
to, who is doing what (CareTeam), the "Getting Risk Support" banner (a Flag the app raises and
clears from the grouping and the safety plan, never the source of truth) and the services a site
offers per grouping (HealthcareService).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from .. import canonical
from ._common import (
    BuildError,
    Coded,
    Record,
    check_code,
    check_date,
    check_datetime,
    check_local_offer,
    check_ref,
    check_refs,
    check_text,
    concept,
    display_for,
    episode_extension,
    fhir_date,
    fhir_datetime,
    now_utc,
    ref,
    reorder,
    start_resource,
)
from .grouping import canonical_grouping

EPISODE_STATUSES = ("planned", "waitlist", "active", "onhold", "finished", "cancelled", "entered-in-error")
CARE_TEAM_STATUSES = ("proposed", "active", "suspended", "inactive", "entered-in-error")
FLAG_STATUSES = ("active", "inactive", "entered-in-error")
FLAG_CATEGORY = "http://terminology.hl7.org/CodeSystem/flag-category"


@dataclass(frozen=True, kw_only=True)
class EpisodeInput(Record):
    """One agency's involvement with a young person, from referral (or first contact) to discharge.

    ``referral_id`` is the agency's own referral id (for NHS providers the MHSDS service request
    id), given as ``(system, value)``; it is added as a second identifier.
    """

    subject: str
    managing_organization: str
    start: date
    end: date | None = None
    status: str = "active"
    referral_requests: tuple[str, ...] = ()
    teams: tuple[str, ...] = ()
    care_manager: str | None = None
    referral_id: tuple[str, str] | None = None
    type_text: str | None = None  # what kind of involvement, in words (e.g. "Community CAMHS referral")


@dataclass(frozen=True, kw_only=True)
class CareTeamMember:
    """A person or agency in the team, what they do, and (for a Practitioner) the organisation they act for."""

    member: str
    role: str
    on_behalf_of: str | None = None


@dataclass(frozen=True, kw_only=True)
class CareTeamInput(Record):
    subject: str
    members: tuple[CareTeamMember, ...]
    name: str | None = None
    status: str = "active"
    episode: str | None = None
    start: date | None = None
    managing_organization: str | None = None


@dataclass(frozen=True, kw_only=True)
class RiskFlagInput(Record):
    """The "Getting Risk Support: safety plan in place" banner for one young person."""

    subject: str
    author: str
    start: datetime
    end: datetime | None = None
    status: str = "active"


@dataclass(frozen=True, kw_only=True)
class LocalOfferInput(Record):
    """One service in a site's local offer and the groupings it serves."""

    provided_by: str
    offer: Coded
    name: str
    groupings: tuple[str, ...]
    phone: str | None = None
    url: str | None = None
    active: bool = True


def build_episode(e: EpisodeInput) -> dict:
    """Build the EpisodeOfCare; raises :class:`BuildError` naming the field at fault."""
    status = check_code(e.status, "status", EPISODE_STATUSES, "the episode's status")
    subject = check_ref(e.subject, "subject", ("Patient",), "the young person")
    org = check_ref(e.managing_organization, "managing_organization", ("Organization",), "the agency responsible")
    start = check_date(e.start, "start", "the date the episode started")
    end = check_date(e.end, "end", "the date the episode ended") if e.end is not None else None
    if end is not None and end < start:
        raise BuildError("end", "An episode cannot end before it started.")
    if status == "finished" and end is None:
        raise BuildError("end", "Enter the date the episode ended.")
    referrals = check_refs(e.referral_requests, "referral_requests", ("ServiceRequest",), "the referral")
    teams = check_refs(e.teams, "teams", ("CareTeam",), "a team")
    manager = (
        check_ref(e.care_manager, "care_manager", ("Practitioner", "PractitionerRole"), "the care manager")
        if e.care_manager
        else None
    )

    eoc = start_resource("EpisodeOfCare", "episode", e, canonical.PROFILE_EPISODE)
    if e.referral_id is not None:
        system, value = e.referral_id
        if not system or not value:
            raise BuildError("referral_id", "Give the referral id with its identifier system.")
        eoc["identifier"].append({"system": system, "value": value})
    eoc["status"] = status
    type_text = check_text(e.type_text, "type_text", "the kind of episode", required=False)
    if type_text:
        eoc["type"] = [{"text": type_text}]
    eoc["patient"] = ref(subject)
    eoc["managingOrganization"] = ref(org)
    eoc["period"] = {"start": fhir_date(start), **({"end": fhir_date(end)} if end else {})}
    if referrals:
        eoc["referralRequest"] = [ref(r) for r in referrals]
    if manager:
        eoc["careManager"] = ref(manager)
    if teams:
        eoc["team"] = [ref(t) for t in teams]
    return eoc


def build_care_team(c: CareTeamInput) -> dict:
    """Build the CareTeam; raises :class:`BuildError` naming the field at fault."""
    status = check_code(c.status, "status", CARE_TEAM_STATUSES, "the team's status")
    subject = check_ref(c.subject, "subject", ("Patient",), "the young person")
    episode = check_ref(c.episode, "episode", ("EpisodeOfCare",), "the episode of care") if c.episode else None
    start = check_date(c.start, "start", "the date the team started") if c.start is not None else None
    managing = (
        check_ref(c.managing_organization, "managing_organization", ("Organization",), "the lead agency")
        if c.managing_organization
        else None
    )
    name = check_text(c.name, "name", "a name for the team", required=False)
    if not isinstance(c.members, (list, tuple)) or not c.members:
        raise BuildError("members", "Add at least one person or agency to the team.")
    participants = []
    for i, m in enumerate(c.members):
        member = check_ref(
            m.member,
            f"members[{i}].member",
            ("Patient", "RelatedPerson", "Practitioner", "PractitionerRole", "Organization", "CareTeam"),
            "a team member",
        )
        role = check_text(m.role, f"members[{i}].role", "what this member does")
        p: dict = {"role": [{"text": role}], "member": ref(member)}
        if m.on_behalf_of:
            # R4 ctm-1: onBehalfOf only for a Practitioner (a PractitionerRole already names its organisation).
            if not member.startswith("Practitioner/"):
                raise BuildError(
                    f"members[{i}].on_behalf_of", "Only a practitioner can be recorded as acting for an organisation."
                )
            p["onBehalfOf"] = ref(
                check_ref(m.on_behalf_of, f"members[{i}].on_behalf_of", ("Organization",), "the organisation")
            )
        participants.append(p)

    team = start_resource("CareTeam", "care-team", c, canonical.PROFILE_CARE_TEAM)
    if episode:
        team["extension"] = [episode_extension(episode)]
    team["status"] = status
    if name:
        team["name"] = name
    team["subject"] = ref(subject)
    if start:
        team["period"] = {"start": fhir_date(start)}
    team["participant"] = participants
    if managing:
        team["managingOrganization"] = [ref(managing)]
    return reorder(team, ("extension",))


def build_risk_flag(f: RiskFlagInput, *, now: datetime | None = None) -> dict:
    """Build the risk banner Flag; raises :class:`BuildError` naming the field at fault."""
    now = now or now_utc()
    status = check_code(f.status, "status", FLAG_STATUSES, "the flag's status")
    subject = check_ref(f.subject, "subject", ("Patient",), "the young person")
    author = check_ref(
        f.author, "author", ("PractitionerRole", "Practitioner", "Organization", "Device"), "who raised the flag"
    )
    start = check_datetime(f.start, "start", "when the flag was raised", not_after=now)
    end = check_datetime(f.end, "end", "when the flag was cleared", not_after=now) if f.end is not None else None
    if end is not None and end < start:
        raise BuildError("end", "A flag cannot be cleared before it was raised.")
    if status == "inactive" and end is None:
        raise BuildError("end", "Enter when the flag was cleared.")

    flag = start_resource("Flag", "flag", f, canonical.PROFILE_RISK_FLAG)
    flag["status"] = status
    flag["category"] = [concept(FLAG_CATEGORY, "safety", "Safety")]
    flag["code"] = concept(
        canonical.CS_CONCEPTS, "risk-support-alert", display_for(canonical.CS_CONCEPTS, "risk-support-alert")
    )
    flag["subject"] = ref(subject)
    flag["period"] = {"start": fhir_datetime(start), **({"end": fhir_datetime(end)} if end else {})}
    flag["author"] = ref(author)
    return flag


def build_local_offer(o: LocalOfferInput) -> dict:
    """Build the local-offer HealthcareService; raises :class:`BuildError` naming the field at fault."""
    provided_by = check_ref(o.provided_by, "provided_by", ("Organization",), "the organisation providing the service")
    offer = check_local_offer(o.offer, "offer")
    name = check_text(o.name, "name", "the service's name")
    if not isinstance(o.groupings, (list, tuple)) or not o.groupings:
        raise BuildError("groupings", "Choose at least one grouping this service is for.")
    codes: list[str] = []
    for i, g in enumerate(o.groupings):
        code, _ = canonical_grouping(g, f"groupings[{i}]")
        if code not in codes:
            codes.append(code)
    if not isinstance(o.active, bool):
        raise BuildError("active", "Say whether the service is open.")
    telecom = []
    if o.phone is not None:
        telecom.append({"system": "phone", "value": check_text(o.phone, "phone", "a phone number")})
    if o.url is not None:
        url = check_text(o.url, "url", "a web address")
        if not url.startswith(("https://", "http://")):
            raise BuildError("url", "Enter a web address starting with https://.")
        telecom.append({"system": "url", "value": url})

    hs = start_resource("HealthcareService", "local-offer", o, canonical.PROFILE_LOCAL_OFFER)
    hs["active"] = o.active
    hs["providedBy"] = ref(provided_by)
    hs["type"] = [concept(offer.system, offer.code, offer.display)]
    hs["name"] = name
    if telecom:
        hs["telecom"] = telecom
    hs["characteristic"] = [concept(canonical.CS_GROUPING, c, display_for(canonical.CS_GROUPING, c)) for c in codes]
    return hs
