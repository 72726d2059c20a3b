"""The clinician Summary shows the young person's shared history from the shared store (issue 11 item 4).

Real parts: the sandbox auth server issues real SMART Backend Services tokens (client_credentials with
a signed assertion) to the app's deployment client; the shared store is our store served over HTTP
with consent enforcement on. Another team (the custodian trust, ODS RYY) recorded the young person's
plan with the app's own builders and pushed it there, with its Provenance; an agency accepted the
referral Task in the store. The deploying organisation (ODS RXX) is not a custodian: the store shows
it a young person only while a sharing Consent names it."""

from __future__ import annotations

import json
import re
import socket
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from smart_app import create_app
from smart_app.summary import shared_history
from tests.support.app import TEST_ORIGIN, make_launch, nhs_test_number, seed_plan, test_config
from thrive_fhir import builders as b
from thrive_fhir import canonical, ids
from thrive_fhir.ids import new_local_id
from thrive_fhir.localstore import ChangeSet
from thrive_fhir.sandbox.keys import SigningKey, jwks
from thrive_fhir.sandbox.registry import Client, Registry
from thrive_fhir.sandbox.server import ServerThread, build_sandbox, create_store, protected_store

OTHER_ODS, OUR_ODS = "RYY", "RXX"
OTHER_TEAM = f"Organization/{ids.deterministic_id(canonical.ODS_ORG, OTHER_ODS)}"
OURS = f"Organization/{ids.deterministic_id(canonical.ODS_ORG, OUR_ODS)}"
OTHER_CLINICIAN = "Practitioner/other-team-clinician"
AGENCY = "Organization/riverside-academy"
AGENCY_WORKER = "Practitioner/riverside-worker"
UNRELATED = "Organization/another-agency"
BACKEND_CLIENT = "thrive-app-backend"
JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


def _text(resp) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", resp.get_data(as_text=True)))


class _Stack:
    pass


def start_stack(tmp: Path, young_people: tuple[tuple[str, tuple[str, ...]], ...]) -> _Stack:
    """The sandbox auth server (with our deployment's Backend Services client) and the shared store on
    loopback, holding the other team's plan of each ``(patient id, organisations shared with)``, and
    for the first one an agency's acceptance of the referral Task. ``stop()`` when done. Also used by
    benchmarks/shared_summary.py."""
    sandbox_srv, shared_srv = ServerThread(name="sandbox"), ServerThread(name="shared-store")
    shared_base = shared_srv.origin + "/fhir"
    key = SigningKey.generate("RS384")
    key_file = tmp / "backend-key.pem"
    key_file.write_bytes(key.private_pem())
    registry = Registry()
    registry.add(
        Client(
            BACKEND_CLIENT,
            "private_key_jwt",
            name="THRIVE care plan (Summary)",
            grant_types=("client_credentials",),
            scopes=frozenset({"system/*.rs"}),
            jwks=jwks(key),
            fhir_base=shared_base,
            organization=OURS,
            access_token_lifetime=300,
        )
    )
    sandbox = build_sandbox(
        f"sqlite:///{tmp}/ehr.db", sandbox_srv.origin, registry=registry, extra_fhir_bases=[shared_base]
    )
    authority = sandbox.authority
    store = create_store(
        f"sqlite:///{tmp}/shared.db",
        shared_base,
        authority.token_verifier(shared_base),
        consent_custodians=[OTHER_TEAM],
    )
    sandbox_srv.start(sandbox.wsgi)
    shared_srv.start(protected_store(store, authority))
    s = _Stack()
    s.base, s.authority, s.key, s.key_file = shared_base, authority, key, key_file

    def stop() -> None:
        sandbox_srv.stop()
        shared_srv.stop()

    s.stop = stop
    s.admin = lambda: authority.mint_internal_token(shared_base, "system/*.cruds")  # the store operator's loader
    other_app = create_app(test_config(tmp, ods_code=OTHER_ODS, journeys=False))
    s.plans = {}
    for pid, share in young_people:
        s.plans[pid] = seed_plan(other_app, pid, share_with=share, clinician=OTHER_CLINICIAN)
        s.plans[pid]["task"] = _referral(other_app, pid)
        _push(s, other_app, pid)
    # The agency accepted the first young person's referral in the shared store, with its own Provenance.
    _put(s, {"resourceType": "Organization", "id": AGENCY.split("/")[1], "name": "Riverside Academy (example)"})
    _put(s, {"resourceType": "Practitioner", "id": AGENCY_WORKER.split("/")[1], "name": [{"text": "Jo Agencyworker"}]})
    task = _get(s, f"Task/{s.plans[young_people[0][0]]['task']}")
    task = {k: v for k, v in task.items() if k != "meta"} | {"status": "accepted"}
    _put(s, task)
    now = datetime.now(UTC).replace(microsecond=0)
    _put(
        s,
        b.build_provenance(
            b.ProvenanceInput(
                outbox_row_id=str(uuid.uuid4()),
                targets=(f"Task/{task['id']}",),
                recorded=now,
                activity="UPDATE",
                author=AGENCY_WORKER,
                on_behalf_of=AGENCY,
                assembler="Device/agency-app",
            )
        ),
    )
    return s


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    shared_pid, unshared_pid = f"yp-{uuid.uuid4().hex[:8]}", f"yp-{uuid.uuid4().hex[:8]}"
    s = start_stack(
        tmp_path_factory.mktemp("shared-summary"), ((shared_pid, (OURS, AGENCY)), (unshared_pid, (UNRELATED,)))
    )
    s.shared_pid, s.unshared_pid = shared_pid, unshared_pid
    yield s
    s.stop()


def _referral(app, pid: str) -> str:
    """A referral to the agency, with its Task, saved by the other team (local store, then pushed)."""
    store = app.extensions["thrive"].local_store
    subject = f"Patient/{pid}"
    when = datetime.now(UTC).replace(microsecond=0) - timedelta(days=5)
    grouping = next(r for r in store.for_patient(subject, "Observation") if "valueCodeableConcept" in r)
    sr = b.build_signposting(
        b.SignpostInput(
            local_id=new_local_id(),
            kind="referral",
            offer=b.Coded(canonical.local_offer_cs("example"), "school-counselling", "School counselling (example)"),
            subject=subject,
            episode=f"EpisodeOfCare/eoc-{pid}",
            authored_on=when,
            requester=OTHER_CLINICIAN,
            performer=AGENCY,
            reason=f"Observation/{grouping['id']}",
            source_ods=OTHER_ODS,
        )
    )
    task = b.build_referral_task(
        b.ReferralTaskInput(
            local_id=new_local_id(),
            service_request=f"ServiceRequest/{sr['id']}",
            subject=subject,
            requester=OTHER_CLINICIAN,
            authored_on=when,
            owner=AGENCY,
            source_ods=OTHER_ODS,
        )
    )
    with store.session() as s:
        store.record(
            s,
            ChangeSet(patient_key=subject, author_ref=OTHER_CLINICIAN, organization_ref=OTHER_TEAM, activity="create")
            .put(sr)
            .put(task),
        )
    return task["id"]


def _push(s, app, pid: str) -> None:
    """What the other team's sync worker would have pushed: every resource, then the Provenance."""
    local = app.extensions["thrive"].local_store.for_patient(f"Patient/{pid}")
    _put(
        s,
        {
            "resourceType": "Patient",
            "id": pid,
            "name": [{"family": "Sharedperson", "given": ["Robin"]}],
            "identifier": [{"system": canonical.NHS_NUMBER, "value": nhs_number_of(pid)}],
        },
    )
    for resource in sorted(local, key=lambda r: r["resourceType"] == "Provenance"):
        _put(s, resource)


def nhs_number_of(pid: str) -> str:
    """A test-range NHS number (valid check digit) that stays the same for one patient id."""
    return nhs_test_number(int(uuid.uuid5(uuid.NAMESPACE_URL, pid).int % 900_000) + 1)


def _put(s, resource: dict) -> None:
    resp = requests.put(
        f"{s.base}/{resource['resourceType']}/{resource['id']}",
        json=resource,
        timeout=10,
        headers={**JSON, "Authorization": f"Bearer {s.admin()}"},
    )
    assert resp.status_code in (200, 201), (resource["resourceType"], resp.text[:300])


def _get(s, path: str) -> dict:
    return requests.get(f"{s.base}/{path}", headers={**JSON, "Authorization": f"Bearer {s.admin()}"}, timeout=10).json()


def _our_reads(s, pid: str) -> int:
    """The store's audit of requests made with our deployment's token for ``pid`` (it is not a custodian)."""
    bundle = _get(s, f"AuditEvent?patient=Patient/{pid}&_count=1000")
    return sum(
        1
        for e in bundle.get("entry", [])
        if OURS in {(a.get("who") or {}).get("reference") for a in e["resource"].get("agent", [])}
    )


def shared_config(s, **extra) -> dict:
    return {
        "fhir_base": s.base,
        "client_id": BACKEND_CLIENT,
        "private_key_file": str(s.key_file),
        "kid": s.key.kid,
        "token_url": s.authority.token_endpoint,
        "scope": "system/*.rs",
        "allow_insecure_loopback": True,
        **extra,
    }


@pytest.fixture
def app(tmp_path, stack):
    return create_app(test_config(tmp_path, ods_code=OUR_ODS, journeys=False, shared_store=shared_config(stack)))


def _summary(launch):
    resp = launch.client().get(launch.url("summary"), base_url=TEST_ORIGIN)
    assert resp.status_code == 200, _text(resp)[:500]
    return resp


def test_summary_shows_another_teams_history_with_who_recorded_it_and_where(app, stack):
    local = app.extensions["thrive"].local_store
    assert local.for_patient(f"Patient/{stack.shared_pid}") == []  # nothing here: only the shared store has it
    launch = make_launch(app, patient_id=stack.shared_pid)
    text = _text(_summary(launch))
    assert "No grouping has been agreed yet" not in text
    assert "Getting Risk Support" in text  # the other team's current grouping
    grouping = re.search(r'id="grouping-recorded"[^>]*>(.*?)</p>', _summary(launch).get_data(as_text=True), re.S)
    assert grouping and "Recorded by Dr Rowan Example, Northshire CAMHS (example)" in grouping.group(1)
    assert "To be able to stay in school for the whole day" in text  # their goal, with its ratings
    assert re.search(r"Latest rating 6 out of 10", text)
    assert "Staying in my room, not answering messages" in text  # their safety plan
    # the referral's Task as the agency left it, and who updated it
    assert "School counselling (example)" in text
    assert re.search(r"Accepted.{0,40}Updated by Jo Agencyworker, Riverside Academy \(example\)", text), text[-1500:]
    assert "Pending" not in text  # nothing of this was saved here


def test_a_local_save_not_yet_synced_shows_as_pending_and_refreshes_the_cache(app, stack):
    launch = make_launch(app, patient_id=stack.shared_pid)
    _summary(launch)
    reads = _our_reads(stack, stack.shared_pid)
    _summary(launch)  # within the freshness window: served from the launch's cache
    assert _our_reads(stack, stack.shared_pid) == reads
    # the clinician here agrees a new grouping; the sync worker has not pushed it yet
    store = app.extensions["thrive"].local_store
    subject = f"Patient/{stack.shared_pid}"
    now = datetime.now(UTC).replace(microsecond=0)
    ours = b.build_grouping(
        b.GroupingDecision(
            local_id=new_local_id(),
            grouping="getting-help",
            subject=subject,
            episode=f"EpisodeOfCare/eoc-{stack.shared_pid}",
            agreed_at=now,
            recorded_at=now,
            clinician="Practitioner/pr-test-1",
            yp_involvement="agreed",
            participants=(subject,),
            source_ods=OUR_ODS,
        )
    )
    with store.session() as s:
        store.record(
            s,
            ChangeSet(
                patient_key=subject, author_ref="Practitioner/pr-test-1", organization_ref=OURS, activity="create"
            ).put(ours),
        )
    page = _summary(launch).get_data(as_text=True)
    assert _our_reads(stack, stack.shared_pid) > reads  # a local save makes the next Summary read the store again
    current = re.search(r'id="current-grouping".*?</section>', page, re.S).group(0)
    assert "Getting Help" in current and "Pending" in current and "not yet in the shared record" in current
    text = _text(_summary(launch))
    assert "Getting Risk Support" in text and "Dr Rowan Example" in text  # the store's history is still there


def test_a_young_person_not_shared_with_us_shows_nothing_from_the_store(app, stack):
    launch = make_launch(app, patient_id=stack.unshared_pid)
    text = _text(_summary(launch))
    assert "No grouping has been agreed yet" in text
    assert "To be able to stay in school" not in text and "Staying in my room" not in text
    assert "School counselling" not in text and "could not be read" not in text


def test_the_store_down_leaves_the_summary_answering_with_local_data_and_a_note(tmp_path, stack):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    down = shared_config(stack, fhir_base=f"http://127.0.0.1:{port}/fhir", timeout_seconds=2)
    app = create_app(test_config(tmp_path, ods_code=OUR_ODS, journeys=False, shared_store=down))
    seed_plan(app, "yp-local-only", risk=False)
    launch = make_launch(app, patient_id="yp-local-only")
    text = _text(_summary(launch))
    assert "The shared record could not be read" in text
    assert "Getting Help" in text and "To be able to stay in school" in text  # local data still shown
    assert "Saved here, not yet in the shared record" in text  # nothing pushed yet
    # the failure is remembered briefly: the next page does not wait on the store again
    started = datetime.now(UTC)
    _summary(launch)
    assert (datetime.now(UTC) - started).total_seconds() < 1.5


def test_without_a_shared_store_the_summary_is_local_only(tmp_path):
    app = create_app(test_config(tmp_path, journeys=False))
    seed_plan(app, "yp-plain", risk=False)
    launch = make_launch(app, patient_id="yp-plain")
    text = _text(_summary(launch))
    assert "Getting Help" in text and "Pending" not in text and "shared record" not in text
    assert shared_history.reader_for(app) is None


def test_shared_store_config_is_checked(tmp_path, stack):
    from smart_app.config import ConfigError, parse_config

    cfg = parse_config(test_config(tmp_path, shared_store=shared_config(stack, max_age_seconds=5)))
    assert cfg.shared_store.max_age_seconds == 5 and cfg.shared_store.fhir_base == stack.base
    for bad in (
        {"scope": "user/*.rs"},
        {"private_key_file": str(tmp_path / "missing.pem")},
        {"allow_insecure_loopback": False},
        {"client_id": ""},
    ):
        with pytest.raises(ConfigError):
            parse_config(test_config(tmp_path, shared_store=shared_config(stack, **bad)))


def test_a_conflict_shows_our_version_until_resolved_as_theirs_then_the_stores(app, stack):
    """A local change the store refused (a sync conflict) stays ours and pending on the Summary; once
    an operator resolves it as "theirs" (``thrive sync conflicts resolve``), the store's version shows."""
    from sqlalchemy import update

    from thrive_fhir.localstore import models as m
    from thrive_fhir.sync.admin import resolve_conflict

    pid = stack.shared_pid
    current = _get(stack, f"Observation/{stack.plans[pid]['groupings'][-1]}")
    ours = {k: v for k, v in current.items() if k != "meta"} | {"note": [{"text": "Our edit that conflicted"}]}
    store = app.extensions["thrive"].local_store
    with store.session() as s:
        store.record(
            s,
            ChangeSet(
                patient_key=f"Patient/{pid}",
                author_ref="Practitioner/pr-test-1",
                organization_ref=OURS,
                activity="update",
            ).put(ours),
        )
    with store.session() as s:
        row_id = s.execute(
            update(m.outbox)
            .where(m.outbox.c.patient_key == f"Patient/{pid}")
            .values(status="conflict")
            .returning(m.outbox.c.id)
        ).scalar_one()
    launch = make_launch(app, patient_id=pid)
    page = re.search(r'id="current-grouping".*?</section>', _summary(launch).get_data(as_text=True), re.S).group(0)
    assert "Our edit that conflicted" in page and "Pending" in page and "Therapy paused" not in page
    from thrive_fhir.client.fhir_http import FhirClient, StaticBearer

    resolve_conflict(store, FhirClient(stack.base, StaticBearer(stack.admin())), row_id, "theirs")
    assert "Therapy paused" in json.dumps(store.current("Observation", current["id"]))  # theirs is now local too
    page = re.search(r'id="current-grouping".*?</section>', _summary(launch).get_data(as_text=True), re.S).group(0)
    assert "Our edit that conflicted" not in page and "Pending" not in page
    assert "Therapy paused" in page and "Dr Rowan Example" in page


def test_the_same_young_person_under_another_teams_patient_id_is_found_by_nhs_number(app, stack):
    """Another team's EHR gave the young person another Patient id: the store's record is found by the
    NHS number of the launch's patient banner."""
    ours_id = f"our-ehr-{uuid.uuid4().hex[:8]}"
    banner = {
        "name": "SHAREDPERSON, Robin",
        "nhs_number": nhs_number_of(stack.shared_pid),
        "nhs_number_display": "",
        "birth_date": "2010-05-01",
        "gender": "other",
    }
    text = _text(_summary(make_launch(app, patient_id=ours_id, banner=banner)))
    assert "Getting Risk Support" in text and "Recorded by Dr Rowan Example" in text
    other = {**banner, "nhs_number": nhs_number_of(stack.unshared_pid)}  # a young person not shared with us
    text = _text(_summary(make_launch(app, patient_id=f"our-ehr-{uuid.uuid4().hex[:8]}", banner=other)))
    assert "No grouping has been agreed yet" in text and "Staying in my room" not in text


def test_a_shared_record_the_summary_cannot_draw_falls_back_to_local_data_not_a_500(tmp_path, stack, monkeypatch):
    """Error branch: a store (not ours) answering with a resource the Summary cannot draw."""
    app = create_app(test_config(tmp_path, ods_code=OUR_ODS, journeys=False, shared_store=shared_config(stack)))
    seed_plan(app, "yp-odd", risk=False)
    odd = {
        "resourceType": "Observation",
        "id": "odd-1",
        "status": "final",
        "performer": "not a list",
        "code": {"coding": [{"system": canonical.CS_CONCEPTS, "code": "thrive-grouping"}]},
        "valueCodeableConcept": {"coding": [{"system": canonical.CS_GROUPING, "code": "getting-help"}]},
        "effectiveDateTime": "2099-01-01T00:00:00Z",
    }
    monkeypatch.setattr(
        shared_history.SharedStoreReader,
        "read",
        lambda self, pid, nhs=None: shared_history.StoreRead([("Observation", "odd-1", 1, odd)], [], {}),
    )
    text = _text(_summary(make_launch(app, patient_id="yp-odd")))
    assert "The shared record could not be read" in text and "To be able to stay in school" in text
