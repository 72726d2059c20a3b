"""Database schema and engine set-up (SQLite file or PostgreSQL via SQLAlchemy 2 Core).

Design:
- ``resource_versions`` holds every version of every resource (the JSON text exactly as served), with
  ``is_current`` marking the head. Two partial unique indexes make the database itself refuse two
  heads for one resource and two writers producing the same version number — so the ``If-Match``
  race cannot be lost even when two server processes share one PostgreSQL database.
- ``search_index`` holds one row per indexed value of the *current* version only (token/reference/
  string values in ``val``, dates as ``dt_lo``..``dt_hi`` ranges). Plain B-tree indexes serve every
  search parameter identically on SQLite and PostgreSQL, which JSON functions (``json_each`` vs
  ``jsonb_path_query``) would not.
- Tables are created with ``metadata.create_all`` on start (idempotent). There is no Alembic history
  yet: the first schema change must add one (see docs/store-vs-sekmet.md, "Operations").
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    text,
)
from sqlalchemy.engine import Engine

metadata = MetaData()

_seq_type = BigInteger().with_variant(Integer(), "sqlite")

resource_versions = Table(
    "resource_versions",
    metadata,
    Column("seq", _seq_type, primary_key=True, autoincrement=True),
    Column("res_type", String(64), nullable=False),
    Column("res_id", String(64), nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("last_updated", DateTime, nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("is_current", Boolean, nullable=False, default=True),
    Column("patient_key", String(64), nullable=True),
    Column("content", Text, nullable=True),
    UniqueConstraint("res_type", "res_id", "version_id", name="uq_resource_version"),
)
Index(
    "ix_current",
    resource_versions.c.res_type,
    resource_versions.c.res_id,
    unique=True,
    sqlite_where=resource_versions.c.is_current,
    postgresql_where=resource_versions.c.is_current,
)
Index(
    "ix_current_patient",
    resource_versions.c.patient_key,
    resource_versions.c.res_type,
    sqlite_where=resource_versions.c.is_current,
    postgresql_where=resource_versions.c.is_current,
)
Index("ix_type_updated", resource_versions.c.res_type, resource_versions.c.last_updated)
Index("ix_updated", resource_versions.c.last_updated)

search_index = Table(
    "search_index",
    metadata,
    Column("res_type", String(64), nullable=False),
    Column("res_id", String(64), nullable=False),
    Column("param", String(64), nullable=False),
    Column("sys", String(512), nullable=True),
    Column("val", String(512), nullable=True),
    Column("dt_lo", DateTime, nullable=True),
    Column("dt_hi", DateTime, nullable=True),
)
Index("ix_si_value", search_index.c.res_type, search_index.c.param, search_index.c.val, search_index.c.res_id)
Index("ix_si_date", search_index.c.res_type, search_index.c.param, search_index.c.dt_lo, search_index.c.dt_hi)
Index("ix_si_resource", search_index.c.res_type, search_index.c.res_id)

#: What each current sharing Consent allows (one row per organisation): kept by writes.apply, read by
#: the consent filter on agency requests (consent_gate.py).
consent_shares = Table(
    "consent_shares",
    metadata,
    Column("consent_id", String(64), nullable=False),
    Column("patient_key", String(64), nullable=False),
    Column("organization", String(256), nullable=False),
    Column("starts", DateTime, nullable=True),
    Column("ends", DateTime, nullable=True),
)
Index(
    "ix_consent_shares_org",
    consent_shares.c.organization,
    consent_shares.c.patient_key,
    consent_shares.c.starts,
    consent_shares.c.ends,
)
Index("ix_consent_shares_consent", consent_shares.c.consent_id)

export_jobs = Table(
    "export_jobs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("status", String(16), nullable=False),  # in-progress | complete | error | cancelled
    Column("created", DateTime, nullable=False),
    Column("transaction_time", DateTime, nullable=False),
    Column("request", Text, nullable=False),
    Column("client_id", String(256), nullable=True),
    Column("progress", String(128), nullable=True),
    Column("manifest", Text, nullable=True),
    Column("error", Text, nullable=True),
)


#: Topic-based Subscriptions (store/subscriptions): one row per Subscription with who created it,
#: where to deliver and its delivery state. The channel headers (the receiver's secret) live only
#: here, never in the stored Subscription resource.
subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("owner_client", String(256), nullable=True),
    Column("owner_org", String(256), nullable=True),
    Column("owner_user", String(256), nullable=True),
    Column("owner_patient", String(64), nullable=True),
    Column("owner_scopes", Text, nullable=True),
    Column("endpoint", String(2048), nullable=False),
    Column("headers", Text, nullable=False),  # JSON list of "Name: value"
    Column("content", String(16), nullable=False),  # id-only | empty
    Column("heartbeat", Integer, nullable=True),  # seconds
    Column("ends", DateTime, nullable=True),  # Subscription.end: then it is switched off
    Column("filters", Text, nullable=False),  # JSON list of [type or null, patient id or null]
    Column("status", String(16), nullable=False),  # requested | active | error | off
    Column("events_total", BigInteger, nullable=False, default=0),  # last event number assigned
    Column("delivered_through", BigInteger, nullable=False, default=0),  # last event number acknowledged
    Column("failures", Integer, nullable=False, default=0),  # consecutive failed deliveries
    Column("next_attempt", DateTime, nullable=True),
    Column("last_sent", DateTime, nullable=True),
    Column("lease_until", DateTime, nullable=True),  # a dispatcher is delivering until then
    Column("base", String(512), nullable=False),  # the store's base URL the subscriber used
    Column("created", DateTime, nullable=False),
)

#: Committed writes in a patient compartment not yet planned for delivery, written in the same
#: transaction as the write (subscriptions/events.py); the planner turns them into deliveries.
subscription_events = Table(
    "subscription_events",
    metadata,
    Column("seq", _seq_type, primary_key=True, autoincrement=True),
    Column("created", DateTime, nullable=False),
    Column("res_type", String(64), nullable=False),
    Column("res_id", String(64), nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("method", String(8), nullable=False),  # POST | PUT | DELETE
    Column("patient_key", String(64), nullable=False),
)

#: The numbered events of each subscription (what notifications and $events report).
subscription_deliveries = Table(
    "subscription_deliveries",
    metadata,
    Column("sub_id", String(64), nullable=False),
    Column("number", BigInteger, nullable=False),
    Column("created", DateTime, nullable=False),
    Column("res_type", String(64), nullable=False),
    Column("res_id", String(64), nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("method", String(8), nullable=False),
    Column("patient_key", String(64), nullable=False),
    UniqueConstraint("sub_id", "number", name="uq_subscription_delivery"),
)
Index("ix_subscription_deliveries_created", subscription_deliveries.c.created)


def make_engine(database_url: str, *, pool_size: int = 10) -> Engine:
    """An engine with the per-backend settings the store relies on.

    SQLite: WAL (readers never block the writer) with ``synchronous=NORMAL`` (commits are not
    fsynced: a power cut can lose the last transactions, never corrupt the file; a crash of the
    process loses nothing), a busy timeout instead of instant "database is locked" errors, and
    write transactions opened with ``BEGIN IMMEDIATE`` so a read-check-write (If-Match, conditional
    create) cannot interleave with another writer. pysqlite's own transaction handling is switched
    off for that (its implicit BEGIN is deferred).
    """
    if database_url.startswith("sqlite"):
        engine = create_engine(
            database_url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=pool_size,
            max_overflow=pool_size,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn, _record):
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            # A 100-entry transaction dirties ~1,000 pages (random ids land on random index pages), so
            # at the default 1,000-page threshold every commit ran a checkpoint (copy + fsync).
            # Checkpointing every 4,000 pages (16 MB of WAL) copies a page rewritten by several
            # commits once: ~15% faster ingest. The WAL file is truncated back to 64 MB at most.
            cur.execute("PRAGMA wal_autocheckpoint=4000")
            cur.execute("PRAGMA journal_size_limit=67108864")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            mode = "BEGIN IMMEDIATE" if conn.get_execution_options().get("write") else "BEGIN"
            conn.exec_driver_sql(mode)

        return engine
    return create_engine(database_url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def create_schema(engine: Engine) -> None:
    metadata.create_all(engine)
    # A job still "in-progress" belonged to a process that has gone; say so instead of polling forever.
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE export_jobs SET status='error', error='server restarted during export' "
                "WHERE status='in-progress'"
            )
        )
