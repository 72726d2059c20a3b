"""Safety plan item ids and agency confirmations (thrive_fhir.entry_confirmation): an item keeps its id
while its words and holder stay the same, a confirmation counts only for the organisation the item
names, and a confirmation never becomes "who recorded the plan" on the clinician Summary."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

from thrive_fhir.builders import SafetyPlanInput, SafetyPlanItem, build_safety_plan
from thrive_fhir.entry_confirmation import agency_entries, build_confirmation, confirmations, is_confirmation

SCHOOL, SOCIAL = "Organization/school-1", "Organization/social-2"


PLAN_ID = str(uuid.uuid4())


def _plan(*agency_items: tuple[str, str], local_id: str = PLAN_ID) -> dict:
    now = datetime.now(UTC).replace(microsecond=0)
    plan = build_safety_plan(
        SafetyPlanInput(
            local_id=local_id,
            subject="Patient/yp-1",
            start_date=date.today(),
            review_date=date.today() + timedelta(days=30),
            created=now - timedelta(minutes=1),
            author="Practitioner/pr-1",
            contributors=("Patient/yp-1",),
            items=(
                SafetyPlanItem(section="warning-signs", text="Not sleeping"),
                SafetyPlanItem(section="professionals-agencies", text="Crisis line 0800 000 0000"),
                *(SafetyPlanItem(section="agency-actions", text=t, performer_refs=(o,)) for t, o in agency_items),
            ),
        ),
        now=now,
    )
    plan["meta"]["versionId"] = "3"
    return plan


def test_item_ids_follow_the_words_and_the_holder():
    a = _plan(("Quiet room at break", SCHOOL), ("Weekly visit", SOCIAL))
    b = _plan(("Quiet room at break", SCHOOL), ("Weekly visit", SOCIAL))
    assert [e.id for e in agency_entries(a)] == [e.id for e in agency_entries(b)]
    reworded = _plan(("Quiet room at lunch", SCHOOL), ("Weekly visit", SOCIAL))
    moved = _plan(("Quiet room at break", SOCIAL), ("Weekly visit", SOCIAL))
    ids = {e.id for e in agency_entries(a)}
    assert agency_entries(reworded)[0].id not in ids and agency_entries(moved)[0].id not in ids
    assert agency_entries(reworded)[1].id in ids  # the unchanged item keeps its id (and confirmation)
    twice = _plan(("Same words", SCHOOL), ("Same words", SCHOOL))
    first, second = (e.id for e in agency_entries(twice))
    assert first != second and second == first + "-2"
    assert all(len(e.id) <= 64 for e in agency_entries(twice))


def test_a_confirmation_counts_only_for_the_organisation_the_item_names():
    plan = _plan(("Quiet room at break", SCHOOL), ("Weekly visit", SOCIAL))
    school_item, social_item = (e.id for e in agency_entries(plan))
    now = datetime.now(UTC)
    own = build_confirmation(plan["id"], "3", school_item, worker="Practitioner/w1", organization=SCHOOL, recorded=now)
    forged = build_confirmation(
        plan["id"], "3", social_item, worker="Practitioner/w1", organization=SCHOOL, recorded=now
    )
    other_plan = build_confirmation(
        str(uuid.uuid4()), "1", school_item, worker="x/y", organization=SCHOOL, recorded=now
    )
    assert set(confirmations(plan, [own, forged, other_plan])) == {school_item}
    assert is_confirmation(own) and not is_confirmation({"resourceType": "Provenance", "activity": {}})


def test_a_confirmation_is_not_who_recorded_the_plan_on_the_summary():
    from smart_app.summary.shared_history import StoreRead, merge

    plan = _plan(("Quiet room at break", SCHOOL))
    item = agency_entries(plan)[0].id
    saved = {
        "resourceType": "Provenance",
        "id": "p-save",
        "target": [{"reference": f"CarePlan/{plan['id']}"}],
        "recorded": "2025-01-01T10:00:00Z",
        "agent": [{"who": {"reference": "Practitioner/pr-1"}}],
    }
    confirmed = build_confirmation(
        plan["id"], "3", item, worker="Practitioner/w1", organization=SCHOOL, recorded=datetime.now(UTC)
    )
    confirmed["id"] = "p-confirm"
    read = StoreRead([("CarePlan", plan["id"], 3, plan)], [saved, confirmed], {})
    _records, _refs, newest = merge("Patient/yp-1", [], read, frozenset())
    assert newest[f"CarePlan/{plan['id']}"]["id"] == "p-save"


def test_a_built_confirmation_is_valid_against_its_profile():
    from tests.support.validation_helpers import error_pairs, validator

    plan = _plan(("Quiet room at break", SCHOOL))
    prov = build_confirmation(
        plan["id"],
        "3",
        agency_entries(plan)[0].id,
        worker="Practitioner/w1",
        organization=SCHOOL,
        recorded=datetime.now(UTC),
    )
    prov["id"] = str(uuid.uuid4())
    assert error_pairs(validator().validate(prov)) == set()
    del prov["target"][0]["extension"]
    assert ("Provenance", "thr-conf-1") in error_pairs(validator().validate(prov))
