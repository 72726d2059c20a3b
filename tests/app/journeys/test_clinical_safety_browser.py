"""Issue 15 in a real browser (Debian Chromium via Playwright): the printed safety plan (print media
emulated), ending help's prompts, the safety plan form's rows, and the grouping decision support.
Every page is checked with axe-core and must have NO finding of any impact level."""

from __future__ import annotations

import json

import pytest

from smart_app import create_app
from smart_app.context import COOKIE_NAME
from tests.support.app import make_launch, seed_plan, test_config
from tests.support.browser import submit

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
        browser_page.context.add_cookies(
            [
                {
                    "name": COOKIE_NAME,
                    "value": launch.binding,
                    "domain": "127.0.0.1",
                    "path": "/",
                    "secure": True,
                    "httpOnly": True,
                    "sameSite": "None",
                }
            ]
        )
        return browser_page, launch, lambda suffix: browser_page.goto(f"{origin}{launch.url(suffix)}")

    return start


def axe_clean(page, axe_check, name: str) -> None:
    """No axe-core finding of any impact (minor and moderate included)."""
    assert "Sorry, there is a problem" not in page.content(), name
    violations = axe_check(page, name=name)
    assert not violations, f"axe ({name}): " + json.dumps(
        [{"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"][:3]]} for v in violations],
        indent=1,
    )


def _luminance(rgb: str) -> float:
    parts = [int(x) for x in rgb[rgb.index("(") + 1 : rgb.index(")")].split(",")[:3]]

    def channel(c):
        c = c / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in parts)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_printed_safety_plan_keeps_the_crisis_number_and_speaks_to_the_young_person(
    open_launch, served, axe_check, screenshot
):
    app, _ = served
    seed_plan(app, "pat-print-1", risk=True)
    page, _launch, go = open_launch("pat-print-1")
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


def _row_count(page, section: str) -> int:
    return page.locator(f'textarea[id^="{section}-"][id$="-text"]').count()


def test_add_another_row_with_and_without_javascript(open_launch, served, browser, axe_check):
    page, launch, go = open_launch("pat-rows-1")
    go("safety-plan/edit")
    axe_clean(page, axe_check, "safety-plan-form")
    before = {s: _row_count(page, s) for s in ("warning-signs", "internal-coping", "reasons-for-living")}
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    page.get_by_role("button", name="Add another row to Reasons for living").click()
    assert _row_count(page, "reasons-for-living") == before["reasons-for-living"] + 1
    assert _row_count(page, "warning-signs") == before["warning-signs"]
    assert _row_count(page, "internal-coping") == before["internal-coping"]
    new_id = f"reasons-for-living-{before['reasons-for-living']}-text"
    assert page.evaluate("document.activeElement.id") == new_id  # focus moves to the new row
    assert page.evaluate("window.scrollY") > 0  # no jump to the top
    page.get_by_label(f"Reasons for living: item {before['reasons-for-living'] + 1}").fill("My dog")
    axe_clean(page, axe_check, "safety-plan-form-added-row")

    # without JavaScript: the form is posted and redrawn with one more row, opening at it
    _app, origin = served
    context = browser.new_context(viewport={"width": 1024, "height": 700}, java_script_enabled=False)
    try:
        context.add_cookies(
            [
                {
                    "name": COOKIE_NAME,
                    "value": launch.binding,
                    "domain": "127.0.0.1",
                    "path": "/",
                    "secure": True,
                    "httpOnly": True,
                    "sameSite": "None",
                }
            ]
        )
        nojs = context.new_page()
        nojs.goto(f"{origin}{launch.url('safety-plan/edit')}")
        nojs.get_by_label("Warning signs: item 1").fill("Staying in my room")
        with nojs.expect_navigation():
            nojs.get_by_role("button", name="Add another row to Reasons for living").click()
        assert _row_count(nojs, "reasons-for-living") == before["reasons-for-living"] + 1
        assert _row_count(nojs, "warning-signs") == before["warning-signs"]
        assert _row_count(nojs, "internal-coping") == before["internal-coping"]
        assert nojs.url.endswith(f"#{new_id}")
        assert nojs.evaluate("window.scrollY") > 0
        assert nojs.get_by_label("Warning signs: item 1").input_value() == "Staying in my room"
    finally:
        context.close()


def test_ending_help_asks_about_what_is_still_open(open_launch, served, axe_check, screenshot):
    app, _ = served
    page, launch, go = open_launch("pat-ending-1")
    from werkzeug.datastructures import MultiDict

    from .conftest import grouping_form, safety_plan_form, sharing_form, token

    _, origin = served
    client = app.test_client()
    client.set_cookie(COOKIE_NAME, launch.binding, domain="127.0.0.1", secure=True)

    def post(suffix, data):
        pairs = list(data.items()) if isinstance(data, dict) else list(data)
        return client.post(
            launch.url(suffix),
            data=MultiDict([*pairs, ("csrf_token", launch.csrf_token)]),
            headers={"Origin": origin},
            base_url=origin.replace("http://", "https://"),
        )

    assert post("grouping/agree", grouping_form(grouping="getting-risk-support")).status_code == 303
    assert post("safety-plan/edit", safety_plan_form()).status_code == 303
    assert (
        post("services/", {"token": token(), "service": "mhst", "kind": "referral", "note": "Brief CBT"}).status_code
        == 303
    )
    assert post("sharing/", sharing_form(["northgate-academy"])).status_code == 303
    go("ending/")
    assert page.get_by_role("heading", name="What is still open").is_visible()
    axe_clean(page, axe_check, "ending-still-open")
    page.get_by_label("What did you talk about: the limits of help, the ending and what happens next?").fill(
        "How to come back"
    )
    page.get_by_role("group", name="What is the grouping at the end of help?").get_by_label(
        "Getting Advice and Signposting"
    ).check()
    page.get_by_label("If it has changed from Getting Risk Support, why?").select_option("risk-reduced")
    page.get_by_role("group", name="Did the young person agree with ending help?").get_by_label(
        "Agreed", exact=True
    ).check()
    submit(page, "Record the ending of help")
    summary = page.locator(".nhsuk-error-summary")
    assert summary.is_visible()
    problems = summary.inner_text()
    assert "what happens to the safety plan" in problems and "referral stays open" in problems
    assert "plan is still shared" in problems
    axe_clean(page, axe_check, "ending-still-open-errors")
    page.get_by_role("group", name="What happens to it?").get_by_label("End the safety plan").check()
    page.get_by_role("group", name="keep it open?").get_by_label("Cancel the referral").check()
    page.get_by_label("If you cancel a referral, why? (the service will see this)").fill("No longer needed")
    page.get_by_role("group", name="Keep sharing it?").get_by_label("Stop sharing now").check()
    submit(page, "Record the ending of help")
    assert "The ending of help has been recorded." in page.content()
    axe_clean(page, axe_check, "ending-recorded")
    screenshot(page, "issue15-ending-recorded")
    store = app.extensions["thrive"].local_store
    assert store.for_patient("Patient/pat-ending-1", "CarePlan")[0]["status"] == "completed"
    assert store.for_patient("Patient/pat-ending-1", "Consent")[0]["status"] == "inactive"
    assert store.for_patient("Patient/pat-ending-1", "Task")[0]["status"] == "cancelled"


def test_chart_axis_is_readable_on_a_small_phone(served, browser, axe_check):
    app, origin = served
    seed_plan(app, "pat-chart-1", risk=False)
    launch = make_launch(app, patient_id="pat-chart-1")
    context = browser.new_context(viewport={"width": 360, "height": 740})
    try:
        context.add_cookies(
            [
                {
                    "name": COOKIE_NAME,
                    "value": launch.binding,
                    "domain": "127.0.0.1",
                    "path": "/",
                    "secure": True,
                    "httpOnly": True,
                    "sameSite": "None",
                }
            ]
        )
        page = context.new_page()
        for suffix in ("goals/", "summary"):
            page.goto(f"{origin}{launch.url(suffix)}")
            heights = page.locator("svg.app-gbo-chart text").evaluate_all(
                "els => els.map(e => e.getBoundingClientRect().height)"
            )
            assert heights and min(heights) >= 12, (suffix, heights)
            assert page.evaluate("document.documentElement.scrollWidth") <= 360
            axe_clean(page, axe_check, f"chart-360-{suffix.strip('/')}")
    finally:
        context.close()


def test_agree_a_grouping_with_needs_led_decision_support(open_launch, served, axe_check, screenshot):
    app, _ = served
    page, _launch, go = open_launch("pat-decide-1")
    go("grouping/agree")
    assert page.get_by_role("heading", name="What each grouping would mean here").is_visible()
    assert page.get_by_text("What has helped before, and what has not?").is_visible()
    # closed until opened; opening one shows what it would mean locally
    offers = page.locator("#support-getting-help")
    assert not offers.get_by_text("Mental Health Support Team in schools").first.is_visible()
    offers.locator("summary").click()
    assert offers.get_by_text("Mental Health Support Team in schools").first.is_visible()
    assert offers.get_by_text("What the young person and family would do").is_visible()
    axe_clean(page, axe_check, "grouping-decision-support")
    screenshot(page, "issue15-grouping-decision-support")
    page.get_by_label("What does the young person want to be different?").fill("Go to school without feeling sick")
    page.get_by_label("What needs did you talk about?").fill("Worry about school; sleep")
    page.get_by_label("What options did you consider together?").fill("Online support or the MHST")
    offered = page.get_by_role("group", name="Which local options did you offer? (optional)")
    offered.get_by_label("Kindly Online chat and counselling (Kindly Online (invented charity))").check()
    offered.get_by_label(
        "Mental Health Support Team in schools (Riverside Mental Health Support Team in Schools)"
    ).check()
    page.get_by_role("group", name="Which did the young person and family choose? (optional)").get_by_label(
        "Mental Health Support Team in schools (Riverside Mental Health Support Team in Schools)"
    ).check()
    page.get_by_role("group", name="Which grouping did you agree?").get_by_label("Getting Help", exact=True).check()
    page.get_by_label("Young person", exact=True).check()
    page.get_by_role("group", name="Did the young person agree with the grouping?").get_by_label(
        "Agreed", exact=True
    ).check()
    page.get_by_role("group", name="How was the parent or carer involved?").get_by_label("Not applicable").check()
    submit(page, "Save grouping")
    assert "The grouping has been recorded." in page.content(), page.locator("main").inner_text()[:1500]
    main = page.locator("main").inner_text()
    assert "Options the young person and family chose" in main and "Kindly Online chat and counselling" in main
    axe_clean(page, axe_check, "grouping-recorded-with-options")
    store = app.extensions["thrive"].local_store
    [obs] = [o for o in store.for_patient("Patient/pat-decide-1", "Observation") if "valueCodeableConcept" in o]
    lines = [line for n in obs["note"] for line in n["text"].split("\n")]
    assert any(
        line.startswith("Options the young person and family chose: Mental Health Support Team") for line in lines
    )
