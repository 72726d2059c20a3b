"""Registered clients and sandbox users, loaded from a JSON file or built in code.

File format (JSON; ``thrive sandbox serve --clients FILE``)::

    {
      "clients": [
        {
          "client_id": "thrive-app",                  # required, unique
          "name": "THRIVE",                           # shown on the consent page
          "auth": "private_key_jwt",                  # private_key_jwt | client_secret_basic | none (public)
          "grant_types": ["authorization_code", "refresh_token"],   # or ["client_credentials"]
          "redirect_uris": ["http://127.0.0.1:8101/callback"],      # exact strings
          "launch_url": "http://127.0.0.1:8101/launch",             # optional, used by the EHR page
          "scopes": "launch launch/patient openid fhirUser online_access patient/*.cruds",
          "jwks_uri": "http://127.0.0.1:8101/jwks",  # private_key_jwt: a URL ...
          "jwks": {"keys": [...]},                    # ... or an inline JWK Set (public keys only)
          "client_secret": "...",                     # client_secret_basic only
          "auto_approve": false,                      # true: skip the consent page
          "organization": "Organization/abc",         # acting organisation -> Grant.organization
          "fhir_base": "http://127.0.0.1:8103/fhir",  # client_credentials: the store the token is for
          "access_token_lifetime": 3600,              # seconds
          "rotate_refresh_tokens": true,              # false: the same refresh token stays valid
          "quirks": {"no_patient": true}              # mock switches for this client (quirks.py)
        }
      ],
      "quirks": {"token_lifetime": 570, "well_known_404": true},   # mock switches for the whole sandbox
      "users": [
        {"id": "clinician1", "name": "Dr Ada Sandbox", "fhirUser": "Practitioner/abc",
         "organization": "Organization/abc"}
      ]
    }

``quirks`` are the mock switches of ``quirks.py`` (README "Mock switches"); a client's switches
override the sandbox-wide ones. ``scopes`` may be a string or a list. A client may be granted any scope covered by its set
(``scope_policy.covered``). Without a ``users`` list the built-in sandbox users below are used.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from thrive_fhir.canonical import ODS_ORG, SDS_USER, id_system
from thrive_fhir.ids import deterministic_id

from .quirks import INSTANCE_ONLY, QuirkError, Quirks

AUTH_METHODS = ("private_key_jwt", "client_secret_basic", "none")
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")


class RegistryError(ValueError):
    """The client registry file is malformed; the message names the entry and the field."""


@dataclass
class Client:
    client_id: str
    auth: str = "private_key_jwt"
    name: str = ""
    grant_types: tuple[str, ...] = ("authorization_code", "refresh_token")
    redirect_uris: tuple[str, ...] = ()
    launch_url: str | None = None
    scopes: frozenset[str] = frozenset()
    jwks_uri: str | None = None
    jwks: dict[str, Any] | None = None
    client_secret: str | None = None
    auto_approve: bool = False
    organization: str | None = None
    fhir_base: str | None = None
    access_token_lifetime: int = 3600
    rotate_refresh_tokens: bool = True
    quirks: Quirks = field(default_factory=Quirks)

    @property
    def display_name(self) -> str:
        return self.name or self.client_id

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Client:
        where = f"client {d.get('client_id', '?')!r}"
        if not isinstance(d.get("client_id"), str) or not d["client_id"]:
            raise RegistryError(f"{where}: client_id must be a non-empty string")
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise RegistryError(f"{where}: unknown field(s) {sorted(unknown)}")
        values = dict(d)
        scopes = values.get("scopes", ())
        values["scopes"] = frozenset(scopes.split() if isinstance(scopes, str) else scopes)
        for key in ("grant_types", "redirect_uris"):
            if key in values:
                values[key] = tuple(values[key])
        try:
            values["quirks"] = Quirks.from_dict(values.get("quirks"), where=f"{where}: quirks", instance=False)
        except QuirkError as exc:
            raise RegistryError(str(exc)) from None
        client = cls(**values)
        client.check()
        return client

    def check(self) -> None:
        where = f"client {self.client_id!r}"
        if self.auth not in AUTH_METHODS:
            raise RegistryError(f"{where}: auth must be one of {AUTH_METHODS}")
        bad = set(self.grant_types) - set(GRANT_TYPES)
        if bad:
            raise RegistryError(f"{where}: unknown grant type(s) {sorted(bad)}")
        if self.auth == "private_key_jwt" and not (self.jwks_uri or self.jwks):
            raise RegistryError(f"{where}: private_key_jwt needs jwks_uri or jwks")
        if self.auth == "client_secret_basic" and not self.client_secret:
            raise RegistryError(f"{where}: client_secret_basic needs client_secret")
        if "client_credentials" in self.grant_types and self.auth != "private_key_jwt":
            raise RegistryError(f"{where}: client_credentials (Backend Services) needs private_key_jwt")
        if "authorization_code" in self.grant_types and not self.redirect_uris:
            raise RegistryError(f"{where}: authorization_code needs redirect_uris")
        misplaced = sorted(set(self.quirks.to_dict()) & INSTANCE_ONLY)
        if misplaced:
            raise RegistryError(f"{where}: quirks {misplaced} can only be set for the whole sandbox")
        if self.jwks is not None:
            keys = self.jwks.get("keys") if isinstance(self.jwks, dict) else None
            if not isinstance(keys, list) or not keys or not all(isinstance(k, dict) and k.get("kid") for k in keys):
                raise RegistryError(f"{where}: jwks must be a JWK Set with at least one key, each with a kid")
            if any("d" in k for k in keys):
                raise RegistryError(f"{where}: jwks must hold public keys only")
        for url in (*self.redirect_uris, *(u for u in (self.launch_url, self.jwks_uri) if u)):
            if not url_acceptable(url):
                raise RegistryError(f"{where}: {url!r} must be an https URL (http only on 127.0.0.1/localhost)")


def url_acceptable(url: str) -> bool:
    """Absolute https URL without fragment or userinfo; http is tolerated on loopback only, because
    the demo runs everything on 127.0.0.1 without TLS (Inferno rejects http registrations)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        _ = parts.port
    except ValueError:
        return False
    if parts.fragment or parts.username or parts.password or not host:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and host in ("127.0.0.1", "localhost", "::1"))


@dataclass
class SandboxUser:
    id: str
    name: str
    fhirUser: str
    organization: str | None = None
    role: str = "Clinician"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SandboxUser:
        try:
            return cls(**d)
        except TypeError as exc:
            raise RegistryError(f"user {d.get('id', '?')!r}: {exc}") from None


def practitioner_id(user_id: str) -> str:
    """Deterministic Practitioner id for a sandbox user (so the demo can seed the resource)."""
    return deterministic_id(SDS_USER, f"sandbox-{user_id}")


#: The fictional trust of docs/design/fhir-model.md (the synthetic population's deploying organisation) and
#: one fictional school, as Organization references: ``Grant.organization`` is a reference.
TRUST_ODS = "RXX"
TRUST_REF = f"Organization/{deterministic_id(ODS_ORG, TRUST_ODS)}"
SCHOOL_REF = f"Organization/{deterministic_id(id_system('organization'), 'sandbox-high-school')}"
SANDBOX_ORGANIZATIONS = {
    TRUST_REF: ("Example Children and Young People's NHS Foundation Trust", TRUST_ODS),
    SCHOOL_REF: ("Sandbox High School", None),
}


def default_users() -> list[SandboxUser]:
    """Obviously fictional staff, one per kind of user the app serves."""
    spec = [
        ("clinician", "Dr Ada Sandbox (CAMHS clinician)", TRUST_REF, "Clinician"),
        ("mhst", "Sam Sandbox (Mental Health Support Team)", TRUST_REF, "Education mental health practitioner"),
        ("agency", "Jo Sandbox (school wellbeing lead)", SCHOOL_REF, "Agency staff"),
    ]
    return [SandboxUser(uid, name, f"Practitioner/{practitioner_id(uid)}", org, role) for uid, name, org, role in spec]


@dataclass
class Registry:
    clients: dict[str, Client] = field(default_factory=dict)
    users: dict[str, SandboxUser] = field(default_factory=dict)
    #: Mock switches for the whole sandbox (``quirks.py``); read on every request.
    quirks: Quirks = field(default_factory=Quirks)

    def __post_init__(self) -> None:
        if not self.users:
            self.users = {u.id: u for u in default_users()}

    def add(self, client: Client) -> Client:
        client.check()
        self.clients[client.client_id] = client
        return client

    def client(self, client_id: str | None) -> Client | None:
        return self.clients.get(client_id or "")

    def user(self, user_id: str | None) -> SandboxUser | None:
        return self.users.get(user_id or "")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Registry:
        if not isinstance(data, dict):
            raise RegistryError("registry must be a JSON object with 'clients' and optional 'users'")
        clients = [Client.from_dict(c) for c in data.get("clients", [])]
        ids = [c.client_id for c in clients]
        dupes = {i for i in ids if ids.count(i) > 1}
        if dupes:
            raise RegistryError(f"duplicate client_id(s) {sorted(dupes)}")
        users = [SandboxUser.from_dict(u) for u in data.get("users", [])]
        unknown = sorted(set(data) - {"clients", "users", "quirks"})
        if unknown:
            raise RegistryError(f"registry: unknown top-level field(s) {unknown}")
        try:
            quirks = Quirks.from_dict(data.get("quirks"), where="quirks")
        except QuirkError as exc:
            raise RegistryError(str(exc)) from None
        return cls({c.client_id: c for c in clients}, {u.id: u for u in users}, quirks)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Registry:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RegistryError(f"client registry {path} does not exist") from None
        except json.JSONDecodeError as exc:
            raise RegistryError(f"client registry {path} is not valid JSON: {exc}") from None
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        def client_dict(c: Client) -> dict[str, Any]:
            d = {k: getattr(c, k) for k in c.__dataclass_fields__}
            d["scopes"] = " ".join(sorted(c.scopes))
            d["grant_types"] = list(c.grant_types)
            d["redirect_uris"] = list(c.redirect_uris)
            d["quirks"] = c.quirks.to_dict() or None
            return {k: v for k, v in d.items() if v is not None}

        out: dict[str, Any] = {
            "clients": [client_dict(c) for c in self.clients.values()],
            "users": [dict(vars(u)) for u in self.users.values()],
        }
        if self.quirks:
            out["quirks"] = self.quirks.to_dict()
        return out
