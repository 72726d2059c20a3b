"""The demo's agency path end to end: the agency worker signs in by standalone launch against the
shared store, reads the plan of the young person shared with them (Harper-style: the consent lives
only in the shared store), is refused the one not shared, and ``thrive audit`` lists both."""

from __future__ import annotations

import re
import time
from datetime import date, timedelta

import pytest
import requests
from click.testing import CliRunner

from tests.support.browser import ehr_launch, saved, shared_record_loaded, submit
from thrive_demo.orchestrator import TRUST_REF, Demo
from thrive_fhir.cli import cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    d = Demo(tmp_path_factory.mktemp("demo-agency"), port_base=0, patients=25, say=lambda _m: None)
    d.start()
    yield d
    d.stop()


def _patient_id(label: str) -> str:
    return re.search(r"\(Patient/([^)]+)\)", label).group(1)


def _sign_in_and_pick(demo, patient_id: str):
    from .conftest import AppBrowser

    b = AppBrowser(demo.app_origin)
    login = b.go(demo.app_origin + "/standalone/start?org=agency")
    req = re.search(r'name="req" value="([^"]+)"', login.text).group(1)
    pick = b.go(demo.sb.authority.issuer + "/login", method="POST", data={"req": req, "user": "agency"})
    assert "select-patient" in pick.url, pick.text[:300]
    b.picker_page = pick.text
    page = b.go(demo.sb.authority.issuer + "/select-patient", method="POST", data={"req": req, "patient": patient_id})
    if "/consent" in page.url:  # the sandbox asks the user to approve the app's scopes
        scopes = re.findall(r'name="scope" value="([^"]+)" checked', page.text)
        page = b.go(
            demo.sb.authority.issuer + "/consent",
            method="POST",
            data={"req": req, "scope": scopes, "decision": "approve"},
        )
    return b, page


def test_banner_says_how_to_sign_in_and_whom_to_try(demo):
    text = demo.banner()
    assert "Sign in as an agency worker" in text and f"{demo.app_origin}/standalone" in text
    assert "sign in as user 'agency'" in text
    assert re.search(r"shared with .+: .+\(Patient/", text) and "NOT shared with" in text


def test_agency_reads_the_shared_plan_and_is_refused_the_other(demo):
    shared_label, other_label = demo.agency_people
    shared, other = _patient_id(shared_label), _patient_id(other_label)
    _b, page = _sign_in_and_pick(demo, shared)
    assert page.status_code == 200, (page.url, page.text[:500])
    assert "Shared plan" in page.text and "/shared-plan" in page.url
    assert 'id="safety-plan"' in page.text
    # the auth server's picker, reading as the agency worker, lists only young people shared with them
    assert shared in _b.picker_page and other not in _b.picker_page
    _b, refused = _sign_in_and_pick(demo, other)  # a forged choice: the store says no such young person
    assert refused.status_code == 400 and "Choose a patient from the list" in refused.text

    runner = CliRunner()
    conf = str(demo.workdir / "sync.toml")
    out = runner.invoke(
        cli, ["audit", "--patient", shared, "--source", demo.shared_base, "--auth", conf], catch_exceptions=False
    )
    assert out.exit_code == 0, out.output
    assert " ok " in out.output and demo.agency[0] in out.output
    out = runner.invoke(
        cli,
        ["audit", "--patient", other, "--source", demo.shared_base, "--auth", conf, "--json"],
        catch_exceptions=False,
    )
    assert out.exit_code == 0 and '"outcome":"4"' in out.output and "not shared" in out.output


@pytest.mark.browser
def test_agency_loop_in_chromium_with_axe(demo, browser_page, axe_check, screenshot):
    """In Chromium: the agency worker signs in (standalone), picks the shared young person at the
    auth server, reads the plan from the shared store, and acts on a Task their organisation owns."""
    import requests

    shared = _patient_id(demo.agency_people[0])
    agency_ref = demo.agency[0]
    # a referral Task for the shared young person owned by the agency (as the clinician's save would sync it)
    token = demo.sb.authority.mint_internal_token(demo.shared_base, "system/*.cruds")
    tid = "demo-agency-task-1"
    resp = requests.put(
        f"{demo.shared_base}/Task/{tid}",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"},
        json={
            "resourceType": "Task",
            "id": tid,
            "status": "requested",
            "intent": "order",
            "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]},
            "for": {"reference": f"Patient/{shared}"},
            "authoredOn": "2025-03-04T16:10:00Z",
            "owner": {"reference": agency_ref},
        },
        timeout=10,
    )
    assert resp.status_code in (200, 201), resp.text[:300]
    page = browser_page
    page.goto(demo.app_origin + "/standalone/start?org=agency")
    page.check("input[name=user][value=agency]")
    page.click("button[type=submit]")
    page.check(f"input[name=patient][value='{shared}']")
    page.click("form.panel button[type=submit]")
    if "/consent" in page.url:
        page.click("button[value=approve]")
    page.wait_for_url("**/shared-plan**")
    assert page.locator("h1").inner_text() == "Shared plan"
    assert page.locator(f"#task-{tid}").count() == 1
    axe_check(page, name="agency-shared-plan")
    screenshot(page, "agency-shared-plan")
    page.locator(f"#task-{tid} button[value=accept]").click()
    page.wait_for_url("**done=accepted**")
    assert "The request was accepted." in page.locator("#task-notice").inner_text()
    assert page.locator(f"#task-{tid} .task-status").inner_text() == "accepted"
    axe_check(page, name="agency-task-accepted")


def test_agency_worker_reads_nobody_in_the_ehr_store(demo):
    import requests

    authority = demo.sb.authority
    for user_id, expect_any in (("agency", False), ("clinician", True)):
        user = authority.registry.user(user_id)
        token = authority.mint_internal_token(
            demo.sb.fhir_base, "system/Patient.rs", user=user.fhirUser, organization=user.organization
        )
        bundle = requests.get(
            f"{demo.sb.fhir_base}/Patient",
            params={"_summary": "count"},
            timeout=10,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"},
        ).json()
        assert (bundle["total"] > 0) is expect_any, user_id


def _clean(where, axe_check, name: str) -> None:
    assert "Sorry, there is a problem" not in where.content(), name
    axe_check(where, name=name)  # fails on serious or critical violations


def _wait_synced(demo, timeout: float = 90.0) -> None:
    """Until the demo's sync worker (a child process) has pushed every save of the app to the store."""
    import time

    from thrive_fhir.localstore import LocalStore
    from thrive_fhir.localstore import outbox as queue

    store = LocalStore(f"sqlite:///{demo.workdir / 'app.db'}")
    try:
        deadline = time.monotonic() + timeout
        while True:
            fig = queue.figures(store)
            if fig["queued"] == 0 and fig["in_flight"] == 0 and fig["sent"] > 0:
                assert (fig["dead"], fig["conflicts"]) == (0, 0), fig
                return
            assert time.monotonic() < deadline, f"the sync worker did not push the saves: {fig}"
            time.sleep(0.5)
    finally:
        store.dispose()


@pytest.mark.browser
def test_the_whole_loop_in_chromium_with_axe(demo, browser, browser_page, axe_check, screenshot):
    """Issue 11 point 7 end to end, in Chromium against the running demo: the clinician (EHR launch)
    agrees a grouping, shares the plan with an agency (Consent), refers to the agency's service (a
    Task) and names the agency in the safety plan; the real sync worker pushes it to the real shared
    store; the agency worker signs in by standalone launch, reads the plan, accepts the referral and
    confirms the safety plan item; the clinician's Summary then shows both. axe-core on every page."""
    import requests

    from thrive_demo.orchestrator import LOOP_STANDALONE_KEY, LOOP_USER_ID

    loop_ref, loop_name = demo.loop_agency
    pid = _patient_id(demo.agency_people[1])  # a young person nobody has shared with this agency
    user = demo.sb.authority.registry.user(LOOP_USER_ID)
    agency_token = demo.sb.authority.mint_internal_token(
        demo.shared_base, "system/Patient.rs", user=user.fhirUser, organization=loop_ref
    )
    before = requests.get(
        f"{demo.shared_base}/Patient/{pid}", headers={"Authorization": f"Bearer {agency_token}"}, timeout=10
    )
    assert before.status_code == 404  # not shared yet: as if they did not exist

    # 1. the clinician, by EHR launch
    page = browser_page
    frame, base = ehr_launch(page, demo.sandbox_origin, pid)
    # The first Summary may say the shared record is still loading and reload itself when the read
    # is done: checking it mid-reload destroys axe's page (seen on a loaded machine).
    shared_record_loaded(frame)
    _clean(frame, axe_check, "loop-clinician-summary-before")
    frame.goto(base + "/grouping/agree")
    frame.get_by_label("What does the young person want to be different?").fill("Feel safe at home and school")
    frame.get_by_label("What needs did you talk about?").fill("Self-harm risk; family stress")
    frame.get_by_label("What options did you consider together?").fill("Multi-agency safety plan")
    frame.get_by_label("Getting Risk Support").check()
    frame.get_by_label("Young person", exact=True).check()
    frame.get_by_role("group", name="Did the young person agree with the grouping?").get_by_label(
        "Agreed", exact=True
    ).check()
    frame.get_by_role("group", name="How was the parent or carer involved?").get_by_label("Not applicable").check()
    submit(frame, "Save grouping")
    saved(frame, "The grouping has been recorded.")

    frame.goto(base + "/safety-plan/edit")
    frame.get_by_label("Warning signs: item 1").fill("Staying in my room, not answering messages")
    frame.locator("[name='agency-actions-0-text']").fill("A social worker visits every Tuesday after school")
    frame.locator("[name='agency-actions-0-holder']").select_option(label=loop_name)
    review = date.today() + timedelta(days=60)
    frame.get_by_label("Day").fill(str(review.day))
    frame.get_by_label("Month").fill(str(review.month))
    frame.get_by_label("Year").fill(str(review.year))
    submit(frame, "Save safety plan")
    saved(frame, "The safety plan has been saved.")
    _clean(frame, axe_check, "loop-clinician-safety-plan")
    screenshot(page, "loop-clinician-safety-plan")

    frame.goto(base + "/sharing/")
    frame.get_by_label(loop_name).check()
    frame.get_by_role("group", name="Can the young person decide about sharing for themselves?").get_by_label(
        "Yes, the young person can decide for themselves"
    ).check()
    frame.get_by_role("group", name="Who agreed to share the plan?").get_by_label("The young person").check()
    frame.get_by_label("They have agreed to share the plan with the agencies ticked, until this date").check()
    submit(frame, "Save sharing choices")
    saved(frame, "The sharing agreement has been saved.")
    _clean(frame, axe_check, "loop-clinician-sharing")

    frame.goto(base + "/services/")
    frame.get_by_label("Keeping Safe multi-agency team (AMBIT-informed)", exact=False).first.check()
    frame.get_by_label("Referral", exact=True).check()
    frame.get_by_label("What are you asking the service to do?", exact=False).fill("Joint safety planning")
    submit(frame, "Save")
    saved(frame, "The referral has been sent.")
    _clean(frame, axe_check, "loop-clinician-referral")

    # 2. the change syncs: the demo's sync worker process pushes the saves to the shared store
    _wait_synced(demo)

    # 3. the agency worker, by standalone launch against the shared store, in their own browser
    context = browser.new_context(viewport={"width": 1024, "height": 900})
    try:
        agency = context.new_page()
        agency.set_default_timeout(20000)
        agency.goto(f"{demo.app_origin}/standalone/start?org={LOOP_STANDALONE_KEY}")
        agency.check(f"input[name=user][value={LOOP_USER_ID}]")
        agency.click("button[type=submit]")
        agency.check(f"input[name=patient][value='{pid}']")  # the picker lists them now: shared
        agency.click("form.panel button[type=submit]")
        if "/consent" in agency.url:
            agency.click("button[value=approve]")
        agency.wait_for_url("**/shared-plan**")
        assert agency.locator("h1").inner_text() == "Shared plan"
        assert "A social worker visits every Tuesday after school" in agency.locator("#safety-plan").inner_text()
        _clean(agency, axe_check, "loop-agency-shared-plan")
        screenshot(agency, "loop-agency-shared-plan")
        accept = agency.locator("#agency-tasks button[value=accept]")
        assert accept.count() == 1, agency.locator("#agency-tasks").inner_text()
        accept.click()
        agency.wait_for_url("**done=accepted**")
        assert "The request was accepted." in agency.locator("#task-notice").inner_text()
        _clean(agency, axe_check, "loop-agency-accepted")
        confirm = agency.locator("#safety-plan button[id$='-confirm']")
        assert confirm.count() == 1
        confirm.click()
        agency.wait_for_url("**done=confirmed**")
        assert agency.locator("#safety-plan .thrive-confirmed").count() == 1
        _clean(agency, axe_check, "loop-agency-confirmed")
        screenshot(agency, "loop-agency-confirmed")
    finally:
        context.close()

    # 4. the clinician launches again: the Summary reads the shared store and shows both
    frame, _base = ehr_launch(page, demo.sandbox_origin, pid)
    shared_record_loaded(frame)  # the first Summary may say the shared record is still loading
    requests_text = frame.locator("#referrals, #signposting, main").first.inner_text()
    assert "Accepted by the service" in requests_text
    plan = frame.locator("#safety-plan").inner_text()
    assert "Confirmed by" in plan and "Kit Sandbox" in plan, plan
    _clean(frame, axe_check, "loop-clinician-summary-after")
    screenshot(page, "loop-clinician-summary-after")


def test_the_app_is_told_when_a_shared_plan_changes(demo):
    """The demo's app subscribes to the shared store (handshake), and a change to a young person's
    plan in the store reaches it as an id-only notification naming that young person."""
    changes = demo.app.extensions["thrive"].changes
    deadline = time.time() + 30
    while not changes.subscription_active(120) and time.time() < deadline:
        time.sleep(0.2)
    assert changes.subscription_active(120), "no handshake from the shared store"
    pid = _patient_id(demo.agency_people[0])
    token = demo.sb.authority.mint_internal_token(demo.shared_base, "system/*.cruds", organization=TRUST_REF)
    auth = {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}
    found = requests.get(f"{demo.shared_base}/Goal?patient={pid}&_count=1", headers=auth, timeout=10).json()
    goal = found["entry"][0]["resource"]
    before = time.time()
    assert not changes.changed_after([pid], before)
    put = requests.put(
        f"{demo.shared_base}/Goal/{goal['id']}",
        json={k: v for k, v in goal.items() if k != "meta"} | {"description": {"text": "Feel calmer at school"}},
        headers={**auth, "Content-Type": "application/fhir+json"},
        timeout=10,
    )
    assert put.status_code == 200, put.text[:300]
    deadline = time.time() + 15
    while not changes.changed_after([pid], before) and time.time() < deadline:
        time.sleep(0.1)
    assert changes.changed_after([pid], before)
