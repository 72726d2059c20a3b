"""How the sandbox seeder reports a store that refused a resource.

The store's answer is client-visible text from another server: whatever shape its OperationOutcome
has, the seeder must turn it into one readable line, never a TypeError of its own.
"""

from __future__ import annotations

import json

import pytest

from thrive_fhir.sandbox.seed import _diagnostics


def _outcome(*issues: object) -> str:
    return json.dumps({"resourceType": "OperationOutcome", "issue": list(issues)})


def test_the_first_text_diagnostics_is_quoted_and_clipped():
    text = _outcome({"severity": "error", "code": "invalid", "diagnostics": "x" * 400})
    assert _diagnostics(text) == ": " + "x" * 300


@pytest.mark.parametrize("odd", [5, ["a list"], {"an": "object"}, None, ""])
def test_non_text_diagnostics_are_skipped_not_sliced(odd):
    text = _outcome({"severity": "error", "diagnostics": odd}, {"severity": "error", "diagnostics": "readable"})
    assert _diagnostics(text) == ": readable"


@pytest.mark.parametrize("body", ["not json", "[]", json.dumps({"issue": "text"}), _outcome()])
def test_an_answer_without_usable_issues_adds_nothing(body):
    assert _diagnostics(body) == ""
