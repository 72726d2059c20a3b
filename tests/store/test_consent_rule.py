"""The consent-to-share rule (thrive_fhir.consent_rule), shared by the store and the app."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.support.consent_data import ORG_A, ORG_B, consent
from thrive_fhir.consent_rule import active_consent_for, organization_ref, shares

NOW = datetime(2025, 6, 1, 12, 0)


def _orgs(c, now=NOW):
    return {s.organization for s in shares(c) if s.covers(now)}


def test_active_permit_names_its_organisations():
    c = consent("c1", "p1", [ORG_A, ORG_B], start="2025-03-04", end="2026-03-04")
    assert _orgs(c) == {ORG_A, ORG_B}


@pytest.mark.parametrize("status", ["inactive", "draft", "proposed", "rejected", "entered-in-error"])
def test_only_active_consents_share(status):
    assert shares(consent("c1", "p1", [ORG_A], status=status, start="2025-01-01")) == []


def test_date_only_end_is_inclusive_and_start_is_from_midnight():
    c = consent("c1", "p1", [ORG_A], start="2025-06-01", end="2025-06-01")
    assert _orgs(c, datetime(2025, 6, 1, 0, 0)) == {ORG_A}
    assert _orgs(c, datetime(2025, 6, 1, 23, 59, 59)) == {ORG_A}
    assert _orgs(c, datetime(2025, 6, 2, 0, 0)) == set()
    assert _orgs(c, datetime(2025, 5, 31, 23, 59, 59)) == set()


def test_datetime_end_with_offset_is_compared_in_utc():
    c = consent("c1", "p1", [ORG_A], start="2025-01-01", end="2025-06-01T13:00:00+02:00")  # 11:00 UTC
    assert _orgs(c, datetime(2025, 6, 1, 10, 59)) == {ORG_A}
    assert _orgs(c, datetime(2025, 6, 1, 11, 0, 1)) == set()


def test_open_ended_and_unreadable_periods():
    assert _orgs(consent("c1", "p1", [ORG_A])) == {ORG_A}  # no period: open on both sides
    assert shares(consent("c1", "p1", [ORG_A], start="not a date")) == []  # fail closed
    assert shares(consent("c1", "p1", [ORG_A], start="2025-06-02", end="2025-06-01")) == []


def test_deny_type_other_scope_and_nested_deny():
    c = consent("c1", "p1", [ORG_A, ORG_B], start="2025-01-01")
    assert shares({**c, "provision": {**c["provision"], "type": "deny"}}) == []
    research = {
        **c,
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "research"}]},
    }
    assert shares(research) == []
    nested = {
        **c,
        "provision": {
            **c["provision"],
            "provision": [{"type": "deny", "actor": [{"reference": {"reference": ORG_B}}]}],
        },
    }
    assert _orgs(nested) == {ORG_A}


def test_absolute_and_versioned_organisation_references():
    assert organization_ref("https://x.example/fhir/Organization/abc") == "Organization/abc"
    assert organization_ref("Organization/abc/_history/3") == "Organization/abc"
    assert organization_ref("Practitioner/abc") is None
    c = consent("c1", "p1", ["https://x.example/fhir/Organization/org-school-a"], start="2025-01-01")
    assert _orgs(c) == {ORG_A}


def test_active_consent_for_matches_patient_and_organisation():
    c1 = consent("c1", "p1", [ORG_A], start="2025-01-01", end="2025-12-31")
    c2 = consent("c2", "p2", [ORG_B], start="2025-01-01", end="2025-12-31")
    now = datetime(2025, 6, 1, tzinfo=UTC)
    assert active_consent_for([c1, c2], "Patient/p1", ORG_A, now) is c1
    assert active_consent_for([c1, c2], "Patient/p1", ORG_B, now) is None
    assert active_consent_for([c1, c2], "Patient/p2", ORG_B, now) is c2
    assert active_consent_for([c1, c2], "Patient/p1", None, now) is None
    assert active_consent_for([c1], "Patient/p1", ORG_A, datetime(2026, 1, 1, tzinfo=UTC)) is None
