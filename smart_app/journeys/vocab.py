"""Code lists the journeys show, read from the project's CodeSystems (the one home for wording).

Lists keep the CodeSystem's order. For the groupings that order is only a listing order: they are
never numbered, ranked or shown as levels anywhere in the app.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from thrive_fhir import canonical, terminology


@dataclass(frozen=True)
class Code:
    code: str
    display: str
    definition: str | None = None


@cache
def codes(system: str) -> tuple[Code, ...]:
    cs = terminology.load().codesystem(system)
    return tuple(Code(c["code"], c.get("display", c["code"]), c.get("definition")) for c in cs.get("concept", []))


def groupings() -> tuple[Code, ...]:
    return tuple(Code(g.code, g.display, g.definition) for g in terminology.groupings())


def grouping_display(code: str | None) -> str:
    if not code:
        return "Not agreed yet"
    return terminology.display(canonical.CS_GROUPING, code) or code


def display(system: str, code: str | None) -> str:
    if not code:
        return ""
    return terminology.display(system, code) or code


def participants() -> tuple[Code, ...]:
    return codes(canonical.CS_SDM_PARTICIPANT)


def involvement() -> tuple[Code, ...]:
    return codes(canonical.CS_INVOLVEMENT)


def change_reasons() -> tuple[Code, ...]:
    return codes(canonical.CS_CHANGE_REASON)


def safety_plan_sections() -> tuple[Code, ...]:
    return codes(canonical.CS_SAFETY_PLAN_SECTION)


#: sdm-participant codes that stand for another agency (the person picks which one).
AGENCY_PARTICIPANTS = ("school", "social-care", "youth-justice", "voluntary-sector", "other-agency")

#: How the young person can be involved in the decision (not-applicable never fits the young person).
YP_INVOLVEMENT = ("agreed", "partly-agreed", "not-agreed", "not-involved")
