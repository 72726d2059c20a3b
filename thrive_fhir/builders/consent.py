"""Agreement to share the plan with chosen agencies -> Consent (profile thrive-sharing-consent).

A Consent is a record, not enforcement: the store or a gateway applies it. Withdrawing one agency
is a new version without that actor; withdrawing from all is status ``inactive``
(:func:`withdraw_all`), keeping the agencies so the record still says what had been agreed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, datetime

from .. import canonical
from ._common import (
    BuildError,
    Record,
    check_code,
    check_date,
    check_datetime,
    check_ref,
    check_refs,
    check_text,
    coding,
    concept,
    fhir_date,
    fhir_datetime,
    now_utc,
    ref,
    reorder,
    start_resource,
)

CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
V3_PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
CONSENT_ACTION = "http://terminology.hl7.org/CodeSystem/consentaction"
V3_ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
CONSENT_STATUSES = ("draft", "proposed", "active", "rejected", "inactive", "entered-in-error")

#: Whether the young person was judged competent to decide about sharing (Gillick competence under
#: 16, capacity at 16-17), and by whom it was noted. R4 Consent has no element for this, so it is a
#: project extension (complex: ``assessment`` valueCode competent | not-competent, optional
#: ``note`` valueString), declared in profiles/input/fsh/profiles/consent.fsh.
EXT_DECISION_COMPETENCE = canonical.EXT_DECISION_COMPETENCE
COMPETENCE = ("competent", "not-competent")


@dataclass(frozen=True, kw_only=True)
class ConsentInput(Record):
    """Who agreed (``performer``: the young person, or a RelatedPerson with parental responsibility)
    to share ``plan`` with ``agencies`` (Organizations), held by ``custodian``."""

    subject: str
    performer: tuple[str, ...]
    agencies: tuple[str, ...]
    custodian: str
    plan: str
    date_time: datetime
    start_date: date
    end_date: date | None = None
    status: str = "active"
    policy: str = canonical.SHARING_POLICY
    competence: str | None = None  # the young person's competence to decide (see EXT_DECISION_COMPETENCE)
    competence_note: str | None = None


def withdraw_all(c: ConsentInput) -> ConsentInput:
    """The same consent, withdrawn from every agency (status inactive)."""
    return dataclasses.replace(c, status="inactive")


def build_consent(c: ConsentInput, *, now: datetime | None = None) -> dict:
    """Build the sharing Consent; raises :class:`BuildError` naming the field at fault."""
    now = now or now_utc()
    status = check_code(c.status, "status", CONSENT_STATUSES, "the consent's status")
    subject = check_ref(c.subject, "subject", ("Patient",), "the young person")
    performers = check_refs(c.performer, "performer", ("Patient", "RelatedPerson"), "who gave consent", min_items=1)
    for i, p in enumerate(performers):
        if p.startswith("Patient/") and p != subject:
            raise BuildError(f"performer[{i}]", "Only the young person the plan is about can consent as a patient.")
    agencies = check_refs(c.agencies, "agencies", ("Organization",), "an agency to share with", min_items=1)
    custodian = check_ref(c.custodian, "custodian", ("Organization",), "the organisation holding the consent")
    plan = check_ref(c.plan, "plan", ("CarePlan",), "the plan being shared")
    when = check_datetime(c.date_time, "date_time", "when consent was given", not_after=now)
    start = check_date(c.start_date, "start_date", "the date sharing starts")
    end = check_date(c.end_date, "end_date", "the date sharing ends") if c.end_date is not None else None
    if end is not None and end < start:
        raise BuildError("end_date", "Sharing cannot end before it starts.")
    if not isinstance(c.policy, str) or not c.policy.startswith(("https://", "http://", "urn:")):
        raise BuildError("policy", "The information-sharing agreement must be given as a web address.")

    competence = (
        check_code(c.competence, "competence", COMPETENCE, "whether the young person can decide")
        if c.competence
        else None
    )
    if competence == "not-competent" and any(p.startswith("Patient/") for p in performers):
        raise BuildError(
            "performer",
            "The young person was not competent to decide: consent comes from a parent or carer with parental responsibility.",
        )
    competence_note = check_text(c.competence_note, "competence_note", "a note about competence", required=False)

    consent = start_resource("Consent", "sharing-consent", c, canonical.PROFILE_CONSENT)
    if competence:
        parts = [{"url": "assessment", "valueCode": competence}]
        if competence_note:
            parts.append({"url": "note", "valueString": competence_note})
        consent["extension"] = [{"url": EXT_DECISION_COMPETENCE, "extension": parts}]
    consent["status"] = status
    consent["scope"] = {"coding": [coding(CONSENT_SCOPE, "patient-privacy")]}
    consent["category"] = [{"coding": [coding(V3_ACT_CODE, "IDSCL")]}]
    consent["patient"] = ref(subject)
    consent["dateTime"] = fhir_datetime(when)
    consent["performer"] = [ref(p) for p in performers]
    consent["organization"] = [ref(custodian)]
    consent["policy"] = [{"uri": c.policy}]
    period = {"start": fhir_date(start)}
    if end is not None:
        period["end"] = fhir_date(end)
    consent["provision"] = {
        "type": "permit",
        "period": period,
        "actor": [{"role": concept(V3_PARTICIPATION, "IRCP"), "reference": ref(a)} for a in agencies],
        "action": [concept(CONSENT_ACTION, "access")],
        "purpose": [coding(V3_ACT_REASON, "TREAT")],
        "data": [{"meaning": "related", "reference": ref(plan)}],
    }
    return reorder(consent, ("extension",))
