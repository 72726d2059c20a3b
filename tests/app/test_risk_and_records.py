"""One definition of the risk state (banner, Summary, Flag) and one records read per page."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from sqlalchemy import event

from smart_app import records, risk
from tests.support.app import TEST_ORIGIN, make_launch, seed_plan
from thrive_fhir.localstore import ChangeSet

AGENCY = "Organization/agency-school-1"
PAGES = ("summary", "grouping/", "goals/", "safety-plan/", "services/", "sharing/", "ending/")


def _text(resp) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", resp.get_data(as_text=True)))


def _plan(status="active", end: date | None = None, safety=True) -> dict:
    category = [
        {
            "coding": [
                {
                    "system": "https://thrive-fhir.org/fhir/CodeSystem/thrive-concepts",
                    "code": "safety-plan" if safety else "support-plan",
                }
            ]
        }
    ]
    plan = {"resourceType": "CarePlan", "id": "cp-1", "status": status, "category": category}
    if end:
        plan["period"] = {"start": "2020-01-01", "end": end.isoformat()}
    return plan


def test_assess_is_the_one_definition():
    today = date(2025, 3, 10)
    both = risk.assess("getting-risk-support", _plan(end=today), today)
    assert both.risk_support and both.plan_active and both.flag_wanted and not both.plan_overdue
    overdue = risk.assess("getting-risk-support", _plan(end=today - timedelta(days=1)), today)
    assert overdue.has_plan and overdue.plan_overdue and not overdue.plan_active and not overdue.flag_wanted
    assert overdue.any  # still shown: the plan is in place, its review is late
    assert not risk.assess("getting-help", _plan(end=today), today).flag_wanted
    assert not risk.assess("getting-risk-support", None, today).flag_wanted
    assert not risk.assess("getting-risk-support", _plan(status="completed", end=today), today).has_plan
    assert not risk.assess(None, _plan(end=today, safety=False), today).has_plan  # another kind of plan
    assert risk.assess(None, _plan(), today).plan_active  # no review date recorded: not out of date
    assert not risk.assess(None, None, today).any


def test_banner_shows_each_fact_first_on_every_page(app_with_journeys):
    seed_plan(app_with_journeys, "pat-risk")
    launch = make_launch(app_with_journeys, patient_id="pat-risk")
    client = launch.client()
    for page in PAGES:
        resp = client.get(launch.url(page), base_url=TEST_ORIGIN)
        assert resp.status_code == 200, page
        html = resp.get_data(as_text=True)
        assert html.index('id="risk-alert"') < html.index("<h1"), page  # before the page's own content
        label = _text(resp).split("Important:", 1)[1][:80]
        assert "Getting Risk Support" in label and "Active safety plan" in label, (page, label)
        assert 'id="risk-alert-grouping"' in html and 'id="risk-alert-plan"' in html


def test_plan_past_its_review_date_is_shown_as_overdue_everywhere(app_with_journeys):
    ids = seed_plan(app_with_journeys, "pat-late", risk=False)
    store = app_with_journeys.extensions["thrive"].local_store
    plan = store.current("CarePlan", ids["safety_plan"])
    past = date.today() - timedelta(days=3)
    plan["period"]["end"] = past.isoformat()
    with store.session() as s:
        store.record(
            s,
            ChangeSet(
                patient_key="Patient/pat-late",
                author_ref="Practitioner/pr-test-1",
                organization_ref="Organization/o",
                activity="update",
            ).put(plan, 1),
        )
    launch = make_launch(app_with_journeys, patient_id="pat-late")
    client = launch.client()
    summary = _text(client.get(launch.url("summary"), base_url=TEST_ORIGIN))
    assert "Safety plan review overdue" in summary and "Review overdue" in summary
    assert "Getting Risk Support" not in summary.split("Summary", 1)[0]
    goals = _text(client.get(launch.url("goals/"), base_url=TEST_ORIGIN))
    assert "Safety plan review overdue" in goals and past.strftime("%-d %B %Y") in goals


# The agency view's risk banner (shown only after the consent check): tests/app/test_agency_shared_store.py


@pytest.fixture
def record_reads(app_with_journeys):
    """Counts SELECTs on the local store's current-resource table (one list per test)."""
    engine = app_with_journeys.extensions["thrive"].local_store.engine
    seen: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and re.search(r"\blocal_resource\b", statement):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    yield seen
    event.remove(engine, "before_cursor_execute", count)


@pytest.mark.parametrize("page", ["summary", "goals/", "grouping/", "safety-plan/", "sharing/"])
def test_each_page_reads_the_young_persons_records_once(app_with_journeys, record_reads, page):
    seed_plan(app_with_journeys, "pat-once", share_with=(AGENCY,))
    launch = make_launch(app_with_journeys, patient_id="pat-once")
    client = launch.client()
    record_reads.clear()
    resp = client.get(launch.url(page), base_url=TEST_ORIGIN)
    assert resp.status_code == 200
    assert len(record_reads) == 1, record_reads  # banner + page share one snapshot with versions


def test_snapshot_versions_match_contents_and_a_save_forgets_it(app_with_journeys):
    ids = seed_plan(app_with_journeys, "pat-snap")
    store = app_with_journeys.extensions["thrive"].local_store
    with app_with_journeys.test_request_context():
        first = records.of(store, "Patient/pat-snap")
        assert records.of(store, "Patient/pat-snap") is first  # one read per request
        assert first.safety_plan.id == ids["safety_plan"] and first.safety_plan.version == 1
        assert [g.id for g in first.goals] == ids["goals"]
        assert [r.score for r in first.goals[0].ratings] == [2, 4, 6]
        assert first.goals[0].ratings[0].rater == "Patient/pat-snap"
        assert first.current_grouping.code == "getting-risk-support"
        assert first.care_team is not None
        records.forget()
        assert records.of(store, "Patient/pat-snap") is not first


def test_agency_launch_cannot_open_the_clinical_teams_pages(app_with_journeys):
    """Journey pages show a young person's records without the sharing-consent check, so they are
    for EHR (clinician) launches only; an agency worker reads the shared plan page instead."""
    seed_plan(app_with_journeys, "pat-agency", share_with=(AGENCY,))
    agency = make_launch(
        app_with_journeys, patient_id="pat-agency", mode="standalone", organization_ref="Organization/x"
    )
    client = agency.client()
    for page in (*PAGES[1:], "care-team/", "safety-plan/print", "grouping/agree"):
        resp = client.get(agency.url(page), base_url=TEST_ORIGIN)
        assert resp.status_code == 403, page
        assert "Staying in my room" not in resp.get_data(as_text=True) and "Getting Risk Support" not in _text(resp)
    html = client.get(agency.url("shared-plan"), base_url=TEST_ORIGIN).get_data(as_text=True)
    nav = re.findall(r'navigation-link" href="[^"]+/([a-z-]+)/?"', html)
    assert nav == ["summary"]  # no links to the clinical team's pages
    clinician = make_launch(app_with_journeys, patient_id="pat-agency")
    assert clinician.client().get(clinician.url("shared-plan"), base_url=TEST_ORIGIN).status_code == 404
