"""The R4 resource types the store accepts, read once from the HL7 R4 core package."""

from __future__ import annotations

import functools
import json
import os

from .. import r4core

_ABSTRACT = {"Resource", "DomainResource"}


@functools.lru_cache(maxsize=1)
def resource_types() -> frozenset[str]:
    folder = r4core.ensure()
    with open(os.path.join(folder, ".index.json"), encoding="utf-8") as fh:
        index = json.load(fh)
    names = {
        f["id"]
        for f in index["files"]
        if f.get("resourceType") == "StructureDefinition"
        and f.get("kind") == "resource"
        and f["id"][:1].isupper()
        and f.get("url") == "http://hl7.org/fhir/StructureDefinition/" + f["id"]
    }
    # Bundle is posted to the base (transaction/batch), never stored as a resource of its own here.
    return frozenset(names - _ABSTRACT - {"Bundle"})
