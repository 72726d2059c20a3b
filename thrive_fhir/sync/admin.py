"""What a person does with rows the worker could not push: inspect, re-queue, resolve conflicts.

Every action is written to ``outbox_event`` so a row's history stays with it.
"""

from __future__ import annotations

import json
import time
import uuid

from sqlalchemy import insert, select, update

from ..client.fhir_http import NOT_FOUND, OK, FhirClient, version_from_etag
from ..localstore import LocalStore, StaleVersion
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
    """``keep='theirs'``: the store's version stands and becomes the local one (:func:`_take_theirs`).
    ``keep='ours'``: a person decided our version wins; it is sent with If-Match on the store's
    *current* version, so a further change made meanwhile is still caught. Both read the store, so
    both need ``client`` (built from the worker's own configuration and credentials)."""
    if keep not in ("ours", "theirs"):
        raise AdminError("keep must be 'ours' or 'theirs'")
    detail = show_row(store, row_id)
    if detail["status"] != "conflict":
        raise AdminError(f"outbox row {row_id} is not a conflict")
    now = time.time()
    if keep == "theirs":
        if client is None:
            raise AdminError("keeping the store's version needs the FHIR server (a client) to read it")
        _take_theirs(store, client, row_id, detail["patient_key"], now)
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


def _take_theirs(store: LocalStore, client: FhirClient, row_id: int, patient_key: str, now: float) -> None:
    """Close the conflict keeping the store's version, and bring that version into the local store.

    For each resource of the row that is still at the row's version locally (no later local save
    changed it), the store's current copy becomes the next local version (``LocalStore.adopt``: no
    outbox push) and ``sync_resource_state`` records that the two now agree, so the next local edit
    is sent with If-Match on exactly that store version. A resource changed locally by a later save
    is left alone: that save is still queued and meets the store on its own. A resource the store
    does not hold (our save created it) keeps its local copy. All of it in one local transaction, so
    a failure (store unreadable, a save landing meanwhile) changes nothing and can be tried again.
    """
    with store.reader.connect() as c:
        entries = json.loads(c.execute(select(o.c.entries).where(o.c.id == row_id)).scalar_one())
    local = {(t, i): store.current_version(t, i) for t, i, _v in entries if t != "Provenance"}
    known = q.load_states(store, list(local))
    copies: list[tuple[dict, int]] = []
    states: list[dict] = []
    for t, i, v in entries:
        if t == "Provenance" or local[(t, i)] != v:
            continue
        store_id = (known.get((t, i)) or (None, 0, None))[2] or i  # identifier mode: the store's own id
        reply = client.read(t, store_id)
        if reply.kind == NOT_FOUND:
            continue
        if reply.kind != OK or not isinstance(reply.body, dict):
            raise AdminError(f"could not read {t}/{i} from the store ({reply.error or reply.kind}); try again")
        body = reply.body
        version = str((body.get("meta") or {}).get("versionId") or version_from_etag(header(reply, "ETag")) or "")
        meta = {k: val for k, val in (body.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
        copy = {**body, "id": i, **({"meta": meta} if meta else {})}
        if not meta:
            copy.pop("meta", None)
        copies.append((copy, v))
        states.append(
            {
                "resource_type": t,
                "resource_id": i,
                "store_version": version or None,
                "local_version": v + 1,
                "updated_at": now,
                "store_id": store_id,
            }
        )
    try:
        with store.session() as s:
            taken = store.adopt(s, patient_key, copies, uid=str(uuid.uuid4())) if copies else []
            if taken:
                imported = s.execute(select(o.c.id).where(o.c.uid == taken[0].outbox_uid)).scalar_one()
                q.upsert_states(s, [st | {"outbox_id": imported} for st in states])
            n = q.rowcount(
                s,
                update(o).where(o.c.id == row_id, o.c.status == "conflict").values(status="discarded", updated_at=now),
            )
            if n != 1:
                raise AdminError(f"outbox row {row_id} is not a conflict")
            brought = ", ".join(f"{lv.resource_type}/{lv.resource_id} v{lv.version}" for lv in taken)
            said = f"; now the local version: {brought}" if brought else "; nothing to bring in"
            _event(s, row_id, "resolved", ("kept the store's version" + said)[:512])
    except StaleVersion as exc:
        raise AdminError(f"{exc.resource_ref} was saved locally meanwhile; look at the conflict again") from None
