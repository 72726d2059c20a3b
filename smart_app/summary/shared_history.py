"""The young person's shared history on the clinician Summary: what the shared store holds, merged
with what this app saved and has not pushed yet.

Why: a clinician launching for a young person whose history is already in the shared cross-agency
store (another team's grouping, goals and scores, a safety plan, a referral an agency accepted) must
see it, not "No grouping has been agreed yet". The app's local store only knows what this deployment
saved, so the Summary also reads the shared store.

How it reads: with this deployment's SMART Backend Services credentials (``[shared_store]`` in the
app config, ``system/`` scopes; :class:`thrive_fhir.client.backend_services.BackendServicesAuth`),
one search per plan type (``Type?patient=<ids>&_revinclude=Provenance:target``), all sent in one
``batch`` Bundle (one round trip; side by side to a server that refuses batches), then one batch
for the names of who recorded what. The read starts in the background when the launch completes
(:func:`prefetch`, called by the launch callback), so it is usually done when the Summary opens.
Which young person: the launch's Patient id (what this app's sync worker pushes under) and any
Patient the store files under the same NHS number from the launch's banner (another team whose EHR
gave the young person another id). The store decides
what the deployment may see (thrive_fhir.store.consent_gate, docs/consent-enforcement.md): the young
people its organisation holds the record for (a custodian), or whose active sharing Consent names it.
A young person the store does not show simply brings nothing from the store. Without a
``[shared_store]`` section nothing is read and the Summary shows local data only.

How it merges (:func:`merge`): by resource. A resource with a local change not pushed yet (an outbox
row still pending, dead-lettered or in conflict) shows the local version, marked *pending*; anything
else shows the store's version, which is the shared truth (an agency's Task update, another team's
rating), and a resource only this app has shows as saved here.

Who recorded it and where: the newest Provenance targeting the resource (its author and the
organisation they acted for; local saves and agency writes both carry one), else ``meta.source``
(the ODS code of the deployment that sent it), else the resource's own author field. Names come from
:class:`smart_app.names.Names`, which is given the Practitioner/Organization resources read from the
store here.

Freshness rule (the per-launch cache, :func:`for_launch`): what was read from the store is kept for
the launch and read again when any of these holds:
  1. a change notification for the young person (any of the store's Patient ids read) arrived after
     the read started, or missed notifications made every read stale (:mod:`smart_app.shared_changes`,
     recorded by :mod:`smart_app.notification_receiver`);
  2. the young person's unsynced local saves changed since the read (a new local save, or the sync
     worker pushed one: the set of their not-yet-sent outbox rows is different);
  3. it is older than the max age: ``subscribed_max_age_seconds`` (default 900 s) while the
     subscription is active, i.e. a handshake, heartbeat or event arrived within two heartbeat
     periods plus 15 s (changes then arrive as notifications; the max age only bounds what a lost
     notification could hide), else ``max_age_seconds`` (default 30 s: no notifications, so age
     is the only signal).
A read still in flight (started at launch) is waited for at most :data:`LOADING_WAIT`; after that
the Summary shows local data with "the shared record is still loading" (never "no grouping has been
agreed" for want of the read) and a link to reload. A failed read (store down, token refused) is
remembered for at most 10 seconds, so a down store costs one timeout per 10 seconds per launch,
never one per page. The store being unreadable never fails the page: the Summary shows local data
with a note saying the shared record could not be read. What is cached is the store's answer in
process memory, per launch (bounded, oldest launch dropped); the change record is in the app's
database, so every process of the app sees a notification whichever process received it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from thrive_fhir import canonical, ids
from thrive_fhir.client.backend_services import BackendServicesAuth
from thrive_fhir.client.fhir_http import (
    BATCH_REFUSED,
    FhirClient,
    environment_session,
    is_fhir_id,
    next_link,
    search_batch,
)
from thrive_fhir.entry_confirmation import is_confirmation
from thrive_fhir.localstore import outbox

from ..records import PatientRecords

log = logging.getLogger("smart_app.shared_history")

#: What the Summary shows (and Provenance is asked for alongside each).
HISTORY_TYPES = ("Observation", "Goal", "CarePlan", "ServiceRequest", "Task", "Consent", "CareTeam")
#: Types whose names the Summary may need (the store shows these directory types to everyone).
NAME_TYPES = ("Practitioner", "PractitionerRole", "Organization", "HealthcareService")
PAGE = 200
#: Searches sent side by side on a cold read (the store answers each on its own thread).
PARALLEL = 4
MAX_PAGES = 10
#: A failed read is retried after at most this many seconds.
FAILURE_TTL = 10.0
EXTENSION_KEY = "thrive_shared_store"
_MAX_LAUNCHES = 512


class StoreUnavailable(Exception):
    """The shared store could not be read just now (network, 5xx, token refused)."""


@dataclass
class StoreRead:
    """One read of a young person's record from the shared store."""

    rows: list[tuple[str, str, int, dict]]
    provenance: list[dict]
    directory: dict[str, dict]  # "Type/id" -> Practitioner/Organization/... resource
    patient_ids: tuple[str, ...] = ()  # the store's Patient ids read (notifications name these)


@dataclass
class Recorded:
    """Who recorded an item and where, and whether it is still waiting to reach the shared store."""

    who: str = ""
    where: str = ""
    pending: bool = False
    from_store: bool = False

    @property
    def text(self) -> str:
        if self.pending:
            return "Saved here, not yet in the shared record"
        by = ", ".join(p for p in (self.who, self.where) if p)
        return f"Recorded by {by}" if by else ""


@dataclass
class SharedHistory:
    """The Summary's view of the shared record for one request."""

    records: PatientRecords
    status: str  # "ok" | "unavailable" | "loading"
    pending: frozenset[str] = frozenset()  # "Type/id" with a local change not pushed yet
    store_refs: frozenset[str] = frozenset()  # "Type/id" shown in the store's version
    directory: dict[str, dict] = field(default_factory=dict)
    _prov: dict[str, dict] = field(default_factory=dict)
    #: Agencies' confirmations of safety plan items (``thrive_fhir.entry_confirmation``), from the store.
    confirmations: list[dict] = field(default_factory=list)

    @property
    def unavailable(self) -> bool:
        return self.status == "unavailable"

    @property
    def loading(self) -> bool:
        """The read started at launch has not finished: only local data shows, and the page says so."""
        return self.status == "loading"

    def attribution(self, names):
        """A function resource -> :class:`Recorded` (``names``: a :class:`smart_app.names.Names`)."""

        def recorded(resource: dict | None) -> Recorded | None:
            if not resource or not resource.get("id"):
                return None
            ref = f"{resource.get('resourceType')}/{resource['id']}"
            pending = ref in self.pending
            who = where = ""
            prov = self._prov.get(ref)
            if prov is not None:
                agent = _author_agent(prov)
                if agent:
                    who = names(agent.get("who")) if agent.get("who") else ""
                    where = names(agent.get("onBehalfOf")) if agent.get("onBehalfOf") else ""
            if not where:
                ods = _source_ods((resource.get("meta") or {}).get("source"))
                if ods:
                    where = names(f"Organization/{ids.deterministic_id(canonical.ODS_ORG, ods)}")
                    if where == names.FALLBACK.get("Organization"):  # not named anywhere: say its code
                        where = f"the organisation with ODS code {ods}"
            if not who:
                author = _author_field(resource)
                if author:
                    who = names(author)
            if who and where and where in who:  # a PractitionerRole's name already says where
                where = ""
            return Recorded(who=who, where=where, pending=pending, from_store=ref in self.store_refs)

        return recorded


# --- reading the store -----------------------------------------------------------------------
class SharedStoreReader:
    """Reads one young person's record from the shared store with Backend Services credentials."""

    def __init__(self, cfg):
        self.cfg = cfg
        key = Path(cfg.private_key_file).read_bytes()
        self.auth = BackendServicesAuth(
            token_url=cfg.token_url,
            client_id=cfg.client_id,
            private_key_pem=key,
            kid=cfg.kid,
            alg=cfg.alg,
            scope=cfg.scope,
            timeout=(min(cfg.timeout_seconds, 5.0), cfg.timeout_seconds),
            min_failure_backoff=FAILURE_TTL,
        )
        self.client = FhirClient(
            cfg.fhir_base,
            self.auth,
            connect_timeout=min(cfg.timeout_seconds, 3.0),
            read_timeout=cfg.timeout_seconds,
            user_agent="thrive-app-summary",
            session=environment_session(cfg.fhir_base),  # a Summary's read is small: no env scan per request
        )
        #: The store answers a batch of searches (cleared on the first refusal).
        self.batch_ok = True

    def read(self, patient_id: str, nhs_number: str | None = None) -> StoreRead:
        """Every plan resource of ``patient_id`` (and of any Patient the store has under
        ``nhs_number``) the store shows this deployment (nothing when it shows none), with their
        Provenance and the people and organisations they name.

        Round trips: one ``batch`` Bundle of GET searches (the NHS-number search and one search per
        plan type), a second only when the NHS number finds the young person under another id, and
        one batch for the names. A server that refuses a batch gets the searches side by side."""
        if not is_fhir_id(patient_id):
            return StoreRead([], [], {}, (patient_id,))
        by_nhs = (
            f"Patient?identifier={canonical.NHS_NUMBER}|{nhs_number}&_count=10"
            if nhs_number and nhs_number.isdigit() and len(nhs_number) == 10
            else None
        )
        plan = [f"{rtype}?patient={patient_id}&_count={PAGE}&_revinclude=Provenance:target" for rtype in HISTORY_TYPES]
        answers = self._searches([*plan, *([by_nhs] if by_nhs else [])])
        patient_ids = [patient_id]
        if by_nhs:
            for res in answers.pop():
                if res.get("resourceType") == "Patient" and is_fhir_id(res.get("id")) and res["id"] not in patient_ids:
                    patient_ids.append(res["id"])
        if len(patient_ids) > 1:  # the same young person under another team's id: read those too
            others = ",".join(patient_ids[1:])
            more = self._searches(
                [f"{rtype}?patient={others}&_count={PAGE}&_revinclude=Provenance:target" for rtype in HISTORY_TYPES]
            )
            answers = [a + b for a, b in zip(answers, more, strict=True)]
        rows: list[tuple[str, str, int, dict]] = []
        seen: set[str] = set()
        provenance: dict[str, dict] = {}
        for rtype, found in zip(HISTORY_TYPES, answers, strict=True):
            for res in found:
                if res.get("resourceType") == "Provenance":
                    provenance[res["id"]] = res
                elif res.get("resourceType") == rtype and f"{rtype}/{res['id']}" not in seen:
                    seen.add(f"{rtype}/{res['id']}")
                    version = str((res.get("meta") or {}).get("versionId") or "1")
                    rows.append((rtype, res["id"], int(version) if version.isdigit() else 1, res))
        directory = self._directory([r for *_x, r in rows] + list(provenance.values()))
        return StoreRead(rows, list(provenance.values()), directory, tuple(patient_ids))

    def _searches(self, paths: list[str]) -> list[list[dict]]:
        """Each search's resources (every page), in order: one batch, else side by side."""
        if self.batch_ok:
            reply = self.client.request("POST", "", search_batch(paths))
            entries = (reply.body or {}).get("entry") if reply.ok and isinstance(reply.body, dict) else None
            if isinstance(entries, list) and len(entries) == len(paths):
                return [self._batch_answer(entry) for entry in entries]
            if reply.ok or reply.status in BATCH_REFUSED:
                # Not a batch server (or one that answers it oddly): searches from now on.
                log.info("shared store: no batch searches (HTTP %s); searching type by type", reply.status)
                self.batch_ok = False
            else:
                raise StoreUnavailable(reply.error or f"HTTP {reply.status}")
        with ThreadPoolExecutor(PARALLEL) as pool:
            return list(pool.map(self._search, paths))

    def _batch_answer(self, entry: object) -> list[dict]:
        """One batch entry's searchset (and its further pages, fetched one by one)."""
        if not isinstance(entry, dict):
            raise StoreUnavailable("odd batch answer")
        status = str((entry.get("response") or {}).get("status") or "")
        bundle = entry.get("resource")
        if not status.startswith("2") or not isinstance(bundle, dict):
            raise StoreUnavailable(f"batch entry HTTP {status[:3] or '?'}")
        out = [
            res
            for e in bundle.get("entry") or []
            if isinstance(e, dict) and isinstance(res := e.get("resource"), dict) and res.get("id")
        ]
        nxt = next_link(bundle, self.cfg.fhir_base)
        if nxt:
            out += self._search(nxt)
        return out

    def _search(self, path: str) -> list[dict]:
        out: list[dict] = []
        for _ in range(MAX_PAGES):
            reply = self.client.request("GET", path)
            if not reply.ok or not isinstance(reply.body, dict):
                raise StoreUnavailable(reply.error or f"HTTP {reply.status}")
            for entry in reply.body.get("entry") or []:
                res = entry.get("resource") or {}
                if isinstance(res, dict) and res.get("id"):
                    out.append(res)
            nxt = next_link(reply.body, self.cfg.fhir_base)  # never a link off the store (our token)
            if not nxt:
                break
            path = nxt
        return out

    def _directory(self, resources: list[dict]) -> dict[str, dict]:
        """The Practitioner/Organization/... resources named as authors (one search per type)."""
        wanted: dict[str, set[str]] = {}
        for res in resources:
            for ref in _people_refs(res):
                rtype, _, rid = ref.partition("/")
                if rtype in NAME_TYPES and is_fhir_id(rid):
                    wanted.setdefault(rtype, set()).add(rid)
        found: dict[str, dict] = {}
        kinds = sorted(wanted)
        if not kinds:
            return found
        try:
            answers = self._searches(
                [f"{t}?_id={','.join(sorted(wanted[t])[:100])}&_count={min(len(wanted[t]), 100)}" for t in kinds]
            )
        except StoreUnavailable:  # names only: the plan still shows
            answers = [[] for _ in kinds]
        for rtype, results in zip(kinds, answers, strict=True):
            for res in results:
                if res.get("resourceType") == rtype:
                    found[f"{rtype}/{res['id']}"] = res
        # A PractitionerRole names its practitioner and organisation: read those too.
        second: dict[str, set[str]] = {}
        for res in list(found.values()):
            if res.get("resourceType") == "PractitionerRole":
                for key in ("practitioner", "organization"):
                    ref = (res.get(key) or {}).get("reference") or ""
                    rtype, _, rid = ref.partition("/")
                    if rtype in NAME_TYPES and is_fhir_id(rid) and ref not in found:
                        second.setdefault(rtype, set()).add(rid)
        for rtype, rids in second.items():
            try:
                for res in self._search(f"{rtype}?_id={','.join(sorted(rids)[:100])}"):
                    found[f"{rtype}/{res['id']}"] = res
            except StoreUnavailable:
                continue
        return found


def _people_refs(res: dict) -> list[str]:
    refs = []
    if res.get("resourceType") == "Provenance":
        for agent in res.get("agent") or []:
            for key in ("who", "onBehalfOf"):
                refs.append((agent.get(key) or {}).get("reference") or "")
    else:
        for key in ("performer", "author", "requester", "owner", "recorder", "expressedBy"):
            value = res.get(key)
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, dict):
                    refs.append(item.get("reference") or "")
        for p in res.get("participant") or []:
            for key in ("member", "onBehalfOf"):
                refs.append((p.get(key) or {}).get("reference") or "")
    return [r for r in refs if r and "/" in r and "://" not in r]


def _author_agent(prov: dict) -> dict | None:
    agents = prov.get("agent") or []
    for agent in agents:
        if any(c.get("code") == "author" for c in (agent.get("type") or {}).get("coding", [])):
            return agent
    return agents[0] if agents else None


def _author_field(resource: dict) -> str | None:
    for key in ("author", "recorder", "requester", "performer", "asserter"):
        value = resource.get(key)
        first = value[0] if isinstance(value, list) and value else value
        if isinstance(first, dict) and (first.get("reference") or "").startswith(("Practitioner", "Organization")):
            return first["reference"]
    return None


def _source_ods(source: str | None) -> str | None:
    prefix = canonical.source_uri("")
    if isinstance(source, str) and source.startswith(prefix):
        return source[len(prefix) :].split("#", 1)[0] or None
    return None


def _target_key(reference: str | None) -> str | None:
    if not reference or "://" in reference:
        return None
    parts = reference.split("/")
    return "/".join(parts[:2]) if len(parts) >= 2 else None


# --- the local side --------------------------------------------------------------------------
def merge(
    patient_ref: str, local_rows, read: StoreRead | None, pending: frozenset[str]
) -> tuple[PatientRecords, frozenset[str], dict[str, dict]]:
    """(the merged records, the refs shown in the store's version, newest Provenance per target)."""
    merged: dict[str, tuple[str, str, int, dict]] = {}
    store_refs = set()
    if read is not None:
        for row in read.rows:
            merged[f"{row[0]}/{row[1]}"] = row
            store_refs.add(f"{row[0]}/{row[1]}")
    provenance: list[dict] = list(read.provenance) if read is not None else []
    for row in local_rows:
        rtype, rid, version, resource = row
        ref = f"{rtype}/{rid}"
        if rtype == "Provenance":
            provenance.append(resource)
            continue
        if ref in pending or ref not in merged:
            merged[ref] = (rtype, rid, version, resource)
            store_refs.discard(ref)
    newest: dict[str, dict] = {}
    for prov in provenance:
        if is_confirmation(prov):  # an agency confirming an item did not record the plan
            continue
        for target in prov.get("target") or []:
            key = _target_key((target or {}).get("reference"))
            if key and (key not in newest or (prov.get("recorded") or "") >= (newest[key].get("recorded") or "")):
                newest[key] = prov
    return PatientRecords(patient_ref, list(merged.values())), frozenset(store_refs), newest


# --- per-launch cache ------------------------------------------------------------------------
@dataclass
class _Entry:
    patient_ref: str
    read_at: float  # when the read started: a change announced after this makes it stale
    unsynced_ids: tuple[int, ...]
    read: StoreRead | None = None
    failed: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    finished_at: float = 0.0  # perf_counter() when the read ended (the benchmark's launch-to-ready)

    def finish(self, read: StoreRead | None, failed: bool) -> None:
        self.read, self.failed, self.finished_at = read, failed, time.perf_counter()
        self.done.set()


_cache: OrderedDict[str, _Entry] = OrderedDict()
_lock = threading.Lock()
#: Reads started at launch completion run here (a few at a time: the store is shared).
_background = ThreadPoolExecutor(8, thread_name_prefix="shared-read")
#: How long a Summary waits for a read already in flight before it says "still loading".
LOADING_WAIT = 0.06


def reader_for(app) -> SharedStoreReader | None:
    """The app's shared-store reader (built once), or None when ``[shared_store]`` is not configured."""
    cfg = app.extensions["thrive"].config.shared_store
    if cfg is None:
        return None
    found = app.extensions.get(EXTENSION_KEY)
    if found is None:
        with _lock:
            found = app.extensions.get(EXTENSION_KEY)
            if found is None:
                found = app.extensions[EXTENSION_KEY] = SharedStoreReader(cfg)
    return found


def forget(launch_id: str) -> None:
    """Drop a launch's cached read (the next Summary reads the store again)."""
    with _lock:
        _cache.pop(launch_id, None)


def _remember(launch_id: str, entry: _Entry) -> None:
    with _lock:
        _cache[launch_id] = entry
        _cache.move_to_end(launch_id)
        while len(_cache) > _MAX_LAUNCHES:
            _cache.popitem(last=False)


def _run_read(reader: SharedStoreReader, entry: _Entry, patient_id: str, nhs_number: str | None) -> None:
    try:
        entry.finish(reader.read(patient_id, nhs_number), False)
    except Exception as exc:  # network, token, odd answer: the Summary still answers
        log.warning("shared store could not be read for the Summary (%s)", type(exc).__name__)
        entry.finish(None, True)


def max_age(app, reader: SharedStoreReader, now: float) -> float:
    """The cache's max age now: long while notifications arrive (a change drops the entry at once),
    the configured ``max_age_seconds`` otherwise. See the module docstring."""
    cfg = reader.cfg
    if cfg.notifications:
        if app.extensions["thrive"].changes.subscription_active(cfg.channel_alive_seconds, now=now):
            return cfg.subscribed_max_age_seconds
    return cfg.max_age_seconds


def prefetch(app, launch) -> None:
    """Start reading ``launch``'s young person from the store in the background (at launch
    completion), so the first Summary finds it read or nearly. Never raises."""
    try:
        reader = reader_for(app)
        if reader is None or not launch.patient_id or not is_fhir_id(launch.patient_id):
            return
        patient_ref = f"Patient/{launch.patient_id}"
        unsynced_ids, _pending = outbox.unsynced_for_patient(app.extensions["thrive"].local_store, patient_ref)
        entry = _Entry(patient_ref, time.time(), unsynced_ids)
        _remember(launch.launch_id, entry)
        nhs = (launch.banner or {}).get("nhs_number")
        _background.submit(_run_read, reader, entry, launch.patient_id, nhs)
    except Exception as exc:  # the Summary reads it itself
        log.warning("shared store read could not be started at launch (%s)", type(exc).__name__)


def loading(launch) -> bool:
    """The launch's read started at launch completion has not finished yet."""
    with _lock:
        entry = _cache.get(launch.launch_id)
    return entry is not None and entry.patient_ref == launch.patient_ref and not entry.done.is_set()


def _fresh(app, reader: SharedStoreReader, entry: _Entry, launch, unsynced_ids, now: float) -> bool:
    if entry.patient_ref != launch.patient_ref:
        return False
    if entry.failed:
        return now - entry.read_at < min(FAILURE_TTL, reader.cfg.max_age_seconds)
    if entry.unsynced_ids != unsynced_ids or now - entry.read_at >= max_age(app, reader, now):
        return False
    ids = entry.read.patient_ids if entry.read is not None else (launch.patient_id,)
    return not app.extensions["thrive"].changes.changed_after(ids, entry.read_at)


def for_launch(launch, *, now: float | None = None) -> SharedHistory | None:
    """The Summary's shared history for ``launch`` (None without a ``[shared_store]``); never raises
    for a store problem (status ``unavailable``), and says ``loading`` while the read started at
    launch completion has not finished. See the module docstring for the freshness rule."""
    from flask import current_app

    app = current_app
    reader = reader_for(app)
    if reader is None or not launch.patient_ref:
        return None
    now = time.time() if now is None else now
    store = launch.local_store
    unsynced_ids, pending = outbox.unsynced_for_patient(store, launch.patient_ref)
    # Our own saves are read before any wait for the store: a first open that waits for the read in
    # flight then only merges and draws, so its local reads are not added after the wait.
    local_rows = [tuple(r) for r in store.for_patient_versioned(launch.patient_ref)]
    with _lock:
        entry = _cache.get(launch.launch_id)
    loading = False
    if entry is not None and not entry.done.is_set() and entry.patient_ref == launch.patient_ref:
        loading = not entry.done.wait(LOADING_WAIT)
    if not loading and (entry is None or not _fresh(app, reader, entry, launch, unsynced_ids, now)):
        entry = _Entry(launch.patient_ref, now, unsynced_ids)
        _run_read(reader, entry, launch.patient_id, (launch.banner or {}).get("nhs_number"))
        _remember(launch.launch_id, entry)
    read = entry.read if entry is not None and not loading else None
    records, store_refs, prov = merge(launch.patient_ref, local_rows, read, pending)
    status = "loading" if loading else ("unavailable" if entry is None or entry.failed else "ok")
    return SharedHistory(
        records=records,
        status=status,
        pending=pending,
        store_refs=store_refs,
        directory=dict(read.directory) if read else {},
        _prov=prov,
        confirmations=[p for p in read.provenance if is_confirmation(p)] if read else [],
    )


__all__ = [
    "Recorded",
    "SharedHistory",
    "SharedStoreReader",
    "StoreUnavailable",
    "for_launch",
    "forget",
    "loading",
    "max_age",
    "merge",
    "prefetch",
]
