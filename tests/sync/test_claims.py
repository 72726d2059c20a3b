"""Claiming: a patient's rows go out as a prefix, never split across concurrent batches; leases expire."""

from __future__ import annotations

import threading
import time

from tests.support.sync_synthetic import Scenario
from tests.support.sync_workers import new_patients
from thrive_fhir.localstore import outbox as q


def test_claims_keep_each_patient_whole_and_in_order(local_store):
    a, b = new_patients(2)
    sc = Scenario(local_store, [a, b])
    ga = sc.new_goal(a)
    sc.new_score(b)
    sc.update_goal(a, ga["id"])  # same resource twice: must not share one transaction
    sc.new_score(b)
    sc.new_score(a)
    first = q.claim(local_store, "w1", max_entries=50, max_patients=1, lease_seconds=30)
    assert [r.patient_key for r in first] == [f"Patient/{a}"]  # stops before the second version of the goal
    second = q.claim(local_store, "w2", max_entries=50, max_patients=5, lease_seconds=30)
    assert {r.patient_key for r in second} == {f"Patient/{b}"} and len(second) == 2
    assert [r.id for r in second] == sorted(r.id for r in second)
    # a's later rows wait while its head is in flight, even though they are ready
    assert q.claim(local_store, "w3", max_entries=50, max_patients=5, lease_seconds=30) == []
    # the lease of a worker that died expires; the next claim takes over and checks the store first
    later = first[0].attempts
    taken = q.claim(local_store, "w3", max_entries=50, max_patients=5, lease_seconds=30, now=first[0].created_at + 3600)
    assert [r.id for r in taken][:1] == [first[0].id] and taken[0].needs_check and taken[0].attempts == later + 1


def test_concurrent_claimers_never_share_a_patient(local_store):
    patients = new_patients(12)
    sc = Scenario(local_store, patients, seed=4)
    sc.random_saves(120)
    claimed: list[tuple[str, list]] = []
    lock = threading.Lock()

    def claimer(name):
        for _ in range(6):
            rows = q.claim(local_store, name, max_entries=8, max_patients=3, lease_seconds=300)
            with lock:
                claimed.append((name, rows))

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    owner: dict[str, str] = {}
    ids = []
    for name, rows in claimed:
        for r in rows:
            assert owner.setdefault(r.patient_key, name) == name, "a patient was split across workers"
            ids.append(r.id)
    assert len(ids) == len(set(ids)) and ids


def test_a_batch_fills_from_few_patients_with_deep_queues(local_store):
    a, b, c = new_patients(3)
    sc = Scenario(local_store, [a, b, c])
    for _ in range(10):
        for p in (a, b, c):
            sc.new_score(p)  # one Observation + its Provenance: 2 entries each
    rows = q.claim(local_store, "w1", max_entries=12, max_patients=50, lease_seconds=30)
    assert sum(len(r.entries) for r in rows) == 12 and len(rows) == 6
    for p in (a, b, c):  # each patient's two oldest rows, nobody skipped ahead
        mine = [r.id for r in rows if r.patient_key == f"Patient/{p}"]
        assert len(mine) == 2 and mine == sorted(mine)
    alone = q.claim(local_store, "w2", max_entries=12, max_patients=50, lease_seconds=30)
    assert alone == []  # every patient's head is leased
    [d] = new_patients(1)
    sc2 = Scenario(local_store, [d])
    for _ in range(20):
        sc2.new_score(d)
    deep = q.claim(local_store, "w3", max_entries=12, max_patients=50, lease_seconds=30)
    assert [r.patient_key for r in deep] == [f"Patient/{d}"] * 6  # one patient alone still fills the batch


def test_claim_and_queue_figures_never_scan_the_whole_outbox(sqlite_url):
    """Every statement of a claim and of the queue figures reads an index range (EXPLAIN QUERY PLAN):
    the worker's cost per batch must not grow with the queue's depth."""
    from sqlalchemy import event

    from thrive_fhir.localstore import LocalStore

    store = LocalStore(sqlite_url)
    store.migrate()
    patients = new_patients(4)
    Scenario(store, patients).random_saves(30)
    seen: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and " outbox" in statement:
            seen.append((statement, parameters))

    for engine in (store.engine, store.reader):
        event.listen(engine, "before_cursor_execute", capture)
    rows = q.claim(store, "w1", max_entries=10, max_patients=5, lease_seconds=30)
    q.figures(store)
    for engine in (store.engine, store.reader):
        event.remove(engine, "before_cursor_execute", capture)
    assert rows and len(seen) >= 8
    with store.reader.connect() as c:
        for statement, params in seen:
            plan = " | ".join(r[-1] for r in c.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params).all())
            assert "SCAN outbox" not in plan, (statement, plan)
    store.dispose()


def _leases(store):
    from sqlalchemy import select

    with store.reader.connect() as c:
        return {
            r.id: (r.lease_owner, bool(r.needs_check), r.next_attempt_at)
            for r in c.execute(select(q.o.c.id, q.o.c.lease_owner, q.o.c.needs_check, q.o.c.next_attempt_at))
        }


def test_worker_gives_back_unsettled_rows_at_once(local_store):
    import pytest

    from tests.support.sync_workers import make_worker

    patients = new_patients(3)
    sc = Scenario(local_store, patients)
    for p in patients:
        sc.new_score(p)
    worker = make_worker(local_store, "http://127.0.0.1:9/fhir")

    def settle_first_only(rows):  # a batch that settled one row and forgot the others
        with local_store.session() as s:
            q.mark_retry(
                s,
                rows[:1],
                worker.worker_id,
                delay=60.0,
                status=503,
                error="x",
                ambiguous=False,
                now=rows[0].created_at,
            )

    worker.process = settle_first_only
    assert worker.step() == 3
    leases = _leases(local_store)
    first = min(leases)
    assert leases[first][0] is None and not leases[first][1]  # settled: keeps its own outcome
    assert all(owner is None and check for i, (owner, check, _) in leases.items() if i != first)

    def crash(rows):
        raise RuntimeError("bug half-way through a batch")

    worker.process = crash
    with pytest.raises(RuntimeError):
        worker.step()  # the two rows not backing off are claimed again, then given back at once
    assert all(owner is None for owner, _, _ in _leases(local_store).values())


def test_worker_start_refreshes_outbox_statistics_on_postgres(fresh_postgres_url, tmp_path):
    """An outbox filled in one burst has no planner statistics; ``thrive sync run`` analyses it at
    start (PostgreSQL), and is a no-op on SQLite. Nothing is queued, so no store is contacted."""
    from sqlalchemy import text

    from thrive_fhir.localstore import LocalStore
    from thrive_fhir.sync import runner
    from thrive_fhir.sync.config import load_config

    store = LocalStore(fresh_postgres_url)
    store.migrate()

    def analysed() -> bool:
        with store.engine.connect() as conn:
            return conn.execute(
                text("SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'outbox'")
            ).scalar()

    assert not analysed()
    cfg = load_config(
        None, env={}, database_url=fresh_postgres_url, fhir_base="http://127.0.0.1:9/fhir", ods_code="RXX"
    )
    assert runner.run(cfg, once=True, max_wait=1) == 0
    deadline = time.monotonic() + 5  # the statistics views are flushed by the server, not at once
    while not analysed() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert analysed()
    store.dispose()

    sqlite = LocalStore(f"sqlite:///{tmp_path / 'l.db'}")
    sqlite.migrate()
    assert q.refresh_statistics(sqlite) is False
    sqlite.dispose()
