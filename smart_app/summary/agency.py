"""Agency view (standalone launch): read a young person's shared plan, only with consent, audited.

The rule (thrive-framework.md "Partnership working"; fhir-model.md Consent): an agency worker sees
the plan only while an active sharing Consent for this young person names their organisation as a
recipient and its period covers today. Every attempt, allowed or refused, writes an AuditEvent
(``thrive-read-audit``; fhir-model.md section 4) in the same local store the plan lives in, so it
syncs to the shared store with everything else.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timezone

from flask import g, render_template

from thrive_fhir import canonical
from thrive_fhir.consent_rule import active_consent_for
from thrive_fhir.localstore import ChangeSet

from .. import records
from ..context import current_launch, error_page, launch_blueprint, launch_required, state, unknown_staff_page
from .data import build_summary

log = logging.getLogger("smart_app.agency")

bp = launch_blueprint("agency", __name__, audience="agency")

AUDIT_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL_INTERACTION = "http://hl7.org/fhir/restful-interaction"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"


def consent_for(consents: list[dict], patient_ref: str, organization_ref: str | None, now: datetime) -> dict | None:
    """The active permit Consent naming ``organization_ref`` whose period covers ``now``.

    The rule is the library's (``thrive_fhir.consent_rule``), the same one the shared store enforces,
    so the app never shows what the store would refuse, nor refuses what it would show."""
    return active_consent_for(consents, patient_ref, organization_ref, now)


def build_read_audit(launch, entities: list[str], allowed: bool, now: datetime, *,
                     patient_ref: str | None = None, interaction: str = "read") -> dict:
    """AuditEvent for one read through the app by an agency worker (thrive-read-audit).
    ``interaction`` ``search-type`` (action E) is a listing of the young person in the patient
    picker; ``patient_ref`` defaults to the launch's patient."""
    patient_ref = patient_ref or launch.patient_ref
    who = launch.staff_ref
    agents = []
    if who:
        agents.append({"who": {"reference": who}, "requestor": True,
                       "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                            "code": "IRCP", "display": "information recipient"}]}})
    if launch.organization_ref:
        agents.append({"who": {"reference": launch.organization_ref}, "requestor": not who})
    entity = [{"what": {"reference": r}} for r in entities if r != patient_ref]
    entity.append({"what": {"reference": patient_ref},
                   "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"}})
    return {
        "resourceType": "AuditEvent",
        "id": str(uuid.uuid4()),
        "meta": {"profile": [canonical.PROFILE_READ_AUDIT]},
        "type": {"system": AUDIT_EVENT_TYPE, "code": "rest", "display": "RESTful Operation"},
        "subtype": [{"system": RESTFUL_INTERACTION, "code": interaction, "display": interaction}],
        "action": "E" if interaction == "search-type" else "R",
        "recorded": now.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "outcome": "0" if allowed else "4",
        **({} if allowed else {"outcomeDesc": "No active sharing consent names this organisation"}),
        "purposeOfEvent": [{"coding": [{"system": ACT_REASON, "code": "TREAT", "display": "treatment"}]}],
        "agent": agents,
        "source": {"observer": {"display": f"THRIVE care plan app ({state().config.ods_code})"},
                   "site": state().config.ods_code},
        "entity": entity,
    }


def unattributable(launch):
    """A refusal page if this sign-in names no member of staff, else None.

    A read of a shared plan must be audited against the person who read it (thrive-read-audit and
    the save's Provenance both need a Practitioner(Role)); an organisation alone is not enough, so
    a sign-in without a staff ``fhirUser`` sees nothing. Launch refuses such sign-ins already; this
    is the same rule where the read happens, for launches made before that check or by other paths.
    """
    if launch.staff_ref:
        return None
    log.warning("agency read refused: the sign-in names no member of staff (mode=%s)", launch.mode)
    return unknown_staff_page()


def write_audit(launch, event: dict) -> None:
    """Record ``event`` as one save by the signed-in member of staff (callers check :func:`unattributable`)."""
    store = launch.local_store
    patient_key = next(e["what"]["reference"] for e in event["entity"] if e.get("role", {}).get("code") == "1")
    with store.session() as s:
        store.record(
            s,
            ChangeSet(
                patient_key=patient_key,
                author_ref=launch.staff_ref,
                organization_ref=launch.organization_ref or "",
                activity="create",
                reason="Agency listing in the patient picker" if event["action"] == "E" else "Agency read of a shared plan",
            ).put(event, expected_local_version=0),
        )


@bp.get("/shared-plan")
@launch_required
def index():
    launch = current_launch()
    if launch.patient_id is None:  # a sign-in without a young person: find one first (SA-04)
        from flask import redirect

        return redirect(launch.url_for("picker.index"), code=303)
    if (refused := unattributable(launch)) is not None:
        return refused
    now = datetime.now(timezone.utc)
    store = launch.local_store
    recs = records.of(store, launch.patient_ref)
    consent = consent_for(recs.all("Consent"), launch.patient_ref, launch.organization_ref, now)
    if consent is None:
        write_audit(launch, build_read_audit(launch, [], allowed=False, now=now))
        return error_page(
            403,
            "This plan is not shared with your organisation",
            "The young person has not agreed to share their plan with your organisation, or their "
            "agreement has ended. Contact the team that looks after them if you need to know more.",
        )
    g.shared_plan_allowed = True  # the consent check passed: the risk banner may show
    summary = build_summary(store, launch.patient_ref, patient_name=(launch.banner or {}).get("name"), records=recs)
    read = [f"Consent/{consent['id']}"]
    if summary.current:
        read.append(f"Observation/{summary.current.id}")
    if summary.safety_plan:
        read.append(f"CarePlan/{summary.safety_plan.id}")
    read += [f"Goal/{g.id}" for g in summary.goals]
    write_audit(launch, build_read_audit(launch, read, allowed=True, now=now))
    return render_template(
        "summary/agency.html",
        summary=summary,
    )
