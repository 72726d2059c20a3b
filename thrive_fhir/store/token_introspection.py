"""Verify bearer tokens by asking the authorization server (OAuth 2.0 Token Introspection, RFC 7662).

Why: some authorization servers issue opaque access tokens, which the store cannot check from keys
(token_verification.py does JWTs). With ``--auth-introspect URL`` every token is posted to the
issuer's introspection endpoint, the store authenticating as a confidential client with
``client_secret_basic`` (id and secret from a TOML file: secrets come only from files). The answer's
claims become the same Grant as a JWT's (:func:`token_verification.grant_from_claims`).

An answer is accepted only when ``active`` is true, ``token_type`` (if given) is an access token's
(the sandbox answers refresh tokens too), ``iss`` (if given) is the issuer, ``aud`` names this store
and ``exp`` is in the future. Accepted answers are cached for at most ``ttl`` seconds (and never past
``exp``) under the SHA-256 of the token, so a busy client costs one introspection per ``ttl``; a
token revoked at the issuer keeps working for at most that long. Refusals are not cached, and an
unreachable endpoint refuses (401) rather than guessing.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import requests

from ..smart_scopes import Grant
from .token_verification import AuthConfigError, AuthSettings, grant_from_claims

log = logging.getLogger("thrive_fhir.store.auth")

DEFAULT_TTL = 30.0
#: Cached answers kept at most; beyond it the cache is emptied (a flood of distinct tokens).
MAX_CACHED = 10_000
ACCESS_TOKEN_TYPES = frozenset({"bearer", "access_token", "urn:ietf:params:oauth:token-type:access_token"})


def read_client(path: str | Path) -> tuple[str, str]:
    """``client_id`` and ``client_secret`` from a TOML file; AuthConfigError when unusable."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise AuthConfigError(f"cannot read the introspection client file {path} ({exc.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        raise AuthConfigError(f"the introspection client file {path} is not TOML") from None
    client_id, secret = data.get("client_id"), data.get("client_secret")
    if not isinstance(client_id, str) or not client_id or not isinstance(secret, str) or not secret:
        raise AuthConfigError(f"the introspection client file {path} needs client_id and client_secret")
    return client_id, secret


class IntrospectionVerifier:
    """``token_verifier`` for :func:`thrive_fhir.store.create_app` backed by RFC 7662 introspection."""

    def __init__(
        self,
        settings: AuthSettings,
        url: str,
        client_id: str,
        client_secret: str,
        *,
        ttl: float = DEFAULT_TTL,
        timeout: float = 10.0,
    ) -> None:
        self.settings = settings
        self.url = url
        # RFC 6749 2.3.1: id and secret are form-urlencoded before they go into HTTP Basic.
        self.auth = (quote_plus(client_id), quote_plus(client_secret))
        self.ttl = ttl
        self.timeout = timeout
        aud = settings.audience.rstrip("/")
        self.audiences = {aud, aud + "/"}
        self.session = requests.Session()
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[Grant, float]] = {}

    def __call__(self, token: str) -> Grant | None:
        key = hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
        now = time.time()
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and hit[1] > now:
            return hit[0]
        claims = self._introspect(token)
        if claims is None:
            return None
        grant = grant_from_claims(claims, self.settings)
        if grant is not None:
            until = min(now + self.ttl, float(claims["exp"]))
            with self._lock:
                if len(self._cache) >= MAX_CACHED:
                    self._cache.clear()
                self._cache[key] = (grant, until)
        return grant

    def _introspect(self, token: str) -> dict[str, Any] | None:
        try:
            resp = self.session.post(
                self.url,
                data={"token": token, "token_type_hint": "access_token"},
                auth=self.auth,
                headers={"Accept": "application/json"},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            log.warning("token introspection failed (%s)", type(exc).__name__)
            return None
        if resp.status_code != 200:
            log.warning("token introspection answered HTTP %s", resp.status_code)
            return None
        try:
            claims = resp.json()
        except ValueError:
            log.warning("token introspection answered something other than JSON")
            return None
        reason = self._refusal(claims)
        if reason:
            log.info("access token refused: %s", reason)
            return None
        return claims

    def _refusal(self, claims: Any) -> str | None:
        if not isinstance(claims, dict) or claims.get("active") is not True:
            return "not active"
        token_type = claims.get("token_type")
        if token_type is not None and str(token_type).lower() not in ACCESS_TOKEN_TYPES:
            return "not an access token"
        iss = claims.get("iss")
        if iss is not None and str(iss).rstrip("/") != self.settings.issuer.rstrip("/"):
            return "another issuer"
        aud = claims.get("aud")
        auds = aud if isinstance(aud, list) else [aud]
        if not self.audiences & {a for a in auds if isinstance(a, str)}:
            return "not for this store (aud)"
        now, leeway = time.time(), self.settings.leeway
        exp, nbf = claims.get("exp"), claims.get("nbf")
        if not isinstance(exp, (int, float)) or exp + leeway <= now:
            return "expired or no exp"
        if isinstance(nbf, (int, float)) and nbf - leeway > now:
            return "not yet valid"
        return None
