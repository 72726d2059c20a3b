"""People and organisations: Patient, Practitioner, PractitionerRole, Organization, RelatedPerson.

The app does not own these (docs/design/fhir-model.md section 4): in a real store they are found by national
identifier (NHS number, ODS code, SDS user id). The builders exist for seeding sandboxes, tests and
the synthetic population. Ids are derived from the local record id, and for organisations from
the public ODS code, never from an NHS number (an unkeyed hash of a ten-digit number is reversible).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from .. import canonical
from ..ids import deterministic_id, is_test_nhs_number, is_valid_nhs_number, resource_id
from ._common import (
    BuildError,
    Record,
    business_identifier,
    check_code,
    check_date,
    check_local_id,
    check_ods,
    check_ref,
    check_text,
    coding,
    concept,
    fhir_date,
)

GENDERS = ("male", "female", "other", "unknown")
NHS_VERIFICATION_CODES = ("01", "02", "03", "04", "05", "06", "07", "08")
ORG_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/organization-type"
ROLE_CODE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
#: Kinds of agency in a THRIVE partnership -> R4 organization-type code.
AGENCY_TYPES = {
    "camhs": ("prov", "Healthcare Provider"),
    "nhs-trust": ("prov", "Healthcare Provider"),
    "school": ("edu", "Educational Institute"),
    "social-care": ("govt", "Government"),
    "youth-justice": ("govt", "Government"),
    "local-authority": ("govt", "Government"),
    "voluntary-sector": ("cg", "Community Group"),
    "other": ("other", "Other"),
}


@dataclass(frozen=True, kw_only=True)
class PatientInput(Record):
    nhs_number: str
    family: str
    given: tuple[str, ...]
    birth_date: date
    gender: str = "unknown"
    nhs_number_verification: str = "01"
    #: Refuse live NHS numbers unless a deployment says otherwise: everything in this repository
    #: (tests, demo, synthetic data) must use the 999 test range.
    test_range_only: bool = True


@dataclass(frozen=True, kw_only=True)
class PractitionerInput(Record):
    family: str
    given: tuple[str, ...]
    sds_user_id: str | None = None
    prefix: str | None = None


@dataclass(frozen=True, kw_only=True)
class PractitionerRoleInput(Record):
    practitioner: str
    organization: str
    role: str
    start: date | None = None
    specialty: str | None = None
    sds_role_profile_id: str | None = None
    phone: str | None = None


@dataclass(frozen=True, kw_only=True)
class OrganizationInput(Record):
    """An agency. ``ods_code`` when it has one; many schools and charities do not, and then the
    project-local identifier ``{BASE}/Id/organization|<local_id>`` identifies it."""

    name: str
    agency_type: str
    ods_code: str | None = None
    phone: str | None = None


@dataclass(frozen=True, kw_only=True)
class RelatedPersonInput(Record):
    """A parent or carer. ``relationship`` is a v3-RoleCode (MTH mother, FTH father, PRN parent,
    GRPRN grandparent, FSTPRN foster parent, GUARD guardian, ...)."""

    patient: str
    relationship: str
    family: str
    given: tuple[str, ...]
    phone: str | None = None


def _name(family: str, given: tuple[str, ...], prefix: str | None = None) -> dict:
    family = check_text(family, "family", "a family name")
    if isinstance(given, str) or not isinstance(given, (list, tuple)):
        raise BuildError("given", "Give the given names as a list.")
    names = [check_text(g, f"given[{i}]", "a given name") for i, g in enumerate(given)]
    n: dict = {"use": "official", "family": family}
    if names:
        n["given"] = names
    if prefix:
        n["prefix"] = [prefix]
    return n


def _start(resource_type: str, kind: str, r: Record, identifiers: list[dict], id_: str | None = None) -> dict:
    local_id = check_local_id(r.local_id)
    # No meta.profile: these follow UK Core (NHS number slice and verification extension, ODS and
    # SDS identifiers), but UK Core cannot be loaded offline, so claiming it would only earn a
    # "profile not known" warning from every validator that reads the resource.
    meta: dict = {}
    if r.source_ods is not None:
        meta["source"] = canonical.source_uri(check_ods(r.source_ods, "source_ods"))
    resource: dict = {"resourceType": resource_type, "id": id_ or resource_id(kind, local_id)}
    if meta:
        resource["meta"] = meta
    resource["identifier"] = [*identifiers, business_identifier(kind, local_id, r)]
    return resource


def _phone(value: str | None, field: str = "phone") -> list[dict] | None:
    if value is None:
        return None
    return [{"system": "phone", "value": check_text(value, field, "a phone number"), "use": "work"}]


def build_patient(p: PatientInput) -> dict:
    """Build a UK Core Patient with a verified NHS number (modulus-11 checked)."""
    if not isinstance(p.nhs_number, str) or not is_valid_nhs_number(p.nhs_number):
        raise BuildError("nhs_number", "Enter a 10-digit NHS number with a valid check digit.")
    if p.test_range_only and not is_test_nhs_number(p.nhs_number):
        raise BuildError("nhs_number", "Only NHS test numbers (starting 999) can be used here.")
    verification = check_code(
        p.nhs_number_verification,
        "nhs_number_verification",
        NHS_VERIFICATION_CODES,
        "the NHS number verification status",
    )
    gender = check_code(p.gender, "gender", GENDERS, "a gender")
    birth = check_date(p.birth_date, "birth_date", "the date of birth")
    nhs = {
        "extension": [
            {
                "url": canonical.EXT_NHS_NUMBER_VERIFICATION,
                "valueCodeableConcept": concept(
                    canonical.CS_NHS_NUMBER_VERIFICATION,
                    verification,
                    "Number present and verified" if verification == "01" else None,
                ),
            }
        ],
        "system": canonical.NHS_NUMBER,
        "value": p.nhs_number,
    }
    patient = _start("Patient", "patient", p, [nhs])
    patient["name"] = [_name(p.family, p.given)]
    patient["gender"] = gender
    patient["birthDate"] = fhir_date(birth)
    return patient


def build_practitioner(p: PractitionerInput) -> dict:
    """Build a UK Core Practitioner (SDS user id for NHS staff, else the project-local identifier)."""
    ids = []
    if p.sds_user_id is not None:
        ids.append({"system": canonical.SDS_USER, "value": check_text(p.sds_user_id, "sds_user_id", "the SDS user id")})
    pr = _start("Practitioner", "practitioner", p, ids)
    pr["name"] = [_name(p.family, p.given, p.prefix)]
    return pr


def build_practitioner_role(r: PractitionerRoleInput) -> dict:
    """Build a UK Core PractitionerRole: a practitioner working for one organisation in one role."""
    practitioner = check_ref(r.practitioner, "practitioner", ("Practitioner",), "the practitioner")
    org = check_ref(r.organization, "organization", ("Organization",), "the organisation")
    role = check_text(r.role, "role", "the role")
    specialty = check_text(r.specialty, "specialty", "the specialty", required=False)
    start = check_date(r.start, "start", "the date the role started") if r.start is not None else None
    ids = []
    if r.sds_role_profile_id is not None:
        ids.append(
            {
                "system": canonical.SDS_ROLE_PROFILE,
                "value": check_text(r.sds_role_profile_id, "sds_role_profile_id", "the SDS role profile id"),
            }
        )
    prr = _start("PractitionerRole", "practitioner-role", r, ids)
    prr["active"] = True
    if start:
        prr["period"] = {"start": fhir_date(start)}
    prr["practitioner"] = {"reference": practitioner}
    prr["organization"] = {"reference": org}
    prr["code"] = [{"text": role}]
    if specialty:
        prr["specialty"] = [{"text": specialty}]
    phone = _phone(r.phone)
    if phone:
        prr["telecom"] = phone
    return prr


def build_organization(o: OrganizationInput) -> dict:
    """Build a UK Core Organization. With an ODS code its id derives from the (public) code, so every
    deployment names the same trust the same way."""
    kind = check_code(o.agency_type, "agency_type", tuple(AGENCY_TYPES), "the kind of agency")
    name = check_text(o.name, "name", "the organisation's name")
    ids, id_ = [], None
    if o.ods_code is not None:
        ods = check_ods(o.ods_code, "ods_code")
        ids.append({"system": canonical.ODS_ORG, "value": ods})
        id_ = deterministic_id(canonical.ODS_ORG, ods)
    org = _start("Organization", "organization", o, ids, id_)
    org["active"] = True
    code, display = AGENCY_TYPES[kind]
    org["type"] = [{"coding": [coding(ORG_TYPE_SYSTEM, code, display)], "text": kind.replace("-", " ")}]
    org["name"] = name
    phone = _phone(o.phone)
    if phone:
        org["telecom"] = phone
    return org


def build_related_person(r: RelatedPersonInput) -> dict:
    """Build a UK Core RelatedPerson (a parent or carer of the young person)."""
    patient = check_ref(r.patient, "patient", ("Patient",), "the young person")
    rel = r.relationship
    if not isinstance(rel, str) or not rel.isalnum() or not rel.isupper():
        raise BuildError("relationship", "Choose how this person is related to the young person.")
    rp = _start("RelatedPerson", "related-person", r, [])
    rp["active"] = True
    rp["patient"] = {"reference": patient}
    rp["relationship"] = [concept(ROLE_CODE_SYSTEM, rel)]
    rp["name"] = [_name(r.family, r.given)]
    phone = _phone(r.phone)
    if phone:
        rp["telecom"] = phone
    return rp
