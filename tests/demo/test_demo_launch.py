"""The demo's parts work together: a real EHR launch from the sandbox EHR page into the real SMART app."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests

from thrive_demo.orchestrator import Demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    d = Demo(tmp_path_factory.mktemp("demo"), port_base=0, patients=3, say=lambda _m: None)
    d.start()
    yield d
    d.stop()


class Browser:
    """Just enough of a browser: follows nothing by itself, keeps cookies per host (Secure included,
    as browsers do for loopback origins)."""

    def __init__(self) -> None:
        self.cookies: dict[str, dict[str, str]] = {}

    def go(self, url: str, method: str = "GET", data: dict | None = None) -> requests.Response:
        host = urlsplit(url).netloc
        r = requests.request(
            method, url, data=data, allow_redirects=False, timeout=30, cookies=self.cookies.get(host, {})
        )
        for c in r.cookies:
            self.cookies.setdefault(host, {})[c.name] = c.value
        return r


def test_ehr_launch_into_the_app_inside_the_iframe(demo):
    b = Browser()
    listing = b.go(f"{demo.sandbox_origin}/ehr/")
    patient = re.search(r'/ehr/patients/([^"]+)"', listing.text).group(1)
    page = b.go(f"{demo.sandbox_origin}/ehr/patients/{patient}/launch", "POST")
    src = re.search(r'<iframe[^>]*src="([^"]+)"', page.text).group(1).replace("&amp;", "&")
    assert src.startswith(f"{demo.app_origin}/launch?")
    assert parse_qs(urlsplit(src).query)["iss"] == [demo.sb.fhir_base]

    to_authorize = b.go(src)  # the app: discovery, state, PKCE -> authorize
    assert to_authorize.status_code in (302, 303)
    authorize = to_authorize.headers["Location"]
    assert authorize.startswith(demo.sb.authority.issuer + "/authorize?")
    query = parse_qs(urlsplit(authorize).query)
    assert query["aud"] == [demo.sb.fhir_base] and query["code_challenge_method"] == ["S256"]

    to_consent = b.go(authorize)
    consent_url = urljoin(authorize, to_consent.headers["Location"])
    consent = b.go(consent_url)
    req = re.search(r'name="req" value="([^"]+)"', consent.text).group(1)
    scopes = re.findall(r'name="scope" value="([^"]+)" checked(?! disabled)', consent.text)
    back = b.go(demo.sb.authority.issuer + "/consent", "POST", {"req": req, "scope": scopes, "decision": "approve"})
    callback = back.headers["Location"]
    assert callback.startswith(f"{demo.app_origin}/callback?code=")

    landed = b.go(callback)  # the app exchanges the code with private_key_jwt
    assert landed.status_code in (302, 303), landed.text[:500]
    app_page = b.go(urljoin(callback, landed.headers["Location"]))
    assert app_page.status_code == 200
    assert "THRIVE care plan" in app_page.text
