"""Claiming: a patient's rows go out as a prefix, never split across concurrent batches; leases expire."""

from __future__ import annotations

import threading

from conftest import new_patients

from sync_synthetic import Scenario
from thrive_fhir.sync import queue as q


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
