"""The sync worker: turns claimed outbox rows into FHIR transaction Bundles and acts on the answer.

Decisions follow docs/design/sync.md's error table, one place each:
- 2xx: rows sent; the store's version of every resource is recorded for the next If-Match.
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
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field

from .. import canonical
from ..client.fhir_http import AUTH, CONFLICT, FORBIDDEN, NOT_FOUND, OK, PAYLOAD, TRANSIENT, FhirClient, Reply, version_from_etag
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

    @property
    def key(self) -> tuple[str, str]:
        return (self.resource_type, self.resource_id)


@dataclass
class Plan:
    row: q.Claimed
    entries: list[Entry] = field(default_factory=list)
    # states of entries found already applied in the store while checking
    applied: list[dict] = field(default_factory=list)


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
        self.rng = rng or random.Random()

    # --- loop ----------------------------------------------------------------------------------
    def step(self) -> int:
        """Claim and push one batch. Returns the number of rows claimed (0: nothing ready now)."""
        rows = q.claim(
            self.store, self.worker_id, max_entries=self.max_entries, max_patients=self.max_patients,
            lease_seconds=self.lease_seconds, now=self.clock(),
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

    def run(self, stop: threading.Event, *, once: bool = False, poll_interval: float = 1.0, max_wait: float = 60.0) -> bool:
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
        keys = [tuple(e) for r in rows for e in r.entries]
        versions = q.load_versions(self.store, [r.id for r in rows])
        states = q.load_states(self.store, sorted({(t, i) for t, i, _ in keys}))
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
                plan.entries.append(Entry(t, i, v, resource, if_match=state[0] if state else None))
            plans.append(plan)
        return plans

    def _check_store(self, plans: list[Plan]) -> list[Plan]:
        """Read the store where our knowledge is incomplete, before writing anything.

        - rows whose last answer was lost (``needs_check``): did they land already? One search for
          their Provenances answers for the whole batch: a save's Provenance is written in the same
          atomic transaction as its resources, so its presence means the whole row landed.
        - updates whose store version we do not know: learn it, so the write carries If-Match.
        """
        now = self.clock()
        checking = [p for p in plans if p.row.needs_check]
        if checking:
            # the save's Provenance id: uuid5({BASE}/Id/provenance|<row uid>), as build_provenance makes it
            ids = {resource_id("provenance", p.row.uid): p for p in checking}
            reply = self.client.request("GET", f"Provenance?_id={','.join(ids)}&_count={len(ids)}")
            if reply.kind != OK:
                self._retry([p.row for p in plans], reply)
                return []
            found = {((e.get("resource") or {}).get("id")) for e in (reply.body or {}).get("entry") or []
                     if (e.get("resource") or {}).get("resourceType") == "Provenance"}
            landed = [p for pid, p in ids.items() if pid in found]
            if landed:
                with self.store.session() as s:
                    for p in landed:
                        states = [self._state(e, p.row, None, now) for e in p.entries]
                        q.mark_sent(s, [p.row], self.worker_id, 200, states, now)
                self.metrics.inc("thrive_sync_rows_sent_total", len(landed))
                log.info("rows_already_in_store", extra={"worker": self.worker_id, "rows": len(landed)})
                plans = [p for p in plans if p not in landed]
        # Updates whose store version we do not know: one search per resource type.
        current = self._search_by_id([e for p in plans for e in p.entries if e.local_version > 1 and e.if_match is None])
        if current is None:
            self._retry([p.row for p in plans], self._last_reply)
            return []
        keep: list[Plan] = []
        for plan in plans:
            conflict = None
            for e in plan.entries:
                found = current.get(e.key) if e.local_version > 1 and e.if_match is None else None
                if found is None:
                    continue
                if (found.get("meta") or {}).get("source", "").startswith(self.source + "#"):
                    e.if_match = str((found.get("meta") or {}).get("versionId") or "") or None  # our earlier write
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

    def _search_by_id(self, entries: list[Entry]) -> dict[tuple[str, str], dict] | None:
        """Current store versions of ``entries`` by ``_id`` search, one request per type (None on failure).

        ``_id`` works on every resource type, even where a server defines no other search parameter
        (sekmet-fhir's Goal)."""
        by_type: dict[str, list[str]] = {}
        for e in entries:
            by_type.setdefault(e.resource_type, []).append(e.resource_id)
        out: dict[tuple[str, str], dict] = {}
        for rtype, ids in by_type.items():
            ids = sorted(set(ids))
            reply = self.client.request("GET", f"{rtype}?_id={','.join(ids)}&_count={len(ids)}")
            if reply.kind != OK:
                self._last_reply = reply
                return None
            for item in (reply.body or {}).get("entry") or []:
                res = item.get("resource") or {}
                if res.get("resourceType") == rtype and res.get("id") in ids:
                    out[(rtype, res["id"])] = res
        return out

    def _state(self, e: Entry, row: q.Claimed, store_version: str | None, now: float) -> dict:
        return {
            "resource_type": e.resource_type, "resource_id": e.resource_id, "store_version": store_version or None,
            "local_version": e.local_version, "outbox_id": row.id, "updated_at": now,
        }

    def _bundle(self, plans: list[Plan]) -> dict:
        entries = []
        for plan in plans:
            for e in plan.entries:
                request = {"method": "PUT", "url": f"{e.resource_type}/{e.resource_id}"}
                if e.if_match:
                    request["ifMatch"] = f'W/"{e.if_match}"'
                entries.append({
                    "fullUrl": f"{self.client.base_url}/{e.resource_type}/{e.resource_id}",
                    "resource": e.resource,
                    "request": request,
                })
        return {"resourceType": "Bundle", "type": "transaction", "entry": entries}

    def _send(self, plans: list[Plan]) -> bool:
        """Send plans as one transaction. Returns False when the caller must stop (rows backed off)."""
        started = time.monotonic()
        reply = self.client.transaction(self._bundle(plans))
        rows = [p.row for p in plans]
        n_entries = sum(len(p.entries) for p in plans)
        self.metrics.inc("thrive_sync_requests_total", 1, result=reply.kind)
        if reply.kind == OK:
            self._mark_sent(plans, reply)
            ms = round((time.monotonic() - started) * 1000, 1)
            log.info("batch_sent", extra={"worker": self.worker_id, "rows": len(rows), "entries": n_entries, "ms": ms})
            return True
        if reply.kind in (TRANSIENT, AUTH):
            if reply.kind == AUTH:
                alerts.error("store_refused_token", extra={"worker": self.worker_id, "http_status": reply.status, "error": reply.error})
            self._retry(rows, reply)
            return False
        if reply.kind == FORBIDDEN:
            alerts.error("store_forbids_writes", extra={"worker": self.worker_id, "http_status": reply.status, "rows": len(rows)})
            now = self.clock()
            with self.store.session() as s:
                for row in rows:
                    q.mark_dead(s, row, self.worker_id, status=reply.status, error="forbidden", outcome=reply.body, now=now)
            self.metrics.inc("thrive_sync_dead_letters_total", len(rows))
            return True
        if reply.kind == CONFLICT:
            return self._resolve_conflict(plans, reply)
        # PAYLOAD: find the bad row by halving (keeping order), dead-letter it alone.
        if len(plans) > 1:
            mid = len(plans) // 2
            if not self._send(plans[:mid]):
                self._retry([p.row for p in plans[mid:]], Reply(TRANSIENT, error="waiting behind earlier rows"))
                return False
            return self._send(plans[mid:])
        row = plans[0].row
        with self.store.session() as s:
            q.mark_dead(s, row, self.worker_id, status=reply.status, error=f"store rejected payload (HTTP {reply.status})",
                        outcome=reply.body, now=self.clock())
        self.metrics.inc("thrive_sync_dead_letters_total", 1)
        alerts.error("dead_lettered", extra={"worker": self.worker_id, "row_uid": row.uid, "http_status": reply.status})
        return True

    def _mark_sent(self, plans: list[Plan], reply: Reply) -> None:
        now = self.clock()
        answers = ((reply.body or {}).get("entry") or []) if isinstance(reply.body, dict) else []
        states: list[dict] = []
        k = 0
        for plan in plans:
            states += plan.applied
            for e in plan.entries:
                ans = answers[k] if k < len(answers) else {}
                k += 1
                version = _version_of(ans)
                states.append(self._state(e, plan.row, version, now))
        with self.store.session() as s:
            q.mark_sent(s, [p.row for p in plans], self.worker_id, reply.status, states, now)
        lag = max(now - p.row.created_at for p in plans)
        self.metrics.inc("thrive_sync_rows_sent_total", len(plans))
        self.metrics.inc("thrive_sync_entries_sent_total", sum(len(p.entries) for p in plans))
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
            q.mark_retry(s, rows, self.worker_id, delay=delay, status=reply.status, error=reply.error or reply.kind,
                         ambiguous=reply.ambiguous, now=self.clock())
        self.metrics.inc("thrive_sync_retries_total", len(rows), error_class=reply.kind)
        log.warning("batch_retry", extra={"worker": self.worker_id, "rows": len(rows), "http_status": reply.status,
                                          "error_class": reply.kind, "error": reply.error, "retry_in": round(delay, 2)})

    def _park_conflict(self, row: q.Claimed, store_copy: dict | None, status: int) -> None:
        with self.store.session() as s:
            q.mark_dead(s, row, self.worker_id, status=status, error="store holds a version we did not write",
                        outcome=store_copy, now=self.clock(), kind="conflict")
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
                r = self.client.read(e.resource_type, e.resource_id)
                if r.kind == NOT_FOUND:
                    if e.if_match is not None:
                        verdict, store_copy = "conflict", None  # gone from the store: a person decides
                        break
                    continue
                if r.kind != OK:
                    self._retry([p.row for p in plans[i:]] + [p.row for p in undecided] + requeue + check, r)
                    return False
                current = r.body or {}
                version = str((current.get("meta") or {}).get("versionId") or version_from_etag(r.headers.get("ETag")) or "")
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
                    learned.append(self._state(e, plan.row, version, now) | {"local_version": max(e.local_version - 1, 0)})
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
                q.mark_retry(s, requeue, self.worker_id, delay=0.0, status=reply.status, error="version conflict; re-read",
                             ambiguous=False, now=now, kind="conflict-retry")
            if check:
                q.mark_retry(s, check, self.worker_id, delay=0.0, status=reply.status, error="already in store; verify",
                             ambiguous=True, now=now, kind="conflict-retry")
        return True


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
