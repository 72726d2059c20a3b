"""The journeys' forms: what a clinician may post, checked with marshmallow.

Messages follow the NHS service manual's error-message style: say what to do, in plain words,
about this field ("Choose the grouping you agreed"), never "invalid input". Rules that join fields
(a reason is needed when the grouping changes; the young person must be ticked as taking part when
they agreed) are checked here too, so every error can be shown next to the field it is about.

The FHIR builders check again when the resource is made (they are the last line); these forms are
the first line, with the clinician's wording.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import ClassVar

from marshmallow import Schema, ValidationError, fields, validates_schema

from thrive_fhir import canonical

from . import vocab
from .formkit import Choice, FormErrors, Text, Token, Version

GOAL_OUTCOMES = {
    "achieved": "Achieved",
    "not-achieved": "Not achieved",
    "ended": "Ended before it was achieved",
}


class Score(fields.Integer):
    """A 0-10 GBO rating; blank means "not rated today"."""

    def __init__(self, **kwargs):
        kwargs.setdefault("load_default", None)
        super().__init__(strict=False, allow_none=True, **kwargs)
        self.error_messages["invalid"] = "Choose a score from 0 to 10"

    def _deserialize(self, value, attr, data, **kwargs):
        if value in ("", None):
            return None
        if isinstance(value, str) and not re.fullmatch(r"\s*\d{1,2}\s*", value):
            raise ValidationError("Choose a whole number from 0 to 10")
        number = super()._deserialize(value, attr, data, **kwargs)
        if not 0 <= number <= 10:
            raise ValidationError("The score must be from 0 to 10")
        return number


# --- 1. grouping ------------------------------------------------------------------------------
class GroupingForm(Schema):
    """Agreeing a grouping by shared decision making."""

    token = Token()
    previous_id = fields.String(load_default="")
    yp_words = Text(blank="Write what the young person wants to be different, in their own words")
    needs = Text(required=True, blank="Write the needs you talked about")
    options = Text(required=True, blank="Write the options you considered")
    grouping = Choice(canonical.GROUPINGS, required=True, message="Choose the grouping you agreed")
    participants = fields.List(fields.String(), load_default=list)
    agencies = fields.List(fields.String(), load_default=list)
    offered = fields.List(fields.String(), load_default=list)
    chosen = fields.List(fields.String(), load_default=list)
    yp_involvement = Choice(vocab.YP_INVOLVEMENT, required=True, message="Choose whether the young person agreed")
    yp_reason = Text()
    family_involvement = Choice(
        [c.code for c in vocab.involvement()], required=True, message="Choose how the parent or carer was involved"
    )
    change_reason = Choice([c.code for c in vocab.change_reasons()], message="Choose why the grouping has changed")
    change_note = Text()

    ORDER: ClassVar[list[str]] = [
        "yp_words",
        "needs",
        "options",
        "offered",
        "chosen",
        "grouping",
        "change_reason",
        "change_note",
        "participants",
        "agencies",
        "yp_involvement",
        "yp_reason",
        "family_involvement",
    ]

    def __init__(
        self,
        *,
        previous_grouping: str | None = None,
        agency_keys: tuple[str, ...] = (),
        option_codes: frozenset[str] | set[str] | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.previous_grouping = previous_grouping
        self.agency_keys = agency_keys
        self.option_codes = option_codes

    @validates_schema(skip_on_field_errors=False)
    def _joined(self, data, **kwargs):
        errors: dict[str, str] = {}
        allowed = {c.code for c in vocab.participants()}
        parts = data.get("participants") or []
        yp = data.get("yp_involvement")
        family = data.get("family_involvement")
        if any(p not in allowed for p in parts):
            errors["participants"] = "Choose who took part from the list"
        elif not parts:
            errors["participants"] = "Choose who took part in the decision"
        elif yp and yp != "not-involved" and "young-person" not in parts:
            errors["participants"] = "Tick the young person as taking part, or choose that they were not involved"
        elif yp == "not-involved" and "young-person" in parts:
            errors["yp_involvement"] = "The young person is ticked as taking part, so choose whether they agreed"
        elif family in ("agreed", "partly-agreed", "not-agreed") and "parent-carer" not in parts:
            errors["participants"] = "Tick the parent or carer as taking part, or change how they were involved"
        elif family in ("not-involved", "not-applicable") and "parent-carer" in parts:
            errors["family_involvement"] = "The parent or carer is ticked as taking part, so choose whether they agreed"
        if self.option_codes is not None:
            if any(o not in self.option_codes for o in data.get("offered") or []):
                errors["offered"] = "Choose the options offered from the list"
            if any(o not in self.option_codes for o in data.get("chosen") or []):
                errors["chosen"] = "Choose the options chosen from the list"
        agencies = data.get("agencies") or []
        if any(a not in self.agency_keys for a in agencies):
            errors["agencies"] = "Choose the agencies from the list"
        elif agencies and not any(p in vocab.AGENCY_PARTICIPANTS for p in parts):
            errors.setdefault("participants", "Tick the kind of agency that took part, as well as the agency")
        if yp == "not-involved" and not data.get("yp_reason"):
            errors["yp_reason"] = "Say why the young person was not involved"
        elif yp in ("partly-agreed", "not-agreed") and not data.get("yp_reason"):
            errors["yp_reason"] = "Say what the young person did not agree with, and why"
        if yp and yp != "not-involved" and not data.get("yp_words"):
            errors["yp_words"] = "Write what the young person wants to be different, in their own words"
        grouping = data.get("grouping")
        if self.previous_grouping and grouping and grouping != self.previous_grouping and not data.get("change_reason"):
            errors["change_reason"] = "Choose why the grouping has changed"
        if data.get("change_reason") == "other" and not data.get("change_note"):
            errors["change_note"] = "Describe the reason for the change"
        if data.get("change_reason") and not self.previous_grouping:
            data["change_reason"] = None  # nothing to change from: ignore a stale choice
        if errors:
            raise ValidationError(errors)


# --- 2. goals ---------------------------------------------------------------------------------
class NewGoalForm(Schema):
    token = Token()
    description = Text(required=True, blank="Write the goal in the young person's own words", max_length=500)
    baseline = Score()

    ORDER: ClassVar[list[str]] = ["description", "baseline"]


class DiscussionForm(Schema):
    token = Token()
    version = Version()
    discussion = Text(required=True, blank="Write what you talked about and what you agreed")

    ORDER: ClassVar[list[str]] = ["discussion"]


class CloseGoalForm(Schema):
    token = Token()
    version = Version()
    outcome = Choice(tuple(GOAL_OUTCOMES), required=True, message="Choose how the goal ended")
    reason = Text(required=True, blank="Say why the goal is being closed")

    ORDER: ClassVar[list[str]] = ["outcome", "reason"]


class OrderedSchema(Schema):
    """A form whose fields are built per request: ``ORDER`` names them in page order."""

    ORDER: ClassVar[list[str]] = []


def ratings_form(goal_ids: list[str]) -> OrderedSchema:
    """One screen of ratings: a ``score-<goal id>`` field per open goal, blank = not rated."""
    spec: dict[str, fields.Field] = {"token": Token(), **{f"score-{gid}": Score() for gid in goal_ids}}
    schema_cls: type[OrderedSchema] = OrderedSchema.from_dict(spec, name="RatingsForm")  # type: ignore[assignment]

    class RatingsForm(schema_cls):  # type: ignore[valid-type,misc]
        ORDER: ClassVar[list[str]] = [f"score-{gid}" for gid in goal_ids]

        @validates_schema
        def _one(self, data, **kwargs):
            if goal_ids and all(data.get(f"score-{gid}") is None for gid in goal_ids):
                raise ValidationError({f"score-{goal_ids[0]}": "Choose a score for at least one goal"})

    return RatingsForm()


# --- 3. safety plan ---------------------------------------------------------------------------
def parse_date_parts(form, name: str, what: str, errors: FormErrors) -> date | None:
    """An NHS-style date input (``<name>-day``, ``-month``, ``-year``); errors point at the day box."""
    raw = [form.get(f"{name}-{p}", "").strip() for p in ("day", "month", "year")]
    if not any(raw):
        errors.add(f"{name}-day", f"Enter {what}")
        return None
    if not all(raw):
        missing = [p for p, v in zip(("day", "month", "year"), raw) if not v]
        errors.add(f"{name}-{missing[0]}", f"{what[0].upper()}{what[1:]} must include a {missing[0]}")
        return None
    if not all(v.isdigit() for v in raw) or len(raw[2]) != 4:
        errors.add(f"{name}-day", f"{what[0].upper()}{what[1:]} must be a real date")
        return None
    try:
        return date(int(raw[2]), int(raw[1]), int(raw[0]))
    except ValueError:
        errors.add(f"{name}-day", f"{what[0].upper()}{what[1:]} must be a real date")
        return None


class SafetyPlanHeadForm(Schema):
    """The parts of the safety plan form that are not item rows."""

    token = Token()
    version = Version()
    contributors = fields.List(fields.String(), load_default=list)
    no_yp_reason = Text()

    ORDER: ClassVar[list[str]] = ["contributors", "no_yp_reason"]


def parse_safety_plan(form, *, holder_keys: set[str], contributor_keys: set[str], today: date):
    """Check the whole safety plan form.

    Returns (head data, items [(section, text, holder key)], review date, errors). Rows are named
    ``<section>-<n>-text`` and ``<section>-<n>-holder``; a row with no words is skipped (blank
    spare rows are normal), but a holder chosen for an empty row is an error, as the person
    probably meant to write something.
    """
    errors = FormErrors()
    from . import formkit

    head, head_errors, _ = formkit.load(SafetyPlanHeadForm(), form, SafetyPlanHeadForm.ORDER)
    items: list[tuple[str, str, str]] = []
    for section in vocab.safety_plan_sections():
        n = 0
        while f"{section.code}-{n}-text" in form or f"{section.code}-{n}-holder" in form:
            text = (form.get(f"{section.code}-{n}-text") or "").replace("\r\n", "\n")
            holder = form.get(f"{section.code}-{n}-holder") or ""
            field_id = f"{section.code}-{n}-text"
            if len(text) > formkit.MAX_TEXT:
                errors.add(field_id, f"Use {formkit.MAX_TEXT} characters or fewer")
            elif holder and holder not in holder_keys:
                errors.add(f"{section.code}-{n}-holder", "Choose who does this from the list")
                if text.strip():
                    items.append((section.code, text, ""))  # the words are there; only the holder is wrong
            elif text.strip():
                items.append((section.code, text, holder))
            elif holder:
                errors.add(field_id, f"Write what this item under ‘{section.display}’ says, or choose nobody")  # noqa: RUF001  typographic quotes, NHS.UK style
            n += 1
            if n > 50:
                break
    if not any(s == "warning-signs" for s, _, _ in items) and not errors.get("warning-signs-0-text"):
        errors.add("warning-signs-0-text", "Add at least one warning sign")
    if not any(s == "professionals-agencies" for s, _, _ in items) and not errors.get("professionals-agencies-0-text"):
        errors.add(
            "professionals-agencies-0-text",
            "Add at least one professional or service to contact, such as a crisis line",
        )
    review = parse_date_parts(form, "review", "the review date", errors)
    if review is not None:
        if review <= today:
            errors.add("review-day", "The review date must be in the future")
        elif review > today + timedelta(days=366):
            errors.add("review-day", "The review date must be within the next 12 months")
    if head is not None:
        bad = [c for c in head["contributors"] if c not in contributor_keys]
        if bad:
            errors.add("contributors", "Choose who helped write the plan from the list")
        elif "young-person" not in head["contributors"] and not head.get("no_yp_reason"):
            errors.add("no_yp_reason", "Say why the young person did not help write the plan")
    # keep page order: head errors first (they sit above the sections), then rows, then the date
    merged = FormErrors()
    for fid, msg in head_errors.items + errors.items:
        merged.add(fid, msg)
    return head, items, review, merged


# --- 4. signposting and referral --------------------------------------------------------------
class SignpostForm(Schema):
    token = Token()
    service = fields.String(required=True, error_messages={"required": "Choose a service"})
    kind = Choice(("signposting", "referral"), required=True, message="Choose whether you are signposting or referring")
    note = Text(max_length=2000)

    ORDER: ClassVar[list[str]] = ["service", "kind", "note"]

    def __init__(self, *, service_codes: tuple[str, ...] = (), **kwargs):
        super().__init__(**kwargs)
        self.service_codes = service_codes

    @validates_schema(skip_on_field_errors=False)
    def _joined(self, data, **kwargs):
        errors = {}
        if data.get("service") is not None and data.get("service") not in self.service_codes:
            errors["service"] = "Choose a service from the list"
        if data.get("kind") == "referral" and not data.get("note"):
            errors["note"] = "Say what you are asking the service to do"
        if errors:
            raise ValidationError(errors)


#: The referral page's three forms: form field name and the message when it is left blank.
REFERRAL_CHANGES = {
    "update": ("update_text", "Write what you want the service to know"),
    "cancel": ("cancel_reason", "Say why the referral is being cancelled"),
    "again": ("again_text", "Say what you are asking the service to do"),
}


def referral_change_form(kind: str) -> OrderedSchema:
    """Updating, cancelling or making a referral again: the form's one text box (the update, the
    reason for cancelling, or what the service is asked to do) arrives as ``text``."""
    name, blank = REFERRAL_CHANGES[kind]

    class ReferralChangeForm(OrderedSchema):
        token = Token()
        sr_version = Version()
        task_version = Version()
        text = Text(required=True, blank=blank, max_length=2000, data_key=name)

        ORDER: ClassVar[list[str]] = [name]

    return ReferralChangeForm()


# --- 5. sharing consent -----------------------------------------------------------------------
COMPETENCE = {
    "competent": "Yes, the young person can decide for themselves",
    "not-competent": "No, the young person cannot decide about this now",
}


class ConsentForm(Schema):
    """Who agreed to share the plan, whether the young person could decide, with whom, until when.

    Consent comes from the young person when they are competent to decide (Gillick competence under
    16, capacity at 16 or 17); otherwise from a parent or carer with parental responsibility."""

    token = Token()
    version = Version()
    given_by = fields.String(load_default="")
    competence = Choice(
        tuple(COMPETENCE),
        required=True,
        message="Choose whether the young person can decide about sharing for themselves",
    )
    competence_note = Text(max_length=1000)
    agencies = fields.List(fields.String(), load_default=list)
    confirmed = fields.String(load_default="")

    ORDER: ClassVar[list[str]] = ["given_by", "competence", "competence_note", "agencies", "end-day", "confirmed"]

    def __init__(self, *, agency_keys: tuple[str, ...] = (), giver_keys: tuple[str, ...] = ("young-person",), **kwargs):
        super().__init__(**kwargs)
        self.agency_keys = agency_keys
        self.giver_keys = giver_keys

    @validates_schema(skip_on_field_errors=False)
    def _joined(self, data, **kwargs):
        errors = {}
        giver = data.get("given_by") or ""
        competence = data.get("competence")
        if not giver:
            errors["given_by"] = "Choose who agreed to share the plan"
        elif giver not in self.giver_keys:
            errors["given_by"] = "Choose who agreed from the list"
        elif giver == "young-person" and competence == "not-competent":
            errors["given_by"] = (
                "The young person cannot decide about this now, so a parent or carer with "
                "parental responsibility must agree"
            )
        elif giver != "young-person" and competence == "competent":
            errors["given_by"] = "The young person can decide for themselves, so record their own agreement"
        agencies = data.get("agencies") or []
        if not agencies:
            errors["agencies"] = "Choose at least one agency to share the plan with"
        elif any(a not in self.agency_keys for a in agencies):
            errors["agencies"] = "Choose the agencies from the list"
        if data.get("confirmed") != "yes":
            errors["confirmed"] = "Confirm they have agreed to share the plan with these agencies"
        if errors:
            raise ValidationError(errors)


class WithdrawForm(Schema):
    token = Token()
    version = Version()
    agency = fields.String(load_default="")  # blank = withdraw from every agency
    confirm = fields.String(load_default="")  # "yes" once the person has confirmed on the check page

    ORDER: ClassVar[list[str]] = ["agency"]


# --- 6. ending help ---------------------------------------------------------------------------
class EndingForm(Schema):
    token = Token()
    limits = Text(required=True, blank="Write what you talked about: the limits of help and the ending")
    grouping = Choice(canonical.GROUPINGS, required=True, message="Choose the grouping at the end of help")
    change_reason = Choice([c.code for c in vocab.change_reasons()], message="Choose why the grouping has changed")

    ORDER: ClassVar[list[str]] = ["limits", "grouping", "change_reason"]

    def __init__(self, *, previous_grouping: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.previous_grouping = previous_grouping

    @validates_schema(skip_on_field_errors=False)
    def _joined(self, data, **kwargs):
        grouping = data.get("grouping")
        if self.previous_grouping and grouping and grouping != self.previous_grouping and not data.get("change_reason"):
            raise ValidationError({"change_reason": "Choose why the grouping has changed"})


# --- 7. care team -----------------------------------------------------------------------------
#: Who a parent or carer is to the young person (HL7 v3 RoleCode, as RelatedPerson.relationship).
RELATIONSHIPS = {
    "MTH": "Mother",
    "FTH": "Father",
    "PRN": "Parent",
    "STPPRN": "Step-parent",
    "FSTPRN": "Foster parent",
    "GRPRN": "Grandparent",
    "GUARD": "Guardian",
    "FAMMEMB": "Other family member",
}

#: The kinds of member the care team form offers.
MEMBER_KINDS = {
    "young-person": "The young person",
    "parent-carer": "A parent or carer",
    "lead-clinician": "You, as lead clinician",
    "agency": "An agency worker from the directory",
}


class CareTeamMemberForm(Schema):
    """Adding one person or agency to the young person's care team."""

    token = Token()
    version = Version()
    kind = Choice(tuple(MEMBER_KINDS), required=True, message="Choose who you are adding")
    given = Text(max_length=200)
    family = Text(max_length=200)
    relationship = Choice(tuple(RELATIONSHIPS), message="Choose who they are to the young person")
    agency = fields.String(load_default="")
    role = Text(max_length=200)

    ORDER: ClassVar[list[str]] = ["kind", "given", "family", "relationship", "agency", "role"]

    def __init__(self, *, agency_keys: tuple[str, ...] = (), **kwargs):
        super().__init__(**kwargs)
        self.agency_keys = agency_keys

    @validates_schema(skip_on_field_errors=False)
    def _joined(self, data, **kwargs):
        errors = {}
        kind = data.get("kind")
        if kind == "parent-carer":
            if not data.get("given"):
                errors["given"] = "Enter the parent or carer's first name"
            if not data.get("family"):
                errors["family"] = "Enter the parent or carer's last name"
            if not data.get("relationship"):  # optional for the other kinds, so required here
                errors["relationship"] = "Choose who they are to the young person"
        if kind == "agency":
            if data.get("agency") not in self.agency_keys:
                errors["agency"] = "Choose the agency from the list"
            if not data.get("role"):
                errors["role"] = "Say what the agency worker does for the young person"
        if errors:
            raise ValidationError(errors)


class RemoveMemberForm(Schema):
    token = Token()
    version = Version()
    member = fields.String(required=True, error_messages={"required": "Choose who to remove"})

    ORDER: ClassVar[list[str]] = ["member"]
