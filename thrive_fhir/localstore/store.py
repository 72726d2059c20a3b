"""LocalStore: the app's local system of record, written together with the sync outbox.

A save is one local database transaction holding the new resource versions, their Provenance and the
outbox row that asks the sync worker to push them (sync.md: no "write then enqueue" in two steps). The
caller owns the transaction (``with store.session() as s``) so its own writes (audit rows, form state)
commit or roll back with the clinical change.
"""

from __future__ import annotations

import json
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources as importlib_resources
from typing import Iterator

from sqlalchemy import create_engine, event, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from . import models as m
from .provenance import build_save_provenance

#: Resources edited in place over time (new versions of one id). Everything else the app writes is an
#: event: a new resource per decision or rating (fhir-model.md section 4).
LONG_LIVED_TYPES = frozenset({"Goal", "CarePlan", "Consent", "Task", "CareTeam", "EpisodeOfCare", "Flag"})


class StaleVersion(Exception):
    """Someone else saved the resource after the caller read it.

    The app shows ``current_resource`` (version ``current_version``) next to the user's edit and asks
    which to keep; ``current_version`` is 0 and ``current_resource`` None when the caller expected an
    existing resource that is not there.
    """

    def __init__(self, resource_ref: str, current_version: int, current_resource: dict | None):
        super().__init__(f"{resource_ref} was saved by someone else (now version {current_version})")
        self.resource_ref = resource_ref
        self.current_version = current_version
        self.current_resource = current_resource


@dataclass(frozen=True)
class LocalVersion:
    """One resource version written by a save."""

    resource_type: str
    resource_id: str
    version: int
    resource: dict
    outbox_uid: str


@dataclass
class ChangeSet:
    """What one clinician save changes for one young person.

    ``patient_key`` is ``"Patient/<id>"``: the worker keeps this patient's saves in order.
    ``activity`` is ``create`` or ``update`` (Provenance.activity). ``expected_local_version`` on
    :meth:`put`: ``None`` skips the check, ``0`` means "must be new", ``n`` means "I edited version n".
    """

    patient_key: str
    author_ref: str
    organization_ref: str
    activity: str = "create"
    reason: str | None = None
    items: list[tuple[dict, int | None]] = field(default_factory=list)

    def put(self, resource: dict, expected_local_version: int | None = None) -> "ChangeSet":
        if not isinstance(resource, dict) or not resource.get("resourceType") or not resource.get("id"):
            raise ValueError("a resource needs resourceType and id (ids come from thrive_fhir.ids)")
        if resource["resourceType"] == "Provenance":
            raise ValueError("the save's Provenance is written by LocalStore.record; do not put one")
        if any(r["resourceType"] == resource["resourceType"] and r["id"] == resource["id"] for r, _ in self.items):
            raise ValueError(f"{resource['resourceType']}/{resource['id']} is already in this change set")
        self.items.append((resource, expected_local_version))
        return self


def _sqlite_begin_immediate(engine: Engine) -> None:
    """SQLite: take the write lock at BEGIN so two writers wait for each other instead of failing.

    With pysqlite's default deferred transactions a reader that later writes can hit "database is
    locked" immediately; BEGIN IMMEDIATE makes the second writer wait up to the busy timeout. WAL lets
    readers carry on meanwhile.
    """

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record):  # noqa: ANN001 - DBAPI objects
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):  # noqa: ANN001
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(database_url: str) -> Engine:
    """Engine for the local store (SQLite or PostgreSQL) with the settings the outbox relies on."""
    if database_url.startswith("sqlite"):
        engine = create_engine(database_url, connect_args={"timeout": 30})
        _sqlite_begin_immediate(engine)
        return engine
    return create_engine(database_url, pool_pre_ping=True)


class LocalStore:
    """Engine, sessions and the save/read API of the local system of record."""

    def __init__(self, database_url: str, *, engine: Engine | None = None):
        self.database_url = database_url
        self.engine = engine or make_engine(database_url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (safe to run on every start)."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option(
            "script_location", str(importlib_resources.files("thrive_fhir.localstore") / "migrations")
        )
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One local transaction: commits when the block ends, rolls back if it raises."""
        with self._sessions() as s:
            with s.begin():
                yield s

    def dispose(self) -> None:
        self.engine.dispose()

    # --- writes ------------------------------------------------------------------------------
    def record(self, s: Session, cs: ChangeSet) -> list[LocalVersion]:
        """Write a change set's resource versions, its Provenance and ONE outbox row, inside ``s``.

        Returns the versions written (the Provenance last). Raises :class:`StaleVersion` (and writes
        nothing of this change set; the caller's transaction rolls back when it propagates) if a
        resource changed since the version the caller expected.
        """
        if not cs.items:
            raise ValueError("an empty change set has nothing to save")
        if cs.activity not in ("create", "update"):
            raise ValueError("activity must be 'create' or 'update'")
        if not cs.patient_key.startswith("Patient/"):
            raise ValueError("patient_key must look like 'Patient/<id>'")
        now = time.time()
        self._lock_patient(s, cs.patient_key)

        # Read and check every resource before writing any: a stale one fails the whole save.
        plans: list[tuple[dict, int]] = []
        for resource, expected in cs.items:
            rtype, rid = resource["resourceType"], resource["id"]
            q = select(m.local_resource.c.version, m.local_resource.c.resource).where(
                m.local_resource.c.resource_type == rtype, m.local_resource.c.resource_id == rid
            )
            if self.is_postgres:
                q = q.with_for_update()
            row = s.execute(q).first()
            current = row.version if row else 0
            if expected is not None and expected != current:
                raise StaleVersion(f"{rtype}/{rid}", current, json.loads(row.resource) if row else None)
            plans.append((resource, current + 1))

        uid = str(uuid.uuid4())
        prov = build_save_provenance(
            outbox_uid=uid,
            resources=plans,
            recorded=now,
            activity=cs.activity,
            author_ref=cs.author_ref,
            organization_ref=cs.organization_ref,
            reason=cs.reason,
        )
        written = [*plans, (prov, 1)]
        entries = [[r["resourceType"], r["id"], v] for r, v in written]
        outbox_id = s.execute(
            insert(m.outbox)
            .values(
                uid=uid,
                patient_key=cs.patient_key,
                activity=cs.activity,
                author_ref=cs.author_ref,
                organization_ref=cs.organization_ref,
                entries=json.dumps(entries),
                created_at=now,
                status="pending",
                attempts=0,
                next_attempt_at=0.0,
                needs_check=False,
                updated_at=now,
            )
            .returning(m.outbox.c.id)
        ).scalar_one()

        out: list[LocalVersion] = []
        for resource, version in written:
            rtype, rid = resource["resourceType"], resource["id"]
            body = json.dumps(resource, separators=(",", ":"), ensure_ascii=False)
            s.execute(
                insert(m.local_resource_version).values(
                    resource_type=rtype, resource_id=rid, version=version, resource=body, saved_at=now, outbox_id=outbox_id
                )
            )
            if version == 1:
                s.execute(
                    insert(m.local_resource).values(
                        resource_type=rtype,
                        resource_id=rid,
                        patient_key=cs.patient_key,
                        version=1,
                        resource=body,
                        updated_at=now,
                    )
                )
            else:
                s.execute(
                    update(m.local_resource)
                    .where(m.local_resource.c.resource_type == rtype, m.local_resource.c.resource_id == rid)
                    .values(version=version, resource=body, updated_at=now)
                )
            out.append(LocalVersion(rtype, rid, version, resource, uid))
        return out

    def _lock_patient(self, s: Session, patient_key: str) -> None:
        """Serialise saves per patient so their outbox ids follow commit order (see models)."""
        if self.is_postgres:
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            s.execute(pg_insert(m.patient_lock).values(patient_key=patient_key).on_conflict_do_nothing())
            s.execute(select(m.patient_lock.c.patient_key).where(m.patient_lock.c.patient_key == patient_key).with_for_update())
        else:
            # SQLite transactions already hold the database write lock from BEGIN IMMEDIATE.
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            s.execute(sqlite_insert(m.patient_lock).values(patient_key=patient_key).on_conflict_do_nothing())

    # --- reads -------------------------------------------------------------------------------
    def current(self, resource_type: str, resource_id: str) -> dict | None:
        """The newest local version of a resource, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(m.local_resource.c.resource).where(
                    m.local_resource.c.resource_type == resource_type, m.local_resource.c.resource_id == resource_id
                )
            ).first()
        return json.loads(row.resource) if row else None

    def current_version(self, resource_type: str, resource_id: str) -> int:
        """The newest local version number (0 when the resource does not exist)."""
        with self.engine.connect() as conn:
            v = conn.execute(
                select(m.local_resource.c.version).where(
                    m.local_resource.c.resource_type == resource_type, m.local_resource.c.resource_id == resource_id
                )
            ).scalar()
        return v or 0

    def history(self, resource_type: str, resource_id: str) -> list[dict]:
        """Every local version, oldest first: ``{"version", "saved_at", "resource"}``."""
        t = m.local_resource_version
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.c.version, t.c.saved_at, t.c.resource)
                .where(t.c.resource_type == resource_type, t.c.resource_id == resource_id)
                .order_by(t.c.version)
            ).all()
        return [{"version": r.version, "saved_at": r.saved_at, "resource": json.loads(r.resource)} for r in rows]

    def for_patient(self, patient_key: str, type: str | None = None) -> list[dict]:  # noqa: A002 - agreed name
        """Current versions of every resource saved for one patient (optionally one type)."""
        t = m.local_resource
        q = select(t.c.resource).where(t.c.patient_key == patient_key)
        if type:
            q = q.where(t.c.resource_type == type)
        with self.engine.connect() as conn:
            rows = conn.execute(q.order_by(t.c.resource_type, t.c.updated_at, t.c.resource_id)).all()
        return [json.loads(r.resource) for r in rows]
