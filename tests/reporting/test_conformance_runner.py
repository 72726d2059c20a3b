"""The SQL on FHIR v2 conformance runner, on our own small file in the official test format.

Two of its cases are deliberately wrong, so the runner is seen to fail tests as well as pass them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from thrive_fhir.cli import cli
from thrive_fhir.reporting.conformance import ConformanceError, compare, run_dir, summary

OWN = Path(__file__).parent / "conformance_data"
EXPECTED = {
    "rows in any order": True,
    "collection column and numbers": True,
    "given names as a collection": True,
    "column names in order": True,
    "an unknown element is an error": True,
    "deliberately wrong: a missing row": False,
    "deliberately wrong: a valid view expected to fail": False,
}


def test_runner_passes_and_fails_the_right_tests():
    report = run_dir(OWN)
    results = {t["name"]: t["result"] for t in report["own_cases.json"]["tests"]}
    assert {k: v["passed"] for k, v in results.items()} == EXPECTED
    assert "expected 1" in results["deliberately wrong: a missing row"]["reason"]
    assert summary(report) == "5/7 passed"


def test_compare_checks_columns_order_and_duplicates():
    test = {"expect": [{"a": 1}, {"a": 1}]}
    assert compare(test, ["a"], [{"a": 1.0}, {"a": 1}])["passed"]
    assert not compare(test, ["a"], [{"a": 1}])["passed"]  # a duplicate row counts
    assert not compare(test, ["a", "b"], [{"a": 1, "b": None}] * 2)["passed"]  # an extra column
    assert not compare({"expectColumns": ["b", "a"]}, ["a", "b"], [])["passed"]


def test_cli_writes_the_report_shape_and_one_summary_line(tmp_path):
    out = tmp_path / "test_report.json"
    result = CliRunner().invoke(cli, ["view", "conformance", str(OWN), "--report", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "5/7 passed (duckdb)"
    report = json.loads(out.read_text())
    first = report["own_cases.json"]["tests"][0]
    assert first == {"name": "rows in any order", "result": {"passed": True}}


def test_cli_bad_folder_is_one_line(tmp_path):
    result = CliRunner().invoke(cli, ["view", "conformance", str(tmp_path / "missing")])
    assert result.exit_code == 1 and result.output.count("\n") == 1 and "Traceback" not in result.output
    with pytest.raises(ConformanceError):
        run_dir(tmp_path)  # an empty folder
