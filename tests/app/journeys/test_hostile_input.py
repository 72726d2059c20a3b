"""No form input, however odd, gets a 500 or changes the record: every journey POST is tried with
junk, wrong types, huge values and bytes that are not UTF-8."""

from __future__ import annotations

from werkzeug.datastructures import MultiDict

from tests.support.app import TEST_ORIGIN

from .conftest import grouping_form, safety_plan_form, token

ROUTES = [
    "grouping/agree",
    "goals/add",
    "goals/rate",
    "safety-plan/edit",
    "services/",
    "sharing/",
    "sharing/withdraw",
    "ending/",
    "care-team/add",
    "care-team/remove",
    "grouping/..%2F..%2Fx/send-to-ehr",
]

JUNK = [
    [],
    [("token", "")],
    [("token", token()), ("version", "-5")],
    [("token", token()), ("version", "99999999999999999999")],
    [("token", token()), ("version", "abc")],
    [("token", token()), ("grouping", "getting-help"), ("grouping", "thriving")],
    [("token", token()), ("description", "x" * 20000), ("baseline", "1e3")],
    [("token", token()), ("review-day", "٣"), ("review-month", "²"), ("review-year", "20 25")],
    [("token", token()), ("warning-signs-0-text", "\x00\x01"), ("warning-signs-0-holder", "young-person")],
    [("token", token()), ("service", "../../etc"), ("kind", "referral"), ("note", "<script>alert(1)</script>")],
    [("token", token()), ("agencies", "x" * 300), ("confirmed", "yes")],
    [("token", token()), ("agency", "northgate-academy"), ("version", "7")],
    [("token", token()), ("limits", " "), ("grouping", "coping")],
    [("token", token()), ("kind", "agency"), ("agency", "x" * 300), ("role", "\x00")],
    [("token", token()), ("kind", "parent-carer"), ("given", "x" * 5000), ("family", "Y"), ("relationship", "<b>")],
    [("token", token()), ("member", "Patient/../../etc"), ("version", "1")],
]


def test_no_500_and_nothing_saved_for_junk(journey):
    for route in ROUTES:
        for form in JUNK:
            resp = journey.post(route, form)
            assert resp.status_code < 500, (route, form, resp.status_code)
            assert resp.status_code != 303, (route, form)
    assert journey.resources() == [] and journey.outbox_count() == 0


def test_non_utf8_and_oversized_bodies(journey):
    for route in ROUTES:
        body = (
            b"token="
            + token().encode()
            + b"&needs=caf\xe9&description=\xff\xfe&csrf_token="
            + journey.launch.csrf_token.encode()
        )
        resp = journey.client.post(
            journey.launch.url(route),
            data=body,
            base_url=TEST_ORIGIN,
            headers={"Origin": TEST_ORIGIN, "Content-Type": "application/x-www-form-urlencoded"},
        )
        assert resp.status_code < 500, (route, resp.status_code)
    big = MultiDict([("csrf_token", journey.launch.csrf_token), ("needs", "x" * (3 * 1024 * 1024))])
    resp = journey.client.post(
        journey.launch.url("grouping/agree"), data=big, base_url=TEST_ORIGIN, headers={"Origin": TEST_ORIGIN}
    )
    assert resp.status_code == 413
    assert journey.resources() == []


def test_script_in_free_text_is_escaped_everywhere(journey):
    evil = '<script>alert("x")</script>'
    assert journey.post("grouping/agree", grouping_form(yp_words=evil)).status_code == 303
    assert journey.post("safety-plan/edit", safety_plan_form(**{"warning-signs-0-text": evil})).status_code == 303
    assert (
        journey.post(
            "care-team/add",
            {
                "token": token(),
                "version": "0",
                "kind": "parent-carer",
                "given": evil,
                "family": "Example",
                "relationship": "MTH",
            },
        ).status_code
        == 303
    )
    for page in ("grouping/", "safety-plan/", "safety-plan/print", "safety-plan/edit", "care-team/", "summary"):
        html = journey.get(page).get_data(as_text=True)
        assert evil not in html, page
