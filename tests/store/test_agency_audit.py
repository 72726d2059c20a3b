"""When an agency request's AuditEvent cannot be written: a write and its AuditEvent commit together
or not at all, and a read returns nothing unaudited. On SQLite and PostgreSQL, against the store
served over HTTP, with the database itself refusing AuditEvent rows (a trigger). Also the group
commit of AuditEvents (agency_audit.AuditTrail) under concurrent callers."""

from __future__ import annotations

import contextlib
import threading
import uuid

import pytest
import requests
import sqlalchemy

from tests.support.consent_data import CUSTODIAN, ORG_A, auth, consent, day, task, verifier
from tests.support.servers import create_pg_database
from tests.support.store_data import patient
from tests.support.store_servers import start_ours
from thrive_fhir.store.agency_audit import _Pending, audit_op
from thrive_fhir.store.fhirdates import utcnow


class World:
    def __init__(self, url: str, server):
        self.url, self.server = url, server
        self.pid, self.tid = str(uuid.uuid4()), str(uuid.uuid4())

    def at(self, path: str) -> str:
        return self.server.url(path)

    def put(self, resource: dict, token: str = "custodian", **headers) -> requests.Response:
        return requests.put(
            self.at(f"{resource['resourceType']}/{resource['id']}"),
            json=resource,
            headers={**auth(token), **headers},
            timeout=30,
        )

    def audit_count(self) -> int:
        resp = requests.get(self.at("AuditEvent"), params={"_summary": "count"}, headers=auth("custodian"), timeout=30)
        return resp.json()["total"]

    def task_version(self) -> tuple[str, str]:
        body = requests.get(self.at(f"Task/{self.tid}"), headers=auth("custodian"), timeout=30).json()
        return body["meta"]["versionId"], body["status"]


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def world(request, tmp_path_factory):
    if request.param == "sqlite":
        url, drop = f"sqlite:///{tmp_path_factory.mktemp('audit') / 'store.db'}", (lambda: None)
    else:
        url, drop = create_pg_database("thrive_audit")
    server = start_ours(url, token_verifier=verifier, consent_custodians=[CUSTODIAN])
    w = World(url, server)
    assert w.put(patient(w.pid)).status_code == 201
    assert w.put(consent(str(uuid.uuid4()), w.pid, [ORG_A], start=day(-30), end=day(30))).status_code == 201
    assert w.put(task(w.tid, w.pid, ORG_A)).status_code == 201
    yield w
    server.stop()
    drop()


@contextlib.contextmanager
def audit_refused(url: str):
    """The database refuses every AuditEvent row while inside (a full disk, a lost permission...)."""
    engine = sqlalchemy.create_engine(url)
    sqlite = engine.dialect.name == "sqlite"
    try:
        with engine.begin() as conn:
            if sqlite:
                conn.exec_driver_sql(
                    "CREATE TRIGGER refuse_audit BEFORE INSERT ON resource_versions "
                    "WHEN NEW.res_type = 'AuditEvent' BEGIN SELECT RAISE(ABORT, 'audit refused'); END"
                )
            else:
                conn.exec_driver_sql(
                    "CREATE FUNCTION refuse_audit() RETURNS trigger AS "
                    "$$ BEGIN RAISE EXCEPTION 'audit refused'; END $$ LANGUAGE plpgsql"
                )
                conn.exec_driver_sql(
                    "CREATE TRIGGER refuse_audit BEFORE INSERT ON resource_versions FOR EACH ROW "
                    "WHEN (NEW.res_type = 'AuditEvent') EXECUTE FUNCTION refuse_audit()"
                )
        yield
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TRIGGER refuse_audit" + ("" if sqlite else " ON resource_versions"))
            if not sqlite:
                conn.exec_driver_sql("DROP FUNCTION refuse_audit()")
        engine.dispose()


def _accepted(world: World, version: str) -> dict:
    return {**task(world.tid, world.pid, ORG_A, status="accepted"), "meta": {"versionId": version}}


def test_an_update_whose_audit_fails_is_not_made(world):
    """Was: the Task update committed, then its AuditEvent failed and the agency was told 500."""
    version, status = world.task_version()
    before = world.audit_count()
    with audit_refused(world.url):
        resp = world.put(_accepted(world, version), "agency-a", **{"If-Match": f'W/"{version}"'})
        assert resp.status_code == 500
        assert "not made" in resp.json()["issue"][0]["diagnostics"]
        assert world.task_version() == (version, status)  # nothing changed
    assert world.audit_count() == before
    resp = world.put(_accepted(world, version), "agency-a", **{"If-Match": f'W/"{version}"'})
    assert resp.status_code == 200, resp.text  # the same update, retried, is made and audited
    assert world.task_version() == (str(int(version) + 1), "accepted")
    assert world.audit_count() == before + 1


def test_a_transaction_whose_audit_fails_is_not_made(world):
    version, status = world.task_version()
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {**task(world.tid, world.pid, ORG_A, status="in-progress")},
                "request": {"method": "PUT", "url": f"Task/{world.tid}", "ifMatch": f'W/"{version}"'},
            }
        ],
    }
    with audit_refused(world.url):
        resp = requests.post(world.at(""), json=bundle, headers=auth("agency-a"), timeout=30)
        assert resp.status_code == 500
        assert world.task_version() == (version, status)
    resp = requests.post(world.at(""), json=bundle, headers=auth("agency-a"), timeout=30)
    assert resp.status_code == 200, resp.text
    assert world.task_version() == (str(int(version) + 1), "in-progress")
    event = requests.get(
        world.at("AuditEvent"), params={"_sort": "-_lastUpdated", "_count": "1"}, headers=auth("custodian"), timeout=30
    ).json()["entry"][0]["resource"]
    assert event["subtype"][0]["code"] == "transaction"
    assert {f"Task/{world.tid}", f"Patient/{world.pid}"} <= {
        e["what"]["reference"] for e in event["entity"] if "what" in e
    }


def test_a_read_whose_audit_fails_returns_nothing(world):
    with audit_refused(world.url):
        resp = requests.get(world.at(f"Patient/{world.pid}"), headers=auth("agency-a"), timeout=30)
        assert resp.status_code == 500
        assert resp.json()["resourceType"] == "OperationOutcome"
        assert world.pid not in resp.text
    assert requests.get(world.at(f"Patient/{world.pid}"), headers=auth("agency-a"), timeout=30).status_code == 200


def _event(patient_id: str) -> dict:
    return {
        "resourceType": "AuditEvent",
        "id": str(uuid.uuid4()),
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest"},
        "recorded": "2025-03-04T16:10:00Z",
        "agent": [{"who": {"reference": ORG_A}, "requestor": True}],
        "source": {"observer": {"display": "test"}},
        "entity": [{"what": {"reference": f"Patient/{patient_id}"}}],
    }


def test_the_trail_returns_each_caller_after_its_own_commit(world):
    """20 concurrent callers: each event is readable (committed) the moment its caller returns."""
    trail = world.server.app.store.audit_trail
    ids: list[str] = []
    missing: list[str] = []
    errors: list[BaseException] = []

    def caller() -> None:
        try:
            for _ in range(10):
                event = _event(world.pid)
                trail.commit(audit_op(event, utcnow()), None)
                ids.append(event["id"])
                resp = requests.get(world.at(f"AuditEvent/{event['id']}"), headers=auth("custodian"), timeout=30)
                if resp.status_code != 200:
                    missing.append(event["id"])
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=caller) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and not missing and len(set(ids)) == 200
    assert not any(t.is_alive() for t in threads)


def test_one_bad_event_fails_only_its_own_caller(world):
    trail = world.server.app.store.audit_trail
    first = _event(world.pid)
    trail.commit(audit_op(first, utcnow()), None)
    duplicate, fine = _Pending(audit_op(dict(first), utcnow())), _Pending(audit_op(_event(world.pid), utcnow()))
    trail._write([duplicate, fine], None)  # one batch: the duplicate id fails it, then each is retried alone
    assert duplicate.error is not None and fine.error is None
    got = requests.get(world.at(f"AuditEvent/{fine.op.rid}"), headers=auth("custodian"), timeout=30)
    assert got.status_code == 200
