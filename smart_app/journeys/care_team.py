"""Journey 7: the care team, everyone's role in one place.

THRIVE asks every plan to say who does what (docs/design/thrive-framework.md, "Explicit plan and everyone's
role"). The team is one CareTeam per young person (profile ``thrive-care-team``), edited over time:
adding or removing a member saves a new version, sent with the version the page was drawn from, so
a change made meanwhile elsewhere is shown and never overwritten. Members are the young person, a
parent or carer (recorded by name as a RelatedPerson, saved with the team), the lead clinician (the
signed-in user, acting for their organisation) and agency workers from the services directory,
each with what they do. Removing the last member keeps the team's history and marks it inactive.
The safety plan points at the team (``CarePlan.careTeam``) from its next save.
"""

from __future__ import annotations

from collections.abc import Sequence

from flask import request

from smart_app import records
from smart_app.context import current_launch, launch_blueprint, launch_required, write_required
from smart_app.directory import agency_ref
from thrive_fhir.builders import (
    BuildError,
    CareTeamInput,
    CareTeamMember,
    RelatedPersonInput,
    build_care_team,
    build_related_person,
)

from . import formkit, saving
from .common import directory, done, other_agencies, render, saved_message, today
from .forms import MEMBER_KINDS, RELATIONSHIPS, CareTeamMemberForm, RemoveMemberForm
from .localids import derived_uuid4

bp = launch_blueprint("care_team", __name__, url_prefix="/care-team")

ACTIVE = ("active", "proposed")


def _participants(team: records.Versioned | None) -> list[CareTeamMember]:
    """Every participant of this version of the team as builder input (each kept as it was)."""
    if team is None:
        return []
    out = []
    for p in team.resource.get("participant", []):
        member = (p.get("member") or {}).get("reference")
        if not member:
            continue
        role = next((r.get("text") for r in p.get("role", []) if r.get("text")), None) or "Member"
        out.append(CareTeamMember(member=member, role=role, on_behalf_of=(p.get("onBehalfOf") or {}).get("reference")))
    return out


def _members(team: records.Versioned | None) -> list[CareTeamMember]:
    """The team's current members: nobody once the team is inactive (everyone was removed)."""
    if team is None or team.resource.get("status") not in ACTIVE:
        return []
    return _participants(team)


def _member_rows(team: records.Versioned | None, recs: records.PatientRecords) -> list[dict]:
    from smart_app.names import Names

    launch = current_launch()
    names = Names.for_launch(launch, recs)
    if launch.user_ref:
        names.cache.setdefault(launch.user_ref, "You")
    if launch.practitioner_role_ref:
        names.cache.setdefault(launch.practitioner_role_ref, "You")
    return [
        {
            "ref": m.member,
            "name": names(m.member),
            "role": m.role,
            "for": names(m.on_behalf_of) if m.on_behalf_of else "",
        }
        for m in _members(team)
    ]


def _page(values=None, errors=None, status=200, conflict=None):
    launch = current_launch()
    recs = records.of(launch.local_store, launch.patient_ref)
    team = recs.care_team
    if values is None:
        values = {}
    values.setdefault("version", team.version if team else 0)
    return render(
        "journeys/care_team/index.html",
        status=status,
        errors=errors,
        values=values,
        team=team,
        members=_member_rows(team, recs),
        kinds=[(k, v, None) for k, v in MEMBER_KINDS.items()],
        relationships=[("", "Choose"), *RELATIONSHIPS.items()],
        agencies=[("", "Choose an agency")] + [(a.key, a.name) for a in other_agencies(launch)],
        conflict=conflict,
        saved=saved_message(),
    )


@bp.get("/")
@launch_required
def index():
    return _page()


def _save(
    launch,
    team: records.Versioned | None,
    members: list[CareTeamMember],
    token: str,
    expected: int,
    extra: Sequence[tuple[dict, int | None]] = (),
):
    """Build the team's next version and save it (with ``extra``, e.g. a new RelatedPerson)."""
    w = saving.who(launch)
    recs = records.of(launch.local_store, w.patient_ref)
    episode = recs.active_episode(w.organization_ref)
    start = records.parse_when((team.resource.get("period") or {}).get("start")) if team else None
    resource = build_care_team(
        CareTeamInput(
            local_id=team.local_id if team else token,
            source_ods=launch.ods_code,
            subject=w.patient_ref,
            # an emptied team keeps its last members on the inactive version (a CareTeam needs one)
            members=tuple(members) or tuple(_participants(team)),
            name="Care team",
            status="active" if members else "inactive",
            episode=episode.ref if episode else None,
            start=start or today(),
            managing_organization=w.organization_ref if w.organization_ref.startswith("Organization/") else None,
        )
    )
    return saving.save(
        launch.local_store,
        w,
        [*extra, (resource, expected)],
        activity="update" if team else "create",
        created_ref=None if team else f"CareTeam/{resource['id']}",
    )


@bp.post("/add")
@launch_required
@write_required
def add():
    launch = current_launch()
    agencies = {a.key: a for a in other_agencies(launch)}
    data, errors, raw = formkit.load(
        CareTeamMemberForm(agency_keys=tuple(agencies)), request.form, CareTeamMemberForm.ORDER
    )
    if data is None:
        return _page(raw, errors, 400)
    w = saving.who(launch)
    team = records.care_team(launch.local_store, w.patient_ref)
    members = _members(team)
    extra: list[tuple[dict, int | None]] = []
    kind = data["kind"]
    try:
        if kind == "young-person":
            new = CareTeamMember(member=w.patient_ref, role=data.get("role") or "Young person")
        elif kind == "lead-clinician":
            me = w.author_ref
            new = CareTeamMember(
                member=me,
                role=data.get("role") or "Lead clinician",
                on_behalf_of=w.organization_ref
                if me.startswith("Practitioner/") and w.organization_ref.startswith("Organization/")
                else None,
            )
        elif kind == "parent-carer":
            person = build_related_person(
                RelatedPersonInput(
                    local_id=derived_uuid4(data["token"], "related-person"),
                    source_ods=launch.ods_code,
                    patient=w.patient_ref,
                    relationship=data["relationship"],
                    family=data["family"],
                    given=(data["given"],),
                )
            )
            extra.append((person, 0))
            role = data.get("role") or f"Parent or carer ({RELATIONSHIPS[data['relationship']].lower()})"
            new = CareTeamMember(member=f"RelatedPerson/{person['id']}", role=role)
        else:
            new = CareTeamMember(member=agency_ref(directory(), agencies[data["agency"]]), role=data["role"])
    except BuildError as exc:
        errors.add(
            {"family": "family", "given[0]": "given", "relationship": "relationship"}.get(exc.field, "kind"),
            exc.message.rstrip("."),
        )
        return _page(raw, errors, 400)
    if any(m.member == new.member for m in members):
        if team is not None and data["version"] == team.version - 1:
            return done(launch, "care_team.index", "care-team", "duplicate")  # this add was already saved
        errors.add("agency" if kind == "agency" else "kind", "They are already in the care team")
        return _page(raw, errors, 400)
    try:
        outcome = _save(launch, team, [*members, new], data["token"], data["version"], extra)
    except BuildError as exc:
        errors.add("role" if "role" in exc.field else "kind", exc.message.rstrip("."))
        return _page(raw, errors, 400)
    except saving.Conflict as conflict:
        raw["version"] = conflict.current_version
        return _page(raw, None, 409, conflict)
    return done(launch, "care_team.index", "care-team", outcome)


@bp.post("/remove")
@launch_required
@write_required
def remove():
    launch = current_launch()
    data, errors, _raw = formkit.load(RemoveMemberForm(), request.form, RemoveMemberForm.ORDER)
    if data is None:
        return _page(None, errors, 400)
    w = saving.who(launch)
    team = records.care_team(launch.local_store, w.patient_ref)
    members = _members(team)
    if not any(m.member == data["member"] for m in members):
        if team is not None and data["version"] == team.version - 1:
            return done(launch, "care_team.index", "care-team-removed", "duplicate")  # already removed
        errors.add("members", "That person is not in the care team")
        return _page(None, errors, 400)
    try:
        outcome = _save(
            launch, team, [m for m in members if m.member != data["member"]], data["token"], data["version"]
        )
    except saving.Conflict as conflict:
        return _page(None, None, 409, conflict)
    return done(launch, "care_team.index", "care-team-removed", outcome)
