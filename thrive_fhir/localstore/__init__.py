"""The app's local system of record and the transactional outbox the sync worker drains.

from thrive_fhir.localstore import LocalStore, ChangeSet
store = LocalStore(url); store.migrate()
with store.session() as s:
    cs = ChangeSet(patient_key="Patient/<id>", author_ref=..., organization_ref=..., activity="update")
    cs.put(goal, expected_local_version=3)
    store.record(s, cs)       # versions + thrive-provenance + one outbox row, one transaction
store.for_patient_versioned("Patient/<id>")   # current resources with versions (a snapshot read)
store.history("CarePlan", id)                 # every version with its author and save time
"""

from .store import (
    DEFAULT_ASSEMBLER,
    LONG_LIVED_TYPES,
    ChangeSet,
    CurrentResource,
    LocalStore,
    LocalVersion,
    StaleVersion,
    make_engine,
)

__all__ = [
    "DEFAULT_ASSEMBLER",
    "LONG_LIVED_TYPES",
    "ChangeSet",
    "CurrentResource",
    "LocalStore",
    "LocalVersion",
    "StaleVersion",
    "make_engine",
]
