"""The five THRIVE groupings and translation of received labels to the canonical code.

Translation is exact after normalisation, driven by the ``thrive-grouping-variants`` ConceptMap and
the ``thrive-grouping`` CodeSystem (codes, displays, synonyms). It never guesses: a grouping is a
clinical decision agreed with the young person, and a wrong guess (say, Getting Help for Getting
Risk Support) would hide risk from every agency. Anything not matched raises
:class:`UnmatchedGrouping`, which callers turn into an OperationOutcome or a one-line CLI error.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from thrive_fhir.canonical import CM_GROUPING_VARIANTS, CS_GROUPING, CS_GROUPING_VARIANTS

from .loader import Terminology

_NOT_ALNUM = re.compile(r"[^a-z0-9]+")


class Grouping(NamedTuple):
    code: str
    display: str
    definition: str


class UnmatchedGrouping(ValueError):
    """A grouping label that is not a THRIVE grouping (or is ambiguous). Never guessed."""

    def __init__(self, label: object, accepted: list[str], reason: str | None = None) -> None:
        self.label = label
        self.accepted = accepted
        self.reason = reason
        shown = repr(label) if not isinstance(label, str) or len(label) <= 60 else repr(label[:57] + "...")
        why = f": {reason}" if reason else ""
        super().__init__(
            f"{shown} is not a THRIVE grouping{why}. Accepted (any case or punctuation, or the codes): "
            + ", ".join(accepted)
        )


def normalise_label(label: str) -> str:
    """Lower case; each run of characters other than a-z and 0-9 becomes one '-'; trim '-'.

    The rule of the thrive-grouping-variants CodeSystem ("Getting Advice & Signposting" ->
    ``getting-advice-signposting``). Digits are kept so that quadrant numbers stay distinct.
    """
    return _NOT_ALNUM.sub("-", label.strip().lower()).strip("-")


def groupings(term: Terminology) -> list[Grouping]:
    """The five groupings in the CodeSystem's order (an order of listing, never of severity)."""
    return [Grouping(c["code"], c["display"], c["definition"]) for c in term.codesystem(CS_GROUPING).get("concept", [])]


class GroupingTranslator:
    """Normalised label -> canonical code, built once from the terminology."""

    def __init__(self, term: Terminology) -> None:
        self._term = term
        self._map: dict[str, str] = {}
        self._refused: dict[str, str] = {}
        cs = term.codesystem(CS_GROUPING)
        for c in cs.get("concept", []):
            names = [c["code"], c["display"], *(d["value"] for d in c.get("designation", []))]
            for name in names:
                self._map[normalise_label(name)] = c["code"]
        cm = term.conceptmap(CM_GROUPING_VARIANTS)
        for group in cm.get("group", []):
            if group.get("source") != CS_GROUPING_VARIANTS or group.get("target") != CS_GROUPING:
                continue
            for element in group.get("element", []):
                targets = [t for t in element.get("target", []) if t.get("equivalence") != "unmatched"]
                if len(targets) == 1 and "code" in targets[0]:
                    self._map[element["code"]] = targets[0]["code"]
                else:
                    # Listed on purpose but not translatable (the quadrant numbers): say why. The
                    # ConceptMap's comment holds the full reasoning; the message stays one line.
                    self._refused[element["code"]] = (
                        "an ambiguous label that is never translated (sites number the groupings "
                        "differently); ask the sender which grouping is meant"
                    )
        self.accepted = self._accepted_labels(cs)

    @staticmethod
    def _accepted_labels(cs: dict) -> list[str]:
        """Displays and synonyms, one per normalised form (the codes normalise to one of them)."""
        seen: dict[str, str] = {}
        for c in cs.get("concept", []):
            for name in (c["display"], *(d["value"] for d in c.get("designation", [])), c["code"]):
                seen.setdefault(normalise_label(name), name)
        return list(seen.values())

    def translate(self, label: object) -> str:
        if not isinstance(label, str) or not label.strip():
            raise UnmatchedGrouping(label, self.accepted, "empty or not text")
        key = normalise_label(label)
        if key in self._map:
            return self._map[key]
        if key in self._refused:
            raise UnmatchedGrouping(label, self.accepted, self._refused[key])
        raise UnmatchedGrouping(label, self.accepted)
