"""Journey 4: signposting and referral to the local offer.

The services directory maps each service to the groupings it suits; the page lists those first and
every other service after them (the grouping guides, the family decides; nothing is hidden).
Signposting records a ServiceRequest with intent ``proposal`` (the family chooses whether to go);
a referral records a ServiceRequest ``order`` plus a Task owned by the receiving service, which that
service updates, so its status can be shown here without letters going back and forth.
"""

from __future__ import annotations

from flask import request

from smart_app import records, wording
from smart_app.context import current_launch, launch_blueprint, launch_required, write_required
from smart_app.directory import service_ref
from thrive_fhir import terminology
from thrive_fhir.builders import (
    BuildError,
    Coded,
    ReferralTaskInput,
    SignpostInput,
    build_referral_task,
    build_signposting,
)
from thrive_fhir.ids import resource_id

from . import changes, formkit, saving, vocab
from .common import directory, done, now, render, saved_message, today
from .forms import REFERRAL_CHANGES, SignpostForm, referral_change_form
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
                "service": service.name
                if service
                else (s.request.get("code", {}).get("coding", [{}])[0].get("display") or "Unknown service"),
                "phone": service.phone if service else None,
                "when": s.request.get("authoredOn"),
                "status": wording.request_status(s.kind, s.task, s.request.get("status")),
                "status_reason": task.get("statusReason", {}).get("text"),
                "note": (s.request.get("note") or [{}])[0].get("text"),
                "id": s.id,
                "is_referral": s.kind == "referral",
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
        errors.add(
            "service", "Agree a grouping first: signposting and referrals are recorded against the grouping in force"
        )
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
            task = _new_referral_task(launch, w, sr, data["token"], performer, when)
            items.append((task, 0))
    except BuildError as exc:
        errors.add("service", exc.message.rstrip("."))
        return _page(raw, errors, 400)
    outcome = saving.save(store, w, items, activity="create", created_ref=f"ServiceRequest/{sr['id']}")
    return done(launch, "signposting.index", key, outcome)


# --- a referral after it was sent: its status, updates, cancelling, referring again -------------
MESSAGES = {
    "updated": "Your update has been added to the referral.",
    "cancelled": "The referral has been cancelled. The service can see why.",
    "referred-again": "The referral has been made again.",
}


def _new_referral_task(launch, w, sr: dict, token: str, performer: str, when) -> dict:
    """The receiving organisation's Task for a new referral (a first one, or one that replaces an
    earlier referral): requested, owned by the service it was sent to."""
    return build_referral_task(
        ReferralTaskInput(
            local_id=derived_uuid4(token, "task"),
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


def _find(sr_id: str) -> records.Signpost | None:
    launch = current_launch()
    if launch.patient_ref is None:  # no young person in this launch: no referral of theirs either
        return None
    return next((s for s in records.signposts(launch.local_store, launch.patient_ref) if s.id == sr_id), None)


def _referral_view(sp: records.Signpost) -> dict:
    from smart_app.names import Names

    launch = current_launch()
    names = Names.for_launch(launch)
    d = directory()
    service = d.service(sp.service_code) if sp.service_code else None
    task = sp.task or {}
    recs = records.of(launch.local_store, launch.patient_ref or "")  # set: sp was found for this patient
    replaced_by = [
        s
        for s in recs.signposts
        if f"ServiceRequest/{sp.id}" in [r.get("reference") for r in s.request.get("replaces", [])]
    ]
    return {
        "signpost": sp,
        "service": service.name if service else names((sp.request.get("performer") or [None])[0]),
        "phone": service.phone if service else None,
        "status": wording.request_status(sp.kind, sp.task, sp.request.get("status")),
        "status_reason": (task.get("statusReason") or {}).get("text"),
        "owner": names(task.get("owner")) if task.get("owner") else None,
        "last_modified": task.get("lastModified"),
        "notes": sp.request.get("note", []),
        "is_open": sp.is_open_referral,
        "sr_version": (recs.get(f"ServiceRequest/{sp.id}") or records.Versioned({}, 0)).version,
        "task_version": (recs.get(f"Task/{task['id']}") or records.Versioned({}, 0)).version if task else 0,
        "replaced_by": replaced_by[0].id if replaced_by else None,
    }


def _manage_page(sp, values=None, errors=None, status=200, form=None, conflict=False):
    view = _referral_view(sp)
    values = values or {}
    return render(
        "journeys/signposting/referral.html",
        status=status,
        errors=errors,
        values=values,
        form=form,
        r=view,
        conflict=conflict,
        message=MESSAGES.get(request.args.get("done", "")) or saved_message(),
    )


@bp.get("/<sr_id>")
@launch_required
def referral(sr_id: str):
    sp = _find(sr_id)
    if sp is None or sp.kind != "referral":
        return render("journeys/signposting/missing.html", status=404)
    return _manage_page(sp)


def _change(sr_id: str, form_name: str):
    """Common start of the three changes: the referral, the checked form (or the page to answer)."""
    sp = _find(sr_id)
    if sp is None or sp.kind != "referral":
        return None, None, render("journeys/signposting/missing.html", status=404)
    schema = referral_change_form(form_name)
    data, errors, raw = formkit.load(schema, request.form, schema.ORDER)
    if data is None:
        return sp, None, _manage_page(sp, raw, errors, 400, form=form_name)
    return sp, data, None


def _save_change(sp, items, form_name: str, raw: dict, done_key: str, created_ref: str | None = None):
    launch = current_launch()
    try:
        outcome = saving.save(
            launch.local_store,
            saving.who(launch),
            items,
            activity="create" if created_ref else "update",
            created_ref=created_ref,
        )
    except saving.Conflict:
        fresh = _find(sp.id) or sp
        return _manage_page(fresh, raw, None, 409, form=form_name, conflict=True)
    target = sp.id
    if done_key == "referred-again" and created_ref:
        target = created_ref.split("/", 1)[1]
    if outcome == "duplicate":
        return done(launch, "signposting.referral", "duplicate", "duplicate", sr_id=target)
    from flask import redirect

    return redirect(launch.url_for("signposting.referral", sr_id=target, done=done_key), code=303)


@bp.post("/<sr_id>/update")
@launch_required
@write_required
def update_referral(sr_id: str):
    sp, data, answer = _change(sr_id, "update")
    if answer is not None:
        return answer
    launch = current_launch()
    w = saving.who(launch)
    sr = dict(sp.request)
    note = {"time": changes.stamp(now()), "text": data["text"]}
    if w.practitioner_ref:
        note = {"authorReference": {"reference": w.practitioner_ref}, **note}
    sr["note"] = [*sr.get("note", []), note]
    return _save_change(sp, [(sr, data["sr_version"])], "update", dict(request.form), "updated")


@bp.post("/<sr_id>/cancel")
@launch_required
@write_required
def cancel_referral(sr_id: str):
    sp, data, answer = _change(sr_id, "cancel")
    if answer is not None:
        return answer
    launch = current_launch()
    if not sp.is_open_referral:
        if sp.request.get("status") == "revoked":
            return done(launch, "signposting.referral", "duplicate", "duplicate", sr_id=sp.id)
        errors = formkit.FormErrors()
        errors.add(REFERRAL_CHANGES["cancel"][0], "This referral is no longer open, so it cannot be cancelled")
        return _manage_page(sp, dict(request.form), errors, 400, form="cancel")
    items = []
    for changed in changes.cancel_referral(sp, data["text"], now()):
        items.append((changed, data["task_version"] if changed["resourceType"] == "Task" else data["sr_version"]))
    return _save_change(sp, items, "cancel", dict(request.form), "cancelled")


@bp.post("/<sr_id>/refer-again")
@launch_required
@write_required
def refer_again(sr_id: str):
    sp, data, answer = _change(sr_id, "again")
    if answer is not None:
        return answer
    launch = current_launch()
    store = launch.local_store
    new_id = resource_id("signposting", data["token"])
    if store.current_version("ServiceRequest", new_id):
        return done(launch, "signposting.referral", "duplicate", "duplicate", sr_id=new_id)
    if sp.is_open_referral:
        errors = formkit.FormErrors()
        errors.add(
            REFERRAL_CHANGES["again"][0],
            "This referral is still open. Cancel it first, or add an update for the service",
        )
        return _manage_page(sp, dict(request.form), errors, 400, form="again")
    d = directory()
    service = d.service(sp.service_code) if sp.service_code else None
    w = saving.who(launch)
    grouping = records.current_grouping(store, w.patient_ref)
    if service is None or grouping is None:
        errors = formkit.FormErrors()
        errors.add(
            REFERRAL_CHANGES["again"][0],
            "This service is no longer in the directory, or there is no grouping: make a new referral on the services page"
            if grouping is not None
            else "Agree a grouping first: referrals are recorded against the grouping in force",
        )
        return _manage_page(sp, dict(request.form), errors, 400, form="again")
    when = now()
    episode_ref, items = saving.episode_for(store, w, data["token"], today())
    performer = service_ref(d, service)
    try:
        sr = build_signposting(
            SignpostInput(
                local_id=data["token"],
                source_ods=launch.ods_code,
                kind="referral",
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
                reason=grouping.ref,
                note=data["text"],
                replaces=f"ServiceRequest/{sp.id}",
            ),
            now=when,
        )
        task = _new_referral_task(launch, w, sr, data["token"], performer, when)
    except BuildError as exc:
        errors = formkit.FormErrors()
        errors.add(REFERRAL_CHANGES["again"][0], exc.message.rstrip("."))
        return _manage_page(sp, dict(request.form), errors, 400, form="again")
    items += [(sr, 0), (task, 0)]
    return _save_change(
        sp, items, "again", dict(request.form), "referred-again", created_ref=f"ServiceRequest/{sr['id']}"
    )
