"""Element cardinalities and types of FHIR R4, read from the HL7 core package's snapshots.

The view compiler needs two facts per element to emit fast, correct SQL without looking at the
data: whether the element is an array in JSON (``max`` of the *base* definition is ``*``), and
its type (to keep navigating, and to find the JSON keys of a choice element ``value[x]``). It
also lets the compiler reject a path that does not exist ("bad path") before any data is read.

When the core package is not installed (see :mod:`thrive_fhir.r4core`) :func:`lookup` returns
``None`` and the compiler falls back to generic SQL that checks the JSON shape at run time; the
rows are the same, only slower, and bad paths then give empty columns instead of an error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Literal

from .. import r4core

#: FHIR primitive types (their JSON value is a string, number or boolean).
PRIMITIVES = frozenset(
    {
        "boolean",
        "integer",
        "string",
        "decimal",
        "uri",
        "url",
        "canonical",
        "base64Binary",
        "instant",
        "date",
        "dateTime",
        "time",
        "code",
        "oid",
        "id",
        "markdown",
        "unsignedInt",
        "positiveInt",
        "uuid",
        "integer64",
        "xhtml",
    }
)


@dataclass(frozen=True)
class Element:
    name: str  # FHIRPath name ("value" for value[x])
    array: bool  # JSON array form
    types: tuple[str, ...]  # type codes; more than one for a choice element
    type_path: str | None  # for BackboneElement children: the path naming their own structure

    @property
    def choice(self) -> bool:
        return len(self.types) > 1

    def json_key(self, type_code: str) -> str:
        return self.name + type_code[0].upper() + type_code[1:] if self.choice else self.name


def _type_code(t: dict) -> str:
    code = t.get("code", "")
    if code.startswith("http://hl7.org/fhirpath/System."):
        # The type of Element.id / Extension.url etc. in R4 snapshots (a FHIRPath system type).
        return {"String": "string"}.get(code.rsplit(".", 1)[1], "string")
    return code


@cache
def _structure(type_name: str) -> dict[str, dict[str, Element]] | None:
    """All element paths of a resource or datatype: {parent path: {child name: Element}}."""
    try:
        path = r4core.package_dir() / f"StructureDefinition-{type_name}.json"
        if not path.is_file():
            return None
        sd = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    out: dict[str, dict[str, Element]] = {}
    by_path = {e["path"]: e for e in sd.get("snapshot", {}).get("element", [])}
    for p, e in by_path.items():
        if "." not in p:
            continue
        parent, name = p.rsplit(".", 1)
        if name.endswith("[x]"):
            name = name[:-3]
        base_max = (e.get("base") or {}).get("max", e.get("max", "1"))
        ref = e.get("contentReference")
        if ref:
            types: tuple[str, ...] = ("BackboneElement",)
            type_path = ref.lstrip("#")
        else:
            types = tuple(_type_code(t) for t in e.get("type", []))
            type_path = (
                p
                if types and types[0] in ("BackboneElement", "Element") and any(k.startswith(p + ".") for k in by_path)
                else None
            )
        out.setdefault(parent, {})[name] = Element(name, base_max != "1" and base_max != "0", types, type_path)
    return out


def children(type_name: str) -> dict[str, Element] | None:
    """Child elements of a type, or of a backbone path such as ``Observation.component``.

    None when unknown (no core package, or a type we cannot describe): callers then go generic.
    """
    root = type_name.split(".", 1)[0]
    structure = _structure(root)
    if structure is None:
        return None
    return structure.get(type_name, {})


def lookup(type_name: str | None, name: str) -> Element | Literal[False] | None:
    """The element ``name`` of ``type_name``: an Element, False if the type is known and has no
    such element, None if the type is unknown (no check possible)."""
    if type_name is None or type_name in PRIMITIVES:
        return None
    kids = children(type_name)
    if kids is None:
        return None
    return kids.get(name, False)


def is_resource_type(name: str) -> bool | None:
    """Whether ``name`` is an R4 resource type (None when the core package is missing)."""
    try:
        path = r4core.package_dir() / f"StructureDefinition-{name}.json"
        if not r4core.package_dir().is_dir():
            return None
        if not path.is_file():
            return False
        sd = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return sd.get("kind") == "resource" and sd.get("derivation") == "specialization"


def next_type(elem: Element) -> str | None:
    """The structure to keep navigating in after ``elem`` (None: unknown)."""
    if elem.type_path:
        return elem.type_path
    if elem.choice or not elem.types:
        return None
    t = elem.types[0]
    if t == "Resource":
        return None
    return t
