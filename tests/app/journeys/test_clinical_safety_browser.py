"""Issue 15 in a real browser (Debian Chromium via Playwright): the printed safety plan (print media
emulated), ending help's prompts, the safety plan form's rows, and the grouping decision support.
Every page is checked with axe-core and must have NO finding of any impact level."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest

from smart_app import create_app
from smart_app.context import COOKIE_NAME
from smart_app.testing import make_launch, seed_plan, test_config

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from thrive_fhir.sandbox.server import ServerThread

    server = ServerThread(name="issue15-app")
    app = create_app(test_config(tmp_path_factory.mktemp("issue15"), public_base_url=server.origin))
    server.start(app)
    yield app, server.origin
    server.stop()


@pytest.fixture
def open_launch(served, browser_page):
    """``open_launch(patient_id, **launch_kw)`` -> (page, launch, go(suffix))."""
    app, origin = served

    def start(patient_id: str, **kw):
        launch = make_launch(app, patient_id=patient_id, **kw)
        browser_page.context.add_cookies([{"name": COOKIE_NAME, "value": launch.binding, "domain": "127.0.0.1",
                                           "path": "/", "secure": True, "httpOnly": True, "sameSite": "None"}])
        return browser_page, launch, lambda suffix: browser_page.goto(f"{origin}{launch.url(suffix)}")

    return start


def axe_clean(page, axe_check, name: str) -> None:
    """No axe-core finding of any impact (minor and moderate included)."""
    assert "Sorry, there is a problem" not in page.content(), name
    violations = axe_check(page, name=name)
    assert not violations, f"axe ({name}): " + json.dumps(
        [{"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"][:3]]} for v in violations],
        indent=1)


def _submit(page, button: str) -> None:
    with page.expect_navigation():
        page.get_by_role("button", name=button).click()


def _luminance(rgb: str) -> float:
    parts = [int(x) for x in rgb[rgb.index("(") + 1:rgb.index(")")].split(",")[:3]]

    def channel(c):
        c = c / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in parts)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_printed_safety_plan_keeps_the_crisis_number_and_speaks_to_the_young_person(open_launch, served, axe_check, screenshot):
    app, _ = served
    seed_plan(app, "pat-print-1", risk=True)
    page, launch, go = open_launch("pat-print-1")
    go("safety-plan/print")
    assert page.locator("#risk-alert").is_visible()  # on screen the clinician still sees the banner
    axe_clean(page, axe_check, "safety-plan-print-screen")
    page.emulate_media(media="print")
    try:
        screenshot(page, "issue15-safety-plan-print")
        # the 24-hour number prints in dark ink on white (printers drop backgrounds)
        tel = page.locator('a[href^="tel:"]').first
        assert tel.is_visible() and "0808 157 0999" in tel.inner_text()
        colour = tel.evaluate("a => getComputedStyle(a).color")
        assert _luminance(colour) < 0.2, colour
        box_bg = page.locator("#emergency").evaluate("e => getComputedStyle(e).backgroundColor")
        assert box_bg in ("rgb(255, 255, 255)", "rgba(0, 0, 0, 0)"), box_bg
        # the clinician-only risk banner (with its app link) and the patient banner are not printed
        assert not page.locator("#risk-alert").is_visible()
        assert not page.locator(".thrive-patient-banner").is_visible()
        # the young person's name is on their copy, and their items are theirs, not "(who: The young person)"
        assert page.locator("#print-name").inner_text() == "Sam Tester"
        printed = page.locator("main").inner_text()
        assert "The young person" not in printed and "This service (you)" not in printed
        assert "My safety plan" in printed
    finally:
        page.emulate_media(media="screen")
