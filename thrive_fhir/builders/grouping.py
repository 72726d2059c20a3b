"""THRIVE grouping decision -> grouping Observation (profile thrive-grouping-observation).

Each decision is a new Observation pointing back to the one it replaces (``derivedFrom``): the
history is a chain and the old grouping is never edited to close it (docs/design/fhir-model.md 2.3).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .. import canonical
from . import _codes
from ._common import (
    BuildError,
    Record,
    check_code,
    check_datetime,
    check_ref,
    check_refs,
    check_text,
    concept,
    display_for,
    episode_extension,
    fhir_datetime,
    now_utc,
    ref,
    reorder,
    start_resource,
)

#: Who can be recorded as having taken part in the decision (Observation.performer types).
PARTICIPANT_TYPES = ("Patient", "RelatedPerson", "Practitioner", "PractitionerRole", "Organization", "CareTeam")
GROUPING_STATUSES = ("final", "amended", "corrected", "entered-in-error")


@dataclass(frozen=True, kw_only=True)
class PreviousGrouping:
    """The grouping this decision replaces: ``Observation/<id>``, its grouping code and (if known) when it was agreed."""

    observation: str
    grouping: str
    agreed_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class GroupingDecision(Record):
    """A grouping agreed (or decided) with the young person and family at one point in time.

    ``grouping`` may be the canonical code or a name received from elsewhere ("Getting Additional
    Help", "Coping"): it is stored as the canonical code, and a synonym is kept as the text.
    ``participants`` are everyone who took part (the young person, parent or carer, other
    agencies); they become performers after the clinician. ``yp_words``, ``needs_discussed`` and
    ``options_considered`` are kept as labelled notes in the young person's and clinician's words.
    """

    grouping: str
    subject: str
    episode: str
    agreed_at: datetime
    recorded_at: datetime
    clinician: str
    yp_involvement: str
    participants: tuple[str, ...] = ()
    family_involvement: str | None = None
    not_involved_reason: str | None = None
    previous: PreviousGrouping | None = None
    change_reason: str | None = None
    method: str = "shared-decision-making"
    yp_words: str | None = None
    needs_discussed: str | None = None
    options_considered: str | None = None
    note: str | None = None
    note_author: str | None = None
    encounter: str | None = None
    status: str = "final"


def canonical_grouping(label: object, field: str = "grouping") -> tuple[str, bool]:
    """``(code, was_synonym)`` for a grouping code or a received name; unknown names are refused, never guessed."""
    if isinstance(label, str) and label in canonical.GROUPINGS:
        return label, False
    if not isinstance(label, str) or not label.strip():
        raise BuildError(field, "Choose a THRIVE grouping.")
    from .. import terminology

    try:
        return terminology.translate_grouping(label), True
    except terminology.UnmatchedGrouping:
        raise BuildError(field, f'"{label}" is not a THRIVE grouping. Choose one of the five groupings.') from None


def _note(text: str, author: str | None) -> dict:
    n: dict = {}
    if author:
        n["authorReference"] = ref(author)
    n["text"] = text
    return n


def _component(code: str, value: dict) -> dict:
    return {"code": concept(canonical.CS_CONCEPTS, code), **value}


def build_grouping(d: GroupingDecision, *, now: datetime | None = None) -> dict:
    """Build the grouping Observation; raises :class:`BuildError` naming the field at fault."""
    now = now or now_utc()
    status = check_code(d.status, "status", GROUPING_STATUSES, "a record status")
    code, was_synonym = canonical_grouping(d.grouping)
    subject = check_ref(d.subject, "subject", ("Patient",), "the young person")
    episode = check_ref(d.episode, "episode", ("EpisodeOfCare",), "the episode of care")
    encounter = check_ref(d.encounter, "encounter", ("Encounter",), "the contact") if d.encounter else None
    recorded_at = check_datetime(d.recorded_at, "recorded_at", "when it was recorded", not_after=now)
    agreed_at = check_datetime(d.agreed_at, "agreed_at", "when the grouping was agreed", not_after=now)
    if agreed_at > recorded_at:
        raise BuildError("agreed_at", "The grouping cannot be agreed after it was recorded.")
    clinician = check_ref(d.clinician, "clinician", ("PractitionerRole", "Practitioner"), "the clinician")
    participants = check_refs(d.participants, "participants", PARTICIPANT_TYPES, "a person who took part")
    for i, p in enumerate(participants):
        if p.startswith("Patient/") and p != subject:
            raise BuildError(
                f"participants[{i}]",
                "Only the young person this grouping is about can be listed as a patient taking part.",
            )

    yp = check_code(d.yp_involvement, "yp_involvement", _codes.INVOLVEMENT, "how the young person was involved")
    family = (
        check_code(d.family_involvement, "family_involvement", _codes.INVOLVEMENT, "how the family was involved")
        if d.family_involvement is not None
        else None
    )
    reason_text = check_text(
        d.not_involved_reason,
        "not_involved_reason",
        "why the young person was not involved",
        required=(yp == "not-involved"),
    )
    if yp != "not-involved" and subject not in participants:
        raise BuildError(
            "participants",
            "Add the young person to who took part, or record their involvement as not involved.",
        )

    method = check_code(d.method, "method", _codes.GROUPING_METHODS, "how the grouping was reached")
    note = check_text(d.note, "note", "a note", required=False)
    if method == "decided-without-agreement" and note is None:
        raise BuildError("note", "Say in the note why the grouping was decided without agreement.")
    note_author = (
        check_ref(d.note_author, "note_author", ("Practitioner",), "the note's author") if d.note_author else None
    )
    if note_author is None and clinician.startswith("Practitioner/"):
        note_author = clinician

    derived_from = None
    change_reason = None
    if d.previous is not None:
        prev = d.previous
        derived_from = check_ref(prev.observation, "previous", ("Observation",), "the previous grouping")
        prev_code, _ = canonical_grouping(prev.grouping, "previous")
        if prev.agreed_at is not None:
            prev_at = check_datetime(prev.agreed_at, "previous", "when the previous grouping was agreed")
            if prev_at >= agreed_at:
                raise BuildError("agreed_at", "A new grouping must be agreed after the one it replaces.")
        if d.change_reason is not None:
            change_reason = check_code(
                d.change_reason, "change_reason", _codes.CHANGE_REASONS, "why the grouping changed"
            )
        elif prev_code != code:
            raise BuildError("change_reason", "Say why the grouping changed from the previous one.")
    elif d.change_reason is not None:
        raise BuildError(
            "change_reason", "A reason for change only applies when this grouping replaces an earlier one."
        )

    obs = start_resource("Observation", "grouping", d, canonical.PROFILE_GROUPING)
    obs["extension"] = [episode_extension(episode)]
    obs["status"] = status
    obs["category"] = [concept(canonical.CS_CONCEPTS, "thrive")]
    obs["code"] = concept(
        canonical.CS_CONCEPTS, "thrive-grouping", display_for(canonical.CS_CONCEPTS, "thrive-grouping")
    )
    obs["subject"] = ref(subject)
    if encounter:
        obs["encounter"] = ref(encounter)
    obs["effectiveDateTime"] = fhir_datetime(agreed_at)
    obs["issued"] = fhir_datetime(recorded_at)
    obs["performer"] = [ref(clinician)] + [ref(p) for p in participants if p != clinician]
    obs["valueCodeableConcept"] = concept(
        canonical.CS_GROUPING, code, display_for(canonical.CS_GROUPING, code), d.grouping if was_synonym else None
    )
    obs["method"] = concept(canonical.CS_CONCEPTS, method)
    if derived_from:
        obs["derivedFrom"] = [ref(derived_from)]
    notes = []
    if note:
        notes.append(_note(note, note_author))
    for field, label in (
        ("yp_words", "In the young person's own words"),
        ("needs_discussed", "Needs discussed"),
        ("options_considered", "Options considered"),
    ):
        text = check_text(getattr(d, field), field, label.lower(), required=False)
        if text:
            notes.append(_note(f"{label}: {text}", note_author))
    if notes:
        obs["note"] = notes
    components = [
        _component("young-person-involvement", {"valueCodeableConcept": concept(canonical.CS_INVOLVEMENT, yp)})
    ]
    if family:
        components.append(
            _component("family-involvement", {"valueCodeableConcept": concept(canonical.CS_INVOLVEMENT, family)})
        )
    if yp == "not-involved":
        components.append(_component("not-involved-reason", {"valueString": reason_text}))
    if change_reason:
        components.append(
            _component(
                "grouping-change-reason", {"valueCodeableConcept": concept(canonical.CS_CHANGE_REASON, change_reason)}
            )
        )
    obs["component"] = components
    return reorder(obs, ("extension",))
