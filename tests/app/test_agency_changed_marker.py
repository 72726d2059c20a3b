""" "Changed since your last visit" on the agency worker's list of young people (issue 11 item 5).

The shared store is our store over HTTP with consent enforcement on; the worker's token is a
``user/``-scoped agency token (a standalone sign-in without a patient: the in-app picker). The
marker comes from the store, asked with that token; the visits are the app's own record."""

from __future__ import annotations

import re
import uuid

import pytest
import requests

from smart_app import create_app
from smart_app.scopes import patient_picker_scopes, requested_scopes
from tests.support.app import TEST_ORIGIN, make_launch, seed_plan, test_config
from thrive_fhir.sandbox.server import ServerThread
from thrive_fhir.smart_scopes import Grant
from thrive_fhir.store import create_app as create_store

CUSTODIAN = "Organization/marker-trust"
ORG_A = "Organization/marker-school"
WORKER = "Practitioner/marker-worker"
OTHER_WORKER = "Practitioner/marker-worker-2"
SCOPES = patient_picker_scopes(requested_scopes("standalone", "v2"))
JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


def _grant(token: str):
    if token == "custodian":
        return Grant.from_scope_string("sync", "system/*.cruds", organization=CUSTODIAN)
    kind, _, user = token.partition(":")
    if kind == "worker":
        return Grant.from_scope_string("thrive-app", SCOPES, user=user, organization=ORG_A)
    return None


def _put(base: str, resource: dict) -> None:
    resp = requests.put(
        f"{base}/{resource['resourceType']}/{resource['id']}",
        json=resource,
        headers={**JSON, "Authorization": "Bearer custodian"},
        timeout=10,
    )
    assert resp.status_code in (200, 201), resp.text[:300]


def _get(base: str, path: str) -> dict:
    return requests.get(f"{base}/{path}", headers={**JSON, "Authorization": "Bearer custodian"}, timeout=10).json()


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("marker-shared")
    server = ServerThread(name="shared-store")
    base = server.origin + "/fhir"
    store = create_store(
        f"sqlite:///{tmp / 'shared.db'}", base_url=base, token_verifier=_grant, consent_custodians=[CUSTODIAN]
    )
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    server.start(DispatcherMiddleware(lambda e, s: (s("404 Not Found", []), [b""])[1], {"/fhir": store}))
    family = f"Markerperson{uuid.uuid4().hex[:6]}"
    clinician_app = create_app(test_config(tmp, journeys=False))
    pids = [f"yp-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    local = clinician_app.extensions["thrive"].local_store
    for pid in pids:
        seed_plan(clinician_app, pid, share_with=(ORG_A,))
        _put(base, {"resourceType": "Patient", "id": pid, "name": [{"family": family, "given": ["Robin"]}]})
        for resource in local.for_patient(f"Patient/{pid}"):
            _put(base, resource)
    yield type("Shared", (), {"base": base, "pids": pids, "family": family, "local": local})
    server.stop()


@pytest.fixture
def agency_app(tmp_path):
    return create_app(test_config(tmp_path, journeys=False))


def _launch(app, shared, patient: str | None, worker: str = WORKER):
    return make_launch(
        app,
        patient_id=patient,
        mode="standalone",
        iss=shared.base,
        organization_ref=ORG_A,
        user_ref=worker,
        access_token=f"worker:{worker}",
        scopes=SCOPES,
    )


def _marked(app, shared, worker: str = WORKER) -> set[str]:
    picker = _launch(app, shared, None, worker)
    resp = picker.client().get(picker.url("choose") + f"?q={shared.family}", base_url=TEST_ORIGIN)
    assert resp.status_code == 200
    page = resp.get_data(as_text=True)
    assert all(f'value="{pid}"' in page for pid in shared.pids), "both young people listed"
    marked = set(
        re.findall(
            r'<strong class="nhsuk-tag[^"]*" id="picker-results-changed-([^"]+)">Changed since your last visit</strong>',
            page,
        )
    )
    return marked


def _visit(app, shared, pid: str, worker: str = WORKER) -> None:
    launch = _launch(app, shared, pid, worker)
    assert launch.client().get(launch.url("shared-plan"), base_url=TEST_ORIGIN).status_code == 200


def _change_goal(shared, pid: str) -> None:
    goal = next(r for r in shared.local.for_patient(f"Patient/{pid}") if r["resourceType"] == "Goal")
    current = _get(shared.base, f"Goal/{goal['id']}")
    _put(
        shared.base,
        {k: v for k, v in current.items() if k != "meta"} | {"note": [{"text": f"Reviewed {uuid.uuid4()}"}]},
    )


def test_the_marker_appears_after_another_write_and_clears_after_a_visit(agency_app, shared):
    first, second = shared.pids
    assert _marked(agency_app, shared) == set()  # never opened: nothing to compare with
    _visit(agency_app, shared, first)
    _visit(agency_app, shared, second)
    assert _marked(agency_app, shared) == set()  # opened, nothing changed since
    _change_goal(shared, first)  # another team reviews a goal in the shared store
    assert _marked(agency_app, shared) == {first}
    assert _marked(agency_app, shared, OTHER_WORKER) == set()  # per worker: the other never opened it
    _visit(agency_app, shared, first)
    assert _marked(agency_app, shared) == set()


def test_the_marker_says_it_in_words_inside_the_result(agency_app, shared):
    first = shared.pids[0]
    _visit(agency_app, shared, first)
    _change_goal(shared, first)
    picker = _launch(agency_app, shared, None)
    page = (
        picker.client().get(picker.url("choose") + f"?q={shared.family}", base_url=TEST_ORIGIN).get_data(as_text=True)
    )
    item = re.search(rf'<li>(?:(?!</li>).)*value="{first}"(?:(?!</li>).)*</li>', page, re.S).group(0)
    assert "Changed since your last visit" in item  # text, not colour only, in the young person's own entry


def test_the_first_page_lists_the_young_people_opened_before_with_the_marker(agency_app, shared):
    """Without a search, the picker lists who this worker opened before (still shared), marked."""
    first, second = shared.pids
    picker = _launch(agency_app, shared, None)
    page = picker.client().get(picker.url("choose"), base_url=TEST_ORIGIN).get_data(as_text=True)
    assert "Young people you opened before" not in page  # opened nobody yet: nothing listed
    _visit(agency_app, shared, first)
    _change_goal(shared, first)
    page = picker.client().get(picker.url("choose"), base_url=TEST_ORIGIN).get_data(as_text=True)
    listed = re.search(r'<ul class="nhsuk-list" id="picker-recent">.*?</ul>', page, re.S).group(0)
    assert f'value="{first}"' in listed and f'value="{second}"' not in listed  # never opened: not listed
    assert f'id="picker-recent-changed-{first}">Changed since your last visit<' in listed
    _visit(agency_app, shared, first)
    page = picker.client().get(picker.url("choose"), base_url=TEST_ORIGIN).get_data(as_text=True)
    assert f'value="{first}"' in page and "Changed since your last visit" not in page
    # each listing is audited like a search result
    kept = [e for e in agency_app.extensions["thrive"].local_store.for_patient(f"Patient/{first}", type="AuditEvent")]
    assert any(e["subtype"][0]["code"] == "search-type" for e in kept)


def test_a_store_that_cannot_answer_leaves_the_list_without_markers_not_a_500(agency_app, shared, monkeypatch):
    from smart_app.launch.ehr_client import EhrError
    from smart_app.summary import picker

    _visit(agency_app, shared, shared.pids[0])
    _change_goal(shared, shared.pids[0])

    def down(client, seen):
        raise EhrError(503, "unavailable")

    monkeypatch.setattr(picker, "changed_since_visits", down)
    assert _marked(agency_app, shared) == set()


@pytest.mark.browser
@pytest.mark.slow
def test_the_marked_list_in_chromium_is_accessible(agency_app, shared, browser_page, axe_check, screenshot):
    """The list with a marker, in a real browser: the tag's words are in the young person's entry
    and axe-core finds nothing serious or critical."""
    from smart_app.context import COOKIE_NAME

    first = shared.pids[0]
    _visit(agency_app, shared, first)
    _change_goal(shared, first)
    server = ServerThread(name="agency-app").start(agency_app.wsgi_app)
    try:
        picker = _launch(agency_app, shared, None)
        page = browser_page
        origin = server.origin
        # the binding cookie as the browser would hold it after sign-in (a __Host- cookie cannot be
        # planted on an http origin, so it goes in as the request header the browser would send)
        page.set_extra_http_headers({"Cookie": f"{COOKIE_NAME}={picker.binding}"})
        page.goto(f"{origin}{picker.url('choose')}?q={shared.family}")
        tag = page.locator(f"#picker-results-changed-{first}")
        assert tag.inner_text() == "Changed since your last visit" and tag.is_visible()
        screenshot(page, "agency-list-changed-marker")
        axe_check(page, name="agency list with changed marker")
    finally:
        server.stop()
