"""Verify bearer tokens from a real authorization server, for ``thrive store serve``.

Why: the store enforces SMART scopes and sharing Consents (consent_gate.py) and writes AuditEvents
only when it is given a ``token_verifier``. The development sandbox plugs in its own
(``Authority.token_verifier``); a deployed store needs one that trusts an external authorization
server. This module is that verifier: it checks JWT access tokens (RFC 9068 shape) against the
issuer's published keys (JWKS) and turns their claims into the same :class:`Grant` the sandbox's
verifier builds, so the store enforces exactly the same rules whichever server issued the token.

What a token must be to pass (anything else -> ``None``, which the store answers with 401
``WWW-Authenticate: Bearer error="invalid_token"`` and an OperationOutcome):

- a JWS signed with RS256, RS384, ES256 or ES384 by a key in the issuer's JWKS. ``none`` and the
  HMAC algorithms are never accepted (an HS256 token "signed" with the public key is the classic
  forgery), and the key's type and stated ``alg`` must match the token's;
- ``iss`` equal to the configured issuer, ``aud`` naming this store's base URL, ``exp`` present and
  in the future, ``nbf``/``iat`` not in the future (each with a small leeway for clock skew);
- keys come only from the issuer's JWKS: ``jwk``, ``jku`` and ``x5u`` headers in the token are ignored;
- ``typ`` header, when present, one that an access token uses (``at+jwt``, ``JWT``); an id_token
  already fails the ``aud`` check, since its audience is the client.

Keys: fetched from ``jwks_uri`` and cached (:class:`KeySet`); a token naming an unknown ``kid`` (the
issuer rotated its key) triggers one refetch, at most once per ``refetch_interval`` seconds.

Claims -> Grant: ``client_id`` (RFC 9068; ``azp`` as Keycloak and Azure AD name it), ``scope`` (a
space-separated string, or the ``scp`` list some servers use), ``patient``, ``fhirUser`` and
``organization``. ``fhirUser``/``organization`` given as absolute URLs under this store's base are
made relative (``Organization/x``), the form the consent gate compares with its custodians.

Tokens are never logged: failures are logged by reason only.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import jwt
import requests
from jwt import PyJWKClient
from jwt.exceptions import PyJWKClientError, PyJWKSetError

from ..smart_scopes import Grant

log = logging.getLogger("thrive_fhir.store.auth")

#: The only signature algorithms accepted (asymmetric; never ``none`` or HS*).
ALLOWED_ALGS = ("RS256", "RS384", "ES256", "ES384")
_KEY_TYPE = {"RS": "RSA", "ES": "EC"}
#: ``typ`` header values of access tokens (RFC 9068 says ``at+jwt``; many servers still say ``JWT``).
ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt", "jwt"})
DEFAULT_LEEWAY = 30
DEFAULT_REFETCH_INTERVAL = 30.0
#: Discovery documents tried under the issuer, in order: SMART's (it carries everything a SMART
#: client needs), then OpenID Connect's and RFC 8414's (they carry ``jwks_uri``).
DISCOVERY_PATHS = (
    ".well-known/smart-configuration",
    ".well-known/openid-configuration",
    ".well-known/oauth-authorization-server",
)
#: Fields of the issuer's discovery document republished at the store's own
#: ``.well-known/smart-configuration``, so SMART clients of the store find its authorization server.
SMART_FIELDS = (
    "issuer",
    "jwks_uri",
    "authorization_endpoint",
    "token_endpoint",
    "introspection_endpoint",
    "revocation_endpoint",
    "registration_endpoint",
    "management_endpoint",
    "grant_types_supported",
    "token_endpoint_auth_methods_supported",
    "token_endpoint_auth_signing_alg_values_supported",
    "scopes_supported",
    "response_types_supported",
    "code_challenge_methods_supported",
    "capabilities",
)


class AuthConfigError(Exception):
    """The authorization settings cannot work (bad issuer, unreachable discovery): one line for the CLI."""


@dataclass(frozen=True)
class AuthSettings:
    """What ``thrive store serve`` was told about its authorization server."""

    issuer: str
    audience: str
    jwks_url: str | None = None
    discovery_url: str | None = None
    leeway: int = DEFAULT_LEEWAY
    refetch_interval: float = DEFAULT_REFETCH_INTERVAL
    #: Refuse tokens naming neither a user nor an organisation (set when consent custodians are).
    require_organization: bool = False


def discover(issuer: str, discovery_url: str | None = None, *, timeout: float = 10.0) -> dict[str, Any]:
    """The issuer's discovery document (the first that answers), checked to name the same issuer.

    OpenID Connect Discovery 1.0 section 4.3: the ``issuer`` in the document must equal the one
    configured, else a document served elsewhere could redirect key lookups (mix-up).
    """
    base = issuer.rstrip("/")
    urls = [discovery_url] if discovery_url else [f"{base}/{path}" for path in DISCOVERY_PATHS]
    problems = []
    for url in urls:
        try:
            resp = requests.get(url, headers={"Accept": "application/json"}, timeout=timeout, allow_redirects=False)
        except requests.RequestException as exc:
            problems.append(f"{url}: {type(exc).__name__}")
            continue
        if resp.status_code != 200:
            problems.append(f"{url}: HTTP {resp.status_code}")
            continue
        try:
            doc = resp.json()
        except ValueError:
            problems.append(f"{url}: not JSON")
            continue
        if not isinstance(doc, dict) or not doc.get("jwks_uri"):
            problems.append(f"{url}: no jwks_uri")
            continue
        if str(doc.get("issuer", "")).rstrip("/") != base:
            raise AuthConfigError(f"the discovery document at {url} names issuer {doc.get('issuer')!r}, not {issuer!r}")
        return doc
    raise AuthConfigError("no discovery document for the issuer (" + "; ".join(problems) + "); give --auth-jwks-url")


def smart_configuration(doc: dict[str, Any]) -> dict[str, Any]:
    """The store's ``.well-known/smart-configuration``: the issuer's endpoints, republished."""
    return {k: doc[k] for k in SMART_FIELDS if k in doc}


class KeySet:
    """The issuer's signing keys, cached.

    Refetched when older than ``lifespan`` (so a key the issuer withdrew stops verifying) and when a
    token names an unknown kid (the issuer rotated), but never more than once per
    ``refetch_interval``: a stream of tokens with invented kids must not make the store hammer the
    issuer. A refetch that fails keeps the keys already known, so a short outage of the issuer does
    not turn every request into a 401.
    """

    def __init__(
        self,
        jwks_url: str,
        refetch_interval: float = DEFAULT_REFETCH_INTERVAL,
        *,
        lifespan: float = 300.0,
        timeout: float = 10.0,
    ):
        # PyJWKClient only fetches and parses here; caching and its rate limit are ours, because its
        # own cooldown covers get_signing_key only, which cannot serve a token without a kid.
        self.client = PyJWKClient(jwks_url, cache_jwk_set=False, timeout=timeout)
        self.refetch_interval = refetch_interval
        self.lifespan = lifespan
        self._lock = threading.Lock()
        self._keys: list[Any] = []
        self._fetched = float("-inf")
        self._tried = float("-inf")

    def load(self) -> None:
        """First fetch; raises PyJWKClientError/PyJWKSetError so start-up fails on a wrong URL."""
        keys = self.client.get_jwk_set().keys
        with self._lock:
            self._keys, self._fetched = keys, time.monotonic()

    def _refetch(self) -> bool:
        """Fetch again unless one was tried within ``refetch_interval``; True when the keys changed."""
        now = time.monotonic()
        with self._lock:
            if now - self._tried < self.refetch_interval:
                return False
            self._tried = now
        try:
            keys = self.client.get_jwk_set().keys
        except (PyJWKClientError, PyJWKSetError) as exc:
            log.warning("cannot refetch the issuer's JWKS (%s): keeping the keys already known", type(exc).__name__)
            return False
        with self._lock:
            self._keys, self._fetched = keys, time.monotonic()
        return True

    def key_for(self, kid: str | None) -> Any:
        """The PyJWK for ``kid`` (or the only key, when the token names none); None if unknown."""
        if time.monotonic() - self._fetched >= self.lifespan:
            self._refetch()
        found = self._find(kid)
        if found is None and self._refetch():
            log.info("a token named a key not in the cached JWKS: refetched it")
            found = self._find(kid)
        return found

    def _find(self, kid: str | None) -> Any:
        keys = [k for k in self._keys if k.public_key_use in (None, "sig")]
        if kid is None:
            return keys[0] if len(keys) == 1 else None  # no kid: acceptable only when there is one key
        return next((k for k in keys if k.key_id == kid), None)


class JwtTokenVerifier:
    """``token_verifier`` for :func:`thrive_fhir.store.create_app`: a bearer token -> Grant or None."""

    def __init__(self, settings: AuthSettings, keys: KeySet) -> None:
        self.settings = settings
        self.issuer = settings.issuer
        aud = settings.audience.rstrip("/")
        self.audiences = [aud, aud + "/"]
        self.keys = keys

    def __call__(self, token: str) -> Grant | None:
        try:
            claims = self.claims(token)
        except _Refused as exc:
            log.info("access token refused: %s", exc)
            return None
        return self.grant(claims)

    def claims(self, token: str) -> dict[str, Any]:
        """The verified claims; raises :class:`_Refused` (reason only, never the token)."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _Refused("not a JWS") from None
        alg = header.get("alg")
        if alg not in ALLOWED_ALGS:
            raise _Refused(f"algorithm {str(alg)[:10]!r} not accepted")
        typ = header.get("typ")
        if typ is not None and str(typ).lower() not in ACCESS_TOKEN_TYPES:
            raise _Refused("typ is not an access token's")
        jwk = self.keys.key_for(header.get("kid"))
        if jwk is None:
            raise _Refused("unknown signing key")
        stated = getattr(jwk, "_jwk_data", {}).get("alg")  # the JWK's own "alg" (PyJWK keeps no public copy)
        if jwk.key_type != _KEY_TYPE[alg[:2]] or stated not in (None, alg):
            raise _Refused("key does not match the algorithm")
        try:
            # jwk.key is the bare public key: the header's algorithm (checked above) is the one used.
            return jwt.decode(
                token,
                jwk.key,
                algorithms=[alg],
                issuer=self.issuer,
                audience=self.audiences,
                leeway=self.settings.leeway,
                options={"require": ["exp", "iss", "aud"], "verify_signature": True},
            )
        except jwt.PyJWTError as exc:
            raise _Refused(type(exc).__name__) from None

    def grant(self, claims: dict[str, Any]) -> Grant | None:
        return grant_from_claims(claims, self.settings)


def grant_from_claims(claims: dict[str, Any], settings: AuthSettings) -> Grant | None:
    """The Grant the sandbox's verifier would build from the same (already verified) claims."""
    client_id = claims.get("client_id") or claims.get("azp") or claims.get("sub")
    scope = claims.get("scope")
    if scope is None:
        scope = claims.get("scp")
    if isinstance(scope, list):
        scope = " ".join(str(s) for s in scope)
    if not isinstance(client_id, str) or not isinstance(scope, str):
        log.info("access token refused: no client_id or scope claim")
        return None
    try:
        expires = float(claims["exp"]) + settings.leeway
    except (KeyError, TypeError, ValueError):
        return None
    base = settings.audience.rstrip("/") + "/"
    user, organization = _relative(claims.get("fhirUser"), base), _relative(claims.get("organization"), base)
    if settings.require_organization and user is None and organization is None:
        # The consent gate lets such tokens through (they are the sandbox operator's own services);
        # from a real issuer the store cannot tell those from a client registered without its
        # organisation, so it fails closed (docs/consent-enforcement.md).
        log.info("access token refused: it names neither a user nor an organisation")
        return None
    return Grant.from_scope_string(
        client_id, scope, patient=_text(claims.get("patient")), user=user, organization=organization, expires=expires
    )


def _relative(value: Any, base: str) -> str | None:
    """``<this store's base>/Type/id`` -> ``Type/id``; other values as they are."""
    text = _text(value)
    if text is None:
        return None
    return text[len(base) :] if text.startswith(base) else text


class _Refused(Exception):
    """Why a token was refused (for the log; the client only learns ``invalid_token``)."""


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def build_verifier(
    settings: AuthSettings, *, introspect_url: str | None = None, introspect_client: str | None = None
) -> tuple[Any, dict[str, Any] | None]:
    """The verifier and the SMART configuration to serve; raises :class:`AuthConfigError`.

    With an explicit ``jwks_url`` or ``introspect_url`` discovery is still tried (for the SMART
    configuration) but not required. The JWKS is fetched once here, so a wrong URL stops the store
    at start-up, not at the first request. ``introspect_url`` (RFC 7662, token_introspection.py)
    replaces JWT checking: every token is asked about, with the client in ``introspect_client``.
    """
    doc = None
    try:
        doc = discover(settings.issuer, settings.discovery_url)
    except AuthConfigError:
        if not (settings.jwks_url or introspect_url):
            raise
    smart = smart_configuration(doc) if doc else None
    if introspect_url:
        from .token_introspection import IntrospectionVerifier, read_client

        if not introspect_client:
            raise AuthConfigError("--auth-introspect needs --auth-introspect-client FILE (client_id, client_secret)")
        client_id, secret = read_client(introspect_client)
        return IntrospectionVerifier(settings, introspect_url, client_id, secret), smart
    jwks_url = settings.jwks_url or (doc or {})["jwks_uri"]
    keys = KeySet(jwks_url, settings.refetch_interval)
    try:
        keys.load()
    except (PyJWKClientError, PyJWKSetError) as exc:
        raise AuthConfigError(f"cannot read the issuer's keys at {jwks_url} ({type(exc).__name__})") from None
    return JwtTokenVerifier(settings, keys), smart
