"""THRIVE terminology: code lookups, ValueSet expansions and grouping-label translation.

A small, read-only API over the committed, SUSHI-generated JSON in ``terminology/``::

    from thrive_fhir import terminology
    terminology.display(canonical.CS_GROUPING, "getting-help")        # "Getting Help"
    terminology.groupings()                                           # [(code, display, definition), ...]
    (canonical.CS_GROUPING, "thriving") in terminology.expand(canonical.VS_GROUPING)
    terminology.translate_grouping("Coping")                          # "getting-advice"
    terminology.translate_grouping_coding("Getting Additional Help")  # {"system":..., "code":..., "display":...}

Everything is loaded once per process and cached. Lookups never contact a terminology server.
"""

from __future__ import annotations

from functools import cache, lru_cache

from thrive_fhir.canonical import CS_GROUPING

from . import loader
from .expansion import UnsupportedCompose, expanded_valueset, expansion_rows
from .groupings import Grouping, GroupingTranslator, UnmatchedGrouping, normalise_label
from .loader import Terminology, TerminologyMissing

__all__ = [
    "Grouping",
    "Terminology",
    "TerminologyMissing",
    "UnmatchedGrouping",
    "UnsupportedCompose",
    "definition",
    "display",
    "expand",
    "expanded_valueset",
    "groupings",
    "load",
    "normalise_label",
    "translate_grouping",
    "translate_grouping_coding",
]


def load() -> Terminology:
    """The committed terminology (CodeSystems, ValueSets, ConceptMaps), read once."""
    return loader.load()


def display(system: str, code: str) -> str | None:
    """Display of a code in one of our CodeSystems, or in one of our ValueSets that enumerates it
    (the SNOMED CT GBO codes); None when we do not know the code."""
    term = load()
    concept = term.concept(system, code)
    if concept is not None:
        return concept.get("display")
    return _enumerated_displays().get((system, code))


def definition(system: str, code: str) -> str | None:
    """Plain-language definition of a code in one of our CodeSystems; None if unknown."""
    concept = load().concept(system, code)
    return None if concept is None else concept.get("definition")


def groupings() -> list[Grouping]:
    """The five groupings as (code, display, definition), in the CodeSystem's order.

    The order is only the order of listing: groupings are not levels and must never be sorted or
    compared as if they were.
    """
    from .groupings import groupings as _groupings

    return _groupings(load())


@cache
def expand(valueset_url: str) -> frozenset[tuple[str, str]]:
    """Every (system, code) in one of our ValueSets. Raises TerminologyMissing for unknown URLs."""
    return frozenset((r["system"], r["code"]) for r in expansion_rows(load(), valueset_url))


def translate_grouping(label: str) -> str:
    """Canonical thrive-grouping code for a received label.

    Accepts canonical codes, displays and the known variants (Getting Advice, Coping, Getting
    Additional Help, "Getting Advice & Signposting", ...) in any case and punctuation. Raises
    :class:`UnmatchedGrouping` (a ValueError listing the accepted labels) for anything else,
    including ambiguous four-quadrant numbers. Never guesses.
    """
    return _translator().translate(label)


def translate_grouping_coding(label: str) -> dict[str, str]:
    """Like :func:`translate_grouping` but returns a FHIR Coding (system, code, display)."""
    code = translate_grouping(label)
    return {"system": CS_GROUPING, "code": code, "display": display(CS_GROUPING, code) or code}


@lru_cache(maxsize=1)
def _translator() -> GroupingTranslator:
    return GroupingTranslator(load())


@lru_cache(maxsize=1)
def _enumerated_displays() -> dict[tuple[str, str], str]:
    found: dict[tuple[str, str], str] = {}
    for vs in load().valuesets.values():
        for include in vs.get("compose", {}).get("include", []):
            for c in include.get("concept", []):
                if "display" in c:
                    found.setdefault((include["system"], c["code"]), c["display"])
    return found
