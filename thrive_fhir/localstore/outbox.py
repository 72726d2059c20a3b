"""The outbox: the queue of saves waiting to be pushed to the shared store. A save writes its row in
the same transaction as its resource versions (``LocalStore.record``); from there on this module is the
outbox seen from the sync worker: claiming batches, recording outcomes, queue figures.

Claiming keeps two promises of docs/design/sync.md:
- a patient's rows are only ever claimed as a prefix starting at that patient's oldest pending row
  (its *head*), so one patient's rows never split across concurrent batches and later rows wait;
- a claim is a lease (owner + expiry) taken in a short transaction. On PostgreSQL the heads are picked
  with ``FOR UPDATE SKIP LOCKED`` so several workers claim different patients without waiting; on
  SQLite the transaction holds the write lock. A crashed worker's lease expires and another takes over.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import (
    ColumnElement,
    String,
    and_,
    bindparam,
    column,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
    text,
    true,
    union_all,
    update,
    values,
)
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, aliased

from . import models as m

if TYPE_CHECKING:  # store.py writes each save's row through enqueue() below, so it imports this module
    from .store import ChangeSet, LocalStore

log = logging.getLogger("thrive_fhir.sync")

o = m.outbox

# Status values written into the SQL text, not bound: a partial index (``WHERE status = 'pending'``)
# is only usable when the planner sees the value (SQLite at prepare time; PostgreSQL generic plans).
PENDING: ColumnElement[str] = literal_column("'pending'")
SENT: ColumnElement[str] = literal_column("'sent'")


def rowcount(s: Session, statement: Any) -> int:
    """Rows an UPDATE or DELETE touched: for those, Session.execute returns a CursorResult."""
    return cast(CursorResult, s.execute(statement)).rowcount


def enqueue(s: Session, cs: ChangeSet, uid: str, entries: list[list], now: float) -> int:
    """Write the outbox row of one save and return its id, inside the caller's transaction.

    Called only by ``LocalStore.record``, in the same transaction as the save's resource versions and
    Provenance (docs/design/sync.md, "Transactional outbox"): the row exists exactly when the save
    does. ``entries`` lists ``[type, id, version]`` of every resource written, the Provenance last.
    """
    return _insert_row(
        s,
        uid=uid,
        patient_key=cs.patient_key,
        activity=cs.activity,
        author_ref=cs.author_ref,
        organization_ref=cs.organization_ref,
        entries=entries,
        status="pending",
        now=now,
    )


def file_imported(s: Session, patient_key: str, uid: str, entries: list[list], now: float) -> int:
    """Write the row that files versions adopted from the shared store (``LocalStore.adopt``, a
    conflict resolved as "theirs") and return its id, inside the caller's transaction.

    Every local version belongs to an outbox row; this one has status ``imported``, which no worker
    claims, so nothing is sent back. It names no author or organisation: the local database does not
    know who wrote the store's version, and the version history says "Not recorded" rather than guess.
    """
    return _insert_row(
        s,
        uid=uid,
        patient_key=patient_key,
        activity="update",
        author_ref="",
        organization_ref="",
        entries=entries,
        status=IMPORTED,
        now=now,
    )


def _insert_row(
    s: Session,
    *,
    uid: str,
    patient_key: str,
    activity: str,
    author_ref: str,
    organization_ref: str,
    entries: list[list],
    status: str,
    now: float,
) -> int:
    """The one place outbox rows are created (a save's, or an adoption's)."""
    return s.execute(
        insert(o)
        .values(
            uid=uid,
            patient_key=patient_key,
            activity=activity,
            author_ref=author_ref,
            organization_ref=organization_ref,
            entries=json.dumps(entries),
            created_at=now,
            status=status,
            attempts=0,
            next_attempt_at=0.0,
            needs_check=False,
            updated_at=now,
        )
        .returning(o.c.id)
    ).scalar_one()


@dataclass
class Claimed:
    """One claimed outbox row (one clinician save)."""

    id: int
    uid: str
    patient_key: str
    entries: list[tuple[str, str, int]]
    created_at: float
    attempts: int
    needs_check: bool
    #: Set once a mark_* call has given the row its outcome (sent, retry, dead, conflict), so the
    #: worker's safety-net release can skip rows that need none.
    settled: bool = False


def refresh_statistics(store: LocalStore) -> bool:
    """PostgreSQL: ``ANALYZE outbox`` (the worker does this when it starts). Returns whether it ran.

    Autovacuum keeps the outbox's planner statistics current while the queue grows save by save. An
    outbox filled in one burst (a data migration at go-live, a restored backup) has none until
    autovacuum gets to it, and PostgreSQL then answers the claim's "oldest pending row of this
    patient" anti-join by walking the pending rows in id order for every candidate: 1.3 s per claim
    at 10k queued instead of under 1 ms (measured), worse as the queue deepens. ANALYZE reads a fixed
    sample, so it costs well under a second however large the table. Needs the table's owner (or
    MAINTAIN); without it the worker logs and carries on.
    """
    if not store.is_postgres:
        return False
    try:
        with store.engine.begin() as conn:
            conn.execute(text("ANALYZE outbox"))
    except SQLAlchemyError as exc:
        log.warning("outbox_analyze_skipped", extra={"error": type(exc).__name__})
        return False
    return True


def _many(values: list):
    """One expanding parameter for an IN list: SQLAlchemy then neither builds a bound parameter per
    value nor hashes each into the statement cache key (most of the worker's CPU per batch went there)."""
    return bindparam("many", list(values), expanding=True)


def _ready(now: float):
    return and_(
        o.c.status == PENDING, o.c.next_attempt_at <= now, or_(o.c.lease_until.is_(None), o.c.lease_until < now)
    )


_ROW_COLUMNS = (
    o.c.id,
    o.c.uid,
    o.c.patient_key,
    o.c.entries,
    o.c.created_at,
    o.c.attempts,
    o.c.needs_check,
    o.c.next_attempt_at,
    o.c.lease_until,
)


def _first_rows(s: Session, patient_keys: list[str], per_patient: int) -> Sequence:
    """Each patient's oldest ``per_patient`` pending rows, oldest first overall.

    One short index range per patient (ix_outbox_patient_pending), however deep the queue. The former
    single query (all pending rows of the patients, ordered by id, limited) grew with depth: SQLite read
    and sorted every queued row of those patients; PostgreSQL walked the pending index filtering out
    other patients' rows (19,800 rows for 300 at 300k queued). PostgreSQL runs the per-patient ranges as
    one LATERAL join; SQLite (no LATERAL, in-process) runs them one by one on the Core connection.
    """
    if s.get_bind().dialect.name == "postgresql":
        heads = values(column("key", String), name="heads").data([(k,) for k in patient_keys])
        first = (
            select(*_ROW_COLUMNS)
            .where(o.c.patient_key == heads.c.key, o.c.status == PENDING)
            .order_by(o.c.id)
            .limit(per_patient)
            .lateral("first")
        )
        return s.execute(select(first).select_from(heads.join(first, true())).order_by(first.c.id)).all()
    q = (
        select(*_ROW_COLUMNS)
        .where(o.c.patient_key == bindparam("key"), o.c.status == PENDING)
        .order_by(o.c.id)
        .limit(per_patient)
    )
    conn = s.connection()  # Core: the ORM layer costs more per statement than this indexed query
    rows = [r for key in patient_keys for r in conn.execute(q, {"key": key}).all()]
    rows.sort(key=lambda r: r.id)
    return rows


def claim(
    store: LocalStore,
    owner: str,
    *,
    max_entries: int,
    max_patients: int,
    lease_seconds: float,
    now: float | None = None,
    one_per_patient: bool = False,
) -> list[Claimed]:
    """Lease the next batch: whole prefixes of ready patients, up to ``max_entries`` entries.

    ``one_per_patient``: only each patient's oldest row. For stores that apply entries one by one
    (non-atomic), where a failed row followed by a landed later row of the same patient would put the
    store's versions out of order once the failed row is retried."""
    now = time.time() if now is None else now
    earlier = aliased(o)
    is_head = ~exists(
        select(earlier.c.id).where(
            earlier.c.patient_key == o.c.patient_key, earlier.c.status == PENDING, earlier.c.id < o.c.id
        )
    )
    # A save is at least 2 entries (a resource and its Provenance): more heads than max_entries // 2
    # could never all fit in one batch.
    n_heads = max(1, min(max_patients, max_entries // 2))
    heads_q = select(*_ROW_COLUMNS).where(_ready(now), is_head).order_by(o.c.id).limit(n_heads)
    if store.is_postgres:
        heads_q = heads_q.with_for_update(of=o, skip_locked=True)
    with store.session() as s:
        heads = s.execute(heads_q).all()
        if not heads:
            return []
        head_ids = {h.patient_key: h.id for h in heads}
        # Enough rows per patient to fill the batch when the saves are spread evenly over the heads.
        per_patient = 1 if one_per_patient else max(1, math.ceil(max(1, max_entries // 2) / len(head_ids)))
        # Many ready patients (the usual case): the heads alone fill the batch, no second query.
        rows = heads if per_patient == 1 else _first_rows(s, list(head_ids), per_patient)
        chosen: list[Claimed] = []
        open_patients = set(head_ids)
        started: set[str] = set()
        seen_resources: set[tuple[str, str]] = set()
        total = 0
        for r in rows:
            p = r.patient_key
            if p not in open_patients:
                continue
            if p not in started and r.id != head_ids[p]:
                open_patients.discard(p)  # should not happen (head is the oldest); be safe
                continue
            entries = [tuple(e) for e in json.loads(r.entries)]
            keys = {(t, i) for t, i, _ in entries}
            ready = r.next_attempt_at <= now and (r.lease_until is None or r.lease_until < now)
            fits = not chosen or total + len(entries) <= max_entries
            # One resource may appear once per transaction (FHIR); later versions go in a later batch.
            if not ready or not fits or keys & seen_resources:
                open_patients.discard(p)
                continue
            # A lease left behind means the worker holding it died mid-flight: the store may
            # already have the row, so check before writing again.
            taken_over = r.lease_until is not None
            chosen.append(Claimed(r.id, r.uid, p, entries, r.created_at, r.attempts, bool(r.needs_check) or taken_over))
            started.add(p)
            seen_resources |= keys
            total += len(entries)
        if chosen:
            s.execute(
                update(o)
                .where(o.c.id.in_(_many([c.id for c in chosen])))
                .values(lease_owner=owner, lease_until=now + lease_seconds, attempts=o.c.attempts + 1, updated_at=now)
            )
            taken = [c.id for c in chosen if c.needs_check]
            if taken:
                s.execute(update(o).where(o.c.id.in_(_many(taken))).values(needs_check=True))
        for c in chosen:
            c.attempts += 1
        return chosen


def _settle(rows: list[Claimed]) -> None:
    for r in rows:
        r.settled = True


def _owned(ids: list[int], owner: str):
    return and_(o.c.id.in_(_many(ids)), o.c.lease_owner == owner, o.c.status == PENDING)


def _event(s: Session, ids: list[int], kind: str, http_status: int | None, detail: str, now: float) -> None:
    if ids:
        s.execute(
            insert(m.outbox_event),
            [
                {"outbox_id": i, "at": now, "kind": kind, "http_status": http_status, "detail": detail[:512]}
                for i in ids
            ],
        )


def mark_sent(s: Session, rows: list[Claimed], owner: str, status: int, states: list[dict], now: float) -> int:
    """Rows done; ``states`` are ``sync_resource_state`` values for every resource written."""
    ids = [r.id for r in rows]
    _settle(rows)
    n = rowcount(
        s,
        update(o)
        .where(_owned(ids, owner))
        .values(
            status="sent",
            sent_at=now,
            lease_owner=None,
            lease_until=None,
            last_status=status,
            last_error=None,
            needs_check=False,
            updated_at=now,
        ),
    )
    if states:
        upsert_states(s, states)
    return n


def upsert_states(s: Session, states: list[dict]) -> None:
    """Record the store version (and store id) of each resource, never moving back to an older local version."""
    t = m.sync_resource_state
    states = [st if "store_id" in st else dict(st, store_id=None) for st in states]
    if s.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt: Any = pg_insert(t)
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(t)
    stmt = stmt.on_conflict_do_update(
        index_elements=[t.c.resource_type, t.c.resource_id],
        set_={
            "store_version": stmt.excluded.store_version,
            "local_version": stmt.excluded.local_version,
            "outbox_id": stmt.excluded.outbox_id,
            "updated_at": stmt.excluded.updated_at,
            "store_id": func.coalesce(stmt.excluded.store_id, t.c.store_id),
        },
        where=t.c.local_version <= stmt.excluded.local_version,
    )
    s.execute(stmt, states)


def mark_retry(
    s: Session,
    rows: list[Claimed],
    owner: str,
    *,
    delay: float,
    status: int,
    error: str,
    ambiguous: bool,
    now: float,
    kind: str = "transient",
) -> None:
    """Back off and release; the rows keep their place (later rows of the patient keep waiting)."""
    ids = [r.id for r in rows]
    _settle(rows)
    values = dict(
        next_attempt_at=now + delay,
        lease_owner=None,
        lease_until=None,
        last_status=status or None,
        last_error=error[:256],
        updated_at=now,
    )
    if ambiguous:
        values["needs_check"] = True
    s.execute(update(o).where(_owned(ids, owner)).values(**values))
    _event(s, ids, kind, status or None, error, now)


def mark_dead(
    s: Session,
    row: Claimed,
    owner: str,
    *,
    status: int,
    error: str,
    outcome: dict | None,
    now: float,
    kind: str = "dead",
) -> None:
    """Dead-letter (``kind`` dead) or park as a conflict (``kind`` conflict), keeping the store's answer."""
    _settle([row])
    s.execute(
        update(o)
        .where(_owned([row.id], owner))
        .values(
            status=kind,
            lease_owner=None,
            lease_until=None,
            last_status=status or None,
            last_error=error[:256],
            outcome=json.dumps(outcome) if outcome is not None else None,
            updated_at=now,
        )
    )
    _event(s, [row.id], kind, status or None, error, now)


def load_versions(store: LocalStore, row_ids: list[int]) -> dict[tuple[str, str, int], dict]:
    """The stored local versions written by these outbox rows (a batch's entries)."""
    t = m.local_resource_version
    out: dict[tuple[str, str, int], dict] = {}
    with store.reader.connect() as conn:
        for i in range(0, len(row_ids), 500):
            rows = conn.execute(
                select(t.c.resource_type, t.c.resource_id, t.c.version, t.c.resource).where(
                    t.c.outbox_id.in_(_many(row_ids[i : i + 500]))
                )
            ).all()
            for r in rows:
                out[(r.resource_type, r.resource_id, r.version)] = json.loads(r.resource)
    return out


_STATES_BY_TYPE = select(
    m.sync_resource_state.c.resource_id,
    m.sync_resource_state.c.store_version,
    m.sync_resource_state.c.local_version,
    m.sync_resource_state.c.store_id,
).where(
    m.sync_resource_state.c.resource_type == bindparam("rtype"),
    m.sync_resource_state.c.resource_id.in_(bindparam("ids", expanding=True)),
)


def load_states(
    store: LocalStore, keys: list[tuple[str, str]]
) -> dict[tuple[str, str], tuple[str | None, int, str | None]]:
    """``(type, id) -> (store_version, local_version, store_id)`` for resources the store already has from us.

    Asked per resource type so each lookup is on the primary key (type, id): asking by id alone
    scanned the whole table, which grows with every resource ever sent. One statement, built once:
    building it per call cost more than running it (identifier mode asks for every batch)."""
    by_type: dict[str, list[str]] = {}
    for rtype, rid in sorted(set(keys)):
        by_type.setdefault(rtype, []).append(rid)
    out: dict[tuple[str, str], tuple[str | None, int, str | None]] = {}
    with store.reader.connect() as conn:
        for rtype, ids in by_type.items():
            for i in range(0, len(ids), 500):
                for r in conn.execute(_STATES_BY_TYPE, {"rtype": rtype, "ids": ids[i : i + 500]}).all():
                    out[(rtype, r.resource_id)] = (r.store_version, r.local_version, r.store_id)
    return out


#: Status of a row that files versions copied *from* the shared store (``LocalStore.adopt``): never
#: claimed or counted as a save.
IMPORTED = "imported"

#: Row states whose save is not (or not as written) in the shared store yet.
UNSYNCED = ("pending", "dead", "conflict")


#: One equality per branch (the partial index on pending rows applies to that branch), in one round
#: trip, built once: the Summary asks this on every open, and each statement costs more than its rows.
_UNSYNCED_FOR_PATIENT = union_all(
    *(
        select(o.c.id, o.c.entries).where(o.c.status == status, o.c.patient_key == bindparam("patient_key"))
        for status in UNSYNCED
    )
)


def unsynced_for_patient(store: LocalStore, patient_key: str) -> tuple[tuple[int, ...], frozenset[str]]:
    """(ids of the young person's outbox rows whose save is not in the shared store yet, the
    ``Type/id`` those saves wrote). The clinician Summary marks those items pending, and reads the
    store again when the ids change."""
    with store.reader.connect() as conn:  # a read snapshot, without an ORM session around one statement
        rows = conn.execute(_UNSYNCED_FOR_PATIENT, {"patient_key": patient_key}).all()
    refs = set()
    for _id, entries in rows:
        try:
            for rtype, rid, _version in json.loads(entries):
                refs.add(f"{rtype}/{rid}")
        except (ValueError, TypeError):
            continue
    return tuple(sorted(r[0] for r in rows)), frozenset(refs)


def figures(store: LocalStore, now: float | None = None, *, sent_total: bool = True) -> dict:
    """Queue figures for ``thrive sync status`` and metrics.

    Each figure is read from a short index range (migration 0003), except the two totals that are
    counts of everything: pending (the queue depth, wanted) and sent (``sent_total=False`` skips it,
    and ``sent`` is then None; the metrics refresh does not need it and it grows forever)."""
    now = time.time() if now is None else now

    def count(status: str) -> int:
        return (
            conn.execute(
                select(func.count()).select_from(o).where(o.c.status == literal_column(f"'{status}'"))
            ).scalar()
            or 0
        )

    with store.reader.connect() as conn:
        counts = {
            st: count(st) for st in ("pending", "dead", "conflict", "discarded", *(("sent",) if sent_total else ()))
        }
        in_flight = conn.execute(select(func.count()).where(o.c.status == PENDING, o.c.lease_until >= now)).scalar()
        oldest = conn.execute(select(func.min(o.c.created_at)).where(o.c.status == PENDING)).scalar()
        last_sent = conn.execute(select(func.max(o.c.sent_at)).where(o.c.status == SENT)).scalar()
        lag = None
        if last_sent is not None:
            lag = conn.execute(
                select(func.max(o.c.sent_at - o.c.created_at)).where(o.c.status == SENT, o.c.sent_at >= last_sent - 60)
            ).scalar()
    pending = counts["pending"]
    return {
        "queued": pending - (in_flight or 0),
        "in_flight": in_flight or 0,
        "sent": counts.get("sent"),
        "dead": counts["dead"],
        "conflicts": counts["conflict"],
        "discarded": counts["discarded"],
        "oldest_pending_age_seconds": round(now - oldest, 3) if oldest is not None else 0.0,
        "lag_seconds": round(lag, 3) if lag is not None else None,
    }


def conflict_retries(store: LocalStore, row_id: int) -> int:
    """How often a row was re-queued after a 409/412 that re-reading did not explain."""
    t = m.outbox_event
    with store.reader.connect() as c:
        return (
            c.execute(select(func.count()).where(t.c.outbox_id == row_id, t.c.kind == "conflict-retry")).scalar() or 0
        )


def release(store: LocalStore, rows: list[Claimed], owner: str, now: float) -> int:
    """Give back rows still leased by ``owner`` (see Worker.step); returns how many there were."""
    if not rows:
        return 0
    with store.session() as s:
        return rowcount(
            s,
            update(o)
            .where(_owned([r.id for r in rows], owner))
            .values(lease_owner=None, lease_until=None, needs_check=True, updated_at=now),
        )
