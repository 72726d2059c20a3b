"""SA-04: a standalone launch without a patient opens the in-app picker, against the real sandbox
(its ``no_patient`` switch plays Epic's provider standalone launch). Only young people whose
active sharing Consent names the worker's organisation can be found; every listing is audited."""

from __future__ import annotations

import re
from urllib.parse import urljoin

import pytest
import requests

from tests.support.app import live_stack, seed_plan
from thrive_fhir import canonical, ids
from thrive_fhir.sandbox.quirks import switched

AGENCY_ORG_REF = f"Organization/{ids.deterministic_id(canonical.ODS_ORG, 'SXX01')}"


@pytest.fixture(scope="module")
def live_picker(tmp_path_factory):
    from .conftest import AppBrowser

    with live_stack(
        tmp_path_factory.mktemp("live-picker"), agency_org_ref=AGENCY_ORG_REF, need_patient_picker=True
    ) as ns:
        ns.browser_session = lambda origin=ns.app_origin: AppBrowser(origin)
        shared, not_shared = ns.patients
        seed_plan(ns.app, shared, share_with=(AGENCY_ORG_REF,))
        seed_plan(ns.app, not_shared)  # a plan, but no agreement to share it with this agency
        # the agency reads the shared record (here the sandbox store), as the sync worker fills it
        token = ns.authority.mint_internal_token(ns.fhir_base, "system/*.cruds")
        local = ns.app.extensions["thrive"].local_store
        for pid in (shared, not_shared):
            for resource in local.for_patient(f"Patient/{pid}"):
                r = requests.put(
                    f"{ns.fhir_base}/{resource['resourceType']}/{resource['id']}",
                    json=resource,
                    headers={"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"},
                )
                assert r.status_code in (200, 201), r.text[:300]
        yield ns


def _sign_in(live):
    b = live.browser_session()
    with switched(live.authority.registry, no_patient=True):
        login = b.go(live.app_origin + "/standalone/start?org=school")
        authorize = next(h for h in b.history if "/auth/authorize" in h.url)
        assert "user%2FPatient.rs" in authorize.url or "user/Patient.rs" in authorize.url
        req = re.search(r'name="req" value="([^"]+)"', login.text).group(1)
        page = b.go(live.sandbox_origin + "/auth/login", method="POST", data={"req": req, "user": "agency"})
    assert page.status_code == 200 and page.url.endswith("/choose"), (page.status_code, page.url, page.text[:300])
    return b, page


def _audits(live, patient):
    return live.app.extensions["thrive"].local_store.for_patient(f"Patient/{patient}", "AuditEvent")


def _text(resp) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", resp.text))


def test_picker_finds_only_young_people_who_agreed_to_share_and_audits_each_listing(live_picker):
    live = live_picker
    shared, not_shared = live.patients
    b, page = _sign_in(live)
    assert "Find a young person" in page.text
    assert page.headers["Content-Security-Policy"].endswith("frame-ancestors 'none'")
    assert 'id="risk-alert"' not in page.text and "thrive-patient-banner" not in page.text
    base = page.url
    # both sandbox patients are called Sandbox-<n>: only the one who agreed to share is listed
    found = b.go(base + "?q=Sandbox")
    assert found.status_code == 200
    assert f'value="{shared}"' in found.text and f'value="{not_shared}"' not in found.text
    [audit] = _audits(live, shared)
    assert audit["subtype"][0]["code"] == "search-type" and audit["action"] == "E" and audit["outcome"] == "0"
    assert _audits(live, not_shared) == []
    # an exact NHS number of someone who did not agree finds nothing and tells nobody anything
    nhs = live.ehr_search("Patient", _id=not_shared)[0]["identifier"][0]["value"]
    nothing = b.go(base + "?q=" + nhs)
    assert "No young person matching that has agreed to share" in _text(nothing)
    assert _audits(live, not_shared) == []
    # too vague to search
    assert "at least 2 letters" in _text(b.go(base + "?q=S"))
    assert len(_audits(live, shared)) == 1


def test_choosing_opens_a_new_context_and_a_forged_choice_is_refused(live_picker):
    live = live_picker
    shared, not_shared = live.patients
    b, page = _sign_in(live)
    found = b.go(page.url + "?q=Sandbox")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', found.text).group(1)
    forged = b.request(
        "POST", page.url, data={"csrf_token": csrf, "patient": not_shared}, headers={"Origin": live.app_origin}
    )
    assert forged.status_code == 403 and "not shared with your organisation" in forged.text
    assert [a["outcome"] for a in _audits(live, not_shared)] == ["4"]
    bad = b.request(
        "POST", page.url, data={"csrf_token": csrf, "patient": "../../etc"}, headers={"Origin": live.app_origin}
    )
    assert bad.status_code == 400
    chosen = b.request(
        "POST", page.url, data={"csrf_token": csrf, "patient": shared}, headers={"Origin": live.app_origin}
    )
    assert chosen.status_code == 303
    plan = b.go(urljoin(chosen.url, chosen.headers["Location"]))
    assert plan.status_code == 200 and "Shared plan" in plan.text and "Staying in my room" in plan.text
    assert 'id="risk-alert"' in plan.text  # the consent check passed: the banner shows
    new_id = re.search(r"/l/([^/]+)/shared-plan", plan.url).group(1)
    picker_id = re.search(r"/l/([^/]+)/choose", page.url).group(1)
    sessions = live.app.extensions["thrive"].sessions
    new, picker = sessions.get_launch(new_id), sessions.get_launch(picker_id)
    assert new.patient_id == shared and new.mode == "standalone" and not new.has_refresh_token
    assert picker.patient_id is None  # the picker stays patient-less: one patient per context
    # the clinician Summary sends the agency worker to the shared plan
    assert b.go(urljoin(plan.url, f"/l/{new_id}/summary")).url.endswith("/shared-plan")
    # the picker context sent to the shared plan goes back to the picker
    assert b.go(urljoin(plan.url, f"/l/{picker_id}/shared-plan")).url.endswith("/choose")


def test_choosing_while_the_shared_store_cannot_be_read_is_a_page_not_a_500(live_picker, monkeypatch):
    """The choice is checked against the Consents in the shared store; when that read fails the
    worker gets a plain page saying so (502), never a 500. (The exception class was not imported
    where it was caught, so the failure itself raised NameError.)"""
    from smart_app.launch.ehr_client import EhrError
    from smart_app.summary import picker

    live = live_picker
    shared, _ = live.patients
    b, page = _sign_in(live)
    found = b.go(page.url + "?q=Sandbox")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', found.text).group(1)

    def unreachable(*_args, **_kwargs):
        raise EhrError(503, "the shared store did not answer")

    monkeypatch.setattr(picker, "consenting_patients", unreachable)
    chosen = b.request(
        "POST", page.url, data={"csrf_token": csrf, "patient": shared}, headers={"Origin": live.app_origin}
    )
    assert chosen.status_code == 502 and "shared record is unavailable" in _text(chosen)
