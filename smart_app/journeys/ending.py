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

from smart_app import records, risk, writeback
from smart_app.context import current_launch, launch_blueprint, launch_required, write_required

from . import formkit, saving, vocab
from .common import done, now, render, saved_message, today
from .forms import GOAL_OUTCOMES, EndingForm
from .formkit import Choice, Text
from .goals import _rebuild, _with_notes
from .grouping import decision_method, previous_of

bp = launch_blueprint("ending", __name__, url_prefix="/ending")


def _schema(previous: str | None, goal_ids: list[str]) -> Schema:
    """The ending form plus one "how did this goal end" question per open goal."""
    extra: dict = {
        f"outcome-{gid}": Choice(tuple(GOAL_OUTCOMES), required=True, message="Choose how this goal ended") for gid in goal_ids
    }
    extra["yp_involvement"] = Choice(vocab.YP_INVOLVEMENT, required=True,
                                     message="Choose whether the young person agreed with ending help")
    extra["yp_reason"] = Text()

    @validates_schema(skip_on_field_errors=False)
    def _check_yp(self, data, **kwargs):
        if data.get("yp_involvement") in ("partly-agreed", "not-agreed", "not-involved") and not data.get("yp_reason"):
            raise ValidationError({"yp_reason": "Say why the young person did not agree or was not involved"})

    extra["_check_yp"] = _check_yp
    return type("EndingFormWithGoals", (EndingForm,), extra)(previous_grouping=previous)


ORDER_HEAD = ["limits", "grouping", "change_reason", "yp_involvement", "yp_reason"]


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
def end_help():
    launch = current_launch()
    store = launch.local_store
    w = saving.who(launch)
    current = records.current_grouping(store, w.patient_ref)
    open_goals = [g for g in records.goals(store, w.patient_ref) if g.is_open]
    schema = _schema(current.code if current else None, [g.id for g in open_goals])
    order = ORDER_HEAD + [f"outcome-{g.id}" for g in open_goals]
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
            closed = build_goal(_rebuild(g, closing=GoalClosing(
                outcome=data[f"outcome-{g.id}"], on=when.date(), reason="Closed at the planned ending of help")))
            items.append((_with_notes(closed, g, None), g.version))
        r = episode.resource
        start = records.parse_when(r["period"]["start"])
        items.append((
            build_episode(EpisodeInput(
                local_id=episode.local_id,
                source_ods=launch.ods_code,
                subject=w.patient_ref,
                managing_organization=r["managingOrganization"]["reference"],
                start=start,
                end=max(when.date(), start),
                status="finished",
                referral_requests=tuple(x["reference"] for x in r.get("referralRequest", [])),
                teams=tuple(x["reference"] for x in r.get("team", [])),
            )),
            episode.version,
        ))
    except BuildError as exc:
        field = {"grouping": "grouping", "change_reason": "change_reason", "not_involved_reason": "yp_reason",
                 "participants": "yp_involvement"}.get(exc.field.split("[")[0], "limits")
        errors.add(field, exc.message.rstrip("."))
        return _page(raw, errors, 400)
    plan = records.safety_plan(store, w.patient_ref)
    after = risk.assess(data["grouping"], plan.resource if plan else None, today())
    items += saving.flag_changes(store, w, data["token"], risk=after, now=when)
    try:
        outcome = saving.save(store, w, items, activity="update", created_ref=f"Observation/{obs['id']}")
    except saving.Conflict:
        errors.add("limits", "Someone else changed this young person's goals or episode while you were writing. "
                   "Check the page below, then save again")
        return _page(raw, errors, 409)
    if outcome == "saved" and launch.write_back_grouping:
        # the grouping at the ending goes to the EHR like any agreed grouping; if it cannot, the
        # grouping page says so and offers to send it again (the ending itself is saved)
        reason = writeback.send(launch, obs)
        if reason is not None:
            return done(launch, "grouping.index", "ending", outcome, ehr=f"failed-{reason}")
    return done(launch, "ending.index", "ending", outcome)
