"""Real Chromium against the app (served on loopback) and the hostile EHR (conftest.py): the EHR's
own page frames the app, as a clinician sees it (issue 15 items 2 and 3, issue 16 item 4)."""

from __future__ import annotations

from urllib.parse import quote, urlencode

import pytest

from thrive_fhir.sandbox.server import ServerThread

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def served(ehr, make_app):
    """The app on its own loopback port, registered with the hostile EHR (its UI may frame it)."""
    server = ServerThread(name="app-hostile-browser")
    app = make_app({"public_base_url": server.origin})
    server.start(app)
    yield server.origin
    server.stop()


def launch_url(ehr, origin: str) -> str:
    return origin + "/launch?" + urlencode({"iss": ehr.fhir_base, "launch": "browser-launch-1"})


def in_ehr_frame(page, ehr, src: str):
    page.goto(ehr.origin + "/ehr-ui?src=" + quote(src, safe=""))
    return page.frame_locator("#smart-app")


def test_launch_in_a_new_window_shows_name_and_nhs_number(ehr, served, browser_page, axe_check):
    """The EHR says need_patient_banner=false (it shows its own banner around its frame); opened
    top-level nothing else says whose plan this is, so the app's banner must."""
    page = browser_page
    page.goto(launch_url(ehr, served))
    page.wait_for_selector("h1:has-text('Summary')")
    assert page.locator("#patient-name").inner_text() == "HOSTILE-TEST, Robin"
    nhs = ehr.NHS
    assert page.locator("#patient-nhs-number").inner_text() == f"{nhs[:3]} {nhs[3:6]} {nhs[6:]}"
    axe_check(page, name="summary in a new window")


def test_inside_the_ehr_frame_the_ehr_banner_is_trusted(ehr, served, browser_page):
    frame = in_ehr_frame(browser_page, ehr, launch_url(ehr, served))
    frame.locator("h1:has-text('Summary')").wait_for()
    assert frame.locator(".thrive-patient-banner").count() == 0


@pytest.mark.parametrize(
    "path,said",
    [
        ("/l/no-such-launch/summary", "Relaunch the app from the patient's record"),
        ("/no-such-page", "relaunch the app from there"),
    ],
)
def test_error_pages_show_inside_the_ehr_frame(ehr, served, browser_page, axe_check, path, said):
    violations: list[str] = []
    browser_page.on("console", lambda m: violations.append(m.text) if "frame-ancestors" in m.text else None)
    frame = in_ehr_frame(browser_page, ehr, served + path)
    frame.locator("#error-message").wait_for(timeout=10000)
    assert said in frame.locator("#error-message").inner_text()
    assert not violations
    axe_check(browser_page.frames[1], name=f"error page in the EHR frame {path}")


def test_identity_problem_page_shows_inside_the_ehr_frame_and_retry_recovers(ehr, served, browser_page):
    ehr.patient_answer = (500, b'{"resourceType": "OperationOutcome"}', "application/fhir+json")
    frame = in_ehr_frame(browser_page, ehr, launch_url(ehr, served))
    frame.locator("h1:has-text('We could not confirm who this young person is')").wait_for()
    assert "HTTP 500" in frame.locator("#identity-problem").inner_text()
    assert frame.locator("h1:has-text('Summary')").count() == 0
    ehr.patient_answer = None
    frame.locator("#identity-retry").click()
    frame.locator("h1:has-text('Summary')").wait_for()
