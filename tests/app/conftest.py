"""Fixtures for the clinician app's tests (and H7b's journey tests under tests/app/journeys).

Unit level (no network):
    ``app``          a fresh app on SQLite in tmp_path, journeys off (``app_with_journeys``: on)
    ``launch``       a TestLaunch for patient "pat-test-1" on ``app`` (see smart_app.testing)

End to end (real servers on loopback):
    ``live``         module-scoped: the sandbox EHR + auth server + EHR FHIR store, and the app
                     served over HTTP, registered with each other (private_key_jwt, RS384)
    ``live.browser_session()``  a requests.Session-like helper that follows redirects by hand
                     and keeps the app's Secure cookie over loopback HTTP
    ``browser``      session-scoped Playwright Chromium (Debian's /usr/bin/chromium)
    ``browser_page`` a fresh page (own context) per test; screenshots via ``screenshot(page, name)``
    ``axe_check``    fixture returning ``axe_check(page_or_frame, name=...)`` (also importable from
                     smart_app.testing): runs axe-core from node_modules, fails on serious/critical
    ``screenshot``   fixture returning ``screenshot(page, name)`` -> test-artifacts/screenshots/
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urljoin, urlsplit

import pytest
import requests

from smart_app import create_app
from smart_app.testing import CHROMIUM, CHROMIUM_ARGS, axe_check, make_launch, screenshot, test_config
from thrive_fhir import canonical, ids

REPO = Path(__file__).resolve().parents[2]
AGENCY_ODS = "SXX01"
AGENCY_ORG_REF = f"Organization/{ids.deterministic_id(canonical.ODS_ORG, AGENCY_ODS)}"


def nhs_test_number(n: int) -> str:
    """A valid NHS number from the 999 test range (modulus-11 check digit)."""
    for tail in range(n, 1_000_000):
        first_nine = f"999{tail:06d}"
        check = ids.nhs_number_check_digit(first_nine)
        if check is not None:
            return first_nine + str(check)
    raise AssertionError("unreachable")


# --- unit-level -------------------------------------------------------------------------------
@pytest.fixture
def app(tmp_path):
    return create_app(test_config(tmp_path, journeys=False))


@pytest.fixture
def app_with_journeys(tmp_path):
    return create_app(test_config(tmp_path))


@pytest.fixture
def launch(app):
    return make_launch(app, patient_id="pat-test-1")


# --- live servers -------------------------------------------------------------------------------
class AppBrowser:
    """Follows redirects one hop at a time across the sandbox and the app, like a browser would,
    keeping the app's ``Secure`` cookie even though loopback tests run over plain HTTP."""

    def __init__(self, app_origin: str):
        self.app_origin = app_origin
        self.http = requests.Session()
        self.history: list[requests.Response] = []

    def _keep_cookies(self, resp: requests.Response) -> None:
        if not resp.url.startswith(self.app_origin):
            return
        for cookie in resp.cookies:
            self.http.cookies.set(cookie.name, cookie.value, domain=urlsplit(self.app_origin).hostname,
                                  path="/", secure=False)

    def request(self, method: str, url: str, **kwargs) -> requests.Response:
        resp = self.http.request(method, url, allow_redirects=False, timeout=20, **kwargs)
        self._keep_cookies(resp)
        self.history.append(resp)
        return resp

    def go(self, url: str, method: str = "GET", max_hops: int = 12, **kwargs) -> requests.Response:
        resp = self.request(method, url, **kwargs)
        for _ in range(max_hops):
            if resp.status_code not in (301, 302, 303, 307, 308):
                return resp
            url = urljoin(resp.url, resp.headers["Location"])
            resp = self.request("GET", url)
        raise AssertionError("too many redirects")

    def app_cookie(self) -> str | None:
        return self.http.cookies.get("__Host-thrive")


def _serve(app, server):
    server.start(app)
    return server


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """Sandbox EHR + auth server + app, each on its own loopback port, registered with each other."""
    from thrive_fhir.sandbox.keys import SigningKey, jwks
    from thrive_fhir.sandbox.registry import Client, Registry
    from thrive_fhir.sandbox.server import ServerThread, build_sandbox

    tmp = tmp_path_factory.mktemp("live")
    app_server = ServerThread(name="app")
    ro_server = ServerThread(name="app-ro")
    sandbox_server = ServerThread(name="sandbox")
    app_origin, ro_origin = app_server.origin, ro_server.origin

    key = SigningKey.generate("RS384")
    key_file = tmp / "app-key.pem"
    key_file.write_bytes(key.private_pem())
    scopes = frozenset(
        "launch launch/patient openid fhirUser online_access offline_access patient/*.cruds".split()
    )
    registry = Registry()
    registry.add(Client("thrive-app", "private_key_jwt", name="THRIVE care plan", auto_approve=True,
                        redirect_uris=(app_origin + "/callback",), launch_url=app_origin + "/launch",
                        scopes=scopes, jwks=jwks(key), organization="RXX01"))
    # A second registration whose user must approve scopes on the consent page (narrowed grants).
    registry.add(Client("thrive-app-consent", "private_key_jwt", name="THRIVE care plan (consent)",
                        redirect_uris=(ro_origin + "/callback",), launch_url=ro_origin + "/launch",
                        scopes=scopes, jwks=jwks(key), organization="RXX01"))
    sandbox = build_sandbox(f"sqlite:///{tmp}/ehr.db", sandbox_server.origin, registry=registry,
                            app_launch_url=app_origin + "/launch")
    sandbox_server.start(sandbox.wsgi)

    admin = sandbox.authority.mint_internal_token(sandbox.fhir_base, "system/Patient.cruds")
    patients = []
    for i, (given, family) in enumerate([("Alex", "Sandbox-One"), ("Billie", "Sandbox-Two")]):
        pid = f"live-patient-{i + 1}"
        body = {"resourceType": "Patient", "id": pid, "name": [{"given": [given], "family": family}],
                "birthDate": f"201{i}-05-0{i + 1}", "gender": "female" if i else "male",
                "identifier": [{"system": canonical.NHS_NUMBER, "value": nhs_test_number(i * 7 + 1)}]}
        r = requests.put(f"{sandbox.fhir_base}/Patient/{pid}", json=body, timeout=10,
                         headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/fhir+json"})
        assert r.status_code in (200, 201), r.text
        patients.append(pid)

    def app_config(client_id: str, origin: str, db: str) -> dict:
        return {
            "secret_key": secrets.token_urlsafe(32),
            "database_url": f"sqlite:///{tmp}/{db}",
            "ods_code": "RXX01",
            "public_base_url": origin,
            "journeys": False,
            "ehr": [{
                "name": "Sandbox EHR",
                "iss": sandbox.fhir_base,
                "client_id": client_id,
                "auth_method": "private_key_jwt",
                "private_key_file": str(key_file),
                "key_id": key.kid,
                "online_access": True,
                "allow_insecure_loopback": True,
                "frame_ancestors": [sandbox_server.origin],
            }],
            "standalone": [{"key": "school", "name": "Sandbox High School", "iss": sandbox.fhir_base,
                            "organization": AGENCY_ORG_REF}],
        }

    app = create_app(app_config("thrive-app", app_origin, "app.db"))
    ro_app = create_app(app_config("thrive-app-consent", ro_origin, "app-ro.db"))
    _serve(app, app_server)
    _serve(ro_app, ro_server)
    ns = SimpleNamespace(
        app=app, ro_app=ro_app, app_origin=app_origin, ro_origin=ro_origin,
        sandbox_origin=sandbox_server.origin, fhir_base=sandbox.fhir_base, authority=sandbox.authority,
        patients=patients, key=key, tmp=tmp,
    )
    ns.browser_session = lambda origin=app_origin: AppBrowser(origin)

    def ehr_launch_url(patient: str, user: str = "clinician", origin: str = app_origin) -> str:
        """What the sandbox EHR page puts in its iframe: <app>/launch?iss=…&launch=<one-time handle>."""
        handle = sandbox.authority.mint_launch(patient, user, sandbox.fhir_base)
        from urllib.parse import urlencode

        return f"{origin}/launch?" + urlencode({"iss": sandbox.fhir_base, "launch": handle})

    ns.ehr_launch_url = ehr_launch_url
    yield ns
    for server in (app_server, ro_server, sandbox_server):
        server.stop()


# --- browser ------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Debian Chromium is missing: apt-get install -y chromium")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def browser_page(browser):
    context = browser.new_context(viewport={"width": 1024, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15000)
    yield page
    context.close()


@pytest.fixture(name="axe_check")
def axe_check_fixture():
    """``axe_check(page_or_frame, name=...)``: fail on serious/critical axe-core violations."""
    return axe_check


@pytest.fixture(name="screenshot")
def screenshot_fixture():
    """``screenshot(page, name)`` saves a full-page PNG under test-artifacts/screenshots/."""
    return screenshot
