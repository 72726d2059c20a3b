"""Count lost, duplicated and out-of-order changes by comparing the outbox with the store's history.

Each pushed resource version carries ``meta.source = ...#<outbox row uid>``. The store's system-level
``_history`` lists every version it ever committed, in commit order. So:
- lost: an entry of a row marked sent with no version carrying that row's uid;
- duplicated: an entry with more than one version carrying the same row uid;
- out of order: for one patient, a version whose outbox row is older than one committed before it;
- overwritten: a row parked as conflict or dead whose uid nevertheless appears in the store.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import requests
from sqlalchemy import select

from thrive_fhir.localstore import models as m


def store_history(base_url: str, headers: dict | None = None) -> list[dict]:
    """Every version in the store, oldest first (system ``_history``, following ``next`` links)."""
    out: list[dict] = []
    url, params = f"{base_url}/_history", {"_count": 1000}
    while url:
        r = requests.get(url, params=params, headers=headers, timeout=60)
        r.raise_for_status()
        page = r.json()
        out += [e["resource"] for e in page.get("entry") or [] if e.get("resource")]
        url = next((link["url"] for link in page.get("link") or [] if link.get("relation") == "next"), None)
        params = None
    out.reverse()
    return out


def verify(store, base_url: str) -> dict:
    with store.engine.connect() as c:
        rows = c.execute(select(m.outbox.c.id, m.outbox.c.uid, m.outbox.c.patient_key, m.outbox.c.status,
                                m.outbox.c.entries)).all()
    by_uid = {r.uid: r for r in rows}
    history = store_history(base_url)
    seen: Counter = Counter()
    per_patient: dict[str, list[int]] = defaultdict(list)
    for res in history:
        src = (res.get("meta") or {}).get("source") or ""
        uid = src.split("#", 1)[1] if "#" in src else None
        row = by_uid.get(uid)
        if row is None:
            continue
        seen[(uid, res["resourceType"], res["id"])] += 1
        per_patient[row.patient_key].append(row.id)
    lost = duplicated = overwritten = 0
    status = Counter(r.status for r in rows)
    for r in rows:
        for t, i, _v in json.loads(r.entries):
            n = seen.get((r.uid, t, i), 0)
            if r.status == "sent":
                lost += n == 0
                duplicated += max(0, n - 1)
            elif r.status in ("conflict", "dead", "discarded"):
                overwritten += n
    out_of_order = 0
    for ids in per_patient.values():
        high = 0
        for i in ids:
            if i < high:
                out_of_order += 1
            high = max(high, i)
    return {"rows": len(rows), "sent": status["sent"], "pending": status["pending"], "conflict": status["conflict"],
            "dead": status["dead"], "lost": lost, "duplicated": duplicated, "out_of_order": out_of_order,
            "overwritten": overwritten, "store_versions": len(history)}
