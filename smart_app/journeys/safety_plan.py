"""Journey 3: the co-produced safety plan.

The plan is written with the young person, section by section (Stanley-Brown sections plus what
each agency will do), each item in their words with who holds it; it has an agreed review date,
every save is a new version with its author, and a print view gives the young person a copy. The
plan points at the young person's care team (``CarePlan.careTeam``, see the care team journey).

The form works without JavaScript: each section shows its items plus spare rows, and "Add another
row" redraws the form with one more row (nothing is saved until "Save safety plan"). Saving sends
the version the form was drawn from; if someone else saved meanwhile, both versions are shown and
nothing is overwritten.
"""

from __future__ import annotations

from datetime import timedelta

from flask import request

from smart_app import records, risk
from smart_app.context import current_launch, launch_blueprint, launch_required, write_required
from smart_app.directory import agency_ref, service_ref
from smart_app.names import Names, spoken_name
from thrive_fhir.builders import BuildError, SafetyPlanInput, SafetyPlanItem, build_safety_plan

from . import saving, vocab
from .common import directory, done, now, other_agencies, render, saved_message, today
from .forms import parse_safety_plan

bp = launch_blueprint("safety_plan", __name__, url_prefix="/safety-plan")

SPARE_ROWS = 1


# --- who holds an item: form keys <-> FHIR references ------------------------------------------
def holder_options(launch) -> list[tuple[str, str, str | None]]:
    """(key, label, reference) for every possible holder, young person first."""
    d = directory()
    w = saving.who(launch)
    out: list[tuple[str, str, str | None]] = [
        ("young-person", "The young person", w.patient_ref),
        ("this-service", "This service (you)", w.author_ref),
    ]
    out += [(f"agency:{a.key}", a.name, agency_ref(d, a)) for a in other_agencies(launch)]
    for s in d.services:
        out.append((f"service:{s.code}", f"{s.name} ({s.agency.name})", service_ref(d, s)))
    return out


def contributor_options(launch) -> list[tuple[str, str, str | None]]:
    d = directory()
    w = saving.who(launch)
    out = [("young-person", "The young person", w.patient_ref), ("parent-carer", "Parent or carer", None)]
    out += [(f"agency:{a.key}", a.name, agency_ref(d, a)) for a in other_agencies(launch)]
    return out


def _rows_from_plan(plan: records.Versioned | None, launch) -> dict:
    """Form values for an existing plan (or a new one, with the crisis line suggested)."""
    by_ref = {ref: key for key, _, ref in holder_options(launch)}
    values: dict = {}
    counts: dict[str, int] = {}
    if plan is None:
        crisis = next((s for s in directory().services if s.code == "crisis-line"), None)
        if crisis is not None:
            values["professionals-agencies-0-text"] = f"{crisis.name}: {crisis.phone}"
            values["professionals-agencies-0-holder"] = f"service:{crisis.code}"
            counts["professionals-agencies"] = 1
        return {"values": values, "counts": counts}
    for activity in plan.resource.get("activity", []):
        detail = activity.get("detail", {})
        section = next((c.get("code") for c in detail.get("code", {}).get("coding", [])), None)
        if section is None:
            continue
        n = counts.get(section, 0)
        values[f"{section}-{n}-text"] = detail.get("description", "")
        performers = [p.get("reference") for p in detail.get("performer", [])]
        values[f"{section}-{n}-holder"] = next((by_ref[p] for p in performers if p in by_ref), "")
        counts[section] = n + 1
    end = records.parse_when(plan.resource.get("period", {}).get("end"))
    if end:
        values.update({"review-day": str(end.day), "review-month": str(end.month), "review-year": str(end.year)})
    contributors = {c.get("reference") for c in plan.resource.get("contributor", [])}
    values["contributors"] = [k for k, _, ref in contributor_options(launch) if ref and ref in contributors]
    notes = [n.get("text", "") for n in plan.resource.get("note", [])]
    if any(n.startswith("Also written with: Parent or carer") for n in notes):
        values["contributors"].append("parent-carer")
    reason = next(
        (n.split(": ", 1)[1] for n in notes if n.startswith("The young person did not help write this plan: ")), None
    )
    if reason:
        values["no_yp_reason"] = reason
    return {"values": values, "counts": counts}


def _counts_from_form(form) -> dict[str, int]:
    counts = {}
    for section in vocab.safety_plan_sections():
        n = 0
        while f"{section.code}-{n}-text" in form or f"{section.code}-{n}-holder" in form:
            n += 1
        counts[section.code] = n
    return counts


def _versions(store, plan: records.Versioned | None) -> list[dict]:
    """Every saved version, newest first, with who saved it (``LocalStore.history``)."""
    if plan is None:
        return []
    names = Names.for_launch(current_launch())
    return [
        {
            "version": h["version"],
            "saved_at": h["saved_at"],
            "author": names(h["author_ref"]) if h["author_ref"] else "Not recorded",
            "resource": h["resource"],
        }
        for h in reversed(store.history("CarePlan", plan.id))
    ]


def _sections_view(resource: dict | None, launch, *, for_young_person: bool = False) -> list[dict]:
    """The plan's items grouped by section, in the CodeSystem's order, with holder names.

    ``for_young_person``: the printed copy is the young person's own plan, written to them (the
    section names already say "I" and "my"): their own items carry no holder, and "this service
    (you)", which means the clinician on screen, becomes "your worker at <service>"."""
    labels: dict[str | None, str | None] = {ref: label for _, label, ref in holder_options(launch)}
    if for_young_person:
        w = saving.who(launch)
        labels[w.patient_ref] = None
        labels[w.author_ref] = _worker_label(launch)
    names = Names.for_launch(launch)
    out = []
    for section in vocab.safety_plan_sections():
        items = []
        for activity in (resource or {}).get("activity", []):
            detail = activity.get("detail", {})
            if section.code in [c.get("code") for c in detail.get("code", {}).get("coding", [])]:
                holders = [
                    labels[p.get("reference")] if p.get("reference") in labels else names(p)
                    for p in detail.get("performer", [])
                ]
                items.append({"text": detail.get("description", ""), "holders": [h for h in holders if h]})
        out.append(
            {"code": section.code, "display": section.display, "definition": section_hint(section), "entries": items}
        )
    return out


#: Hints under each section of the form, in plain words for the clinician and the young person
#: (the CodeSystem's definitions are written for developers and data teams).
SECTION_HINTS = {
    "agency-actions": "What each agency working with the young person (school, social care, youth justice, "
    "a charity) has agreed to do to help keep them safe.",
}


def section_hint(section) -> str | None:
    return SECTION_HINTS.get(section.code, section.definition)


def _worker_label(launch) -> str:
    """How the young person's copy names the clinician's service."""
    d = directory()
    own = next((a for a in d.agencies if agency_ref(d, a) == launch.organization_ref), None)
    return f"Your worker at {own.name}" if own else "Your worker"


def _current_plan(launch) -> records.Versioned | None:
    """The young person's current plan (none in a launch without a young person)."""
    return records.safety_plan(launch.local_store, launch.patient_ref) if launch.patient_ref else None


def _form_page(values, counts, errors=None, status=200, conflict=None, spare: int = 0):
    """The form with ``counts`` rows per section plus ``spare`` empty ones (a fresh form gets one
    spare row per section; a redrawn form shows exactly the rows that were posted, so "Add another
    row" adds one row to its own section and nothing anywhere else)."""
    launch = current_launch()
    plan = _current_plan(launch)
    sections = []
    for section in vocab.safety_plan_sections():
        n = max(counts.get(section.code, 0) + spare, 1)
        sections.append(
            {"code": section.code, "display": section.display, "definition": section_hint(section), "rows": range(n)}
        )
    return render(
        "journeys/safety_plan/edit.html",
        status=status,
        errors=errors,
        values=values,
        sections=sections,
        holders=[("", "Nobody in particular")] + [(k, label) for k, label, _ in holder_options(launch)],
        contributors=[(k, label, None) for k, label, _ in contributor_options(launch)],
        plan=plan,
        conflict=conflict,
        conflict_sections=_sections_view(conflict.current, launch) if conflict else None,
        review_example=today() + timedelta(days=91),
    )


def written_with(plan: records.Versioned | None, launch) -> list[str]:
    """Everyone who helped write the plan, by name: the contributors saved on the CarePlan, and the
    parent or carer (who has no record of their own to point at, so the plan's note says so)."""
    if plan is None:
        return []
    names = Names.for_launch(launch)
    out = [names(c) for c in plan.resource.get("contributor", [])]
    if any(n.get("text", "").startswith("Also written with: Parent or carer") for n in plan.resource.get("note", [])):
        out.append("Parent or carer")
    return out


def _team_active(launch) -> bool:
    team = records.care_team(launch.local_store, launch.patient_ref)
    return team is not None and team.resource.get("status") in ("active", "proposed")


@bp.get("/")
@launch_required
def index():
    launch = current_launch()
    plan = _current_plan(launch)
    return render(
        "journeys/safety_plan/index.html",
        plan=plan,
        sections=_sections_view(plan.resource if plan else None, launch),
        versions=_versions(launch.local_store, plan),
        team_active=_team_active(launch),
        active=risk.assess(None, plan.resource if plan else None, today()).plan_active,
        saved=saved_message(),
        written_with=written_with(plan, launch),
    )


@bp.get("/print")
@launch_required
def print_view():
    launch = current_launch()
    plan = _current_plan(launch)
    return render(
        "journeys/safety_plan/print.html",
        plan=plan,
        sections=_sections_view(plan.resource if plan else None, launch, for_young_person=True),
        crisis=[s for s in directory().services if s.code == "crisis-line"],
        young_person=spoken_name((launch.banner or {}).get("name")),
        yp_copy=True,
    )


@bp.get("/version/<int:version>")
@launch_required
def version(version: int):
    launch = current_launch()
    plan = _current_plan(launch)
    found = next((v for v in _versions(launch.local_store, plan) if v["version"] == version), None)
    if found is None or plan is None:  # no plan has no versions
        return render(
            "journeys/safety_plan/index.html",
            status=404,
            plan=None,
            sections=[],
            versions=[],
            active=False,
            saved=None,
            missing_version=version,
        )
    return render(
        "journeys/safety_plan/version.html",
        v=found,
        sections=_sections_view(found["resource"], launch),
        latest=plan.version,
    )


@bp.route("/edit", methods=["GET", "POST"])
@launch_required
@write_required
def edit():
    launch = current_launch()
    store = launch.local_store
    plan = records.safety_plan(store, launch.patient_ref)
    if request.method == "GET":
        start = _rows_from_plan(plan, launch)
        values = start["values"]
        values["version"] = plan.version if plan else 0
        if plan is None:
            values["contributors"] = ["young-person"]
        return _form_page(values, start["counts"], spare=SPARE_ROWS)

    raw = {k: (request.form.getlist(k) if k == "contributors" else v) for k, v in request.form.items()}
    raw.setdefault("contributors", [])
    counts = _counts_from_form(request.form)
    action = request.form.get("action", "")
    if action.startswith("add-row:"):
        # "Add another row" without JavaScript: redraw with one more row in that section, save nothing
        section = action.split(":", 1)[1]
        if section in counts:
            counts[section] += 1
        return _form_page(raw, counts, None)

    holders = {k: ref for k, _, ref in holder_options(launch)}
    contributors = {k: ref for k, _, ref in contributor_options(launch)}
    head, items, review, errors = parse_safety_plan(
        request.form, holder_keys=set(holders), contributor_keys=set(contributors), today=today()
    )
    if errors:
        return _form_page(raw, counts, errors, 400)

    w = saving.who(launch)
    when = now()
    d = directory()
    plan_items = []
    for section, text, holder in items:
        if section == "professionals-agencies" and holder.startswith("service:"):
            # crisis numbers go into the words too, so the plan reads even if the service cannot be looked up
            service = d.service(holder.split(":", 1)[1])
            if service is not None and service.phone and service.phone.replace(" ", "") not in text.replace(" ", ""):
                text = f"{text} ({service.name}: {service.phone})"
        plan_items.append(
            SafetyPlanItem(section=section, text=text, performer_refs=(holders[holder],) if holder else ())
        )
    chosen = head["contributors"]
    notes = []
    if "young-person" not in chosen:
        notes.append("The young person did not help write this plan: " + head["no_yp_reason"])
    if "parent-carer" in chosen:
        notes.append("Also written with: Parent or carer")
    contributor_refs = [contributors[c] for c in chosen if contributors.get(c)]
    local_id = plan.local_id if plan else head["token"]
    created = records.parse_when(plan.resource.get("created")) if plan else when
    start = records.parse_when(plan.resource.get("period", {}).get("start")) if plan else when.date()
    grouping = records.current_grouping(store, w.patient_ref)
    team = records.care_team(store, w.patient_ref)
    try:
        resource = build_safety_plan(
            SafetyPlanInput(
                local_id=local_id,
                source_ods=launch.ods_code,
                subject=w.patient_ref,
                start_date=start,
                review_date=review,
                created=created,
                author=w.author_ref,
                items=tuple(plan_items),
                contributors=tuple(contributor_refs),
                supporting_info=(grouping.ref,) if grouping else (),
                care_team=team.ref if team and team.resource.get("status") in ("active", "proposed") else None,
                note="\n".join(notes) or None,
            ),
            now=when,
        )
    except BuildError as exc:
        errors.add("review-day" if exc.field == "review_date" else "warning-signs-0-text", exc.message.rstrip("."))
        return _form_page(raw, counts, errors, 400)
    if resource.get("note") and len(notes) > 1:
        resource["note"] = [{"text": n} for n in notes]  # one Annotation per statement

    expected = head["version"]
    created_ref = None if plan else f"CarePlan/{resource['id']}"
    if plan is None and expected:
        # the form was drawn from a plan that no longer exists here: treat as a conflict, never a blind create
        return _form_page(raw, counts, None, 409, conflict=saving.Conflict(f"CarePlan/{resource['id']}", None, 0))
    after = risk.assess(grouping.code if grouping else None, resource, today())
    flags = saving.flag_changes(store, w, head["token"], risk=after, now=when)
    try:
        outcome = saving.save(
            store, w, [(resource, expected), *flags], activity="update" if plan else "create", created_ref=created_ref
        )
    except saving.Conflict as conflict:
        raw["version"] = conflict.current_version
        return _form_page(raw, counts, None, 409, conflict=conflict)
    return done(launch, "safety_plan.index", "safety-plan", outcome)
