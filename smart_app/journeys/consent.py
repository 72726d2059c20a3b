"""Journey 5: which agencies the young person agrees can see their shared plan.

One Consent per young person, edited over time: choosing agencies saves a new version with those
agencies; withdrawing one agency saves a new version without it; withdrawing from all sets the
status to inactive and keeps the agencies, so the record still says what had been agreed before.
The Consent is a record of the young person's choice; the shared store or its gateway enforces it.

The shared plan is the safety plan (Consent.provision.data must point at a CarePlan), so sharing
can be recorded once there is a safety plan.
"""

from __future__ import annotations

from datetime import timedelta

from flask import request

from smart_app import records
from smart_app.context import current_launch, launch_blueprint, launch_required, write_required
from smart_app.directory import agency_ref
from thrive_fhir.builders import BuildError, ConsentInput, build_consent, withdraw_all
from thrive_fhir.builders.consent import EXT_DECISION_COMPETENCE

from . import formkit, saving
from .common import directory, done, now, other_agencies, render, saved_message, today
from .formkit import FormErrors
from .forms import COMPETENCE, ConsentForm, WithdrawForm, parse_date_parts

bp = launch_blueprint("consent", __name__, url_prefix="/sharing")

#: How long an agreement to share lasts before it must be asked again.
SHARING_DAYS = 365


#: The longest a sharing agreement may run before it must be asked again.
MAX_SHARING_DAYS = 3 * 365 + 1


def givers(launch) -> list[tuple[str, str, str]]:
    """Who can agree to share: (form key, label, reference). The young person, and each parent or
    carer recorded with the care team (a RelatedPerson; the clinician confirms they hold parental
    responsibility by choosing them)."""
    from smart_app.names import Names

    recs = records.of(launch.local_store, launch.patient_ref)
    names = Names.for_launch(launch, recs)
    out = [("young-person", "The young person", launch.patient_ref)]
    for rp in recs.versioned("RelatedPerson"):
        rel = ", ".join(
            c.get("display") or c.get("code", "")
            for cc in rp.resource.get("relationship", [])
            for c in cc.get("coding", [])[:1]
        )
        label = names(rp.ref) + (f" ({rel})" if rel else "")
        out.append((f"rp:{rp.id}", label, rp.ref))
    return out


def _competence(resource: dict | None) -> tuple[str | None, str | None]:
    for ext in (resource or {}).get("extension", []):
        if ext.get("url") == EXT_DECISION_COMPETENCE:
            parts = {e.get("url"): e.get("valueCode") or e.get("valueString") for e in ext.get("extension", [])}
            return parts.get("assessment"), parts.get("note")
    return None, None


def _agreement(current: records.Versioned | None, launch) -> dict | None:
    """Who agreed, and whether the young person could decide, in words."""
    if current is None:
        return None
    from smart_app.names import Names

    names = Names.for_launch(launch)
    by = [names(p) for p in current.resource.get("performer", [])]
    assessment, note = _competence(current.resource)
    return {"by": ", ".join(by), "competence": COMPETENCE.get(assessment or "", "Not recorded"), "note": note}


def _page(values=None, errors=None, status=200, conflict=None):
    launch = current_launch()
    store = launch.local_store
    current = records.consent(store, launch.patient_ref)
    agencies = other_agencies(launch)
    shared_refs = records.consent_agencies(current)
    by_ref = {agency_ref(directory(), a): a for a in agencies}
    giver_list = givers(launch)
    if values is None:
        end = today() + timedelta(days=SHARING_DAYS)
        values = {
            "agencies": [by_ref[r].key for r in shared_refs if r in by_ref],
            "version": current.version if current else 0,
            "end-day": str(end.day),
            "end-month": str(end.month),
            "end-year": str(end.year),
        }
        if current is not None and current.resource.get("status") == "active":
            refs = {ref: key for key, _, ref in giver_list}
            performer = next((p.get("reference") for p in current.resource.get("performer", [])), None)
            values["given_by"] = refs.get(performer, "")
            values["competence"] = _competence(current.resource)[0] or ""
            period_end = records.parse_when(current.resource.get("provision", {}).get("period", {}).get("end"))
            if period_end:
                values.update(
                    {
                        "end-day": str(period_end.day),
                        "end-month": str(period_end.month),
                        "end-year": str(period_end.year),
                    }
                )
    return render(
        "journeys/consent/index.html",
        status=status,
        errors=errors,
        values=values,
        consent=current,
        agreement=_agreement(current, launch),
        shared=[by_ref.get(r) for r in shared_refs],
        agencies=agencies,
        givers=[(k, label, None) for k, label, _ in giver_list],
        competence=[(k, v, None) for k, v in COMPETENCE.items()],
        plan=records.safety_plan(store, launch.patient_ref),
        conflict=conflict,
        conflict_agencies=[by_ref.get(r) for r in records.consent_agencies(records.Versioned(conflict.current, 0))]
        if conflict and conflict.current
        else [],
        saved=saved_message(),
    )


@bp.get("/")
@launch_required
def index():
    return _page()


def _input(
    current: records.Versioned | None,
    local_id: str,
    agency_refs: list[str],
    plan_ref: str,
    when,
    launch,
    w,
    *,
    performer: str | None = None,
    end_date=None,
    competence: str | None = None,
    competence_note: str | None = None,
):
    """Builder input for a new version. What is not given is kept from ``current`` (withdrawing
    one agency keeps who agreed, their competence and the end date)."""
    start = records.parse_when(current.resource["provision"]["period"]["start"]) if current else when.date()
    if performer is None:
        performer = next(
            (p.get("reference") for p in (current.resource.get("performer", []) if current else [])), w.patient_ref
        )
    if end_date is None:
        kept = records.parse_when(current.resource["provision"]["period"].get("end")) if current else None
        end_date = kept or when.date() + timedelta(days=SHARING_DAYS)
    if competence is None and current is not None:
        competence, competence_note = _competence(current.resource)
    return ConsentInput(
        local_id=local_id,
        source_ods=launch.ods_code,
        subject=w.patient_ref,
        performer=(performer,),
        agencies=tuple(agency_refs),
        custodian=w.organization_ref,
        plan=plan_ref,
        date_time=when,
        start_date=start,  # type: ignore[arg-type]  # None if the stored start is unreadable: the builder refuses it
        end_date=end_date,
        competence=competence,
        competence_note=competence_note,
    )


@bp.post("/")
@launch_required
@write_required
def save_consent():
    launch = current_launch()
    store = launch.local_store
    agencies = {a.key: a for a in other_agencies(launch)}
    giver_list = givers(launch)
    schema = ConsentForm(agency_keys=tuple(agencies), giver_keys=tuple(k for k, _, _ in giver_list))
    data, errors, raw = formkit.load(schema, request.form, ConsentForm.ORDER)
    for key in ("end-day", "end-month", "end-year"):
        raw[key] = request.form.get(key, "")
    date_errors = FormErrors()
    end = parse_date_parts(request.form, "end", "the date sharing ends", date_errors)
    if end is not None:
        if end <= today():
            date_errors.add("end-day", "The date sharing ends must be in the future")
        elif end > today() + timedelta(days=MAX_SHARING_DAYS):
            date_errors.add("end-day", "Sharing can be agreed for up to 3 years at a time")
    if data is None or date_errors:
        merged = FormErrors()
        for fid, msg in errors.items:
            if fid == "confirmed":
                continue
            merged.add(fid, msg)
        for fid, msg in date_errors.items:
            merged.add(fid, msg)
        if errors.get("confirmed"):
            merged.add("confirmed", errors.get("confirmed"))
        return _page(raw, merged, 400)
    w = saving.who(launch)
    plan = records.safety_plan(store, w.patient_ref)
    if plan is None:
        errors.add("agencies", "Write the safety plan first: it is the plan that will be shared")
        return _page(raw, errors, 400)
    current = records.consent(store, w.patient_ref)
    refs = [agency_ref(directory(), agencies[k]) for k in data["agencies"]]
    performer = {k: ref for k, _, ref in giver_list}[data["given_by"]]
    when = now()
    try:
        resource = build_consent(
            _input(
                current,
                current.local_id if current else data["token"],
                refs,
                plan.ref,
                when,
                launch,
                w,
                performer=performer,
                end_date=end,
                competence=data["competence"],
                competence_note=data.get("competence_note"),
            ),
            now=when,
        )
    except BuildError as exc:
        errors.add("given_by" if exc.field in ("performer", "competence") else "agencies", exc.message.rstrip("."))
        return _page(raw, errors, 400)
    try:
        outcome = saving.save(
            store,
            w,
            [(resource, data["version"])],
            activity="update" if current else "create",
            created_ref=None if current else f"Consent/{resource['id']}",
        )
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
    data, errors, _raw = formkit.load(WithdrawForm(), request.form, WithdrawForm.ORDER)
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
    if data["confirm"] != "yes":
        # ask first: once withdrawn, the agencies can no longer see the plan
        leaving = (
            [agencies[data["agency"]].name]
            if data["agency"]
            else [
                a.name if a else "an agency not in this directory"
                for a in ({agency_ref(d, x): x for x in agencies.values()}.get(r) for r in shared)
            ]
        )
        return render(
            "journeys/consent/confirm_withdraw.html",
            values=dict(request.form),
            leaving=leaving,
            everyone=not data["agency"],
            consent=current,
        )
    # one agency: keep the others; blank: withdraw from every agency
    remaining = [r for r in shared if r != agency_ref(d, agencies[data["agency"]])] if data["agency"] else []
    when = now()
    plan_ref = current.resource["provision"]["data"][0]["reference"]["reference"]
    if (
        data["agency"]
        and data["version"] == current.version - 1
        and agency_ref(d, agencies[data["agency"]]) not in shared
    ):
        return done(launch, "consent.index", "withdrawn", "duplicate")  # this withdrawal was already saved
    try:
        if remaining:
            resource = build_consent(_input(current, current.local_id, remaining, plan_ref, when, launch, w), now=when)
        else:
            # withdrawn from every agency: inactive, keeping the agencies so the record says what had been agreed
            everyone = shared or [
                a.get("reference", {}).get("reference") for a in current.resource["provision"]["actor"]
            ]
            resource = build_consent(
                withdraw_all(_input(current, current.local_id, everyone, plan_ref, when, launch, w)), now=when
            )
    except BuildError as exc:
        errors.add("agencies", exc.message.rstrip("."))
        return _page(None, errors, 400)
    try:
        outcome = saving.save(store, w, [(resource, data["version"])], activity="update")
    except saving.Conflict as conflict:
        return _page(None, None, 409, conflict)
    return done(launch, "consent.index", "withdrawn", outcome)
