"""Grouping write-back into the EHR, against the real sandbox (auth server + EHR FHIR store) and the
app served on loopback: the grouping lands in the EHR store and validates; when the EHR refuses,
the local save stands, the page says so plainly, and "Send to the EHR again" completes it."""

from __future__ import annotations

import re
import uuid
from urllib.parse import parse_qs, urljoin, urlsplit

import sqlalchemy as sa

from smart_app.sessions import launches
from tests.support.app import make_launch, test_config
from thrive_fhir import canonical
from thrive_fhir.sandbox.quirks import switched


def _launch(live, patient):
    b = live.browser_session()
    r = b.go(live.ehr_launch_url(patient))
    assert r.status_code == 200 and r.url.endswith("/summary"), r.text[:300]
    return b, r.url.rsplit("/", 1)[0]  # .../l/<launch_id>


def _agree(live, b, base, grouping="getting-help", **extra):
    page = b.go(base + "/grouping/agree")
    assert page.status_code == 200
    field = lambda name: re.search(rf'name="{name}" value="([^"]*)"', page.text).group(1)  # noqa: E731
    form = [
        ("csrf_token", field("csrf_token")),
        ("token", field("token")),
        ("previous_id", field("previous_id")),
        ("yp_words", "I want to feel safe at school"),
        ("needs", "Safety at school"),
        ("options", "School nurse; MHST"),
        ("grouping", grouping),
        ("yp_involvement", "agreed"),
        ("family_involvement", "agreed"),
        ("participants", "young-person"),
        ("participants", "parent-carer"),
        ("participants", "clinician"),
    ]
    form += list(extra.items())
    resp = b.request("POST", base + "/grouping/agree", data=form, headers={"Origin": live.app_origin})
    assert resp.status_code == 303, resp.text[:500]
    return resp, field("token")


def _identifier(token: str) -> str:
    return f"{canonical.id_system('grouping')}|{token}"


def test_agreed_grouping_lands_in_the_ehr_and_is_valid(live_writeback):
    from thrive_fhir.validation import Validator

    live = live_writeback
    patient = live.patients[0]
    b, base = _launch(live, patient)
    resp, token = _agree(live, b, base)
    assert "ehr=sent" in resp.headers["Location"]
    page = b.go(urljoin(resp.url, resp.headers["Location"]))
    assert "The grouping has been added to the EHR record." in page.text
    assert "Not yet in the EHR record" not in page.text
    [in_ehr] = live.ehr_search("Observation", identifier=_identifier(token))
    assert in_ehr["subject"]["reference"] == f"Patient/{patient}"
    assert in_ehr["valueCodeableConcept"]["coding"][0]["code"] == "getting-help"
    assert Validator.default().is_valid(in_ehr)
    # the local save is the same grouping
    store = live.app.extensions["thrive"].local_store
    [local] = [o for o in store.for_patient(f"Patient/{patient}", "Observation") if o.get("valueCodeableConcept")]
    assert local["identifier"] == in_ehr["identifier"]
    # asking to send it again adds no second copy
    csrf = re.search(r'name="csrf_token" value="([^"]*)"', b.go(base + "/grouping/agree").text).group(1)
    again = b.request(
        "POST",
        f"{base}/grouping/{local['id']}/send-to-ehr",
        data={"csrf_token": csrf},
        headers={"Origin": live.app_origin},
    )
    assert again.status_code == 303 and "ehr=sent" in again.headers["Location"]
    assert len(live.ehr_search("Observation", identifier=_identifier(token))) == 1


def test_ehr_refusal_keeps_the_local_save_and_send_again_completes_it(live_writeback):
    live = live_writeback
    patient = live.patients[1]
    b, base = _launch(live, patient)
    launch_id = base.rsplit("/", 1)[1]
    sessions = live.app.extensions["thrive"].sessions
    # The EHR stops accepting this launch's token, and tokens it issues now are refused too: the
    # one refresh-and-retry also fails, so the send fails as a real ended session does.
    with sessions.engine.begin() as conn:
        conn.execute(
            launches.update()
            .where(launches.c.launch_id == launch_id)
            .values(access_token_enc=sessions.encrypt("revoked-" + uuid.uuid4().hex))
        )
    with switched(live.authority.registry, simulate_error="request_invalid_token"):
        resp, token = _agree(live, b, base, grouping="getting-more-help")
    location = resp.headers["Location"]
    assert "saved=grouping" in location and "ehr=failed-session-ended" in location
    assert live.ehr_search("Observation", identifier=_identifier(token)) == []
    store = live.app.extensions["thrive"].local_store
    [obs] = [o for o in store.for_patient(f"Patient/{patient}", "Observation") if o.get("valueCodeableConcept")]
    page = b.go(urljoin(resp.url, location))
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.text))
    assert "The grouping has been recorded." in text
    assert "could not be added to the EHR record: your session with the EHR has ended" in text
    assert "Nothing has been lost" in text and "Not yet in the EHR record" in text
    assert "Getting More Help" in text
    button = re.search(r'action="([^"]+/send-to-ehr)"', page.text).group(1)
    csrf = re.search(r'name="csrf_token" value="([^"]*)"', page.text).group(1)
    # the switch is off again: the retry refreshes once and lands
    retry = b.request("POST", urljoin(page.url, button), data={"csrf_token": csrf}, headers={"Origin": live.app_origin})
    assert retry.status_code == 303 and "ehr=sent" in retry.headers["Location"]
    [in_ehr] = live.ehr_search("Observation", identifier=_identifier(token))
    assert in_ehr["subject"]["reference"] == f"Patient/{patient}"
    after = b.go(urljoin(retry.url, retry.headers["Location"]))
    assert "Not yet in the EHR record" not in after.text and "added to the EHR record" in after.text
    assert store.current("Observation", obs["id"]) == obs  # the local record was never touched


def test_no_write_back_unless_configured(tmp_path):
    """Config off: nothing is sent (the launch has no EHR token at all here, so a send would fail)."""
    from smart_app import create_app

    app = create_app(test_config(tmp_path))
    launch = make_launch(app)
    assert not app.extensions["thrive"].config.write_back_grouping
    client = launch.client()
    page = client.get(launch.url("grouping/agree"), base_url="https://localhost").get_data(as_text=True)
    token = re.search(r'name="token" value="([^"]*)"', page).group(1)
    resp = launch.post(
        client,
        "grouping/agree",
        data=[
            ("token", token),
            ("previous_id", ""),
            ("yp_words", "x"),
            ("needs", "n"),
            ("options", "o"),
            ("grouping", "getting-help"),
            ("yp_involvement", "agreed"),
            ("family_involvement", "agreed"),
            ("participants", "young-person"),
            ("participants", "parent-carer"),
            ("participants", "clinician"),
        ],
    )
    assert resp.status_code == 303 and "ehr=" not in resp.headers["Location"]
    wb = app.extensions["thrive"].writebacks
    with wb.engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from app_ehr_writeback")).scalar() == 0


def test_unreachable_ehr_is_a_warning_not_an_error(tmp_path):
    """The EHR's port is closed: the grouping is saved, the page warns, the retry is offered."""
    from smart_app import create_app
    from tests.support.servers import free_port

    port = free_port()  # nothing listens there: connection refused
    iss = f"http://127.0.0.1:{port}/fhir"
    app = create_app(
        test_config(
            tmp_path,
            write_back_grouping=True,
            ehr=[
                {
                    "iss": iss,
                    "client_id": "thrive-app",
                    "auth_method": "public",
                    "allow_insecure_loopback": True,
                    "frame_ancestors": ["https://ehr-ui.test.invalid"],
                }
            ],
        )
    )
    launch = make_launch(app, iss=iss, access_token="token-for-a-closed-port")
    client = launch.client()
    page = client.get(launch.url("grouping/agree"), base_url="https://localhost").get_data(as_text=True)
    token = re.search(r'name="token" value="([^"]*)"', page).group(1)
    resp = launch.post(
        client,
        "grouping/agree",
        data=[
            ("token", token),
            ("previous_id", ""),
            ("yp_words", "x"),
            ("needs", "n"),
            ("options", "o"),
            ("grouping", "getting-help"),
            ("yp_involvement", "agreed"),
            ("family_involvement", "agreed"),
            ("participants", "young-person"),
            ("participants", "parent-carer"),
            ("participants", "clinician"),
        ],
    )
    assert resp.status_code == 303
    q = parse_qs(urlsplit(resp.headers["Location"]).query)
    assert q["saved"] == ["grouping"] and q["ehr"] == ["failed-unavailable"]
    store = app.extensions["thrive"].local_store
    assert len([o for o in store.for_patient(f"Patient/{launch.patient_id}", "Observation")]) == 1
    shown = client.get(resp.headers["Location"], base_url="https://localhost").get_data(as_text=True)
    assert "the EHR did not respond" in shown and "Send to the EHR again" in shown
    # a resend of the same form is a duplicate: nothing twice, and no second send attempt
    again = launch.post(client, "grouping/agree", data=[("token", token), ("previous_id", "")])
    assert "saved=duplicate" in again.headers["Location"]
    assert app.extensions["thrive"].writebacks.pending(f"Patient/{launch.patient_id}", iss)


def test_a_send_cut_short_still_leaves_the_retry(tmp_path):
    """The send is remembered before it is tried: if the app stops mid-send, the grouping is still
    listed as not in the EHR (and a later attempt updates the same row)."""
    from smart_app import create_app

    app = create_app(test_config(tmp_path))
    book = app.extensions["thrive"].writebacks
    obs = {"resourceType": "Observation", "id": "obs-1"}
    book.note_pending(obs, "Patient/p", "https://ehr.example/fhir")
    book.note_pending(obs, "Patient/p", "https://ehr.example/fhir")  # a retry notes nothing new
    [pending] = book.pending("Patient/p", "https://ehr.example/fhir").values()
    assert pending.status == "pending" and pending.attempts == 0 and pending.reason_text == "it has not been sent yet"
    assert book.pending("Patient/p", "https://other-ehr.example/fhir") == {}  # another EHR's launch never sends it
    book.record_attempt(obs, "Patient/p", "https://ehr.example/fhir", ok=False, reason="http-422")
    [failed] = book.pending("Patient/p", "https://ehr.example/fhir").values()
    assert failed.attempts == 1 and failed.reason_text == "the EHR refused it (answer 422)"
    book.record_attempt(obs, "Patient/p", "https://ehr.example/fhir", ok=True, ehr_ref="Observation/e1")
    assert book.pending("Patient/p", "https://ehr.example/fhir") == {}
    assert book.status("Observation", "obs-1", "https://ehr.example/fhir") == "sent"
