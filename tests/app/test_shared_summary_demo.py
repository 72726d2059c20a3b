"""``thrive demo`` configures the app's ``[shared_store]``: after a real EHR launch from the sandbox EHR
page, the Summary of a synthetic young person shows their history from the shared store (the demo's
synthetic population is loaded there, not into the app's own database)."""

from __future__ import annotations

import re
import time
from urllib.parse import urljoin, urlsplit

import pytest
import requests

from thrive_demo.orchestrator import Demo
from thrive_fhir import canonical


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    d = Demo(tmp_path_factory.mktemp("demo-shared"), port_base=0, patients=4, say=lambda _m: None)
    d.start()
    yield d
    d.stop()


def _go(cookies: dict, url: str, method: str = "GET", data: dict | None = None) -> requests.Response:
    host = urlsplit(url).netloc
    r = requests.request(method, url, data=data, allow_redirects=False, timeout=30, cookies=cookies.get(host, {}))
    for c in r.cookies:
        cookies.setdefault(host, {})[c.name] = c.value
    return r


def test_demo_summary_shows_the_shared_record_after_an_ehr_launch(demo):
    token = demo.sb.authority.mint_internal_token(demo.shared_base, "system/*.rs")
    found = requests.get(
        f"{demo.shared_base}/Observation",
        timeout=30,
        params={"code": f"{canonical.CS_CONCEPTS}|thrive-grouping", "_count": "1"},
        headers={"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"},
    ).json()
    assert found.get("entry"), "the demo's shared store holds groupings"
    patient = found["entry"][0]["resource"]["subject"]["reference"].split("/")[1]
    cookies: dict = {}
    page = _go(cookies, f"{demo.sandbox_origin}/ehr/patients/{patient}/launch", "POST")
    src = re.search(r'<iframe[^>]*src="([^"]+)"', page.text).group(1).replace("&amp;", "&")
    authorize = _go(cookies, src).headers["Location"]
    consent_url = urljoin(authorize, _go(cookies, authorize).headers["Location"])
    consent = _go(cookies, consent_url)
    req = re.search(r'name="req" value="([^"]+)"', consent.text).group(1)
    scopes = re.findall(r'name="scope" value="([^"]+)" checked(?! disabled)', consent.text)
    callback = _go(
        cookies, demo.sb.authority.issuer + "/consent", "POST", {"req": req, "scope": scopes, "decision": "approve"}
    ).headers["Location"]
    landed = _go(cookies, callback)
    assert landed.status_code in (302, 303), landed.text[:300]
    where = urljoin(callback, landed.headers["Location"])
    launch_root = re.match(r"(.*/l/[^/]+/)", where).group(1)
    summary = _go(cookies, launch_root + "summary")
    for _ in range(150):  # the read started at launch may still be in flight: reload, as the page says
        if 'id="shared-record-loading"' not in summary.text:
            break
        assert "No grouping has been agreed yet" not in summary.text
        time.sleep(0.2)
        summary = _go(cookies, launch_root + "summary")
    assert summary.status_code == 200
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", summary.text))
    assert "No grouping has been agreed yet" not in text
    assert "Recorded by" in text and "could not be read" not in text


def _patient_with_grouping(demo) -> str:
    token = demo.sb.authority.mint_internal_token(demo.shared_base, "system/*.rs")
    found = requests.get(
        f"{demo.shared_base}/Observation",
        timeout=30,
        params={"code": f"{canonical.CS_CONCEPTS}|thrive-grouping", "_count": "1"},
        headers={"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"},
    ).json()
    return found["entry"][0]["resource"]["subject"]["reference"].split("/")[1]


@pytest.mark.browser
@pytest.mark.slow
def test_demo_shared_summary_in_chromium_inside_the_ehr_iframe_is_accessible(demo, browser_page, axe_check, screenshot):
    patient = _patient_with_grouping(demo)
    page = browser_page
    page.goto(demo.sandbox_origin + "/ehr/")
    page.request.post(demo.sandbox_origin + "/ehr/user", form={"user": "clinician"}, max_redirects=0)
    page.goto(f"{demo.sandbox_origin}/ehr/patients/{patient}")
    page.get_by_role("button", name="Launch THRIVE", exact=True).click()
    frame = page.wait_for_selector("iframe#smart-app").content_frame()
    frame.wait_for_selector("h1:has-text('Summary'), button:has-text('Allow')", timeout=30000)
    if frame.locator("button:has-text('Allow')").count():  # the demo's app client asks the user to approve
        frame.locator("button:has-text('Allow')").click()
        frame.wait_for_selector("h1:has-text('Summary')", timeout=30000)
    if "/summary" not in frame.url:  # the launch may land on another page of the app
        frame.goto(frame.url.split("/l/")[0] + "/l/" + frame.url.split("/l/")[1].split("/")[0] + "/summary")
        frame.wait_for_selector("h1:has-text('Summary')")
    frame.wait_for_selector("#current-grouping")
    # the read started at launch may still be in flight: the page reloads by itself once it is done
    frame.wait_for_selector("#shared-record-loading", state="detached", timeout=30000)
    assert "No grouping has been agreed yet" not in frame.locator("#current-grouping").inner_text()
    assert "Recorded by" in frame.locator("main").inner_text()
    screenshot(page, "demo-shared-summary")
    axe_check(frame, name="Summary with the shared record")
