"""Journey 2: Goals Based Outcomes.

Up to three open goals in the young person's own words; every open goal rated 0-10 on one screen
at the end of a session (radio buttons: tab to a goal, arrow keys to the score, Enter to save);
a chart per goal with the reliable change band; an explicit, recorded discussion when a goal is not
moving; and closing a goal with how and why it ended.

Each rating is a new Observation (one event, one resource). A goal is long-lived: a discussion or
a closing is a new version of the same Goal, sent with the version the page was drawn from, so a
change made meanwhile elsewhere is shown and never overwritten.
"""

from __future__ import annotations

from flask import current_app, request

from smart_app import gbo, records
from smart_app.context import current_launch, launch_blueprint, launch_required, write_required
from thrive_fhir.builders import (
    BuildError,
    GoalAcceptance,
    GoalClosing,
    GoalInput,
    GoalScoreInput,
    build_gbo_score,
    build_goal,
    check_goal_slots,
)
from thrive_fhir.builders.goals import MAX_OPEN_GOALS
from thrive_fhir.ids import resource_id

from . import formkit, saving
from .common import build_error_to_form, done, now, render, saved_message, today
from .forms import GOAL_OUTCOMES, CloseGoalForm, DiscussionForm, NewGoalForm, ratings_form
from .localids import derived_uuid4

bp = launch_blueprint("goals", __name__, url_prefix="/goals")


def _review_after() -> int:
    return int(current_app.config.get("GBO_REVIEW_AFTER_RATINGS", gbo.DEFAULT_REVIEW_AFTER))


def _goal_views(goal_records):
    review_after = _review_after()
    out = []
    for g in goal_records:
        out.append(
            {
                "record": g,
                "chart": gbo.goal_chart(g.id, g.slot, g.description, g.ratings),
                "change": gbo.change_label(g.ratings),
                "ended": "" if g.is_open else gbo.ending_words(g.resource),
                "progress": gbo.achievement_words(next(iter(records.codes(g.resource.get("achievementStatus"))), None)),
                "needs_discussion": g.is_open and gbo.needs_discussion(g.ratings, g.last_discussed, review_after),
            }
        )
    return out


def _page(values=None, errors=None, status=200, form=None, **extra):
    launch = current_launch()
    goal_records = records.goals(launch.local_store, launch.patient_ref)
    open_goals = [g for g in goal_records if g.is_open]
    return render(
        "journeys/goals/index.html",
        status=status,
        errors=errors,
        values=values or {},
        form=form,
        goals=_goal_views(goal_records),
        open_goals=open_goals,
        can_add=len(open_goals) < MAX_OPEN_GOALS and _free_slot(goal_records) is not None,
        slots_used=_free_slot(goal_records) is None,
        max_goals=MAX_OPEN_GOALS,
        review_after=_review_after(),
        saved=saved_message(),
        **extra,
    )


@bp.get("/")
@launch_required
def index():
    return _page()


def _find_goal(goal_id: str):
    launch = current_launch()
    if launch.patient_ref is None:  # no young person in this launch: no goal of theirs either
        return None
    for g in records.goals(launch.local_store, launch.patient_ref):
        if g.id == goal_id:
            return g
    return None


def _free_slot(goal_records) -> int | None:
    """The lowest goal number never used in this episode (a slot is never reused for another goal)."""
    used = {g.slot for g in goal_records}
    return next((s for s in (1, 2, 3) if s not in used), None)


@bp.post("/add")
@launch_required
@write_required
def add():
    launch = current_launch()
    store = launch.local_store
    data, errors, raw = formkit.load(NewGoalForm(), request.form, NewGoalForm.ORDER)
    if data is None:
        return _page(raw, errors, 400, form="add")
    goal_id = resource_id("gbo-goal", data["token"])
    if store.current_version("Goal", goal_id):
        return done(launch, "goals.index", "goal", "duplicate")

    w = saving.who(launch)
    existing = records.goals(store, w.patient_ref)
    open_count = sum(1 for g in existing if g.is_open)
    if open_count >= MAX_OPEN_GOALS:
        errors.add("description", f"There are already {MAX_OPEN_GOALS} open goals. Close one before adding another")
        return _page(raw, errors, 400, form="add")
    slot = _free_slot(existing)
    if slot is None:
        errors.add(
            "description",
            "All three goal numbers have been used in this episode. End the episode of help to start new goals",
        )
        return _page(raw, errors, 400, form="add")
    when = now()
    goal_input = GoalInput(
        local_id=data["token"],
        source_ods=launch.ods_code,
        slot=slot,
        description=data["description"],
        subject=w.patient_ref,
        start_date=when.date(),
        expressed_by=w.patient_ref,
        acceptance=(GoalAcceptance(individual=w.patient_ref, status="agree"),),
        achievement_status="in-progress",
    )
    items = []
    try:
        check_goal_slots(goal_input, [g.resource for g in existing])
        goal = build_goal(goal_input)
        items.append((goal, 0))
        if data.get("baseline") is not None:
            episode_ref, episode_items = saving.episode_for(store, w, data["token"], today())
            items = episode_items + items
            items.append(
                (
                    build_gbo_score(
                        GoalScoreInput(
                            local_id=derived_uuid4(data["token"], "baseline"),
                            source_ods=launch.ods_code,
                            goal=f"Goal/{goal['id']}",
                            slot=slot,
                            score=data["baseline"],
                            rater=w.patient_ref,
                            subject=w.patient_ref,
                            episode=episode_ref,
                            effective=when,
                            encounter=launch.encounter_ref,
                            goal_start_date=when.date(),
                        ),
                        now=when,
                    ),
                    0,
                )
            )
    except BuildError as exc:
        build_error_to_form(exc, {"score": "baseline"}, errors, "description")
        return _page(raw, errors, 400, form="add")
    outcome = saving.save(store, w, items, activity="create", created_ref=f"Goal/{goal['id']}")
    return done(launch, "goals.index", "goal", outcome)


@bp.post("/rate")
@launch_required
@write_required
def rate():
    launch = current_launch()
    store = launch.local_store
    w = saving.who(launch)
    open_goals = [g for g in records.goals(store, w.patient_ref) if g.is_open]
    schema = ratings_form([g.id for g in open_goals])
    data, errors, raw = formkit.load(schema, request.form, schema.ORDER)
    if not open_goals:
        errors.add("token", "There are no open goals to rate")
        return _page(raw, errors, 400, form="rate")
    if data is None:
        return _page(raw, errors, 400, form="rate")
    when = now()
    episode_ref, items = saving.episode_for(store, w, data["token"], today())
    first_ref = None
    try:
        for g in open_goals:
            score = data.get(f"score-{g.id}")
            if score is None:
                continue
            obs = build_gbo_score(
                GoalScoreInput(
                    local_id=derived_uuid4(data["token"], g.id),
                    source_ods=launch.ods_code,
                    goal=g.ref,
                    slot=g.slot,
                    score=score,
                    rater=w.patient_ref,
                    subject=w.patient_ref,
                    episode=episode_ref,
                    effective=when,
                    encounter=launch.encounter_ref,
                    goal_start_date=g.start_date,
                ),
                now=when,
            )
            first_ref = first_ref or f"Observation/{obs['id']}"
            items.append((obs, 0))
    except BuildError as exc:
        errors.add(f"score-{g.id}", exc.message.rstrip("."))
        return _page(raw, errors, 400, form="rate")
    # Each rated goal's achievementStatus follows its score change (a new version of the Goal only
    # when the status changes). It is derived, so if someone changed a goal meanwhile the ratings are
    # saved without it and the next rating or discussion brings it up to date.
    updates = []
    for g in open_goals:
        score = data.get(f"score-{g.id}")
        if score is None:
            continue
        new_status = gbo.achievement([*g.ratings, records.Rating(when, score, w.patient_ref)])
        if new_status != next(iter(records.codes(g.resource.get("achievementStatus"))), None):
            try:
                updates.append(
                    (_with_notes(build_goal(_rebuild(g, achievement_status=new_status)), g, None), g.version)
                )
            except BuildError:  # a goal that arrived from elsewhere and cannot be rebuilt keeps its status
                continue
    try:
        outcome = saving.save(store, w, items + updates, activity="create", created_ref=first_ref)
    except saving.Conflict:
        outcome = saving.save(store, w, items, activity="create", created_ref=first_ref)
    return done(launch, "goals.index", "ratings", outcome)


def _rebuild(goal: records.GoalRecord, **changes) -> GoalInput:
    """The stored goal as builder input (so a new version keeps everything it had)."""
    r = goal.resource
    acceptance = tuple(
        GoalAcceptance(
            individual=next(e["valueReference"]["reference"] for e in ext["extension"] if e["url"] == "individual"),
            status=next(e["valueCode"] for e in ext["extension"] if e["url"] == "status"),
        )
        for ext in r.get("extension", [])
        if ext.get("url", "").endswith("goal-acceptance")
    )
    achievement = next((c.get("code") for c in r.get("achievementStatus", {}).get("coding", [])), None)
    base = dict(
        local_id=goal.local_id,
        slot=goal.slot,
        description=goal.description,
        subject=r["subject"]["reference"],
        start_date=goal.start_date,
        expressed_by=r["expressedBy"]["reference"],
        acceptance=acceptance,
        lifecycle_status=r.get("lifecycleStatus", "active"),
        achievement_status=achievement,
    )
    base.update(changes)
    return GoalInput(**base)


def _with_notes(goal_resource: dict, old: records.GoalRecord, new_note: dict | None) -> dict:
    """Keep every earlier note (discussions carry their time and author) and add the new one."""
    notes = list(old.resource.get("note", []))
    if new_note:
        notes.append(new_note)
    if notes:
        goal_resource["note"] = notes
    else:
        goal_resource.pop("note", None)
    return goal_resource


def _goal_page(template, goal, values=None, errors=None, status=200, conflict=None):
    view = _goal_views([goal])[0]
    if values is None:
        values = {"version": goal.version}
    return render(
        template,
        status=status,
        errors=errors,
        values=values,
        goal=view,
        conflict=conflict,
        outcomes=GOAL_OUTCOME_OPTIONS,
        review_after=_review_after(),
    )


def _save_goal(launch, w, goal, resource, data, raw, *, template: str, saved: str):
    """Save a goal's new version drawn from ``data["version"]``; if it changed meanwhile, redraw
    ``template`` with both versions and the person's words, saving nothing."""
    try:
        outcome = saving.save(launch.local_store, w, [(resource, data["version"])], activity="update")
    except saving.Conflict as conflict:
        raw["version"] = conflict.current_version
        return _goal_page(template, goal, raw, None, 409, conflict)
    return done(launch, "goals.index", saved, outcome)


def _missing():
    return render("journeys/goals/missing.html", status=404)


@bp.route("/<goal_id>/discuss", methods=["GET", "POST"])
@launch_required
@write_required
def discuss(goal_id: str):
    launch = current_launch()
    goal = _find_goal(goal_id)
    if goal is None:
        return _missing()
    if request.method == "GET":
        return _goal_page("journeys/goals/discuss.html", goal)
    data, errors, raw = formkit.load(DiscussionForm(), request.form, DiscussionForm.ORDER)
    if data is None:
        return _goal_page("journeys/goals/discuss.html", goal, raw, errors, 400)
    w = saving.who(launch)
    when = now()
    status = gbo.achievement(goal.ratings)
    note = {
        "time": when.isoformat().replace("+00:00", "Z"),
        "text": f"Progress discussed. Change so far: {gbo.change_label(goal.ratings)}. " + data["discussion"],
    }
    if w.practitioner_ref:
        note = {"authorReference": {"reference": w.practitioner_ref}, **note}
    try:
        resource = build_goal(_rebuild(goal, achievement_status=status))
    except BuildError as exc:
        errors.add("discussion", exc.message.rstrip("."))
        return _goal_page("journeys/goals/discuss.html", goal, raw, errors, 400)
    return _save_goal(
        launch,
        w,
        goal,
        _with_notes(resource, goal, note),
        data,
        raw,
        template="journeys/goals/discuss.html",
        saved="discussion",
    )


@bp.route("/<goal_id>/close", methods=["GET", "POST"])
@launch_required
@write_required
def close(goal_id: str):
    launch = current_launch()
    goal = _find_goal(goal_id)
    if goal is None:
        return _missing()
    if request.method == "GET":
        return _goal_page("journeys/goals/close.html", goal)
    data, errors, raw = formkit.load(CloseGoalForm(), request.form, CloseGoalForm.ORDER)
    if data is None:
        return _goal_page("journeys/goals/close.html", goal, raw, errors, 400)
    if not goal.is_open and data["version"] == goal.version - 1:
        return done(launch, "goals.index", "goal-closed", "duplicate")
    w = saving.who(launch)
    try:
        resource = build_goal(
            _rebuild(goal, closing=GoalClosing(outcome=data["outcome"], on=today(), reason=data["reason"]))
        )
    except BuildError as exc:
        errors.add("reason", exc.message.rstrip("."))
        return _goal_page("journeys/goals/close.html", goal, raw, errors, 400)
    return _save_goal(
        launch,
        w,
        goal,
        _with_notes(resource, goal, None),
        data,
        raw,
        template="journeys/goals/close.html",
        saved="goal-closed",
    )


GOAL_OUTCOME_OPTIONS = [(k, v, None) for k, v in GOAL_OUTCOMES.items()]
