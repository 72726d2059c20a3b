"""Fixtures for the clinician app's tests (and H7b's journey tests under tests/app/journeys).

Unit level (no network):
    ``app``          a fresh app on SQLite in tmp_path, journeys off (``app_with_journeys``: on)
    ``launch``       a TestLaunch for patient "pat-test-1" on ``app`` (see tests.support.app)

End to end (real servers on loopback):
    ``live``         module-scoped: the sandbox EHR + auth server + EHR FHIR store, and the app
                     served over HTTP, registered with each other (private_key_jwt, RS384)
    ``live_writeback``  the same with the journeys on and ``write_back_grouping`` (groupings also
                     go into the EHR)
    ``live.browser_session()``  a requests.Session-like helper that follows redirects by hand
                     and keeps the app's Secure cookie over loopback HTTP
    ``browser``      session-scoped Playwright Chromium (Debian's /usr/bin/chromium)
    ``browser_page`` a fresh page (own context) per test; screenshots via ``screenshot(page, name)``
    ``axe_check``    fixture returning ``axe_check(page_or_frame, name=...)`` (also importable from
                     tests.support.app): runs axe-core from node_modules, fails on serious/critical
    ``screenshot``   fixture returning ``screenshot(page, name)`` -> test-artifacts/screenshots/
"""

from __future__ import annotations

import os
from urllib.parse import urljoin, urlsplit

import pytest
import requests

from smart_app import create_app
from tests.support.app import CHROMIUM, CHROMIUM_ARGS, axe_check, live_stack, make_launch, screenshot, test_config
from thrive_fhir import canonical, ids

AGENCY_ODS = "SXX01"
AGENCY_ORG_REF = f"Organization/{ids.deterministic_id(canonical.ODS_ORG, AGENCY_ODS)}"


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
            self.http.cookies.set(
                cookie.name, cookie.value, domain=urlsplit(self.app_origin).hostname, path="/", secure=False
            )

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


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """Sandbox EHR + auth server + app, each on its own loopback port, registered with each other."""
    with live_stack(tmp_path_factory.mktemp("live"), agency_org_ref=AGENCY_ORG_REF) as ns:
        ns.browser_session = lambda origin=ns.app_origin: AppBrowser(origin)
        yield ns


@pytest.fixture(scope="module")
def live_writeback(tmp_path_factory):
    """Like ``live``, with the journeys on and agreed groupings written back into the EHR."""
    with live_stack(tmp_path_factory.mktemp("live-wb"), journeys=True, write_back_grouping=True) as ns:
        ns.browser_session = lambda origin=ns.app_origin: AppBrowser(origin)
        yield ns


# --- browser ------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
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
