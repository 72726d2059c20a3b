"""Bad input named in docs/design/validation.md (and a few more): each gets a precise issue, never a traceback."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

import pytest

from tests.support.validation_helpers import error_pairs, example, gbo_score, grouping, validator
from thrive_fhir import canonical as c
from thrive_fhir.validation import ValidationError, Validator, errors, has_errors


def _codes(oo):
    return {(e[1], e[2]) for e in errors(oo) if e[0] in ("error", "fatal")}


def test_valid_resource_gives_one_information_issue():
    oo = validator().validate(grouping())
    assert oo["resourceType"] == "OperationOutcome"
    assert [(i["severity"], i["code"]) for i in oo["issue"]] == [("information", "informational")]
    assert validator().is_valid(grouping())


def test_wrong_grouping_code():
    obs = grouping()
    obs["valueCodeableConcept"]["coding"][0]["code"] = "getting-some-help"
    oo = validator().validate(obs)
    assert ("code-invalid", "Observation.valueCodeableConcept.coding[0].code") in _codes(oo)
    text = next(e[3] for e in errors(oo) if e[1] == "code-invalid")
    assert text.startswith("binding: ") and c.VS_GROUPING in text


def test_grouping_code_from_the_wrong_system():
    obs = grouping()
    obs["valueCodeableConcept"]["coding"][0]["system"] = c.CS_CONCEPTS
    pairs = error_pairs(validator().validate(obs))
    assert ("Observation.valueCodeableConcept.coding[0].code", "binding") in pairs
    assert ("Observation", "thr-grp-1") in pairs


@pytest.mark.parametrize("score", [11, -1])
def test_goal_score_out_of_range(score):
    obs = gbo_score()
    obs["valueInteger"] = score
    oo = validator().validate(obs)
    assert error_pairs(oo) == {("Observation", "thr-gbo-1")}
    assert [e[1] for e in errors(oo)] == ["invariant"]
    assert not validator().is_valid(obs)


@pytest.mark.parametrize("score", [0, 10])
def test_goal_score_bounds_are_allowed(score):
    obs = gbo_score()
    obs["valueInteger"] = score
    assert validator().is_valid(obs)


def _goal(i, slot_code, status="active"):
    g = example("Goal-")
    g["id"] = f"goal-{i}"
    g["lifecycleStatus"] = status
    g["target"][0]["measure"]["coding"][0]["code"] = slot_code
    return g


def test_more_than_three_active_goals_in_a_set():
    codes = [code for code, _ in c.GBO_SCORE_CODES.values()]
    goals = [_goal(i, codes[i % 3]) for i in range(4)]
    result = Validator.default().validate_set(goals)
    assert set(result) == {f"Goal/goal-{i}" for i in range(4)}
    fourth = error_pairs(result["Goal/goal-3"])
    assert ("Goal", "app-max-active-goals") in fourth
    assert ("Goal.target[0].measure", "app-slot-reused") in fourth
    assert not has_errors(result["Goal/goal-0"])
    # three open goals plus a completed one is fine
    goals[3]["lifecycleStatus"] = "completed"
    goals[3]["target"][0]["measure"]["coding"][0]["code"] = codes[0]
    goals[3]["id"] = goals[0]["id"]  # the same goal again (a later version) may keep its slot
    assert not any(
        ("Goal", "app-max-active-goals") in error_pairs(oo) for oo in Validator.default().validate_set(goals).values()
    )


def test_safety_plan_without_a_patient():
    plan = example("CarePlan-")
    del plan["subject"]
    assert error_pairs(validator().validate(plan)) == {("CarePlan.subject", "cardinality")}


def test_safety_plan_subject_not_a_patient():
    plan = example("CarePlan-")
    plan["subject"] = {"reference": "Group/g1"}
    assert ("CarePlan.subject", "type") in error_pairs(validator().validate(plan))


def test_consent_with_no_actor():
    consent = example("Consent-")
    del consent["provision"]["actor"]
    pairs = error_pairs(validator().validate(consent))
    assert pairs == {("Consent.provision.actor", "cardinality"), ("Consent", "thr-con-2")}


def test_date_in_the_future():
    fixed = datetime(2025, 3, 5, 12, 0, tzinfo=UTC)
    v = Validator(Validator.default().tables, clock=lambda: fixed)
    obs = grouping()
    assert v.is_valid(obs)  # effective 2025-03-04 is in the past for this clock
    obs["effectiveDateTime"] = "2025-03-06T09:00:00Z"
    obs["issued"] = "2025-03-06T09:10:00Z"
    pairs = error_pairs(v.validate(obs))
    assert ("Observation.effectiveDateTime", "app-future-date") in pairs
    assert ("Observation.issued", "app-future-date") in pairs
    goal = example("Goal-")
    goal["startDate"] = "2025-03-07"
    assert ("Goal.startDate", "app-future-date") in error_pairs(v.validate(goal))


def test_effective_after_issued():
    obs = grouping()
    obs["issued"] = "2020-01-01T00:00:00Z"
    assert ("Observation.effectiveDateTime", "app-effective-after-issued") in error_pairs(validator().validate(obs))


def test_wrong_resource_type_in_a_reference():
    obs = gbo_score()
    obs["focus"] = [{"reference": "CarePlan/abc"}]
    oo = validator().validate(obs)
    assert ("Observation.focus[0]", "type") in error_pairs(oo)
    text = next(e[3] for e in errors(oo) if e[2] == "Observation.focus[0]")
    assert "CarePlan" in text and "Goal" in text


def test_reference_to_an_unknown_type():
    obs = grouping()
    obs["subject"] = {"reference": "Child/abc"}
    assert ("Observation.subject", "type") in error_pairs(validator().validate(obs))


def test_malformed_json():
    oo = validator().validate_bytes(b'{"resourceType": "Observation",\n "status": "final" "code": {}}')
    ((sev, code, _expr, text),) = errors(oo)
    assert (sev, code) == ("fatal", "structure")
    assert "line 2 column" in text and text.startswith("json: malformed JSON")


def test_fifty_megabyte_body_is_refused_before_decoding():
    body = b'{"resourceType": "Basic", "id": "' + b"a" * (50 * 1024 * 1024) + b'"}'
    oo = validator().validate_bytes(body)
    ((sev, code, _expr, text),) = errors(oo)
    assert (sev, code) == ("fatal", "too-long")
    assert "52,428,8" in text and "10,485,760" in text
    # the limit is configurable
    small = validator().validate_bytes(json.dumps(grouping()).encode(), max_bytes=100)
    assert errors(small)[0][1] == "too-long"


def test_non_utf8_bytes():
    oo = validator().validate_bytes(b'{"resourceType": "Patient", "id": "p\xff1"}')
    ((sev, code, _expr, text),) = errors(oo)
    assert (sev, code) == ("fatal", "invalid")
    assert "UTF-8" in text and "0xff" in text


@pytest.mark.parametrize(
    "body,needle",
    [
        (b"", "empty"),
        (b"[1, 2]", "JSON object"),
        (b'{"resourceType": "Patient", "id": "a", "id": "b"}', "duplicate key 'id'"),
        (b'{"resourceType": "Observation", "valueQuantity": {"value": NaN}}', "NaN"),
        (b"[" * 100000 + b"]" * 100000, "nested"),
    ],
)
def test_other_unreadable_bodies(body, needle):
    oo = validator().validate_bytes(body)
    assert has_errors(oo)
    assert needle in errors(oo)[0][3]


def test_bytes_path_validates_content_too():
    obs = gbo_score()
    obs["valueInteger"] = 11
    body = ("\ufeff" + json.dumps(obs)).encode()
    assert error_pairs(validator().validate_bytes(body)) == {("Observation", "thr-gbo-1")}


def test_unknown_resource_type():
    oo = validator().validate({"resourceType": "Grouping", "id": "x"})
    assert error_pairs(oo) == {("resourceType", "unknown-resource-type")}
    oo = validator().validate({"id": "x"})
    assert error_pairs(oo) == {("resourceType", "unknown-resource-type")}


def test_unknown_element_is_reported_not_dropped():
    obs = grouping()
    obs["component"][0]["valueCodeableConcept"]["coding"][0]["colour"] = "red"
    pairs = error_pairs(validator().validate(obs))
    assert pairs == {("Observation.component[0].valueCodeableConcept.coding[0].colour", "unknown-element")}


@pytest.mark.parametrize(
    "mutate,expr",
    [
        (lambda o: o.__setitem__("status", 1), "Observation.status"),
        (lambda o: o.__setitem__("valueInteger", "6"), "Observation.valueInteger"),
        (lambda o: o.__setitem__("valueInteger", 6.0), "Observation.valueInteger"),
        (lambda o: o.__setitem__("subject", "Patient/x"), "Observation.subject"),
        (lambda o: o.__setitem__("category", {"coding": []}), "Observation.category"),
        (lambda o: o.__setitem__("code", [o["code"]]), "Observation.code"),
    ],
)
def test_wrong_datatype(mutate, expr):
    obs = gbo_score()
    mutate(obs)
    assert (expr, "type") in error_pairs(validator().validate(obs))


@pytest.mark.parametrize("value", ["2025-13-45", "2025-02-30", "4 March 2025", "2025-03-04T25:00:00Z"])
def test_bad_primitive_format(value):
    obs = gbo_score()
    obs["effectiveDateTime"] = value
    oo = validator().validate(obs)
    assert ("Observation.effectiveDateTime", "invalid-value") in error_pairs(oo)
    assert value in next(e[3] for e in errors(oo) if e[2] == "Observation.effectiveDateTime")


@pytest.mark.parametrize(
    "mutate,expr",
    [
        (lambda o: o.__setitem__("encounter", {}), "Observation.encounter"),
        (lambda o: o.__setitem__("note", []), "Observation.note"),
        (lambda o: o["performer"].append({}), "Observation.performer[1]"),
        (lambda o: o["subject"].__setitem__("display", ""), "Observation.subject.display"),
    ],
)
def test_empty_objects_arrays_and_strings(mutate, expr):
    obs = gbo_score()
    mutate(obs)
    oo = validator().validate(obs)
    assert any(e[2] == expr and e[0] == "error" for e in errors(oo))


def test_cardinality_and_fixed_values():
    obs = grouping()
    del obs["effectiveDateTime"]
    obs["status"] = "preliminary"
    pairs = error_pairs(validator().validate(obs))
    assert ("Observation.effective[x]", "cardinality") in pairs
    assert ("Observation.status", "binding") in pairs


def test_r4_core_required_binding_and_invariant_on_plain_resources():
    # no profile: base R4 rules still apply (core ValueSet expansion, obs-6)
    obs = {
        "resourceType": "Observation",
        "status": "done",
        "code": {"text": "x"},
        "dataAbsentReason": {"text": "n/a"},
        "valueString": "x",
    }
    pairs = error_pairs(validator().validate(obs))
    assert ("Observation.status", "binding") in pairs
    assert ("Observation", "obs-6") in pairs


def test_unknown_profile_is_a_warning_and_base_rules_still_apply():
    obs = gbo_score()
    obs["meta"]["profile"] = [c.BASE + "/StructureDefinition/not-a-profile"]
    obs["valueInteger"] = 11  # thr-gbo-1 is our profile's rule: not applied without the profile
    oo = validator().validate(obs)
    warnings = [e for e in errors(oo) if e[0] == "warning"]
    assert warnings and warnings[0][2] == "Observation.meta.profile[0]" and "not known" in warnings[0][3]
    assert not has_errors(oo)


def test_profile_for_another_type_is_an_error():
    obs = gbo_score()
    obs["meta"]["profile"] = [c.PROFILE_GBO_GOAL]
    assert ("Observation.meta.profile[0]", "profile") in error_pairs(validator().validate(obs))


def test_contained_resources_are_validated():
    obs = gbo_score()
    obs["contained"] = [{"resourceType": "Goal", "id": "g", "lifecycleStatus": "nonsense"}]
    obs["focus"] = [{"reference": "#g"}]
    pairs = error_pairs(validator().validate(obs))
    assert ("Observation.contained[0].lifecycleStatus", "binding") in pairs
    assert ("Observation.contained[0].description", "cardinality") in pairs


def test_bundle_entries_are_validated_in_place():
    bad = gbo_score()
    bad["valueInteger"] = -1
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"fullUrl": "urn:uuid:" + "0" * 8 + "-0000-4000-8000-" + "0" * 12, "resource": bad}],
    }
    assert error_pairs(validator().validate(bundle)) == {("Bundle.entry[0].resource", "thr-gbo-1")}


def test_validate_set_keys_and_cross_rules():
    goal = example("Goal-")
    score = gbo_score()
    score["focus"] = [{"reference": f"Goal/{goal['id']}"}]
    score["code"]["coding"][0]["code"] = c.GBO_SCORE_CODES[2][0]
    anonymous = copy.deepcopy(score)
    del anonymous["id"]
    result = validator().validate_set([goal, score, anonymous])
    assert set(result) == {f"Goal/{goal['id']}", f"Observation/{score['id']}", "2"}
    assert ("Observation.code", "app-gbo-code-mismatch") in error_pairs(result[f"Observation/{score['id']}"])
    assert not has_errors(result[f"Goal/{goal['id']}"])


def test_check_raises_validation_error_with_outcome():
    obs = gbo_score()
    obs["valueInteger"] = 42
    with pytest.raises(ValidationError) as exc:
        validator().check(obs)
    assert exc.value.outcome["resourceType"] == "OperationOutcome"
    assert "thr-gbo-1" in str(exc.value)


@pytest.mark.parametrize("thing", [None, 3, "Observation", [], {"resourceType": 5}])
def test_non_resources_never_raise(thing):
    oo = validator().validate(thing)
    assert has_errors(oo)
