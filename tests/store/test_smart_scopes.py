"""SMART v2/v1 scope grammar and the permission rule shared by the store, sandbox and app."""

from __future__ import annotations

import time

import pytest

from thrive_fhir.smart_scopes import Grant, ScopeError, parse_scope, parse_scopes, permits


def test_v2_scopes_parse_with_letters_and_query():
    s = parse_scope("patient/Observation.rs?category=http://x|survey")
    assert (s.context, s.resource_type, s.permissions, s.version) == ("patient", "Observation", frozenset("rs"), 2)
    assert s.query == (("category", "http://x|survey"),)
    assert parse_scope("system/*.cruds").to_v2() == "system/*.cruds"


@pytest.mark.parametrize(
    "text,letters", [("patient/Patient.read", "rs"), ("user/Goal.write", "cud"), ("system/*.*", "cruds")]
)
def test_v1_scopes_map_to_v2_letters(text, letters):
    s = parse_scope(text)
    assert s.permissions == frozenset(letters) and s.version == 1


@pytest.mark.parametrize(
    "bad",
    [
        "patient/Observation.dus",
        "patient/Observation.rr",
        "patient/Observation.x",
        "patient/observation.r",
        "practitioner/Observation.r",
        "user/Goal.",
        "system/Goal",
    ],
)
def test_strict_parser_rejects_malformed_resource_scopes(bad):
    with pytest.raises(ScopeError):
        parse_scope(bad)
    assert parse_scope(bad, strict=False) is None


def test_non_resource_scopes_are_skipped():
    parsed = parse_scopes("launch openid fhirUser launch/patient offline_access patient/Goal.c")
    assert [s.raw for s in parsed] == ["patient/Goal.c"]
    grant = Grant.from_scope_string("c", "openid patient/Goal.c patient/Goal.dus")
    assert grant.other_scopes == ("openid", "patient/Goal.dus") and len(grant.scopes) == 1


def test_permits_interactions_contexts_and_patients():
    g = Grant.from_scope_string("app", "patient/Observation.cs patient/Patient.r", patient="p1")
    assert permits(g, "Observation", "create", "p1")
    assert not permits(g, "Observation", "create", "p2")
    assert not permits(g, "Observation", "read", "p1")  # write does not imply read; s is not r
    assert permits(g, "Observation", "search", "p1")
    assert permits(g, "Patient", "vread", "p1") and not permits(g, "Patient", "update", "p1")
    assert not permits(g, "Goal", "create", "p1")
    no_patient = Grant.from_scope_string("app", "patient/Observation.r")
    assert not permits(no_patient, "Observation", "read", "p1")
    system = Grant.from_scope_string("w", "system/Goal.ru")
    assert permits(system, "Goal", "update", "anyone") and not permits(system, "Goal", "delete", None)
    assert not permits(Grant.from_scope_string("w", "system/*.cruds", expires=time.time() - 1), "Goal", "read", None)


def test_granular_scope_needs_matching_resource():
    g = Grant.from_scope_string("app", "user/Observation.rs?category=http://x|survey")
    survey = {"category": [{"coding": [{"system": "http://x", "code": "survey"}]}]}
    lab = {"category": [{"coding": [{"system": "http://x", "code": "laboratory"}]}]}
    assert permits(g, "Observation", "read", None, resource=survey)
    assert not permits(g, "Observation", "read", None, resource=lab)
    assert not permits(g, "Observation", "read", None)
