"""Journey 4: signposting and referral to the local offer.

The services directory maps each service to the groupings it suits; the page lists those first and
every other service after them (the grouping guides, the family decides; nothing is hidden).
Signposting records a ServiceRequest with intent ``proposal`` (the family chooses whether to go);
a referral records a ServiceRequest ``order`` plus a Task owned by the receiving service, which that
service updates, so its status can be shown here without letters going back and forth.
"""

from __future__ import annotations

from flask import request

from thrive_fhir.builders import (
    BuildError,
    Coded,
    ReferralTaskInput,
    SignpostInput,
    build_referral_task,
    build_signposting,
)
from thrive_fhir.ids import resource_id
from thrive_fhir import terminology

from smart_app import records, wording
from smart_app.context import current_launch, launch_blueprint, launch_required, write_required
from smart_app.directory import service_ref

from . import formkit, saving, vocab
from .common import directory, done, now, render, saved_message, today
from .forms import SignpostForm
from .localids import derived_uuid4

bp = launch_blueprint("signposting", __name__, url_prefix="/services")

#: Task.status in plain words (one home: ``smart_app.wording``, shared with the Summary).
TASK_STATUS = wording.TASK_STATUS


def _page(values=None, errors=None, status=200):
    launch = current_launch()
    d = directory()
    current = records.current_grouping(launch.local_store, launch.patient_ref)
    matched, others = d.services_for(current.code if current else None)
    rows = []
    for s in records.signposts(launch.local_store, launch.patient_ref):
        service = d.service(s.service_code) if s.service_code else None
        task = s.task or {}
        rows.append(
            {
                "kind": "Referral" if s.kind == "referral" else "Signposting",
                "service": service.name if service else (s.request.get("code", {}).get("coding", [{}])[0].get("display") or "Unknown service"),
                "phone": service.phone if service else None,
                "when": s.request.get("authoredOn"),
                "status": wording.request_status(s.kind, s.task, s.request.get("status")),
                "status_reason": task.get("statusReason", {}).get("text"),
                "note": (s.request.get("note") or [{}])[0].get("text"),
            }
        )
    return render(
        "journeys/signposting/index.html",
        status=status,
        errors=errors,
        values=values or {"kind": "signposting"},
        grouping=current,
        matched=matched,
        others=others,
        rows=rows,
        vocab=vocab,
        saved=saved_message(),
    )


@bp.get("/")
@launch_required
def index():
    return _page()


@bp.post("/")
@launch_required
@write_required
def create():
    launch = current_launch()
    store = launch.local_store
    d = directory()
    schema = SignpostForm(service_codes=tuple(s.code for s in d.services))
    data, errors, raw = formkit.load(schema, request.form, SignpostForm.ORDER)
    if data is None:
        return _page(raw, errors, 400)
    sr_id = resource_id("signposting", data["token"])
    key = "referral" if data["kind"] == "referral" else "signposting"
    if store.current_version("ServiceRequest", sr_id):
        return done(launch, "signposting.index", key, "duplicate")
    w = saving.who(launch)
    when = now()
    service = d.service(data["service"])
    grouping = records.current_grouping(store, w.patient_ref)
    if grouping is None:
        errors.add("service", "Agree a grouping first: signposting and referrals are recorded against the grouping in force")
        return _page(raw, errors, 400)
    episode_ref, items = saving.episode_for(store, w, data["token"], today())
    performer = service_ref(d, service)
    try:
        sr = build_signposting(
            SignpostInput(
                local_id=data["token"],
                source_ods=launch.ods_code,
                kind=data["kind"],
                offer=Coded(
                    system=d.code_system,
                    code=service.code,
                    display=terminology.display(d.code_system, service.code) or service.name,
                ),
                subject=w.patient_ref,
                episode=episode_ref,
                authored_on=when,
                requester=w.author_ref,
                performer=performer,
                reason=grouping.ref if grouping else None,
                note=data.get("note"),
            ),
            now=when,
        )
        items.append((sr, 0))
        if data["kind"] == "referral":
            task = build_referral_task(
                ReferralTaskInput(
                    local_id=derived_uuid4(data["token"], "task"),
                    source_ods=launch.ods_code,
                    service_request=f"ServiceRequest/{sr['id']}",
                    subject=w.patient_ref,
                    requester=w.author_ref,
                    authored_on=when,
                    owner=performer,
                    status="requested",
                ),
                now=when,
            )
            items.append((task, 0))
    except BuildError as exc:
        errors.add("service", exc.message.rstrip("."))
        return _page(raw, errors, 400)
    outcome = saving.save(store, w, items, activity="create", created_ref=f"ServiceRequest/{sr['id']}")
    return done(launch, "signposting.index", key, outcome)
