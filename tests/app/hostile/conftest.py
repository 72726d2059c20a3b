"""A hostile SMART EHR of our own, on loopback, for driving the real app through a launch.

It is a small, real HTTP server (Flask on Werkzeug, in a thread) that plays both parts an EHR plays
in a launch: the authorization server (``.well-known/smart-configuration``, ``authorize``,
``token``, ``jwks``, an OpenID configuration) and the FHIR endpoint the app reads the Patient from.
It behaves correctly by default; each test switches ONE behaviour to something hostile or broken
(``ehr.token["patient"] = "../../../../x"``, ``ehr.discovery_issuer = False``, ...), drives the real
app (``launcher.ehr_launch()``: the app's own routes through the Flask test client, the app's own
HTTP calls to this server over loopback) and asserts on what the app did: the page, what it stored,
what it logged, and which requests reached this server (``ehr.requests``).

Nothing of the app's SMART client is mocked. Unlike the project's sandbox (which enforces the rules
as an EHR should), this server does what a careless or malicious EHR might.

Fixtures: ``ehr`` (the server, switches reset for each test), ``make_app(**ehr_overrides)`` (a fresh
app registered with it, on SQLite in tmp_path), ``launcher(app)`` (drives launches through it).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlencode, urlsplit

import jwt
import pytest
import requests
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask, Response, jsonify, redirect, request

from smart_app import create_app
from smart_app.sessions import launches
from tests.support.app import TEST_ORIGIN
from thrive_fhir.canonical import NHS_NUMBER
from thrive_fhir.ids import nhs_number_check_digit
from thrive_fhir.sandbox.server import ServerThread

CLIENT_ID = "hostile-test-client"
PATIENT_ID = "yp-hostile-1"
#: A synthetic NHS number in the 999 range with a valid modulus-11 check digit.
NHS = "999123457" + str(nhs_number_check_digit("999123457"))
DROP = object()  # as an override value: leave the member out altogether


def _rsa_jwk(key, kid: str) -> dict:
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "alg": "RS256", "use": "sig"}


@dataclass
class Seen:
    """One request that reached the hostile server."""

    origin: str
    method: str
    path: str
    raw_uri: str
    headers: dict[str, str]
    form: dict[str, str]


@dataclass
class HostileEhr:
    """The server and its switches. Switch values are read at request time."""

    # Constants tests need (test modules cannot import conftest under --import-mode=importlib).
    CLIENT_ID: ClassVar[str] = CLIENT_ID
    PATIENT_ID: ClassVar[str] = PATIENT_ID
    NHS: ClassVar[str] = NHS
    DROP: ClassVar[object] = DROP

    main: ServerThread
    other: ServerThread  # same host, another port: "an authorization server next door"
    key: Any = field(default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048))
    stranger_key: Any = field(default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048))
    requests: list[Seen] = field(default_factory=list)
    codes: dict[str, dict] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.reset()

    # --- addresses --------------------------------------------------------------------------
    @property
    def origin(self) -> str:
        return self.main.origin

    @property
    def fhir_base(self) -> str:
        return self.origin + "/fhir"

    @property
    def issuer(self) -> str:
        return self.origin + "/auth"

    # --- switches ---------------------------------------------------------------------------
    def reset(self) -> None:
        #: Put ``issuer`` in .well-known/smart-configuration.
        self.discovery_issuer = True
        #: .well-known answers 404 (the app falls back to /metadata).
        self.well_known_404 = False
        #: Serve authorize and token from the server on the other port.
        self.auth_on_other_port = False
        #: Members of the token response to replace (``DROP`` removes one).
        self.token: dict[str, Any] = {}
        #: id_token claims to replace (``DROP`` removes one).
        self.claims: dict[str, Any] = {}
        #: Sign the id_token with a key the JWKS does not publish.
        self.sign_with_stranger_key = False
        #: authorize redirects back with ``error=<this>`` instead of a code.
        self.authorize_error: str | None = None
        #: How Patient/<id> answers: None = a good Patient; else (status, body bytes, content type).
        self.patient_answer: tuple[int, bytes, str] | None = None
        #: The FHIR endpoint refuses (401) the access token of the code exchange, as if it lapsed
        #: before its expires_in; refreshed tokens are accepted.
        self.refuse_first_access_token = False
        self.refused_tokens: set[str] = set()
        self.requests.clear()

    # --- what happened ----------------------------------------------------------------------
    def seen(self, path_prefix: str = "") -> list[Seen]:
        return [r for r in self.requests if r.path.startswith(path_prefix)]

    def good_patient(self) -> dict:
        return {
            "resourceType": "Patient",
            "id": PATIENT_ID,
            "identifier": [{"system": NHS_NUMBER, "value": NHS}],
            "name": [{"use": "official", "family": "Hostile-Test", "given": ["Robin"]}],
            "birthDate": "2011-03-04",
            "gender": "female",
        }


def _hostile_app(ehr: HostileEhr) -> Flask:
    app = Flask("hostile_ehr")

    @app.before_request
    def _record():
        ehr.requests.append(
            Seen(
                origin=request.host_url.rstrip("/"),
                method=request.method,
                path=request.path,
                raw_uri=request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or request.full_path,
                headers=dict(request.headers),
                form=request.form.to_dict() if request.method == "POST" else {},
            )
        )

    @app.get("/fhir/.well-known/smart-configuration")
    def smart_configuration():
        if ehr.well_known_404:
            return jsonify({"error": "not found"}), 404
        auth = ehr.other.origin if ehr.auth_on_other_port else ehr.origin
        doc = {
            "authorization_endpoint": auth + "/auth/authorize",
            "token_endpoint": auth + "/auth/token",
            "jwks_uri": ehr.issuer + "/jwks",
            "code_challenge_methods_supported": ["S256"],
            "capabilities": ["launch-ehr", "launch-standalone", "permission-v2", "client-public"],
        }
        if ehr.discovery_issuer:
            doc["issuer"] = ehr.issuer
        return jsonify(doc)

    @app.get("/fhir/metadata")
    def metadata():
        ext = {
            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
            "extension": [
                {"url": "authorize", "valueUri": ehr.origin + "/auth/authorize"},
                {"url": "token", "valueUri": ehr.origin + "/auth/token"},
            ],
        }
        return jsonify(
            {
                "resourceType": "CapabilityStatement",
                "status": "active",
                "kind": "instance",
                "fhirVersion": "4.0.1",
                "format": ["json"],
                "rest": [{"mode": "server", "security": {"extension": [ext]}}],
            }
        )

    @app.get("/auth/.well-known/openid-configuration")
    def openid_configuration():
        return jsonify({"issuer": ehr.issuer, "jwks_uri": ehr.issuer + "/jwks"})

    @app.get("/auth/jwks")
    def jwks():
        return jsonify({"keys": [_rsa_jwk(ehr.key, "hostile-1")]})

    @app.get("/auth/authorize")
    def authorize():
        q = request.args
        if ehr.authorize_error is not None:
            return redirect(
                q["redirect_uri"] + "?" + urlencode({"error": ehr.authorize_error, "state": q["state"]}), code=302
            )
        code = secrets.token_urlsafe(24)
        ehr.codes[code] = {
            "challenge": q.get("code_challenge"),
            "redirect_uri": q.get("redirect_uri"),
            "scope": q.get("scope", ""),
            "nonce": q.get("nonce"),
            "client_id": q.get("client_id"),
        }
        return redirect(q["redirect_uri"] + "?" + urlencode({"code": code, "state": q["state"]}), code=302)

    @app.post("/auth/token")
    def token():
        form = request.form
        if form.get("grant_type") == "client_credentials":  # the sync worker (Backend Services)
            body = {
                "access_token": _new_token(),
                "token_type": "bearer",
                "expires_in": 300,
                "scope": form.get("scope", ""),
            }
            for name, value in ehr.token.items():
                if value is DROP:
                    body.pop(name, None)
                else:
                    body[name] = value
            return _no_store(body)
        if form.get("grant_type") == "refresh_token":
            body = {"access_token": _new_token(), "token_type": "bearer", "expires_in": 3600}
            return _no_store(body)
        grant = ehr.codes.pop(form.get("code", ""), None)
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if grant is None or grant["challenge"] != challenge or grant["redirect_uri"] != form.get("redirect_uri"):
            return jsonify({"error": "invalid_grant"}), 400
        scopes = grant["scope"].split()
        body: dict[str, Any] = {
            "access_token": _new_token(),
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": grant["scope"],
            "patient": PATIENT_ID,
            "need_patient_banner": False,
        }
        if "online_access" in scopes or "offline_access" in scopes:  # as Inferno's mock server does
            body["refresh_token"] = secrets.token_urlsafe(32)
        if "openid" in scopes:
            body["id_token"] = _id_token(grant)
        if ehr.refuse_first_access_token:
            ehr.refused_tokens.add(body["access_token"])
        for name, value in ehr.token.items():
            if value is DROP:
                body.pop(name, None)
            else:
                body[name] = value
        return _no_store(body)

    @app.get("/fhir/Patient/<pid>")
    def patient(pid: str):
        presented = request.headers.get("Authorization", "")[7:]
        if presented not in ehr.tokens or presented in ehr.refused_tokens:
            return jsonify({"resourceType": "OperationOutcome"}), 401
        if ehr.patient_answer is not None:
            status, body, content_type = ehr.patient_answer
            return Response(body, status=status, content_type=content_type)
        if pid != PATIENT_ID:
            return jsonify({"resourceType": "OperationOutcome"}), 404
        return Response(json.dumps(ehr.good_patient()), content_type="application/fhir+json")

    @app.get("/ehr-ui")
    def ehr_ui():
        """The EHR's own page with the app in an iframe (for browser tests of framing)."""
        src = request.args["src"]
        return (
            f'<!doctype html><html lang="en"><title>EHR</title><h1>Hostile EHR</h1>'
            f'<iframe id="smart-app" title="app" src="{src}" width="1000" height="700"></iframe></html>'
        )

    @app.route("/<path:anything>", methods=["GET", "POST", "PUT", "DELETE"])
    def anything_else(anything: str):
        return jsonify({"error": "not found"}), 404

    def _new_token() -> str:
        value = secrets.token_urlsafe(32)
        ehr.tokens.add(value)
        return value

    def _id_token(grant: dict) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ehr.issuer,
            "sub": "user-hostile-1",
            "aud": grant["client_id"],
            "iat": now,
            "exp": now + 300,
            "nonce": grant["nonce"],
            "fhirUser": ehr.fhir_base + "/Practitioner/pr-hostile-1",
        }
        for name, value in ehr.claims.items():
            if value is DROP:
                claims.pop(name, None)
            else:
                claims[name] = value
        key = ehr.stranger_key if ehr.sign_with_stranger_key else ehr.key
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "hostile-1"})

    def _no_store(body: dict) -> Response:
        resp = jsonify(body)
        resp.headers["Cache-Control"] = "no-store"
        return resp

    return app


@pytest.fixture(scope="module")
def hostile_server():
    main, other = ServerThread(name="hostile-ehr"), ServerThread(name="hostile-ehr-next-door")
    ehr = HostileEhr(main=main, other=other)
    flask_app = _hostile_app(ehr)
    main.start(flask_app)
    other.start(flask_app)
    try:
        yield ehr
    finally:
        main.stop()
        other.stop()


@pytest.fixture
def ehr(hostile_server):
    """The hostile EHR with every switch at its correct default."""
    hostile_server.reset()
    yield hostile_server
    hostile_server.reset()


@pytest.fixture
def make_app(ehr, tmp_path):
    """``make_app(**registration_overrides)``: a fresh app registered with the hostile EHR (public
    client, loopback http allowed, its UI origin allowed to frame the app), plus an agency entry."""
    count = [0]

    def make(app_overrides: dict | None = None, **overrides: Any):
        count[0] += 1
        registration = {
            "name": "Hostile EHR",
            "iss": ehr.fhir_base,
            "client_id": CLIENT_ID,
            "auth_method": "public",
            "allow_insecure_loopback": True,
            "frame_ancestors": [ehr.origin],
            **overrides,
        }
        return create_app(
            {
                "testing": True,
                "secret_key": secrets.token_urlsafe(32),
                "database_url": f"sqlite:///{tmp_path}/hostile-{count[0]}.db",
                "ods_code": "RXX01",
                "journeys": False,
                "ehr": [registration],
                "standalone": [
                    {
                        "key": "school",
                        "name": "Hostile High School",
                        "iss": ehr.fhir_base,
                        "organization": "Organization/school-hostile",
                    }
                ],
                **(app_overrides or {}),
            }
        )

    return make


class Launcher:
    """Drives launches of one app through the hostile EHR like a browser would: the app's routes
    through its Flask test client (https://localhost, so its Secure cookie is kept), the EHR's
    authorize step over real HTTP."""

    def __init__(self, app, ehr: HostileEhr):
        self.app = app
        self.ehr = ehr
        self.client = app.test_client()
        self.authorize: requests.Response | None = None

    @property
    def sessions(self):
        return self.app.extensions["thrive"].sessions

    def get(self, path: str, **kwargs: Any):
        return self.client.get(path, base_url=TEST_ORIGIN, **kwargs)

    def ehr_launch(self, launch: str = "launch-handle-1"):
        """``/launch`` -> authorize -> ``/callback``; the callback's response (not followed)."""
        return self._through_authorize(self.get("/launch?" + urlencode({"iss": self.ehr.fhir_base, "launch": launch})))

    def standalone_launch(self):
        return self._through_authorize(self.get("/standalone/start?org=school"))

    def _through_authorize(self, start):
        if start.status_code != 302:
            return start
        location = start.headers["Location"]
        self.authorize = requests.get(location, allow_redirects=False, timeout=10)
        if self.authorize.status_code not in (302, 303):
            return self.authorize
        back = urlsplit(self.authorize.headers["Location"])
        assert f"{back.scheme}://{back.netloc}" == TEST_ORIGIN, back
        return self.get(f"{back.path}?{back.query}")

    def follow(self, response, hops: int = 5):
        """Follow the app's own redirects (after the callback)."""
        for _ in range(hops):
            if response.status_code not in (301, 302, 303):
                return response
            target = urlsplit(response.headers["Location"])
            response = self.get(target.path + (f"?{target.query}" if target.query else ""))
        return response

    def launch_count(self) -> int:
        with self.sessions.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(launches)).scalar()

    def only_launch(self):
        with self.sessions.engine.connect() as conn:
            [launch_id] = conn.execute(sa.select(launches.c.launch_id)).scalars().all()
        return self.sessions.get_launch(launch_id)


@pytest.fixture
def launcher(ehr):
    """``launcher(app)`` -> a :class:`Launcher` for that app."""
    return lambda app: Launcher(app, ehr)
