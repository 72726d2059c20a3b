"""Journey 1: agreeing a grouping by shared decision making."""

from __future__ import annotations

import re

from thrive_fhir import canonical

from .conftest import error_links, grouping_form, safety_plan_form, text_of, token


def _groupings(journey):
    return [o for o in journey.resources("Observation") if o["code"]["coding"][0]["code"] == "thrive-grouping"]


def test_first_grouping_is_saved_as_valid_fhir_with_an_outbox_row(journey):
    assert journey.outbox_count() == 0
    resp = journey.post("grouping/agree", grouping_form())
    assert resp.status_code == 303, text_of(resp)[:500]
    assert "saved=grouping" in resp.headers["Location"]
    [obs] = _groupings(journey)
    assert obs["valueCodeableConcept"]["coding"][0]["code"] == "getting-help"
    assert "derivedFrom" not in obs
    notes = " ".join(n["text"] for n in obs["note"])
    assert "I want to go back to school without feeling sick every morning" in notes
    assert "Options considered" in notes and "Took part: Young person; Parent or carer; Clinician" in notes
    assert [e["status"] for e in journey.resources("EpisodeOfCare")] == ["active"]
    assert journey.assert_all_valid() >= 3  # grouping, episode, provenance
    assert journey.outbox_count() == 1
    page = journey.get("grouping/")
    assert "The grouping has been recorded." in text_of(journey.client.get(resp.headers["Location"]))
    assert "Getting Help" in text_of(page)


def test_groupings_are_listed_in_codesystem_order_without_numbers_or_levels(journey):
    page = journey.get("grouping/agree").get_data(as_text=True)
    values = re.findall(r'name="grouping" type="radio" value="([^"]+)"', page)
    assert values == list(canonical.GROUPINGS)
    fieldset = (
        page.split('name="grouping"', 1)[0].rsplit("<fieldset", 1)[1]
        + page.split('name="grouping"')[-1].split("</fieldset>", 1)[0]
    )
    assert "<ol" not in fieldset
    assert not re.search(r"\blevel\s*\d|severity\s*\d|\b[1-5]\.\s", text_of(journey.get("grouping/agree")), re.I)
    # each grouping has its plain description as the hint
    assert "Short, focused, evidence-based help" in page


def test_missing_answers_are_shown_next_to_each_field_with_input_kept(journey):
    form = grouping_form(needs="   ", options=None, grouping=None, yp_words="Sleep better")
    resp = journey.post("grouping/agree", form)
    assert resp.status_code == 400
    links = error_links(resp)
    assert links[:3] == ["needs", "options", "grouping"]
    html = resp.get_data(as_text=True)
    assert "Write the needs you talked about" in html and "Choose the grouping you agreed" in html
    assert html.count("Write the needs you talked about") == 2  # summary + next to the field
    assert ">Sleep better</textarea>" in html  # what was typed is kept
    assert 'id="needs-error"' in html or "nhsuk-form-group--error" in html
    assert _groupings(journey) == [] and journey.outbox_count() == 0


def test_young_person_must_be_ticked_or_recorded_as_not_involved_with_a_reason(journey):
    resp = journey.post("grouping/agree", grouping_form(participants=["clinician", "parent-carer"]))
    assert resp.status_code == 400 and "participants" in error_links(resp)
    resp = journey.post(
        "grouping/agree",
        grouping_form(participants=["clinician", "parent-carer"], yp_involvement="not-involved", yp_words=None),
    )
    assert resp.status_code == 400 and error_links(resp) == ["yp_reason"]
    resp = journey.post(
        "grouping/agree",
        grouping_form(
            participants=["clinician", "parent-carer"],
            yp_words=None,
            yp_involvement="not-involved",
            yp_reason="In hospital this week",
        ),
    )
    assert resp.status_code == 303
    [obs] = _groupings(journey)
    comps = {c["code"]["coding"][0]["code"]: c for c in obs["component"]}
    assert comps["not-involved-reason"]["valueString"] == "In hospital this week"
    assert obs["method"]["coding"][0]["code"] == "decided-without-agreement"
    journey.assert_all_valid()


def test_a_change_needs_a_reason_and_makes_a_new_version_linked_to_the_old(journey):
    assert journey.post("grouping/agree", grouping_form()).status_code == 303
    [first] = _groupings(journey)
    changed = grouping_form(previous_id=first["id"], grouping="getting-more-help")
    resp = journey.post("grouping/agree", changed)
    assert resp.status_code == 400 and error_links(resp) == ["change_reason"]
    resp = journey.post(
        "grouping/agree", grouping_form(previous_id=first["id"], grouping="getting-more-help", change_reason="other")
    )
    assert resp.status_code == 400 and error_links(resp) == ["change_note"]
    resp = journey.post(
        "grouping/agree",
        grouping_form(previous_id=first["id"], grouping="getting-more-help", change_reason="needs-changed"),
    )
    assert resp.status_code == 303
    rows = _groupings(journey)
    assert len(rows) == 2
    new = next(o for o in rows if o["id"] != first["id"])
    assert new["derivedFrom"] == [{"reference": f"Observation/{first['id']}"}]
    assert journey.store.current("Observation", first["id"]) == first  # the old one is untouched
    assert journey.store.current_version("Observation", first["id"]) == 1
    comps = {c["code"]["coding"][0]["code"]: c for c in new["component"]}
    assert comps["grouping-change-reason"]["valueCodeableConcept"]["coding"][0]["code"] == "needs-changed"
    journey.assert_all_valid()
    history = text_of(journey.get("grouping/"))
    assert "Needs changed" in history and "Getting More Help" in history


def test_double_submit_creates_one_grouping(journey):
    form = grouping_form()
    assert journey.post("grouping/agree", form).status_code == 303
    again = journey.post("grouping/agree", form)
    assert again.status_code == 303 and "saved=duplicate" in again.headers["Location"]
    assert len(_groupings(journey)) == 1 and journey.outbox_count() == 1


def test_a_grouping_recorded_meanwhile_is_shown_and_nothing_is_saved(journey):
    drawn_before = grouping_form(previous_id="")  # this form was drawn before anything was recorded
    assert journey.post("grouping/agree", grouping_form(grouping="getting-advice")).status_code == 303
    resp = journey.post("grouping/agree", drawn_before)
    assert resp.status_code == 409
    page = text_of(resp)
    assert "Someone else recorded a grouping" in page and "Getting Advice and Signposting" in page
    assert len(_groupings(journey)) == 1
    # the redrawn form now points at the newest grouping: saving again (with a reason) is accepted
    newest = _groupings(journey)[0]["id"]
    assert f'name="previous_id" value="{newest}"' in resp.get_data(as_text=True)
    ok = journey.post("grouping/agree", grouping_form(previous_id=newest, change_reason="yp-or-family-choice"))
    assert ok.status_code == 303 and len(_groupings(journey)) == 2


def test_risk_flag_raised_with_risk_support_and_a_plan_then_cleared(journey):
    assert journey.post("safety-plan/edit", safety_plan_form()).status_code == 303
    assert journey.post("grouping/agree", grouping_form(grouping="getting-risk-support")).status_code == 303
    [flag] = journey.resources("Flag")
    assert flag["status"] == "active" and flag["code"]["coding"][0]["code"] == "risk-support-alert"
    current = _groupings(journey)[0]["id"]
    assert (
        journey.post(
            "grouping/agree",
            grouping_form(previous_id=current, grouping="getting-more-help", change_reason="risk-reduced"),
        ).status_code
        == 303
    )
    [flag] = journey.resources("Flag")
    assert flag["status"] == "inactive" and "end" in flag["period"]
    journey.assert_all_valid()


def test_read_only_launch_cannot_save_and_says_why(read_only_journey):
    page = read_only_journey.get("grouping/agree")
    assert page.status_code == 200
    assert "Save grouping is not available" in text_of(page)
    resp = read_only_journey.post("grouping/agree", grouping_form())
    assert resp.status_code == 403
    assert read_only_journey.resources() == [] and read_only_journey.outbox_count() == 0


def test_hostile_input_never_gives_a_500(journey):
    for form in (
        [("grouping", "severe"), ("token", token())],
        [("token", "not-a-uuid")],
        grouping_form(yp_words="x" * 5000),
        grouping_form(agencies=["no-such-agency"], participants=["school", "young-person", "parent-carer"]),
        grouping_form(participants=["martian"]),
        grouping_form(previous_id="../../etc/passwd"),
    ):
        resp = journey.post("grouping/agree", form)
        assert resp.status_code in (400, 409), (form, resp.status_code)
    assert _groupings(journey) == []


# --- issue 15 item 13: needs-led decision support ---------------------------------------------
def test_agree_page_shows_what_each_grouping_means_locally_without_ranking(journey):
    from smart_app.journeys import decision_support

    html = journey.get("grouping/agree").get_data(as_text=True)
    text = text_of(journey.get("grouping/agree"))
    assert "What each grouping would mean here" in text and "the order is not a scale" in text
    for prompt in decision_support.PROMPTS:
        assert prompt in text
    assert "not how unwell someone is" in text
    # each grouping's local offers from the directory, e.g. the MHST under Getting Help only
    help_block = html.split('id="support-getting-help"', 1)[1].split("</details>", 1)[0]
    assert "Mental Health Support Team in schools" in help_block
    risk_block = html.split('id="support-getting-risk-support"', 1)[1].split("</details>", 1)[0]
    assert "Keeping Safe multi-agency team" in risk_block and "Mental Health Support Team in schools" not in risk_block
    # the app's own words about the groupings carry no levels, numbers or severity
    own_words = " ".join([*decision_support.PROMPTS, *decision_support.WHAT_YOU_WOULD_DO.values()]).lower()
    for word in ("level", "tier", "mild", "moderate", "severe", "score", "diagnos"):
        assert word not in own_words
    assert not re.search(r"<summary[^>]*>\s*<span[^>]*>\s*\d", html)  # groupings never numbered


def test_options_offered_and_chosen_are_recorded_with_the_grouping(journey):
    form = [
        *grouping_form(),
        ("offered", "online-support"),
        ("offered", "mhst"),
        ("chosen", "mhst"),
        ("chosen", "early-help"),
    ]
    assert journey.post("grouping/agree", form).status_code == 303
    [obs] = [o for o in journey.resources("Observation") if "valueCodeableConcept" in o]
    notes = "\n".join(n["text"] for n in obs["note"])
    assert (
        "Local options offered: Kindly Online chat and counselling (Kindly Online (invented charity)); "
        "Mental Health Support Team in schools" in notes
    )
    assert "Early Help family support" in notes.split("Local options offered: ", 1)[1]  # chosen counts as offered
    assert "Options the young person and family chose: Mental Health Support Team in schools" in notes
    journey.assert_valid(obs)
    page = text_of(journey.get("grouping/"))
    assert "Options the young person and family chose" in page
    bad = journey.post(
        "grouping/agree",
        [*grouping_form(previous_id=obs["id"], change_reason="needs-changed"), ("chosen", "no-such-service")],
    )
    assert bad.status_code == 400 and "chosen" in error_links(bad)
