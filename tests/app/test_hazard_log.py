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
    # Not the outer run's PYTEST_ADDOPTS: an extra -q there changes the --collect-only listing read below.
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
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


def test_no_test_named_in_the_log_is_skipped_or_expected_to_fail():
    """The suite itself runs every named test (``make test`` runs every folder), so a named test that
    fails fails the run. What would let a control go unproven without failing is a named test that
    is skipped or marked as an expected failure, by a decorator, by its module's ``pytestmark`` or
    by a ``pytest.skip``/``pytest.xfail`` call; none may be. (This used to run the named app tests
    a second time in another pytest: minutes of every suite run spent repeating them.)"""
    for node in named_tests():
        path, name = node.split("::", 1)
        tree = ast.parse((REPO / path).read_text(encoding="utf-8"))
        (func,) = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == name]
        decorators = " ".join(ast.unparse(d) for d in func.decorator_list)
        assert not SKIPPING.search(decorators), f"{node}: {decorators}"
        assert not re.search(r"pytest\.(skip|xfail)\(", ast.unparse(func)), f"{node} can skip itself"
        for statement in tree.body:
            if isinstance(statement, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "pytestmark" for t in statement.targets
            ):
                assert not SKIPPING.search(ast.unparse(statement.value)), f"{node}: its module is skipped"


SKIPPING = re.compile(r"\b(skip|skipif|xfail)\b")
