"""Mock switches: make the sandbox behave like a particular real EHR, or fail like one.

A conformant sandbox proves little about how the app copes with the EHRs it will meet, so each
switch here reproduces one real-world quirk (docs/design/smart-launch.md section 6) or one of LAUNCHER's
simulated errors (smart-launcher-v2 ``auth_error``; section 7 of docs/design/smart-launch.md). Switches are set
per sandbox instance (top-level ``"quirks"`` in the registry JSON, ``Registry.quirks``) or per client
(``"quirks"`` in a client entry, ``Client.quirks``); a value set on the client wins. Discovery and
key switches are per instance only: discovery and JWKS requests do not say which client is asking.

Every field defaults to ``None`` = "not set here", so that an instance value can be overridden per
client in either direction. ``Quirks.effective(instance, client)`` merges the two.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, fields, replace
from typing import Any
from urllib.parse import urlsplit

#: LAUNCHER's simulated-error names and where each one strikes.
AUTHORIZE_ERRORS = ("auth_invalid_client_id", "auth_invalid_redirect_uri", "auth_invalid_scope")
TOKEN_ERRORS = (
    "auth_invalid_client_secret",
    "token_invalid_token",
    "token_expired_refresh_token",
    "token_invalid_scope",
    "token_invalid_jti",
)
REQUEST_ERRORS = ("request_invalid_token", "request_expired_token")
SIMULATED_ERRORS = AUTHORIZE_ERRORS + TOKEN_ERRORS + REQUEST_ERRORS

#: Switches only a whole sandbox can have (the request does not identify a client).
INSTANCE_ONLY = frozenset({"well_known_404", "relative_discovery_endpoints", "jwks_extra_key", "jwks_rotate_every"})


class QuirkError(ValueError):
    """A switch name or value is not understood; the message names it."""


@dataclass(frozen=True)
class Quirks:
    """One set of switches. ``None`` everywhere means "behave like a conformant server"."""

    #: Token responses carry no ``patient`` (and standalone launches skip the patient picker), as
    #: Epic does for provider-facing standalone launches (SA-04).
    no_patient: bool | None = None
    #: id_tokens are signed without a ``kid`` header, as LAUNCHER does (EL-17 step 3).
    id_token_without_kid: bool | None = None
    #: Access token lifetime in seconds (Oracle Health: 570); overrides the client registration.
    token_lifetime: int | None = None
    #: False: refresh responses carry no new refresh token and the old one stays valid (Oracle,
    #: Epic); True: every refresh returns a new one and reuse of the old one revokes the grant.
    rotate_refresh_tokens: bool | None = None
    #: ``<fhir base>/.well-known/smart-configuration`` answers 404; clients must fall back to the
    #: CapabilityStatement's oauth-uris extension at ``/metadata`` (EL-04).
    well_known_404: bool | None = None
    #: Discovery gives endpoints as absolute-path references (``/auth/token``) (EL-03).
    relative_discovery_endpoints: bool | None = None
    #: The JWKS also publishes a second key that signs nothing (a key announced before rotation).
    jwks_extra_key: bool | None = None
    #: Rotate the signing key every N seconds; the previous key stays published.
    jwks_rotate_every: int | None = None
    #: One of :data:`SIMULATED_ERRORS` (LAUNCHER's names).
    simulate_error: str | None = None

    # -- construction --------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "quirks", instance: bool = True) -> Quirks:
        """Parse a JSON object of switches; unknown names and wrong types are refused."""
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise QuirkError(f"{where}: must be an object of switch names to values")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise QuirkError(f"{where}: unknown switch(es) {unknown}; known: {sorted(known)}")
        if not instance:
            misplaced = sorted(set(data) & INSTANCE_ONLY)
            if misplaced:
                raise QuirkError(f"{where}: {misplaced} can only be set for the whole sandbox (top-level quirks)")
        quirks = cls(**data)
        quirks.check(where)
        return quirks

    def check(self, where: str = "quirks") -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if f.name in ("token_lifetime", "jwks_rotate_every"):
                if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                    raise QuirkError(f"{where}.{f.name}: must be a whole number of seconds, at least 1")
            elif f.name == "simulate_error":
                if value not in SIMULATED_ERRORS:
                    raise QuirkError(f"{where}.simulate_error: must be one of {list(SIMULATED_ERRORS)}")
            elif not isinstance(value, bool):
                raise QuirkError(f"{where}.{f.name}: must be true or false")

    def to_dict(self) -> dict[str, Any]:
        """Only the switches that are set (so a registry round-trips without noise)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def __bool__(self) -> bool:
        return bool(self.to_dict())

    @staticmethod
    def effective(instance: Quirks, client: Quirks | None) -> Quirks:
        """The instance switches with the client's set values laid over them."""
        if not client:
            return instance
        return replace(instance, **client.to_dict())

    # -- questions the server asks ---------------------------------------------------------------

    def error(self, *names: str) -> str | None:
        """The simulated error if it is one of ``names``."""
        return self.simulate_error if self.simulate_error in names else None


def discovery_document(doc: dict[str, Any], quirks: Quirks) -> dict[str, Any]:
    """The SMART configuration as served under ``quirks`` (relative endpoints)."""
    if not quirks.relative_discovery_endpoints:
        return doc
    out = dict(doc)
    for key, value in doc.items():
        if key.endswith(("_endpoint", "_uri")) and isinstance(value, str) and "://" in value:
            parts = urlsplit(value)
            # An absolute-path reference: resolved against the FHIR base it becomes the same URL.
            out[key] = parts.path + (f"?{parts.query}" if parts.query else "")
    return out


@contextlib.contextmanager
def switched(target: Any, **switches: Any) -> Iterator[Quirks]:
    """Set switches on a ``Registry`` (whole sandbox) or a ``Client`` for the ``with`` block.

    Used by tests against a running sandbox: the servers read the switches on every request, so
    flipping them needs no restart. The previous switches come back afterwards.
    """
    from .registry import Client

    before = target.quirks
    new = replace(before, **switches)
    new.check()
    if isinstance(target, Client):
        misplaced = sorted(set(new.to_dict()) & INSTANCE_ONLY)
        if misplaced:
            raise QuirkError(f"{misplaced} can only be set for the whole sandbox")
    target.quirks = new
    try:
        yield new
    finally:
        target.quirks = before
