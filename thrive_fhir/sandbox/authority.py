"""The sandbox authorization server's rules, independent of HTTP. DEVELOPMENT AND TESTING ONLY.

Everything an EHR's authorization server decides lives here: which authorization requests are
acceptable, which codes, refresh tokens and client assertions are valid, what a token grants.
``auth.py`` turns these decisions into HTTP. State (launch handles, codes, refresh tokens, used
assertion ids) is kept in memory behind one lock, keyed by SHA-256 of each secret; with a
``state_mirror`` (``auth_state_mirror.py``) it is also written through to the database, so a restarted
sandbox keeps its sessions. Access tokens are signed JWTs, so a store in another process can verify
them from the JWKS either way.

Rejections follow what real EHRs and Inferno's SMART client suite expect (docs/design/smart-launch.md section 7),
each with its exact OAuth error code; the tests in tests/sandbox pin every one of them. The mock
switches of ``quirks.py`` (read on every request) make it behave like a particular real EHR instead,
or answer with one of LAUNCHER's simulated errors.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import jwt

from thrive_fhir.smart_scopes import Grant

from . import scope_policy
from .auth_state_mirror import AuthStateMirror, digest
from .client_auth import ClientAuthenticator, JwksFetcher
from .errors import OAuthError, invalid_client, invalid_grant, invalid_request, invalid_scope
from .keys import SigningKey, jwks
from .quirks import AUTHORIZE_ERRORS, REQUEST_ERRORS, Quirks
from .registry import Client, Registry, SandboxUser

#: RFC 7636: 43-128 characters from the unreserved set.
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
#: base64url(SHA-256) without padding is always 43 characters.
_CHALLENGE = re.compile(r"^[A-Za-z0-9\-_]{43}$")
ACCESS_TOKEN_TYP = "at+jwt"  # noqa: S105 - a JWT header type, not a secret. RFC 9068: keeps an id_token from being replayed as an access token
#: Access-token claim naming a simulated request error (LAUNCHER bakes it into the token the same way).
SIM_ERROR_CLAIM = "sim_error"
#: Signing keys kept published after a rotation, so tokens they signed still verify.
PREVIOUS_KEYS_KEPT = 2


def pkce_challenge(verifier: str) -> str:
    """``base64url(SHA-256(verifier))`` without padding (RFC 7636 S256)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class AuthorizeError(OAuthError):
    """An authorization-endpoint error. With ``redirect_uri`` it goes back to the client
    (RFC 6749 4.1.2.1); without one (unknown client, unregistered redirect URI) it is shown to
    the user and the browser is NOT redirected, so the sandbox is never an open redirector."""

    def __init__(self, error: str, description: str, redirect_uri: str | None = None, state: str | None = None) -> None:
        super().__init__(error, description, 400)
        self.redirect_uri = redirect_uri
        self.state = state

    def location(self) -> str:
        params = {"error": self.error, "error_description": self.description}
        if self.state is not None:
            params["state"] = self.state
        return add_query(self.redirect_uri or "", params)


def add_query(url: str, params: dict[str, str]) -> str:
    """Append ``params`` to ``url``'s query, keeping what is already there."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


@dataclass
class LaunchHandle:
    patient: str
    user: str
    aud: str
    expires: float
    used: bool = False


@dataclass
class AuthRequest:
    """An authorization request that passed validation and waits for login / patient / consent."""

    id: str
    client: Client
    redirect_uri: str
    state: str
    scopes: list[str]
    aud: str
    code_challenge: str
    nonce: str | None
    ehr_launch: bool
    expires: float
    user: str | None = None
    patient: str | None = None
    no_patient: bool = False  # mock switch: the EHR never asks for (or gives) a patient

    @property
    def needs_patient(self) -> bool:
        return "launch/patient" in self.scopes and self.patient is None and not self.no_patient


@dataclass
class CodeRecord:
    client_id: str
    redirect_uri: str
    code_challenge: str
    scopes: list[str]
    aud: str
    user: str | None
    patient: str | None
    nonce: str | None
    ehr_launch: bool
    family: str
    expires: float
    used: bool = False


@dataclass
class RefreshRecord:
    client_id: str
    scopes: list[str]
    aud: str
    user: str | None
    patient: str | None
    ehr_launch: bool
    family: str
    expires: float
    used: bool = False


@dataclass
class Lifetimes:
    code: int = 600  # Inferno's mock: codes live 10 minutes
    launch: int = 600
    request: int = 600
    id_token: int = 300  # validated at exchange time, as Epic does
    online_refresh: int = 8 * 3600
    offline_refresh: int = 30 * 24 * 3600


class Authority:
    """One sandbox authorization server: issuer ``<origin>/auth`` for one or more FHIR bases."""

    def __init__(
        self,
        origin: str,
        registry: Registry,
        key: SigningKey,
        *,
        fhir_bases: list[str] | None = None,
        clock: Callable[[], float] = time.time,
        lifetimes: Lifetimes | None = None,
        jwks_fetcher: JwksFetcher | None = None,
        state_mirror: AuthStateMirror | None = None,
    ) -> None:
        self.origin = origin.rstrip("/")
        self.issuer = self.origin + "/auth"
        self.token_endpoint = self.issuer + "/token"
        self.registry = registry
        self.key = key  # the active signing key (a rotation replaces it)
        self._previous_keys: list[SigningKey] = []
        self._extra_key: SigningKey | None = None
        self.fhir_bases: list[str] = list(fhir_bases or [])
        self.clock = clock
        self.lifetimes = lifetimes or Lifetimes()
        self.state_mirror = state_mirror
        self.client_auth = ClientAuthenticator(
            registry, self.token_endpoint, lambda: self.clock(), jwks_fetcher, state_mirror=state_mirror
        )
        #: Patient lookup per FHIR base for the standalone patient picker: base -> callable
        #: (text or None) -> list of {"id", "name", "birthDate", "nhs"}; set by the server wiring.
        self.patient_lookups: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._launches: dict[str, LaunchHandle] = {}
        self._requests: dict[str, AuthRequest] = {}
        self._sessions: dict[str, str] = {}
        self._codes: dict[str, CodeRecord] = {}
        self._refresh: dict[str, RefreshRecord] = {}
        self._revoked_families: set[str] = set()
        self._key_since = clock()
        if state_mirror is not None:
            self._load_state()

    # -- durable state (optional) --------------------------------------------------------------------

    def _load_state(self) -> None:
        """Read back what a previous run of this sandbox wrote (``state_mirror``)."""
        store, now = self.state_mirror, self.clock()
        if store is None:
            return
        kinds: dict[str, tuple[dict[str, Any], type]] = {
            "launch": (self._launches, LaunchHandle),
            "code": (self._codes, CodeRecord),
            "refresh": (self._refresh, RefreshRecord),
        }
        for kind, (table, record_type) in kinds.items():
            for key, data, _expires in store.load(kind, now):
                table[key] = record_type(**data)
        for key, data, _expires in store.load("session", now):
            self._sessions[key] = data["user"]
        self._revoked_families.update(key for key, _d, _e in store.load("revoked", now))

    def _save(self, kind: str, key: str, record: Any) -> None:
        """Write one record through to the state store (called with the lock held)."""
        if self.state_mirror is not None:
            self.state_mirror.put(kind, key, asdict(record), record.expires)

    def _revoke(self, family: str) -> None:
        """Revoke every token of a grant (called with the lock held)."""
        self._revoked_families.add(family)
        if self.state_mirror is not None:
            self.state_mirror.put("revoked", family, {}, self.clock() + self.lifetimes.offline_refresh)

    # -- mock switches -----------------------------------------------------------------------------

    @property
    def quirks(self) -> Quirks:
        """The sandbox-wide switches (``Registry.quirks``)."""
        return self.registry.quirks

    def quirks_for(self, client: Client | None) -> Quirks:
        """The switches in force for ``client``: its own laid over the sandbox-wide ones."""
        return Quirks.effective(self.registry.quirks, client.quirks if client else None)

    # -- signing keys --------------------------------------------------------------------------------

    def rotate_signing_key(self, *, keep_previous: bool = True) -> SigningKey:
        """Start signing with a new key. The old one stays in the JWKS (``keep_previous``) so tokens
        it signed still verify, as a real rotation does; without it they stop verifying at once."""
        new = SigningKey.generate("RS256")
        with self._lock:
            if keep_previous:
                self._previous_keys = [self.key, *self._previous_keys][:PREVIOUS_KEYS_KEPT]
            else:
                self._previous_keys = []
            self.key = new
            self._key_since = self.clock()
        return new

    def _signing_key(self) -> SigningKey:
        every = self.registry.quirks.jwks_rotate_every
        if every and self.clock() - self._key_since >= every:
            self.rotate_signing_key()
        return self.key

    def published_keys(self) -> list[SigningKey]:
        """Every key in the JWKS: active, previous ones, and the announced extra key if switched on."""
        keys = [self.key, *self._previous_keys]
        if self.registry.quirks.jwks_extra_key:
            if self._extra_key is None:
                self._extra_key = SigningKey.generate("RS256")
            keys.append(self._extra_key)
        return keys

    def _verification_key(self, kid: str | None) -> Any:
        for key in (self.key, *self._previous_keys):
            if key.kid == kid:
                return key.public_key
        return None

    # -- discovery ---------------------------------------------------------------------------------

    def smart_configuration(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "jwks_uri": self.issuer + "/jwks",
            "authorization_endpoint": self.issuer + "/authorize",
            "token_endpoint": self.token_endpoint,
            "introspection_endpoint": self.issuer + "/introspect",
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic", "none"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": [
                *sorted(scope_policy.NON_RESOURCE),
                "patient/*.cruds",
                "user/*.cruds",
                "system/*.cruds",
                "patient/*.read",
                "patient/*.write",
            ],
            "capabilities": [
                "launch-ehr",
                "launch-standalone",
                "authorize-post",
                "client-public",
                "client-confidential-symmetric",
                "client-confidential-asymmetric",
                "context-ehr-patient",
                "context-standalone-patient",
                "context-banner",
                "sso-openid-connect",
                "permission-offline",
                "permission-online",
                "permission-patient",
                "permission-user",
                "permission-v1",
                "permission-v2",
            ],
        }

    def openid_configuration(self) -> dict[str, Any]:
        conf = self.smart_configuration()
        keep = (
            "issuer",
            "jwks_uri",
            "authorization_endpoint",
            "token_endpoint",
            "response_types_supported",
            "id_token_signing_alg_values_supported",
            "scopes_supported",
            "token_endpoint_auth_methods_supported",
            "grant_types_supported",
        )
        out = {k: conf[k] for k in keep}
        out["subject_types_supported"] = ["public"]
        out["claims_supported"] = ["iss", "sub", "aud", "exp", "iat", "nonce", "fhirUser", "name"]
        return out

    def jwks(self) -> dict[str, Any]:
        self._signing_key()  # a due rotation shows in the JWKS before it signs anything
        return jwks(*self.published_keys())

    # -- EHR launch handles ------------------------------------------------------------------------

    def mint_launch(self, patient: str, user_id: str, aud: str | None = None) -> str:
        """An opaque one-time ``launch`` value bound to a patient and a signed-in sandbox user."""
        if self.registry.user(user_id) is None:
            raise ValueError(f"unknown sandbox user {user_id!r}")
        aud = aud or self.fhir_bases[0]
        token = secrets.token_hex(32)  # 64 hex characters, as Inferno's launch links use
        with self._lock:
            self._purge()
            handle = LaunchHandle(patient, user_id, aud, self.clock() + self.lifetimes.launch)
            self._launches[digest(token)] = handle
            self._save("launch", digest(token), handle)
        return token

    # -- authorization endpoint --------------------------------------------------------------------

    def begin_authorization(self, params: dict[str, str], session_user: str | None) -> AuthRequest:
        """Validate an authorization request; raises :class:`AuthorizeError` when it is refused."""
        client = self.registry.client(params.get("client_id"))
        quirks = self.quirks_for(client)
        simulated = quirks.error(*AUTHORIZE_ERRORS)
        # Simulated errors answer exactly as the real ones below do: a bad client_id or redirect_uri
        # is shown to the user without redirecting (RFC 6749 4.1.2.1; LAUNCHER redirects even then).
        if simulated == "auth_invalid_client_id":
            raise AuthorizeError("invalid_client", "unknown client_id" + _simulated(simulated))
        if client is None:
            raise AuthorizeError("invalid_client", "unknown client_id")
        redirect_uri = params.get("redirect_uri")
        if simulated == "auth_invalid_redirect_uri":
            raise AuthorizeError(
                "invalid_request", "redirect_uri is missing or not registered for this client" + _simulated(simulated)
            )
        if not redirect_uri or redirect_uri not in client.redirect_uris:
            raise AuthorizeError("invalid_request", "redirect_uri is missing or not registered for this client")
        state = params.get("state")

        def fail(error: str, description: str) -> AuthorizeError:
            return AuthorizeError(error, description, redirect_uri, state)

        if simulated == "auth_invalid_scope":
            raise fail("invalid_scope", "scope(s) not registered for this client" + _simulated(simulated))

        if "authorization_code" not in client.grant_types:
            raise fail("unauthorized_client", "this client may not use the authorization code grant")
        if params.get("response_type") != "code":
            raise fail("unsupported_response_type", "response_type must be code")
        if not state:
            raise fail("invalid_request", "state is required")
        challenge = params.get("code_challenge")
        if not challenge:
            raise fail("invalid_request", "code_challenge is required (PKCE)")
        if params.get("code_challenge_method") != "S256":
            raise fail("invalid_request", "code_challenge_method must be S256; plain is not accepted")
        if not _CHALLENGE.match(challenge):
            raise fail("invalid_request", "code_challenge must be base64url(SHA-256) of the verifier")
        aud = params.get("aud")
        if not aud or aud not in self.fhir_bases:
            # Plain string equality with the FHIR base, as Inferno checks (docs/design/smart-launch.md EL-06).
            raise fail("invalid_request", "aud must be this server's FHIR base URL exactly")
        scopes = scope_policy.split(params.get("scope"))
        if not scopes:
            raise fail("invalid_scope", "scope is required")
        self._check_scopes(client, scopes, fail)
        if "system" in scope_policy.contexts(scopes):
            raise fail("invalid_scope", "system/ scopes are only granted to Backend Services clients")
        launch_value = params.get("launch")
        if launch_value is not None and "launch" not in scopes:
            raise fail("invalid_scope", "an EHR launch must request the launch scope")
        if launch_value is None and "launch" in scopes:
            raise fail("invalid_request", "the launch scope needs the launch parameter from the EHR")
        user, patient = session_user, None
        if launch_value is not None:
            with self._lock:
                handle = self._launches.get(digest(launch_value))
                if handle is None or handle.used or handle.expires < self.clock():
                    raise fail("invalid_request", "launch is unknown, expired or already used")
                if handle.aud != aud:
                    raise fail("invalid_request", "aud does not match the FHIR base this launch came from")
                handle.used = True
                self._save("launch", digest(launch_value), handle)
            user, patient = handle.user, handle.patient
        request = AuthRequest(
            id=secrets.token_urlsafe(24),
            client=client,
            redirect_uri=redirect_uri,
            state=state,
            scopes=scopes,
            aud=aud,
            code_challenge=challenge,
            nonce=params.get("nonce"),
            ehr_launch=launch_value is not None,
            expires=self.clock() + self.lifetimes.request,
            user=user,
            patient=patient,
            no_patient=bool(quirks.no_patient),
        )
        with self._lock:
            self._purge()
            self._requests[request.id] = request
        return request

    @staticmethod
    def _check_scopes(client: Client, scopes: list[str], fail: Callable[[str, str], OAuthError]) -> None:
        unknown = [s for s in scopes if not scope_policy.is_known_scope(s)]
        if unknown:
            raise fail("invalid_scope", f"unrecognised scope(s): {' '.join(unknown)}")
        outside = [s for s in scopes if not scope_policy.covered(s, client.scopes)]
        if outside:
            raise fail("invalid_scope", f"scope(s) not registered for this client: {' '.join(outside)}")

    def pending(self, request_id: str | None) -> AuthRequest | None:
        with self._lock:
            req = self._requests.get(request_id or "")
            if req is None or req.expires < self.clock():
                return None
            return req

    def start_session(self, user_id: str) -> str:
        """Standalone sign-in: a browser session id for the login cookie."""
        if self.registry.user(user_id) is None:
            raise ValueError("unknown sandbox user")
        sid = secrets.token_urlsafe(32)
        with self._lock:
            self._sessions[digest(sid)] = user_id
            if self.state_mirror is not None:
                self.state_mirror.put(
                    "session", digest(sid), {"user": user_id}, self.clock() + self.lifetimes.online_refresh
                )
        return sid

    def session_user(self, sid: str | None) -> str | None:
        with self._lock:
            return self._sessions.get(digest(sid)) if sid else None

    def approve(self, request_id: str, granted: list[str] | None = None) -> str:
        """Issue a code for a pending request; ``granted`` narrows the scopes (consent unticks).

        Returns the redirect URL. Scopes not requested are ignored, context scopes always stay.
        """
        with self._lock:
            req = self._requests.pop(request_id, None)
        if req is None or req.expires < self.clock():
            raise OAuthError("invalid_request", "this authorization request has expired; relaunch the app")
        if req.user is None or req.needs_patient:
            raise OAuthError("invalid_request", "sign-in and patient selection are not complete")
        if granted is None:
            scopes = list(req.scopes)
        else:
            chosen = set(granted)
            scopes = [s for s in req.scopes if s in chosen or s in scope_policy.CONTEXT_SCOPES]
        code = secrets.token_urlsafe(32)
        record = CodeRecord(
            client_id=req.client.client_id,
            redirect_uri=req.redirect_uri,
            code_challenge=req.code_challenge,
            scopes=scopes,
            aud=req.aud,
            user=req.user,
            patient=req.patient,
            nonce=req.nonce,
            ehr_launch=req.ehr_launch,
            family=uuid.uuid4().hex,
            expires=self.clock() + self.lifetimes.code,
        )
        with self._lock:
            self._codes[digest(code)] = record
            self._save("code", digest(code), record)
        return add_query(req.redirect_uri, {"code": code, "state": req.state})

    def deny(self, request_id: str) -> str:
        with self._lock:
            req = self._requests.pop(request_id, None)
        if req is None:
            raise OAuthError("invalid_request", "this authorization request has expired; relaunch the app")
        return AuthorizeError(
            "access_denied", "the user denied the authorization request", req.redirect_uri, req.state
        ).location()

    # -- token endpoint ----------------------------------------------------------------------------

    def token(self, authorization: str | None, form: dict[str, str]) -> dict[str, Any]:
        grant_type = form.get("grant_type")
        if not grant_type:
            raise invalid_request("grant_type is required")
        if grant_type not in ("authorization_code", "refresh_token", "client_credentials"):
            raise OAuthError("unsupported_grant_type", f"grant_type {grant_type!r} is not supported")
        client = self.client_auth.authenticate(authorization, form)
        self._simulate_token_error(client, grant_type, form)
        if grant_type not in client.grant_types:
            raise OAuthError("unauthorized_client", f"this client may not use the {grant_type} grant")
        if grant_type == "authorization_code":
            return self._exchange_code(client, form)
        if grant_type == "refresh_token":
            return self._refresh_grant(client, form)
        return self._client_credentials(client, form)

    def _simulate_token_error(self, client: Client, grant_type: str, form: dict[str, str]) -> None:
        """LAUNCHER's token-endpoint errors, each answered as the real error would be."""
        simulated = self.quirks_for(client).simulate_error
        if simulated == "auth_invalid_client_secret":
            raise invalid_client("client authentication failed" + _simulated(simulated))
        if simulated == "token_invalid_jti" and "client_assertion" in form:
            raise invalid_client("client_assertion jti has already been used" + _simulated(simulated))
        if simulated == "token_invalid_token":
            # LAUNCHER answers 401 invalid_client for the code and refresh grants alike.
            raise invalid_client("the token request is not valid for this client" + _simulated(simulated))
        if simulated == "token_invalid_scope":
            raise invalid_scope("the requested scope is invalid for this client" + _simulated(simulated))
        if simulated == "token_expired_refresh_token" and grant_type == "refresh_token":
            raise invalid_grant("refresh token has expired" + _simulated(simulated))

    def _exchange_code(self, client: Client, form: dict[str, str]) -> dict[str, Any]:
        code = form.get("code")
        if not code:
            raise invalid_request("code is required")
        with self._lock:
            rec = self._codes.get(digest(code))
            if rec is None:
                raise invalid_grant("authorization code is unknown")
            if rec.used:
                # RFC 6749 4.1.2: a reused code revokes what was issued with it.
                self._revoke(rec.family)
                raise invalid_grant("authorization code has already been used")
            rec.used = True
            self._save("code", digest(code), rec)
        if rec.expires < self.clock():
            raise invalid_grant("authorization code has expired")
        if rec.client_id != client.client_id:
            raise invalid_grant("authorization code was issued to another client")
        if form.get("redirect_uri") != rec.redirect_uri:
            raise invalid_grant("redirect_uri differs from the one in the authorization request")
        verifier = form.get("code_verifier")
        if not verifier:
            raise invalid_grant("code_verifier is required (PKCE)")
        if not _VERIFIER.match(verifier) or not hmac.compare_digest(pkce_challenge(verifier), rec.code_challenge):
            raise invalid_grant("code_verifier does not match the code_challenge")
        return self._issue(
            client,
            rec.scopes,
            rec.aud,
            rec.user,
            rec.patient,
            rec.ehr_launch,
            rec.family,
            nonce=rec.nonce,
            refresh=True,
        )

    def _refresh_grant(self, client: Client, form: dict[str, str]) -> dict[str, Any]:
        token = form.get("refresh_token")
        if not token:
            raise invalid_request("refresh_token is required")
        with self._lock:
            rec = self._refresh.get(digest(token))
            if rec is None or rec.family in self._revoked_families:
                raise invalid_grant("refresh token is unknown or revoked")
            if rec.client_id != client.client_id:
                raise invalid_grant("refresh token was issued to another client")
            if rec.used:
                # Reuse of a rotated refresh token: assume it was stolen and revoke the whole grant.
                self._revoke(rec.family)
                raise invalid_grant("refresh token has already been used; the grant is revoked")
            if rec.expires < self.clock():
                raise invalid_grant("refresh token has expired")
            rotate = self._rotates_refresh_tokens(client)
            if rotate:
                rec.used = True
                self._save("refresh", digest(token), rec)
        scopes = rec.scopes
        if form.get("scope"):
            wanted = scope_policy.split(form["scope"])
            extra = [s for s in wanted if s not in rec.scopes]
            if extra:
                raise invalid_scope(f"refresh may only narrow the grant; not granted: {' '.join(extra)}")
            scopes = wanted
        return self._issue(
            client,
            scopes,
            rec.aud,
            rec.user,
            rec.patient,
            rec.ehr_launch,
            rec.family,
            refresh=rotate,
            refresh_expires=rec.expires,
        )

    def _rotates_refresh_tokens(self, client: Client) -> bool:
        switch = self.quirks_for(client).rotate_refresh_tokens
        return client.rotate_refresh_tokens if switch is None else switch

    def _client_credentials(self, client: Client, form: dict[str, str]) -> dict[str, Any]:
        scopes = scope_policy.split(form.get("scope"))
        if not scopes:
            raise invalid_scope("scope is required for client_credentials")
        not_system = [s for s in scopes if (p := scope_policy.resource_scope(s)) is None or p.context != "system"]
        if not_system:
            raise invalid_scope(f"Backend Services may only request system/ scopes: {' '.join(not_system)}")
        self._check_scopes(client, scopes, lambda e, d: OAuthError(e, d))
        aud = client.fhir_base or self.fhir_bases[0]
        return self._issue(client, scopes, aud, None, None, False, uuid.uuid4().hex, refresh=False)

    def _issue(
        self,
        client: Client,
        scopes: list[str],
        aud: str,
        user_id: str | None,
        patient: str | None,
        ehr_launch: bool,
        family: str,
        *,
        nonce: str | None = None,
        refresh: bool = False,
        refresh_expires: float | None = None,
    ) -> dict[str, Any]:
        now = int(self.clock())
        quirks = self.quirks_for(client)
        if quirks.no_patient:
            patient = None
        user = self.registry.user(user_id)
        scope = " ".join(scopes)
        lifetime = quirks.token_lifetime or client.access_token_lifetime
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": aud,
            "sub": user_id or client.client_id,
            "client_id": client.client_id,
            "scope": scope,
            "iat": now,
            "exp": now + lifetime,
            "jti": uuid.uuid4().hex,
            "fam": family,
        }
        has_patient_scope = "patient" in scope_policy.contexts(scopes)
        if patient and (has_patient_scope or {"launch", "launch/patient"} & set(scopes)):
            claims["patient"] = patient
        if user:
            claims["fhirUser"] = user.fhirUser
        organization = (user.organization if user else None) or client.organization
        if organization:
            claims["organization"] = organization
        simulated = quirks.error(*REQUEST_ERRORS)
        if simulated:
            claims[SIM_ERROR_CLAIM] = simulated  # the FHIR API will refuse this token
        body: dict[str, Any] = {
            "access_token": self._signing_key().sign(claims, {"typ": ACCESS_TOKEN_TYP}),
            "token_type": "Bearer",
            "expires_in": lifetime,
            "scope": scope,
        }
        if "patient" in claims:
            body["patient"] = patient
        if {"launch", "launch/patient"} & set(scopes):
            # The sandbox EHR page shows its own patient banner around the iframe.
            body["need_patient_banner"] = not ehr_launch
        if "openid" in scopes and user:
            body["id_token"] = self._id_token(
                client, user, aud, nonce, "fhirUser" in scopes, now, kid=not quirks.id_token_without_kid
            )
        wants_refresh = {"online_access", "offline_access"} & set(scopes)
        if refresh and wants_refresh and "refresh_token" in client.grant_types:
            expires = refresh_expires or now + (
                self.lifetimes.offline_refresh if "offline_access" in scopes else self.lifetimes.online_refresh
            )
            token = secrets.token_urlsafe(32)
            with self._lock:
                record = RefreshRecord(client.client_id, scopes, aud, user_id, patient, ehr_launch, family, expires)
                self._refresh[digest(token)] = record
                self._save("refresh", digest(token), record)
            body["refresh_token"] = token
        return body

    def _id_token(
        self,
        client: Client,
        user: SandboxUser,
        aud: str,
        nonce: str | None,
        fhir_user: bool,
        now: int,
        *,
        kid: bool = True,
    ) -> str:
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": user.id,
            "aud": client.client_id,
            "iat": now,
            "exp": now + self.lifetimes.id_token,
            "name": user.name,
        }
        if nonce:
            claims["nonce"] = nonce
        if fhir_user:
            claims["fhirUser"] = f"{aud.rstrip('/')}/{user.fhirUser}"
        return self._signing_key().sign(claims, kid=kid)  # RS256 with kid, per OIDC and SAL (unless switched off)

    # -- verification and introspection ------------------------------------------------------------

    def verify_access_token(self, token: str, audience: str | None = None) -> dict[str, Any] | None:
        """Claims of a valid, unrevoked access token for ``audience`` (any of ours if None).
        Tokens carrying a simulated request error are not valid (see :meth:`simulated_request_error`)."""
        claims = self._decode_access_token(token, audience)
        if claims is None or SIM_ERROR_CLAIM in claims:
            return None
        return claims

    def simulated_request_error(self, token: str) -> str | None:
        """The simulated request error (``request_invalid_token``/``request_expired_token``) an
        otherwise valid access token of ours carries, if any."""
        claims = self._decode_access_token(token, None)
        value = claims.get(SIM_ERROR_CLAIM) if claims else None
        return value if value in REQUEST_ERRORS else None

    def _decode_access_token(self, token: str, audience: str | None) -> dict[str, Any] | None:
        try:
            header = jwt.get_unverified_header(token)
            if header.get("typ") != ACCESS_TOKEN_TYP:
                return None
            key = self._verification_key(header.get("kid"))
            if key is None:
                return None
            claims = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                issuer=self.issuer,
                audience=audience or self.fhir_bases,
                leeway=0,
                options={"require": ["iss", "aud", "exp", "sub", "scope", "client_id"], "verify_exp": False},
            )
        except jwt.PyJWTError:
            return None
        if claims["exp"] <= self.clock():
            return None
        with self._lock:
            if claims.get("fam") in self._revoked_families:
                return None
        return claims

    def mint_internal_token(
        self, aud: str, scope: str, lifetime: int = 120, *, user: str | None = None, organization: str | None = None
    ) -> str:
        """A short-lived token for the sandbox's own pages reading a store (client ``sandbox-ehr``).
        ``user``/``organization``: read on behalf of a signed-in user (``fhirUser`` and ``organization``
        claims), so a store that enforces sharing Consents applies them to this read too."""
        now = int(self.clock())
        claims = {
            "iss": self.issuer,
            "aud": aud,
            "sub": "sandbox-ehr",
            "client_id": "sandbox-ehr",
            "scope": scope,
            "iat": now,
            "exp": now + lifetime,
            "jti": uuid.uuid4().hex,
        }
        if user:
            claims["fhirUser"] = user
        if organization:
            claims["organization"] = organization
        return self._signing_key().sign(claims, {"typ": ACCESS_TOKEN_TYP})

    def token_verifier(self, audience: str) -> Callable[[str], Grant | None]:
        """The ``token_verifier`` the FHIR store at ``audience`` calls with each bearer token."""

        def verify(token: str) -> Grant | None:
            claims = self.verify_access_token(token, audience)
            if claims is None:
                return None
            return Grant.from_scope_string(
                claims["client_id"],
                claims["scope"],
                patient=claims.get("patient"),
                user=claims.get("fhirUser"),
                organization=claims.get("organization"),
                expires=float(claims["exp"]),
            )

        return verify

    def introspect(self, authorization: str | None, form: dict[str, str]) -> dict[str, Any]:
        """RFC 7662. The caller must authenticate as a confidential registered client."""
        caller = self.client_auth.authenticate(authorization, form)
        if caller.auth == "none":
            raise invalid_client("introspection requires an authenticated (confidential) client")
        token = form.get("token")
        if not token:
            raise invalid_request("token is required")
        claims = self.verify_access_token(token)
        if claims is not None:
            out = {k: claims[k] for k in ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "jti")}
            # ``organization`` too: a store verifying by introspection decides consent by it
            # (thrive_fhir.store.token_introspection reads the same claims as from a JWT).
            out.update({k: claims[k] for k in ("patient", "fhirUser", "organization") if k in claims})
            return {"active": True, "token_type": "Bearer", **out}
        with self._lock:
            rec = self._refresh.get(digest(token))
            live = (
                rec is not None
                and not rec.used
                and rec.family not in self._revoked_families
                and rec.expires > self.clock()
            )
        if live and rec is not None:
            return {
                "active": True,
                "token_type": "refresh_token",
                "scope": " ".join(rec.scopes),
                "client_id": rec.client_id,
                "exp": int(rec.expires),
                "iss": self.issuer,
            }
        return {"active": False}

    # -- housekeeping ------------------------------------------------------------------------------

    def _purge(self) -> None:
        """Drop expired records (called with the lock held)."""
        now = self.clock()
        for table in (self._launches, self._requests, self._codes, self._refresh):
            for key in [k for k, v in table.items() if v.expires + 3600 < now]:
                del table[key]
        if self.state_mirror is not None:
            self.state_mirror.purge(now)


def _simulated(name: str | None) -> str:
    """Suffix that marks an error description as a mock switch's doing (for whoever debugs it)."""
    return f" (simulated: {name})" if name else ""
