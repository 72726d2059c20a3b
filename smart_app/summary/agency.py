"""Agency view (standalone launch): read a young person's shared plan from the shared store, and act
on the Tasks the agency's organisation owns.

Where the plan comes from: the shared store (the launch's FHIR base), read with the worker's own
token (:mod:`.shared_record`); the app keeps no copy. The store decides what the token may see from
the young person's sharing Consents and audits every request itself (thrive_fhir.store.consent_gate
and agency_audit).

The rule (thrive_fhir.consent_rule; docs/design/fhir-model.md Consent): an agency worker sees the plan only while
an active sharing Consent for this young person names their organisation as a recipient and its
period covers now. The app applies it again to what the store returned (defence in depth: a store
that does not enforce consent still shows nothing unshared here), and records its own AuditEvent of
each read through the app (``thrive-read-audit``), which syncs to the shared store.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

from flask import g, render_template, request

from thrive_fhir import canonical
from thrive_fhir.client.fhir_http import is_fhir_id
from thrive_fhir.consent_rule import active_consent_for
from thrive_fhir.localstore import ChangeSet

from .. import records
from ..context import current_launch, error_page, launch_blueprint, launch_required, state, unknown_staff_page
from .agency_changes import seen_through, worker_key
from .data import build_summary
from .shared_record import PLAN_TYPES

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


def build_read_audit(
    launch,
    entities: list[str],
    allowed: bool,
    now: datetime,
    *,
    patient_ref: str | None = None,
    interaction: str = "read",
) -> dict:
    """AuditEvent for one read through the app by an agency worker (thrive-read-audit).
    ``interaction`` ``search-type`` (action E) is a listing of the young person in the patient
    picker; ``patient_ref`` defaults to the launch's patient."""
    patient_ref = patient_ref or launch.patient_ref
    who = launch.staff_ref
    agents = []
    if who:
        agents.append(
            {
                "who": {"reference": who},
                "requestor": True,
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                            "code": "IRCP",
                            "display": "information recipient",
                        }
                    ]
                },
            }
        )
    if launch.organization_ref:
        agents.append({"who": {"reference": launch.organization_ref}, "requestor": not who})
    entity = [{"what": {"reference": r}} for r in entities if r != patient_ref]
    entity.append(
        {"what": {"reference": patient_ref}, "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"}}
    )
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
        "source": {
            "observer": {"display": f"THRIVE care plan app ({state().config.ods_code})"},
            "site": state().config.ods_code,
        },
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
                reason="Agency listing in the patient picker"
                if event["action"] == "E"
                else "Agency read of a shared plan",
            ).put(event, expected_local_version=0),
        )


def _refused_page():
    return error_page(
        403,
        "This plan is not shared with your organisation",
        "The young person has not agreed to share their plan with your organisation, or their "
        "agreement has ended. Contact the team that looks after them if you need to know more.",
    )


def _read_shared(launch):
    """(records, consent) from the shared store, or (None, None) when not shared; an error page
    (third item) when the store cannot be read. The store enforces the Consent itself; the check
    here is the app's own, kept as defence in depth against a store that does not."""
    from ..launch.ehr_client import EhrSessionEnded
    from .shared_record import NotShared, StoreUnavailable, read_record

    try:
        _patient, recs = read_record(launch.ehr_client, launch.patient_id)
    except NotShared:
        return None, None, None
    except EhrSessionEnded:
        return None, None, error_page(401, "Your session has ended", "Sign in again to read the shared plan.")
    except StoreUnavailable:
        log.warning("agency view: the shared store could not be read")
        return (
            None,
            None,
            error_page(
                502,
                "The shared record is unavailable",
                "The shared record could not be read just now. Try again in a few minutes.",
            ),
        )
    now = datetime.now(UTC)
    consent = consent_for(recs.all("Consent"), launch.patient_ref, launch.organization_ref, now)
    return (recs, consent, None) if consent is not None else (None, None, None)


def _render(launch, recs, consent, *, message: str | None = None, status: int = 200, message_title: str | None = None):
    from ..launch.ehr_client import EhrError
    from .agency_confirm import mark_confirmable, read_confirmations
    from .agency_tasks import owners_for, task_views
    from .data import Names, concept_text, show_date

    g.shared_plan_allowed = True  # the consent check passed: the risk banner may show
    records.use_snapshot(launch.local_store, launch.patient_ref, recs)  # the banner reads the shared record
    plan = recs.safety_plan
    try:
        owners = owners_for(launch.ehr_client, launch.organization_ref)
        confirmed = read_confirmations(launch.ehr_client, plan.resource if plan else None)
    except EhrError:  # the plan still shows; the requests and confirmations wait for the next visit
        log.warning("agency view: the organisation's services or confirmations could not be read")
        owners, confirmed = frozenset(), []
    summary = build_summary(
        None,
        launch.patient_ref,
        patient_name=(launch.banner or {}).get("name"),
        records=recs,
        confirmations=confirmed,
    )
    if owners:
        mark_confirmable(summary, owners, launch.organization_ref)
    names = Names(None, launch.patient_ref, (launch.banner or {}).get("name"), recs)
    tasks = task_views(recs, owners, names, show_date, concept_text)
    done = request.args.get("done")
    notice = message or (_DONE_TEXT.get(done) or f"The request was {done}." if done in _DONE else None)
    return render_template(
        "summary/agency.html",
        summary=summary,
        tasks=tasks,
        notice=notice,
        notice_is_error=message is not None,
        notice_title=message_title or "The request was not changed",
    ), status


_DONE = {"accepted", "declined", "marked in progress", "marked completed", "confirmed"}
_DONE_TEXT = {"confirmed": "Your organisation's confirmation was recorded in the shared plan."}


@bp.get("/shared-plan")
@launch_required
def index():
    launch = current_launch()
    if launch.patient_id is None:  # a sign-in without a young person: find one first (SA-04)
        from flask import redirect

        return redirect(launch.url_for("picker.index"), code=303)
    if (refused := unattributable(launch)) is not None:
        return refused
    now = datetime.now(UTC)
    recs, consent, failed = _read_shared(launch)
    if failed is not None:
        return failed
    if consent is None:
        write_audit(launch, build_read_audit(launch, [], allowed=False, now=now))
        return _refused_page()
    page = _render(launch, recs, consent)
    if (key := worker_key(launch)) is not None:  # "changed since your last visit" starts again from here
        state().changes.visited(key, launch.patient_id, seen_through([r for t in PLAN_TYPES for r in recs.all(t)]))
    summary_read = [
        f"Consent/{consent['id']}",
        *[f"{t}/{r['id']}" for t in ("Observation", "CarePlan", "Goal", "Task") for r in recs.all(t)][:50],
    ]
    write_audit(launch, build_read_audit(launch, summary_read, allowed=True, now=now))
    return page


def _acting_on(launch, item_id: str):
    """What both agency actions check first: a young person in context, an id that can be one, a
    worker the store can attribute the write to, the shared plan read with the worker's token, and
    an active sharing Consent naming their organisation. ``(records, consent, None)``, or
    ``(None, None, page)`` with the page to answer instead."""
    if launch.patient_id is None or not is_fhir_id(item_id):
        return None, None, error_page(404, "Page not found", "Check the address, or go back to the shared plan.")
    if (refused := unattributable(launch)) is not None:
        return None, None, refused
    recs, consent, failed = _read_shared(launch)
    if failed is not None:
        return None, None, failed
    if consent is None:
        return None, None, _refused_page()
    return recs, consent, None


@bp.post("/shared-plan/tasks/<task_id>")
@launch_required
def task_action(task_id: str):
    """Accept, decline (with a reason), start or complete a Task the worker's organisation owns."""
    from flask import redirect

    from ..launch.ehr_client import EhrError
    from .agency_tasks import TRANSITIONS, ActionRefused, Conflict, act

    launch = current_launch()
    recs, consent, answer = _acting_on(launch, task_id)
    if answer is not None:
        return answer
    if not any(t.get("id") == task_id for t in recs.all("Task")):
        return error_page(404, "Request not found", "This request is not part of this young person's shared plan.")
    if launch.staff_ref is None or launch.organization_ref is None:  # checked above; a Provenance needs both
        return _refused_page()
    action = request.form.get("action", "")
    try:
        act(
            launch.ehr_client,
            task_id,
            action,
            request.form.get("version", ""),
            request.form.get("reason", ""),
            staff_ref=launch.staff_ref,
            organization=launch.organization_ref,
        )
    except ActionRefused as exc:
        return _render(launch, recs, consent, message=str(exc), status=400)
    except Conflict as exc:
        now_status = (exc.current or {}).get("status", "changed")
        _fresh, _c, _f = _read_shared(launch)
        return _render(
            launch,
            _fresh or recs,
            _c or consent,
            status=409,
            message=(
                f"Someone else changed this request while you were looking at it: it is now {now_status}. "
                "Nothing was saved. Check it and choose again."
            ),
        )
    except EhrError as exc:
        log.warning("agency task update failed with HTTP %s", exc.status)
        return _render(
            launch,
            recs,
            consent,
            status=502 if exc.status == 0 or exc.status >= 500 else 400,
            message="The shared record did not accept the change. Nothing was saved. Try again.",
        )
    return redirect(launch.url_for("agency.index", done=TRANSITIONS[action][3]), code=303)


@bp.post("/shared-plan/entries/<entry_id>/confirm")
@launch_required
def confirm_entry(entry_id: str):
    """Confirm, for the worker's organisation, an item of the safety plan's "What each agency will do"."""
    from flask import redirect

    from ..launch.ehr_client import EhrError
    from .agency_confirm import ConfirmRefused, PlanChanged, confirm
    from .agency_tasks import owners_for

    launch = current_launch()
    recs, consent, answer = _acting_on(launch, entry_id)
    if answer is not None:
        return answer
    if launch.staff_ref is None or launch.organization_ref is None:  # checked above; a Provenance needs both
        return _refused_page()
    plan = recs.safety_plan
    if plan is None:
        return error_page(404, "Safety plan not found", "This young person's shared plan has no safety plan now.")
    title = "Nothing was confirmed"
    try:
        confirm(
            launch.ehr_client,
            plan.resource,
            request.form.get("version", ""),
            entry_id,
            staff_ref=launch.staff_ref,
            organization=launch.organization_ref,
            owners=owners_for(launch.ehr_client, launch.organization_ref),
        )
    except ConfirmRefused as exc:
        return _render(launch, recs, consent, message=str(exc), status=400, message_title=title)
    except PlanChanged:
        fresh, again, _f = _read_shared(launch)
        return _render(
            launch,
            fresh or recs,
            again or consent,
            status=409,
            message_title=title,
            message=(
                "The safety plan was changed while you were looking at it, and this part no longer reads as "
                "you saw it. Nothing was saved. Read the plan as it is now and confirm again if it is right."
            ),
        )
    except EhrError as exc:
        log.warning("agency confirmation failed with HTTP %s", exc.status)
        return _render(
            launch,
            recs,
            consent,
            status=502 if exc.status == 0 or exc.status >= 500 else 400,
            message_title=title,
            message="The shared record did not accept the confirmation. Nothing was saved. Try again.",
        )
    return redirect(launch.url_for("agency.index", done="confirmed"), code=303)
