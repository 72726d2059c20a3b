"""Builders: the documented examples come out exactly, and bad input is refused by field."""

from __future__ import annotations

import copy
import json
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from thrive_fhir import canonical
from thrive_fhir.builders import (
    BuildError,
    CareTeamInput,
    CareTeamMember,
    Coded,
    ConsentInput,
    EpisodeInput,
    GoalAcceptance,
    GoalInput,
    GoalScoreInput,
    GroupingDecision,
    LocalOfferInput,
    OrganizationInput,
    PatientInput,
    PractitionerInput,
    PractitionerRoleInput,
    PreviousGrouping,
    ProvenanceInput,
    ReferralTaskInput,
    RelatedPersonInput,
    RiskFlagInput,
    SafetyPlanInput,
    SafetyPlanItem,
    SignpostInput,
    SourceRecord,
    build_care_team,
    build_consent,
    build_episode,
    build_gbo_score,
    build_goal,
    build_grouping,
    build_local_offer,
    build_organization,
    build_patient,
    build_practitioner,
    build_practitioner_role,
    build_provenance,
    build_referral_task,
    build_related_person,
    build_risk_flag,
    build_safety_plan,
    build_signposting,
    check_goal_slots,
    close_goal,
    withdraw_all,
)
from thrive_fhir.ids import resource_id

UTC = UTC
EXAMPLE_BASE = "https://fhir.example.org/thrive"
PAT = "Patient/pat-example-01"
PARENT = "RelatedPerson/rp-parent-01"
PRR = "PractitionerRole/prr-camhs-01"
EOC = "EpisodeOfCare/eoc-example-01"

# --- docs/design/fhir-model.md section 3, verbatim (example base and ids) ---------------------------------
DOC_GROUPING = json.loads("""
{"resourceType": "Observation", "id": "d71ee8c1-2075-5b32-ae77-66be7eac9b92",
 "meta": {"profile": ["https://fhir.example.org/thrive/StructureDefinition/thrive-grouping-observation"],
          "source": "https://fhir.example.org/thrive/source/RXX"},
 "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/workflow-episodeOfCare",
                "valueReference": {"reference": "EpisodeOfCare/eoc-example-01"}}],
 "identifier": [{"system": "https://fhir.example.org/thrive/Id/grouping", "value": "8e4f1c2a-6b3d-4a7e-8f90-1c2d3e4f5a6b"}],
 "status": "final",
 "category": [{"coding": [{"system": "https://fhir.example.org/thrive/CodeSystem/thrive-concepts", "code": "thrive"}]}],
 "code": {"coding": [{"system": "https://fhir.example.org/thrive/CodeSystem/thrive-concepts", "code": "thrive-grouping",
                      "display": "THRIVE needs-based grouping"}]},
 "subject": {"reference": "Patient/pat-example-01"}, "encounter": {"reference": "Encounter/enc-example-07"},
 "effectiveDateTime": "2025-03-04T15:30:00Z", "issued": "2025-03-04T15:42:10Z",
 "performer": [{"reference": "PractitionerRole/prr-camhs-01"}, {"reference": "Patient/pat-example-01"},
               {"reference": "RelatedPerson/rp-parent-01"}],
 "valueCodeableConcept": {"coding": [{"system": "https://fhir.example.org/thrive/CodeSystem/thrive-grouping",
                                      "code": "getting-risk-support", "display": "Getting Risk Support"}]},
 "method": {"coding": [{"system": "https://fhir.example.org/thrive/CodeSystem/thrive-concepts", "code": "shared-decision-making"}]},
 "derivedFrom": [{"reference": "Observation/8b0efbbc-989e-521a-b878-d6aec518777b"}],
 "note": [{"authorReference": {"reference": "Practitioner/pr-camhs-01"},
           "text": "Therapy paused at the young person's request; focus on keeping safe with school and social care."}],
 "component": [
  {"code": {"coding": [{"system": "https://fhir.example.org/thrive/CodeSystem/thrive-concepts", "code": "young-person-involvement"}]},
   "valueCodeableConcept": {"coding": [{"system": "https://fhir.example.org/thrive/CodeSystem/involvement", "code": "agreed"}]}},
  {"code": {"coding": [{"system": "https://fhir.example.org/thrive/CodeSystem/thrive-concepts", "code": "family-involvement"}]},
   "valueCodeableConcept": {"coding": [{"system": "https://fhir.example.org/thrive/CodeSystem/involvement", "code": "agreed"}]}},
  {"code": {"coding": [{"system": "https://fhir.example.org/thrive/CodeSystem/thrive-concepts", "code": "grouping-change-reason"}]},
   "valueCodeableConcept": {"coding": [{"system": "https://fhir.example.org/thrive/CodeSystem/grouping-change-reason",
                                        "code": "not-benefiting"}]}}]}
""")
DOC_GOAL = json.loads("""
{"resourceType": "Goal", "id": "68e39722-7a50-5a75-b76a-b09240110b2d",
 "meta": {"profile": ["https://fhir.example.org/thrive/StructureDefinition/thrive-gbo-goal"]},
 "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/goal-acceptance",
   "extension": [{"url": "individual", "valueReference": {"reference": "Patient/pat-example-01"}},
                 {"url": "status", "valueCode": "agree"}]}],
 "identifier": [{"system": "https://fhir.example.org/thrive/Id/gbo-goal", "value": "2a7c9e11-4b5d-4c6f-9a8b-7d6e5f4a3b2c"}],
 "lifecycleStatus": "active",
 "achievementStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/goal-achievement", "code": "improving"}]},
 "category": [{"coding": [{"system": "https://fhir.example.org/thrive/CodeSystem/thrive-concepts", "code": "gbo-goal"}]}],
 "description": {"text": "To be able to stay in school for the whole day"},
 "subject": {"reference": "Patient/pat-example-01"}, "startDate": "2025-01-14",
 "target": [{"measure": {"coding": [{"system": "http://snomed.info/sct", "code": "1638531000000102",
   "display": "Goal-Based Outcomes tool goal progress chart - goal 1 score"}]}}],
 "expressedBy": {"reference": "Patient/pat-example-01"}}
""")
DOC_SCORE_1 = json.loads("""
{"resourceType": "Observation", "id": "52afb94b-9ce2-548d-a679-f8174f8553a5",
 "meta": {"profile": ["https://fhir.example.org/thrive/StructureDefinition/thrive-gbo-score"]},
 "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/workflow-episodeOfCare",
                "valueReference": {"reference": "EpisodeOfCare/eoc-example-01"}}],
 "identifier": [{"system": "https://fhir.example.org/thrive/Id/gbo-score", "value": "91b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"}],
 "status": "final",
 "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "survey"}]}],
 "code": {"coding": [{"system": "http://snomed.info/sct", "code": "1638531000000102",
                      "display": "Goal-Based Outcomes tool goal progress chart - goal 1 score"}]},
 "subject": {"reference": "Patient/pat-example-01"}, "focus": [{"reference": "Goal/68e39722-7a50-5a75-b76a-b09240110b2d"}],
 "encounter": {"reference": "Encounter/enc-example-01"}, "effectiveDateTime": "2025-01-14",
 "performer": [{"reference": "Patient/pat-example-01"}], "valueInteger": 2}
""")
# "The second score is identical except: ..."
DOC_SCORE_2 = {
    **copy.deepcopy(DOC_SCORE_1),
    "id": "75709e99-123e-5a4b-aba6-f02c7c4cd245",
    "identifier": [
        {"system": "https://fhir.example.org/thrive/Id/gbo-score", "value": "a1b2c3d4-e5f6-4789-abcd-ef0123456789"}
    ],
    "encounter": {"reference": "Encounter/enc-example-07"},
    "effectiveDateTime": "2025-03-04",
    "valueInteger": 6,
}
_SECTION = "https://fhir.example.org/thrive/CodeSystem/safety-plan-section"
DOC_SAFETY_PLAN = json.loads("""
{"resourceType": "CarePlan", "id": "622e1f5d-21f1-56d5-b85c-8a4034ce3712",
 "meta": {"profile": ["https://fhir.example.org/thrive/StructureDefinition/thrive-safety-plan"],
          "security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}]},
 "identifier": [{"system": "https://fhir.example.org/thrive/Id/safety-plan", "value": "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f"}],
 "status": "active", "intent": "plan",
 "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "736253002", "display": "Mental health crisis plan"}]},
              {"coding": [{"system": "https://fhir.example.org/thrive/CodeSystem/thrive-concepts", "code": "safety-plan"}]}],
 "title": "My safety plan", "subject": {"reference": "Patient/pat-example-01"},
 "period": {"start": "2025-03-04", "end": "2025-06-04"}, "created": "2025-03-04T16:05:00Z",
 "author": {"reference": "PractitionerRole/prr-camhs-01"},
 "contributor": [{"reference": "Patient/pat-example-01"}, {"reference": "RelatedPerson/rp-parent-01"},
                 {"reference": "PractitionerRole/prr-schoolnurse-01"}, {"reference": "PractitionerRole/prr-socialcare-01"}],
 "careTeam": [{"reference": "CareTeam/ct-example-01"}],
 "supportingInfo": [{"reference": "Observation/d71ee8c1-2075-5b32-ae77-66be7eac9b92"}],
 "activity": []}
""")
_ITEMS = [
    ("warning-signs", "Staying in my room, not answering messages, not sleeping", (PAT,)),
    ("internal-coping", "Music with headphones, drawing, walking the dog", (PAT,)),
    ("social-distraction", "Thursday youth club; the library after school", (PAT,)),
    ("people-to-ask", "Mum (mobile number on her record)", (PARENT,)),
    (
        "professionals-agencies",
        "24-hour crisis line 0808 157 0123 (fictional); school nurse on school days",
        ("HealthcareService/hs-crisisline-01", "PractitionerRole/prr-schoolnurse-01"),
    ),
    ("safe-environment", "Mum keeps medicines in a locked box", (PARENT,)),
    ("reasons-for-living", "My dog, my little sister, finishing my art course", (PAT,)),
]
DOC_SAFETY_PLAN["activity"] = [
    {
        "detail": {
            "code": {"coding": [{"system": _SECTION, "code": s}]},
            "status": "in-progress",
            "description": t,
            "performer": [{"reference": r} for r in refs],
        }
    }
    for s, t, refs in _ITEMS
]
DOC_CONSENT = json.loads("""
{"resourceType": "Consent", "id": "ad9e9ea8-cf02-563f-9e5e-991ea4b5987d",
 "meta": {"profile": ["https://fhir.example.org/thrive/StructureDefinition/thrive-sharing-consent"]},
 "identifier": [{"system": "https://fhir.example.org/thrive/Id/sharing-consent", "value": "4d5e6f7a-8b9c-4d0e-9f1a-2b3c4d5e6f70"}],
 "status": "active",
 "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
 "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IDSCL"}]}],
 "patient": {"reference": "Patient/pat-example-01"}, "dateTime": "2025-03-04T16:10:00Z",
 "performer": [{"reference": "Patient/pat-example-01"}], "organization": [{"reference": "Organization/org-camhs-01"}],
 "policy": [{"uri": "https://fhir.example.org/thrive/policy/information-sharing-agreement-v1"}],
 "provision": {"type": "permit", "period": {"start": "2025-03-04", "end": "2026-03-04"},
  "actor": [
   {"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]},
    "reference": {"reference": "Organization/org-school-01"}},
   {"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]},
    "reference": {"reference": "Organization/org-socialcare-01"}}],
  "action": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentaction", "code": "access"}]}],
  "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}],
  "data": [{"meaning": "related", "reference": {"reference": "CarePlan/622e1f5d-21f1-56d5-b85c-8a4034ce3712"}}]}}
""")
DOCS = [DOC_GROUPING, DOC_GOAL, DOC_SCORE_1, DOC_SCORE_2, DOC_SAFETY_PLAN, DOC_CONSENT]
KIND_OF = {
    "grouping": "grouping",
    "gbo-goal": "gbo-goal",
    "gbo-score": "gbo-score",
    "safety-plan": "safety-plan",
    "sharing-consent": "sharing-consent",
}


def _example_id(system: str, value: str) -> str:
    """docs/design/fhir-model.md section 4 with the document's example base."""
    ns = uuid.uuid5(uuid.NAMESPACE_URL, EXAMPLE_BASE)
    return str(uuid.uuid5(ns, f"{system}|{value}"))


def _rebase(doc: dict) -> dict:
    """The documented example as it must look under our BASE: URLs rebased, ids re-derived."""
    id_map = {}
    for d in DOCS:
        ident = d["identifier"][0]
        kind = ident["system"].rsplit("/", 1)[1]
        id_map[d["id"]] = resource_id(kind, ident["value"])
    text = json.dumps(doc).replace(EXAMPLE_BASE, canonical.BASE)
    for old, new in id_map.items():
        text = text.replace(old, new)
    return json.loads(text)


GROUPING_IN = GroupingDecision(
    local_id="8e4f1c2a-6b3d-4a7e-8f90-1c2d3e4f5a6b",
    source_ods="RXX",
    grouping="getting-risk-support",
    subject=PAT,
    episode=EOC,
    encounter="Encounter/enc-example-07",
    agreed_at=datetime(2025, 3, 4, 15, 30, tzinfo=UTC),
    recorded_at=datetime(2025, 3, 4, 15, 42, 10, tzinfo=UTC),
    clinician=PRR,
    participants=(PAT, PARENT),
    yp_involvement="agreed",
    family_involvement="agreed",
    previous=PreviousGrouping(observation="Observation/8b0efbbc-989e-521a-b878-d6aec518777b", grouping="getting-help"),
    change_reason="not-benefiting",
    note="Therapy paused at the young person's request; focus on keeping safe with school and social care.",
    note_author="Practitioner/pr-camhs-01",
)
GOAL_IN = GoalInput(
    local_id="2a7c9e11-4b5d-4c6f-9a8b-7d6e5f4a3b2c",
    slot=1,
    description="To be able to stay in school for the whole day",
    subject=PAT,
    start_date=date(2025, 1, 14),
    expressed_by=PAT,
    acceptance=(GoalAcceptance(individual=PAT, status="agree"),),
    achievement_status="improving",
)
GOAL_REF = "Goal/" + resource_id("gbo-goal", GOAL_IN.local_id)
SCORE_1_IN = GoalScoreInput(
    local_id="91b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
    goal=GOAL_REF,
    slot=1,
    score=2,
    rater=PAT,
    subject=PAT,
    episode=EOC,
    encounter="Encounter/enc-example-01",
    effective=date(2025, 1, 14),
)
SCORE_2_IN = replace(
    SCORE_1_IN,
    local_id="a1b2c3d4-e5f6-4789-abcd-ef0123456789",
    encounter="Encounter/enc-example-07",
    effective=date(2025, 3, 4),
    score=6,
)
PLAN_IN = SafetyPlanInput(
    local_id="3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f",
    subject=PAT,
    start_date=date(2025, 3, 4),
    review_date=date(2025, 6, 4),
    created=datetime(2025, 3, 4, 16, 5, tzinfo=UTC),
    author=PRR,
    contributors=(PAT, PARENT, "PractitionerRole/prr-schoolnurse-01", "PractitionerRole/prr-socialcare-01"),
    care_team="CareTeam/ct-example-01",
    supporting_info=("Observation/" + resource_id("grouping", GROUPING_IN.local_id),),
    items=tuple(SafetyPlanItem(section=s, text=t, performer_refs=r) for s, t, r in _ITEMS),
)
CONSENT_IN = ConsentInput(
    local_id="4d5e6f7a-8b9c-4d0e-9f1a-2b3c4d5e6f70",
    subject=PAT,
    performer=(PAT,),
    agencies=("Organization/org-school-01", "Organization/org-socialcare-01"),
    custodian="Organization/org-camhs-01",
    plan="CarePlan/" + resource_id("safety-plan", PLAN_IN.local_id),
    date_time=datetime(2025, 3, 4, 16, 10, tzinfo=UTC),
    start_date=date(2025, 3, 4),
    end_date=date(2026, 3, 4),
)


def test_documented_ids_follow_section_4():
    for doc in DOCS:
        ident = doc["identifier"][0]
        assert doc["id"] == _example_id(ident["system"], ident["value"])


@pytest.mark.parametrize(
    "built, doc",
    [
        (lambda: build_grouping(GROUPING_IN), DOC_GROUPING),
        (lambda: build_goal(GOAL_IN), DOC_GOAL),
        (lambda: build_gbo_score(SCORE_1_IN), DOC_SCORE_1),
        (lambda: build_gbo_score(SCORE_2_IN), DOC_SCORE_2),
        (lambda: build_safety_plan(PLAN_IN), DOC_SAFETY_PLAN),
        (lambda: build_consent(CONSENT_IN), DOC_CONSENT),
    ],
    ids=["grouping", "goal", "score-1", "score-2", "safety-plan", "consent"],
)
def test_builder_output_matches_documented_example(built, doc):
    assert built() == _rebase(doc)


def test_grouping_synonym_is_stored_canonical_with_received_words():
    obs = build_grouping(replace(GROUPING_IN, grouping="Getting Additional Help", change_reason="needs-changed"))
    value = obs["valueCodeableConcept"]
    assert value["coding"] == [
        {"system": canonical.CS_GROUPING, "code": "getting-more-help", "display": "Getting More Help"}
    ]
    assert value["text"] == "Getting Additional Help"
    assert "text" not in build_grouping(GROUPING_IN)["valueCodeableConcept"]


def test_grouping_words_and_not_involved_reason():
    obs = build_grouping(
        replace(
            GROUPING_IN,
            yp_involvement="not-involved",
            not_involved_reason="Too unwell to attend",
            participants=(PARENT,),
            yp_words="I want to go back to school",
            options_considered="MHST or specialist CAMHS",
        )
    )
    comps = {c["code"]["coding"][0]["code"]: c for c in obs["component"]}
    assert comps["not-involved-reason"]["valueString"] == "Too unwell to attend"
    assert not any(p["reference"].startswith("Patient/") for p in obs["performer"])
    texts = [n["text"] for n in obs["note"]]
    assert "In the young person's own words: I want to go back to school" in texts
    assert "Options considered: MHST or specialist CAMHS" in texts


def test_same_grouping_as_before_needs_no_change_reason():
    obs = build_grouping(replace(GROUPING_IN, grouping="getting-help", change_reason=None))
    assert obs["derivedFrom"] == [{"reference": GROUPING_IN.previous.observation}]
    assert all(c["code"]["coding"][0]["code"] != "grouping-change-reason" for c in obs["component"])


NOW = datetime.now(UTC)
GROUPING_BAD = [
    ({"grouping": "getting-better"}, "grouping"),
    ({"grouping": "Level 3"}, "grouping"),
    ({"grouping": ""}, "grouping"),
    ({"subject": "Practitioner/x"}, "subject"),
    ({"subject": "pat-example-01"}, "subject"),
    ({"episode": "Encounter/x"}, "episode"),
    ({"clinician": "Patient/pat-example-01"}, "clinician"),
    ({"participants": ("Patient/someone-else", PARENT)}, "participants[0]"),
    ({"participants": (PARENT,)}, "participants"),  # young person agreed but not listed
    ({"yp_involvement": "maybe"}, "yp_involvement"),
    ({"family_involvement": "yes"}, "family_involvement"),
    ({"yp_involvement": "not-involved", "not_involved_reason": "  "}, "not_involved_reason"),
    ({"yp_involvement": "not-involved"}, "not_involved_reason"),
    ({"change_reason": None}, "change_reason"),
    ({"change_reason": "felt-like-it"}, "change_reason"),
    ({"previous": None}, "change_reason"),
    ({"method": "decided-without-agreement", "note": None}, "note"),
    ({"method": "vote"}, "method"),
    ({"agreed_at": datetime(2025, 3, 4, 15, 30)}, "agreed_at"),  # naive
    ({"agreed_at": datetime(2025, 3, 4, 16, 0, tzinfo=UTC)}, "agreed_at"),  # after recorded
    ({"recorded_at": NOW + timedelta(days=1)}, "recorded_at"),
    ({"status": "preliminary"}, "status"),
    ({"local_id": "not-a-uuid"}, "local_id"),
    ({"local_id": str(uuid.uuid1())}, "local_id"),
    ({"source_ods": "rx x"}, "source_ods"),
    ({"note_author": "PractitionerRole/prr-camhs-01"}, "note_author"),
    (
        {
            "previous": PreviousGrouping(
                observation="Observation/p", grouping="getting-help", agreed_at=datetime(2025, 3, 5, tzinfo=UTC)
            )
        },
        "agreed_at",
    ),
]


@pytest.mark.parametrize("change, field", GROUPING_BAD, ids=[f for _, f in GROUPING_BAD])
def test_grouping_refuses_bad_input_naming_the_field(change, field):
    with pytest.raises(BuildError) as err:
        build_grouping(replace(GROUPING_IN, **change))
    assert err.value.field == field
    assert err.value.message.endswith(".") and "Traceback" not in err.value.message


GOAL_BAD = [
    ({"slot": 4}, "slot"),
    ({"slot": 0}, "slot"),
    ({"slot": True}, "slot"),
    ({"slot": "1"}, "slot"),
    ({"description": ""}, "description"),
    ({"description": "   "}, "description"),
    ({"description": None}, "description"),
    ({"subject": "Group/x"}, "subject"),
    ({"expressed_by": "Practitioner/x"}, "expressed_by"),
    ({"expressed_by": "Patient/other"}, "expressed_by"),
    ({"start_date": datetime(2025, 1, 14, tzinfo=UTC)}, "start_date"),
    ({"lifecycle_status": "done"}, "lifecycle_status"),
    ({"achievement_status": "great"}, "achievement_status"),
    ({"acceptance": (GoalAcceptance(individual="Organization/x"),)}, "acceptance[0]"),
    ({"acceptance": (GoalAcceptance(individual=PAT, status="yes"),)}, "acceptance[0]"),
    ({"status_date": date(2024, 1, 1)}, "status_date"),
]


@pytest.mark.parametrize("change, field", GOAL_BAD, ids=[f"{f}-{i}" for i, (_, f) in enumerate(GOAL_BAD)])
def test_goal_refuses_bad_input(change, field):
    with pytest.raises(BuildError) as err:
        build_goal(replace(GOAL_IN, **change))
    assert err.value.field == field


def test_goal_description_kept_unedited():
    words = "  to not feel sick  before school!! "
    assert build_goal(replace(GOAL_IN, description=words))["description"]["text"] == words


@pytest.mark.parametrize(
    "outcome, lifecycle, achievement",
    [
        ("achieved", "completed", "achieved"),
        ("not-achieved", "completed", "not-achieved"),
        ("ended", "cancelled", None),
    ],
)
def test_close_goal(outcome, lifecycle, achievement):
    closed = close_goal(GOAL_IN, outcome, date(2025, 5, 1), reason="Help ended as planned")
    goal = build_goal(closed)
    assert goal["id"] == build_goal(GOAL_IN)["id"]  # same goal, new version
    assert goal["lifecycleStatus"] == lifecycle
    assert goal["statusDate"] == "2025-05-01"
    assert goal["statusReason"] == "Help ended as planned"
    if achievement:
        assert goal["achievementStatus"]["coding"][0]["code"] == achievement
    else:
        assert goal["achievementStatus"]["coding"][0]["code"] == "improving"  # last known progress kept


def test_close_goal_refuses_bad_closing():
    with pytest.raises(BuildError) as err:
        build_goal(close_goal(GOAL_IN, "ended", date(2025, 5, 1)))
    assert err.value.field == "closing"  # an early end needs a reason
    with pytest.raises(BuildError) as err:
        build_goal(close_goal(GOAL_IN, "achieved", date(2024, 5, 1)))
    assert err.value.field == "closing"  # before the goal was set
    with pytest.raises(BuildError):
        build_goal(close_goal(GOAL_IN, "abandoned", date(2025, 5, 1)))


@pytest.mark.parametrize("score", [11, -1, 100, True, False, 5.0, 5.5, "5", None])
def test_score_out_of_range_or_wrong_type_is_refused(score):
    with pytest.raises(BuildError) as err:
        build_gbo_score(replace(SCORE_1_IN, score=score))
    assert err.value.field == "score"


@pytest.mark.parametrize("score", [0, 10])
def test_score_bounds_accepted(score):
    assert build_gbo_score(replace(SCORE_1_IN, score=score))["valueInteger"] == score


@pytest.mark.parametrize(
    "change, field",
    [
        ({"goal": "CarePlan/x"}, "goal"),
        ({"slot": 4}, "slot"),
        ({"rater": "Organization/x"}, "rater"),
        ({"rater": "Patient/other"}, "rater"),
        ({"episode": None}, "episode"),
        ({"effective": date.today() + timedelta(days=2)}, "effective"),
        ({"effective": datetime(2025, 1, 14)}, "effective"),
        ({"goal_start_date": date(2025, 2, 1)}, "effective"),
    ],
)
def test_score_refuses_bad_input(change, field):
    with pytest.raises(BuildError) as err:
        build_gbo_score(replace(SCORE_1_IN, **change))
    assert err.value.field == field


def test_score_with_datetime_effective():
    obs = build_gbo_score(replace(SCORE_1_IN, effective=datetime(2025, 1, 14, 10, 0, tzinfo=UTC)))
    assert obs["effectiveDateTime"] == "2025-01-14T10:00:00Z"


def _goal(slot: int, lifecycle: str = "active", subject: str = PAT) -> GoalInput:
    return replace(
        GOAL_IN,
        local_id=str(uuid.uuid4()),
        slot=slot,
        lifecycle_status=lifecycle,
        subject=subject,
        expressed_by=subject,
        acceptance=(),
    )


def test_fourth_open_goal_is_refused():
    existing = [_goal(1), _goal(2), build_goal(_goal(3))]  # inputs and built Goals both accepted
    with pytest.raises(BuildError) as err:
        check_goal_slots(_goal(1), existing)
    assert err.value.field == "slot" and "three open goals" in err.value.message


def test_slot_reuse_is_refused_even_when_the_old_goal_is_closed():
    closed = close_goal(_goal(1), "achieved", date(2025, 5, 1))
    with pytest.raises(BuildError) as err:
        check_goal_slots(_goal(1), [closed])
    assert err.value.field == "slot" and "Goal 1" in err.value.message
    check_goal_slots(_goal(2), [closed])  # a free slot is fine


def test_goal_slot_rules_ignore_other_people_and_own_versions():
    g = _goal(1)
    check_goal_slots(g, [g, _goal(1, subject="Patient/other"), _goal(2), _goal(3)])
    check_goal_slots(
        close_goal(_goal(1), "achieved", date(2025, 5, 1)), [_goal(2), _goal(3), _goal(1, subject="Patient/x")]
    )


PLAN_BAD = [
    ({"items": ()}, "items"),
    ({"items": PLAN_IN.items[1:]}, "items"),  # no warning signs
    ({"items": tuple(i for i in PLAN_IN.items if i.section != "professionals-agencies")}, "items"),
    ({"items": (SafetyPlanItem(section="hobbies", text="x"),)}, "items[0].section"),
    ({"items": (SafetyPlanItem(section="warning-signs", text=" "),)}, "items[0].text"),
    (
        {"items": (SafetyPlanItem(section="warning-signs", text="x", performer_refs=("Goal/x",)),)},
        "items[0].performer_refs[0]",
    ),
    ({"review_date": date(2025, 3, 1)}, "review_date"),
    ({"author": "Patient/pat-example-01"}, "author"),
    ({"contributors": (PARENT,)}, "contributors"),  # no young person and no note
    ({"subject": None}, "subject"),
    ({"status": "finished"}, "status"),
    ({"created": NOW + timedelta(hours=1)}, "created"),
    ({"care_team": "Group/x"}, "care_team"),
]


@pytest.mark.parametrize("change, field", PLAN_BAD, ids=[f"{f}-{i}" for i, (_, f) in enumerate(PLAN_BAD)])
def test_safety_plan_refuses_bad_input(change, field):
    with pytest.raises(BuildError) as err:
        build_safety_plan(replace(PLAN_IN, **change))
    assert err.value.field == field


def test_safety_plan_without_young_person_needs_note_and_draft_needs_no_required_sections():
    plan = build_safety_plan(replace(PLAN_IN, contributors=(PARENT,), note="Written with mum while in hospital"))
    assert plan["note"] == [{"text": "Written with mum while in hospital"}]
    draft = build_safety_plan(replace(PLAN_IN, status="draft", items=PLAN_IN.items[1:2]))
    assert draft["activity"][0]["detail"]["status"] == "not-started"


CONSENT_BAD = [
    ({"agencies": ()}, "agencies"),
    ({"agencies": ("Patient/x",)}, "agencies[0]"),
    ({"performer": ()}, "performer"),
    ({"performer": ("Practitioner/x",)}, "performer[0]"),
    ({"plan": "Observation/x"}, "plan"),
    ({"custodian": "Practitioner/x"}, "custodian"),
    ({"end_date": date(2025, 1, 1)}, "end_date"),
    ({"status": "withdrawn"}, "status"),
    ({"policy": "ISA v1"}, "policy"),
    ({"date_time": NOW + timedelta(days=3)}, "date_time"),
]


@pytest.mark.parametrize("change, field", CONSENT_BAD, ids=[f"{f}-{i}" for i, (_, f) in enumerate(CONSENT_BAD)])
def test_consent_refuses_bad_input(change, field):
    with pytest.raises(BuildError) as err:
        build_consent(replace(CONSENT_IN, **change))
    assert err.value.field == field


def test_consent_competence_extension_is_declared_and_its_code_bound():
    """The competence extension is a profiled project extension: the validator, which refuses unknown
    extensions in our namespace, accepts it, and its required binding refuses an invented code."""
    from thrive_fhir.validation import Validator, errors

    v = Validator.default()
    c = build_consent(replace(CONSENT_IN, competence="competent", competence_note="Talked it through"))
    assert c["extension"][0]["url"] == canonical.EXT_DECISION_COMPETENCE
    assert not [e for e in errors(v.validate(c)) if e[0] in ("error", "fatal")]
    c["extension"][0]["extension"][0]["valueCode"] = "mostly"
    assert any("Consent.extension[0]" in (e[2] or "") for e in errors(v.validate(c)) if e[0] == "error")


def test_withdraw_all_is_inactive_and_keeps_what_was_agreed():
    c = build_consent(withdraw_all(CONSENT_IN))
    assert c["status"] == "inactive"
    assert c["id"] == build_consent(CONSENT_IN)["id"]
    assert len(c["provision"]["actor"]) == 2
    assert c["policy"] == [{"uri": canonical.SHARING_POLICY}]


OFFER = Coded(canonical.local_offer_cs("example"), "mhst", "Mental Health Support Team in schools")
SIGNPOST_IN = SignpostInput(
    local_id=str(uuid.UUID(int=1, version=4)),
    kind="signposting",
    offer=OFFER,
    subject=PAT,
    episode=EOC,
    authored_on=datetime(2025, 3, 4, 16, 0, tzinfo=UTC),
    requester=PRR,
    performer="HealthcareService/hs-mhst-01",
    reason="Observation/" + resource_id("grouping", GROUPING_IN.local_id),
    goals=(GOAL_REF,),
)


def test_signposting_and_referral():
    sr = build_signposting(SIGNPOST_IN)
    assert sr["intent"] == "proposal" and sr["category"][0]["coding"][0]["code"] == "signposting"
    assert sr["code"]["coding"][0] == {"system": OFFER.system, "code": "mhst", "display": OFFER.display}
    assert {"url": canonical.EXT_PERTAINS_TO_GOAL, "valueReference": {"reference": GOAL_REF}} in sr["extension"]
    assert sr["identifier"][0]["system"] == canonical.id_system("signposting")
    ref_sr = build_signposting(replace(SIGNPOST_IN, kind="referral"))
    assert ref_sr["intent"] == "order" and ref_sr["category"][0]["coding"][0]["code"] == "referral"
    task = build_referral_task(
        ReferralTaskInput(
            local_id=str(uuid.UUID(int=2, version=4)),
            service_request="ServiceRequest/" + ref_sr["id"],
            subject=PAT,
            requester=PRR,
            owner="Organization/org-school-01",
            authored_on=datetime(2025, 3, 4, 16, 0, tzinfo=UTC),
        )
    )
    assert task["focus"] == {"reference": "ServiceRequest/" + ref_sr["id"]}
    assert task["code"]["coding"][0]["code"] == "fulfill" and task["intent"] == "order"
    assert task["id"] == resource_id("referral-task", str(uuid.UUID(int=2, version=4)))


@pytest.mark.parametrize(
    "change, field",
    [
        ({"kind": "advice"}, "kind"),
        ({"performer": "PractitionerRole/x"}, "performer"),
        ({"offer": Coded("http://example.org/cs", "x")}, "offer"),
        ({"reason": "Goal/x"}, "reason"),
        ({"goals": ("Observation/x",)}, "goals[0]"),
        ({"authored_on": NOW + timedelta(days=1)}, "authored_on"),
    ],
)
def test_signposting_refuses_bad_input(change, field):
    with pytest.raises(BuildError) as err:
        build_signposting(replace(SIGNPOST_IN, **change))
    assert err.value.field == field


def test_referral_task_rules():
    base = ReferralTaskInput(
        local_id=str(uuid.UUID(int=3, version=4)),
        service_request="ServiceRequest/sr1",
        subject=PAT,
        requester=PRR,
        authored_on=datetime(2025, 3, 4, tzinfo=UTC),
    )
    assert "owner" not in build_referral_task(replace(base, status="draft"))
    with pytest.raises(BuildError) as err:
        build_referral_task(base)
    assert err.value.field == "owner"
    with pytest.raises(BuildError) as err:
        build_referral_task(replace(base, owner="Organization/o", status="rejected"))
    assert err.value.field == "status_reason"
    t = build_referral_task(replace(base, owner="Organization/o", status="rejected", status_reason="No capacity"))
    assert t["statusReason"] == {"text": "No capacity"}


def test_episode_care_team_flag_local_offer():
    lid = str(uuid.UUID(int=4, version=4))
    eoc = build_episode(
        EpisodeInput(
            local_id=lid,
            subject=PAT,
            managing_organization="Organization/o",
            start=date(2025, 1, 1),
            referral_id=("https://example.org/referral", "R1"),
        )
    )
    assert eoc["id"] == resource_id("episode", lid) and eoc["identifier"][1]["value"] == "R1"
    with pytest.raises(BuildError) as err:
        build_episode(
            EpisodeInput(
                local_id=lid,
                subject=PAT,
                managing_organization="Organization/o",
                start=date(2025, 1, 1),
                status="finished",
            )
        )
    assert err.value.field == "end"

    team = build_care_team(
        CareTeamInput(
            local_id=lid,
            subject=PAT,
            episode=EOC,
            members=(
                CareTeamMember(member=PAT, role="Young person"),
                CareTeamMember(member="Practitioner/p1", role="School nurse", on_behalf_of="Organization/school"),
            ),
        )
    )
    assert team["participant"][1]["onBehalfOf"] == {"reference": "Organization/school"}
    with pytest.raises(BuildError) as err:
        build_care_team(
            CareTeamInput(
                local_id=lid,
                subject=PAT,
                members=(CareTeamMember(member=PRR, role="x", on_behalf_of="Organization/o"),),
            )
        )
    assert err.value.field == "members[0].on_behalf_of"

    flag = build_risk_flag(RiskFlagInput(local_id=lid, subject=PAT, author=PRR, start=datetime(2025, 3, 4, tzinfo=UTC)))
    assert flag["code"]["coding"][0]["code"] == "risk-support-alert"
    with pytest.raises(BuildError) as err:
        build_risk_flag(
            RiskFlagInput(
                local_id=lid, subject=PAT, author=PRR, status="inactive", start=datetime(2025, 3, 4, tzinfo=UTC)
            )
        )
    assert err.value.field == "end"

    hs = build_local_offer(
        LocalOfferInput(
            local_id=lid,
            provided_by="Organization/o",
            offer=OFFER,
            name="MHST",
            groupings=("getting-help", "Getting Advice"),
            phone="0300 000 0000",
        )
    )
    assert [c["coding"][0]["code"] for c in hs["characteristic"]] == ["getting-help", "getting-advice"]
    with pytest.raises(BuildError) as err:
        build_local_offer(
            LocalOfferInput(local_id=lid, provided_by="Organization/o", offer=OFFER, name="MHST", groupings=("severe",))
        )
    assert err.value.field == "groupings[0]"


def test_provenance_id_from_outbox_row_and_agents():
    prov = build_provenance(
        ProvenanceInput(
            outbox_row_id=42,
            targets=("Observation/a", "CarePlan/b"),
            recorded=datetime(2025, 3, 4, 16, 6, tzinfo=UTC),
            activity="CREATE",
            author=PRR,
            on_behalf_of="Organization/org-camhs-01",
            assembler="Device/thrive-app",
            sources=(SourceRecord(kind="grouping", local_id=GROUPING_IN.local_id, version=1),),
            informants=(PAT, PARENT),
            source_ods="RXX",
        )
    )
    ns = uuid.uuid5(uuid.NAMESPACE_URL, canonical.BASE)
    assert prov["id"] == str(uuid.uuid5(ns, f"{canonical.BASE}/Id/provenance|42"))
    assert prov["meta"]["source"] == f"{canonical.BASE}/source/RXX#42"
    types = [a["type"]["coding"][0]["code"] for a in prov["agent"]]
    assert types == ["author", "assembler", "informant", "informant"]
    assert prov["agent"][0]["onBehalfOf"] == {"reference": "Organization/org-camhs-01"}
    assert prov["entity"][0]["what"]["identifier"] == {
        "system": canonical.id_system("grouping"),
        "value": GROUPING_IN.local_id,
    }
    with pytest.raises(BuildError) as err:
        build_provenance(
            ProvenanceInput(
                outbox_row_id=1,
                targets=(),
                recorded=NOW,
                activity="CREATE",
                author=PRR,
                on_behalf_of="Organization/o",
                assembler="Device/d",
            )
        )
    assert err.value.field == "targets"


def test_people_and_organisations():
    lid = str(uuid.UUID(int=5, version=4))
    p = build_patient(
        PatientInput(
            local_id=lid,
            nhs_number="9990000018",
            family="Example",
            given=("Sam",),
            birth_date=date(2010, 5, 1),
            gender="female",
        )
    )
    nhs = p["identifier"][0]
    assert nhs["system"] == canonical.NHS_NUMBER and nhs["value"] == "9990000018"
    assert nhs["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] == "01"
    assert "9990000018" not in p["id"]
    with pytest.raises(BuildError) as err:
        build_patient(
            PatientInput(local_id=lid, nhs_number="9990000019", family="E", given=(), birth_date=date(2010, 1, 1))
        )
    assert err.value.field == "nhs_number"
    live = "1111111111"  # valid check digit, outside the test range, obviously not a person
    with pytest.raises(BuildError) as err:
        build_patient(PatientInput(local_id=lid, nhs_number=live, family="E", given=(), birth_date=date(2010, 1, 1)))
    assert err.value.field == "nhs_number" and "999" in err.value.message
    assert (
        build_patient(
            PatientInput(
                local_id=lid, nhs_number=live, family="E", given=(), birth_date=date(2010, 1, 1), test_range_only=False
            )
        )["identifier"][0]["value"]
        == live
    )

    org = build_organization(OrganizationInput(local_id=lid, name="Example CAMHS", agency_type="camhs", ods_code="RXX"))
    assert org["identifier"][0] == {"system": canonical.ODS_ORG, "value": "RXX"}
    school = build_organization(OrganizationInput(local_id=lid, name="Example School", agency_type="school"))
    assert school["identifier"][0]["system"] == canonical.id_system("organization")
    with pytest.raises(BuildError) as err:
        build_organization(OrganizationInput(local_id=lid, name="X", agency_type="bank"))
    assert err.value.field == "agency_type"

    pr = build_practitioner(
        PractitionerInput(local_id=lid, family="Nurse", given=("Alex",), sds_user_id="123456789012")
    )
    assert pr["identifier"][0]["system"] == canonical.SDS_USER
    prr = build_practitioner_role(
        PractitionerRoleInput(
            local_id=lid,
            practitioner="Practitioner/" + pr["id"],
            organization="Organization/" + org["id"],
            role="CAMHS clinician",
        )
    )
    assert prr["practitioner"]["reference"].startswith("Practitioner/")
    rp = build_related_person(
        RelatedPersonInput(local_id=lid, patient=PAT, relationship="MTH", family="Example", given=("Jo",))
    )
    assert rp["relationship"][0]["coding"][0]["code"] == "MTH"
    with pytest.raises(BuildError) as err:
        build_related_person(RelatedPersonInput(local_id=lid, patient=PAT, relationship="mum", family="E", given=()))
    assert err.value.field == "relationship"
