"""Journey 6: a planned ending of help.

THRIVE asks services to be open about the limits of help and to plan endings with the young
person. One save records, together: the grouping at the ending (a new grouping decision whose note
holds what was said about limits and the ending; R4 EpisodeOfCare has no note element), each open
goal closed with how it ended, the episode of care finished, and the risk banner cleared if it no
longer applies. The grouping at the ending is written back to the EHR like any agreed grouping
(``smart_app.writeback``) when the site asks for it.
"""

from __future__ import annotations

from flask import request
from marshmallow import Schema, ValidationError, validates_schema

from smart_app import records, risk, wording, writeback
from smart_app.context import current_launch, launch_blueprint, launch_required, write_required
from thrive_fhir.builders import (
    BuildError,
    EpisodeInput,
    GoalClosing,
    GroupingDecision,
    build_episode,
    build_goal,
    build_grouping,
)
from thrive_fhir.ids import resource_id

from . import changes, formkit, saving, vocab
from .common import done, now, render, saved_message, today
from .formkit import Choice, Text
from .forms import GOAL_OUTCOMES, EndingForm
from .goals import _rebuild, _with_notes
from .grouping import decision_method, previous_of

bp = launch_blueprint("ending", __name__, url_prefix="/ending")


#: What to do with what is still open when help ends (the form asks about each one).
PLAN_CHOICES = {
    "end": ("End the safety plan", "It stays in the record with every version, but is no longer active."),
    "keep": ("Keep the safety plan active", "For example, another agency now leads it. Say who and why below."),
}
REFERRAL_CHOICES = {
    "keep": ("Keep the referral open", "The service still expects the young person."),
    "cancel": ("Cancel the referral", "The service will see it has been cancelled, with the reason."),
}
SHARING_CHOICES = {
    "keep": ("Keep sharing until the agreed end date", None),
    "withdraw": ("Stop sharing now", "The agencies will no longer be able to see the plan."),
}


def open_items(store, patient_ref: str) -> dict:
    """What is still open and must be asked about at the ending: the active safety plan, open
    referrals and active sharing (docs/design/fhir-model.md: a plan and its sharing outlive nothing by default)."""
    recs = records.of(store, patient_ref)
    plan = recs.safety_plan
    consent = recs.consent
    return {
        "plan": plan if plan is not None and plan.resource.get("status") == "active" else None,
        "referrals": [s for s in recs.signposts if s.is_open_referral],
        "consent": consent if consent is not None and consent.resource.get("status") == "active" else None,
    }


def _schema(previous: str | None, goal_ids: list[str], still_open: dict | None = None) -> Schema:
    """The ending form plus one "how did this goal end" question per open goal, and one question
    about each thing still open: the safety plan, each open referral, sharing."""
    still_open = still_open or {"plan": None, "referrals": [], "consent": None}
    extra: dict = {
        f"outcome-{gid}": Choice(tuple(GOAL_OUTCOMES), required=True, message="Choose how this goal ended")
        for gid in goal_ids
    }
    if still_open["plan"] is not None:
        extra["plan_choice"] = Choice(
            tuple(PLAN_CHOICES), required=True, message="Choose what happens to the safety plan"
        )
        extra["plan_reason"] = Text()
    for sp in still_open["referrals"]:
        extra[f"referral-{sp.id}"] = Choice(
            tuple(REFERRAL_CHOICES), required=True, message="Choose whether this referral stays open"
        )
    if still_open["referrals"]:
        extra["referral_reason"] = Text()
    if still_open["consent"] is not None:
        extra["sharing_choice"] = Choice(
            tuple(SHARING_CHOICES), required=True, message="Choose whether the plan is still shared"
        )

    @validates_schema(skip_on_field_errors=False)
    def _check_open(self, data, **kwargs):
        errors = {}
        if data.get("plan_choice") == "keep" and not data.get("plan_reason"):
            errors["plan_reason"] = "Say who leads the safety plan now and why it stays active"
        if any(v == "cancel" for k, v in data.items() if k.startswith("referral-")) and not data.get("referral_reason"):
            errors["referral_reason"] = "Say why the referral is cancelled: the service will see this"
        if errors:
            raise ValidationError(errors)

    extra["_check_open"] = _check_open
    extra["yp_involvement"] = Choice(
        vocab.YP_INVOLVEMENT, required=True, message="Choose whether the young person agreed with ending help"
    )
    extra["yp_reason"] = Text()

    @validates_schema(skip_on_field_errors=False)
    def _check_yp(self, data, **kwargs):
        if data.get("yp_involvement") in ("partly-agreed", "not-agreed", "not-involved") and not data.get("yp_reason"):
            raise ValidationError({"yp_reason": "Say why the young person did not agree or was not involved"})

    extra["_check_yp"] = _check_yp
    return type("EndingFormWithGoals", (EndingForm,), extra)(previous_grouping=previous)


ORDER_HEAD = ["limits", "grouping", "change_reason", "yp_involvement", "yp_reason"]


def _order(open_goals, still_open) -> list[str]:
    order = ORDER_HEAD + [f"outcome-{g.id}" for g in open_goals]
    order += ["plan_choice", "plan_reason"] + [f"referral-{s.id}" for s in still_open["referrals"]]
    return [*order, "referral_reason", "sharing_choice"]


def _page(values=None, errors=None, status=200):
    launch = current_launch()
    store = launch.local_store
    current = records.current_grouping(store, launch.patient_ref)
    episode = records.active_episode(store, launch.patient_ref, launch.organization_ref)
    finished = [e for e in records.of(store, launch.patient_ref).all("EpisodeOfCare") if e.get("status") == "finished"]
    if values is None:
        values = {"grouping": current.code if current else ""}
    return render(
        "journeys/ending/index.html",
        status=status,
        errors=errors,
        values=values,
        current=current,
        episode=episode,
        finished=finished,
        open_goals=[g for g in records.goals(store, launch.patient_ref) if g.is_open],
        groupings=vocab.groupings(),
        change_reasons=vocab.change_reasons(),
        yp_involvement=[c for c in vocab.involvement() if c.code in vocab.YP_INVOLVEMENT],
        outcomes=[(k, v, None) for k, v in GOAL_OUTCOMES.items()],
        still_open=_open_view(open_items(store, launch.patient_ref)),
        plan_choices=[(k, t, h) for k, (t, h) in PLAN_CHOICES.items()],
        referral_choices=[(k, t, h) for k, (t, h) in REFERRAL_CHOICES.items()],
        sharing_choices=[(k, t, h) for k, (t, h) in SHARING_CHOICES.items()],
        vocab=vocab,
        saved=saved_message(),
    )


def _open_view(still_open: dict) -> dict:
    from smart_app.names import Names

    from .common import directory

    d = directory()
    launch = current_launch()
    names = Names.for_launch(launch)
    referrals = []
    for sp in still_open["referrals"]:
        service = d.service(sp.service_code) if sp.service_code else None
        referrals.append(
            {
                "id": sp.id,
                "service": service.name if service else names((sp.request.get("performer") or [None])[0]),
                "when": sp.request.get("authoredOn"),
                "status": wording.request_status("referral", sp.task, sp.request.get("status")),
            }
        )
    consent = still_open["consent"]
    return {
        "plan": still_open["plan"],
        "referrals": referrals,
        "consent": consent,
        "shared_with": [
            names(a.get("reference"))
            for a in (consent.resource.get("provision", {}).get("actor", []) if consent else [])
        ],
    }


@bp.get("/")
@launch_required
def index():
    return _page()


@bp.post("/")
@launch_required
@write_required
def end_help():
    launch = current_launch()
    store = launch.local_store
    w = saving.who(launch)
    current = records.current_grouping(store, w.patient_ref)
    open_goals = [g for g in records.goals(store, w.patient_ref) if g.is_open]
    still_open = open_items(store, w.patient_ref)
    schema = _schema(current.code if current else None, [g.id for g in open_goals], still_open)
    order = _order(open_goals, still_open)
    data, errors, raw = formkit.load(schema, request.form, order)
    if data is None:
        return _page(raw, errors, 400)
    obs_id = resource_id("grouping", data["token"])
    if store.current_version("Observation", obs_id):
        return done(launch, "ending.index", "ending", "duplicate")
    episode = records.active_episode(store, w.patient_ref, w.organization_ref)
    if episode is None:
        errors.add("limits", "There is no open episode of help with this service to end")
        return _page(raw, errors, 400)

    when = now()
    yp = data["yp_involvement"]
    note = "Planned ending of help. What was said about the limits of help and the ending: " + data["limits"]
    if yp in ("partly-agreed", "not-agreed"):
        note += "\nWhat the young person did not agree with, and why: " + data["yp_reason"]
    if still_open["plan"] is not None and data.get("plan_choice") == "keep":
        note += "\nThe safety plan stays active: " + data["plan_reason"]
    kept = [sp for sp in still_open["referrals"] if data.get(f"referral-{sp.id}") == "keep"]
    if kept:
        note += f"\nReferrals kept open: {len(kept)}"
    items: list = []
    try:
        obs = build_grouping(
            GroupingDecision(
                local_id=data["token"],
                source_ods=launch.ods_code,
                grouping=data["grouping"],
                subject=w.patient_ref,
                episode=episode.ref,
                agreed_at=when,
                recorded_at=when,
                clinician=w.author_ref,
                yp_involvement=yp,
                participants=(w.patient_ref,) if yp != "not-involved" else (),
                not_involved_reason=data["yp_reason"] if yp == "not-involved" else None,
                previous=previous_of(current),
                change_reason=data.get("change_reason") if current is not None else None,
                method=decision_method(yp),
                note=note,
                note_author=w.practitioner_ref,
                encounter=launch.encounter_ref,
            ),
            now=when,
        )
        items.append((obs, 0))
        for g in open_goals:
            closed = build_goal(
                _rebuild(
                    g,
                    closing=GoalClosing(
                        outcome=data[f"outcome-{g.id}"], on=when.date(), reason="Closed at the planned ending of help"
                    ),
                )
            )
            items.append((_with_notes(closed, g, None), g.version))
        r = episode.resource
        start = records.parse_when(r["period"]["start"])
        items.append(
            (
                build_episode(
                    EpisodeInput(
                        local_id=episode.local_id,
                        source_ods=launch.ods_code,
                        subject=w.patient_ref,
                        managing_organization=r["managingOrganization"]["reference"],
                        start=start,
                        end=max(when.date(), start),
                        status="finished",
                        referral_requests=tuple(x["reference"] for x in r.get("referralRequest", [])),
                        teams=tuple(x["reference"] for x in r.get("team", [])),
                    )
                ),
                episode.version,
            )
        )
    except BuildError as exc:
        field = {
            "grouping": "grouping",
            "change_reason": "change_reason",
            "not_involved_reason": "yp_reason",
            "participants": "yp_involvement",
        }.get(exc.field.split("[")[0], "limits")
        errors.add(field, exc.message.rstrip("."))
        return _page(raw, errors, 400)
    # what was still open: each answered on the form
    plan = records.safety_plan(store, w.patient_ref)
    plan_after = plan.resource if plan else None
    if still_open["plan"] is not None and data.get("plan_choice") == "end":
        plan_after = changes.end_safety_plan(
            still_open["plan"], "Ended at the planned ending of help.", w.practitioner_ref, when
        )
        items.append((plan_after, still_open["plan"].version))
    for sp in still_open["referrals"]:
        if data.get(f"referral-{sp.id}") == "cancel":
            recs = records.of(store, w.patient_ref)
            for changed in changes.cancel_referral(
                sp, "Cancelled at the planned ending of help: " + data["referral_reason"], when
            ):
                found = recs.get(f"{changed['resourceType']}/{changed['id']}")
                items.append((changed, found.version if found else None))
    if still_open["consent"] is not None and data.get("sharing_choice") == "withdraw":
        items.append((changes.withdraw_sharing(still_open["consent"]), still_open["consent"].version))
    after = risk.assess(data["grouping"], plan_after, today())
    items += saving.flag_changes(store, w, data["token"], risk=after, now=when)
    try:
        outcome = saving.save(store, w, items, activity="update", created_ref=f"Observation/{obs['id']}")
    except saving.Conflict:
        errors.add(
            "limits",
            "Someone else changed this young person's goals or episode while you were writing. "
            "Check the page below, then save again",
        )
        return _page(raw, errors, 409)
    if outcome == "saved" and launch.write_back_grouping:
        # the grouping at the ending goes to the EHR like any agreed grouping; if it cannot, the
        # grouping page says so and offers to send it again (the ending itself is saved)
        reason = writeback.send(launch, obs)
        if reason is not None:
            return writeback.outcome_page(launch, reason, obs, saved="ending", what="ending of help")
    return done(launch, "ending.index", "ending", outcome)
