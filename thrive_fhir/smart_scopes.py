"""SMART on FHIR resource scopes (v2 and v1): parsing, and the permission check every part shares.

One home for scope semantics so the sandbox auth server (what it may grant), the embedded FHIR store
(what it enforces) and the app (what it asks for) cannot drift apart (docs/design/smart-launch.md section 2).

v2 syntax: ``<patient|user|system>/<Type|*>.<c?r?u?d?s?>[?param=value&...]`` with the letters in that
order. ``r`` covers read, vread and instance history; ``s`` covers search and type/system history;
``u`` covers update, patch and update-as-create. Write does not imply read.
v1 syntax is mapped: ``.read`` = ``.rs``, ``.write`` = ``.cud``, ``.*`` = ``.cruds`` (SC-03).

Patient-context rule used by :func:`permits`: under a ``patient/`` scope, a resource that belongs to
some patient's compartment must belong to the granted patient; a resource in no patient compartment
(Organization, Practitioner, ...) is allowed when its type and interaction are granted, as EHRs do
for the supporting resources a plan references.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

CONTEXTS = ("patient", "user", "system")
LETTERS = "cruds"
V1_ALIASES = {"read": "rs", "write": "cud", "*": "cruds"}

#: Interaction names (FHIR ``TypeRestfulInteraction``/``SystemRestfulInteraction`` plus a few
#: spellings the store uses) -> the v2 permission letter that allows them.
INTERACTION_LETTER = {
    "create": "c",
    "read": "r",
    "vread": "r",
    "history-instance": "r",
    "update": "u",
    "patch": "u",
    "delete": "d",
    "search": "s",
    "search-type": "s",
    "search-system": "s",
    "history-type": "s",
    "history-system": "s",
    "export": "r",
}

_LOOKS_LIKE_RESOURCE = re.compile(r"^\w+/([A-Z][A-Za-z]*|\*)\.")
_RESOURCE_SCOPE = re.compile(r"^(patient|user|system)/([A-Za-z]+|\*)\.([A-Za-z*]+)(\?.*)?$")


class ScopeError(ValueError):
    """A string that looks like a resource scope but breaks the grammar (e.g. ``.dus``)."""


@dataclass(frozen=True)
class ResourceScope:
    """One parsed resource scope. ``permissions`` is a subset of ``cruds``."""

    context: str
    resource_type: str
    permissions: frozenset[str]
    query: tuple[tuple[str, str], ...] = ()
    version: int = 2
    raw: str = ""

    def covers_type(self, resource_type: str) -> bool:
        return self.resource_type == "*" or self.resource_type == resource_type

    def to_v2(self) -> str:
        letters = "".join(ch for ch in LETTERS if ch in self.permissions)
        text = f"{self.context}/{self.resource_type}.{letters}"
        if self.query:
            text += "?" + "&".join(f"{k}={v}" for k, v in self.query)
        return text


@dataclass(frozen=True)
class Grant:
    """What a verified access token allows: produced by a token verifier, consumed by the store.

    ``patient`` is the launch patient id (``patient/`` scopes are meaningless without it), ``user``
    the ``fhirUser`` reference, ``organization`` the acting organisation reference, ``expires`` a
    Unix timestamp (seconds) or None.
    """

    client_id: str
    scopes: tuple[ResourceScope, ...] = ()
    patient: str | None = None
    user: str | None = None
    organization: str | None = None
    expires: float | None = None
    other_scopes: tuple[str, ...] = field(default=())

    @classmethod
    def from_scope_string(cls, client_id: str, scope: str, **kwargs) -> Grant:
        """Convenience for verifiers: keep resource scopes parsed and the rest (openid, ...) as text."""
        scopes = tuple(parse_scopes(scope, strict=False))
        resource_raw = {s.raw for s in scopes}
        others = tuple(t for t in scope.split() if t not in resource_raw)
        return cls(client_id=client_id, scopes=scopes, other_scopes=others, **kwargs)

    def expired(self, now: float | None = None) -> bool:
        return self.expires is not None and (now if now is not None else time.time()) >= self.expires


def parse_scope(text: str, *, strict: bool = True) -> ResourceScope | None:
    """Parse one scope token. Returns None for non-resource scopes (``openid``, ``launch/patient``...).

    Raises :class:`ScopeError` for a malformed resource scope when ``strict``; otherwise returns None
    for it (SC-01: out-of-order letters "may be ignored or rejected" — a grant ignores, a request
    builder rejects).
    """
    text = text.strip()
    if "/" not in text or text.startswith("launch"):
        return None
    m = _RESOURCE_SCOPE.match(text)
    if not m:
        if text.split("/", 1)[0] in CONTEXTS or _LOOKS_LIKE_RESOURCE.match(text):
            return _bad(text, "not <patient|user|system>/<Type>.<permissions>", strict)
        return None
    context, rtype, perms, query = m.groups()
    if perms in V1_ALIASES:
        letters, version = V1_ALIASES[perms], 1
        if query:
            return _bad(text, "v1 scopes take no query", strict)
    else:
        if not perms or any(ch not in LETTERS for ch in perms):
            return _bad(text, "permissions must be letters from 'cruds'", strict)
        positions = [LETTERS.index(ch) for ch in perms]
        if positions != sorted(set(positions)):
            return _bad(text, "permission letters must be in the order c, r, u, d, s without repeats", strict)
        letters, version = perms, 2
    if rtype != "*" and not rtype[0].isupper():
        return _bad(text, "resource type must be a FHIR type name or '*'", strict)
    q = tuple(parse_qsl(query[1:], keep_blank_values=True)) if query else ()
    return ResourceScope(context, rtype, frozenset(letters), q, version, text)


def _bad(text: str, why: str, strict: bool) -> ResourceScope | None:
    """Reject a malformed resource scope: raise when ``strict``, else ignore it (None)."""
    if strict:
        raise ScopeError(f"invalid scope {text!r}: {why}")
    return None


def parse_scopes(text: str, *, strict: bool = True) -> list[ResourceScope]:
    """All resource scopes in a space-separated scope string (non-resource scopes are skipped)."""
    out = []
    for token in (text or "").split():
        parsed = parse_scope(token, strict=strict)
        if parsed is not None:
            out.append(parsed)
    return out


def letter_for(interaction: str) -> str:
    """The permission letter an interaction needs; accepts a letter itself too."""
    if interaction in LETTERS and len(interaction) == 1:
        return interaction
    try:
        return INTERACTION_LETTER[interaction]
    except KeyError:
        raise ValueError(f"unknown interaction {interaction!r}") from None


def permits(
    grant: Grant,
    resource_type: str,
    interaction: str,
    resource_patient: str | None,
    *,
    resource: dict | None = None,
) -> bool:
    """May ``grant`` perform ``interaction`` on a ``resource_type`` in ``resource_patient``'s compartment?

    ``resource_patient`` is the id of the patient whose compartment the resource is in (None when it
    is in none). For searches pass the patient the search is restricted to. A scope with a query
    (granular SMART v2 scope) only counts when ``resource`` is given and matches it.
    """
    letter = letter_for(interaction)
    if grant.expired():
        return False
    for scope in grant.scopes:
        if letter not in scope.permissions or not scope.covers_type(resource_type):
            continue
        if scope.context == "patient":
            if grant.patient is None:
                continue
            if resource_patient is not None and resource_patient != grant.patient:
                continue
        if scope.query and not (resource is not None and _matches_query(resource, scope.query)):
            continue
        return True
    return False


def _matches_query(resource: dict, query: tuple[tuple[str, str], ...]) -> bool:
    """Granular scopes, token params only (``category=system|code``): every pair must match."""
    for name, wanted in query:
        system, _, code = wanted.rpartition("|") if "|" in wanted else ("", "", wanted)
        codings: list[object] = []
        values = resource.get(name)
        for concept in values if isinstance(values, list) else [values]:
            if isinstance(concept, dict):
                codings.extend(concept.get("coding") or [])
        if not any(
            c.get("code") == code and (not system or c.get("system") == system) for c in codings if isinstance(c, dict)
        ):
            return False
    return True
