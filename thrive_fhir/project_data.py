"""Where the project's generated FHIR data is read from, in a checkout and in an installed wheel.

The data: the profiles' StructureDefinitions (``profiles/generated/``), our CodeSystems, ValueSets
and ConceptMaps (``terminology/``) and their precomputed expansions (``terminology/expansions/``).
The source of truth is the repository's top-level folders, written by ``scripts/build_profiles.py``
from the FSH. A wheel carries a copy with the same layout under ``thrive_fhir/_data/``: ``setup.py``
copies it in at build time (nobody edits it, and it is not in git), so ``thrive validate`` from a
wheel checks the THRIVE profiles, not base R4 only.

Lookup order (the first that has the data wins):

1. ``$THRIVE_PROJECT_ROOT`` (a folder with ``profiles/generated`` and ``terminology``);
2. the checkout this package sits in (an editable install: edits to the profiles apply at once);
3. the copy packaged in the wheel.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_ROOT = "THRIVE_PROJECT_ROOT"
PACKAGE_DIR = Path(__file__).resolve().parent
CHECKOUT_ROOT = PACKAGE_DIR.parent
PACKAGED_ROOT = PACKAGE_DIR / "_data"

#: What a wheel must carry: folder (relative to a data root) -> file pattern. setup.py copies
#: exactly these; the wheel test compares them with the checkout byte for byte.
SHIPPED = {
    "profiles/generated": "StructureDefinition-*.json",
    "terminology": "*.json",
    "terminology/expansions": "ValueSet-*.json",
}


def _has_data(root: Path) -> bool:
    return (root / "terminology").is_dir() and any((root / "terminology").glob("CodeSystem-*.json"))


def data_root() -> Path:
    """The folder holding ``profiles/generated`` and ``terminology`` (see the module docstring).

    Falls back to the checkout location even when it is empty, so error messages name a place.
    """
    override = os.environ.get(ENV_ROOT)
    if override:
        return Path(override)
    for root in (CHECKOUT_ROOT, PACKAGED_ROOT):
        if _has_data(root):
            return root
    return CHECKOUT_ROOT


def profiles_dir() -> Path:
    """Generated StructureDefinitions of our profiles and extensions."""
    return data_root() / "profiles" / "generated"


def terminology_dir() -> Path:
    """Our CodeSystems, ValueSets and ConceptMaps (``expansions/`` below it)."""
    return data_root() / "terminology"
