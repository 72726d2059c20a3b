"""What a person does with rows the worker could not push: inspect, re-queue, resolve conflicts.

Every action is written to ``outbox_event`` so a row's history stays with it.
"""

from __future__ import annotations

import json
import time

from sqlalchemy import insert, select, update

from ..client.fhir_http import NOT_FOUND, OK, FhirClient, version_from_etag
from ..localstore import LocalStore
from ..localstore import models as m
from ..localstore import outbox as q
from .worker import header

o = m.outbox


class AdminError(ValueError):
    """A request that cannot be carried out; one readable line."""


def _summary(r) -> dict:
    entries = json.loads(r.entries)
    return {
        "id": r.id,
        "uid": r.uid,
        "status": r.status,
        "created_at": r.created_at,
        "attempts": r.attempts,
        "last_status": r.last_status,
        "last_error": r.last_error,
        "resources": [f"{t}/{i} v{v}" for t, i, v in entries],
    }


def list_rows(store: LocalStore, status: str, limit: int = 100) -> list[dict]:
    with store.reader.connect() as c:
        rows = c.execute(select(o).where(o.c.status == status).order_by(o.c.id).limit(limit)).all()
    return [_summary(r) for r in rows]


def show_row(store: LocalStore, row_id: int) -> dict:
    with store.reader.connect() as c:
        r = c.execute(select(o).where(o.c.id == row_id)).first()
        if r is None:
            raise AdminError(f"no outbox row {row_id}")
        events = c.execute(
            select(m.outbox_event).where(m.outbox_event.c.outbox_id == row_id).order_by(m.outbox_event.c.id)
        ).all()
    out = _summary(r)
    out["patient_key"] = r.patient_key
    out["outcome"] = json.loads(r.outcome) if r.outcome else None
    out["history"] = [{"at": e.at, "kind": e.kind, "http_status": e.http_status, "detail": e.detail} for e in events]
    return out


def _event(c, row_id: int, kind: str, detail: str) -> None:
    c.execute(
        insert(m.outbox_event).values(outbox_id=row_id, at=time.time(), kind=kind, http_status=None, detail=detail)
    )


def requeue(store: LocalStore, row_id: int, *, expect: str = "dead") -> None:
    """Put a dead letter back in the queue. The next attempt reads the store first (needs_check)."""
    now = time.time()
    with store.session() as s:
        n = q.rowcount(
            s,
            update(o)
            .where(o.c.id == row_id, o.c.status == expect)
            .values(
                status="pending",
                next_attempt_at=0.0,
                lease_owner=None,
                lease_until=None,
                needs_check=True,
                updated_at=now,
            ),
        )
        if n != 1:
            raise AdminError(f"outbox row {row_id} is not a {'dead letter' if expect == 'dead' else expect}")
        _event(s, row_id, "requeued", f"re-queued from {expect} by an operator")


def resolve_conflict(store: LocalStore, client: FhirClient | None, row_id: int, keep: str) -> None:
    """``keep='theirs'``: drop our change (the store's version stands).
    ``keep='ours'``: a person decided our version wins; it is sent with If-Match on the store's
    *current* version, so a further change made meanwhile is still caught."""
    if keep not in ("ours", "theirs"):
        raise AdminError("keep must be 'ours' or 'theirs'")
    detail = show_row(store, row_id)
    if detail["status"] != "conflict":
        raise AdminError(f"outbox row {row_id} is not a conflict")
    now = time.time()
    if keep == "theirs":
        with store.session() as s:
            s.execute(
                update(o).where(o.c.id == row_id, o.c.status == "conflict").values(status="discarded", updated_at=now)
            )
            _event(s, row_id, "resolved", "kept the store's version")
        return
    if client is None:
        raise AdminError("keeping our version needs the FHIR server (a client) to read its current versions")
    with store.reader.connect() as c:
        entries = json.loads(c.execute(select(o.c.entries).where(o.c.id == row_id)).scalar_one())
    known = q.load_states(store, [(t, i) for t, i, _v in entries])
    states = []
    for t, i, v in entries:
        store_id = (known.get((t, i)) or (None, 0, None))[2] or i  # identifier mode: the store's own id
        if t == "Provenance" and (t, i) not in known:
            continue  # the save's new Provenance: nothing in the store to read
        reply = client.read(t, store_id)
        if reply.kind == NOT_FOUND:
            continue
        if reply.kind != OK:
            raise AdminError(f"could not read {t}/{i} from the store ({reply.error or reply.kind}); try again")
        version = str(
            ((reply.body or {}).get("meta") or {}).get("versionId") or version_from_etag(header(reply, "ETag")) or ""
        )
        states.append(
            {
                "resource_type": t,
                "resource_id": i,
                "store_version": version or None,
                "local_version": max(v - 1, 0),
                "outbox_id": row_id,
                "updated_at": now,
                "store_id": store_id,
            }
        )
    with store.session() as s:
        if states:
            q.upsert_states(s, states)
        s.execute(
            update(o)
            .where(o.c.id == row_id)
            .values(
                status="pending",
                next_attempt_at=0.0,
                lease_owner=None,
                lease_until=None,
                needs_check=False,
                updated_at=now,
            )
        )
        _event(s, row_id, "resolved", "kept our version; re-queued over the store's current version")
