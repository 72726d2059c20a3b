"""Issue 15 item 4: people are shown by name, never as raw ids. Names come from the records, the
directory, and the launching EHR (a real FHIR server on loopback here: our embedded store), and are
kept for the launch so the EHR is asked once."""

from __future__ import annotations

import re

import pytest
import requests

from smart_app import create_app
from smart_app.names import Names, spoken_name
from tests.support.app import TEST_ORIGIN, make_launch, test_config
from thrive_fhir.sandbox.server import ServerThread
from thrive_fhir.store import create_app as create_store

from .conftest import safety_plan_form


def _text(resp) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", resp.get_data(as_text=True)))


@pytest.fixture
def ehr(tmp_path):
    """An EHR FHIR API on loopback holding the signed-in clinician's Practitioner resource."""
    server = ServerThread(name="names-ehr")
    server.start(create_store(f"sqlite:///{tmp_path / 'ehr.db'}", validate_on_write=False))
    base = server.origin
    practitioner = {
        "resourceType": "Practitioner",
        "id": "pr-names-1",
        "name": [{"use": "official", "prefix": ["Dr"], "given": ["Alex"], "family": "Whitlow"}],
    }
    assert requests.put(
        f"{base}/Practitioner/pr-names-1",
        json=practitioner,
        headers={"Content-Type": "application/fhir+json"},
        timeout=10,
    ).status_code in (200, 201)
    yield server
    server.stop()


@pytest.fixture
def ehr_app(tmp_path, ehr):
    return create_app(
        test_config(
            tmp_path,
            journeys=True,
            ehr=[
                {
                    "iss": ehr.origin,
                    "client_id": "thrive-app",
                    "auth_method": "public",
                    "allow_insecure_loopback": True,
                    "frame_ancestors": ["https://ehr-ui.test.invalid"],
                }
            ],
        )
    )


def test_saved_by_is_a_name_from_the_ehr_and_cached_for_the_launch(ehr_app, ehr):
    launch = make_launch(ehr_app, patient_id="pat-names-1", user_ref="Practitioner/pr-names-1", access_token="tok")
    client = launch.client()
    assert launch.post(client, "safety-plan/edit", safety_plan_form()).status_code == 303
    plan_page = _text(client.get(launch.url("safety-plan/"), base_url=TEST_ORIGIN))
    assert "Dr Alex Whitlow" in plan_page
    assert "Practitioner/pr-names-1" not in plan_page and "pr-names" not in plan_page
    summary = _text(client.get(launch.url("summary"), base_url=TEST_ORIGIN))
    assert "Dr Alex Whitlow" in summary and "pr-names" not in summary
    ehr.stop()  # the EHR goes away: the launch still knows the name
    again = _text(client.get(launch.url("safety-plan/"), base_url=TEST_ORIGIN))
    assert "Dr Alex Whitlow" in again


def test_unknown_people_are_described_never_shown_as_ids(tmp_path):
    app = create_app(test_config(tmp_path))
    launch = make_launch(app, patient_id="pat-names-2", user_ref="Practitioner/3e233738-aaaa-4bbb-8ccc-000000000001")
    client = launch.client()
    assert launch.post(client, "safety-plan/edit", safety_plan_form()).status_code == 303
    for page in ("summary", "safety-plan/", "safety-plan/version/1"):
        text = _text(client.get(launch.url(page), base_url=TEST_ORIGIN))
        assert "3e233738" not in text and "Practitioner/" not in text, page
        assert "A member of staff" in text, page


def test_names_order_and_fallbacks():
    names = Names(None, "Patient/p1", "TESTER, Sam", known={"Organization/o1": "Northgate Academy"})
    assert names("Patient/p1") == "TESTER, Sam"
    assert names({"reference": "Organization/o1"}) == "Northgate Academy"
    assert names({"reference": "Practitioner/x", "display": "Dr Display"}) == "Dr Display"
    assert names("Practitioner/3e233738") == "A member of staff"
    assert names("RelatedPerson/rp1") == "A parent or carer"
    assert names("Organization/e4838340") == "An organisation"
    assert spoken_name("TESTER, Sam") == "Sam Tester" and spoken_name("Sam Tester") == "Sam Tester"
    assert spoken_name(None) is None


def test_a_refused_name_look_up_never_ends_the_session(tmp_path):
    """An EHR answering 401 to the look-up (a type outside the grant, on some EHRs) costs only the
    name: no token refresh is attempted, so a failed refresh cannot end the clinician's session."""
    server = ServerThread(name="names-ehr-401")
    server.start(
        create_store(f"sqlite:///{tmp_path / 'ehr401.db'}", validate_on_write=False, token_verifier=lambda token: None)
    )
    try:
        app = create_app(
            test_config(
                tmp_path,
                ehr=[
                    {
                        "iss": server.origin,
                        "client_id": "thrive-app",
                        "auth_method": "public",
                        "allow_insecure_loopback": True,
                        "frame_ancestors": ["https://ehr-ui.test.invalid"],
                    }
                ],
            )
        )
        launch = make_launch(
            app,
            patient_id="pat-names-3",
            user_ref="Practitioner/pr-names-3",
            access_token="tok",
            refresh_token="refresh",
            token_endpoint=f"{server.origin}/token",
        )
        client = launch.client()
        assert launch.post(client, "safety-plan/edit", safety_plan_form()).status_code == 303
        page = client.get(launch.url("safety-plan/"), base_url=TEST_ORIGIN)
        assert page.status_code == 200 and "A member of staff" in _text(page)
        assert not launch.record.ended
        assert client.get(launch.url("summary"), base_url=TEST_ORIGIN).status_code == 200
    finally:
        server.stop()
