"""Issue 15 item 15: sharing records who gave consent (the young person, or a parent or carer with
parental responsibility), the young person's competence to decide, the end date they chose, and
asks for confirmation before a withdrawal."""

from __future__ import annotations

from datetime import date, timedelta

from thrive_fhir.builders.consent import EXT_DECISION_COMPETENCE

from .conftest import error_links, safety_plan_form, sharing_form, text_of, token


def _competence(consent):
    [ext] = [e for e in consent.get("extension", []) if e["url"] == EXT_DECISION_COMPETENCE]
    return {e["url"]: e.get("valueCode") or e.get("valueString") for e in ext["extension"]}


def _add_parent(journey):
    resp = journey.post(
        "care-team/add",
        {
            "token": token(),
            "version": "0",
            "kind": "parent-carer",
            "given": "Jo",
            "family": "Example",
            "relationship": "MTH",
        },
    )
    assert resp.status_code == 303, text_of(resp)[:1500]
    [rp] = journey.resources("RelatedPerson")
    return rp


def test_young_person_consents_with_competence_and_their_chosen_end_date(journey):
    journey.post("safety-plan/edit", safety_plan_form())
    end = date.today() + timedelta(days=400)
    resp = journey.post(
        "sharing/",
        sharing_form(
            ["northgate-academy"],
            competence_note="Understood who would see what",
            **{"end-day": str(end.day), "end-month": str(end.month), "end-year": str(end.year)},
        ),
    )
    assert resp.status_code == 303
    [consent] = journey.resources("Consent")
    assert consent["performer"] == [{"reference": journey.patient_ref}]
    assert consent["provision"]["period"]["end"] == end.isoformat()
    assert _competence(consent) == {"assessment": "competent", "note": "Understood who would see what"}
    journey.assert_valid(consent)
    page = text_of(journey.get("sharing/"))
    assert "Agreed by TESTER, Sam" in page and f"until {end.day} {end.strftime('%B %Y')}" in page
    assert "Yes, the young person can decide for themselves (Understood who would see what)" in page


def test_a_parent_with_parental_responsibility_consents_when_the_young_person_cannot_decide(journey):
    journey.post("safety-plan/edit", safety_plan_form())
    rp = _add_parent(journey)
    # the young person cannot agree for themselves when they cannot decide, and vice versa
    resp = journey.post("sharing/", sharing_form(["northgate-academy"], competence="not-competent"))
    assert resp.status_code == 400 and error_links(resp) == ["given_by"]
    resp = journey.post("sharing/", sharing_form(["northgate-academy"], given_by=f"rp:{rp['id']}"))
    assert resp.status_code == 400 and error_links(resp) == ["given_by"]
    resp = journey.post(
        "sharing/", sharing_form(["northgate-academy"], given_by=f"rp:{rp['id']}", competence="not-competent")
    )
    assert resp.status_code == 303
    [consent] = journey.resources("Consent")
    assert consent["performer"] == [{"reference": f"RelatedPerson/{rp['id']}"}]
    assert _competence(consent)["assessment"] == "not-competent"
    journey.assert_all_valid()
    assert "Agreed by Jo Example" in text_of(journey.get("sharing/"))


def test_end_date_must_be_chosen_in_the_future_and_within_three_years(journey):
    journey.post("safety-plan/edit", safety_plan_form())
    past = date.today() - timedelta(days=1)
    far = date.today() + timedelta(days=4 * 365)
    for when in (past, far):
        resp = journey.post(
            "sharing/",
            sharing_form(
                ["northgate-academy"],
                **{"end-day": str(when.day), "end-month": str(when.month), "end-year": str(when.year)},
            ),
        )
        assert resp.status_code == 400 and error_links(resp) == ["end-day"]
    resp = journey.post(
        "sharing/", sharing_form(["northgate-academy"], **{"end-day": "31", "end-month": "2", "end-year": "2030"})
    )
    assert resp.status_code == 400 and error_links(resp) == ["end-day"]
    assert journey.resources("Consent") == []


def test_withdrawal_is_confirmed_before_anything_changes(journey):
    journey.post("safety-plan/edit", safety_plan_form())
    assert journey.post("sharing/", sharing_form(["northgate-academy", "exampleshire-council"])).status_code == 303
    ask = journey.post("sharing/withdraw", {"token": token(), "version": "1", "agency": ""})
    assert ask.status_code == 200
    page = text_of(ask)
    assert "Stop sharing the plan with every agency?" in page
    assert "Northgate Academy (invented school)" in page and "Exampleshire Council Children's Services" in page
    assert 'name="confirm" value="yes"' in ask.get_data(as_text=True)
    [consent] = journey.resources("Consent")
    assert consent["status"] == "active" and journey.store.current_version("Consent", consent["id"]) == 1
    assert (
        journey.post("sharing/withdraw", {"token": token(), "version": "1", "agency": "", "confirm": "yes"}).status_code
        == 303
    )
    [consent] = journey.resources("Consent")
    assert consent["status"] == "inactive"
    assert _competence(consent)["assessment"] == "competent"  # what had been agreed is kept
