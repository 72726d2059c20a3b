"""An AuditEvent for every request made with an agency token, refused ones included.

Why here: the store is where an agency's read happens, so it is the one place that sees every read,
whichever app (or none) the agency uses. The record says who (the worker's ``fhirUser`` and the
client), for which organisation, about which young person, what (the interaction, the resources
returned or written, the query), when, and the outcome: ``0`` success, ``4`` refused or not found
(with the reason: not shared, not found, the error's own text), ``8`` a server error. A read refused
because the young person is not shared answers the agency as a missing id, but the audit names the
young person: the record holder needs to see probing, and agency tokens never see an AuditEvent
about a young person not shared with them (AuditEvents sit in that young person's compartment).

Shape: the project's ``thrive-read-audit`` profile (IHE Basic Audit Log Patterns for RESTful
operations): type ``rest``, subtype the FHIR restful interaction, agent = the user (requestor) and
the organisation, entity = the resources, the young person with role 1 (Patient), and the query.
It holds references only: no health data.

When it is written (docs/consent-enforcement.md, "Audit"):

- a **write** (single resource or transaction Bundle) writes its AuditEvent in the write's own
  transaction (:meth:`RequestAudit.within`): the change and its record commit together or not at all,
  so a failed audit never leaves a committed change behind a 500;
- every other request (reads, searches, refused or failed requests, batches) hands its AuditEvent
  to the :class:`AuditTrail`, which commits the events of concurrent requests together (group
  commit) and answers each request only once its own event is committed. Nothing is returned that
  is not on the audit trail, and 20 agency users cost one short write transaction per batch rather
  than one each.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import threading
import uuid
from typing import Any
from urllib.parse import unquote

from ..canonical import PROFILE_READ_AUDIT
from . import rawsql
from .errors import FhirError
from .fhirdates import to_instant, utcnow
from .writes import WriteOp, insert_new

log = logging.getLogger("thrive_fhir.store")

AUDIT_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL_INTERACTION = "http://hl7.org/fhir/restful-interaction"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
PARTICIPATION_TYPE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
ACTION = {"create": "C", "read": "R", "vread": "R", "history-instance": "R", "update": "U", "delete": "D"}
MAX_ENTITIES = 200
MAX_RESOURCES = 20


def interaction(method: str, segs: list[str]) -> str:
    """The FHIR restful interaction a request is (``search-type``, ``read``, ...), from its shape."""
    n = len(segs)
    if n == 0:
        return "batch" if method == "POST" else "search-system"
    if any(s.startswith("$") for s in segs) or segs[0] == "_export":
        return "operation"
    if segs[0] == "_history":
        return "history-system"
    if n == 1:
        return {"POST": "create", "PUT": "update", "DELETE": "delete"}.get(method, "search-type")
    if segs[1] == "_search":
        return "search-type"
    if segs[1] == "_history":
        return "history-type"
    if n == 2:
        return {"PUT": "update", "DELETE": "delete", "POST": "create"}.get(method, "read")
    return "vread" if n == 4 else "history-instance"


class AuditTrail:
    """Commits agency AuditEvents in groups; each caller returns only once its own event is committed.

    Group commit without a thread of its own: a caller that finds no commit running leads: it takes
    the events waiting (its own first, up to :attr:`MAX_BATCH`) and writes them in one transaction,
    while later callers wait on their own event. When it is done it wakes the callers it committed
    for and hands the lead to the first still waiting, so each caller is woken exactly once. The
    queue is bounded by the server's threads (every caller waits). A failed batch is retried one
    event at a time, so one bad event fails only its own request.
    """

    MAX_BATCH = 64

    def __init__(self, store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._queue: list[_Pending] = []
        self._committing = False

    def commit(self, op: WriteOp, base: str | None) -> None:
        """Write ``op`` (a new AuditEvent); returns once committed, raises if it could not be."""
        mine = _Pending(op)
        with self._lock:
            self._queue.append(mine)
            mine.lead = not self._committing
            self._committing = True
        if not mine.lead:
            mine.ready.wait()
        if mine.lead:  # at the head of the queue: commit for everyone waiting
            with self._lock:
                batch, self._queue = self._queue[: self.MAX_BATCH], self._queue[self.MAX_BATCH :]
            try:
                self._write(batch, base)
            finally:
                with self._lock:
                    following = self._queue[0] if self._queue else None
                    if following is None:
                        self._committing = False
                    else:
                        following.lead = True
                for pending in batch:
                    pending.ready.set()
                if following is not None:
                    following.ready.set()
        if mine.error is not None:
            raise mine.error

    def _write(self, batch: list[_Pending], base: str | None) -> None:
        try:
            self._insert([p.op for p in batch], base)
            return
        except Exception as exc:
            if len(batch) == 1:
                batch[0].error = exc
                return
        for pending in batch:  # one bad event must not fail the others' requests
            try:
                self._insert([pending.op], base)
            except Exception as exc:
                pending.error = exc

    def _insert(self, ops: list[WriteOp], base: str | None) -> None:
        store = self.store
        with store._write_lock, store.writer.begin() as conn:
            insert_new(conn, ops, base)


class _Pending:
    __slots__ = ("error", "lead", "op", "ready")

    def __init__(self, op: WriteOp) -> None:
        self.op, self.lead = op, False
        self.ready = threading.Event()
        self.error: Exception | None = None


def audit_op(event: dict, recorded) -> WriteOp:
    """The write of a new AuditEvent recorded at ``recorded``, for :func:`~.writes.insert_new`."""
    op = WriteOp("POST", "AuditEvent", event["id"], event)
    op.last_updated = recorded
    return op


class RequestAudit:
    """Collects what one agency request touched and writes its AuditEvent."""

    def __init__(self, store, ctx, agency, method: str, segs: list[str], query: str):
        self.store, self.ctx, self.agency = store, ctx, agency
        self.method, self.segs, self.query = method, segs, query
        self.subtype = interaction(method, segs)
        self.written = False  # by within(), in a write's transaction that has committed by done()

    # --- outcome -------------------------------------------------------------------------------

    def within(self, conn, result) -> None:
        """Write this request's AuditEvent inside the transaction of its write (``conn``), so both
        commit or neither; a failure refuses the write (500, nothing changed)."""
        try:
            dbapi = rawsql.for_connection(conn)[1]
            subtype, entities = self._outcome(result, dbapi)
            status = result.status
            event, now = self._event(
                subtype, entities, "0" if status < 400 else "4", None if status < 400 else f"HTTP {status}"
            )
            insert_new(conn, [audit_op(event, now)], self.ctx.base)
        except Exception as exc:
            log.error("could not write the agency AuditEvent of a write (%s)", type(exc).__name__)
            raise FhirError(500, "The change could not be audited, so it was not made", "exception") from None
        self.written = True

    def done(self, result) -> None:
        if self.written:
            return
        subtype, entities = self._outcome(result, None)
        status = getattr(result, "status_code", None) or result.status
        self._write(subtype, entities, "0" if status < 400 else "4", None if status < 400 else f"HTTP {status}")

    def _outcome(self, result, dbapi) -> tuple[str, list[tuple[str, str, str | None]]]:
        """The interaction and the resources (with their young person) a finished request touched."""
        entities: list[tuple[str, str, str | None]] = []
        if getattr(result, "audit", None):
            entities = list(result.audit[1])
        elif hasattr(result, "headers") and not hasattr(result, "status_code"):
            refs = self._written_refs(result) or self._returned_refs(result) or self._url_ref()
            entities = self._looked_up(refs, dbapi)
        subtype = self.subtype
        if (
            subtype == "batch"
            and isinstance(getattr(result, "body", None), str)
            and '"type":"transaction-response"' in result.body
        ):
            subtype = "transaction"
        return subtype, entities

    def failed(self, exc: BaseException) -> None:
        status = exc.status if isinstance(exc, FhirError) else 500
        entities = self._looked_up(self._url_ref())
        if isinstance(exc, FhirError) and exc.audit_patient:
            entities.append(("Patient", exc.audit_patient, exc.audit_patient))
        if isinstance(exc, FhirError):
            hidden = status == 404 and any(p for _t, _i, p in entities)
            why = (
                "Refused: the young person's record is not shared with this organisation"
                if hidden
                else f"HTTP {status}: {exc.message}"
            )
        else:
            why = "HTTP 500: server error"
        try:
            self._write(self.subtype, entities, "8" if status >= 500 else "4", why)
        except FhirError:
            if isinstance(exc, FhirError) and status >= 500:
                return  # the request's own 500 already says what happened (and returns nothing)
            raise

    # --- what was touched ----------------------------------------------------------------------

    def _url_ref(self) -> list[tuple[str, str]]:
        segs = self.segs
        if len(segs) >= 2 and not segs[1].startswith(("_", "$")) and segs[0][:1].isupper():
            return [(segs[0], segs[1])]
        return []

    @staticmethod
    def _written_refs(result) -> list[tuple[str, str]]:
        refs = []
        location = (result.headers or {}).get("Location") or ""
        if location:
            parts = location.split("/")
            if "_history" in parts:
                i = parts.index("_history")
                refs.append((parts[i - 2], parts[i - 1]))
        body = _bundle(result.body)
        if body is not None:
            for entry in body.get("entry") or []:
                loc = ((entry or {}).get("response") or {}).get("location") or ""
                parts = loc.split("/")
                if "_history" in parts:
                    i = parts.index("_history")
                    refs.append((parts[i - 2], parts[i - 1]))
        return refs

    @staticmethod
    def _returned_refs(result) -> list[tuple[str, str]]:
        """Resources a batch/transaction answer carries (its GET entries, searches included)."""
        body = _bundle(result.body)
        if body is None:
            return []
        refs: list[tuple[str, str]] = []

        def walk(resource) -> None:
            if not isinstance(resource, dict) or len(refs) >= MAX_ENTITIES:
                return
            if resource.get("resourceType") == "Bundle":
                for entry in resource.get("entry") or []:
                    walk((entry or {}).get("resource"))
            elif resource.get("resourceType") not in (None, "OperationOutcome") and resource.get("id"):
                refs.append((resource["resourceType"], resource["id"]))

        for entry in body.get("entry") or []:
            walk((entry or {}).get("resource"))
        return refs

    def _looked_up(self, refs: list[tuple[str, str]], dbapi=None) -> list[tuple[str, str, str | None]]:
        """``refs`` with the young person each belongs to (the store's compartment, deleted or not);
        ``dbapi``: read inside that connection's transaction (a write's, which sees its own rows)."""
        if not refs:
            return []
        refs = refs[:MAX_ENTITIES]
        sql = self.store.sql
        found: dict[tuple[str, str], str | None] = {}
        by_type: dict[str, list[str]] = {}
        for t, i in refs:
            by_type.setdefault(t, []).append(i)
        with contextlib.nullcontext(dbapi) if dbapi is not None else sql.reading(snapshot=False) as raw:
            for t, ids in by_type.items():
                for rid, pkey in sql.fetch(
                    raw,
                    "SELECT res_id, patient_key FROM resource_versions WHERE res_type = ? "  # noqa: S608 - only '?' placeholders and our own SQL are interpolated; values are bound
                    f"AND res_id IN ({rawsql.placeholders(len(ids))}) AND is_current",
                    (t, *ids),
                ):
                    found[(t, rid)] = pkey
        return [(t, i, found.get((t, i))) for t, i in refs]

    # --- the event -------------------------------------------------------------------------------

    def _event(self, subtype: str, entities, outcome: str, why: str | None):
        now = utcnow()
        event = build_event(
            self.agency,
            subtype,
            entities,
            to_instant(now),
            outcome,
            why,
            unquote(self.query) if self.query else None,
            self._path(),
        )
        return event, now

    def _write(self, subtype: str, entities, outcome: str, why: str | None) -> None:
        """Through the :class:`AuditTrail`: returns once the event is committed."""
        event, now = self._event(subtype, entities, outcome, why)
        try:
            self.store.audit_trail.commit(audit_op(event, now), self.ctx.base)
        except Exception as exc:
            log.error("could not write the agency AuditEvent (%s)", type(exc).__name__)
            if subtype == "batch" and self.method == "POST":
                # A batch's entries commit one by one before its AuditEvent: say what may have happened.
                message = "The batch could not be audited; nothing was returned, but its writes may have been made"
            else:
                message = "The access could not be audited; nothing was returned or changed"
            raise FhirError(500, message, "exception") from None

    def _path(self) -> str:
        return "/" + "/".join(self.segs)


def _bundle(body) -> dict | None:
    """A Bundle answer as a dict (answers are often JSON text already), else None."""
    if isinstance(body, str) and body.startswith('{"resourceType":"Bundle"'):
        try:
            body = json.loads(body)
        except ValueError:
            return None
    return body if isinstance(body, dict) and body.get("resourceType") == "Bundle" else None


def build_event(
    agency, subtype: str, entities, recorded: str, outcome: str, why: str | None, query: str | None, path: str
) -> dict:
    """The AuditEvent for one agency request (references only)."""
    agents = []
    if agency.user:
        agents.append(
            {
                "type": {
                    "coding": [{"system": PARTICIPATION_TYPE, "code": "IRCP", "display": "information recipient"}]
                },
                "who": {"reference": agency.user},
                "requestor": True,
                "altId": agency.client_id,
            }
        )
    if agency.organization:
        agents.append({"who": {"reference": agency.organization}, "requestor": not agency.user})
    if not agents:
        agents.append(
            {
                "who": {"identifier": {"system": "urn:ietf:params:oauth:client-id", "value": agency.client_id}},
                "requestor": True,
            }
        )
    entity: list[dict[str, Any]] = []
    listed: set[str] = set()
    # Every young person is named (``thrive audit --patient`` finds the event by them); the resources
    # themselves up to MAX_RESOURCES, the query saying what was asked. Each entity is indexed when
    # the event is written, and a 50-row search listing all of them doubled the cost of the request.
    for t, i, _p in entities[:MAX_ENTITIES]:
        ref = f"{t}/{i}"
        if t == "Patient" or ref in listed or len(listed) >= MAX_RESOURCES:
            continue
        listed.add(ref)
        entity.append({"what": {"reference": ref}})
    for p in sorted({p for _t, _i, p in entities if p}):
        entity.append(
            {"what": {"reference": f"Patient/{p}"}, "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"}}
        )
    entity.append(
        {
            "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
            "description": path[:256],
            **({"query": base64.b64encode(query.encode()).decode()} if query else {}),
        }
    )
    event = {
        "resourceType": "AuditEvent",
        "id": str(uuid.uuid4()),
        "meta": {"profile": [PROFILE_READ_AUDIT]},
        "type": {"system": AUDIT_EVENT_TYPE, "code": "rest", "display": "RESTful Operation"},
        "subtype": [{"system": RESTFUL_INTERACTION, "code": subtype}],
        "action": ACTION.get(subtype, "E"),
        "recorded": recorded,
        "outcome": outcome,
        "purposeOfEvent": [{"coding": [{"system": ACT_REASON, "code": "TREAT", "display": "treatment"}]}],
        "agent": agents,
        "source": {
            "observer": {"display": "THRIVE-FHIR embedded FHIR store"},
            "type": [{"system": SOURCE_TYPE, "code": "4", "display": "Application Server"}],
        },
        "entity": entity,
    }
    if why:
        event["outcomeDesc"] = why
    return event


def begin(store, ctx, method: str, segs: list[str], query: str) -> RequestAudit | None:
    """A :class:`RequestAudit` when the request is made with an agency token, else None."""
    agency = store.consent.agency(ctx.grant)
    if agency is None:
        return None
    return RequestAudit(store, ctx, agency, method, segs, query)


__all__ = ["AuditTrail", "RequestAudit", "audit_op", "begin", "build_event", "interaction"]
