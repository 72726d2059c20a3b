"""Topic events: recorded with the write that causes them, then planned per subscription.

Recording happens inside the write's own transaction (``writes.apply`` calls :func:`record` when the
engine has subscriptions on), so an event exists exactly when its write committed: a crash between
commit and delivery loses nothing, and a rolled-back write raises no event. The topic is "a young
person's shared plan changed": every create, update or delete of a resource in a Patient compartment,
except AuditEvent and Provenance (each write of the app carries a Provenance, and reads write
AuditEvents: either would double or flood the events).

Planning (:func:`plan`, run by the dispatcher) turns recorded events into numbered events of each
subscription they concern, once: on PostgreSQL one store process at a time holds a transaction-level
advisory lock for it (others skip and deliver), on SQLite the write lock serialises it. Planning also
applies the consent rule: an event reaches a subscription only when its creator could read that
young person *now* (at planning, normally milliseconds after the commit): a deployment or custodian
sees every young person it holds, an agency only those whose sharing Consent names it today
(consent_gate), a patient-context token only its patient.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection

from ...smart_scopes import Grant, permits
from .. import rawsql
from ..consent_gate import ConsentGate
from ..fhirdates import utcnow
from .spec import Filter

#: Patient-compartment types whose writes raise no event (see the module docstring).
NOT_EVENTS = frozenset({"AuditEvent", "Provenance"})
#: Events planned per transaction.
PLAN_BATCH = 500
#: pg_try_advisory_xact_lock key of the planner ("thrive-subscription-plan").
PLANNER_LOCK = 0x7468726976657370
#: The execution option that turns recording on for an engine (set by create_app).
OPTION = "subscription_events"


def record(conn: Connection, ops, now) -> None:
    """Add an event row for each effective write in a patient compartment (inside its transaction)."""
    sql, _dbapi = rawsql.for_connection(conn)
    when = sql.db_time(now)
    rows = [
        (
            when,
            op.rtype,
            op.rid,
            op.version,
            "DELETE" if op.method == "DELETE" else ("POST" if op.version == 1 else "PUT"),
            op.patient_key,
        )
        for op in ops
        if not op.noop and op.patient_key and op.rtype not in NOT_EVENTS
    ]
    if rows:
        conn.exec_driver_sql(
            sql.sql(
                "INSERT INTO subscription_events (created, res_type, res_id, version_id, method, patient_key) "
                "VALUES (?, ?, ?, ?, ?, ?)"
            ),
            rows,
        )


@dataclass
class Subscriber:
    """What planning needs to know of one subscription."""

    id: str
    grant: Grant | None  # None: the store runs without access control
    filters: tuple[Filter, ...]
    events_total: int

    def wants(self, rtype: str, patient_key: str) -> bool:
        return all(f.matches(rtype, patient_key) for f in self.filters)


def owner_grant(client: str | None, org: str | None, user: str | None, patient: str | None, scopes: str | None):
    """The creator's grant as recorded (its expiry dropped: the rule is judged on who, not when)."""
    if client is None:
        return None
    return Grant.from_scope_string(client, scopes or "", organization=org, user=user, patient=patient)


def visible(consent: ConsentGate, grant: Grant | None, patient_keys: set[str], dbapi) -> set[str]:
    """Those young people the grant may read now: scopes (a patient token: its patient) and consent."""
    if grant is None:
        return set(patient_keys)
    keys = {k for k in patient_keys if permits(grant, "Patient", "read", k)}
    agency = consent.agency(grant)
    if agency is None or not keys:
        return keys
    return consent.shared_among(agency, sorted(keys), dbapi)


def plan(conn: Connection, consent: ConsentGate, *, postgres: bool) -> int:
    """Plan one batch of recorded events inside the caller's write transaction; returns how many
    events were taken (PLAN_BATCH means there may be more), -1 when another process is planning."""
    sql, dbapi = rawsql.for_connection(conn)
    if postgres and not conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": PLANNER_LOCK}).scalar():
        return -1
    events = sql.fetch(
        dbapi,
        "SELECT seq, created, res_type, res_id, version_id, method, patient_key FROM subscription_events "
        "ORDER BY seq LIMIT ?",
        (PLAN_BATCH,),
    )
    if not events:
        return 0
    subscribers = [
        Subscriber(sid, owner_grant(client, org, user, patient, scopes), _filters(filters), int(total))
        for sid, client, org, user, patient, scopes, filters, total in sql.fetch(
            dbapi,
            "SELECT id, owner_client, owner_org, owner_user, owner_patient, owner_scopes, filters, events_total "
            "FROM subscriptions WHERE status <> 'off' AND (ends IS NULL OR ends > ?) ORDER BY id",
            (utcnow(),),
        )
    ]
    planned: list[tuple] = []
    for sub in subscribers:
        wanted = [e for e in events if sub.wants(e[2], e[6])]
        allowed = visible(consent, sub.grant, {e[6] for e in wanted}, dbapi) if wanted else set()
        number = sub.events_total
        for _seq, created, rtype, rid, version, method, pkey in wanted:
            if pkey in allowed:
                number += 1
                planned.append((sub.id, number, created, rtype, rid, version, method, pkey))
        if number != sub.events_total:
            sql.run(dbapi, "UPDATE subscriptions SET events_total = ? WHERE id = ?", (number, sub.id))
    if planned:
        conn.exec_driver_sql(
            sql.sql(
                "INSERT INTO subscription_deliveries "
                "(sub_id, number, created, res_type, res_id, version_id, method, patient_key) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            ),
            planned,
        )
    seqs = [e[0] for e in events]
    sql.run(
        dbapi,
        f"DELETE FROM subscription_events WHERE seq IN ({rawsql.placeholders(len(seqs))})",  # noqa: S608 - placeholders only
        tuple(seqs),
    )
    return len(events)


def _filters(raw: str) -> tuple[Filter, ...]:
    return tuple(Filter(rtype, patient) for rtype, patient in json.loads(raw or "[]"))
