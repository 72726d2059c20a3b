"""The synthetic partnership: agencies, their staff and the local offer.

One CAMHS trust (with an ODS code), schools, children's social care, youth justice and voluntary
sector organisations (without ODS codes, so they get the project-local identifier), practitioners
with roles in each, and one HealthcareService per local-offer service, tagged with the groupings
it serves. Everything is invented.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date

from .. import canonical
from ..builders import (
    Coded,
    LocalOfferInput,
    OrganizationInput,
    PractitionerInput,
    PractitionerRoleInput,
    build_local_offer,
    build_organization,
    build_practitioner,
    build_practitioner_role,
)
from ..terminology import display
from .ids import local_id
from .names import FAMILY_NAMES, GIVEN_NAMES

#: The deploying organisation: the fictional trust of docs/design/fhir-model.md's examples.
TRUST_ODS = "RXX"
OFFER_SYSTEM = canonical.local_offer_cs("example")

#: local-offer code -> (agency kind providing it, groupings it serves)
OFFERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "online-support": ("voluntary-sector", ("getting-advice", "getting-help")),
    "single-point-of-access": ("camhs", ("getting-advice",)),
    "school-nursing": ("camhs", ("thriving", "getting-advice")),
    "self-help-peer-support": ("voluntary-sector", ("getting-advice",)),
    "community-activities": ("voluntary-sector", ("thriving", "getting-advice")),
    "outreach": ("voluntary-sector", ("getting-advice", "getting-help")),
    "mhst": ("camhs", ("getting-advice", "getting-help")),
    "childrens-wellbeing-practitioner": ("camhs", ("getting-help",)),
    "early-help": ("social-care", ("getting-advice", "getting-help")),
    "cyp-iapt-therapy": ("camhs", ("getting-help", "getting-more-help")),
    "specialist-camhs": ("camhs", ("getting-more-help",)),
    "personal-health-budget": ("camhs", ("getting-advice", "getting-more-help")),
    "ambit-multi-agency": ("camhs", ("getting-risk-support",)),
    "crisis-line": ("camhs", ("getting-risk-support",)),
}
_PHONES = {"crisis-line": "0808 157 0123"}  # fictional, as in docs/design/fhir-model.md

#: agency kind -> (role name, specialty) of the staff it has
ROLES = {
    "camhs": ("CAMHS clinician", "Child and adolescent mental health"),
    "mhst": ("Education mental health practitioner", "Mental Health Support Team"),
    "school": ("Pastoral lead", None),
    "social-care": ("Social worker", "Children's social care"),
    "youth-justice": ("Youth justice worker", None),
    "voluntary-sector": ("Youth worker", None),
}
SCHOOL_NAMES = ("Park", "Hill", "Riverside", "Meadow", "Castle", "Brook", "Oak", "Valley", "Forest", "Harbour")
SCHOOL_KINDS = ("Academy", "High School", "Primary School", "College")


@dataclass
class Directory:
    """References the patient stories draw on, plus the resources to write once."""

    trust: str = ""
    schools: list[str] = field(default_factory=list)
    social_care: str = ""
    youth_justice: str = ""
    voluntary: list[str] = field(default_factory=list)
    roles: dict[str, list[str]] = field(default_factory=dict)  # kind -> PractitionerRole refs
    practitioner_of_role: dict[str, str] = field(default_factory=dict)  # role ref -> Practitioner ref
    org_of_role: dict[str, str] = field(default_factory=dict)  # role ref -> Organization ref
    services: dict[str, str] = field(default_factory=dict)  # offer code -> HealthcareService ref
    service_org: dict[str, str] = field(default_factory=dict)  # HealthcareService ref -> Organization ref
    serving: dict[str, list[str]] = field(default_factory=dict)  # grouping -> offer codes
    resources: list[dict] = field(default_factory=list)


def _ref(resource: dict) -> str:
    return f"{resource['resourceType']}/{resource['id']}"


def build_directory(rng: random.Random, n_patients: int, staff_start: date = date(2020, 9, 1)) -> Directory:
    """Agencies scale gently with the population (about one school per 150 young people).

    ``staff_start`` is when every practitioner role began (before any referral of the timeline).
    """
    d = Directory()
    n_schools = max(3, min(400, n_patients // 150))
    n_voluntary = 2 if n_patients < 2000 else 4

    def org(name: str, kind: str, ods: str | None = None) -> str:
        res = build_organization(
            OrganizationInput(local_id=local_id(rng), name=name, agency_type=kind, ods_code=ods, source_ods=TRUST_ODS)
        )
        d.resources.append(res)
        return _ref(res)

    d.trust = org("Example Children and Young People's NHS Foundation Trust", "camhs", TRUST_ODS)
    used = set()
    for i in range(n_schools):
        name = f"{SCHOOL_NAMES[i % len(SCHOOL_NAMES)]} {SCHOOL_KINDS[(i // len(SCHOOL_NAMES)) % len(SCHOOL_KINDS)]}"
        if name in used:
            name = f"{name} {i // (len(SCHOOL_NAMES) * len(SCHOOL_KINDS)) + 1}"
        used.add(name)
        d.schools.append(org(name, "school"))
    d.social_care = org("Example Council Children's Social Care", "social-care")
    d.youth_justice = org("Example Youth Justice Service", "youth-justice")
    d.voluntary = [
        org(n, "voluntary-sector")
        for n in (
            "Example Young Minds Project",
            "Example Youth Trust",
            "Example Families Together",
            "Example Sports Foundation",
        )[:n_voluntary]
    ]

    def staff(kind: str, organisation: str, count: int) -> None:
        role_name, specialty = ROLES[kind]
        for _ in range(count):
            pr = build_practitioner(
                PractitionerInput(
                    local_id=local_id(rng),
                    family=rng.choice(FAMILY_NAMES),
                    given=(rng.choice(GIVEN_NAMES),),
                    source_ods=TRUST_ODS,
                )
            )
            prr = build_practitioner_role(
                PractitionerRoleInput(
                    local_id=local_id(rng),
                    practitioner=_ref(pr),
                    organization=organisation,
                    role=role_name,
                    specialty=specialty,
                    start=staff_start,
                    source_ods=TRUST_ODS,
                )
            )
            d.resources += [pr, prr]
            d.roles.setdefault(kind, []).append(_ref(prr))
            d.practitioner_of_role[_ref(prr)] = _ref(pr)
            d.org_of_role[_ref(prr)] = organisation

    scale = max(1, n_patients // 500)
    staff("camhs", d.trust, min(200, 4 * scale))
    staff("mhst", d.trust, min(100, 2 * scale))
    for school in d.schools:
        staff("school", school, 1)
    staff("social-care", d.social_care, min(100, 2 * scale))
    staff("youth-justice", d.youth_justice, min(50, 1 * scale))
    for v in d.voluntary:
        staff("voluntary-sector", v, 1)

    provider = {"camhs": [d.trust], "social-care": [d.social_care], "voluntary-sector": d.voluntary}
    for code, (kind, groupings) in OFFERS.items():
        org_ref = rng.choice(provider[kind])
        hs = build_local_offer(
            LocalOfferInput(
                local_id=local_id(rng),
                provided_by=org_ref,
                offer=Coded(OFFER_SYSTEM, code, display(OFFER_SYSTEM, code)),
                name=display(OFFER_SYSTEM, code) or code,
                groupings=groupings,
                phone=_PHONES.get(code),
                source_ods=TRUST_ODS,
            )
        )
        d.resources.append(hs)
        d.services[code] = _ref(hs)
        d.service_org[_ref(hs)] = org_ref
        for g in groupings:
            d.serving.setdefault(g, []).append(code)
    return d
