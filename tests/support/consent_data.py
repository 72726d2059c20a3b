"""Shared set-up for the consent-enforcement tests: organisations, tokens, sharing Consents (invented)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from thrive_fhir.smart_scopes import Grant

CUSTODIAN = "Organization/org-trust"
ORG_A = "Organization/org-school-a"
ORG_B = "Organization/org-social-care-b"
WORKER_A = "Practitioner/worker-a"
WORKER_B = "Practitioner/worker-b"
AGENCY_SCOPES = "openid fhirUser user/*.rs user/Task.u user/Provenance.c"

GRANTS = {
    "custodian": Grant.from_scope_string("trust-app", "system/*.cruds", organization=CUSTODIAN),
    "agency-a": Grant.from_scope_string("thrive-app", AGENCY_SCOPES, user=WORKER_A, organization=ORG_A),
    "agency-b": Grant.from_scope_string("thrive-app", AGENCY_SCOPES, user=WORKER_B, organization=ORG_B),
    # a user token naming no organisation: gated, and sees no young person
    "agency-noorg": Grant.from_scope_string("thrive-app", AGENCY_SCOPES, user="Practitioner/worker-x"),
    # a wide system token of an agency: still gated
    "agency-a-system": Grant.from_scope_string("agency-backend", "system/*.cruds", organization=ORG_A),
}

JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


def verifier(token: str):
    return GRANTS.get(token)


def auth(token: str) -> dict:
    return {**JSON, "Authorization": f"Bearer {token}"}


def instant(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_utc() -> datetime:
    return datetime.now(UTC)


def consent(
    cid: str,
    patient_id: str,
    actors: list[str],
    *,
    status: str = "active",
    start: str | None = None,
    end: str | None = None,
) -> dict:
    """A thrive-sharing-consent shaped Consent (status, period and actors as given)."""
    period = {}
    if start is not None:
        period["start"] = start
    if end is not None:
        period["end"] = end
    return {
        "resourceType": "Consent",
        "id": cid,
        "identifier": [{"system": "https://example.org/test-ids", "value": uuid.uuid4().hex}],
        "status": status,
        "scope": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]
        },
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IDSCL"}]}],
        "patient": {"reference": f"Patient/{patient_id}"},
        "dateTime": "2025-03-04T16:10:00Z",
        "performer": [{"reference": f"Patient/{patient_id}"}],
        "organization": [{"reference": CUSTODIAN}],
        "policy": [{"uri": "https://example.org/policy/information-sharing-agreement-v1"}],
        "provision": {
            "type": "permit",
            **({"period": period} if period else {}),
            "actor": [
                {
                    "role": {
                        "coding": [
                            {"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}
                        ]
                    },
                    "reference": {"reference": a},
                }
                for a in actors
            ],
            "action": [
                {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentaction", "code": "access"}]}
            ],
        },
    }


def day(offset: int) -> str:
    return (now_utc() + timedelta(days=offset)).date().isoformat()


def task(tid: str, patient_id: str, owner: str, focus: str | None = None, status: str = "requested") -> dict:
    res = {
        "resourceType": "Task",
        "id": tid,
        "status": status,
        "intent": "order",
        "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]},
        "for": {"reference": f"Patient/{patient_id}"},
        "authoredOn": "2025-03-04T16:10:00Z",
        "requester": {"reference": CUSTODIAN},
        "owner": {"reference": owner},
    }
    if focus:
        res["focus"] = {"reference": focus}
    return res
