"""Property tests: whatever a builder emits for valid input validates; what the validator would reject,
the builder refuses first, naming the field."""

from __future__ import annotations

import copy
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thrive_fhir import canonical
from thrive_fhir.builders import (
    BuildError,
    Coded,
    ConsentInput,
    GoalAcceptance,
    GoalInput,
    GoalScoreInput,
    GroupingDecision,
    PreviousGrouping,
    SafetyPlanInput,
    SafetyPlanItem,
    SignpostInput,
    _codes,
    build_consent,
    build_gbo_score,
    build_goal,
    build_grouping,
    build_safety_plan,
    build_signposting,
    check_goal_slots,
)
from thrive_fhir.ids import resource_id
from thrive_fhir.validation import Validator, errors

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
V = Validator.default()


def assert_valid(resource: dict) -> None:
    problems = [e for e in errors(V.validate(resource)) if e[0] in ("error", "fatal")]
    assert not problems, problems


def assert_rejected(resource: dict) -> None:
    assert not V.is_valid(resource), "the validator accepted a resource the builder refuses"


# --- strategies ------------------------------------------------------------------------------
ids = st.from_regex(r"[A-Za-z0-9\-.]{1,64}", fullmatch=True)
local_ids = st.builds(lambda n: str(uuid.UUID(int=n, version=4)), st.integers(0, 2**128 - 1))


def refs(*types: str):
    return st.builds(lambda t, i: f"{t}/{i}", st.sampled_from(types), ids)


words = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\x00"), min_size=1, max_size=80
).filter(lambda s: s.strip())
offsets = st.sampled_from([UTC, timezone(timedelta(hours=1)), timezone(timedelta(hours=-5, minutes=-30))])
past = st.datetimes(min_value=datetime(2015, 1, 1), max_value=datetime(2025, 12, 31), timezones=offsets)
dates = st.dates(min_value=date(2015, 1, 1), max_value=date(2025, 12, 31))
groupings = st.sampled_from(
    (*canonical.GROUPINGS, "Getting Additional Help", "Coping", "GETTING ADVICE", "getting advice and signposting")
)
ods = st.from_regex(r"[A-Z0-9]{3,6}", fullmatch=True)


@st.composite
def grouping_decisions(draw):
    subject = "Patient/" + draw(ids)
    yp = draw(st.sampled_from(_codes.INVOLVEMENT))
    others = draw(st.lists(refs("RelatedPerson", "PractitionerRole", "Organization", "CareTeam"), max_size=3))
    participants = ([subject] if yp != "not-involved" else []) + others
    agreed = draw(past)
    grouping = draw(groupings)
    previous = None
    reason = None
    if draw(st.booleans()):
        prev_code = draw(st.sampled_from(canonical.GROUPINGS))
        previous = PreviousGrouping(
            observation="Observation/" + draw(ids),
            grouping=prev_code,
            agreed_at=draw(st.one_of(st.none(), st.just(agreed - timedelta(days=30)))),
        )
        reason = draw(st.one_of(st.none(), st.sampled_from(_codes.CHANGE_REASONS)))
        if reason is None and draw(st.booleans()):
            grouping = prev_code  # unchanged: no reason needed
        elif reason is None:
            reason = "needs-changed"
    method = draw(st.sampled_from(_codes.GROUPING_METHODS))
    note = draw(st.one_of(st.none(), words)) if method == "shared-decision-making" else draw(words)
    return GroupingDecision(
        local_id=draw(local_ids),
        source_ods=draw(st.one_of(st.none(), ods)),
        assigner_ods=draw(st.one_of(st.none(), ods)),
        grouping=grouping,
        subject=subject,
        episode="EpisodeOfCare/" + draw(ids),
        agreed_at=agreed,
        recorded_at=agreed + draw(st.timedeltas(timedelta(0), timedelta(days=3))),
        clinician=draw(refs("PractitionerRole", "Practitioner")),
        participants=tuple(participants),
        yp_involvement=yp,
        family_involvement=draw(st.one_of(st.none(), st.sampled_from(_codes.INVOLVEMENT))),
        not_involved_reason=draw(words) if yp == "not-involved" else None,
        previous=previous,
        change_reason=reason,
        method=method,
        note=note,
        yp_words=draw(st.one_of(st.none(), words)),
        needs_discussed=draw(st.one_of(st.none(), words)),
        options_considered=draw(st.one_of(st.none(), words)),
        encounter=draw(st.one_of(st.none(), refs("Encounter"))),
        status=draw(st.sampled_from(("final", "amended", "corrected"))),
    )


@st.composite
def goal_inputs(draw):
    subject = "Patient/" + draw(ids)
    start = draw(dates)
    who = draw(st.sampled_from((subject, "RelatedPerson/" + draw(ids))))
    return GoalInput(
        local_id=draw(local_ids),
        slot=draw(st.integers(1, 3)),
        description=draw(words),
        subject=subject,
        start_date=start,
        expressed_by=who,
        acceptance=(GoalAcceptance(individual=who, status=draw(st.sampled_from(_codes.GOAL_ACCEPTANCE))),),
        lifecycle_status=draw(st.sampled_from(_codes.GOAL_OPEN)),
        achievement_status=draw(st.one_of(st.none(), st.sampled_from(_codes.GOAL_ACHIEVEMENT))),
        note=draw(st.one_of(st.none(), words)),
    )


@st.composite
def score_inputs(draw):
    subject = "Patient/" + draw(ids)
    return GoalScoreInput(
        local_id=draw(local_ids),
        goal="Goal/" + draw(ids),
        slot=draw(st.integers(1, 3)),
        score=draw(st.integers(0, 10)),
        rater=draw(st.one_of(st.just(subject), refs("RelatedPerson", "Practitioner", "PractitionerRole"))),
        subject=subject,
        episode="EpisodeOfCare/" + draw(ids),
        effective=draw(st.one_of(past, dates)),
        encounter=draw(st.one_of(st.none(), refs("Encounter"))),
    )


@st.composite
def plan_inputs(draw):
    subject = "Patient/" + draw(ids)
    status = draw(st.sampled_from(("draft", "active", "on-hold", "completed", "revoked")))
    sections = draw(st.lists(st.sampled_from(_codes.SAFETY_PLAN_SECTIONS), min_size=1, max_size=8))
    if status == "active":
        sections += ["warning-signs", "professionals-agencies"]
    performer_types = ("Patient", "RelatedPerson", "PractitionerRole", "Organization", "HealthcareService")
    items = tuple(
        SafetyPlanItem(
            section=s, text=draw(words), performer_refs=tuple(draw(st.lists(refs(*performer_types), max_size=2)))
        )
        for s in sections
    )
    with_yp = draw(st.booleans())
    start = draw(dates)
    return SafetyPlanInput(
        local_id=draw(local_ids),
        subject=subject,
        start_date=start,
        review_date=start + timedelta(days=draw(st.integers(0, 365))),
        created=draw(past),
        author=draw(refs("PractitionerRole", "Practitioner")),
        items=items,
        status=status,
        contributors=((subject,) if with_yp else ())
        + tuple(draw(st.lists(refs("RelatedPerson", "PractitionerRole"), max_size=3))),
        care_team=draw(st.one_of(st.none(), refs("CareTeam"))),
        supporting_info=tuple(draw(st.lists(refs("Observation"), max_size=2))),
        episode=draw(st.one_of(st.none(), refs("EpisodeOfCare"))),
        note=None if with_yp else draw(words),
    )


@st.composite
def consent_inputs(draw):
    subject = "Patient/" + draw(ids)
    start = draw(dates)
    return ConsentInput(
        local_id=draw(local_ids),
        subject=subject,
        performer=(draw(st.sampled_from((subject, "RelatedPerson/" + draw(ids)))),),
        agencies=tuple(draw(st.lists(refs("Organization"), min_size=1, max_size=4))),
        custodian="Organization/" + draw(ids),
        plan="CarePlan/" + draw(ids),
        date_time=draw(past),
        start_date=start,
        end_date=draw(st.one_of(st.none(), st.just(start + timedelta(days=365)))),
        status=draw(st.sampled_from(("active", "inactive"))),
    )


@st.composite
def signpost_inputs(draw):
    return SignpostInput(
        local_id=draw(local_ids),
        kind=draw(st.sampled_from(("signposting", "referral"))),
        offer=Coded(
            canonical.local_offer_cs("example"), draw(st.sampled_from(("mhst", "online-support", "crisis-line")))
        ),
        subject="Patient/" + draw(ids),
        episode="EpisodeOfCare/" + draw(ids),
        authored_on=draw(past),
        requester=draw(refs("PractitionerRole", "Practitioner", "Organization")),
        performer=draw(refs("HealthcareService", "Organization")),
        reason="Observation/" + draw(ids),
        goals=tuple(draw(st.lists(refs("Goal"), max_size=3))),
        based_on=draw(st.one_of(st.none(), refs("CarePlan"))),
        note=draw(st.one_of(st.none(), words)),
    )


# --- valid in, valid out ---------------------------------------------------------------------
@SETTINGS
@given(grouping_decisions())
def test_any_valid_grouping_validates(d):
    obs = build_grouping(d)
    assert_valid(obs)
    assert obs["id"] == resource_id("grouping", d.local_id)


@SETTINGS
@given(goal_inputs())
def test_any_valid_goal_validates(g):
    assert_valid(build_goal(g))


@SETTINGS
@given(score_inputs())
def test_any_valid_score_validates(s):
    assert_valid(build_gbo_score(s))


@SETTINGS
@given(plan_inputs())
def test_any_valid_safety_plan_validates(p):
    assert_valid(build_safety_plan(p))


@SETTINGS
@given(consent_inputs())
def test_any_valid_consent_validates(c):
    assert_valid(build_consent(c))


@SETTINGS
@given(signpost_inputs())
def test_any_valid_signposting_validates(s):
    assert_valid(build_signposting(s))


# --- what the validator rejects, the builder refuses first ------------------------------------
@SETTINGS
@given(score_inputs(), st.one_of(st.integers(max_value=-1), st.integers(min_value=11)))
def test_out_of_range_scores_refused_and_rejected(s, bad):
    with pytest.raises(BuildError) as err:
        build_gbo_score(replace(s, score=bad))
    assert err.value.field == "score"
    resource = build_gbo_score(s)
    resource["valueInteger"] = bad
    assert_rejected(resource)


@SETTINGS
@given(goal_inputs(), st.sampled_from(["", " ", "\n\t"]))
def test_empty_goal_description_refused_and_rejected(g, blank):
    with pytest.raises(BuildError) as err:
        build_goal(replace(g, description=blank))
    assert err.value.field == "description"
    resource = build_goal(g)
    del resource["description"]["text"]
    assert_rejected(resource)


@SETTINGS
@given(grouping_decisions(), st.text(min_size=1, max_size=30).filter(lambda s: s.strip()))
def test_unknown_grouping_refused_and_rejected(d, label):
    from thrive_fhir import terminology

    try:
        terminology.translate_grouping(label)
        return  # hypothesis found a real grouping name: nothing to refuse
    except terminology.UnmatchedGrouping:
        pass
    with pytest.raises(BuildError) as err:
        build_grouping(replace(d, grouping=label))
    assert err.value.field == "grouping"
    resource = build_grouping(d)
    resource["valueCodeableConcept"]["coding"][0]["code"] = "getting-better"
    assert_rejected(resource)


MISSING_PARTS = [
    # (builder, valid input, input change, field named, the same fault made in the resource)
    (
        build_grouping,
        "grouping",
        {"yp_involvement": "not-involved", "participants": (), "not_involved_reason": None},
        "not_involved_reason",
        lambda r: r.update(
            component=[
                {
                    **r["component"][0],
                    "valueCodeableConcept": {"coding": [{"system": canonical.CS_INVOLVEMENT, "code": "not-involved"}]},
                }
            ]
        ),
    ),
    (
        build_grouping,
        "grouping",
        {"clinician": "Organization/o"},
        "clinician",
        lambda r: r.update(performer=[p for p in r["performer"] if not p["reference"].startswith("Practitioner")]),
    ),
    (
        build_grouping,
        "grouping",
        {"participants": ()},
        "participants",
        lambda r: r.update(performer=[p for p in r["performer"] if not p["reference"].startswith("Patient/")]),
    ),
    (build_safety_plan, "plan", {"items": ()}, "items", lambda r: r.pop("activity")),
    (
        build_safety_plan,
        "plan",
        {"items": (SafetyPlanItem(section="warning-signs", text="x"),)},
        "items",
        lambda r: r.update(
            activity=[a for a in r["activity"] if a["detail"]["code"]["coding"][0]["code"] != "professionals-agencies"]
        ),
    ),
    (
        build_safety_plan,
        "plan",
        {"subject": "Group/g"},
        "subject",
        lambda r: r.update(subject={"reference": "Group/g"}),
    ),
    (build_consent, "consent", {"agencies": ()}, "agencies", lambda r: r["provision"].pop("actor")),
    (build_consent, "consent", {"performer": ()}, "performer", lambda r: r.pop("performer")),
    (build_gbo_score, "score", {"goal": "CarePlan/x"}, "goal", lambda r: r.update(focus=[{"reference": "CarePlan/x"}])),
    (build_goal, "goal", {"slot": 4}, "slot", lambda r: r.update(target=[])),
    (build_signposting, "signpost", {"reason": None}, "reason", lambda r: r.pop("reasonReference")),
    (
        build_signposting,
        "signpost",
        {"performer": "PractitionerRole/x"},
        "performer",
        lambda r: r.update(performer=[{"reference": "PractitionerRole/x"}]),
    ),
]


def _valid_inputs():
    pat = "Patient/p1"
    now = datetime(2025, 3, 4, 15, 30, tzinfo=UTC)
    return {
        "grouping": GroupingDecision(
            local_id=str(uuid.UUID(int=11, version=4)),
            grouping="getting-help",
            subject=pat,
            episode="EpisodeOfCare/e1",
            agreed_at=now,
            recorded_at=now,
            clinician="PractitionerRole/r1",
            participants=(pat,),
            yp_involvement="agreed",
        ),
        "plan": SafetyPlanInput(
            local_id=str(uuid.UUID(int=12, version=4)),
            subject=pat,
            start_date=now.date(),
            review_date=now.date() + timedelta(days=90),
            created=now,
            author="PractitionerRole/r1",
            contributors=(pat,),
            items=(
                SafetyPlanItem(section="warning-signs", text="a"),
                SafetyPlanItem(section="professionals-agencies", text="b"),
            ),
        ),
        "consent": ConsentInput(
            local_id=str(uuid.UUID(int=13, version=4)),
            subject=pat,
            performer=(pat,),
            agencies=("Organization/o1",),
            custodian="Organization/o2",
            plan="CarePlan/c1",
            date_time=now,
            start_date=now.date(),
        ),
        "score": GoalScoreInput(
            local_id=str(uuid.UUID(int=14, version=4)),
            goal="Goal/g1",
            slot=1,
            score=4,
            rater=pat,
            subject=pat,
            episode="EpisodeOfCare/e1",
            effective=now,
        ),
        "goal": GoalInput(
            local_id=str(uuid.UUID(int=15, version=4)),
            slot=1,
            description="words",
            subject=pat,
            start_date=now.date(),
            expressed_by=pat,
        ),
        "signpost": SignpostInput(
            local_id=str(uuid.UUID(int=16, version=4)),
            kind="signposting",
            offer=Coded(canonical.local_offer_cs("example"), "mhst"),
            subject=pat,
            episode="EpisodeOfCare/e1",
            authored_on=now,
            requester="PractitionerRole/r1",
            performer="HealthcareService/h1",
            reason="Observation/o1",
        ),
    }


VALID = _valid_inputs()


@pytest.mark.parametrize(
    "builder, which, change, field, break_resource",
    MISSING_PARTS,
    ids=[f"{b.__name__}-{f}" for b, _, _, f, _ in MISSING_PARTS],
)
def test_required_parts_refused_by_builder_and_rejected_by_validator(builder, which, change, field, break_resource):
    good = VALID[which]
    resource = builder(good)
    assert_valid(resource)
    with pytest.raises(BuildError) as err:
        builder(replace(good, **change))
    assert err.value.field == field
    broken = copy.deepcopy(resource)
    break_resource(broken)
    assert_rejected(broken)


def test_fourth_active_goal_refused_and_rejected_by_the_set_rules():
    goals = [
        replace(VALID["goal"], local_id=str(uuid.UUID(int=100 + slot, version=4)), slot=slot) for slot in (1, 2, 3)
    ]
    fourth = replace(VALID["goal"], local_id=str(uuid.UUID(int=200, version=4)), slot=1)
    with pytest.raises(BuildError) as err:
        check_goal_slots(fourth, goals)
    assert err.value.field == "slot"
    # The validator's cross-resource rules reject the same situation in a set.
    built = [build_goal(g) for g in goals] + [build_goal(fourth)]
    outcomes = V.validate_set(built)
    assert any(e[0] == "error" for oo in outcomes.values() for e in errors(oo))
    assert not any(e[0] == "error" for oo in V.validate_set(built[:3]).values() for e in errors(oo))
