"""SMART scopes: what the app asks for (SC-04) and what a granted scope string allows (SC-01, SC-03).

Kept apart from the HTTP parts of the launch so the app's permission checks can import it cheaply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Resource types the clinician app writes, each with create permission (SC-04).
WRITE_TYPES = ("Observation", "Goal", "CarePlan", "Consent", "Provenance")
READ_TYPES = ("Patient",)

_V2 = re.compile(r"^(patient|user|system)/([A-Za-z]+|\*)\.(c?r?u?d?s?)(\?.*)?$")
_V1 = re.compile(r"^(patient|user|system)/([A-Za-z]+|\*)\.(read|write|\*)$")
_V1_MAP = {"read": "rs", "write": "cud", "*": "cruds"}


class ScopeError(ValueError):
    """A scope we were about to request is malformed."""


def check_scope(scope: str) -> None:
    """Reject out-of-order or unknown permission letters in a v2 scope we build (SC-01)."""
    if "/" not in scope or scope.startswith("launch/"):
        return
    m = _V2.match(scope)
    if not m or not m.group(3):
        if not _V1.match(scope):
            raise ScopeError(f"malformed SMART scope: {scope!r}")


def requested_scopes(flow: str, version: str = "v2", *, online_access: bool = False) -> str:
    """The exact scope string for ``flow`` (``ehr`` or ``standalone``) in ``version`` (SC-04)."""
    if flow not in ("ehr", "standalone"):
        raise ScopeError(f"unknown flow {flow!r}")
    if version not in ("v1", "v2"):
        raise ScopeError(f"unknown scope version {version!r}")
    parts = ["launch" if flow == "ehr" else "launch/patient", "openid", "fhirUser"]
    if version == "v2":
        parts += [f"patient/{t}.r" for t in READ_TYPES]
        parts += [f"patient/{t}.c" for t in WRITE_TYPES]
    else:
        parts += [f"patient/{t}.read" for t in READ_TYPES]
        parts += [f"patient/{t}.write" for t in WRITE_TYPES]
    if online_access and flow == "ehr":
        parts.append("online_access")
    for p in parts:
        check_scope(p)
    return " ".join(parts)


@dataclass(frozen=True)
class GrantedScopes:
    """A parsed granted scope string; v1 and v2 syntax both understood (SC-03)."""

    raw: str
    permissions: dict[tuple[str, str], frozenset[str]]

    @classmethod
    def parse(cls, scope: str | None) -> "GrantedScopes":
        perms: dict[tuple[str, str], set[str]] = {}
        for item in (scope or "").split():
            m = _V2.match(item)
            letters = None
            if m and m.group(3):
                ctx, rtype, letters = m.group(1), m.group(2), m.group(3)
                if m.group(4):
                    continue  # a query-restricted grant does not give blanket permission
            else:
                m1 = _V1.match(item)
                if m1:
                    ctx, rtype, letters = m1.group(1), m1.group(2), _V1_MAP[m1.group(3)]
            if letters:
                perms.setdefault((ctx, rtype), set()).update(letters)
        return cls(scope or "", {k: frozenset(v) for k, v in perms.items()})

    def allows(self, resource_type: str, letter: str, contexts=("patient", "user")) -> bool:
        for ctx in contexts:
            for rtype in (resource_type, "*"):
                if letter in self.permissions.get((ctx, rtype), ()):
                    return True
        return False

    def missing_writes(self, types=WRITE_TYPES) -> list[str]:
        """Resource types the app needs to create but was not allowed to."""
        return [t for t in types if not self.allows(t, "c")]

    @property
    def can_write(self) -> bool:
        return not self.missing_writes()

    def has(self, token: str) -> bool:
        return token in self.raw.split()
