"""The hazard log (docs/clinical-safety/hazard-log.md) names, for each control, the tests that prove
it. A control whose test was renamed or deleted is no longer proven, so: every test named must
exist, be collected by pytest, and pass."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LOG = REPO / "docs" / "clinical-safety" / "hazard-log.md"
TEST_ID = re.compile(r"`(tests/[\w/.-]+\.py::\w+)`")


def named_tests() -> list[str]:
    return list(dict.fromkeys(TEST_ID.findall(LOG.read_text(encoding="utf-8"))))


def _pytest(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_every_hazard_has_cause_effect_risks_controls_and_tests():
    text = LOG.read_text(encoding="utf-8")
    hazards = re.split(r"^### ", text, flags=re.M)[1:]
    assert len(hazards) >= 8
    for block in hazards:
        title = block.splitlines()[0]
        for part in (
            "**Cause.**",
            "**Effect.**",
            "**Initial risk.**",
            "**Controls.**",
            "**Residual risk.**",
            "**Tests.**",
        ):
            assert part in block, f"{title}: missing {part}"
        assert TEST_ID.search(block), f"{title}: names no test"
    for hazard in (
        "wrong young person",
        "stale grouping",
        "Risk is not visible",
        "lost or silently overwritten",
        "crisis contact is missing",
        "without consent",
        "recorded twice",
        "sync conflict is lost",
    ):
        assert hazard.lower() in text.lower(), hazard


def test_every_test_named_in_the_log_is_defined():
    ids = named_tests()
    assert len(ids) >= 30
    for node in ids:
        path, name = node.split("::", 1)
        source = REPO / path
        assert source.is_file(), f"{node}: no such file"
        defined = {
            n.name
            for n in ast.walk(ast.parse(source.read_text(encoding="utf-8")))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
        }
        assert name in defined, f"{node}: no such test"


@pytest.mark.slow
def test_every_test_named_in_the_log_is_collected():
    ids = named_tests()
    done = _pytest("--collect-only", "-q", "-m", "", *ids)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    collected = {line.split("[", 1)[0] for line in done.stdout.splitlines() if "::" in line}
    missing = [node for node in ids if node not in collected]
    assert not missing, missing


@pytest.mark.slow
def test_the_app_controls_named_in_the_log_pass():
    """Runs every named app test that needs no browser (about a minute) and requires them all to
    pass. The browser tests, and the store and sync tests (which start sekmet-fhir, PostgreSQL and
    kill workers: minutes), are collected above and run in the suite's own passes over their folders."""
    ids = [node for node in named_tests() if node.startswith("tests/app/")]
    done = _pytest("-q", "-x", "-m", "not browser", *ids)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-500:]
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert re.search(r"\d+ passed", summary) and "failed" not in summary and "error" not in summary, summary
