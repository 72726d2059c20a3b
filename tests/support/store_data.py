"""Synthetic FHIR resources for the store tests and benchmarks (invented people; NHS numbers in the
999 test range with valid check digits)."""

from __future__ import annotations

import random
import uuid

from thrive_fhir.ids import nhs_number_check_digit

NHS = "https://fhir.nhs.uk/Id/nhs-number"
LOCAL = "https://example.org/test-ids"
LOINC = "http://loinc.org"


def synthetic_nhs_number(rng: random.Random | None = None) -> str:
    rng = rng or random.Random()
    while True:
        first = "999" + "".join(rng.choice("0123456789") for _ in range(6))
        check = nhs_number_check_digit(first)
        if check is not None:
            return first + str(check)


def patient(pid: str | None = None, *, nhs: str | None = None, family: str = "Testperson") -> dict:
    res = {
        "resourceType": "Patient",
        "identifier": [
            {"system": NHS, "value": nhs or synthetic_nhs_number()},
            {"system": LOCAL, "value": uuid.uuid4().hex},
        ],
        "name": [{"family": family, "given": ["Alex"]}],
        "gender": "unknown",
        "birthDate": "2010-04-01",
    }
    if pid:
        res["id"] = pid
    return res


def observation(
    subject_ref: str,
    *,
    code: str = "72166-2",
    when: str = "2024-05-01T10:00:00Z",
    oid: str | None = None,
    focus: str | None = None,
) -> dict:
    res = {
        "resourceType": "Observation",
        "status": "final",
        "identifier": [{"system": LOCAL, "value": uuid.uuid4().hex}],
        "category": [
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "survey"}]}
        ],
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": subject_ref},
        "effectiveDateTime": when,
        "valueInteger": 5,
    }
    if focus:
        res["focus"] = [{"reference": focus}]
    if oid:
        res["id"] = oid
    return res


def goal(subject_ref: str, gid: str | None = None) -> dict:
    res = {
        "resourceType": "Goal",
        "lifecycleStatus": "active",
        "identifier": [{"system": LOCAL, "value": uuid.uuid4().hex}],
        "description": {"text": "Feel able to go back to school"},
        "subject": {"reference": subject_ref},
    }
    if gid:
        res["id"] = gid
    return res


def careplan(subject_ref: str, goal_refs: list[str]) -> dict:
    return {
        "resourceType": "CarePlan",
        "status": "active",
        "intent": "plan",
        "identifier": [{"system": LOCAL, "value": uuid.uuid4().hex}],
        "subject": {"reference": subject_ref},
        "goal": [{"reference": g} for g in goal_refs],
    }


def local_identifier(resource: dict) -> str:
    ident = next(i for i in resource["identifier"] if i["system"] == LOCAL)
    return f"{LOCAL}|{ident['value']}"
