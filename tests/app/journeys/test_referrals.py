"""Issue 15 item 14: a referral after it is sent: the receiving service's Task status, updates,
cancelling and referring again (never overwriting a change the service made meanwhile)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

from thrive_fhir.localstore import ChangeSet

from .conftest import error_links, grouping_form, text_of, token


def _refer(journey, service="mhst"):
    journey.post("grouping/agree", grouping_form())
    assert (
        journey.post(
            "services/",
            {"token": token(), "service": service, "kind": "referral", "note": "Brief CBT for school anxiety"},
        ).status_code
        == 303
    )
    [sr] = journey.resources("ServiceRequest")
    return sr


def _service_updates_task(journey, status, reason=None):
    """The receiving service changes the Task (as it arrives by sync from the shared store)."""
    [task] = journey.resources("Task")
    task = copy.deepcopy(task)
    task["status"] = status
    if reason:
        task["statusReason"] = {"text": reason}
    task["lastModified"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    with journey.store.session() as s:
        cs = ChangeSet(
            patient_key=journey.patient_ref,
            author_ref="Practitioner/receiving-worker",
            organization_ref="Organization/receiving-service",
            activity="update",
        )
        cs.put(task)
        journey.store.record(s, cs)
    return task


def test_referral_page_shows_the_receiving_services_status(journey):
    sr = _refer(journey)
    services = journey.get("services/").get_data(as_text=True)
    assert f"services/{sr['id']}" in services
    page = text_of(journey.get(f"services/{sr['id']}"))
    assert "Referral to Mental Health Support Team in schools" in page
    assert "Sent, waiting for the service" in page and "Brief CBT for school anxiety" in page
    _service_updates_task(journey, "rejected", "Not taking referrals for this age group")
    page = text_of(journey.get(f"services/{sr['id']}"))
    assert "Not accepted by the service: Not taking referrals for this age group" in page
    assert "Status last changed" in page
    assert journey.get("services/no-such-referral").status_code == 404


def test_update_adds_a_note_and_cancel_needs_a_reason(journey):
    sr = _refer(journey)
    resp = journey.post(
        f"services/{sr['id']}/update",
        {
            "token": token(),
            "sr_version": "1",
            "task_version": "1",
            "update_text": "She now prefers after-school sessions",
        },
    )
    assert resp.status_code == 303
    [sr_now] = journey.resources("ServiceRequest")
    assert sr_now["note"][-1]["text"] == "She now prefers after-school sessions" and sr_now["note"][-1]["time"]
    resp = journey.post(
        f"services/{sr['id']}/cancel", {"token": token(), "sr_version": "2", "task_version": "1", "cancel_reason": ""}
    )
    assert resp.status_code == 400 and error_links(resp) == ["cancel_reason"]
    resp = journey.post(
        f"services/{sr['id']}/cancel",
        {"token": token(), "sr_version": "2", "task_version": "1", "cancel_reason": "Family moved away"},
    )
    assert resp.status_code == 303
    [task] = journey.resources("Task")
    assert task["status"] == "cancelled" and task["statusReason"]["text"] == "Family moved away"
    assert journey.resources("ServiceRequest")[0]["status"] == "revoked"
    assert "Cancelled: Family moved away" in text_of(journey.get(f"services/{sr['id']}"))
    journey.assert_all_valid()


def test_cancelling_after_the_service_changed_the_task_is_a_conflict(journey):
    sr = _refer(journey)
    _service_updates_task(journey, "accepted")
    resp = journey.post(
        f"services/{sr['id']}/cancel",
        {"token": token(), "sr_version": "1", "task_version": "1", "cancel_reason": "No longer needed"},
    )
    assert resp.status_code == 409
    assert "The referral changed" in text_of(resp) and "Accepted by the service" in text_of(resp)
    assert journey.resources("Task")[0]["status"] == "accepted"  # the service's change is kept


def test_refer_again_after_a_refusal_points_back_to_the_first_referral(journey):
    sr = _refer(journey)
    resp = journey.post(f"services/{sr['id']}/refer-again", {"token": token(), "again_text": "Please reconsider"})
    assert resp.status_code == 400 and "still open" in text_of(resp)
    _service_updates_task(journey, "rejected", "Waiting list closed")
    form = {"token": token(), "again_text": "The waiting list has reopened; please take her on"}
    resp = journey.post(f"services/{sr['id']}/refer-again", form)
    assert resp.status_code == 303
    again = [r for r in journey.resources("ServiceRequest") if r["id"] != sr["id"]]
    assert len(again) == 1 and again[0]["replaces"] == [{"reference": f"ServiceRequest/{sr['id']}"}]
    new_task = [t for t in journey.resources("Task") if t["focus"]["reference"] == f"ServiceRequest/{again[0]['id']}"]
    assert new_task and new_task[0]["status"] == "requested"
    assert "saved=duplicate" in journey.post(f"services/{sr['id']}/refer-again", form).headers["Location"]
    assert len(journey.resources("ServiceRequest")) == 2
    assert "This referral was made again" in text_of(journey.get(f"services/{sr['id']}"))
    journey.assert_all_valid()
