"""Shared helpers for the validation tests (not a test module)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from thrive_fhir.validation import Validator, errors, rule_of

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "profiles" / "examples"
INVALID = ROOT / "tests" / "fixtures" / "invalid"


def validator() -> Validator:
    return Validator.default()


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def example(prefix: str, contains: str | None = None) -> dict:
    """A deep copy of the first example file whose name starts with ``prefix`` (and whose text
    contains ``contains``), so tests can mutate it freely."""
    for f in sorted(EXAMPLES.glob(prefix + "*.json")):
        text = f.read_text(encoding="utf-8")
        if contains is None or contains in text:
            return copy.deepcopy(json.loads(text))
    raise LookupError(f"no example {prefix}* containing {contains!r}")


def error_pairs(oo: dict) -> set[tuple[str, str]]:
    """(expression, rule) of every error/fatal issue."""
    return {(e[2], rule_of(e[3])) for e in errors(oo) if e[0] in ("error", "fatal")}


def grouping() -> dict:
    return example("Observation-", "thrive-grouping-observation")


def gbo_score() -> dict:
    return example("Observation-", "thrive-gbo-score")
