"""The Summary page and the agency (shared plan) view, on data saved through the real builders."""

from __future__ import annotations

import re
from datetime import UTC

from smart_app.summary.data import build_summary
from tests.support.app import TEST_ORIGIN, make_launch, seed_plan

AGENCY = "Organization/agency-school-1"


def _text(resp) -> str:
    html = resp.get_data(as_text=True)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_summary_shows_risk_first_and_every_section(app):
    seed_plan(app, "pat-1", share_with=(AGENCY,))
    launch = make_launch(app, patient_id="pat-1")
    resp = launch.client().get(launch.url("summary"), base_url=TEST_ORIGIN)
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    text = _text(resp)
    # the warning callout comes before the page heading: visible at first glance
    assert html.index('id="risk-alert"') < html.index("<h1>Summary</h1>")
    assert "nhsuk-warning-callout" in html
    assert "Getting Risk Support" in text and "There is an active safety plan" in text
    assert "Agreed" in text and "Dr Rowan Example" in text
    assert "Grouping history (2)" in text and "Reason for change: Risk increased" in text
    assert "Latest rating 6 out of 10" in text and "started at 2, up 4" in text
    # the Goals page's chart (reliable change band), with its description and the table as text alternative
    svg = html.split('<svg class="app-gbo-chart"', 1)[1].split("</svg>", 1)[0]
    assert 'role="img"' in svg and "<desc" in svg and "app-gbo-chart__band" in svg
    assert "Warning signs" in text and "Staying in my room" in text
    assert "Peer support group (example)" in text
    assert "Sandbox High School" in text  # shared with
    assert "Lead clinician" in text


def test_summary_without_risk_has_no_warning_and_empty_states(app):
    launch = make_launch(app, patient_id="pat-empty")
    text = _text(launch.client().get(launch.url("summary"), base_url=TEST_ORIGIN))
    assert "No grouping has been agreed yet" in text
    assert "There is no active safety plan" in text
    assert "not shared with any other organisation" in text
    seed_plan(app, "pat-2", risk=False)
    l2 = make_launch(app, patient_id="pat-2")
    html = l2.client().get(l2.url("summary"), base_url=TEST_ORIGIN).get_data(as_text=True)
    assert "Getting Help" in html
    assert "Active safety plan" in html  # still flagged: the plan is active even without risk support


def test_patient_banner_only_when_needed(app):
    shown = make_launch(
        app, banner={"name": "EXAMPLE, Kit", "nhs_number_display": "999 000 0018", "nhs_number": "9990000018"}
    )
    assert "EXAMPLE, Kit" in _text(shown.client().get(shown.url("summary"), base_url=TEST_ORIGIN))
    hidden = make_launch(app, need_patient_banner=False, banner={"name": "EXAMPLE, Kit"})
    # inside the EHR's frame (the browser says so): the EHR's own banner is on screen
    html = (
        hidden.client()
        .get(hidden.url("summary"), base_url=TEST_ORIGIN, headers={"Sec-Fetch-Dest": "iframe"})
        .get_data(as_text=True)
    )
    assert "thrive-patient-banner" not in html


def test_summary_data_orders_scores_and_ignores_other_patients(app):
    ids = seed_plan(app, "pat-3", scores=((7, 3),))
    seed_plan(app, "pat-4", scores=((1,),))
    s = build_summary(app.extensions["thrive"].local_store, "Patient/pat-3")
    assert [g.id for g in s.goals] == ids["goals"]
    assert [p.value for p in s.goals[0].scores] == [7, 3] and s.goals[0].change == -4
    assert s.risk_support and s.safety_plan.id == ids["safety_plan"]


# The agency view's reads from the shared store and their audit: tests/app/test_agency_shared_store.py


def test_agency_cannot_write_and_cannot_open_clinician_summary(app):
    seed_plan(app, "pat-6", share_with=(AGENCY,))
    a = make_launch(app, patient_id="pat-6", mode="standalone", organization_ref=AGENCY)
    client = a.client()
    r = client.get(a.url("summary"), base_url=TEST_ORIGIN)
    assert r.status_code == 303 and r.headers["Location"].endswith("/shared-plan")
    page = client.get(a.url("shared-plan"), base_url=TEST_ORIGIN).get_data(as_text=True)
    assert "The shared plan itself is read-only here; you can update the requests sent to your organisation" in page


def test_expired_consent_blocks_agency(app):
    from datetime import datetime, timedelta

    from smart_app.summary.agency import consent_for

    now = datetime.now(UTC)
    consent = {
        "resourceType": "Consent",
        "status": "active",
        "patient": {"reference": "Patient/p"},
        "provision": {
            "type": "permit",
            "period": {
                "start": (now - timedelta(days=30)).date().isoformat(),
                "end": (now - timedelta(days=1)).date().isoformat(),
            },
            "actor": [{"reference": {"reference": AGENCY}}],
        },
    }
    assert consent_for([consent], "Patient/p", AGENCY, now) is None
    consent["provision"]["period"]["end"] = now.date().isoformat()  # ends today: still valid today
    assert consent_for([consent], "Patient/p", AGENCY, now) is consent
    assert consent_for([consent], "Patient/other", AGENCY, now) is None
    consent["status"] = "inactive"
    assert consent_for([consent], "Patient/p", AGENCY, now) is None


def test_navigation_header_belongs_to_its_launch_and_page(app_with_journeys):
    """The header is rendered once per (launch, page) and reused: it must still mark the current
    page and carry the right launch in every link."""
    a = make_launch(app_with_journeys, patient_id="pat-nav-a")
    b = make_launch(app_with_journeys, patient_id="pat-nav-b")
    for launch in (a, b, a):
        client = launch.client()
        for page, label in (("summary", "Summary"), ("goals/", "Goals"), ("care-team/", "Care team")):
            html = client.get(launch.url(page), base_url=TEST_ORIGIN).get_data(as_text=True)
            header = html.split("</header>", 1)[0]
            links = re.findall(r'href="(/l/[^"/]+)/', header)
            assert links and set(links) == {f"/l/{launch.launch_id}"}, (page, set(links))
            current = re.findall(r'aria-current="page"><strong[^>]*>([^<]+)</strong>', header)
            assert current == [label], (page, current)


def test_agency_sign_in_without_a_staff_identity_sees_nothing_and_stores_nothing(app):
    """The read cannot be audited against a person: refused with a clear page, never a 500."""
    seed_plan(app, "pat-7", share_with=(AGENCY,))
    store = app.extensions["thrive"].local_store
    before = len(store.for_patient("Patient/pat-7"))
    for user_ref in (None, "RelatedPerson/parent-1", "Patient/pat-7"):
        launch = make_launch(app, patient_id="pat-7", mode="standalone", organization_ref=AGENCY, user_ref=user_ref)
        resp = launch.client().get(launch.url("shared-plan"), base_url=TEST_ORIGIN)
        assert resp.status_code == 403, (user_ref, resp.status_code)
        text = _text(resp)
        assert "We could not tell who you are" in text and "Staying in my room" not in text
    assert store.for_patient("Patient/pat-7", type="AuditEvent") == []
    assert len(store.for_patient("Patient/pat-7")) == before

    picker = make_launch(app, patient_id=None, mode="standalone", organization_ref=AGENCY, user_ref=None)
    resp = picker.client().get(picker.url("choose") + "?q=Tester", base_url=TEST_ORIGIN)
    assert resp.status_code == 403 and "We could not tell who you are" in _text(resp)
