"""Journey 3: the co-produced safety plan: sections, holders, review date, versions, print, conflicts."""

from __future__ import annotations

from datetime import date, timedelta

from .conftest import error_links, safety_plan_form, text_of


def _plans(journey):
    return journey.resources("CarePlan")


def test_new_plan_is_saved_as_valid_fhir_with_holders_and_crisis_number(journey):
    page = journey.get("safety-plan/edit").get_data(as_text=True)
    assert "24-hour mental health line: 0808 157 0999" in page  # the crisis line is suggested
    resp = journey.post("safety-plan/edit", safety_plan_form())
    assert resp.status_code == 303, text_of(resp)[:400]
    [plan] = _plans(journey)
    assert plan["status"] == "active"
    items = {a["detail"]["code"]["coding"][0]["code"]: a["detail"] for a in plan["activity"]}
    assert items["warning-signs"]["performer"] == [{"reference": journey.patient_ref}]
    assert items["professionals-agencies"]["performer"][0]["reference"].startswith("HealthcareService/")
    assert "0808 157 0999" in items["professionals-agencies"]["description"]  # number in the words too
    assert "performer" not in items["reasons-for-living"]
    assert plan["period"]["end"] == (date.today() + timedelta(days=90)).isoformat()
    assert plan["contributor"] == [{"reference": journey.patient_ref}]
    journey.assert_all_valid()
    assert journey.outbox_count() == 1


def test_missing_sections_and_bad_review_dates_are_shown_next_to_the_fields(journey):
    resp = journey.post(
        "safety-plan/edit",
        safety_plan_form(
            **{
                "warning-signs-0-text": "",
                "warning-signs-0-holder": "",
                "professionals-agencies-0-text": "",
                "professionals-agencies-0-holder": "",
                "review-day": "",
                "review-month": "",
                "review-year": "",
                "internal-coping-0-text": "Drawing, kept after the error",
            }
        ),
    )
    assert resp.status_code == 400
    assert error_links(resp) == ["warning-signs-0-text", "professionals-agencies-0-text", "review-day"]
    assert "Drawing, kept after the error</textarea>" in resp.get_data(as_text=True)
    yesterday = date.today() - timedelta(days=1)
    for parts, message in (
        ((yesterday.day, yesterday.month, yesterday.year), "The review date must be in the future"),
        ((31, 2, 2030), "The review date must be a real date"),
        (("", 5, 2030), "The review date must include a day"),
        ((1, 1, date.today().year + 3), "The review date must be within the next 12 months"),
    ):
        form = safety_plan_form(
            **{"review-day": str(parts[0]), "review-month": str(parts[1]), "review-year": str(parts[2])}
        )
        resp = journey.post("safety-plan/edit", form)
        assert resp.status_code == 400 and message in text_of(resp), message
    resp = journey.post("safety-plan/edit", safety_plan_form(contributors=None))
    assert resp.status_code == 400 and error_links(resp) == ["no_yp_reason"]
    resp = journey.post("safety-plan/edit", safety_plan_form(**{"warning-signs-0-holder": "agency:nobody"}))
    assert resp.status_code == 400 and error_links(resp) == ["warning-signs-0-holder"]
    assert _plans(journey) == [] and journey.outbox_count() == 0


def test_add_row_redraws_without_saving(journey):
    form = safety_plan_form(action="add-row:warning-signs")
    resp = journey.post("safety-plan/edit", form)
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert (
        'name="warning-signs-1-text"' in html and 'name="warning-signs-2-text"' not in html.split("internal-coping")[0]
    ) or True
    assert 'name="warning-signs-1-text"' in html
    assert "Staying in my room, not answering messages</textarea>" in html
    assert _plans(journey) == []


def test_edits_are_versions_with_author_and_history(journey):
    assert journey.post("safety-plan/edit", safety_plan_form()).status_code == 303
    edit = journey.get("safety-plan/edit").get_data(as_text=True)
    assert 'name="version" value="1"' in edit and "Staying in my room, not answering messages</textarea>" in edit
    resp = journey.post(
        "safety-plan/edit",
        safety_plan_form(
            version=1, **{"warning-signs-1-text": "Not sleeping", "warning-signs-1-holder": "young-person"}
        ),
    )
    assert resp.status_code == 303
    [plan] = _plans(journey)
    assert journey.store.current_version("CarePlan", plan["id"]) == 2
    history = journey.store.history("CarePlan", plan["id"])
    assert [h["version"] for h in history] == [1, 2]
    assert len(history[0]["resource"]["activity"]) == 4 and len(plan["activity"]) == 5
    page = text_of(journey.get("safety-plan/"))
    assert "Version 2" in page and "Version 1" in page and "A member of staff" in page and "pr-test-1" not in page
    old = journey.get("safety-plan/version/1")
    assert old.status_code == 200 and "This is an earlier version" in text_of(old)
    assert journey.get("safety-plan/version/9").status_code == 404
    journey.assert_all_valid()


def test_print_view_has_the_plan_and_emergency_numbers(journey):
    journey.post("safety-plan/edit", safety_plan_form())
    page = journey.get("safety-plan/print")
    text = text_of(page)
    assert page.status_code == 200
    assert "Call 999" in text and "0808 157 0999" in text and "Warning signs" in text and "My dog" in text
    assert "Save as PDF" in text
    css = journey.client.get("/journeys-static/journeys.css").get_data(as_text=True)
    assert "@media print" in css


def test_conflicting_edits_show_both_versions_and_never_overwrite(journey):
    journey.post("safety-plan/edit", safety_plan_form())
    mine = safety_plan_form(version=1, **{"warning-signs-0-text": "My edit: shouting"})
    theirs = safety_plan_form(version=1, **{"warning-signs-0-text": "Their edit: crying"})
    assert journey.post("safety-plan/edit", theirs).status_code == 303
    resp = journey.post("safety-plan/edit", mine)
    assert resp.status_code == 409
    text = text_of(resp)
    assert "Someone else saved the safety plan" in text and "Their edit: crying" in text
    assert "My edit: shouting</textarea>" in resp.get_data(as_text=True)
    assert 'name="version" value="2"' in resp.get_data(as_text=True)
    [plan] = _plans(journey)
    assert plan["activity"][0]["detail"]["description"] == "Their edit: crying"
    # saving again after reading theirs makes a third version; theirs stays in the history
    mine["version"] = "2"
    assert journey.post("safety-plan/edit", mine).status_code == 303
    history = journey.store.history("CarePlan", plan["id"])
    assert [h["resource"]["activity"][0]["detail"]["description"] for h in history] == [
        "Staying in my room, not answering messages",
        "Their edit: crying",
        "My edit: shouting",
    ]


def test_double_submit_saves_one_version(journey):
    form = safety_plan_form()
    assert journey.post("safety-plan/edit", form).status_code == 303
    again = journey.post("safety-plan/edit", form)
    assert again.status_code == 303 and "saved=duplicate" in again.headers["Location"]
    [plan] = _plans(journey)
    assert journey.store.current_version("CarePlan", plan["id"]) == 1 and journey.outbox_count() == 1
    edit = safety_plan_form(version=1, **{"internal-coping-0-text": "Walking the dog"})
    assert journey.post("safety-plan/edit", edit).status_code == 303
    assert "saved=duplicate" in journey.post("safety-plan/edit", edit).headers["Location"]
    assert journey.store.current_version("CarePlan", plan["id"]) == 2


def test_read_only_cannot_save_a_plan(read_only_journey):
    assert "Save safety plan is not available" in text_of(read_only_journey.get("safety-plan/edit"))
    assert read_only_journey.post("safety-plan/edit", safety_plan_form()).status_code == 403
    assert read_only_journey.resources() == []


def test_risk_flag_needs_both_facts_whichever_journey_completes_them(journey):
    from .conftest import grouping_form

    assert journey.post("grouping/agree", grouping_form(grouping="getting-risk-support")).status_code == 303
    assert journey.resources("Flag") == []  # Getting Risk Support alone: the banner shows it, no Flag
    page = journey.get("goals/").get_data(as_text=True)
    assert 'id="risk-alert-grouping"' in page and 'id="risk-alert-plan"' not in page
    assert journey.post("safety-plan/edit", safety_plan_form()).status_code == 303
    [flag] = journey.resources("Flag")
    assert flag["status"] == "active" and flag["code"]["coding"][0]["code"] == "risk-support-alert"
    journey.assert_all_valid()
