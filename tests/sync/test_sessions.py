"""Read and write transactions: writers queue for each other, readers never wait for a writer.

SQLite allows one writer at a time. Writes start with BEGIN IMMEDIATE so a second writer waits (busy
timeout) instead of failing; reads (``store.reader``, ``session(readonly=True)``) start a deferred
transaction on a WAL snapshot, so app page reads do not queue behind the worker's writes.
"""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import insert, text
from sqlalchemy.exc import DBAPIError

from tests.support.sync_synthetic import AUTHOR, ORG, goal
from thrive_fhir.ids import new_local_id
from thrive_fhir.localstore import ChangeSet, LocalStore
from thrive_fhir.localstore import models as m

PID = "5d2b8c1e-0a4f-4e6b-8c3d-7f9a1b2c3d4e"
PKEY = f"Patient/{PID}"
HOLD = 0.8


def _save(store, g, expected=0):
    with store.session() as s:
        store.record(
            s,
            ChangeSet(patient_key=PKEY, author_ref=AUTHOR, organization_ref=ORG).put(
                g, expected_local_version=expected
            ),
        )


def test_sqlite_runs_in_wal_mode(sqlite_url):
    store = LocalStore(sqlite_url)
    store.migrate()
    with store.reader.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    store.dispose()


def _hold_write(store, g, holding: threading.Event, release: threading.Event, errors: list):
    """Save ``g`` and keep the transaction (and on SQLite the write lock) open until ``release``."""
    try:
        with store.session() as s:
            store.record(s, ChangeSet(patient_key=PKEY, author_ref=AUTHOR, organization_ref=ORG).put(g))
            holding.set()
            release.wait(10)
    except Exception as exc:  # reported to the test thread
        errors.append(exc)
        holding.set()


def test_second_writer_waits_for_the_first_instead_of_failing(sqlite_url):
    store = LocalStore(sqlite_url)
    store.migrate()
    holding, release, errors = threading.Event(), threading.Event(), []
    first = threading.Thread(
        target=_hold_write, args=(store, goal(new_local_id(), PID, "first"), holding, release, errors)
    )
    first.start()
    assert holding.wait(10)
    threading.Timer(HOLD, release.set).start()
    t0 = time.monotonic()
    other = goal(new_local_id(), "0f6e2a9b-3c1d-4b5a-9e8f-7a6b5c4d3e2f", "second")
    with store.session() as s:  # a different young person: only the database lock is shared
        store.record(
            s,
            ChangeSet(
                patient_key=f"Patient/{other['subject']['reference'].split('/')[1]}",
                author_ref=AUTHOR,
                organization_ref=ORG,
            ).put(other),
        )
    waited = time.monotonic() - t0
    first.join(10)
    assert not errors, errors
    assert waited >= HOLD * 0.8, f"the second writer did not wait ({waited:.2f} s)"
    assert store.current_version("Goal", other["id"]) == 1
    store.dispose()


def test_reads_do_not_wait_for_a_held_write_and_see_the_last_commit(db_url):
    store = LocalStore(db_url)
    store.migrate()
    before = goal(new_local_id(), PID, "committed")
    _save(store, before)
    pending = goal(new_local_id(), PID, "not yet committed")
    holding, release, errors = threading.Event(), threading.Event(), []
    writer = threading.Thread(target=_hold_write, args=(store, pending, holding, release, errors))
    writer.start()
    try:
        assert holding.wait(10) and not errors
        t0 = time.monotonic()
        seen = {r.resource_id for r in store.for_patient_versioned(PKEY)}
        assert store.current("Goal", pending["id"]) is None and store.current_version("Goal", before["id"]) == 1
        assert [h["version"] for h in store.history("Goal", before["id"])] == [1]
        with store.session(readonly=True) as s:
            n = s.execute(text("SELECT count(*) FROM outbox")).scalar()
        took = time.monotonic() - t0
    finally:
        release.set()
        writer.join(10)
    assert not errors, errors
    # A read that waited for the writer would wait its whole 10 s hold (released only after the reads);
    # 5 s leaves room for a loaded machine running the suite on 4 workers.
    assert took < 5, f"reads waited {took:.2f} s for the writer"
    assert before["id"] in seen and pending["id"] not in seen and n == 1  # the snapshot before the write
    assert store.current("Goal", pending["id"]) is not None  # and the commit is visible afterwards
    store.dispose()


def test_readonly_session_refuses_writes_and_leaves_the_connection_writable(db_url):
    store = LocalStore(db_url)
    store.migrate()
    with pytest.raises(DBAPIError):
        with store.session(readonly=True) as s:
            s.execute(insert(m.patient_lock).values(patient_key="Patient/x"))
    g = goal(new_local_id(), PID, "after a read")
    for _ in range(3):  # pooled connections go back and forth between reading and writing
        with store.session(readonly=True) as s:
            s.execute(text("SELECT 1"))
        assert store.current("Goal", g["id"]) is None
    _save(store, g)
    assert store.current_version("Goal", g["id"]) == 1
    store.dispose()
