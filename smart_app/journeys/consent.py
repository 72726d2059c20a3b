"""Journey 5: which agencies the young person agrees can see their shared plan.

One Consent per young person, edited over time: choosing agencies saves a new version with those
agencies; withdrawing one agency saves a new version without it; withdrawing from all sets the
status to inactive and keeps the agencies, so the record still says what had been agreed before.
The Consent is a record of the young person's choice; the shared store or its gateway enforces it.

The shared plan is the safety plan (Consent.provision.data must point at a CarePlan), so sharing
can be recorded once there is a safety plan.
"""

from __future__ import annotations

from flask import request

from thrive_fhir.builders import BuildError, ConsentInput, build_consent, withdraw_all

from smart_app import records
from smart_app.context import current_launch, launch_blueprint, launch_required, write_required
from smart_app.directory import agency_ref

from . import formkit, saving
from .common import directory, done, now, other_agencies, render, saved_message
from .forms import ConsentForm, WithdrawForm

bp = launch_blueprint("consent", __name__, url_prefix="/sharing")

#: How long an agreement to share lasts before it must be asked again.
SHARING_DAYS = 365


def _page(values=None, errors=None, status=200, conflict=None):
    launch = current_launch()
    store = launch.local_store
    current = records.consent(store, launch.patient_ref)
    agencies = other_agencies(launch)
    shared_refs = records.consent_agencies(current)
    by_ref = {agency_ref(directory(), a): a for a in agencies}
    if values is None:
        values = {"agencies": [by_ref[r].key for r in shared_refs if r in by_ref],
                  "version": current.version if current else 0}
    return render(
        "journeys/consent/index.html",
        status=status,
        errors=errors,
        values=values,
        consent=current,
        shared=[by_ref.get(r) for r in shared_refs],
        agencies=agencies,
        plan=records.safety_plan(store, launch.patient_ref),
        conflict=conflict,
        conflict_agencies=[by_ref.get(r) for r in records.consent_agencies(records.Versioned(conflict.current, 0))]
        if conflict and conflict.current else [],
        saved=saved_message(),
    )


@bp.get("/")
@launch_required
def index():
    return _page()


def _input(current: records.Versioned | None, local_id: str, agency_refs: list[str], plan_ref: str, when, launch, w):
    start = records.parse_when(current.resource["provision"]["period"]["start"]) if current else when.date()
    from datetime import timedelta

    return ConsentInput(
        local_id=local_id,
        source_ods=launch.ods_code,
        subject=w.patient_ref,
        performer=(w.patient_ref,),
        agencies=tuple(agency_refs),
        custodian=w.organization_ref,
        plan=plan_ref,
        date_time=when,
        start_date=start,
        end_date=when.date() + timedelta(days=SHARING_DAYS),
    )


@bp.post("/")
@launch_required
@write_required
def save_consent():
    launch = current_launch()
    store = launch.local_store
    agencies = {a.key: a for a in other_agencies(launch)}
    data, errors, raw = formkit.load(ConsentForm(agency_keys=tuple(agencies)), request.form, ConsentForm.ORDER)
    if data is None:
        return _page(raw, errors, 400)
    w = saving.who(launch)
    plan = records.safety_plan(store, w.patient_ref)
    if plan is None:
        errors.add("agencies", "Write the safety plan first: it is the plan that will be shared")
        return _page(raw, errors, 400)
    current = records.consent(store, w.patient_ref)
    refs = [agency_ref(directory(), agencies[k]) for k in data["agencies"]]
    when = now()
    try:
        resource = build_consent(_input(current, current.local_id if current else data["token"], refs, plan.ref, when, launch, w), now=when)
    except BuildError as exc:
        errors.add("agencies", exc.message.rstrip("."))
        return _page(raw, errors, 400)
    try:
        outcome = saving.save(store, w, [(resource, data["version"])], activity="update" if current else "create",
                              created_ref=None if current else f"Consent/{resource['id']}")
    except saving.Conflict as conflict:
        raw["version"] = conflict.current_version
        return _page(raw, None, 409, conflict)
    return done(launch, "consent.index", "consent", outcome)


@bp.post("/withdraw")
@launch_required
@write_required
def withdraw():
    launch = current_launch()
    store = launch.local_store
    data, errors, raw = formkit.load(WithdrawForm(), request.form, WithdrawForm.ORDER)
    w = saving.who(launch)
    current = records.consent(store, w.patient_ref)
    if data is None or current is None:
        if current is None:
            errors.add("agencies", "There is no agreement to share to withdraw")
        return _page(None, errors, 400)
    d = directory()
    agencies = {a.key: a for a in other_agencies(launch)}
    shared = records.consent_agencies(current)
    if data["agency"] and data["agency"] not in agencies:
        errors.add("agencies", "Choose an agency from the list")
        return _page(None, errors, 400)
    # one agency: keep the others; blank: withdraw from every agency
    remaining = [r for r in shared if r != agency_ref(d, agencies[data["agency"]])] if data["agency"] else []
    when = now()
    plan_ref = current.resource["provision"]["data"][0]["reference"]["reference"]
    if data["agency"] and data["version"] == current.version - 1 and agency_ref(d, agencies[data["agency"]]) not in shared:
        return done(launch, "consent.index", "withdrawn", "duplicate")  # this withdrawal was already saved
    try:
        if remaining:
            resource = build_consent(_input(current, current.local_id, remaining, plan_ref, when, launch, w), now=when)
        else:
            # withdrawn from every agency: inactive, keeping the agencies so the record says what had been agreed
            everyone = shared or [a.get("reference", {}).get("reference") for a in current.resource["provision"]["actor"]]
            resource = build_consent(withdraw_all(_input(current, current.local_id, everyone, plan_ref, when, launch, w)), now=when)
    except BuildError as exc:
        errors.add("agencies", exc.message.rstrip("."))
        return _page(None, errors, 400)
    try:
        outcome = saving.save(store, w, [(resource, data["version"])], activity="update")
    except saving.Conflict as conflict:
        return _page(None, None, 409, conflict)
    return done(launch, "consent.index", "withdrawn", outcome)
