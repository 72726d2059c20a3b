"""``consent_shares``, the table the consent filter reads, stays in step with the Consents: written
in the Consent's own transaction on create, update, withdrawal and delete; periods stored and
compared with the clock when read, so expiry needs no write. On SQLite and PostgreSQL."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.support.consent_data import CUSTODIAN, GRANTS, ORG_A, ORG_B, consent, day, instant, now_utc
from tests.support.servers import create_pg_database
from tests.support.store_data import patient
from thrive_fhir.store import create_app
from thrive_fhir.store.schema import consent_shares
from thrive_fhir.store.service import Ctx

CTX = Ctx("http://store.test")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request, tmp_path):
    if request.param == "sqlite":
        url, drop = f"sqlite:///{tmp_path / 'store.db'}", (lambda: None)
    else:
        url, drop = create_pg_database("thrive_shares")
    app = create_app(url, validate_on_write=False, consent_custodians=[CUSTODIAN])
    yield app.store
    app.engine.dispose()
    drop()


def _young_person(store) -> str:
    pid = str(uuid.uuid4())
    store.update(CTX, "Patient", pid, patient(pid))
    return pid


def _rows(store, cid: str) -> set[tuple]:
    c = consent_shares.c
    with store.engine.connect() as conn:
        found = conn.execute(select(c.patient_key, c.organization).where(c.consent_id == cid)).all()
    return {tuple(r) for r in found}


def _shared_with(store, org_token: str, pid: str) -> bool:
    agency = store.consent.agency(GRANTS[org_token])
    return pid in store.consent.shared_among(agency, [pid])


def test_create_update_withdraw_and_delete_keep_the_table_in_step(store):
    pid, cid = _young_person(store), str(uuid.uuid4())
    store.update(CTX, "Consent", cid, consent(cid, pid, [ORG_A, ORG_B], start=day(-1), end=day(30)))
    assert _rows(store, cid) == {(pid, ORG_A), (pid, ORG_B)}
    assert _shared_with(store, "agency-a", pid) and _shared_with(store, "agency-b", pid)

    store.update(CTX, "Consent", cid, consent(cid, pid, [ORG_A], start=day(-1), end=day(30)))  # B withdrawn
    assert _rows(store, cid) == {(pid, ORG_A)}
    assert _shared_with(store, "agency-a", pid) and not _shared_with(store, "agency-b", pid)

    store.update(CTX, "Consent", cid, consent(cid, pid, [ORG_A], start=day(-1), end=day(30), status="inactive"))
    assert _rows(store, cid) == set()
    assert not _shared_with(store, "agency-a", pid)

    store.update(CTX, "Consent", cid, consent(cid, pid, [ORG_A], start=day(-1), end=day(30)))
    assert _rows(store, cid) == {(pid, ORG_A)}
    store.delete(CTX, "Consent", cid)
    assert _rows(store, cid) == set()
    assert not _shared_with(store, "agency-a", pid)


def test_expiry_and_start_take_effect_without_a_write(store):
    pid, ends = _young_person(store), now_utc() + timedelta(seconds=2)
    cid = str(uuid.uuid4())
    store.update(CTX, "Consent", cid, consent(cid, pid, [ORG_A], start=day(-1), end=instant(ends)))
    later_pid, starts = _young_person(store), now_utc() + timedelta(seconds=2)
    later = str(uuid.uuid4())
    store.update(CTX, "Consent", later, consent(later, later_pid, [ORG_A], start=instant(starts), end=day(30)))
    assert _shared_with(store, "agency-a", pid) and not _shared_with(store, "agency-a", later_pid)
    time.sleep(max(0.0, (max(ends, starts) - now_utc()).total_seconds()) + 1.1)
    assert not _shared_with(store, "agency-a", pid) and _shared_with(store, "agency-a", later_pid)
    assert _rows(store, cid) == {(pid, ORG_A)}  # the row stays; the period is compared with now when read


def test_an_empty_table_is_filled_from_the_current_consents(store):
    pid, cid = _young_person(store), str(uuid.uuid4())
    store.update(CTX, "Consent", cid, consent(cid, pid, [ORG_A], start=day(-1), end=day(30)))
    with store.engine.begin() as conn:  # as a database written before the table existed
        conn.execute(consent_shares.delete())
    store.consent.install()
    assert _rows(store, cid) == {(pid, ORG_A)}
