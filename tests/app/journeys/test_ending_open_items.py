"""Issue 15 item 8: ending help asks about everything still open (the safety plan, open referrals,
sharing) and does what was chosen, in the same save."""

from __future__ import annotations

from .conftest import error_links, grouping_form, safety_plan_form, sharing_form, text_of, token


def _everything_open(journey):
    journey.post("grouping/agree", grouping_form(grouping="getting-risk-support"))
    assert journey.post("safety-plan/edit", safety_plan_form()).status_code == 303
    assert (
        journey.post(
            "services/",
            {"token": token(), "service": "mhst", "kind": "referral", "note": "Brief CBT for school anxiety"},
        ).status_code
        == 303
    )
    assert journey.post("sharing/", sharing_form(["northgate-academy"])).status_code == 303
    [sr] = journey.resources("ServiceRequest")
    return sr


def _ending(**extra):
    form = {
        "token": token(),
        "limits": "What help can and cannot do; how to come back",
        "grouping": "getting-advice",
        "change_reason": "risk-reduced",
        "yp_involvement": "agreed",
    }
    form.update(extra)
    return form


def test_ending_asks_about_the_safety_plan_open_referrals_and_sharing(journey):
    sr = _everything_open(journey)
    page = text_of(journey.get("ending/"))
    assert "What is still open" in page
    assert "The safety plan is active" in page and "Referral to Mental Health Support Team in schools" in page
    assert "The plan is shared with Northgate Academy (invented school)" in page
    resp = journey.post("ending/", _ending())
    assert resp.status_code == 400
    assert error_links(resp) == ["plan_choice", f"referral-{sr['id']}", "sharing_choice"]
    resp = journey.post(
        "ending/", _ending(plan_choice="keep", **{f"referral-{sr['id']}": "cancel"}, sharing_choice="keep")
    )
    assert resp.status_code == 400 and error_links(resp) == ["plan_reason", "referral_reason"]
    assert journey.resources("EpisodeOfCare")[0]["status"] == "active"  # nothing saved yet


def test_ending_can_end_the_plan_cancel_referrals_and_stop_sharing(journey):
    sr = _everything_open(journey)
    resp = journey.post(
        "ending/",
        _ending(
            plan_choice="end",
            sharing_choice="withdraw",
            referral_reason="No longer needed",
            **{f"referral-{sr['id']}": "cancel"},
        ),
    )
    assert resp.status_code == 303, text_of(resp)[:2000]
    [plan] = journey.resources("CarePlan")
    assert plan["status"] == "completed"
    [task] = journey.resources("Task")
    assert task["status"] == "cancelled" and "No longer needed" in task["statusReason"]["text"]
    [sr] = journey.resources("ServiceRequest")
    assert sr["status"] == "revoked"
    [consent] = journey.resources("Consent")
    assert consent["status"] == "inactive"
    [flag] = journey.resources("Flag")
    assert flag["status"] == "inactive"
    assert journey.resources("EpisodeOfCare")[0]["status"] == "finished"
    journey.assert_all_valid()
    summary = text_of(journey.get("summary"))
    assert "There is no active safety plan" in summary and "not shared with any other organisation" in summary


def test_ending_can_keep_them_open_with_a_reason(journey):
    sr = _everything_open(journey)
    resp = journey.post(
        "ending/",
        _ending(
            plan_choice="keep",
            plan_reason="Social care leads the plan now",
            sharing_choice="keep",
            **{f"referral-{sr['id']}": "keep"},
        ),
    )
    assert resp.status_code == 303
    assert journey.resources("CarePlan")[0]["status"] == "active"
    assert journey.resources("Task")[0]["status"] == "requested"
    assert journey.resources("Consent")[0]["status"] == "active"
    ending = next(o for o in journey.resources("Observation") if "Planned ending" in str(o.get("note")))
    assert "The safety plan stays active: Social care leads the plan now" in ending["note"][0]["text"]
    journey.assert_all_valid()
