"""Issue 15 item 9: a grouping write-back that fails because the EHR session has ended must not
hide the local save behind a "session ended" page (the redirect target needs the ended session)."""

from __future__ import annotations

import uuid

import pytest

from smart_app import create_app, writeback
from tests.support.app import TEST_ORIGIN, make_launch, test_config

from .conftest import grouping_form, text_of


@pytest.fixture
def wb_app(tmp_path):
    return create_app(test_config(tmp_path, write_back_grouping=True))


def _ehr_session_ends(monkeypatch, app, launch):
    """The EHR refuses the token and the refresh fails: the session store ends the launch (as
    ``refresh_launch_tokens`` does) and the send reports ``session-ended``."""
    sent = []

    def send(launch_ctx, resource):
        sent.append(resource["id"])
        app.extensions["thrive"].sessions.end_launch(launch.launch_id)
        launch_ctx_book = app.extensions["thrive"].writebacks
        launch_ctx_book.record_attempt(
            resource, launch_ctx.patient_ref, launch_ctx.iss, ok=False, reason="session-ended"
        )
        return "session-ended"

    monkeypatch.setattr(writeback, "send", send)
    return sent


def _follow(client, resp):
    while resp.status_code in (302, 303):
        resp = client.get(resp.headers["Location"], base_url=TEST_ORIGIN)
    return resp


def test_failed_write_back_after_the_session_ended_still_says_the_grouping_was_saved(wb_app, monkeypatch):
    launch = make_launch(wb_app, patient_id=f"pat-{uuid.uuid4().hex[:10]}")
    client = launch.client()
    sent = _ehr_session_ends(monkeypatch, wb_app, launch)
    resp = _follow(client, launch.post(client, "grouping/agree", grouping_form(grouping="getting-more-help")))
    assert sent, "the grouping was sent to the EHR"
    assert resp.status_code == 200, resp.status_code
    text = text_of(resp)
    assert "The grouping has been saved in this app. Nothing has been lost." in text
    assert "Getting More Help" in text and "your session with the EHR has ended" in text
    assert "Relaunch the app from the patient's record" in text
    store = wb_app.extensions["thrive"].local_store
    saved = [
        o for o in store.for_patient(f"Patient/{launch.patient_id}", "Observation") if o.get("valueCodeableConcept")
    ]
    assert len(saved) == 1 and saved[0]["id"] == sent[0]
    # a relaunch shows it as not yet in the EHR record, with the button to send it again
    again = make_launch(wb_app, patient_id=launch.patient_id)
    page = text_of(again.client().get(again.url("grouping/"), base_url=TEST_ORIGIN))
    assert "Not yet in the EHR record" in page and "Send to the EHR again" in page


def test_other_write_back_failures_still_redirect_to_the_grouping_page(wb_app, monkeypatch):
    launch = make_launch(wb_app, patient_id=f"pat-{uuid.uuid4().hex[:10]}")
    client = launch.client()
    monkeypatch.setattr(writeback, "send", lambda launch_ctx, resource: "forbidden")
    resp = launch.post(client, "grouping/agree", grouping_form())
    assert resp.status_code == 303 and "ehr=failed-forbidden" in resp.headers["Location"]
    text = text_of(_follow(client, resp))
    assert "The grouping has been recorded." in text and "the EHR did not allow this app" in text
