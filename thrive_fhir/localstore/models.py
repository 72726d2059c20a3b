"""Tables of the app's local system of record and its transactional outbox.

The local database is the system of record: a clinician's save lands here first, in one transaction
together with the outbox row that tells the sync worker to push it (docs/design/sync.md "transactional outbox").
Times are stored as UTC epoch seconds (floats) so that lease and back-off arithmetic is the same on
SQLite and PostgreSQL and needs no time-zone handling.

The Alembic migrations in ``migrations/versions`` create exactly these tables; a test compares the two.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)

metadata = MetaData()

#: BIGINT on PostgreSQL, INTEGER (the rowid alias, so it autoincrements) on SQLite.
RowId = BigInteger().with_variant(Integer(), "sqlite")

#: Current version of every resource the app owns (one row per resource).
local_resource = Table(
    "local_resource",
    metadata,
    Column("resource_type", String(64), primary_key=True),
    Column("resource_id", String(64), primary_key=True),
    Column("patient_key", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("resource", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("ix_local_resource_patient", "patient_key", "resource_type"),
)

#: Every version ever saved locally (never updated, never deleted).
local_resource_version = Table(
    "local_resource_version",
    metadata,
    Column("resource_type", String(64), primary_key=True),
    Column("resource_id", String(64), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("resource", Text, nullable=False),
    Column("saved_at", Float, nullable=False),
    Column("outbox_id", RowId, nullable=False),
    Index("ix_local_resource_version_outbox", "outbox_id"),
)

#: One row per young person; record() locks it so one patient's saves commit (and get outbox ids)
#: strictly one after another. That makes outbox id order equal commit order per patient, which is
#: the order the worker must keep.
patient_lock = Table(
    "patient_lock",
    metadata,
    Column("patient_key", String(128), primary_key=True),
)

#: One row per clinician save (change set). ``entries`` is a JSON list of
#: ``[resource_type, resource_id, local_version]`` (the save's resources, then its Provenance).
outbox = Table(
    "outbox",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    # Public, globally unique row id: goes into meta.source "#<uid>" and the Provenance id. The
    # integer id is only unique inside one deployment's database, and the shared store sees many.
    Column("uid", String(36), nullable=False, unique=True),
    Column("patient_key", String(128), nullable=False),
    Column("activity", String(16), nullable=False),
    Column("author_ref", String(256), nullable=False),
    Column("organization_ref", String(256), nullable=False),
    Column("entries", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    # pending | sent | dead | conflict | discarded
    Column("status", String(16), nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", Float, nullable=False, server_default="0"),
    Column("lease_owner", String(64)),
    Column("lease_until", Float),
    # Set after an answer we could not read (timeout, dropped connection, 5xx): the store may have
    # committed. The next attempt first reads the store to see whether this row already landed.
    Column("needs_check", Boolean, nullable=False, server_default=text("false")),
    Column("sent_at", Float),
    Column("last_status", Integer),
    # Short machine text only (error class, HTTP status); never resource content.
    Column("last_error", String(256)),
    # The store's OperationOutcome for dead letters, or its current resource for conflicts.
    Column("outcome", Text),
    Column("updated_at", Float, nullable=False),
)
# Partial indexes keep the worker's claim query small however many rows have been sent.
Index(
    "ix_outbox_pending",
    outbox.c.id,
    postgresql_where=outbox.c.status == "pending",
    sqlite_where=outbox.c.status == "pending",
)
Index(
    "ix_outbox_patient_pending",
    outbox.c.patient_key,
    outbox.c.id,
    postgresql_where=outbox.c.status == "pending",
    sqlite_where=outbox.c.status == "pending",
)
Index("ix_outbox_status", outbox.c.status, outbox.c.id)
# Queue figures from short index ranges instead of outbox scans (migration 0003).
Index(
    "ix_outbox_pending_lease",
    outbox.c.lease_until,
    postgresql_where=outbox.c.status == "pending",
    sqlite_where=outbox.c.status == "pending",
)
Index(
    "ix_outbox_pending_created",
    outbox.c.created_at,
    postgresql_where=outbox.c.status == "pending",
    sqlite_where=outbox.c.status == "pending",
)
Index(
    "ix_outbox_sent_at",
    outbox.c.sent_at,
    postgresql_where=outbox.c.status == "sent",
    sqlite_where=outbox.c.status == "sent",
)

#: What the shared store holds for each resource we pushed: its version (for If-Match) and which
#: local version it is (so an older row, e.g. a re-queued dead letter, never overwrites a newer one).
sync_resource_state = Table(
    "sync_resource_state",
    metadata,
    Column("resource_type", String(64), primary_key=True),
    Column("resource_id", String(64), primary_key=True),
    Column("store_version", String(64)),
    Column("local_version", Integer, nullable=False),
    Column("outbox_id", RowId, nullable=False),
    Column("updated_at", Float, nullable=False),
    # The id the store gave the resource (migration 0004): equal to resource_id with deterministic
    # ids; learned from the store's answer in identifier mode (servers that assign their own ids).
    Column("store_id", String(64)),
)

#: History of each outbox row's life (attempts that failed, dead-lettering, retries, resolutions):
#: a re-queued dead letter keeps it. Holds no resource content.
outbox_event = Table(
    "outbox_event",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("outbox_id", RowId, nullable=False, index=True),
    Column("at", Float, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("http_status", Integer),
    Column("detail", String(512)),
)
