"""Real browser (Debian Chromium via Playwright) against the real sandbox EHR and the app.

The headline test launches the app from the sandbox EHR page INSIDE ITS IFRAME, exactly as a
clinician would, and checks the Summary renders there with no serious accessibility issues.
"""

from __future__ import annotations

import pytest
from flask import Flask

from tests.support.app import seed_plan
from tests.support.browser import sign_in_to_ehr

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_launch_inside_ehr_iframe_shows_summary(live, browser_page, axe_check, screenshot):
    patient = live.patients[0]
    seed_plan(live.app, patient)
    page = browser_page
    sign_in_to_ehr(page, live.sandbox_origin)
    page.goto(f"{live.sandbox_origin}/ehr/patients/{patient}")
    page.get_by_role("button", name="Launch THRIVE", exact=True).click()
    frame_el = page.wait_for_selector("iframe#smart-app")
    frame = frame_el.content_frame()
    frame.wait_for_selector("h1:has-text('Summary')", timeout=20000)
    assert "/summary" in frame.url and frame.url.startswith(live.app_origin)
    assert frame.locator("#risk-alert").is_visible()
    assert "Getting Risk Support" in frame.locator("#grouping-value").inner_text()
    # the EHR shows its own banner (need_patient_banner=false), so the app shows none
    assert frame.locator(".thrive-patient-banner").count() == 0
    # the NHS.UK frontend JS ran under our CSP (nonce'd module script)
    assert "js-enabled" in (frame.evaluate("document.body.className") or "")
    screenshot(page, "ehr-iframe-summary")
    assert axe_check(frame, name="summary in EHR iframe") == []  # no finding of any impact level


def test_summary_small_screen_without_javascript(live, browser, axe_check, screenshot):
    patient = live.patients[1]
    seed_plan(live.app, patient, risk=False)
    context = browser.new_context(viewport={"width": 360, "height": 740}, java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto(live.ehr_launch_url(patient))  # top-level launch ("open in a new window")
        page.wait_for_selector("h1:has-text('Summary')")
        assert page.locator("#goals").is_visible()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360 + 1, f"horizontal scrolling on a small screen: {width}px"
        screenshot(page, "summary-small-screen-no-js")
    finally:
        context.close()
    # axe needs script; run it on the same page size with JS on
    context = browser.new_context(viewport={"width": 360, "height": 740})
    page = context.new_page()
    try:
        page.goto(live.ehr_launch_url(patient))
        page.wait_for_selector("h1:has-text('Summary')")
        assert axe_check(page, name="summary small screen") == []  # no finding of any impact level
    finally:
        context.close()


def test_error_and_standalone_pages_accessible(live, browser_page, axe_check, screenshot):
    page = browser_page
    page.goto(f"{live.app_origin}/launch?iss=https://unknown.example/fhir&launch=x")
    assert "not registered" in page.locator("#error-message").inner_text()
    axe_check(page, name="unknown iss error")
    page.goto(f"{live.app_origin}/standalone")
    axe_check(page, name="standalone chooser")
    screenshot(page, "standalone-chooser")


def test_framing_from_an_unregistered_origin_is_blocked(live, browser_page):
    """A page on another origin iframes the app: the browser must refuse to render it (CSP)."""
    from thrive_fhir.sandbox.server import ServerThread

    evil = Flask("evil")
    target = live.ehr_launch_url(live.patients[0])

    @evil.get("/")
    def framing():
        return f'<!doctype html><title>x</title><iframe id="f" src="{target}"></iframe>'

    server = ServerThread(name="evil").start(evil)
    blocked = []
    try:
        page = browser_page
        page.on("console", lambda m: blocked.append(m.text) if "frame-ancestors" in m.text else None)
        page.goto(server.origin + "/")
        page.wait_for_timeout(2500)
        frame = page.frame_locator("#f")
        assert frame.locator("h1:has-text('Summary')").count() == 0
        assert blocked, "Chromium did not report a frame-ancestors violation"
    finally:
        server.stop()
