"""The code lists builders check against agree with the committed CodeSystems (the source of truth)."""

from __future__ import annotations

import pytest

from thrive_fhir import canonical, terminology
from thrive_fhir.builders import _codes


def _codes_of(system: str) -> tuple[str, ...]:
    return tuple(c["code"] for c in terminology.load().codesystem(system)["concept"])


@pytest.mark.parametrize(
    "mirror, system",
    [
        (_codes.INVOLVEMENT, canonical.CS_INVOLVEMENT),
        (_codes.CHANGE_REASONS, canonical.CS_CHANGE_REASON),
        (_codes.SAFETY_PLAN_SECTIONS, canonical.CS_SAFETY_PLAN_SECTION),
        (canonical.GROUPINGS, canonical.CS_GROUPING),
    ],
)
def test_code_lists_match_codesystems(mirror, system):
    assert set(mirror) == set(_codes_of(system))


def test_grouping_methods_are_element_codes():
    concepts = set(_codes_of(canonical.CS_CONCEPTS))
    assert set(_codes.GROUPING_METHODS) <= concepts
    assert {"signposting", "referral", "safety-plan", "gbo-goal", "risk-support-alert"} <= concepts
