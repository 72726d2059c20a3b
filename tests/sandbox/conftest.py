"""A real sandbox (EHR page + auth server + EHR FHIR store on SQLite) on a loopback port, per module.

Tests talk to it only over HTTP with ``requests``; the only in-process reach is the authority's
clock, which tests move forward to expire codes without sleeping.
"""

from __future__ import annotations

import re
import socket
import time
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask import Flask, jsonify

from thrive_fhir.canonical import NHS_NUMBER
from thrive_fhir.ids import nhs_number_check_digit
from thrive_fhir.sandbox.clientkit import assertion_form, pkce_pair
from thrive_fhir.sandbox.keys import SigningKey, jwks
from thrive_fhir.sandbox.registry import Client, Registry
from thrive_fhir.sandbox.server import ServerThread, build_sandbox

REDIRECT = "http://127.0.0.1:9/callback"
APP_SCOPES = (
    "launch launch/patient openid fhirUser online_access offline_access "
    "patient/Patient.rs patient/Observation.cruds patient/Goal.cruds"
)
EHR_SCOPE = "launch openid fhirUser online_access patient/Patient.rs patient/Observation.c"


def test_nhs_number(n: int) -> str:
    """A valid NHS number from the 999 test range."""
    for tail in range(n, 1000000):
        first_nine = f"999{tail:06d}"
        check = nhs_number_check_digit(first_nine)
        if check is not None:
            return first_nine + str(check)
    raise AssertionError("unreachable")


test_nhs_number.__test__ = False  # a helper, not a test


class Flows:
    """Client-side moves against the sandbox, written out the way a SMART app makes them."""

    def __init__(self, ns: SimpleNamespace) -> None:
        self.ns = ns

    # -- authorize ---------------------------------------------------------------------------
    def authorize(self, session: requests.Session | None = None, **params: str | None) -> requests.Response:
        s = session or requests.Session()
        return s.get(
            self.ns.auth + "/authorize",
            params={k: v for k, v in params.items() if v is not None},
            allow_redirects=False,
            timeout=10,
        )

    def ehr_launch_handle(self, patient: str, user: str = "clinician") -> str:
        """Press "Launch THRIVE" on the EHR page and read the launch handle from the iframe src."""
        s = requests.Session()
        s.post(self.ns.origin + "/ehr/user", data={"user": user}, allow_redirects=False, timeout=10)
        page = s.post(f"{self.ns.origin}/ehr/patients/{patient}/launch", timeout=10)
        assert page.status_code == 200, page.text
        src = re.search(r'<iframe[^>]*src="([^"]+)"', page.text).group(1).replace("&amp;", "&")
        query = parse_qs(urlsplit(src).query)
        assert query["iss"] == [self.ns.fhir_base]
        return query["launch"][0]

    def ehr_params(
        self, patient: str, client_id: str = "app-jwt", scope: str = EHR_SCOPE, **overrides: str | None
    ) -> tuple[dict, str]:
        verifier, challenge = pkce_pair()
        params = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT,
            "launch": self.ehr_launch_handle(patient),
            "scope": scope,
            "state": "st-" + patient[:8],
            "aud": self.ns.fhir_base,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "nonce": "n-123",
        }
        params.update(overrides)
        return params, verifier

    def consent(
        self,
        resp: requests.Response,
        session: requests.Session | None = None,
        untick: tuple[str, ...] = (),
        decision: str = "approve",
    ) -> requests.Response:
        """Follow a 303 to the consent page and submit it."""
        s = session or requests.Session()
        assert resp.status_code == 303, resp.text
        page = s.get(self.ns.auth + "/" + resp.headers["Location"].rsplit("/", 1)[1], timeout=10)
        assert page.status_code == 200
        req = re.search(r'name="req" value="([^"]+)"', page.text).group(1)
        scopes = [
            s_ for s_ in re.findall(r'name="scope" value="([^"]+)" checked(?! disabled)', page.text) if s_ not in untick
        ]
        return s.post(
            self.ns.auth + "/consent",
            data={"req": req, "scope": scopes, "decision": decision},
            allow_redirects=False,
            timeout=10,
        )

    @staticmethod
    def redirect_params(resp: requests.Response) -> dict[str, str]:
        assert resp.status_code in (302, 303), resp.text
        loc = resp.headers["Location"]
        assert loc.startswith(REDIRECT), loc
        return {k: v[0] for k, v in parse_qs(urlsplit(loc).query).items()}

    def code_for(
        self, patient: str, client_id: str = "app-jwt", scope: str = EHR_SCOPE, untick: tuple[str, ...] = ()
    ) -> tuple[str, str]:
        params, verifier = self.ehr_params(patient, client_id, scope)
        got = self.redirect_params(self.consent(self.authorize(**params), untick=untick))
        assert got["state"] == params["state"]
        return got["code"], verifier

    # -- token ---------------------------------------------------------------------------------
    def token(self, form: dict, **kwargs) -> requests.Response:
        return requests.post(self.ns.token_url, data=form, timeout=10, allow_redirects=False, **kwargs)

    def jwt_auth(self, client_id: str = "app-jwt", key: SigningKey | None = None, **kwargs) -> dict:
        return assertion_form(key or self.ns.keys[client_id], client_id, self.ns.token_url, **kwargs)

    def exchange(self, code: str, verifier: str, client_id: str = "app-jwt", **assertion) -> requests.Response:
        return self.token(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT,
                "code_verifier": verifier,
                **self.jwt_auth(client_id, **assertion),
            }
        )

    def fhir(self, path: str, token: str) -> requests.Response:
        return requests.get(
            self.ns.fhir_base + path,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"},
            timeout=10,
        )


def _jwks_app(holder: dict) -> Flask:
    app = Flask("client-jwks")

    @app.get("/jwks")
    def serve():
        holder["fetches"] += 1
        return jsonify(holder["jwks"])

    return app


@pytest.fixture(scope="module")
def sb(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sandbox")
    keys = {
        "app-jwt": SigningKey.generate("RS384"),
        "app-es": SigningKey.generate("ES384"),
        "backend": SigningKey.generate("RS384"),
    }
    holder = {"jwks": jwks(keys["app-es"]), "fetches": 0}
    jwks_server = ServerThread(name="client-jwks").start(_jwks_app(holder))
    registry = Registry()
    registry.add(
        Client(
            "app-jwt",
            "private_key_jwt",
            name="THRIVE (test)",
            redirect_uris=(REDIRECT,),
            scopes=frozenset(APP_SCOPES.split()),
            jwks=jwks(keys["app-jwt"]),
        )
    )
    registry.add(
        Client(
            "app-es",
            "private_key_jwt",
            redirect_uris=(REDIRECT,),
            scopes=frozenset(APP_SCOPES.split()),
            jwks_uri=jwks_server.origin + "/jwks",
        )
    )
    registry.add(
        Client(
            "app-secret",
            "client_secret_basic",
            redirect_uris=(REDIRECT,),
            scopes=frozenset(APP_SCOPES.split()),
            client_secret="s3cret-Value_1.~",
        )
    )
    registry.add(Client("app-public", "none", redirect_uris=(REDIRECT,), scopes=frozenset(APP_SCOPES.split())))
    registry.add(
        Client(
            "app-fixed",
            "none",
            redirect_uris=(REDIRECT,),
            scopes=frozenset(APP_SCOPES.split()),
            rotate_refresh_tokens=False,
            auto_approve=True,
        )
    )
    registry.add(
        Client(
            "backend",
            "private_key_jwt",
            grant_types=("client_credentials",),
            scopes=frozenset({"system/Patient.rs", "system/Observation.cruds"}),
            jwks=jwks(keys["backend"]),
            organization="Organization/sync-test",
            access_token_lifetime=300,
        )
    )
    server = ServerThread(name="sandbox")
    sandbox = build_sandbox(
        f"sqlite:///{tmp}/ehr.db", server.origin, registry=registry, app_launch_url="http://127.0.0.1:9/launch"
    )
    server.start(sandbox.wsgi)
    ns = SimpleNamespace(
        origin=server.origin,
        fhir_base=sandbox.fhir_base,
        auth=server.origin + "/auth",
        token_url=server.origin + "/auth/token",
        authority=sandbox.authority,
        keys=keys,
        jwks_holder=holder,
        registry=registry,
    )
    ns.flows = Flows(ns)
    # Seed two patients through the store's own API with a system token.
    admin = sandbox.authority.mint_internal_token(sandbox.fhir_base, "system/Patient.cruds")
    ns.patients = []
    for i, (given, family) in enumerate([("Alex", "Sandbox-One"), ("Billie", "Sandbox-Two")]):
        pid = f"sandbox-patient-{i + 1}"
        body = {
            "resourceType": "Patient",
            "id": pid,
            "name": [{"given": [given], "family": family}],
            "birthDate": f"201{i}-05-0{i + 1}",
            "gender": "unknown",
            "identifier": [{"system": NHS_NUMBER, "value": test_nhs_number(i * 7 + 1)}],
        }
        r = requests.put(
            f"{sandbox.fhir_base}/Patient/{pid}",
            json=body,
            timeout=10,
            headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/fhir+json"},
        )
        assert r.status_code in (200, 201), r.text
        ns.patients.append(pid)
    real_clock = sandbox.authority.clock
    yield ns
    sandbox.authority.clock = real_clock
    server.stop()
    jwks_server.stop()


@pytest.fixture
def later(sb):
    """Move the authorization server's clock forward by N seconds (restored after the test)."""
    authority = sb.authority
    original = authority.clock

    def shift(seconds: float) -> None:
        authority.clock = lambda: time.time() + seconds

    yield shift
    authority.clock = original


@pytest.fixture
def flows(sb) -> Flows:
    return sb.flows


def port_closed(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0
