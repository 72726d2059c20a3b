"""Which scopes a sandbox client may be granted.

The authorization server needs one question answered: is a requested scope covered by the
client's registered set? (Real EHRs refuse anything else with ``invalid_scope``.) Parsing and
enforcement per FHIR interaction live in ``thrive_fhir.smart_scopes``; this module only compares
a request with a registration, so a client registered with ``patient/*.cruds`` may ask for
``patient/Observation.c`` or v1 ``patient/Observation.read``.
"""

from __future__ import annotations

from thrive_fhir.smart_scopes import ScopeError, parse_scope

#: Scopes that carry no resource access; they are matched literally.
NON_RESOURCE = frozenset(
    {"openid", "fhirUser", "profile", "launch", "launch/patient", "launch/encounter", "online_access", "offline_access"}
)
#: Context scopes are part of how the app was launched, not something the user can untick.
CONTEXT_SCOPES = frozenset({"launch", "launch/patient", "launch/encounter"})


def resource_scope(scope: str):
    """Parsed resource scope, or None for a non-resource or malformed one."""
    try:
        return parse_scope(scope, strict=True)
    except ScopeError:
        return None


def is_known_scope(scope: str) -> bool:
    return scope in NON_RESOURCE or resource_scope(scope) is not None


def covered(requested: str, registered: frozenset[str] | set[str]) -> bool:
    """True if ``requested`` is in, or narrower than a scope in, the registered set."""
    if requested in registered:
        return True
    want = resource_scope(requested)
    if want is None:
        return False
    for reg in registered:
        have = resource_scope(reg)
        if (
            have is not None
            and have.context == want.context
            and have.covers_type(want.resource_type)
            and want.permissions <= have.permissions
            and (not have.query or have.query == want.query)
        ):
            return True
    return False


def split(scope_string: str | None) -> list[str]:
    """Space-separated scope string -> list without duplicates, order kept."""
    return list(dict.fromkeys((scope_string or "").split()))


def contexts(scopes: list[str]) -> set[str]:
    """The resource contexts (patient/user/system) named in ``scopes``."""
    return {p.context for p in map(resource_scope, scopes) if p is not None}
