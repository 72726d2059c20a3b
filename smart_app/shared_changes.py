"""What the app knows about changes in the shared store: "young person X changed at T (event N)",
the state of this deployment's Subscription, and when each agency worker last opened each plan.

Why in the app's own database (next to the launch sessions, like ``app_ehr_writeback``): the
Summary's freshness rule (:mod:`smart_app.summary.shared_history`) must see a notification received
by any thread or process of the app, and an agency worker's last visits outlive their session.
Only ids and times are kept: store Patient ids, the Subscription id, event numbers, the worker's
``fhirUser`` reference. Never a resource, never a notification body.

Tables (created with the app's other tables on start, ``create_tables``):

- ``app_shared_change``: one row per young person (the store's Patient id) with the newest change
  received (local receipt time, so clocks of the store and the app never need to agree). The row
  ``*`` means "something changed that could not be attributed" (an event without a Patient, or
  missed events that could not be fetched again): every cached read counts as stale.
- ``app_subscription``: per Subscription id, the last handshake/heartbeat/event seen, the highest
  event number received (gap detection) and the status the store last reported.
- ``app_agency_visit``: (worker, Patient id) -> when the worker last opened the shared plan, and the
  newest ``meta.lastUpdated`` they were shown then (:mod:`smart_app.summary.agency_changes`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

metadata = sa.MetaData()

#: ``app_shared_change.patient_id`` of a change that names no young person: every read is stale.
EVERYONE = "*"

changes = sa.Table(
    "app_shared_change",
    metadata,
    sa.Column("patient_id", sa.String(64), primary_key=True),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Column("event_number", sa.BigInteger),
    sa.Column("event_time", sa.String(40)),  # the store's timestamp of the event, as sent
)

subscriptions = sa.Table(
    "app_subscription",
    metadata,
    sa.Column("subscription_id", sa.String(64), primary_key=True),
    sa.Column("status", sa.String(16)),
    sa.Column("last_seen_at", sa.Float),
    sa.Column("last_event_number", sa.BigInteger, nullable=False, default=0),
)

visits = sa.Table(
    "app_agency_visit",
    metadata,
    sa.Column("worker_ref", sa.String(512), primary_key=True),  # fhirUser@store base
    sa.Column("patient_id", sa.String(64), primary_key=True),
    sa.Column("visited_at", sa.Float, nullable=False),
    sa.Column("seen_through", sa.String(40), nullable=False),  # newest meta.lastUpdated they were shown
)


@dataclass(frozen=True)
class Seen:
    """What a recorded notification meant: ``missed`` event numbers (a gap) and whether it was new."""

    missed: tuple[int, int] | None  # (first, last) event numbers never received
    duplicate: bool


def _upsert(conn, table: sa.Table, keys: dict, values: dict, *, keep_newer: str | None = None) -> None:
    """Insert or update one row (SQLite and PostgreSQL both have ON CONFLICT). With ``keep_newer``,
    an existing row is only overwritten by a larger value of that column."""
    from sqlalchemy.dialects import postgresql, sqlite

    dialect: Any = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table).values(**keys, **values)
    where = None
    if keep_newer is not None:
        where = table.c[keep_newer] < stmt.excluded[keep_newer]
    conn.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=values, where=where))


class SharedChanges:
    """The three tables above, on the app's database."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine

    def create_tables(self) -> None:
        metadata.create_all(self.engine, checkfirst=True)

    # --- notifications ------------------------------------------------------------------------
    def record(self, note, *, now: float | None = None) -> Seen:
        """Record a parsed notification (:class:`thrive_fhir.client.notifications.Notification`):
        the subscription was seen, and each event's young person changed now. Idempotent: an event
        number already received changes nothing. Returns the gap, if any, between the highest event
        number received before and this notification's events (or its ``events-since-start``)."""
        now = time.time() if now is None else now
        sub_id = note.subscription or ""
        numbers = note.numbers
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(subscriptions.c.last_event_number).where(subscriptions.c.subscription_id == sub_id)
            ).first()
            last = int(row.last_event_number) if row is not None else None
            fresh = [e for e in note.events if e.number is None or last is None or e.number > last]
            duplicate = bool(note.events) and not fresh
            missed = None
            if last is not None:
                first_new = min((e.number for e in fresh if e.number is not None), default=None)
                if first_new is not None and first_new > last + 1:
                    missed = (last + 1, first_new - 1)
                elif first_new is None and note.events_since_start is not None and note.events_since_start > last:
                    missed = (last + 1, note.events_since_start)  # a heartbeat says more happened
            for event in fresh:
                patient_id = event.patient.split("/", 1)[1] if event.patient else EVERYONE
                _upsert(
                    conn,
                    changes,
                    {"patient_id": patient_id},
                    {"received_at": now, "event_number": event.number, "event_time": (event.timestamp or "")[:40]},
                )
            highest = max([*numbers, *([last] if last is not None else [])], default=None)
            if last is None and not numbers and note.events_since_start is not None:
                highest = note.events_since_start  # a handshake: start counting from here
            _upsert(
                conn,
                subscriptions,
                {"subscription_id": sub_id},
                {"status": (note.status or "")[:16] or None, "last_seen_at": now, "last_event_number": highest or 0},
            )
        return Seen(missed=missed, duplicate=duplicate)

    def invalidate_everyone(self, *, now: float | None = None) -> None:
        """Every cached read of the shared store is stale (missed events that could not be fetched)."""
        with self.engine.begin() as conn:
            _upsert(conn, changes, {"patient_id": EVERYONE}, {"received_at": time.time() if now is None else now})

    def changed_after(self, patient_ids: Iterable[str], since: float) -> bool:
        """True if a change of one of ``patient_ids`` (or an unattributed one) arrived after ``since``."""
        wanted = [*{p for p in patient_ids if p}, EVERYONE]
        with self.engine.connect() as conn:
            newest = conn.execute(
                sa.select(sa.func.max(changes.c.received_at)).where(changes.c.patient_id.in_(wanted))
            ).scalar()
        return newest is not None and newest > since

    def last_seen(self) -> float | None:
        """When any notification (handshake, heartbeat or event) last arrived."""
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.max(subscriptions.c.last_seen_at))).scalar()

    def subscription_active(self, within: float, *, now: float | None = None) -> bool:
        """A notification arrived in the last ``within`` seconds (the channel is working)."""
        seen = self.last_seen()
        return seen is not None and (time.time() if now is None else now) - seen <= within

    # --- agency visits ------------------------------------------------------------------------
    def visited(self, worker_key: str, patient_id: str, seen_through: str, *, now: float | None = None) -> None:
        with self.engine.begin() as conn:
            _upsert(
                conn,
                visits,
                {"worker_ref": worker_key, "patient_id": patient_id},
                {"visited_at": time.time() if now is None else now, "seen_through": seen_through[:40]},
            )

    def recent_visits(self, worker_key: str, limit: int) -> list[str]:
        """The Patient ids this worker opened, most recently opened first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(visits.c.patient_id)
                .where(visits.c.worker_ref == worker_key)
                .order_by(visits.c.visited_at.desc())
                .limit(limit)
            ).all()
        return [r.patient_id for r in rows]

    def last_visits(self, worker_key: str, patient_ids: Iterable[str]) -> dict[str, str]:
        """Patient id -> what the worker was shown through (``meta.lastUpdated``) at their last visit."""
        ids = list(patient_ids)
        if not ids:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(visits.c.patient_id, visits.c.seen_through).where(
                    visits.c.worker_ref == worker_key, visits.c.patient_id.in_(ids)
                )
            ).all()
        return {r.patient_id: r.seen_through for r in rows}


__all__ = ["EVERYONE", "Seen", "SharedChanges"]
