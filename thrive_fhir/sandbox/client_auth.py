"""Client authentication at the token and introspection endpoints.

Three methods, as SMART App Launch 2.2 defines them: ``private_key_jwt`` (asymmetric, our default
and the only one allowed for Backend Services), ``client_secret_basic`` (symmetric) and public
clients (``client_id`` in the body, no secret). Each check mirrors what Inferno's client suite
verifies (docs/design/smart-launch.md section 7) but rejects at request time with ``invalid_client``,
because a permissive mock would let a broken client pass its tests.
"""

from __future__ import annotations

import base64
import hmac
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_plus

import jwt
import requests

from .errors import invalid_client, invalid_request
from .registry import Client, Registry

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: SAL client-confidential-asymmetric: servers SHALL support RS384 and ES384; RS256 is refused.
ASSERTION_ALGS = ("RS384", "ES384")
#: SAL: the assertion's ``exp`` SHALL be no more than five minutes in the future.
MAX_ASSERTION_LIFETIME = 300
#: Tolerated clock skew for ``exp``/``iat`` in the past or future.
CLOCK_SKEW = 30
JWKS_CACHE_SECONDS = 300


class JtiCache:
    """Assertion ids seen per client, kept until the assertion expires (replay protection); with a
    ``state_mirror`` also across a restart of the sandbox."""

    def __init__(self, clock: Callable[[], float], state_mirror: Any = None) -> None:
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self._clock = clock
        self._store = state_mirror
        if state_mirror is not None:
            for key, data, exp in state_mirror.load("jti", clock()):
                self._seen[(data["client_id"], data["jti"])] = exp

    def first_use(self, client_id: str, jti: str, exp: float) -> bool:
        """Record ``jti``; False if it was already used and has not expired yet."""
        now = self._clock()
        with self._lock:
            for key in [k for k, e in self._seen.items() if e + CLOCK_SKEW < now]:
                del self._seen[key]
            if (client_id, jti) in self._seen:
                return False
            self._seen[(client_id, jti)] = exp
            if self._store is not None:
                self._store.put("jti", f"{client_id} {jti}"[:512], {"client_id": client_id, "jti": jti}, exp)
            return True


class JwksFetcher:
    """Client JWK Sets registered by URL, cached briefly and refetched once on an unknown kid."""

    def __init__(self, clock: Callable[[], float], get: Callable[..., Any] = requests.get) -> None:
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._clock = clock
        self._get = get

    def fetch(self, uri: str, *, force: bool = False) -> dict[str, Any]:
        with self._lock:
            hit = self._cache.get(uri)
            if hit and not force and hit[0] > self._clock():
                return hit[1]
        try:
            resp = self._get(uri, timeout=5, allow_redirects=False, headers={"Accept": "application/json"})
            resp.raise_for_status()
            data = resp.json()
        except (requests.RequestException, ValueError):
            raise invalid_client("the client's registered JWKS URL could not be fetched") from None
        if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
            raise invalid_client("the client's registered JWKS URL did not return a JWK Set")
        with self._lock:
            self._cache[uri] = (self._clock() + JWKS_CACHE_SECONDS, data)
        return data


class ClientAuthenticator:
    """Works out which registered client made a token/introspection request, or refuses it."""

    def __init__(
        self,
        registry: Registry,
        token_endpoint: str,
        clock: Callable[[], float],
        jwks_fetcher: JwksFetcher | None = None,
        state_mirror: Any = None,
    ) -> None:
        self.registry = registry
        self.token_endpoint = token_endpoint
        self.clock = clock
        self.jtis = JtiCache(clock, state_mirror)
        self.jwks = jwks_fetcher or JwksFetcher(clock)

    def authenticate(self, authorization: str | None, form: dict[str, str]) -> Client:
        basic = bool(authorization and authorization[:6].lower() == "basic ")
        assertion = "client_assertion" in form or "client_assertion_type" in form
        body_secret = "client_secret" in form
        if sum((basic, assertion, body_secret)) > 1:
            raise invalid_request("use exactly one client authentication method")
        if authorization and not basic:
            raise invalid_client("unsupported Authorization scheme at the token endpoint")
        if body_secret:
            # client_secret_post is not offered: SAL symmetric clients use HTTP Basic (EL-13).
            raise invalid_client("send the client secret with HTTP Basic, not in the body")
        if basic:
            return self._basic(authorization or "", form)
        if assertion:
            return self._assertion(form)
        return self._public(form)

    # -- methods ---------------------------------------------------------------------------------

    def _basic(self, authorization: str, form: dict[str, str]) -> Client:
        try:
            raw = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
            user, secret = raw.split(":", 1)
        except (ValueError, UnicodeDecodeError):
            raise invalid_client("malformed HTTP Basic credentials") from None
        # RFC 6749 2.3.1: both parts are form-urlencoded before base64 (Epic does this).
        client_id, secret = unquote_plus(user), unquote_plus(secret)
        client = self.registry.client(client_id)
        if client is None:
            raise invalid_client("unknown client_id")
        if form.get("client_id") not in (None, client_id):
            raise invalid_request("client_id in the body differs from the authenticated client")
        if client.auth != "client_secret_basic" or not client.client_secret:
            raise invalid_client("this client is not registered for client_secret_basic")
        if not hmac.compare_digest(secret.encode(), client.client_secret.encode()):
            raise invalid_client("client authentication failed")
        return client

    def _public(self, form: dict[str, str]) -> Client:
        client = self.registry.client(form.get("client_id"))
        if client is None:
            raise invalid_client("unknown or missing client_id")
        if client.auth != "none":
            raise invalid_client("client authentication is required for this client")
        return client

    def _assertion(self, form: dict[str, str]) -> Client:
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise invalid_client(f"client_assertion_type must be {ASSERTION_TYPE}")
        token = form.get("client_assertion") or ""
        if not token:
            raise invalid_request("client_assertion is missing")
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise invalid_client("client_assertion is not a well-formed JWT") from None
        alg = header.get("alg")
        if alg not in ASSERTION_ALGS:
            raise invalid_client(f"client_assertion alg {alg!r} is not allowed; use RS384 or ES384")
        if header.get("typ") != "JWT":
            raise invalid_client("client_assertion header typ must be JWT")
        kid = header.get("kid")
        if not kid:
            raise invalid_client("client_assertion header has no kid")
        iss, sub = unverified.get("iss"), unverified.get("sub")
        if not iss or iss != sub:
            raise invalid_client("client_assertion iss and sub must both equal the client_id")
        client = self.registry.client(iss)
        if client is None:
            raise invalid_client("unknown client_id")
        if "client_id" in form:
            raise invalid_request("omit client_id when authenticating with a client assertion")
        if client.auth != "private_key_jwt":
            raise invalid_client("this client is not registered for private_key_jwt")
        jku = header.get("jku")
        if jku is not None and jku != client.jwks_uri:
            raise invalid_client("client_assertion jku is not the registered JWKS URL")
        key = self._key_for(client, kid, alg)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self.token_endpoint,
                issuer=client.client_id,
                leeway=CLOCK_SKEW,
                options={"require": ["iss", "sub", "aud", "exp", "jti"], "verify_iat": False},
            )
        except jwt.ExpiredSignatureError:
            raise invalid_client("client_assertion has expired") from None
        except jwt.InvalidAudienceError:
            raise invalid_client("client_assertion aud must be the token endpoint URL") from None
        except jwt.MissingRequiredClaimError as exc:
            raise invalid_client(f"client_assertion lacks the {exc.claim} claim") from None
        except jwt.PyJWTError:
            raise invalid_client("client_assertion signature or claims are invalid") from None
        now = self.clock()
        exp = claims["exp"]
        if not isinstance(exp, (int, float)) or exp - now > MAX_ASSERTION_LIFETIME + CLOCK_SKEW:
            raise invalid_client("client_assertion exp is more than five minutes in the future")
        if exp + CLOCK_SKEW < now:
            raise invalid_client("client_assertion has expired")
        iat = claims.get("iat")
        if isinstance(iat, (int, float)) and iat > now + CLOCK_SKEW:
            raise invalid_client("client_assertion iat is in the future")
        jti = claims["jti"]
        if not isinstance(jti, str) or not jti or len(jti) > 255:
            raise invalid_client("client_assertion jti must be a non-empty string")
        if not self.jtis.first_use(client.client_id, jti, exp):
            raise invalid_client("client_assertion jti has already been used")
        return client

    def _key_for(self, client: Client, kid: str, alg: str) -> Any:
        def find(jwks: dict[str, Any]) -> dict[str, Any] | None:
            return next((k for k in jwks.get("keys", []) if k.get("kid") == kid), None)

        jwk = None
        if client.jwks:
            jwk = find(client.jwks)
        if jwk is None and client.jwks_uri:
            jwk = find(self.jwks.fetch(client.jwks_uri))
            if jwk is None:  # the client may have rotated its keys: refetch once
                jwk = find(self.jwks.fetch(client.jwks_uri, force=True))
        if jwk is None:
            raise invalid_client("client_assertion kid does not match a registered key")
        try:
            return jwt.PyJWK(jwk, algorithm=alg).key
        except (jwt.PyJWTError, KeyError, TypeError, ValueError):  # a malformed JWK in a fetched set
            raise invalid_client("the registered key does not fit the assertion's alg") from None
