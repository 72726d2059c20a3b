"""Every example validates; every invalid fixture fails with exactly the expected expression+rule.

Parametrised from the files on disk, so fixtures added to tests/fixtures/invalid (and its app/
folder) are picked up without touching this module.
"""

from __future__ import annotations

import json

import pytest

from tests.support.validation_helpers import EXAMPLES, INVALID, error_pairs, load, validator
from thrive_fhir.validation import errors

EXAMPLE_FILES = sorted(EXAMPLES.glob("*.json"))


def _expected(folder):
    path = folder / "expected.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    return [(folder / name, {(e["expression"], e["rule"]) for e in want}) for name, want in sorted(data.items())]


CASES = _expected(INVALID) + _expected(INVALID / "app")


def test_there_is_something_to_check():
    assert len(EXAMPLE_FILES) >= 10
    assert len(CASES) >= 20


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=[p.name for p in EXAMPLE_FILES])
def test_example_is_valid_without_warnings(path):
    oo = validator().validate(load(path))
    problems = [e for e in errors(oo) if e[0] != "information"]
    assert problems == []
    assert oo["issue"][0]["code"] == "informational"


@pytest.mark.parametrize("path,want", CASES, ids=[p.name for p, _ in CASES])
def test_invalid_fixture_reports_exactly_the_expected_errors(path, want):
    oo = validator().validate(load(path))
    assert error_pairs(oo) == want
    for issue in oo["issue"]:
        # every issue is readable on its own: a rule name and a sentence
        assert issue["details"]["text"].split(": ", 1)[1]


def test_every_fixture_file_is_listed_in_expected_json():
    for folder in (INVALID, INVALID / "app"):
        listed = set(json.loads((folder / "expected.json").read_text()))
        on_disk = {p.name for p in folder.glob("*.json")} - {"expected.json"}
        assert on_disk == listed
