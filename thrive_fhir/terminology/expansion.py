"""ValueSet expansion for our own ValueSets, computed from our CodeSystems.

FHIRPath's ``memberOf`` is not implemented in fhirpathpy and no terminology server is available,
so the project expands its ValueSets itself. Only the compose features our ValueSets use are
supported (whole-CodeSystem includes and enumerated concepts, no filters, no excludes of
filters); anything else raises rather than silently producing a wrong expansion.
"""

from __future__ import annotations

import uuid
from typing import Any

from .loader import Terminology, TerminologyMissing


class UnsupportedCompose(ValueError):
    """A ValueSet uses a compose feature this small expander does not implement."""


def _include_rows(term: Terminology, include: dict[str, Any], vs_url: str) -> list[dict[str, str]]:
    if "filter" in include or "valueSet" in include:
        raise UnsupportedCompose(f"{vs_url}: compose filters and valueSet imports are not supported")
    system = include.get("system")
    if not system:
        raise UnsupportedCompose(f"{vs_url}: compose.include without a system")
    if "concept" in include:
        rows = []
        for c in include["concept"]:
            local = term.concept(system, c["code"]) if system in term.codesystems else None
            if system in term.codesystems and local is None:
                raise TerminologyMissing(f"{vs_url}: code {c['code']!r} is not in {system}")
            display = c.get("display") or (local or {}).get("display")
            rows.append({"system": system, "code": c["code"], **({"display": display} if display else {})})
        return rows
    # Whole CodeSystem: only possible for ours (we hold the complete content).
    cs = term.codesystem(system)
    return [
        {"system": system, "code": c["code"], **({"display": c["display"]} if "display" in c else {})}
        for c in cs.get("concept", [])
    ]


def expansion_rows(term: Terminology, vs_url: str) -> list[dict[str, str]]:
    """The codes of one ValueSet, in compose order, each ``{"system", "code", "display"?}``."""
    vs = term.valueset(vs_url)
    compose = vs.get("compose", {})
    rows: list[dict[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for include in compose.get("include", []):
        for row in _include_rows(term, include, vs_url):
            key = (row["system"], row["code"])
            if key not in seen:
                seen.add(key)
                rows.append(row)
    for exclude in compose.get("exclude", []):
        dropped = {(r["system"], r["code"]) for r in _include_rows(term, exclude, vs_url)}
        rows = [r for r in rows if (r["system"], r["code"]) not in dropped]
    return rows


def expanded_valueset(term: Terminology, vs_url: str) -> dict[str, Any]:
    """The ValueSet resource with an ``expansion`` added (what ``terminology/expansions/`` holds).

    The expansion is deterministic: its identifier is a UUIDv5 of ``url|version`` and its timestamp
    is the ValueSet's ``date`` (the release date), so rebuilding reproduces the file byte for byte.
    """
    vs = dict(term.valueset(vs_url))
    rows = expansion_rows(term, vs_url)
    version = vs.get("version", "")
    vs["expansion"] = {
        "identifier": "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"{vs_url}|{version}")),
        "timestamp": vs.get("date", "1970-01-01"),
        "total": len(rows),
        "contains": [
            {
                "system": r["system"],
                **(
                    {"version": term.codesystems[r["system"]]["version"]}
                    if r["system"] in term.codesystems and "version" in term.codesystems[r["system"]]
                    else {}
                ),
                "code": r["code"],
                **({"display": r["display"]} if "display" in r else {}),
            }
            for r in rows
        ],
    }
    return vs
