"""SMART App Launch 2.2 client for the clinician app: discovery, PKCE, the authorize URL, the code
exchange, id_token validation and refresh (docs/design/smart-launch.md sections 1-3, 5).

HTTP rules that apply to every call here: TLS verified, explicit timeout, redirects never followed
(a redirect could carry a code or client credentials somewhere unpinned), and no secret in any
exception message (callers show a correlation id instead). Everything an EHR sends back — discovery
documents, token responses, id_tokens — is treated as hostile input: type-checked, bounded, and
turned into plain-words :class:`SmartError` messages (never an exception class name).

The EHR registration passed in is anything shaped like :class:`Registration` (the app's registry
entry for one EHR).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import logging
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, urlencode, urljoin, urlsplit

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .fhir_http import is_fhir_id
from .token_response import MAX_TOKEN_LENGTH, bounded_string, expires_in_seconds

log = logging.getLogger(__name__)

TIMEOUT = (5, 15)
DISCOVERY_TTL = 3600
OAUTH_URIS_EXT = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
ID_TOKEN_ALGS = ["RS256", "RS384", "ES256", "ES384"]
#: fhirUser resource types (EL-17 step 5).
FHIR_USER_TYPES = ("Practitioner", "PractitionerRole", "Patient", "RelatedPerson", "Person")


class Registration(Protocol):
    """What this client needs to know about one EHR it is registered with."""

    @property
    def iss(self) -> str: ...
    @property
    def client_id(self) -> str: ...
    @property
    def auth_method(self) -> str: ...  # private_key_jwt | client_secret_basic | public
    @property
    def private_key_file(self) -> str | None: ...
    @property
    def key_id(self) -> str | None: ...
    @property
    def client_secret(self) -> str | None: ...
    @property
    def oidc_issuer(self) -> str | None: ...  # the id_token issuer pinned for the EHR (EL-17)
    @property
    def epic_client_id_header(self) -> bool: ...  # Epic: name the client to /metadata

    def url_allowed(self, url: str, *, pinned: bool) -> bool:
        """``url`` may be used for this EHR; ``pinned``: it is on one of the EHR's pinned origins."""
        ...


class SmartError(Exception):
    """A launch step failed. ``kind`` picks the page the user sees; the message never holds secrets.

    kinds: ``discovery`` (502), ``config`` (502: EHR rejected our setup), ``denied`` (403),
    ``invalid_grant`` (401, relaunch), ``unavailable`` (502, EHR did not respond), ``id_token`` (401),
    ``context`` (502: the token response named a patient the app cannot use).
    """

    def __init__(self, kind: str, message: str, *, error_uri: str | None = None):
        super().__init__(message)
        self.kind = kind
        self.error_uri = error_uri


# --- PKCE / state (EL-07, EL-08) ---------------------------------------------------------------
def new_state() -> str:
    return secrets.token_urlsafe(32)


def new_code_verifier() -> str:
    return secrets.token_urlsafe(64)


def code_challenge(verifier: str) -> str:
    """``base64url(SHA-256(verifier))`` without padding (RFC 7636 S256)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


# --- discovery (EL-03, EL-04) ------------------------------------------------------------------
@dataclass(frozen=True)
class SmartConfiguration:
    authorization_endpoint: str
    token_endpoint: str
    issuer: str | None = None
    jwks_uri: str | None = None
    code_challenge_methods: tuple[str, ...] | None = None
    capabilities: tuple[str, ...] = ()


class SmartClient:
    """Stateless SMART operations plus a per-iss discovery cache. One per app process."""

    def __init__(self, http: requests.Session | None = None):
        self.http = http or requests.Session()
        self._cache: dict[str, tuple[float, SmartConfiguration]] = {}
        self._jwks_cache: dict[str, tuple[float, dict]] = {}
        self._keys: dict[str, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey] = {}
        self._lock = threading.Lock()

    # -- HTTP helper -----------------------------------------------------------------------------
    def _get(self, url: str, accept: str, headers: dict | None = None) -> requests.Response:
        return self.http.get(url, headers={"Accept": accept, **(headers or {})}, timeout=TIMEOUT, allow_redirects=False)

    def discover(self, reg: Registration) -> SmartConfiguration:
        """``.well-known/smart-configuration``, falling back to ``/metadata``; endpoints pinned."""
        iss = reg.iss
        with self._lock:
            cached = self._cache.get(iss)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        base = iss.rstrip("/")
        conf = None
        try:
            resp = self._get(f"{base}/.well-known/smart-configuration", "application/json")
            if resp.status_code == 200:
                conf = self._from_well_known(resp.json(), iss)
        except (requests.RequestException, ValueError):
            conf = None
        if conf is None:
            # Epic: /metadata may need the Epic-Client-ID header to list the endpoints registered for
            # this client (fhir.epic.com/Documentation?docId=oauth2, "Step 2"). It names our client
            # to the server, so it goes only to EHRs registered as needing it.
            headers = {"Epic-Client-ID": reg.client_id} if getattr(reg, "epic_client_id_header", False) else None
            try:
                resp = self._get(f"{base}/metadata", "application/fhir+json", headers=headers)
                if resp.status_code == 200:
                    conf = self._from_capability(resp.json(), iss)
            except (requests.RequestException, ValueError):
                conf = None
            if conf is not None:
                conf = self._with_pinned_oidc(reg, conf)
        if conf is None:
            raise SmartError("discovery", "EHR configuration unavailable, try again later")
        pinned_issuer = getattr(reg, "oidc_issuer", None)
        if pinned_issuer and conf.issuer not in (None, pinned_issuer):
            raise SmartError("discovery", "EHR configuration names an unregistered identity issuer")
        if pinned_issuer and conf.issuer is None:
            # Discovery names no issuer: the id_token must then come from the pinned one (EL-17).
            if conf.jwks_uri:
                conf = dataclasses.replace(conf, issuer=pinned_issuer)
            else:
                conf = self._with_pinned_oidc(reg, conf)
        for url in (conf.authorization_endpoint, conf.token_endpoint):
            if not reg.url_allowed(url, pinned=True):
                raise SmartError("discovery", "EHR configuration points at an unregistered server")
        if conf.code_challenge_methods is not None and "S256" not in conf.code_challenge_methods:
            raise SmartError("discovery", "EHR does not support PKCE S256")
        with self._lock:
            self._cache[iss] = (time.monotonic() + DISCOVERY_TTL, conf)
        return conf

    @staticmethod
    def _from_well_known(doc: Any, iss: str) -> SmartConfiguration | None:
        if not isinstance(doc, dict):
            return None
        auth, token = doc.get("authorization_endpoint"), doc.get("token_endpoint")
        if not isinstance(auth, str) or not isinstance(token, str) or not auth or not token:
            return None
        base = iss if iss.endswith("/") else iss + "/"
        methods = doc.get("code_challenge_methods_supported")
        return SmartConfiguration(
            authorization_endpoint=urljoin(base, auth),
            token_endpoint=urljoin(base, token),
            issuer=doc.get("issuer") if isinstance(doc.get("issuer"), str) else None,
            jwks_uri=urljoin(base, doc["jwks_uri"]) if isinstance(doc.get("jwks_uri"), str) else None,
            code_challenge_methods=tuple(methods) if isinstance(methods, list) else None,
            capabilities=tuple(c for c in doc.get("capabilities", []) if isinstance(c, str)),
        )

    def _with_pinned_oidc(self, reg: Registration, conf: SmartConfiguration) -> SmartConfiguration:
        """The CapabilityStatement names no id_token issuer or JWKS URL, so after the /metadata
        fallback (EL-04) take both from the OIDC issuer pinned for this EHR in the registry
        (EL-17 step 2). Without a pin the id_token cannot be checked and the launch stops there."""
        issuer = getattr(reg, "oidc_issuer", None)
        if not issuer:
            return conf
        url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        if not reg.url_allowed(url, pinned=True):
            return conf
        try:
            resp = self._get(url, "application/json")
            doc = resp.json() if resp.status_code == 200 else None
        except (requests.RequestException, ValueError):
            doc = None
        if not isinstance(doc, dict) or doc.get("issuer") != issuer or not isinstance(doc.get("jwks_uri"), str):
            return conf
        return dataclasses.replace(conf, issuer=issuer, jwks_uri=urljoin(url, doc["jwks_uri"]))

    @staticmethod
    def _from_capability(doc: Any, iss: str) -> SmartConfiguration | None:
        if not isinstance(doc, dict) or doc.get("resourceType") != "CapabilityStatement":
            return None
        base = iss if iss.endswith("/") else iss + "/"
        for rest in doc.get("rest", []) or []:
            for ext in (rest.get("security") or {}).get("extension") or []:
                if ext.get("url") != OAUTH_URIS_EXT:
                    continue
                uris = {e.get("url"): e.get("valueUri") for e in ext.get("extension", [])}
                if uris.get("authorize") and uris.get("token"):
                    return SmartConfiguration(
                        authorization_endpoint=urljoin(base, uris["authorize"]),
                        token_endpoint=urljoin(base, uris["token"]),
                    )
        return None

    # -- authorize (EL-06, SA-02) --------------------------------------------------------------
    @staticmethod
    def authorize_url(
        conf: SmartConfiguration,
        *,
        client_id: str,
        redirect_uri: str,
        scope: str,
        state: str,
        aud: str,
        code_verifier: str,
        nonce: str,
        launch: str | None = None,
    ) -> str:
        params = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": scope,
            "state": state,
            "aud": aud,  # exactly the iss as received: no slash or case changes
            "code_challenge": code_challenge(code_verifier),
            "code_challenge_method": "S256",
            "nonce": nonce,
        }
        if launch is not None:
            params["launch"] = launch
        sep = "&" if urlsplit(conf.authorization_endpoint).query else "?"
        return conf.authorization_endpoint + sep + urlencode(params)

    # -- token endpoint (EL-11..EL-15) -----------------------------------------------------------
    def client_assertion(self, reg: Registration, token_endpoint: str) -> str:
        """A private_key_jwt assertion: RS384/ES384, ``kid``, exp ≤ 5 min, fresh ``jti`` (BS-02/03)."""
        if not reg.private_key_file:
            raise SmartError("config", "This EHR registration has no private key file.")
        key = self._keys.get(reg.private_key_file)
        if key is None:  # parse once per process; the key file does not change while running
            with open(reg.private_key_file, "rb") as fh:
                loaded = serialization.load_pem_private_key(fh.read(), password=None)
            if not isinstance(loaded, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
                raise SmartError("config", "The app's private key is neither RSA nor EC (RS384/ES384).")
            key = self._keys[reg.private_key_file] = loaded
        alg = "ES384" if isinstance(key, ec.EllipticCurvePrivateKey) else "RS384"
        now = int(time.time())
        claims = {
            "iss": reg.client_id,
            "sub": reg.client_id,
            "aud": token_endpoint,
            "jti": str(uuid.uuid4()),
            "iat": now - 30,
            "exp": now + 240,
        }
        headers = {"typ": "JWT"}
        if reg.key_id:
            headers["kid"] = reg.key_id
        return jwt.encode(claims, key, algorithm=alg, headers=headers)

    def _token_request(self, reg: Registration, token_endpoint: str, form: dict[str, str]) -> dict:
        headers = {"Accept": "application/json"}
        auth = None
        form = dict(form)
        if reg.auth_method == "private_key_jwt":
            form["client_assertion_type"] = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
            form["client_assertion"] = self.client_assertion(reg, token_endpoint)
        elif reg.auth_method == "client_secret_basic":
            # RFC 6749 2.3.1 (Epic does this): both parts URL-encoded before Basic encoding.
            pair = f"{quote(reg.client_id, safe='')}:{quote(reg.client_secret or '', safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form["client_id"] = reg.client_id
        try:
            resp = self.http.post(
                token_endpoint, data=form, headers=headers, auth=auth, timeout=TIMEOUT, allow_redirects=False
            )
        except requests.RequestException:
            raise SmartError("unavailable", "The EHR did not respond. Relaunch to try again.") from None
        try:
            body = resp.json()
        except ValueError:
            body = None
        if resp.status_code >= 500 or (resp.status_code != 200 and not isinstance(body, dict)):
            raise SmartError("unavailable", "The EHR did not respond. Relaunch to try again.")
        if resp.status_code != 200:
            error = body.get("error") if isinstance(body, dict) else None
            if error == "invalid_grant":
                raise SmartError("invalid_grant", "The sign-in has expired or was already used.")
            raise SmartError("config", "The EHR rejected this app's setup.")
        if not isinstance(body, dict):
            raise SmartError("unavailable", "The EHR sent an unreadable answer.")
        return body

    def exchange_code(
        self,
        reg: Registration,
        *,
        token_endpoint: str,
        code: str,
        redirect_uri: str,
        code_verifier: str,
        requested_scope: str,
    ) -> dict:
        """Swap the code for tokens (stored endpoint/redirect/verifier only, EL-10). Validates the
        envelope (EL-15) and fills ``scope`` from the request when the server omits it."""
        body = self._token_request(
            reg,
            token_endpoint,
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": code_verifier,
            },
        )
        return self._check_token_response(body, requested_scope)

    def refresh(self, reg: Registration, *, token_endpoint: str, refresh_token: str) -> dict:
        """One refresh-token grant, no ``scope`` (TS-08). Caller serialises and stores the result."""
        body = self._token_request(reg, token_endpoint, {"grant_type": "refresh_token", "refresh_token": refresh_token})
        return self._check_token_response(body, None, launch_context=False)

    @staticmethod
    def _check_token_response(body: dict, requested_scope: str | None, *, launch_context: bool = True) -> dict:
        """The token response, cleaned. Every member is another server's word, so each one the app
        uses is type-checked and bounded here, and only those are returned (EL-15, EL-16):
        ``access_token``, ``expires_in`` (seconds, 1..MAX_EXPIRES_IN), ``scope``, ``refresh_token``,
        ``id_token``, and with ``launch_context`` ``patient``, ``encounter`` (FHIR ids, or None) and
        ``need_patient_banner`` (bool). A patient id that breaks the FHIR id rule stops the launch:
        it would otherwise go into a URL with our bearer token."""
        token = bounded_string(body.get("access_token"))
        if token is None:
            raise SmartError("unavailable", "The EHR sent no usable access token.")
        token_type = body.get("token_type")
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise SmartError("config", "The EHR sent an unsupported token type.")
        clean: dict[str, Any] = {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": expires_in_seconds(body.get("expires_in")),
        }
        scope = body.get("scope")
        if isinstance(scope, str) and len(scope) <= MAX_TOKEN_LENGTH:
            clean["scope"] = scope
        elif requested_scope is not None:
            log.warning("token response had no usable scope; assuming the requested scope (RFC 6749 5.1)")
            clean["scope"] = requested_scope
        for name in ("refresh_token", "id_token"):
            clean[name] = bounded_string(body.get(name))
        if not launch_context:
            return clean
        patient = body.get("patient")
        if patient is None or patient == "":
            clean["patient"] = None
        elif is_fhir_id(patient):
            clean["patient"] = patient
        else:
            raise SmartError(
                "context", "The EHR named the young person with an id the app cannot use, so nothing was read or saved."
            )
        encounter = body.get("encounter")
        if encounter not in (None, "") and not is_fhir_id(encounter):
            log.warning("token response encounter is not a FHIR id; ignored")
        clean["encounter"] = encounter if is_fhir_id(encounter) else None
        banner = body.get("need_patient_banner")
        clean["need_patient_banner"] = banner if isinstance(banner, bool) else True
        return clean

    # -- id_token (EL-17) ---------------------------------------------------------------------
    def _jwks(self, reg: Registration, jwks_uri: str, *, force: bool = False) -> dict:
        with self._lock:
            cached = self._jwks_cache.get(jwks_uri)
        if cached and cached[0] > time.monotonic() and not force:
            return cached[1]
        if not reg.url_allowed(jwks_uri, pinned=True):
            raise SmartError("id_token", "The EHR's signing keys are on an unregistered server.")
        try:
            resp = self._get(jwks_uri, "application/json")
            doc = resp.json() if resp.status_code == 200 else None
        except (requests.RequestException, ValueError):
            doc = None
        if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
            raise SmartError("id_token", "Could not read the EHR's signing keys.")
        with self._lock:
            self._jwks_cache[jwks_uri] = (time.monotonic() + DISCOVERY_TTL, doc)
        return doc

    def validate_id_token(
        self, reg: Registration, id_token: str, *, issuer: str | None, jwks_uri: str | None, nonce: str
    ) -> dict:
        """Signature (JWKS by ``kid``; a lone key when ``kid`` is absent), ``iss`` = ``issuer``
        (required: discovery's or the pinned one), ``aud`` = client_id (several audiences only with
        ``azp`` = client_id), ``exp``/``iat``, ``sub``, ``nonce``. Returns the claims."""
        if not issuer:
            # Without an expected issuer any server holding a key in the JWKS could vouch for users.
            raise SmartError(
                "id_token",
                "The EHR does not say which service issues its identity tokens, so the app cannot check who you are.",
            )
        if not jwks_uri:
            raise SmartError("id_token", "The EHR does not publish signing keys for its id_token.")
        if not isinstance(id_token, str) or len(id_token) > MAX_TOKEN_LENGTH:
            raise SmartError("id_token", "The EHR sent an unreadable identity token.")
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError:
            raise SmartError("id_token", "The EHR sent an unreadable identity token.") from None
        if header.get("alg") not in ID_TOKEN_ALGS:
            raise SmartError("id_token", "The identity token uses an algorithm we do not accept.")
        kid = header.get("kid")
        kty = "EC" if header["alg"].startswith("ES") else "RSA"

        def pick(doc: dict):
            keys = [
                k for k in doc["keys"] if isinstance(k, dict) and k.get("use", "sig") == "sig" and k.get("kty") == kty
            ]
            if kid is not None:
                keys = [k for k in keys if k.get("kid") == kid]
            # No kid (LAUNCHER): only a lone signing key of the right type is acceptable (EL-17 step 3).
            return keys[0] if len(keys) == 1 else None

        def decode(jwk: dict) -> dict:
            return jwt.decode(
                id_token,
                jwt.PyJWK(jwk).key,
                algorithms=[header["alg"]],
                audience=reg.client_id,
                issuer=issuer,
                options={"require": ["exp", "iat", "sub", "aud", "iss"]},
                leeway=60,
            )

        refetched = False
        jwk = pick(self._jwks(reg, jwks_uri))
        if jwk is None:
            jwk = pick(self._jwks(reg, jwks_uri, force=True))  # key rotation: refetch once
            refetched = True
        if jwk is None:
            if kid is None:
                raise SmartError(
                    "id_token",
                    "The identity token does not say which of the EHR's signing keys "
                    "was used, and the EHR publishes more than one.",
                )
            raise SmartError("id_token", "The identity token was signed with an unknown key.")
        try:
            try:
                claims = decode(jwk)
            except jwt.InvalidSignatureError:
                if kid is not None or refetched:
                    raise
                # A kid-less token checked against a cached lone key: the EHR may have rotated it.
                jwk = pick(self._jwks(reg, jwks_uri, force=True))
                if jwk is None:
                    raise
                claims = decode(jwk)
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise SmartError("id_token", _id_token_problem(exc)) from None
        if claims.get("nonce") != nonce:
            raise SmartError("id_token", "The identity token does not belong to this sign-in.")
        # OIDC Core 3.1.3.7: with several audiences, azp must name us; any azp must be us.
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        azp = claims.get("azp")
        if (len(audiences) > 1 and azp is None) or (azp is not None and azp != reg.client_id):
            raise SmartError("id_token", "The identity token was issued for another app as well as this one.")
        if not isinstance(claims.get("sub"), str) or not 1 <= len(claims["sub"]) <= 255:
            raise SmartError("id_token", "The identity token does not say who you are.")
        return claims


def _id_token_problem(exc: Exception) -> str:
    """A plain sentence for a failed id_token check: no exception names, no token contents."""
    if isinstance(exc, jwt.ExpiredSignatureError):
        return "The identity token has expired. Check the computer's clock if this keeps happening."
    if isinstance(exc, jwt.ImmatureSignatureError):
        return "The identity token is not valid yet. Check the computer's clock if this keeps happening."
    if isinstance(exc, jwt.InvalidAudienceError):
        return "The identity token was issued for another app."
    if isinstance(exc, jwt.InvalidIssuerError):
        return "The identity token was not issued by this EHR's sign-in service."
    if isinstance(exc, jwt.InvalidSignatureError):
        return "The identity token's signature does not match the EHR's signing keys."
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return "The identity token leaves out details the app needs to check it."
    return "The identity token could not be checked."


def _fhir_user_path(fhir_user: Any, iss: str) -> str | None:
    """``fhirUser`` relative to the FHIR base ``iss``, or None if it is absolute elsewhere."""
    if not isinstance(fhir_user, str):
        return None
    if "://" not in fhir_user:
        return fhir_user
    base = iss.rstrip("/") + "/"
    return fhir_user[len(base) :] if fhir_user.startswith(base) else None


def foreign_fhir_user(fhir_user: Any, iss: str) -> bool:
    """``fhirUser`` is an absolute URL outside the FHIR base ``iss`` (EL-17 step 5: never taken as
    a local reference, never fetched with our token)."""
    return isinstance(fhir_user, str) and bool(fhir_user) and _fhir_user_path(fhir_user, iss) is None


def fhir_user_ref(fhir_user: Any, iss: str) -> str | None:
    """``fhirUser`` (relative, or absolute under ``iss``) as a relative ``Type/id`` reference; None
    when missing, on another server, of another type, or with an id that breaks the FHIR id rule."""
    path = _fhir_user_path(fhir_user, iss) if fhir_user else None
    if not path:
        return None
    parts = path.rstrip("/").split("/")
    if len(parts) == 2 and parts[0] in FHIR_USER_TYPES and is_fhir_id(parts[1]):
        return f"{parts[0]}/{parts[1]}"
    return None
