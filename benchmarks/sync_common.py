"""Shared helpers of the sync benchmarks: start a store, bulk-fill an outbox, build raw Bundles.

Bulk filling writes the same rows ``LocalStore.record`` writes (resource version + Provenance + one
outbox row per save), directly with executemany, because a benchmark of the worker should not spend
minutes on the app's save path.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from tests.support.servers import OwnStoreProcess, SekmetProcess
from thrive_fhir import canonical
from thrive_fhir.builders import ProvenanceInput, build_provenance
from thrive_fhir.ids import resource_id
from thrive_fhir.localstore import DEFAULT_ASSEMBLER, LocalStore
from thrive_fhir.localstore import models as m

AUTHOR = "PractitionerRole/7b6f2d56-1f43-4a51-9a39-3f2f6c1f0a01"
ORG = "Organization/0d1f1c55-9a6c-4a77-8f39-6a0c3c1f4b02"


def start_store(kind: str, workdir: Path, *, strict: bool = False):
    """sekmet-fhir or our store, both without validation on write by default: the faster the store,
    the more the worker's own cost shows in a ratio. ``strict=True``: sekmet's strict inbound
    validation (as in the sync tests) and our store's profile validation."""
    if kind == "sekmet":
        return SekmetProcess(workdir, strict=strict).start()
    return OwnStoreProcess(workdir, validate=strict).start()


def put_patients(base: str, ids: list[str]) -> None:
    import requests

    s = requests.Session()
    for i in range(0, len(ids), 100):
        entries = [
            {
                "resource": {"resourceType": "Patient", "id": pid, "active": True},
                "request": {"method": "PUT", "url": f"Patient/{pid}"},
            }
            for pid in ids[i : i + 100]
        ]
        r = s.post(
            base,
            json={"resourceType": "Bundle", "type": "transaction", "entry": entries},
            headers={"Content-Type": "application/fhir+json"},
            timeout=120,
        )
        r.raise_for_status()


def observation(patient_id: str, value: int) -> dict:
    local = str(uuid.uuid4())
    code, display = canonical.GBO_SCORE_CODES[1]
    return {
        "resourceType": "Observation",
        "id": resource_id("gbo-score", local),
        "identifier": [{"system": canonical.id_system("gbo-score"), "value": local}],
        "status": "final",
        "code": {"coding": [{"system": canonical.SNOMED, "code": code, "display": display}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": "2025-01-15",
        "valueInteger": value,
    }


def save_at_rate(
    store: LocalStore, patients: list[str], rate: float, seconds: float, on_saved=None
) -> tuple[int, float]:
    """Save ``rate * seconds`` Observations, one per save, at ``rate`` saves a second on a fixed
    schedule (a late save does not push the next ones back), round-robin over ``patients``, as the
    app records a clinician's save. ``on_saved(resource)`` is called right after each commit.
    Returns (saves, the rate achieved)."""
    from thrive_fhir.localstore import ChangeSet

    n = int(rate * seconds)
    start = time.perf_counter()
    for k in range(n):
        delay = start + k / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        pid = patients[k % len(patients)]
        obs = observation(pid, k % 11)
        with store.session() as s:
            store.record(s, ChangeSet(patient_key=f"Patient/{pid}", author_ref=AUTHOR, organization_ref=ORG).put(obs))
        if on_saved is not None:
            on_saved(obs)
    return n, n / (time.perf_counter() - start)


def make_changes(n: int, patients: list[str]) -> list[tuple[str, str, dict, dict]]:
    """n saves (uid, patient, observation, provenance), patients round-robin."""
    out = []
    now = datetime.now(UTC)
    for k in range(n):
        pid = patients[k % len(patients)]
        obs = observation(pid, k % 11)
        uid = str(uuid.uuid4())
        prov = build_provenance(
            ProvenanceInput(
                outbox_row_id=uid,
                targets=(f"Observation/{obs['id']}",),
                recorded=now,
                activity="CREATE",
                author=AUTHOR,
                on_behalf_of=ORG,
                assembler=DEFAULT_ASSEMBLER,
            ),
            now=now,
        )
        out.append((uid, pid, obs, prov))
    return out


def bulk_enqueue(
    store: LocalStore, changes, chunk: int = 5000, created_at: float | None = None, *, analyze: bool = True
) -> None:
    """Write outbox rows + versions + current rows for ``changes`` (as record() would)."""
    created_at = time.time() if created_at is None else created_at
    with store.engine.begin() as conn:
        next_id = (
            conn.execute(
                m.outbox.select().with_only_columns(m.outbox.c.id).order_by(m.outbox.c.id.desc()).limit(1)
            ).scalar()
            or 0
        ) + 1
    for i in range(0, len(changes), chunk):
        part = changes[i : i + chunk]
        outbox_rows, versions, current = [], [], []
        for j, (uid, pid, obs, prov) in enumerate(part):
            oid = next_id + i + j
            outbox_rows.append(
                {
                    "id": oid,
                    "uid": uid,
                    "patient_key": f"Patient/{pid}",
                    "activity": "create",
                    "author_ref": AUTHOR,
                    "organization_ref": ORG,
                    "created_at": created_at,
                    "entries": json.dumps([["Observation", obs["id"], 1], ["Provenance", prov["id"], 1]]),
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": 0.0,
                    "needs_check": False,
                    "updated_at": created_at,
                }
            )
            for r in (obs, prov):
                body = json.dumps(r, separators=(",", ":"))
                versions.append(
                    {
                        "resource_type": r["resourceType"],
                        "resource_id": r["id"],
                        "version": 1,
                        "resource": body,
                        "saved_at": created_at,
                        "outbox_id": oid,
                    }
                )
                current.append(
                    {
                        "resource_type": r["resourceType"],
                        "resource_id": r["id"],
                        "patient_key": f"Patient/{pid}",
                        "version": 1,
                        "resource": body,
                        "updated_at": created_at,
                    }
                )
        with store.engine.begin() as conn:
            conn.execute(m.outbox.insert(), outbox_rows)
            conn.execute(m.local_resource_version.insert(), versions)
            conn.execute(m.local_resource.insert(), current)
    if analyze:
        # What autovacuum does for a queue that grows save by save; a burst-filled outbox without it
        # is planned blind (queue.refresh_statistics, which the worker also runs at start).
        from thrive_fhir.localstore import outbox as queue

        queue.refresh_statistics(store)


def raw_bundles(changes, size: int = 100):
    """The same data as plain transaction Bundles of ``size`` entries, with the worker's meta.source."""
    entries = []
    for uid, _pid, obs, prov in changes:
        for r in (obs, prov):
            r = dict(r, meta={**r.get("meta", {}), "source": f"{canonical.source_uri('RXX')}#{uid}"})
            entries.append(
                {
                    "fullUrl": f"urn:x:{r['id']}",
                    "resource": r,
                    "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"},
                }
            )
    for i in range(0, len(entries), size):
        yield {"resourceType": "Bundle", "type": "transaction", "entry": entries[i : i + size]}


def raw_bundles_by_identifier(changes, size: int = 100):
    """The same data as a plain client would send to a store that assigns its own ids (the worker's
    identifier mode): conditional update on the Observation's identifier, the Provenance POSTed with
    its target pointing at the Observation's urn:uuid in the same Bundle."""
    from urllib.parse import quote

    entries = []
    for uid, _pid, obs, prov in changes:
        source = {"source": f"{canonical.source_uri('RXX')}#{uid}"}
        ident = obs["identifier"][0]
        o = {k: v for k, v in obs.items() if k != "id"} | {"meta": source}
        entries.append(
            {
                "fullUrl": f"urn:uuid:{obs['id']}",
                "resource": o,
                "request": {
                    "method": "PUT",
                    "url": "Observation?identifier=" + quote(f"{ident['system']}|{ident['value']}", safe=""),
                },
            }
        )
        p = {k: v for k, v in prov.items() if k != "id"} | {
            "meta": {**prov.get("meta", {}), **source},
            "target": [{"reference": f"urn:uuid:{obs['id']}"}],
        }
        entries.append(
            {"fullUrl": f"urn:uuid:{prov['id']}", "resource": p, "request": {"method": "POST", "url": "Provenance"}}
        )
    for i in range(0, len(entries), size):
        yield {"resourceType": "Bundle", "type": "transaction", "entry": entries[i : i + size]}
