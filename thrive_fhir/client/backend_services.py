"""SMART Backend Services (client-credentials with a signed JWT assertion) for the sync worker.

Follows docs/design/smart-launch.md section 4 (BS-01..BS-09): RS384/ES384 assertion with ``kid``, ``iss = sub =
client_id``, ``aud`` = the token URL exactly as POSTed, a fresh ``jti`` every time, ``exp = now + 240``
and ``iat = now - 30`` (so a clock slightly ahead of the server's is tolerated and the window stays
under the 5 minutes servers allow). The token is cached and renewed ``max(60 s, 10 %)`` before it
expires; one lock makes parallel callers wait for a single fetch. Tokens never reach logs.
"""

from __future__ import annotations

import email.utils
import logging
import threading
import time
import uuid
from collections.abc import Callable

import jwt
import requests

from .fhir_http import TokenError
from .token_response import bounded_string, expires_in_seconds

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ALGORITHMS = ("RS384", "ES384")
ASSERTION_LIFETIME = 240
IAT_BACKDATE = 30
MAX_SKEW = 30.0

alerts = logging.getLogger("thrive_fhir.alerts")


def discover_token_url(
    fhir_base: str,
    *,
    alg: str = "RS384",
    pinned: str | None = None,
    session: requests.Session | None = None,
    timeout: float = 10.0,
) -> str:
    """BS-01: read ``.well-known/smart-configuration`` and check the server offers what we need.

    Raises :class:`TokenError` (and the worker refuses to start) when client_credentials,
    private_key_jwt or our algorithm is missing, or the token endpoint differs from the pinned one.
    """
    http = session or requests.Session()
    url = f"{fhir_base.rstrip('/')}/.well-known/smart-configuration"
    try:
        resp = http.get(url, headers={"Accept": "application/json"}, timeout=timeout, allow_redirects=False)
    except requests.RequestException as exc:
        raise TokenError("discovery-unreachable", type(exc).__name__) from None
    if resp.status_code != 200:
        raise TokenError("discovery-failed", f"HTTP {resp.status_code}")
    try:
        doc = resp.json()
    except ValueError:
        raise TokenError("discovery-failed", "not JSON") from None
    problems = []
    if "client_credentials" not in (doc.get("grant_types_supported") or []):
        problems.append("client_credentials grant not supported")
    if "private_key_jwt" not in (doc.get("token_endpoint_auth_methods_supported") or []):
        problems.append("private_key_jwt not supported")
    if alg not in (doc.get("token_endpoint_auth_signing_alg_values_supported") or []):
        problems.append(f"{alg} not supported")
    token_url = doc.get("token_endpoint")
    if not token_url:
        problems.append("no token_endpoint")
    elif pinned and token_url != pinned:
        problems.append("token_endpoint differs from the configured one")
    if problems:
        alerts.error("backend_services_discovery_refused", extra={"problems": problems})
        raise TokenError("discovery-refused", "; ".join(problems))
    return token_url


class BackendServicesAuth:
    """Cached access token from a SMART Backend Services token endpoint (an ``Auth`` for FhirClient)."""

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        private_key_pem: bytes | str,
        kid: str,
        alg: str = "RS384",
        scope: str = "system/*.rs system/*.cu",
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
        timeout: tuple[float, float] = (5.0, 30.0),
        min_failure_backoff: float = 60.0,
    ):
        if alg not in ALGORITHMS:
            raise ValueError(f"alg must be one of {ALGORITHMS} (SMART Backend Services)")
        if not kid:
            raise ValueError("kid is required: servers pick the key to verify with by kid")
        self.token_url = token_url
        self.client_id = client_id
        self._key = private_key_pem
        self.kid = kid
        self.alg = alg
        self.scope = scope
        self.session = session or requests.Session()
        self.clock = clock
        self.timeout = timeout
        self.min_failure_backoff = min_failure_backoff
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0
        self._blocked_until = 0.0
        self._failures = 0
        self.requests_made = 0  # token requests sent (for tests and metrics)

    def __repr__(self) -> str:
        return f"BackendServicesAuth(client_id={self.client_id!r}, token_url={self.token_url!r})"

    # --- assertion -----------------------------------------------------------------------------
    def assertion(self) -> str:
        """A freshly signed client assertion (BS-02, BS-03)."""
        now = int(self.clock())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.token_url,
            "jti": str(uuid.uuid4()),
            "iat": now - IAT_BACKDATE,
            "exp": now + ASSERTION_LIFETIME,
        }
        return jwt.encode(claims, self._key, algorithm=self.alg, headers={"kid": self.kid, "typ": "JWT"})

    # --- token cache ---------------------------------------------------------------------------
    def header(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token()}"}

    def invalidate(self) -> None:
        """Drop the cached token (the FHIR server answered 401)."""
        with self._lock:
            self._token = None
            self._renew_at = 0.0

    def token(self) -> str:
        """The cached token, fetching a new one (once, for all waiting threads) when due."""
        with self._lock:
            now = self.clock()
            if self._token and now < self._renew_at:
                return self._token
            if now < self._blocked_until:
                raise TokenError(
                    "backoff", f"token endpoint refused us; next try in {int(self._blocked_until - now)} s"
                )
            try:
                token, lifetime = self._fetch()
            except TokenError:
                self._failures += 1
                self._blocked_until = self.clock() + min(self.min_failure_backoff * 2 ** (self._failures - 1), 900)
                raise
            self._failures = 0
            self._blocked_until = 0.0
            now = self.clock()
            self._token = token
            self._renew_at = now + lifetime - max(60.0, 0.1 * lifetime)
            return token

    def _fetch(self) -> tuple[str, float]:
        form = {
            "grant_type": "client_credentials",
            "scope": self.scope,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": self.assertion(),
        }
        self.requests_made += 1
        try:
            resp = self.session.post(
                self.token_url,
                data=form,
                headers={"Accept": "application/json"},
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise TokenError("token-endpoint-unreachable", type(exc).__name__) from None
        self._check_clock(resp.headers.get("Date"))
        try:
            doc = resp.json()
        except ValueError:
            doc = {}
        if not isinstance(doc, dict):  # every member below is the token server's word: check each
            doc = {}
        if resp.status_code != 200:
            error = bounded_string(doc.get("error"), 64) or f"HTTP {resp.status_code}"
            alerts.error("backend_services_token_refused", extra={"error": error, "http_status": resp.status_code})
            raise TokenError("token-refused", error)
        token = bounded_string(doc.get("access_token"))
        token_type = doc.get("token_type")
        if token is None or not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise TokenError("token-response-invalid", "no bearer access_token")
        granted = set((bounded_string(doc.get("scope")) or self.scope).split())
        missing = sorted(set(self.scope.split()) - granted)
        if missing:
            # BS-05: do not write with less than we need; stop and say so.
            alerts.error("backend_services_scope_not_granted", extra={"missing": missing})
            raise TokenError("scope-not-granted", " ".join(missing))
        return token, float(expires_in_seconds(doc.get("expires_in")))

    def _check_clock(self, date_header: str | None) -> None:
        """BS-07: alert when the token server's clock and ours differ by more than 30 s."""
        if not date_header:
            return
        try:
            server = email.utils.parsedate_to_datetime(date_header).timestamp()
        except (TypeError, ValueError):
            return
        skew = self.clock() - server
        if abs(skew) > MAX_SKEW:
            alerts.warning("clock_skew", extra={"skew_seconds": round(skew, 1)})
