"""Count lost, duplicated and out-of-order changes by comparing the outbox with the store's history.

Each pushed resource version carries ``meta.source = ...#<outbox row uid>``. The store's system-level
``_history`` lists every version it ever committed, in commit order. So:
- lost: an entry of a row marked sent with no version carrying that row's uid;
- duplicated: an entry with more than one version carrying the same row uid;
- out of order: for one patient, a version whose outbox row is older than one committed before it
  (versions committed by one atomic transaction share their ``meta.lastUpdated`` and count as
  simultaneous: a store may apply a transaction's POSTs before its PUTs, and no reader can tell);
- overwritten: a row parked as conflict or dead whose uid nevertheless appears on a resource in the
  store (a Provenance overwrites nothing; it is counted apart);
- stray_provenance: a Provenance still in the store for a row that did not land (a non-atomic store
  kept it; the worker must have withdrawn it).
In identifier mode the store chose the ids: they are mapped back to local ids through the worker's
map (``sync_resource_state.store_id``).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import requests
from sqlalchemy import select

from thrive_fhir.localstore import models as m


def store_history(base_url: str, headers: dict | None = None, deleted: set | None = None) -> list[dict]:
    """Every version in the store, oldest first (system ``_history``, following ``next`` links).
    With ``deleted``, the (type, id) of resources whose newest history entry is a delete go there."""
    out: list[dict] = []
    newest_delete: dict = {}
    url, params = f"{base_url}/_history", {"_count": 1000}
    while url:
        r = requests.get(url, params=params, headers=headers, timeout=60)
        r.raise_for_status()
        page = r.json()
        for e in page.get("entry") or []:
            full = (e.get("fullUrl") or "").rstrip("/").split("/")
            key = (full[-2], full[-1]) if len(full) >= 2 else None
            if key is not None and key not in newest_delete:
                newest_delete[key] = (e.get("request") or {}).get("method") == "DELETE"
            if e.get("resource"):
                out.append(e["resource"])
        url = next((link["url"] for link in page.get("link") or [] if link.get("relation") == "next"), None)
        params = None
    out.reverse()
    if deleted is not None:
        deleted.update(k for k, gone in newest_delete.items() if gone)
    return out


def verify(store, base_url: str, headers: dict | None = None) -> dict:
    with store.engine.connect() as c:
        rows = c.execute(
            select(m.outbox.c.id, m.outbox.c.uid, m.outbox.c.patient_key, m.outbox.c.status, m.outbox.c.entries)
        ).all()
        mapped = c.execute(
            select(
                m.sync_resource_state.c.resource_type,
                m.sync_resource_state.c.resource_id,
                m.sync_resource_state.c.store_id,
            )
        ).all()
    local_of = {(r.resource_type, r.store_id): r.resource_id for r in mapped if r.store_id}
    by_uid = {r.uid: r for r in rows}
    deleted: set = set()
    history = store_history(base_url, headers, deleted)
    seen: Counter = Counter()
    per_patient: dict[str, list[tuple]] = defaultdict(list)
    stray: set = set()
    for res in history:
        src = (res.get("meta") or {}).get("source") or ""
        uid = src.split("#", 1)[1] if "#" in src else None
        row = by_uid.get(uid)
        if row is None:
            continue
        key = (res["resourceType"], res["id"])
        local = local_of.get(key, res["id"])
        if res["resourceType"] == "Provenance":  # one per save, whatever id the store gave each copy
            local = next((i for t, i, _v in json.loads(row.entries) if t == "Provenance"), local)
        seen[(uid, res["resourceType"], local)] += 1
        if res["resourceType"] == "Provenance" and row.status != "sent" and key not in deleted:
            stray.add(key)
        per_patient[row.patient_key].append(((res.get("meta") or {}).get("lastUpdated"), row.id))
    lost = duplicated = overwritten = 0
    status = Counter(r.status for r in rows)
    for r in rows:
        for t, i, _v in json.loads(r.entries):
            n = seen.get((r.uid, t, i), 0)
            if r.status == "sent":
                lost += n == 0
                duplicated += max(0, n - 1)
            elif r.status in ("conflict", "dead", "discarded") and t != "Provenance":
                overwritten += n
    out_of_order = 0
    for versions in per_patient.values():
        high = 0
        k = 0
        while k < len(versions):
            stamp = versions[k][0]
            group = []
            while (k < len(versions) and stamp is not None and versions[k][0] == stamp) or (
                not group and k < len(versions)
            ):
                group.append(versions[k][1])
                k += 1
            out_of_order += sum(1 for i in group if i < high)
            high = max(high, *group)
    return {
        "rows": len(rows),
        "sent": status["sent"],
        "pending": status["pending"],
        "conflict": status["conflict"],
        "dead": status["dead"],
        "lost": lost,
        "duplicated": duplicated,
        "out_of_order": out_of_order,
        "overwritten": overwritten,
        "stray_provenance": len(stray),
        "store_versions": len(history),
    }
