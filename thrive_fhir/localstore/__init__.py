"""The app's local system of record and the transactional outbox the sync worker drains.

    from thrive_fhir.localstore import LocalStore, ChangeSet
    store = LocalStore(url); store.migrate()
    with store.session() as s:
        cs = ChangeSet(patient_key="Patient/<id>", author_ref=..., organization_ref=..., activity="update")
        cs.put(goal, expected_local_version=3)
        store.record(s, cs)
"""

from .store import LONG_LIVED_TYPES, ChangeSet, LocalStore, LocalVersion, StaleVersion, make_engine

__all__ = ["ChangeSet", "LocalStore", "LocalVersion", "StaleVersion", "LONG_LIVED_TYPES", "make_engine"]
