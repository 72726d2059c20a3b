"""Issue 15 items 10-12: the safety plan form's rows, contributors and wording; consistent status
words and times; the chart's axis; /favicon.ico."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from smart_app import gbo
from smart_app.gbo import Rating

from .conftest import grouping_form, safety_plan_form, text_of, token


def _rows(html: str, section: str) -> list[str]:
    return re.findall(rf'id="({section}-\d+-text)"', html)


def test_add_another_row_adds_one_row_to_its_own_section_only(journey):
    first = journey.get("safety-plan/edit").get_data(as_text=True)
    before = {s: len(_rows(first, s)) for s in ("warning-signs", "internal-coping", "reasons-for-living")}
    form = safety_plan_form()
    form.update({"action": "add-row:warning-signs", "warning-signs-1-text": "", "warning-signs-1-holder": ""})
    # the drawn form had these rows; posting them back (blank spares included) is what a browser does
    for s, n in before.items():
        for i in range(n):
            form.setdefault(f"{s}-{i}-text", "")
    html = journey.post("safety-plan/edit", form).get_data(as_text=True)
    assert len(_rows(html, "warning-signs")) == 3  # the two posted, plus exactly one
    assert len(_rows(html, "internal-coping")) == before["internal-coping"]
    assert len(_rows(html, "reasons-for-living")) == before["reasons-for-living"]
    # the no-JavaScript redraw opens at the new row, not the top of the page
    assert 'formaction="/l/' in html and '#warning-signs-3-text"' in html
    assert journey.resources("CarePlan") == []  # nothing saved


def test_every_ticked_contributor_is_shown(journey):
    form = [(k, v) for k, v in safety_plan_form().items() if k != "contributors"]
    form += [
        ("contributors", "young-person"),
        ("contributors", "parent-carer"),
        ("contributors", "agency:northgate-academy"),
    ]
    assert journey.post("safety-plan/edit", form).status_code == 303
    page = journey.get("safety-plan/")
    written = re.search(r'id="plan-written-with">([^<]*)<', page.get_data(as_text=True)).group(1)
    assert (
        "TESTER, Sam" in written and "Parent or carer" in written and "Northgate Academy (invented school)" in written
    )
    journey.assert_all_valid()


def test_section_hints_are_for_people_and_the_review_example_is_in_the_future(journey):
    text = text_of(journey.get("safety-plan/edit"))
    assert "project addition" not in text and "Stanley-Brown" not in text
    assert "What each agency working with the young person" in text
    example = re.search(r"For example, (\d+) (\d+) (\d{4})\. The plan is out of date", text)
    assert example and date(int(example.group(3)), int(example.group(2)), int(example.group(1))) > date.today()


def test_referral_status_reads_the_same_on_the_services_page_and_the_summary(journey):
    journey.post("grouping/agree", grouping_form())
    journey.post("services/", {"token": token(), "service": "mhst", "kind": "referral", "note": "Brief CBT"})
    services, summary = text_of(journey.get("services/")), text_of(journey.get("summary"))
    assert "Sent, waiting for the service" in services and "Sent, waiting for the service" in summary
    assert "Requested" not in summary


def test_times_are_written_one_way_everywhere(journey):
    journey.post("grouping/agree", grouping_form())
    summary = text_of(journey.get("summary"))
    grouping = text_of(journey.get("grouping/"))
    assert not re.search(r"\b\d\d:\d\d\b", summary), "24-hour clock on the Summary"
    shown = re.search(r"\d{1,2} \w+ \d{4} at (\d{1,2}(:\d\d)?(am|pm)|midday|midnight)", summary)
    assert shown and shown.group(0) in grouping


def test_two_ratings_on_one_day_are_told_apart_on_the_axis():
    day = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    ratings = [Rating(day, 3), Rating(day + timedelta(hours=7, minutes=30), 5)]
    assert gbo.axis_labels(ratings) == ["2 Dec 9am", "2 Dec 4:30pm"]
    svg = gbo.chart_svg(ratings, chart_id="c", title="t")
    labels = re.findall(r'class="app-gbo-chart__date"[^>]*>([^<]+)<', svg)
    assert labels == ["2 Dec 9am", "2 Dec 4:30pm"]
    other_days = [Rating(date(2026, 12, 1), 3), Rating(date(2026, 12, 2), 5)]
    assert gbo.axis_labels(other_days) == ["1 Dec", "2 Dec"]


def test_chart_escapes_an_id_from_the_server():
    """The chart's ids come from the Goal's id, which a FHIR server chose: it must not inject markup."""
    ratings = [Rating(date(2025, 1, 1), 3), Rating(date(2025, 2, 1), 7)]
    svg = gbo.goal_chart('x"><script>alert(1)</script>', 1, "Sleep <better>", ratings)
    assert "<script>" not in svg
    assert "<better>" not in svg
    assert 'id="chart-x&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;-title"' in svg


def test_favicon_is_served(journey):
    resp = journey.client.get("/favicon.ico")
    assert resp.status_code == 200 and resp.data[:4] == b"\x00\x00\x01\x00"  # an ICO file
