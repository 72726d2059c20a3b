"""The sync worker: turns claimed outbox rows into FHIR transaction Bundles and acts on the answer.

Decisions follow the error table of docs/sync-config.md ("What happens to a row"), one place each:
- 2xx: every entry's own ``response.status`` is read too. All entries 2xx: rows sent; the store's
  version (ETag, meta.versionId or a versioned Location) and id of every resource are recorded for the
  next If-Match. A ``batch-response``, or entries that disagree, means the store did not apply the
  transaction atomically (Medplum without its ``transaction-bundles`` feature): each save is decided
  from its own entries by the classes below, a Provenance kept for a save that did not land is
  deleted again, and the worker sends in two phases from then on (``_send_two_phase``).
- transient (408/425/429/5xx, timeouts, dropped connections): back off with full jitter (at least
  Retry-After) and keep the rows' place. If the answer was lost after sending, the rows are marked
  ``needs_check`` and the next attempt first reads the store: a row already there (its
  ``meta.source`` carries the row uid) is marked sent instead of being written twice.
- 409/412: re-read; our own newer version -> learn its version and re-send; someone else's version ->
  park the row as a conflict for a person. Nothing is ever written over another agency's change.
- 400/404/422...: the payload is wrong for this store. A multi-row batch is split in halves until the
  bad row is alone; that row is dead-lettered with the store's OperationOutcome.
- 401: FhirClient has already refreshed the token once and retried; still refused -> back off, alert.
- 403: dead-letter and alert (a configuration problem a person must fix).

Ids: ``deterministic`` (default) writes ``PUT Type/<uuid5 id>``; ``identifier`` mode (stores that assign
their own ids) creates by business identifier, learns the store's id and rewrites references through
the local id -> store id map (``sync_resource_state.store_id``).
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import quote

from .. import canonical
from ..client.fhir_http import (
    AUTH,
    CONFLICT,
    FORBIDDEN,
    NOT_FOUND,
    OK,
    PAYLOAD,
    TRANSIENT,
    FhirClient,
    Reply,
    classify,
    version_from_etag,
)
from ..ids import resource_id
from ..localstore import LocalStore
from ..localstore import outbox as q
from .metrics import Metrics

log = logging.getLogger("thrive_fhir.sync")
alerts = logging.getLogger("thrive_fhir.alerts")


@dataclass
class Entry:
    resource_type: str
    resource_id: str
    local_version: int
    resource: dict
    if_match: str | None = None
    #: the store's id for this resource: the local id with deterministic ids; in identifier mode the
    #: id the store assigned (None until learned: the resource is then created by identifier)
    store_id: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.resource_type, self.resource_id)

    @property
    def is_provenance(self) -> bool:
        return self.resource_type == "Provenance"


@dataclass
class Plan:
    row: q.Claimed
    entries: list[Entry] = field(default_factory=list)
    # states of entries found already applied in the store while checking
    applied: list[dict] = field(default_factory=list)

    @property
    def resources(self) -> list[Entry]:
        return [e for e in self.entries if not e.is_provenance]

    @property
    def provenance(self) -> list[Entry]:
        return [e for e in self.entries if e.is_provenance]


@dataclass
class EntryResult:
    """One entry's answer inside a (batch or transaction) response Bundle."""

    status: int
    kind: str
    store_id: str | None = None
    version: str | None = None
    outcome: dict | None = None

    @property
    def landed(self) -> bool:
        return self.kind == OK


def source_fragment(resource: dict | None) -> str | None:
    src = ((resource or {}).get("meta") or {}).get("source") or ""
    return src.split("#", 1)[1] if "#" in src else None


class Worker:
    """One sync worker (one thread). Several may run against one database, in one or many processes."""

    def __init__(
        self,
        store: LocalStore,
        client: FhirClient,
        *,
        ods_code: str,
        max_entries: int = 50,
        max_patients: int = 50,
        lease_seconds: float = 120.0,
        backoff_base: float = 1.0,
        backoff_max: float = 300.0,
        max_conflict_retries: int = 3,
        settle_seconds: float | None = None,
        metrics: Metrics | None = None,
        worker_id: str | None = None,
        clock=time.time,
        rng: random.Random | None = None,
        atomic_transactions: bool = True,
        id_mode: str = "deterministic",
        identifier_create: str = "conditional-update",
        prefer_return: str = "OperationOutcome",
    ):
        self.store = store
        self.client = client
        self.source = canonical.source_uri(ods_code)
        self.max_entries = max_entries
        self.max_patients = max_patients
        self.lease_seconds = lease_seconds
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_conflict_retries = max_conflict_retries
        # After an answer was lost, wait at least this long before reading the store to see whether
        # the write landed: a request the store is still working on must finish first (default: the
        # read timeout, after which we gave up on it).
        self.settle = client.timeout[1] if settle_seconds is None else settle_seconds
        self._last_reply = Reply(TRANSIENT)
        self.metrics = metrics or Metrics()
        self.worker_id = worker_id or f"{socket.gethostname()[:20]}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.clock = clock
        self.rng = rng or random.Random()  # noqa: S311  back-off jitter, not a secret
        #: False: batches on purpose (two phases, see _send_two_phase). Set to False by the worker
        #: itself when a store answers a transaction non-atomically.
        self.atomic = atomic_transactions
        self.identifier_mode = id_mode == "identifier"
        self.identifier_create = identifier_create
        # Ask for the OperationOutcome (or the resource) rather than return=minimal: Medplum answers
        # errors under return=minimal with empty bodies and successes without ETag, so dead letters
        # carried no reason and store versions were never learned.
        self.prefer = {"Prefer": f"return={prefer_return}"}

    # --- loop ----------------------------------------------------------------------------------
    def step(self) -> int:
        """Claim and push one batch. Returns the number of rows claimed (0: nothing ready now)."""
        rows = q.claim(
            self.store,
            self.worker_id,
            max_entries=self.max_entries,
            max_patients=self.max_patients,
            lease_seconds=self.lease_seconds,
            now=self.clock(),
            one_per_patient=not self.atomic,
        )
        if rows:
            completed = False
            try:
                self.process(rows)
                completed = True
            finally:
                # Safety net: a row this worker claimed but did not settle (a bug, or an exception
                # half-way) goes back to the queue now instead of waiting for its lease to expire.
                # Its fate at the store is unknown, so the next attempt checks first. After a normal
                # batch every row is usually settled and this costs no write; after an exception
                # all rows are offered (a settle whose transaction failed did not happen).
                unsettled = [r for r in rows if not r.settled] if completed else rows
                leaked = q.release(self.store, unsettled, self.worker_id, now=self.clock())
                if leaked:
                    log.warning("rows_released", extra={"worker": self.worker_id, "rows": leaked})
        return len(rows)

    def run(
        self, stop: threading.Event, *, once: bool = False, poll_interval: float = 1.0, max_wait: float = 60.0
    ) -> bool:
        """Push until ``stop`` is set; with ``once``, until the queue is empty (True) or nothing has
        become ready for ``max_wait`` seconds (False: rows are still waiting, e.g. store down)."""
        idle_since = None
        while not stop.is_set():
            try:
                claimed = self.step()
            except Exception as exc:  # a database hiccup must not kill a long-running worker
                log.exception("worker_step_failed", extra={"worker": self.worker_id, "error": type(exc).__name__})
                claimed = 0
                if stop.wait(poll_interval):
                    break
            if claimed:
                idle_since = None
                continue
            if once:
                fig = q.figures(self.store, self.clock(), sent_total=False)
                if fig["queued"] + fig["in_flight"] == 0:
                    return True
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since > max_wait:
                    return False
            if stop.wait(min(poll_interval, 0.2) if once else poll_interval):
                break
        return False

    # --- one batch -----------------------------------------------------------------------------
    def process(self, rows: list[q.Claimed]) -> None:
        plans = self._plan(rows)
        plans = self._check_store(plans)
        if plans:
            self._send(plans)

    def _plan(self, rows: list[q.Claimed]) -> list[Plan]:
        versions = q.load_versions(self.store, [r.id for r in rows])
        states = q.load_states(self.store, sorted({(e[0], e[1]) for r in rows for e in r.entries}))
        plans = []
        for row in rows:
            plan = Plan(row)
            for t, i, v in row.entries:
                state = states.get((t, i))
                if state and state[1] >= v:
                    continue  # the store already has this or a newer local version: never go back
                resource = versions[(t, i, v)]  # freshly parsed: ours to change
                meta = dict(resource.get("meta") or {})
                meta["source"] = f"{self.source}#{row.uid}"
                meta.pop("versionId", None)
                resource["meta"] = meta
                store_id = (state[2] if state else None) if self.identifier_mode else i
                plan.entries.append(Entry(t, i, v, resource, if_match=state[0] if state else None, store_id=store_id))
            plans.append(plan)
        return plans

    def _check_store(self, plans: list[Plan]) -> list[Plan]:
        """Read the store where our knowledge is incomplete, before writing anything.

        - rows whose last answer was lost (``needs_check``): what of them landed already? Each pushed
          resource carries ``meta.source ...#<row uid>``, so a store copy with this row's uid is this
          row's write: it is recorded and not sent again. A row's Provenance is written only after
          (atomic: together with) all its resources, so finding it means the whole row landed.
        - updates whose store version we do not know: learn it, so the write carries If-Match.
        """
        now = self.clock()
        checking = [p for p in plans if p.row.needs_check]
        if checking:
            current = self._lookup([e for p in checking for e in p.resources])
            found_prov = self._find_provenances(checking, current) if current is not None else None
            if current is None or found_prov is None:
                self._retry([p.row for p in plans], self._last_reply)
                return []
            applied: list[dict] = []
            landed: list[Plan] = []
            for p in checking:
                here = []
                for e in p.resources:
                    c = current.get(e.key)
                    if c is not None and source_fragment(c) == p.row.uid:
                        applied.append(self._state(e, p.row, _meta_version(c), now, store_id=c.get("id")))
                        here.append(e)
                prov = found_prov.get(p.row.uid)
                if prov is not None:
                    applied += [
                        self._state(e, p.row, _meta_version(prov), now, store_id=prov.get("id")) for e in p.provenance
                    ]
                    landed.append(p)
                else:
                    p.entries = [e for e in p.entries if e not in here]
            with self.store.session() as s:
                if applied:
                    q.upsert_states(s, applied)
                if landed:
                    q.mark_sent(s, [p.row for p in landed], self.worker_id, 200, [], now)
            if landed:
                self.metrics.inc("thrive_sync_rows_sent_total", len(landed))
                log.info("rows_already_in_store", extra={"worker": self.worker_id, "rows": len(landed)})
                plans = [p for p in plans if p not in landed]
        # Updates whose store version we do not know: one search per resource type.
        unknown = [
            e for p in plans for e in p.entries if e.local_version > 1 and e.if_match is None and not e.is_provenance
        ]
        current = self._lookup(unknown) if unknown else {}
        if current is None:
            self._retry([p.row for p in plans], self._last_reply)
            return []
        keep: list[Plan] = []
        for plan in plans:
            conflict = None
            for e in plan.entries:
                found = current.get(e.key) if e in unknown else None
                if found is None:
                    continue
                if (found.get("meta") or {}).get("source", "").startswith(self.source + "#"):
                    e.if_match = _meta_version(found)  # our earlier write
                    e.store_id = found.get("id") or e.store_id
                else:
                    conflict = found
                    break
            if conflict is not None:
                self._park_conflict(plan.row, conflict, 412)
                continue
            if not plan.entries:
                with self.store.session() as s:
                    q.mark_sent(s, [plan.row], self.worker_id, 200, [], now)
                self.metrics.inc("thrive_sync_rows_sent_total", 1)
                continue
            keep.append(plan)
        return keep

    def _lookup(self, entries: list[Entry]) -> dict[tuple[str, str], dict] | None:
        """The store's current copy of each entry's resource, where it has one (None on failure).

        By ``_id`` (one request per type): ``_id`` works on every resource type, even where a server
        defines no other search parameter (sekmet-fhir's Goal). In identifier mode a resource whose
        store id we have not learned is found by its business identifier instead."""
        by_id: dict[str, dict[str, Entry]] = {}
        by_ident: dict[str, dict[str, Entry]] = {}
        for e in entries:
            if e.store_id:
                by_id.setdefault(e.resource_type, {})[e.store_id] = e
            elif (ident := _our_identifier(e.resource)) is not None:
                by_ident.setdefault(e.resource_type, {})[f"{ident[0]}|{ident[1]}"] = e
        out: dict[tuple[str, str], dict] = {}
        for rtype, wanted in by_id.items():
            ids = sorted(wanted)
            reply = self.client.request("GET", f"{rtype}?_id={','.join(ids)}&_count={len(ids)}")
            if reply.kind != OK:
                self._last_reply = reply
                return None
            for res in _resources(reply, rtype):
                if res.get("id") in wanted:
                    out[wanted[res["id"]].key] = res
        for rtype, wanted in by_ident.items():
            tokens = sorted(wanted)
            query = "identifier=" + ",".join(quote(t, safe="") for t in tokens)
            reply = self.client.request("GET", f"{rtype}?{query}&_count={len(tokens) * 2}")
            if reply.kind != OK:
                self._last_reply = reply
                return None
            for res in _resources(reply, rtype):
                for ident in res.get("identifier") or []:
                    found = wanted.get(f"{ident.get('system')}|{ident.get('value')}")
                    if found is not None:
                        out[found.key] = res
        return out

    def _find_provenances(self, plans: list[Plan], current: dict) -> dict[str, dict] | None:
        """Row uid -> the store's Provenance written for that row, for rows being checked."""
        out: dict[str, dict] = {}
        if not self.identifier_mode:
            # the save's Provenance id: uuid5({BASE}/Id/provenance|<row uid>), as build_provenance makes it
            ids = {resource_id("provenance", p.row.uid): p for p in plans}
            reply = self.client.request("GET", f"Provenance?_id={','.join(ids)}&_count={len(ids)}")
            if reply.kind != OK:
                self._last_reply = reply
                return None
            for res in _resources(reply, "Provenance"):
                if res.get("id") in ids:
                    out[ids[res["id"]].row.uid] = res
            return out
        # Identifier mode: the store chose the Provenance's id. Look for it through one of its targets:
        # a resource of the save found in the store just now, or one whose store id we learned before
        # (a save whose resources landed earlier and only its Provenance is left).
        wanted = [(p, p.provenance[0]) for p in plans if p.provenance]
        refs: set[tuple[str, str]] = set()
        for _p, prov in wanted:
            for ref in _references(prov.resource.get("target") or []):
                t, _, i = ref.partition("/")
                refs.add((t, i))
        known = q.load_states(self.store, sorted(refs)) if refs else {}
        targets: dict[str, set[str]] = {}
        for p, prov in wanted:
            for ref in _references(prov.resource.get("target") or []):
                t, _, i = ref.partition("/")
                found = current.get((t, i))
                sid = (found or {}).get("id") or (known.get((t, i)) or (None, 0, None))[2]
                if sid:
                    targets.setdefault(f"{t}/{sid}", set()).add(p.row.uid)
                    break
        for ref in sorted(targets):
            reply = self.client.request("GET", f"Provenance?target={quote(ref, safe='/')}&_count=200")
            if reply.kind != OK:
                self._last_reply = reply
                return None
            for res in _resources(reply, "Provenance"):
                fragment = source_fragment(res)
                if fragment is not None and fragment in targets[ref]:
                    out[fragment] = res
        return out

    def _state(
        self, e: Entry, row: q.Claimed, store_version: str | None, now: float, store_id: str | None = None
    ) -> dict:
        return {
            "resource_type": e.resource_type,
            "resource_id": e.resource_id,
            "store_version": store_version or None,
            "local_version": e.local_version,
            "outbox_id": row.id,
            "updated_at": now,
            "store_id": store_id or e.store_id or (None if self.identifier_mode else e.resource_id),
        }

    # --- Bundles -------------------------------------------------------------------------------
    def _bundle(self, items: list[tuple[Plan, Entry]], kind: str) -> dict:
        if not self.identifier_mode:
            return {"resourceType": "Bundle", "type": kind, "entry": [self._deterministic_entry(e) for _p, e in items]}
        # References are found and rewritten in each resource's JSON text (a C-speed scan): walking
        # the dicts in Python cost as much as the rest of the batch.
        texts = [json.dumps(e.resource, separators=(",", ":"), ensure_ascii=False) for _p, e in items]
        found = [_REFERENCE.findall(t) for t in texts]
        refs = self._reference_map(items, found)
        entries = []
        for (_p, e), text, seen in zip(items, texts, found, strict=True):
            body = e.resource
            if any(r in refs for r in seen):
                body = json.loads(_REFERENCE.sub(lambda m: f'"reference":"{refs.get(m.group(1), m.group(1))}"', text))
            entries.append(self._bundle_entry(e, body))
        return {"resourceType": "Bundle", "type": kind, "entry": entries}

    def _deterministic_entry(self, e: Entry) -> dict:
        request = {"method": "PUT", "url": f"{e.resource_type}/{e.resource_id}"}
        if e.if_match:
            request["ifMatch"] = f'W/"{e.if_match}"'
        return {
            "fullUrl": f"{self.client.base_url}/{e.resource_type}/{e.resource_id}",
            "resource": e.resource,
            "request": request,
        }

    def _reference_map(self, items: list[tuple[Plan, Entry]], found: list[list[str]]) -> dict[str, str]:
        """``Type/<local id>`` -> what to write instead: ``Type/<store id>`` when known, ``urn:uuid:<local
        id>`` for a resource created in this very Bundle (the store resolves it)."""
        wanted: set[tuple[str, str]] = set()
        for refs in found:
            for ref in refs:
                t, _, i = ref.partition("/")
                if t and i and "/" not in i:
                    wanted.add((t, i))
        known = q.load_states(self.store, sorted(wanted)) if wanted else {}
        out = {f"{t}/{i}": f"{t}/{st[2]}" for (t, i), st in known.items() if st[2]}
        for _p, e in items:
            local = f"{e.resource_type}/{e.resource_id}"
            out[local] = f"{e.resource_type}/{e.store_id}" if e.store_id else _urn(e.resource_id)
        return out

    def _bundle_entry(self, e: Entry, body: dict) -> dict:
        """Identifier mode: update the store's id when we know it, otherwise create by identifier.
        ``body`` is the resource with its references already rewritten."""
        if e.store_id:
            body = dict(body, id=e.store_id)
            request = {"method": "PUT", "url": f"{e.resource_type}/{e.store_id}"}
            if e.if_match:
                request["ifMatch"] = f'W/"{e.if_match}"'
            return {
                "fullUrl": f"{self.client.base_url}/{e.resource_type}/{e.store_id}",
                "resource": body,
                "request": request,
            }
        body = {k: v for k, v in body.items() if k != "id"}
        ident = _our_identifier(e.resource)
        criteria = f"identifier={quote(ident[0] + '|' + ident[1], safe='')}" if ident else None
        if criteria and self.identifier_create == "conditional-update":
            request = {"method": "PUT", "url": f"{e.resource_type}?{criteria}"}
        else:
            request = {"method": "POST", "url": e.resource_type}
            if criteria:
                request["ifNoneExist"] = criteria
        return {"fullUrl": _urn(e.resource_id), "resource": body, "request": request}

    def _post(self, bundle: dict) -> Reply:
        reply = self.client.request("POST", "", bundle, self.prefer)
        self.metrics.inc("thrive_sync_requests_total", 1, result=reply.kind)
        return reply

    # --- sending -------------------------------------------------------------------------------
    def _send(self, plans: list[Plan]) -> bool:
        """Send plans; returns False when the caller must stop (rows backed off)."""
        if self.atomic:
            return self._send_transaction(plans)
        return self._send_two_phase(plans)

    def _send_transaction(self, plans: list[Plan]) -> bool:
        started = time.monotonic()
        items = [(p, e) for p in plans for e in p.entries]
        reply = self._post(self._bundle(items, "transaction"))
        if reply.kind == OK:
            results = _entry_results(reply, len(items))
            body = reply.body if isinstance(reply.body, dict) else {}
            if body.get("type") == "batch-response" or (results and not all(r.landed for r in results)):
                # The store applied entries one by one (Medplum without its transaction-bundles
                # feature answers 200 with a status per entry). Every entry decides for itself,
                # and from now on this worker sends on purpose in two phases.
                alerts.error(
                    "store_not_atomic",
                    extra={"worker": self.worker_id, "rows": len(plans), "hint": "set atomic_transactions = false"},
                )
                self.atomic = False
                self._settle(items, results, compensate=True)
                return True
            self._mark_sent(plans, items, results, reply.status)
            ms = round((time.monotonic() - started) * 1000, 1)
            log.info(
                "batch_sent", extra={"worker": self.worker_id, "rows": len(plans), "entries": len(items), "ms": ms}
            )
            return True
        return self._bundle_failed(plans, reply, self._send_transaction)

    def _bundle_failed(self, plans: list[Plan], reply: Reply, resend) -> bool:
        """The store refused the Bundle as a whole (sync.md's error table)."""
        rows = [p.row for p in plans]
        if reply.kind in (TRANSIENT, AUTH):
            if reply.kind == AUTH:
                alerts.error(
                    "store_refused_token",
                    extra={"worker": self.worker_id, "http_status": reply.status, "error": reply.error},
                )
            self._retry(rows, reply)
            return False
        if reply.kind == FORBIDDEN:
            alerts.error(
                "store_forbids_writes", extra={"worker": self.worker_id, "http_status": reply.status, "rows": len(rows)}
            )
            now = self.clock()
            with self.store.session() as s:
                for row in rows:
                    q.mark_dead(
                        s,
                        row,
                        self.worker_id,
                        status=reply.status,
                        error=_refusal("forbidden", reply.body),
                        outcome=reply.body,
                        now=now,
                    )
            self.metrics.inc("thrive_sync_dead_letters_total", len(rows))
            return True
        if reply.kind == CONFLICT:
            return self._resolve_conflict(plans, reply)
        # PAYLOAD: find the bad row by halving (keeping order), dead-letter it alone.
        if len(plans) > 1:
            mid = len(plans) // 2
            if not resend(plans[:mid]):
                self._retry([p.row for p in plans[mid:]], Reply(TRANSIENT, error="waiting behind earlier rows"))
                return False
            return resend(plans[mid:])
        self._dead(plans[0].row, reply.status, reply.body)
        return True

    def _dead(self, row: q.Claimed, status: int, outcome: dict | None) -> None:
        with self.store.session() as s:
            q.mark_dead(
                s,
                row,
                self.worker_id,
                status=status,
                error=_refusal(f"store rejected payload (HTTP {status})", outcome),
                outcome=outcome,
                now=self.clock(),
            )
        self.metrics.inc("thrive_sync_dead_letters_total", 1)
        alerts.error("dead_lettered", extra={"worker": self.worker_id, "row_uid": row.uid, "http_status": status})

    def _send_two_phase(self, plans: list[Plan]) -> bool:
        """Non-atomic store: ``batch`` Bundles, the save's resources first, then the Provenance of each
        save whose resources all landed, so no Provenance ever describes a change the store refused.
        Claims take one save per young person (queue.claim ``one_per_patient``): a failed save can
        then never be overtaken by a later save of the same young person."""
        items = [(p, e) for p in plans for e in p.resources]
        ready = plans
        if items:
            reply = self._post(self._bundle(items, "batch"))
            if reply.kind != OK:
                return self._bundle_failed(plans, reply, self._send_two_phase)
            ready = self._settle(
                items, _entry_results(reply, len(items)), compensate=False, rows=plans, defer_sent=True
            )
        if not ready:
            return True
        # Phase two: the Provenances (their targets now have store ids to point at).
        fresh = self._plan_provenance(ready)
        prov_items = [(p, e) for p in fresh for e in p.provenance]
        if not prov_items:
            self._settle([], [], compensate=False, rows=fresh)
            return True
        reply = self._post(self._bundle(prov_items, "batch"))
        if reply.kind != OK:
            if reply.kind in (TRANSIENT, AUTH):
                self._retry([p.row for p in fresh], reply)
                return False
            for p in fresh:
                self._dead(p.row, reply.status, reply.body)
            return True
        self._settle(prov_items, _entry_results(reply, len(prov_items)), compensate=False, rows=fresh)
        return True

    def _plan_provenance(self, plans: list[Plan]) -> list[Plan]:
        """The same rows with just their Provenance entries (resources landed and recorded)."""
        return [Plan(p.row, entries=p.provenance, applied=p.applied) for p in plans]

    def _settle(
        self,
        items: list[tuple[Plan, Entry]],
        results: list[EntryResult],
        *,
        compensate: bool,
        rows: list[Plan] | None = None,
        defer_sent: bool = False,
    ) -> list[Plan]:
        """Decide each row from its entries' own answers (non-atomic answers).

        A row is sent when every entry of it landed. Otherwise its worst entry decides, in sync.md's
        classes: 409/412 -> re-read and resolve (conflict), another 4xx -> dead letter with that entry's
        OperationOutcome, 5xx/timeouts -> retry the row (entries that landed are recorded and not sent
        again). ``compensate``: the save's Provenance went in the same Bundle; where the row did not
        wholly land, it is deleted again. ``defer_sent``: return fully landed rows instead of marking
        them sent (the two-phase send still owes their Provenance)."""
        now = self.clock()
        per_plan: dict[int, list[tuple[Entry, EntryResult]]] = {}
        order: list[Plan] = list(rows or [])
        for (p, e), r in zip(items, results, strict=True):
            if id(p) not in per_plan and p not in order:
                order.append(p)
            per_plan.setdefault(id(p), []).append((e, r))
        states: list[dict] = []
        sent: list[Plan] = []
        done_rows: list[Plan] = []
        retry: list[Plan] = []
        conflicts: list[Plan] = []
        dead: list[tuple[Plan, EntryResult]] = []
        first_conflict: EntryResult | None = None
        for p in order:
            pairs = per_plan.get(id(p), [])
            for e, r in pairs:
                if r.landed and not (compensate and e.is_provenance):
                    states.append(self._state(e, p.row, r.version, now, store_id=r.store_id))
                if r.landed and not e.is_provenance:
                    e.store_id = r.store_id or e.store_id
            failed = [(e, r) for e, r in pairs if not r.landed]
            if not failed:
                if compensate:
                    states += [
                        self._state(e, p.row, r.version, now, store_id=r.store_id) for e, r in pairs if e.is_provenance
                    ]
                (done_rows if defer_sent else sent).append(p)
                continue
            if compensate:
                for e, r in pairs:
                    if e.is_provenance and r.landed:
                        self._withdraw_provenance(p.row, r.store_id or e.store_id)
            kinds = {r.kind for _e, r in failed}
            if CONFLICT in kinds:
                conflicts.append(Plan(p.row, entries=[e for e, r in failed if r.kind == CONFLICT]))
                first_conflict = first_conflict or next(r for _e, r in failed if r.kind == CONFLICT)
            elif kinds & {PAYLOAD, FORBIDDEN}:
                dead.append((p, next(r for _e, r in failed if r.kind in (PAYLOAD, FORBIDDEN))))
            else:
                retry.append(p)
        with self.store.session() as s:
            if states:
                q.upsert_states(s, states)
            if sent:
                q.mark_sent(s, [p.row for p in sent], self.worker_id, 200, [], now)
        if sent:
            self.metrics.inc("thrive_sync_rows_sent_total", len(sent))
            self.metrics.inc("thrive_sync_entries_sent_total", sum(len(p.entries) for p in sent))
        for p, r in dead:
            self._dead(p.row, r.status, r.outcome)
        if retry:
            worst = next(
                (r for p in retry for _e, r in per_plan.get(id(p), []) if not r.landed), EntryResult(0, TRANSIENT)
            )
            self._retry(
                [p.row for p in retry],
                Reply(TRANSIENT, status=worst.status, error=f"entry HTTP {worst.status or 'no answer'}"),
            )
        if conflicts and first_conflict is not None:
            self._resolve_conflict(
                conflicts, Reply(CONFLICT, status=first_conflict.status, body=first_conflict.outcome)
            )
        return done_rows

    def _withdraw_provenance(self, row: q.Claimed, store_id: str | None) -> None:
        """Delete a Provenance the store kept for a save that did not wholly land."""
        pid = store_id or (None if self.identifier_mode else resource_id("provenance", row.uid))
        reply = self.client.request("DELETE", f"Provenance/{pid}") if pid else Reply(PAYLOAD, error="no id")
        if reply.kind not in (OK, NOT_FOUND) and reply.status not in (404, 410):
            alerts.error(
                "provenance_not_withdrawn",
                extra={"worker": self.worker_id, "row_uid": row.uid, "http_status": reply.status},
            )

    def _mark_sent(
        self, plans: list[Plan], items: list[tuple[Plan, Entry]], results: list[EntryResult], status: int
    ) -> None:
        now = self.clock()
        states: list[dict] = []
        for p in plans:
            states += p.applied
        for k, (p, e) in enumerate(items):
            r = results[k] if k < len(results) else EntryResult(200, OK)
            states.append(self._state(e, p.row, r.version, now, store_id=r.store_id))
        with self.store.session() as s:
            q.mark_sent(s, [p.row for p in plans], self.worker_id, status, states, now)
        lag = max(now - p.row.created_at for p in plans)
        self.metrics.inc("thrive_sync_rows_sent_total", len(plans))
        self.metrics.inc("thrive_sync_entries_sent_total", len(items))
        self.metrics.gauges["thrive_sync_last_batch_lag_seconds"] = round(lag, 3)

    def backoff(self, attempts: int, retry_after: float | None) -> float:
        """Full-jitter exponential back-off, never shorter than the store's Retry-After."""
        cap = min(self.backoff_max, self.backoff_base * 2 ** max(0, attempts - 1))
        delay = self.rng.uniform(0, cap)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.backoff_max * 4))
        return delay

    def _retry(self, rows: list[q.Claimed], reply: Reply) -> None:
        if not rows:
            return
        delay = self.backoff(max(r.attempts for r in rows), reply.retry_after)
        if reply.ambiguous:
            delay = max(delay, self.settle)
        with self.store.session() as s:
            q.mark_retry(
                s,
                rows,
                self.worker_id,
                delay=delay,
                status=reply.status,
                error=reply.error or reply.kind,
                ambiguous=reply.ambiguous,
                now=self.clock(),
            )
        self.metrics.inc("thrive_sync_retries_total", len(rows), error_class=reply.kind)
        log.warning(
            "batch_retry",
            extra={
                "worker": self.worker_id,
                "rows": len(rows),
                "http_status": reply.status,
                "error_class": reply.kind,
                "error": reply.error,
                "retry_in": round(delay, 2),
            },
        )

    def _park_conflict(self, row: q.Claimed, store_copy: dict | None, status: int) -> None:
        with self.store.session() as s:
            q.mark_dead(
                s,
                row,
                self.worker_id,
                status=status,
                error="store holds a version we did not write",
                outcome=store_copy,
                now=self.clock(),
                kind="conflict",
            )
        self.metrics.inc("thrive_sync_conflicts_total", 1)
        alerts.warning("conflict_parked", extra={"worker": self.worker_id, "row_uid": row.uid, "http_status": status})

    def _resolve_conflict(self, plans: list[Plan], reply: Reply) -> bool:
        """409/412: re-read what we tried to update and decide row by row."""
        now = self.clock()
        requeue: list[q.Claimed] = []
        check: list[q.Claimed] = []
        undecided: list[Plan] = []
        learned: list[dict] = []
        for i, plan in enumerate(plans):
            verdict = "requeue"
            store_copy = None
            for e in plan.entries:
                if e.if_match is None and e.local_version == 1 and e.resource_type == "Provenance":
                    continue
                if not e.store_id:
                    # identifier mode, a create (no store id yet): nothing to re-read. If it was the
                    # culprit (e.g. several store resources carry the identifier), the undecided rule
                    # below parks it after max_conflict_retries.
                    continue
                r = self.client.read(e.resource_type, e.store_id)
                if r.kind == NOT_FOUND:
                    if e.if_match is not None:
                        verdict, store_copy = "conflict", None  # gone from the store: a person decides
                        break
                    continue
                if r.kind != OK:
                    self._retry([p.row for p in plans[i:]] + [p.row for p in undecided] + requeue + check, r)
                    return False
                current = r.body or {}
                version = str(
                    (current.get("meta") or {}).get("versionId") or version_from_etag(header(r, "ETag")) or ""
                )
                if e.if_match is not None and version == e.if_match:
                    continue
                if source_fragment(current) == plan.row.uid:
                    verdict = "check"  # this very row landed earlier (a lost answer): verify, don't re-send
                    break
                src = (current.get("meta") or {}).get("source", "")
                if e.if_match is None and not src.startswith(self.source + "#"):
                    # We thought it new, but someone else created it: never overwrite.
                    verdict, store_copy = "conflict", current
                    break
                if src.startswith(self.source + "#"):
                    learned.append(
                        self._state(e, plan.row, version, now) | {"local_version": max(e.local_version - 1, 0)}
                    )
                    continue
                verdict, store_copy = "conflict", current
                break
            if verdict == "requeue":
                undecided.append(plan)
                continue
            if verdict == "conflict":
                self._park_conflict(plan.row, store_copy, reply.status)
            elif verdict == "check":
                plan.row.needs_check = True
                check.append(plan.row)
            else:
                requeue.append(plan.row)
        # Rows that re-reading does not explain: innocent bystanders if another row was the culprit;
        # otherwise the store keeps refusing for a reason we cannot see, so a person must look.
        culprit_found = len(undecided) < len(plans)
        for plan in undecided:
            if not culprit_found and q.conflict_retries(self.store, plan.row.id) >= self.max_conflict_retries:
                self._park_conflict(plan.row, reply.body, reply.status)
            else:
                requeue.append(plan.row)
        with self.store.session() as s:
            if learned:
                q.upsert_states(s, learned)
            if requeue:
                q.mark_retry(
                    s,
                    requeue,
                    self.worker_id,
                    delay=0.0,
                    status=reply.status,
                    error="version conflict; re-read",
                    ambiguous=False,
                    now=now,
                    kind="conflict-retry",
                )
            if check:
                q.mark_retry(
                    s,
                    check,
                    self.worker_id,
                    delay=0.0,
                    status=reply.status,
                    error="already in store; verify",
                    ambiguous=True,
                    now=now,
                    kind="conflict-retry",
                )
        return True


def header(reply: Reply, name: str) -> str | None:
    """A response header by name, in any case: Reply.headers is a plain dict and servers differ
    (waitress, under our store, sends ``Etag``)."""
    low = name.lower()
    return next((v for k, v in reply.headers.items() if k.lower() == low), None)


def _status_code(text) -> int:
    try:
        return int(str(text or "").strip().split(" ", 1)[0])
    except ValueError:
        return 0


def _entry_results(reply: Reply, expected: int) -> list[EntryResult]:
    """Each entry's answer, in order; an entry the store did not answer counts as not landed (transient)."""
    body = reply.body if isinstance(reply.body, dict) else None
    if body is None:
        # a 2xx with no body at all: nothing says an entry failed
        return [EntryResult(reply.status, OK) for _ in range(expected)]
    answers = body.get("entry") or []
    out = []
    for k in range(expected):
        ans = answers[k] if k < len(answers) and isinstance(answers[k], dict) else {}
        resp = ans.get("response") or {}
        status = _status_code(resp.get("status"))
        kind = classify(status) if status else TRANSIENT
        outcome = resp.get("outcome") if isinstance(resp.get("outcome"), dict) else None
        res = ans.get("resource")
        if outcome is None and isinstance(res, dict) and res.get("resourceType") == "OperationOutcome":
            outcome = res
        out.append(EntryResult(status, kind, _store_id_of(ans), _version_of(ans), outcome))
    return out


def _store_id_of(answer: dict) -> str | None:
    res = answer.get("resource") or {}
    # sekmet-fhir answers Prefer: return=OperationOutcome with the OperationOutcome as entry.resource
    if isinstance(res, dict) and res.get("id") and res.get("resourceType") != "OperationOutcome":
        return str(res["id"])
    loc = ((answer.get("response") or {}).get("location") or "").split("?", 1)[0]
    segs = [s for s in loc.split("/") if s]
    if "_history" in segs:
        segs = segs[: segs.index("_history")]
    return segs[-1] if len(segs) >= 2 else None


def _meta_version(resource: dict) -> str | None:
    return str((resource.get("meta") or {}).get("versionId") or "") or None


def _resources(reply: Reply, rtype: str) -> list[dict]:
    return [
        r
        for e in (reply.body or {}).get("entry") or []
        if isinstance(r := e.get("resource"), dict) and r.get("resourceType") == rtype
    ]


def _our_identifier(resource: dict) -> tuple[str, str] | None:
    """The resource's identifier in one of our systems ({BASE}/Id/<kind>): its business key."""
    prefix = canonical.id_system("")
    for ident in resource.get("identifier") or []:
        if isinstance(ident, dict) and str(ident.get("system", "")).startswith(prefix) and ident.get("value"):
            return (ident["system"], str(ident["value"]))
    return None


def _urn(local_id: str) -> str:
    try:
        return f"urn:uuid:{uuid.UUID(local_id)}"
    except ValueError:
        return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, local_id)}"


#: ``"reference":"<value>"`` in compact JSON (values with escapes are left alone: ours never have any)
_REFERENCE = re.compile(r'"reference":"([^"\\]*)"')


def _references(node, out: list[str] | None = None) -> list[str]:
    """Every ``reference`` string in a resource (or part of one)."""
    out = [] if out is None else out
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "reference" and isinstance(v, str):
                out.append(v)
            elif isinstance(v, (dict, list)):
                _references(v, out)
    elif isinstance(node, list):
        for v in node:
            if isinstance(v, (dict, list)):
                _references(v, out)
    return out


def _refusal(prefix: str, outcome: dict | None) -> str:
    """Dead-letter text: the store's own diagnostics when it sent any, and says so when it did not."""
    if not isinstance(outcome, dict):
        return f"{prefix}; the store sent no OperationOutcome"
    texts = [
        str(i.get("diagnostics") or (i.get("details") or {}).get("text") or "")
        for i in outcome.get("issue") or []
        if isinstance(i, dict)
    ]
    texts = [t for t in texts if t]
    return f"{prefix}: {'; '.join(texts)}" if texts else prefix


def _version_of(answer: dict) -> str | None:
    resp = answer.get("response") or {}
    v = version_from_etag(resp.get("etag"))
    if v:
        return v
    v = ((answer.get("resource") or {}).get("meta") or {}).get("versionId")
    if v:
        return str(v)
    loc = resp.get("location") or ""
    if "/_history/" in loc:
        return loc.rsplit("/_history/", 1)[1].strip("/") or None
    return None
