"""The demo's agency path end to end: the agency worker signs in by standalone launch against the
shared store, reads the plan of the young person shared with them (Harper-style: the consent lives
only in the shared store), is refused the one not shared, and ``thrive audit`` lists both."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from thrive_demo.orchestrator import Demo
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
