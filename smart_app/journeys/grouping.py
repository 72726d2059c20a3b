"""Journey 1: agree a THRIVE grouping by shared decision making.

When the site writes groupings back to the EHR (config ``write_back_grouping`` and an EHR grant of
Observation create), the saved grouping is then also sent to the EHR (``smart_app.writeback``); a
failure there keeps the local save, says so plainly and offers "Send to the EHR again".

The form asks about the young person's own words, the needs discussed and the options considered
before the grouping, and shows the five groupings as plain descriptions in the CodeSystem's order,
never numbered or ranked: a grouping is the kind of help chosen, not a level of severity.

Each decision is a new Observation pointing back (``derivedFrom``) to the one it replaces; the old
one is never touched. If somebody else recorded a grouping after this form was drawn, the form is
shown again with their decision, and nothing is saved until the clinician confirms.
"""

from __future__ import annotations

from flask import abort, redirect, request

from smart_app import records, risk, writeback
from smart_app.context import current_launch, launch_blueprint, launch_required, state, write_required
from smart_app.directory import agency_ref
from thrive_fhir.builders import BuildError, GroupingDecision, PreviousGrouping, build_grouping
from thrive_fhir.ids import resource_id

from . import decision_support, formkit, saving, vocab
from .common import build_error_to_form, directory, done, now, other_agencies, render, saved_message, today
from .forms import GroupingForm

bp = launch_blueprint("grouping", __name__, url_prefix="/grouping")

#: Builder field -> form field, so a builder's refusal lands next to the right box.
_FIELD_MAP = {
    "grouping": "grouping",
    "yp_involvement": "yp_involvement",
    "family_involvement": "family_involvement",
    "not_involved_reason": "yp_reason",
    "participants": "participants",
    "change_reason": "change_reason",
    "yp_words": "yp_words",
    "needs_discussed": "needs",
    "options_considered": "options",
    "note": "change_note",
}


def previous_of(current: records.GroupingRecord | None) -> PreviousGrouping | None:
    """The grouping a new decision replaces (its ``derivedFrom``), when there is one with a code."""
    if current is None or not current.code:
        return None
    return PreviousGrouping(observation=current.ref, grouping=current.code, agreed_at=current.agreed_at)


def decision_method(yp_involvement: str) -> str:
    """A shared decision when the young person agreed, fully or partly; otherwise decided without
    their agreement (the builder then wants a note saying why)."""
    return "shared-decision-making" if yp_involvement in ("agreed", "partly-agreed") else "decided-without-agreement"


#: Outcome of a send to the EHR, carried by the redirect as a key only (never free text).
EHR_MESSAGES = {
    "sent": "The grouping has been added to the EHR record.",
}


@bp.get("/")
@launch_required
def index():
    launch = current_launch()
    rows = records.groupings(launch.local_store, launch.patient_ref)
    pending = {}
    if launch.mode == "ehr" and state().config.write_back_grouping:
        pending = state().writebacks.pending(launch.patient_ref, launch.iss)
    ehr = request.args.get("ehr", "")
    return render(
        "journeys/grouping/index.html",
        groupings=rows,
        saved=saved_message(),
        vocab=vocab,
        pending=[(g, pending[g.id]) for g in rows if g.id in pending],
        can_send=launch.write_back_grouping and launch.can_write,
        ehr_sent=EHR_MESSAGES.get(ehr),
        ehr_failed=writeback.reason_text(ehr[7:]) if ehr.startswith("failed-") else None,
    )


@bp.post("/<obs_id>/send-to-ehr")
@launch_required
@write_required
def send_to_ehr(obs_id: str):
    """Retry sending a saved grouping to the EHR (the warning's "Send to the EHR again")."""
    launch = current_launch()
    if launch.patient_ref is None:  # no young person in this launch: no grouping of theirs either
        abort(404)
    found = records.of(launch.local_store, launch.patient_ref).get(f"Observation/{obs_id}")
    if found is None or not records.is_grouping(found.resource):
        abort(404)
    if state().writebacks.status("Observation", obs_id, launch.iss) == "sent":
        return redirect(launch.url_for("grouping.index", ehr="sent"), code=303)
    reason = writeback.send(launch, found.resource)
    return redirect(launch.url_for("grouping.index", ehr="sent" if reason is None else f"failed-{reason}"), code=303)


def _form_page(values, errors=None, status=200, conflict=None):
    launch = current_launch()
    current = records.current_grouping(launch.local_store, launch.patient_ref)
    if not values.get("previous_id") and current is not None and conflict is None:
        values["previous_id"] = current.id
    return render(
        "journeys/grouping/agree.html",
        status=status,
        errors=errors,
        values=values,
        current=current,
        conflict=conflict,
        groupings=vocab.groupings(),
        participants=vocab.participants(),
        involvement=vocab.involvement(),
        yp_involvement=[c for c in vocab.involvement() if c.code in vocab.YP_INVOLVEMENT],
        change_reasons=vocab.change_reasons(),
        agencies=other_agencies(launch),
        vocab=vocab,
        support=decision_support.choices(),
        prompts=decision_support.PROMPTS,
        not_severity=decision_support.NOT_SEVERITY,
    )


@bp.route("/agree", methods=["GET", "POST"])
@launch_required
@write_required
def agree():
    launch = current_launch()
    if request.method == "GET":
        return _form_page({"participants": ["young-person", "clinician"]})

    store = launch.local_store
    current = records.current_grouping(store, launch.patient_ref)
    agencies = {a.key: a for a in other_agencies(launch)}
    schema = GroupingForm(
        previous_grouping=current.code if current else None,
        agency_keys=tuple(agencies),
        option_codes=decision_support.option_codes(),
    )
    data, errors, raw = formkit.load(schema, request.form, GroupingForm.ORDER)
    posted_token = request.form.get("token", "")
    if data is not None or posted_token:
        try:
            created_ref = f"Observation/{resource_id('grouping', (data or {}).get('token') or posted_token)}"
        except Exception:
            created_ref = None
        if created_ref and store.current_version("Observation", created_ref.split("/", 1)[1]):
            return done(launch, "grouping.index", "grouping", "duplicate")

    # Someone recorded a grouping after this form was drawn: show theirs, save nothing, ask again.
    if (request.form.get("previous_id") or None) != (current.id if current else None):
        raw["previous_id"] = current.id if current else ""
        return _form_page(raw, None, 409, conflict=current)
    if data is None:
        return _form_page(raw, errors, 400)

    w = saving.who(launch)
    when = now()
    parts = data["participants"]
    participant_refs = [w.patient_ref] if "young-person" in parts else []
    participant_refs += [agency_ref(directory(), agencies[k]) for k in data["agencies"]]
    took_part = [c.display for c in vocab.participants() if c.code in parts]
    if data["agencies"]:
        took_part.append("(" + ", ".join(agencies[k].name for k in data["agencies"]) + ")")
    note_lines = ["Took part: " + "; ".join(took_part)]
    yp = data["yp_involvement"]
    if yp in ("partly-agreed", "not-agreed"):
        note_lines.append("What the young person did not agree with, and why: " + data["yp_reason"])
    if data.get("change_reason") and data.get("change_note"):
        note_lines.append("Reason for the change: " + data["change_note"])
    note_lines += decision_support.note_lines(data["offered"], data["chosen"])

    episode_ref, episode_items = saving.episode_for(store, w, data["token"], today())
    try:
        obs = build_grouping(
            GroupingDecision(
                local_id=data["token"],
                source_ods=launch.ods_code,
                grouping=data["grouping"],
                subject=w.patient_ref,
                episode=episode_ref,
                agreed_at=when,
                recorded_at=when,
                clinician=w.author_ref,
                yp_involvement=yp,
                participants=tuple(participant_refs),
                family_involvement=data["family_involvement"],
                not_involved_reason=data["yp_reason"] if yp == "not-involved" else None,
                previous=previous_of(current),
                change_reason=data.get("change_reason") if current is not None else None,
                method=decision_method(yp),
                yp_words=data.get("yp_words"),
                needs_discussed=data["needs"],
                options_considered=data["options"],
                note="\n".join(note_lines),
                note_author=w.practitioner_ref,
                encounter=launch.encounter_ref,
            ),
            now=when,
        )
    except BuildError as exc:
        build_error_to_form(exc, _FIELD_MAP, errors, "grouping")
        return _form_page(raw, errors, 400)

    plan = records.safety_plan(store, w.patient_ref)
    after = risk.assess(data["grouping"], plan.resource if plan else None, today())
    flags = saving.flag_changes(store, w, data["token"], risk=after, now=when)
    try:
        outcome = saving.save(store, w, [*episode_items, (obs, 0), *flags], activity="create", created_ref=created_ref)
    except saving.Conflict:
        # only the derived Flag or a new episode can collide here; the page is redrawn with current data
        raw["previous_id"] = current.id if current else ""
        return _form_page(raw, None, 409, conflict=records.current_grouping(store, w.patient_ref))
    if outcome == "saved" and launch.write_back_grouping:
        # The local save has committed: whatever the EHR answers, the grouping is kept.
        reason = writeback.send(launch, obs)
        if reason is not None:
            return writeback.outcome_page(launch, reason, obs, saved="grouping")
        return done(launch, "grouping.index", "grouping", outcome, ehr="sent")
    return done(launch, "grouping.index", "grouping", outcome)
