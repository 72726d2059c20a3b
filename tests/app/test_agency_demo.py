"""The demo's agency path end to end: the agency worker signs in by standalone launch against the
shared store, reads the plan of the young person shared with them (Harper-style: the consent lives
only in the shared store), is refused the one not shared, and ``thrive audit`` lists both."""

from __future__ import annotations

import re
from urllib.parse import urljoin

import pytest
from click.testing import CliRunner

from thrive_fhir.cli import cli
from thrive_fhir.sandbox.demo import Demo

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
        page = b.go(demo.sb.authority.issuer + "/consent", method="POST",
                    data={"req": req, "scope": scopes, "decision": "approve"})
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
    out = runner.invoke(cli, ["audit", "--patient", shared, "--source", demo.shared_base, "--auth", conf],
                        catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert " ok " in out.output and demo.agency[0] in out.output
    out = runner.invoke(cli, ["audit", "--patient", other, "--source", demo.shared_base, "--auth", conf, "--json"],
                        catch_exceptions=False)
    assert out.exit_code == 0 and '"outcome":"4"' in out.output and "not shared" in out.output
