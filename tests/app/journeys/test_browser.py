"""End to end in a real browser (Debian Chromium via Playwright): a clinician walks every journey
in the app served over loopback HTTP; every page is checked with axe-core (no serious or critical
violations) and screenshotted under test-artifacts/screenshots/journeys-*.png."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from smart_app import create_app
from smart_app.context import COOKIE_NAME
from tests.support.app import make_launch, test_config
from tests.support.browser import saved, submit

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from thrive_fhir.sandbox.server import ServerThread

    server = ServerThread(name="journeys-app")
    app = create_app(test_config(tmp_path_factory.mktemp("e2e"), public_base_url=server.origin))
    server.start(app)
    yield app, server.origin
    server.stop()


def _cookie(launch, origin):
    """The launch's binding cookie, as the app would have set it after a real EHR launch (the
    full OAuth launch is covered by tests/app; here the browser walks the journeys)."""
    return {
        "name": COOKIE_NAME,
        "value": launch.binding,
        "domain": "127.0.0.1",
        "path": "/",
        "secure": True,
        "httpOnly": True,
        "sameSite": "None",
    }


@pytest.fixture
def page_in_launch(served, browser_page):
    app, origin = served
    launch = make_launch(app, patient_id="pat-e2e-1")
    browser_page.context.add_cookies([_cookie(launch, origin)])
    browser_page.goto_launch = lambda suffix: browser_page.goto(f"{origin}{launch.url(suffix)}")
    return browser_page, app, launch


def _check(page, axe_check, screenshot, name):
    assert "Sorry, there is a problem" not in page.content(), name
    violations = axe_check(page, name=name)
    # no axe-core finding of any impact level, minor and moderate included
    assert not violations, (name, [(v["id"], v["impact"], [n["target"] for n in v["nodes"][:3]]) for v in violations])
    screenshot(page, f"journeys-{name}")


def test_clinician_walks_every_journey(page_in_launch, axe_check, screenshot):
    page, app, _launch = page_in_launch

    # 1. grouping: first an empty submit shows the error summary, focused links to fields
    page.goto_launch("grouping/agree")
    _check(page, axe_check, screenshot, "grouping-form")
    submit(page, "Save grouping")
    assert page.locator(".nhsuk-error-summary").is_visible(), page.content()[-3000:]
    _check(page, axe_check, screenshot, "grouping-errors")
    page.get_by_label("What does the young person want to be different?").fill("Go to school without feeling sick")
    page.get_by_label("What needs did you talk about?").fill("Anxiety about school")
    page.get_by_label("What options did you consider together?").fill("Online support, MHST")
    page.get_by_label("Getting Risk Support").check()
    page.get_by_label("Young person", exact=True).check()
    page.get_by_role("group", name="Did the young person agree with the grouping?").get_by_label(
        "Agreed", exact=True
    ).check()
    page.get_by_role("group", name="How was the parent or carer involved?").get_by_label("Not applicable").check()
    submit(page, "Save grouping")
    saved(page, "The grouping has been recorded.")
    _check(page, axe_check, screenshot, "grouping-saved")

    # 3. safety plan (before goals, so the risk flag comes up)
    page.goto_launch("safety-plan/edit")
    _check(page, axe_check, screenshot, "safety-plan-form")
    page.get_by_label("Warning signs: item 1").fill("Staying in my room")
    page.get_by_label("Things I can do on my own: item 1").fill("Drawing")
    page.get_by_role("button", name="Add another row to Reasons for living").click()  # in place, with JavaScript
    page.get_by_label("Reasons for living: item 2").fill("My dog")
    review = date.today() + timedelta(days=60)
    page.get_by_label("Day").fill(str(review.day))
    page.get_by_label("Month").fill(str(review.month))
    page.get_by_label("Year").fill(str(review.year))
    submit(page, "Save safety plan")
    saved(page, "The safety plan has been saved.")
    _check(page, axe_check, screenshot, "safety-plan-saved")
    page.goto_launch("safety-plan/print")
    page.emulate_media(media="print")
    assert not page.locator(".nhsuk-header").is_visible()
    _check(page, axe_check, screenshot, "safety-plan-print")
    page.emulate_media(media="screen")

    # 2. goals: add two, rate both on one screen with the keyboard-friendly radios
    page.goto_launch("goals/")
    for words in ("Sleep through the night", "See friends at weekends"):
        page.get_by_label("What is the goal, in the young person's own words?").fill(words)
        page.get_by_role("group", name="How close are they to this goal today? (optional)").get_by_label(
            "3", exact=True
        ).check()
        submit(page, "Add goal")
        saved(page, "The goal has been added.")
    first = page.get_by_role("group", name="Goal 1: Sleep through the night")
    first.get_by_label("3", exact=True).focus()
    page.keyboard.press("ArrowRight")  # radio groups move with the arrow keys
    page.keyboard.press("ArrowRight")
    page.get_by_role("group", name="Goal 2: See friends at weekends").get_by_label("7", exact=True).check()
    submit(page, "Save ratings")
    assert "The ratings have been saved." in page.content()
    assert page.locator("svg.app-gbo-chart").count() == 2
    _check(page, axe_check, screenshot, "goals")

    # 4. signposting and referral
    page.goto_launch("services/")
    page.get_by_label("Keeping Safe multi-agency team (AMBIT-informed)", exact=False).first.check()
    page.get_by_label("Referral", exact=True).check()
    page.get_by_label("What are you asking the service to do?", exact=False).fill("Joint safety planning")
    submit(page, "Save")
    saved(page, "The referral has been sent.")
    assert "Sent, waiting for the service" in page.content()
    _check(page, axe_check, screenshot, "services")

    # 5. sharing consent
    page.goto_launch("sharing/")
    page.get_by_label("Northgate Academy (invented school)").check()
    page.get_by_label("Exampleshire Council Children's Services").check()
    page.get_by_role("group", name="Can the young person decide about sharing for themselves?").get_by_label(
        "Yes, the young person can decide for themselves"
    ).check()
    page.get_by_role("group", name="Who agreed to share the plan?").get_by_label("The young person").check()
    page.get_by_label("They have agreed to share the plan with the agencies ticked, until this date").check()
    submit(page, "Save sharing choices")
    saved(page, "The sharing agreement has been saved.")
    submit(page, "Withdraw sharing with Northgate Academy (invented school)")
    assert "Stop sharing the plan with Northgate Academy (invented school)?" in page.content()
    _check(page, axe_check, screenshot, "sharing-confirm-withdraw")
    submit(page, "Yes, stop sharing")
    saved(page, "Sharing has been withdrawn.")
    _check(page, axe_check, screenshot, "sharing")

    # 7. care team: a parent by name and an agency worker with their role
    page.goto_launch("care-team/")
    _check(page, axe_check, screenshot, "care-team-empty")
    page.get_by_label("A parent or carer").check()
    page.get_by_label("First name").fill("Jo")
    page.get_by_label("Last name").fill("Example")
    page.get_by_label("Who they are to the young person").select_option("MTH")
    submit(page, "Add to the care team")
    saved(page, "The care team has been updated.")
    page.get_by_label("An agency worker from the directory").check()
    page.get_by_label("Agency", exact=True).select_option(label="Northgate Academy (invented school)")
    page.get_by_label("What they do for the young person", exact=False).fill("Designated safeguarding lead")
    submit(page, "Add to the care team")
    saved(page, "The care team has been updated.")
    assert "Jo Example" in page.content() and "Designated safeguarding lead" in page.content()
    _check(page, axe_check, screenshot, "care-team")

    # 6. ending help
    page.goto_launch("ending/")
    _check(page, axe_check, screenshot, "ending-form")
    page.get_by_label("What did you talk about: the limits of help, the ending and what happens next?").fill(
        "What the team can and cannot do; how to come back"
    )
    page.get_by_role("group", name="What is the grouping at the end of help?").get_by_label(
        "Getting Advice and Signposting"
    ).check()
    page.get_by_label("If it has changed from Getting Risk Support, why?").select_option("risk-reduced")
    page.get_by_role("group", name="Did the young person agree with ending help?").get_by_label(
        "Agreed", exact=True
    ).check()
    for group in page.get_by_role("group", name="How did goal").all():
        group.get_by_label("Achieved", exact=True).check()
    # what is still open is asked about, one by one
    page.get_by_role("group", name="What happens to it?").get_by_label("End the safety plan").check()
    page.get_by_role("group", name="keep it open?").get_by_label("Keep the referral open").check()
    page.get_by_role("group", name="Keep sharing it?").get_by_label("Stop sharing now").check()
    submit(page, "Record the ending of help")
    saved(page, "The ending of help has been recorded.")
    _check(page, axe_check, screenshot, "ending-saved")

    store = app.extensions["thrive"].local_store
    types = sorted({r["resourceType"] for r in store.for_patient("Patient/pat-e2e-1")})
    assert types == [
        "CarePlan",
        "CareTeam",
        "Consent",
        "EpisodeOfCare",
        "Flag",
        "Goal",
        "Observation",
        "Provenance",
        "RelatedPerson",
        "ServiceRequest",
        "Task",
    ]
    [flag] = store.for_patient("Patient/pat-e2e-1", "Flag")
    assert flag["status"] == "inactive"  # raised with Getting Risk Support + plan, cleared at the ending


def test_small_screen_and_no_javascript(served, browser, axe_check, screenshot):
    app, origin = served
    launch = make_launch(app, patient_id="pat-e2e-2")
    context = browser.new_context(viewport={"width": 360, "height": 740}, java_script_enabled=False)
    try:
        context.add_cookies([_cookie(launch, origin)])
        page = context.new_page()
        page.goto(f"{origin}{launch.url('goals/')}")
        page.get_by_label("What is the goal, in the young person's own words?").fill("Sleep better")
        submit(page, "Add goal")
        saved(page, "The goal has been added.")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, width  # no sideways scrolling on a small phone
        screenshot(page, "journeys-goals-small-screen-no-js")
    finally:
        context.close()
