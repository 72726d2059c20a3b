"""Journeys 4-6: signposting and referral, sharing consent, ending help."""

from __future__ import annotations

from .conftest import error_links, grouping_form, safety_plan_form, text_of, token


# --- 4. signposting and referral --------------------------------------------------------------
def test_services_for_the_grouping_are_listed_first_and_nothing_is_hidden(journey):
    journey.post("grouping/agree", grouping_form(grouping="getting-risk-support"))
    html = journey.get("services/").get_data(as_text=True)
    import re

    codes = re.findall(r'name="service" type="radio" value="([^"]+)"', html)
    assert codes[:4] == ["single-point-of-access", "outreach", "early-help", "ambit-multi-agency"]
    assert len(codes) == 14 and "online-support" in codes  # every other service still listed
    assert "Services that suit Getting Risk Support" in text_of(journey.get("services/"))


def test_signposting_is_a_proposal_and_referral_an_order_with_a_task(journey):
    journey.post("grouping/agree", grouping_form())
    assert (
        journey.post("services/", {"token": token(), "service": "online-support", "kind": "signposting"}).status_code
        == 303
    )
    resp = journey.post("services/", {"token": token(), "service": "mhst", "kind": "referral", "note": ""})
    assert resp.status_code == 400 and error_links(resp) == ["note"]
    assert (
        journey.post(
            "services/",
            {"token": token(), "service": "mhst", "kind": "referral", "note": "Brief CBT for school anxiety"},
        ).status_code
        == 303
    )
    requests = {sr["intent"]: sr for sr in journey.resources("ServiceRequest")}
    assert set(requests) == {"proposal", "order"}
    grouping = next(o for o in journey.resources("Observation") if "valueCodeableConcept" in o)
    assert requests["order"]["reasonReference"] == [{"reference": f"Observation/{grouping['id']}"}]
    [task] = journey.resources("Task")
    assert task["focus"] == {"reference": f"ServiceRequest/{requests['order']['id']}"}
    assert task["owner"] == requests["order"]["performer"][0] and task["status"] == "requested"
    journey.assert_all_valid()
    page = text_of(journey.get("services/"))
    assert "Sent, waiting for the service" in page and "Shared with the family" in page
    assert journey.outbox_count() == 3  # grouping, signposting, referral (+ task) saves


def test_bad_service_choice_and_double_submit(journey):
    resp = journey.post("services/", {"token": token(), "service": "no-such-service", "kind": "signposting"})
    assert resp.status_code == 400 and error_links(resp) == ["service"]
    resp = journey.post("services/", {"token": token(), "kind": "teleport"})
    assert resp.status_code == 400 and error_links(resp) == ["service", "kind"]
    form = {"token": token(), "service": "crisis-line", "kind": "signposting"}
    resp = journey.post("services/", form)
    assert resp.status_code == 400 and "Agree a grouping first" in text_of(resp)
    journey.post("grouping/agree", grouping_form())
    assert journey.post("services/", form).status_code == 303
    assert "saved=duplicate" in journey.post("services/", form).headers["Location"]
    assert len(journey.resources("ServiceRequest")) == 1


# --- 5. sharing consent -----------------------------------------------------------------------
def _share(journey, agencies, version=0, **extra):
    from datetime import date, timedelta

    end = date.today() + timedelta(days=180)
    form = {
        "token": token(),
        "version": str(version),
        "confirmed": "yes",
        "given_by": "young-person",
        "competence": "competent",
        "end-day": str(end.day),
        "end-month": str(end.month),
        "end-year": str(end.year),
    }
    form.update(extra)
    return journey.post(
        "sharing/", [(k, v) for k, v in form.items() if v is not None] + [("agencies", a) for a in agencies]
    )


def test_sharing_needs_a_plan_agencies_and_confirmation(journey):
    resp = _share(journey, ["northgate-academy"])
    assert resp.status_code == 400 and "Write the safety plan first" in text_of(resp)
    journey.post("safety-plan/edit", safety_plan_form())
    resp = journey.post("sharing/", {"token": token(), "version": "0"})
    assert resp.status_code == 400
    assert error_links(resp) == ["given_by", "competence", "agencies", "end-day", "confirmed"]
    resp = _share(journey, ["mars-council"])
    assert resp.status_code == 400 and error_links(resp) == ["agencies"]
    assert journey.resources("Consent") == []


def test_share_withdraw_one_then_all(journey):
    journey.post("safety-plan/edit", safety_plan_form())
    assert _share(journey, ["northgate-academy", "exampleshire-council"]).status_code == 303
    [consent] = journey.resources("Consent")
    assert consent["status"] == "active" and len(consent["provision"]["actor"]) == 2
    plan = journey.resources("CarePlan")[0]
    assert consent["provision"]["data"][0]["reference"]["reference"] == f"CarePlan/{plan['id']}"
    page = text_of(journey.get("sharing/"))
    assert "Northgate Academy (invented school)" in page and "Withdraw sharing with every agency" in page
    resp = journey.post(
        "sharing/withdraw", {"token": token(), "version": "1", "agency": "northgate-academy", "confirm": "yes"}
    )
    assert resp.status_code == 303
    [consent] = journey.resources("Consent")
    assert journey.store.current_version("Consent", consent["id"]) == 2
    assert consent["status"] == "active" and len(consent["provision"]["actor"]) == 1
    assert (
        journey.post("sharing/withdraw", {"token": token(), "version": "2", "agency": "", "confirm": "yes"}).status_code
        == 303
    )
    [consent] = journey.resources("Consent")
    assert consent["status"] == "inactive" and len(consent["provision"]["actor"]) == 1  # kept: what had been agreed
    assert "the young person withdrew sharing" in text_of(journey.get("sharing/"))
    for h in journey.store.history("Consent", consent["id"]):
        journey.assert_valid(h["resource"])
    journey.assert_all_valid()


def test_stale_sharing_change_is_a_conflict(journey):
    journey.post("safety-plan/edit", safety_plan_form())
    _share(journey, ["northgate-academy", "exampleshire-council"])
    assert (
        journey.post(
            "sharing/withdraw", {"token": token(), "version": "1", "agency": "exampleshire-council", "confirm": "yes"}
        ).status_code
        == 303
    )
    resp = _share(journey, ["northgate-academy", "exampleshire-council", "youth-justice"], version=1)
    assert resp.status_code == 409
    assert "Someone else changed who the plan is shared with" in text_of(resp)
    [consent] = journey.resources("Consent")
    assert len(consent["provision"]["actor"]) == 1


# --- 6. ending help ---------------------------------------------------------------------------
def test_planned_ending_closes_goals_finishes_episode_and_records_grouping(journey):
    journey.post("grouping/agree", grouping_form())
    journey.post("goals/add", {"token": token(), "description": "Sleep through the night", "baseline": "3"})
    [goal] = journey.resources("Goal")
    page = text_of(journey.get("ending/"))
    assert "How did goal 1 end?" in page
    resp = journey.post("ending/", {"token": token(), "grouping": "thriving"})
    assert resp.status_code == 400
    assert error_links(resp) == ["limits", "change_reason", "yp_involvement", f"outcome-{goal['id']}"]
    resp = journey.post(
        "ending/",
        {
            "token": token(),
            "limits": "Talked about what the team can offer and how to come back",
            "grouping": "thriving",
            "change_reason": "goals-achieved",
            "yp_involvement": "agreed",
            f"outcome-{goal['id']}": "achieved",
        },
    )
    assert resp.status_code == 303
    [episode] = journey.resources("EpisodeOfCare")
    assert episode["status"] == "finished" and "end" in episode["period"]
    [goal] = journey.resources("Goal")
    assert goal["lifecycleStatus"] == "completed"
    groupings = sorted(
        (o for o in journey.resources("Observation") if "valueCodeableConcept" in o),
        key=lambda o: o["effectiveDateTime"],
    )
    assert groupings[-1]["valueCodeableConcept"]["coding"][0]["code"] == "thriving"
    assert "how to come back" in groupings[-1]["note"][0]["text"]
    journey.assert_all_valid()
    assert "Help from this service ended" in text_of(journey.get("ending/"))


def test_ending_without_an_episode_is_explained(journey):
    assert "There is no open episode of help" in text_of(journey.get("ending/"))
    resp = journey.post(
        "ending/", {"token": token(), "limits": "x", "grouping": "thriving", "yp_involvement": "agreed"}
    )
    assert resp.status_code == 400 and "no open episode" in text_of(resp)
