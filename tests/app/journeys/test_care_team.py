"""Journey 7: the care team (who is doing what), stored as one versioned CareTeam."""

from __future__ import annotations

from .conftest import error_links, safety_plan_form, text_of, token


def _team(journey):
    teams = journey.resources("CareTeam")
    assert len(teams) <= 1
    return teams[0] if teams else None


def _add(journey, version, **fields):
    return journey.post("care-team/add", {"token": token(), "version": str(version), **fields})


def test_every_kind_of_member_is_saved_with_its_role_and_shown_on_the_summary(journey):
    assert _add(journey, 0, kind="young-person").status_code == 303
    assert _add(journey, 1, kind="parent-carer", given="Jo", family="Example", relationship="MTH").status_code == 303
    assert _add(journey, 2, kind="lead-clinician").status_code == 303
    resp = _add(journey, 3, kind="agency", agency="northgate-academy", role="Designated safeguarding lead")
    assert resp.status_code == 303 and "saved=care-team" in resp.headers["Location"]
    team = _team(journey)
    assert team["status"] == "active" and journey.store.current_version("CareTeam", team["id"]) == 4
    roles = [(p["member"]["reference"].split("/")[0], p["role"][0]["text"]) for p in team["participant"]]
    assert roles == [
        ("Patient", "Young person"),
        ("RelatedPerson", "Parent or carer (mother)"),
        ("Practitioner", "Lead clinician"),
        ("Organization", "Designated safeguarding lead"),
    ]
    lead = team["participant"][2]
    assert lead["member"]["reference"] == "Practitioner/pr-test-1" and lead["onBehalfOf"]["reference"].startswith(
        "Organization/"
    )
    [parent] = journey.resources("RelatedPerson")
    assert parent["name"][0]["family"] == "Example" and parent["relationship"][0]["coding"][0]["code"] == "MTH"
    journey.assert_all_valid()
    assert journey.outbox_count() == 4
    summary = text_of(journey.get("summary"))
    team_text = summary[summary.index("Care team") :]
    assert "Jo Example Parent or carer (mother)" in team_text
    assert "Northgate Academy (invented school) Designated safeguarding lead" in team_text
    assert "Young person" in team_text and "Lead clinician" in team_text


def test_missing_answers_are_shown_next_to_their_fields(journey):
    resp = _add(journey, 0)
    assert resp.status_code == 400 and error_links(resp) == ["kind"]
    resp = _add(journey, 0, kind="parent-carer", given=" ")
    assert resp.status_code == 400 and error_links(resp) == ["given", "family", "relationship"]
    resp = _add(journey, 0, kind="agency", agency="no-such-agency")
    assert resp.status_code == 400 and error_links(resp) == ["agency", "role"]
    resp = _add(journey, 0, kind="parent-carer", given="Jo", family="Example", relationship="CAT")
    assert resp.status_code == 400 and error_links(resp) == ["relationship"]
    assert "Jo" in resp.get_data(as_text=True)  # what was typed is kept
    assert _team(journey) is None and journey.outbox_count() == 0


def test_adding_someone_twice_and_double_submit(journey):
    form = {"token": token(), "version": "0", "kind": "young-person"}
    assert journey.post("care-team/add", form).status_code == 303
    again = journey.post("care-team/add", form)
    assert again.status_code == 303 and "saved=duplicate" in again.headers["Location"]
    resp = _add(journey, 1, kind="young-person")
    assert resp.status_code == 400 and "already in the care team" in text_of(resp)
    assert len(_team(journey)["participant"]) == 1 and journey.outbox_count() == 1


def test_removing_members_keeps_history_and_the_last_one_leaves_an_inactive_team(journey):
    _add(journey, 0, kind="young-person")
    _add(journey, 1, kind="agency", agency="harbour-youth", role="Youth worker")
    team = _team(journey)
    org = team["participant"][1]["member"]["reference"]
    resp = journey.post("care-team/remove", {"token": token(), "version": "2", "member": org})
    assert resp.status_code == 303 and "saved=care-team-removed" in resp.headers["Location"]
    assert [p["member"]["reference"] for p in _team(journey)["participant"]] == [journey.patient_ref]
    again = journey.post("care-team/remove", {"token": token(), "version": "2", "member": org})
    assert "saved=duplicate" in again.headers["Location"]
    journey.post("care-team/remove", {"token": token(), "version": "3", "member": journey.patient_ref})
    team = _team(journey)
    assert team["status"] == "inactive" and journey.store.current_version("CareTeam", team["id"]) == 4
    assert len(journey.store.history("CareTeam", team["id"])) == 4
    assert "No one has been added to the care team yet" in text_of(journey.get("care-team/"))
    assert "No care team has been recorded" in text_of(journey.get("summary"))
    bad = journey.post("care-team/remove", {"token": token(), "version": "4", "member": "Patient/someone-else"})
    assert bad.status_code == 400
    journey.assert_all_valid()


def test_a_change_made_meanwhile_is_shown_and_nothing_is_overwritten(journey):
    _add(journey, 0, kind="young-person")
    assert _add(journey, 1, kind="lead-clinician").status_code == 303
    stale = _add(journey, 1, kind="agency", agency="mhst", role="Weekly sessions at school")
    assert stale.status_code == 409 and "Someone else changed the care team" in text_of(stale)
    assert [p["role"][0]["text"] for p in _team(journey)["participant"]] == ["Young person", "Lead clinician"]


def test_safety_plan_points_at_the_care_team(journey):
    _add(journey, 0, kind="young-person")
    assert journey.post("safety-plan/edit", safety_plan_form()).status_code == 303
    [plan] = journey.resources("CarePlan")
    assert plan["careTeam"] == [{"reference": f"CareTeam/{_team(journey)['id']}"}]
    journey.assert_all_valid()


def test_read_only_launch_cannot_change_the_team(read_only_journey):
    page = text_of(read_only_journey.get("care-team/"))
    assert "Add to the care team is not available" in page
    assert _add(read_only_journey, 0, kind="young-person").status_code == 403
    assert read_only_journey.resources() == []


def test_blank_fields_of_the_other_kinds_are_ignored(journey):
    """The browser posts every box of the form; only the chosen kind's boxes count."""
    resp = _add(journey, 0, kind="agency", agency="mhst", role="Weekly sessions", given="", family="", relationship="")
    assert resp.status_code == 303
    resp = _add(journey, 1, kind="young-person", agency="", role="", given="", family="", relationship="")
    assert resp.status_code == 303
    assert [p["role"][0]["text"] for p in _team(journey)["participant"]] == ["Weekly sessions", "Young person"]


def test_safety_plan_page_says_whether_it_points_at_the_team(journey):
    journey.post("safety-plan/edit", safety_plan_form())
    assert "Not linked yet. Add the care team" in text_of(journey.get("safety-plan/"))
    _add(journey, 0, kind="young-person")
    assert "will point at the care team when it is next saved" in text_of(journey.get("safety-plan/"))
    journey.post("safety-plan/edit", safety_plan_form(version=1))
    assert "Linked: see who is in the care team" in text_of(journey.get("safety-plan/"))
