"""LocalStore: the app's local system of record, written together with the sync outbox.

A save is one local database transaction holding the new resource versions, their Provenance and the
outbox row that asks the sync worker to push them (docs/design/sync.md: no "write then enqueue" in two steps). The
caller owns the transaction (``with store.session() as s``) so its own writes (audit rows, form state)
commit or roll back with the clinical change.

Reads go through ``store.reader`` / ``store.session(readonly=True)``: on SQLite those start a deferred
transaction (a WAL snapshot that never waits for the writer), while writes take the write lock at
``BEGIN IMMEDIATE`` so two writers queue instead of failing.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources as importlib_resources
from typing import NamedTuple

from sqlalchemy import create_engine, event, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from .. import canonical
from ..builders import ProvenanceInput, SourceRecord, build_provenance
from ..ids import resource_id
from . import models as m
from . import outbox

#: Resources edited in place over time (new versions of one id). Everything else the app writes is an
#: event: a new resource per decision or rating (docs/design/fhir-model.md section 4).
LONG_LIVED_TYPES = frozenset({"Goal", "CarePlan", "Consent", "Task", "CareTeam", "EpisodeOfCare", "Flag"})

#: Provenance ``agent[assembler]``: the app deployment that assembled the save (a Device reference; the
#: id is a UUID because some stores insist on UUID ids). A deployment with a registered Device passes
#: its own with ``LocalStore(url, assembler_ref=...)``.
DEFAULT_ASSEMBLER = f"Device/{resource_id('device', 'thrive-fhir-app')}"

#: Execution option marking a read-only connection (see :func:`_sqlite_setup`).
_READONLY = "thrive_readonly"


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
    ``activity`` is ``create`` or ``update`` (Provenance.activity). ``author_ref`` is the clinician
    (``Practitioner/…`` or ``PractitionerRole/…``) and ``organization_ref`` the ``Organization/…`` they
    act for: the thrive-provenance profile requires both. ``informants`` are the young person and
    parent (``Patient/…``, ``RelatedPerson/…``) when they took part. ``expected_local_version`` on
    :meth:`put`: ``None`` skips the check, ``0`` means "must be new", ``n`` means "I edited version n".

    ``reason`` is accepted for callers that pass one but is not written: R4 ``Provenance.reason`` is a
    PurposeOfUse code, not a free-text label, and the profiled builder has no such input.
    """

    patient_key: str
    author_ref: str
    organization_ref: str
    activity: str = "create"
    reason: str | None = None
    informants: tuple[str, ...] = ()
    items: list[tuple[dict, int | None]] = field(default_factory=list)

    def put(self, resource: dict, expected_local_version: int | None = None) -> ChangeSet:
        if not isinstance(resource, dict) or not resource.get("resourceType") or not resource.get("id"):
            raise ValueError("a resource needs resourceType and id (ids come from thrive_fhir.ids)")
        if resource["resourceType"] == "Provenance":
            raise ValueError("the save's Provenance is written by LocalStore.record; do not put one")
        if any(r["resourceType"] == resource["resourceType"] and r["id"] == resource["id"] for r, _ in self.items):
            raise ValueError(f"{resource['resourceType']}/{resource['id']} is already in this change set")
        self.items.append((resource, expected_local_version))
        return self


def _sqlite_setup(engine: Engine) -> None:
    """SQLite: WAL, writers take the write lock at BEGIN, readers read a snapshot without waiting.

    With pysqlite's default deferred transactions a transaction that reads and then writes can hit
    "database is locked" at once when another writer got in between; BEGIN IMMEDIATE makes the second
    writer wait (up to the busy timeout) instead. Reads need no lock at all under WAL, so connections
    marked read-only (``LocalStore.reader``) start a plain deferred BEGIN and set ``query_only`` so a
    write slipped into a read cannot upgrade the snapshot half-way (it fails at once instead).
    """

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record):  # DBAPI objects
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):
        readonly = bool(conn.get_execution_options().get(_READONLY))
        info = conn.connection.info
        if readonly != info.get(_READONLY, False):
            conn.exec_driver_sql(f"PRAGMA query_only={'ON' if readonly else 'OFF'}")
            info[_READONLY] = readonly
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")


def make_engine(database_url: str) -> Engine:
    """Engine for the local store (SQLite or PostgreSQL) with the settings the outbox relies on."""
    if database_url.startswith("sqlite"):
        engine = create_engine(database_url, connect_args={"timeout": 30})
        _sqlite_setup(engine)
        return engine
    return create_engine(database_url, pool_pre_ping=True)


class CurrentResource(NamedTuple):
    """The newest local version of one resource (``LocalStore.for_patient_versioned``)."""

    resource_type: str
    resource_id: str
    version: int
    resource: dict


def _business_source(resource: dict, version: int) -> SourceRecord | None:
    """The local record behind a resource: its ``{BASE}/Id/<kind>`` identifier, as a Provenance source."""
    prefix = canonical.id_system("")
    for ident in resource.get("identifier") or []:
        system = ident.get("system") if isinstance(ident, dict) else None
        if isinstance(system, str) and system.startswith(prefix) and len(system) > len(prefix):
            return SourceRecord(kind=system[len(prefix) :], local_id=ident.get("value"), version=version)
    return None


class LocalStore:
    """Engine, sessions and the save/read API of the local system of record."""

    def __init__(self, database_url: str, *, engine: Engine | None = None, assembler_ref: str = DEFAULT_ASSEMBLER):
        self.database_url = database_url
        self.engine = engine or make_engine(database_url)
        #: The same pool, for reads: a deferred (SQLite) or READ ONLY (PostgreSQL) transaction.
        self.reader = self.engine.execution_options(**{_READONLY: True, "postgresql_readonly": True})
        self.assembler_ref = assembler_ref
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(self.reader, expire_on_commit=False)

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (safe to run on every start)."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(importlib_resources.files("thrive_fhir.localstore") / "migrations"))
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    @contextmanager
    def session(self, readonly: bool = False) -> Iterator[Session]:
        """One local transaction: commits when the block ends, rolls back if it raises.

        ``readonly=True``: a snapshot for reading that does not queue behind (or block) writers; any
        write attempted in it fails. Use it for page reads, never around ``record``.
        """
        with (self._read_sessions if readonly else self._sessions)() as s:
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
        prov = self._provenance(cs, uid, plans, now)
        written = [*plans, (prov, 1)]
        entries = [[r["resourceType"], r["id"], v] for r, v in written]
        outbox_id = outbox.enqueue(s, cs, uid, entries, now)

        out = _write_versions(s, written, outbox_id, cs.patient_key, uid, now)
        return out

    def adopt(self, s: Session, patient_key: str, copies: list[tuple[dict, int]], *, uid: str) -> list[LocalVersion]:
        """Make the shared store's copies the current local versions, inside ``s``, with no push.

        Used when a person resolves a sync conflict as "theirs" (``thrive_fhir.sync.admin``): the
        store's version stands, so the app must show and edit it from now on. ``copies`` holds each
        store resource (its id already the local id) and the local version it replaces; raises
        :class:`StaleVersion` if any changed locally since. The versions are filed under one outbox
        row of status ``imported`` (every local version belongs to a row; this one is never
        claimed, so nothing is sent back), with no author: the local database does not know who
        wrote the store's version, and the version history says "Not recorded" rather than guess.
        """
        if not copies:
            raise ValueError("nothing to adopt")
        now = time.time()
        self._lock_patient(s, patient_key)
        plans: list[tuple[dict, int]] = []
        for resource, expected in copies:
            rtype, rid = resource["resourceType"], resource["id"]
            current = s.execute(
                select(m.local_resource.c.version).where(
                    m.local_resource.c.resource_type == rtype, m.local_resource.c.resource_id == rid
                )
            ).scalar()
            if current != expected:
                raise StaleVersion(f"{rtype}/{rid}", current or 0, None)
            plans.append((resource, expected + 1))
        entries = [[r["resourceType"], r["id"], v] for r, v in plans]
        outbox_id = outbox.file_imported(s, patient_key, uid, entries, now)
        return _write_versions(s, plans, outbox_id, patient_key, uid, now)  # versions >= 2: updates

    def _provenance(self, cs: ChangeSet, uid: str, plans: list[tuple[dict, int]], now: float) -> dict:
        """The save's thrive-provenance (``thrive_fhir.builders``), id ``uuid5({BASE}/Id/provenance|<uid>)``.

        A :class:`~thrive_fhir.builders.BuildError` (a ``ValueError`` naming the field, e.g. an author
        that is not a Practitioner(Role)) propagates: nothing of the save is written.
        """
        recorded = datetime.fromtimestamp(now, tz=UTC)
        sources = tuple(src for r, v in plans if (src := _business_source(r, v)) is not None)
        return build_provenance(
            ProvenanceInput(
                outbox_row_id=uid,
                targets=tuple(f"{r['resourceType']}/{r['id']}" for r, _ in plans),
                recorded=recorded,
                activity=cs.activity.upper(),
                author=cs.author_ref,
                on_behalf_of=cs.organization_ref,
                assembler=self.assembler_ref,
                sources=sources,
                informants=tuple(cs.informants),
            ),
            now=recorded,
        )

    def _lock_patient(self, s: Session, patient_key: str) -> None:
        """Serialise saves per patient so their outbox ids follow commit order (see models)."""
        if self.is_postgres:
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            s.execute(pg_insert(m.patient_lock).values(patient_key=patient_key).on_conflict_do_nothing())
            s.execute(
                select(m.patient_lock.c.patient_key)
                .where(m.patient_lock.c.patient_key == patient_key)
                .with_for_update()
            )
        else:
            # SQLite transactions already hold the database write lock from BEGIN IMMEDIATE.
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            s.execute(sqlite_insert(m.patient_lock).values(patient_key=patient_key).on_conflict_do_nothing())

    # --- reads (snapshot transactions: never wait for a writer) --------------------------------
    def current(self, resource_type: str, resource_id: str) -> dict | None:
        """The newest local version of a resource, or None."""
        with self.reader.connect() as conn:
            row = conn.execute(
                select(m.local_resource.c.resource).where(
                    m.local_resource.c.resource_type == resource_type, m.local_resource.c.resource_id == resource_id
                )
            ).first()
        return json.loads(row.resource) if row else None

    def current_version(self, resource_type: str, resource_id: str) -> int:
        """The newest local version number (0 when the resource does not exist)."""
        with self.reader.connect() as conn:
            v = conn.execute(
                select(m.local_resource.c.version).where(
                    m.local_resource.c.resource_type == resource_type, m.local_resource.c.resource_id == resource_id
                )
            ).scalar()
        return v or 0

    def history(self, resource_type: str, resource_id: str) -> list[dict]:
        """Every local version, oldest first: ``{"version", "saved_at", "author_ref", "organization_ref",
        "resource"}``. The author is the clinician of the save that wrote the version (its outbox row)."""
        t, o = m.local_resource_version, m.outbox
        with self.reader.connect() as conn:
            rows = conn.execute(
                select(t.c.version, t.c.saved_at, t.c.resource, o.c.author_ref, o.c.organization_ref)
                .join(o, o.c.id == t.c.outbox_id)
                .where(t.c.resource_type == resource_type, t.c.resource_id == resource_id)
                .order_by(t.c.version)
            ).all()
        return [
            {
                "version": r.version,
                "saved_at": r.saved_at,
                "author_ref": r.author_ref,
                "organization_ref": r.organization_ref,
                "resource": json.loads(r.resource),
            }
            for r in rows
        ]

    def for_patient(self, patient_key: str, type: str | None = None) -> list[dict]:  # noqa: A002  the agreed parameter name
        """Current versions of every resource saved for one patient (optionally one type)."""
        return [c.resource for c in self.for_patient_versioned(patient_key, type)]

    def for_patient_versioned(self, patient_key: str, type: str | None = None) -> list[CurrentResource]:  # noqa: A002  as for_patient
        """Like :meth:`for_patient`, each resource with its local version number, read in one query.

        One query matters: reading versions separately could pair one version's content with another's
        number, and a form drawn from that pair would overwrite a change it never showed. Order: type,
        then oldest update first.
        """
        t = m.local_resource
        q = select(t.c.resource_type, t.c.resource_id, t.c.version, t.c.resource).where(t.c.patient_key == patient_key)
        if type:
            q = q.where(t.c.resource_type == type)
        with self.reader.connect() as conn:
            rows = conn.execute(q.order_by(t.c.resource_type, t.c.updated_at, t.c.resource_id)).all()
        return [CurrentResource(r.resource_type, r.resource_id, r.version, json.loads(r.resource)) for r in rows]


def _write_versions(
    s, written: list[tuple[dict, int]], outbox_id: int, patient_key: str, uid: str, now: float
) -> list[LocalVersion]:
    """Append each ``(resource, version)`` to the version history under ``outbox_id`` and make it
    the current local copy (a new row for version 1, else an update): one home for a save and for
    adopting the store's version."""
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
                    patient_key=patient_key,
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
