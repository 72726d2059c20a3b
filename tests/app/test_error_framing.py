"""Issue 15 items 2 and 3 through the Flask test client: which pages the EHR may frame, and the
young person's identity on every page that is not inside the EHR's own frame.

Browser versions of both (Chromium, inside a real iframe and in a new window) are in
tests/app/hostile/test_browser_hostile.py.
"""

from __future__ import annotations

import pytest

from smart_app import create_app
from tests.support.app import TEST_ORIGIN, make_launch, test_config

EHR_UI = "https://ehr-ui.test.invalid"
OTHER_EHR_UI = "https://other-ehr-ui.test.invalid"


def frame_ancestors(response) -> str:
    return response.headers["Content-Security-Policy"].rsplit("frame-ancestors ", 1)[1]


@pytest.fixture
def two_ehr_app(tmp_path):
    cfg = test_config(tmp_path, journeys=False)
    cfg["ehr"].append(
        {
            "iss": "https://other-ehr.test.invalid/fhir",
            "client_id": "c2",
            "auth_method": "public",
            "frame_ancestors": [OTHER_EHR_UI],
        }
    )
    return create_app(cfg)


@pytest.mark.parametrize(
    "path", ["/no-such-page", "/l/no-such-launch/summary", "/l/no-such-launch/goals/", "/callback?state=stale&code=x"]
)
def test_error_pages_with_no_known_launch_may_show_inside_any_registered_ehr(two_ehr_app, path):
    """404, unknown launch, stale sign-in link: the relaunch page must show in the EHR's iframe."""
    r = two_ehr_app.test_client().get(path, base_url=TEST_ORIGIN)
    assert r.status_code in (400, 404)
    assert set(frame_ancestors(r).split()) == {EHR_UI, OTHER_EHR_UI}
    assert "*" not in frame_ancestors(r) and "'none'" not in frame_ancestors(r)
    assert "Relaunch the app" in r.get_data(as_text=True) or "relaunch the app" in r.get_data(as_text=True)


def test_expired_or_ended_launch_page_is_framed_by_its_own_ehr_only(two_ehr_app):
    launch = make_launch(two_ehr_app)
    two_ehr_app.extensions["thrive"].sessions.end_launch(launch.launch_id)
    r = launch.client().get(launch.url("summary"), base_url=TEST_ORIGIN)
    assert r.status_code == 401 and frame_ancestors(r) == EHR_UI


def test_launch_opened_in_another_browser_session_can_show_in_the_ehr(two_ehr_app):
    launch = make_launch(two_ehr_app)
    r = two_ehr_app.test_client().get(launch.url("summary"), base_url=TEST_ORIGIN)  # no binding cookie
    assert r.status_code == 403 and "'none'" not in frame_ancestors(r)


def test_pages_that_are_never_framed_stay_unframeable(two_ehr_app):
    client = two_ehr_app.test_client()
    for path in ("/", "/standalone", "/launch?iss=https://unknown.example/fhir&launch=x", "/launch"):
        assert frame_ancestors(client.get(path, base_url=TEST_ORIGIN)) == "'none'", path
    # an agency worker's launch is never framed (SA-03), its error pages included
    agency = make_launch(two_ehr_app, mode="standalone", organization_ref="Organization/school-1")
    two_ehr_app.extensions["thrive"].sessions.end_launch(agency.launch_id)
    ended = agency.client().get(agency.url("shared-plan"), base_url=TEST_ORIGIN)
    assert ended.status_code == 401 and frame_ancestors(ended) == "'none'"


def test_agency_launch_refused_a_clinician_page_is_not_framed(app_with_journeys):
    agency = make_launch(app_with_journeys, mode="standalone", organization_ref="Organization/school-1")
    r = agency.client().get(agency.url("goals/"), base_url=TEST_ORIGIN)
    assert r.status_code == 403 and frame_ancestors(r) == "'none'"


def test_no_registered_frame_origin_means_no_framing(tmp_path):
    cfg = test_config(tmp_path, journeys=False)
    cfg["ehr"][0]["frame_ancestors"] = []
    app = create_app(cfg)
    assert frame_ancestors(app.test_client().get("/no-such-page", base_url=TEST_ORIGIN)) == "'none'"


# --- issue 15 item 3: identity in a new window ------------------------------------------------------

BANNER = {
    "name": "EXAMPLE, Kit",
    "nhs_number": "9990000018",
    "nhs_number_display": "999 000 0018",
    "birth_date": "2011-02-03",
}


@pytest.mark.parametrize("dest,shown", [(None, True), ("document", True), ("iframe", False)])
def test_ehr_launch_shows_name_and_nhs_number_unless_inside_the_ehr_frame(app, dest, shown):
    """need_patient_banner=false holds only inside the EHR's frame; a new window has no EHR banner."""
    launch = make_launch(app, need_patient_banner=False, banner=BANNER)
    headers = {"Sec-Fetch-Dest": dest} if dest else {}
    html = launch.client().get(launch.url("summary"), base_url=TEST_ORIGIN, headers=headers).get_data(as_text=True)
    assert ('id="patient-name">EXAMPLE, Kit<' in html) is shown
    assert ("999 000 0018" in html) is shown


def test_banner_says_when_the_nhs_number_is_not_recorded(app):
    launch = make_launch(app, banner={"name": "EXAMPLE, Kit"})
    html = launch.client().get(launch.url("summary"), base_url=TEST_ORIGIN).get_data(as_text=True)
    assert 'id="patient-nhs-number">Not recorded in the EHR<' in html
