"""The shared store stack of the clinician Summary's tests and benchmark: the sandbox authorization
server (with this deployment's Backend Services client) and the shared store (our store, consent
enforcement on) on loopback, holding another team's plan for each young person, shared with the
organisations named. Used by tests/app/test_shared_summary.py, the notification tests and
benchmarks/shared_summary.py.

Both servers run on threads of the calling process by default (quick to start, and the tests can
reach the store's internals). ``store_process=True`` runs the store as its own process
(``thrive store serve --auth-issuer``, as deployments run it), so a benchmark of the app does not
share a GIL with the store it reads.

    stack = start_stack(tmp_path, (("yp-1", (OURS,)),))
    app = create_app(test_config(tmp_path, ods_code=OUR_ODS, shared_store=shared_config(stack)))
    ...
    stack.stop()
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

from smart_app import create_app
from tests.support.app import nhs_test_number, seed_plan, test_config
from tests.support.servers import OwnStoreProcess, free_port
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


class _Stack:
    pass


def start_stack(
    tmp: Path,
    young_people: tuple[tuple[str, tuple[str, ...]], ...],
    *,
    backend_scopes: frozenset[str] = frozenset({"system/*.rs"}),
    custodians: tuple[str, ...] = (OTHER_TEAM,),
    subscription_endpoints: tuple[str, ...] = (),
    subscription_retry=None,
    store_process: bool = False,
) -> _Stack:
    """The sandbox auth server (with our deployment's Backend Services client) and the shared store on
    loopback, holding the other team's plan of each ``(patient id, organisations shared with)``, and
    for the first one an agency's acceptance of the referral Task. ``stop()`` when done.
    ``backend_scopes``: what the deployment's Backend Services client may be granted; ``custodians``:
    the organisations the store treats as holding every record (our deployment is not one by default);
    ``subscription_endpoints``: the URL prefixes the store lets Subscriptions deliver to (none: the
    store refuses Subscriptions, as ``thrive store serve`` does without ``--subscription-endpoint``);
    ``subscription_retry``: the store's delivery back-off (a ``subscriptions.RetryPolicy``; threads
    only); ``store_process``: the store as its own ``thrive store serve`` process (FHIR at its root)."""
    if store_process and subscription_retry is not None:
        raise ValueError("subscription_retry needs the store on a thread (store_process=False)")
    sandbox_srv = ServerThread(name="sandbox")
    shared_srv = None if store_process else ServerThread(name="shared-store")
    store_port = free_port() if store_process else 0
    shared_base = f"http://127.0.0.1:{store_port}" if shared_srv is None else shared_srv.origin + "/fhir"
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
            scopes=backend_scopes,
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
    sandbox_srv.start(sandbox.wsgi)
    s = _Stack()
    s.base, s.authority, s.key, s.key_file = shared_base, authority, key, key_file
    if shared_srv is None:
        process = _StoreProcess(
            tmp / "shared-store",
            store_port,
            authority.issuer,
            f"{sandbox.fhir_base}/.well-known/smart-configuration",
            custodians,
            subscription_endpoints,
        )
        try:
            process.start()
        except RuntimeError:
            sandbox_srv.stop()
            raise
        s.store_pid = process.pid

        def stop() -> None:
            process.stop()
            sandbox_srv.stop()

    else:
        store = create_store(
            f"sqlite:///{tmp}/shared.db",
            shared_base,
            authority.token_verifier(shared_base),
            consent_custodians=list(custodians),
            subscription_endpoints=list(subscription_endpoints),
            subscription_retry=subscription_retry,
        )
        shared_srv.start(protected_store(store, authority))
        thread = shared_srv

        def stop() -> None:
            sandbox_srv.stop()
            thread.stop()
            store.subscriptions.stop()

    s.stop = stop
    # The store operator's loader. A store process trusting an issuer refuses tokens naming no
    # organisation (it cannot tell them from a misregistered client): there it loads as a custodian.
    loader_org = custodians[0] if store_process and custodians else None
    s.admin = lambda: authority.mint_internal_token(shared_base, "system/*.cruds", organization=loader_org)
    other_app = create_app(test_config(tmp, ods_code=OTHER_ODS, journeys=False))
    s.plans = {}
    for pid, share in young_people:
        s.plans[pid] = seed_plan(other_app, pid, share_with=share, clinician=OTHER_CLINICIAN)
        s.plans[pid]["task"] = referral(other_app, pid)
        push(s, other_app, pid)
    if not young_people:
        return s
    # The agency accepted the first young person's referral in the shared store, with its own Provenance.
    put(s, {"resourceType": "Organization", "id": AGENCY.split("/")[1], "name": "Riverside Academy (example)"})
    put(s, {"resourceType": "Practitioner", "id": AGENCY_WORKER.split("/")[1], "name": [{"text": "Jo Agencyworker"}]})
    task = get(s, f"Task/{s.plans[young_people[0][0]]['task']}")
    task = {k: v for k, v in task.items() if k != "meta"} | {"status": "accepted"}
    put(s, task)
    now = datetime.now(UTC).replace(microsecond=0)
    put(
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


class _StoreProcess(OwnStoreProcess):
    """``thrive store serve`` trusting the sandbox's authorization server, consent enforcement on
    (validation on, as in production), SQLite under ``workdir``."""

    kind = "shared-store"

    def __init__(
        self, workdir: Path, port: int, issuer: str, discovery: str, custodians, subscription_endpoints
    ) -> None:
        extra: list[str] = [
            "--base-url",
            f"http://127.0.0.1:{port}",
            "--auth-issuer",
            issuer,
            "--auth-discovery-url",  # the sandbox publishes it beside its own FHIR base
            discovery,
        ]
        for c in custodians:
            extra += ["--consent-custodian", c]
        for e in subscription_endpoints:
            extra += ["--subscription-endpoint", e]
        super().__init__(workdir, port, extra=tuple(extra))


def referral(app, pid: str) -> str:
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


def push(s, app, pid: str) -> None:
    """What the other team's sync worker would have pushed: every resource, then the Provenance."""
    local = app.extensions["thrive"].local_store.for_patient(f"Patient/{pid}")
    put(
        s,
        {
            "resourceType": "Patient",
            "id": pid,
            "name": [{"family": "Sharedperson", "given": ["Robin"]}],
            "identifier": [{"system": canonical.NHS_NUMBER, "value": nhs_number_of(pid)}],
        },
    )
    for resource in sorted(local, key=lambda r: r["resourceType"] == "Provenance"):
        put(s, resource)


def nhs_number_of(pid: str) -> str:
    """A test-range NHS number (valid check digit) that stays the same for one patient id."""
    return nhs_test_number(int(uuid.uuid5(uuid.NAMESPACE_URL, pid).int % 900_000) + 1)


def put(s, resource: dict) -> None:
    resp = requests.put(
        f"{s.base}/{resource['resourceType']}/{resource['id']}",
        json=resource,
        timeout=10,
        headers={**JSON, "Authorization": f"Bearer {s.admin()}"},
    )
    assert resp.status_code in (200, 201), (resource["resourceType"], resp.text[:300])


def get(s, path: str) -> dict:
    return requests.get(f"{s.base}/{path}", headers={**JSON, "Authorization": f"Bearer {s.admin()}"}, timeout=10).json()


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
