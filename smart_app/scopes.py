"""SMART scopes the clinician app asks for (SC-04), and what a granted scope string lets it write.

This is the app's scope *policy*, so it lives with the app (only ``smart_app`` uses it). The
scope grammar (v2 letters, the v1 aliases, what is malformed) has one home,
:mod:`thrive_fhir.smart_scopes`, shared with the store and the sandbox; this module only builds the
app's request and reads a grant through that parser, so the app cannot drift from what the store
enforces. Kept apart from the HTTP parts of the launch so the app's permission checks can import
it cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass

from thrive_fhir.smart_scopes import ScopeError, parse_scope, parse_scopes

__all__ = [
    "AGENCY_READ_TYPES",
    "READ_TYPES",
    "WRITE_TYPES",
    "GrantedScopes",
    "ScopeError",
    "patient_picker_scopes",
    "requested_scopes",
]

#: Resource types the clinician app writes, each with create permission (SC-04).
WRITE_TYPES = ("Observation", "Goal", "CarePlan", "Consent", "Provenance")
READ_TYPES = ("Patient",)
#: What an agency worker's standalone sign-in asks for: read the shared plan (the shared store decides
#: which young people, from their Consents), update the Tasks their organisation owns, record a
#: Provenance naming the worker and organisation for each update, and confirm (a Provenance) and
#: read back the confirmations of the safety plan items that name the organisation. Nothing else.
AGENCY_READ_TYPES = (
    "Patient",
    "Consent",
    "Observation",
    "Goal",
    "CarePlan",
    "ServiceRequest",
    "CareTeam",
    "HealthcareService",
)


def requested_scopes(flow: str, version: str = "v2", *, online_access: bool = False) -> str:
    """The exact scope string for ``flow`` (``ehr`` or ``standalone``) in ``version`` (SC-04);
    ``online_access`` adds that scope (the registry's ``online_access``, on by default).

    Every part goes through the strict parser first, so a malformed scope (SC-01: letters out of
    order) is our bug, raised here, never sent to an EHR.
    """
    if flow not in ("ehr", "standalone"):
        raise ScopeError(f"unknown flow {flow!r}")
    if version not in ("v1", "v2"):
        raise ScopeError(f"unknown scope version {version!r}")
    parts = ["launch" if flow == "ehr" else "launch/patient", "openid", "fhirUser"]
    if flow == "standalone":  # the agency worker: read the shared plan, act on its Tasks (AGENCY_*)
        if version == "v2":
            parts += [f"patient/{t}.rs" for t in AGENCY_READ_TYPES]
            parts += ["patient/Task.rus", "patient/Provenance.crs"]
        else:
            parts += [f"patient/{t}.read" for t in AGENCY_READ_TYPES]
            parts += ["patient/Task.read", "patient/Task.write", "patient/Provenance.read", "patient/Provenance.write"]
    elif version == "v2":
        parts += [f"patient/{t}.r" for t in READ_TYPES]
        parts += [f"patient/{t}.c" for t in WRITE_TYPES]
    else:
        parts += [f"patient/{t}.read" for t in READ_TYPES]
        parts += [f"patient/{t}.write" for t in WRITE_TYPES]
    if online_access:
        # A refresh token for as long as the user works in the app, for both launch kinds: access
        # tokens last minutes (Oracle Health: 570 s) and a session is longer. online_access, never
        # offline_access: the app does nothing for a user who has left (SC-02, SA-05).
        parts.append("online_access")
    for p in parts:
        parse_scope(p)
    return " ".join(parts)


def patient_picker_scopes(scope: str, version: str = "v2") -> str:
    """``scope`` for a standalone sign-in that comes back without a patient (SA-04: the worker picks
    the young person in the app): the same permissions at ``user/`` level, since there is no patient
    context to scope them to, plus ``user/Patient.rs`` to search for the young person. Which young
    people the worker may see is then the shared store's decision (their sharing Consents)."""
    out = []
    for token in scope.split():
        out.append("user/" + token[len("patient/") :] if token.startswith("patient/") else token)
    extra = "user/Patient.rs" if version == "v2" else "user/Patient.read"
    if extra not in out:
        out.append(extra)
    for p in out:
        parse_scope(p)
    return " ".join(out)


@dataclass(frozen=True)
class GrantedScopes:
    """A granted scope string as blanket permissions per (context, resource type); v1 and v2 both
    understood (SC-03). Malformed scopes are ignored, as a grant should (SC-01)."""

    raw: str
    permissions: dict[tuple[str, str], frozenset[str]]

    @classmethod
    def parse(cls, scope: str | None) -> GrantedScopes:
        perms: dict[tuple[str, str], set[str]] = {}
        for s in parse_scopes(scope or "", strict=False):
            if s.query:
                continue  # a query-restricted grant does not give blanket permission
            perms.setdefault((s.context, s.resource_type), set()).update(s.permissions)
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
