"""The REST side of Subscriptions: create, read, update, delete, search, ``$status`` and ``$events``.

Who may see a Subscription: only the client that created it (same client id, organisation and user
as the token that created it; with access control off, anyone). Anyone else gets exactly the answer
for an id that does not exist, so one subscriber cannot learn another's endpoint or event counts.
The creator's grant is recorded with the subscription: planning judges every event by what that
grant may read (events.visible).

Subscriptions are not accepted inside transaction or batch Bundles (bundles.py refuses them): the
handshake and the recorded owner belong to a single, authenticated request.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

from sqlalchemy.engine import Connection

from .. import access, rawsql
from ..errors import FhirError
from ..fhirdates import utcnow
from ..service import Ctx, Result, Store, version_headers
from ..writes import WriteOp, apply
from . import spec as specs
from .notification import Event, notification_bundle, status_bundle

#: Events in one ``$events`` answer; ask again from the next number for more.
MAX_QUERY_EVENTS = 100


class SubscriptionApi:
    def __init__(self, store: Store, allowlist: tuple[str, ...], wake: Callable[[], None]):
        self.store = store
        self.allowlist = allowlist
        self.wake = wake
        self.sql = rawsql.Runner(store.engine)

    # --- routing ---------------------------------------------------------------------------------

    def route(self, ctx: Ctx, method: str, segs: list[str], params, body: Callable[[], object]) -> Result:
        n = len(segs)
        if n == 1:
            if method in ("GET", "HEAD"):
                return self.search(ctx, params)
            if method == "POST":
                return self.create(ctx, body())
            raise FhirError(405, f"{method} is not allowed here", "not-supported")
        sid = segs[1]
        if sid.startswith("$") or sid.startswith("_"):
            raise FhirError(404, f"{sid} is not supported on Subscription", "not-supported")
        specs.check_id(sid)
        if n == 2:
            if method in ("GET", "HEAD"):
                return self.read(ctx, sid)
            if method == "PUT":
                return self.update(ctx, sid, body())
            if method == "DELETE":
                return self.delete(ctx, sid)
            raise FhirError(405, f"{method} is not allowed here", "not-supported")
        op = segs[2]
        if n == 3 and op in ("$status", "$events"):
            if method not in ("GET", "POST"):
                raise FhirError(405, f"{method} is not allowed here", "not-supported", headers={"Allow": "GET, POST"})
            if op == "$status":
                return self.status(ctx, sid)
            extra = _operation_params(_optional(body)) if method == "POST" else []
            return self.events(ctx, sid, list(params) + extra)
        if op == "_history" and n in (3, 4) and method in ("GET", "HEAD"):
            self.owned(ctx, sid, "read")
            return (
                self.store.history(ctx, "Subscription", sid, params)
                if n == 3
                else self.store.vread(ctx, "Subscription", sid, segs[3])
            )
        raise FhirError(404, "Unsupported URL for this server", "not-supported")

    # --- ownership -------------------------------------------------------------------------------

    def owned(self, ctx: Ctx, sid: str, interaction: str, dbapi=None) -> tuple:
        """The subscription row if the caller created it; otherwise the 404 of a missing id."""
        access.require(ctx.grant, "Subscription", interaction, None)
        query = (
            "SELECT id, owner_client, owner_org, owner_user, headers, status, events_total, content "
            "FROM subscriptions WHERE id = ?",
            (sid,),
        )
        if dbapi is None:
            with self.sql.reading(snapshot=False) as raw:
                rows = self.sql.fetch(raw, *query)
        else:
            rows = self.sql.fetch(dbapi, *query)
        if not rows or not _is_owner(ctx, rows[0]):
            raise FhirError(404, f"Subscription/{sid} is not known", "not-found")
        return rows[0]

    # --- interactions ----------------------------------------------------------------------------

    def create(self, ctx: Ctx, body) -> Result:
        access.require(ctx.grant, "Subscription", "create", None)
        spec = specs.check(body, self.allowlist)
        sid = str(uuid.uuid4())
        resource = _stored(body, sid, spec.status)
        grant = ctx.grant

        def run(conn: Connection) -> Result:
            op = WriteOp("POST", "Subscription", sid, resource)
            now = utcnow()
            apply(conn, [op], now, ctx.base)
            sql, dbapi = rawsql.for_connection(conn)
            sql.run(
                dbapi,
                "INSERT INTO subscriptions (id, owner_client, owner_org, owner_user, owner_patient, owner_scopes, "
                "endpoint, headers, content, heartbeat, filters, ends, status, events_total, delivered_through, "
                "failures, base, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, 0, ?, ?)",
                (
                    sid,
                    grant.client_id if grant else None,
                    grant.organization if grant else None,
                    grant.user if grant else None,
                    grant.patient if grant else None,
                    " ".join(s.raw for s in grant.scopes) if grant else None,
                    *_settings(spec),
                    spec.status,
                    ctx.base,
                    now,
                ),
            )
            return _write_result(ctx, op)

        result = self.store.run_write(run)
        self.wake()  # handshake now
        return result

    def update(self, ctx: Ctx, sid: str, body) -> Result:
        row = self.owned(ctx, sid, "update")
        spec = specs.check(body, self.allowlist, rid=sid, old_headers=tuple(json.loads(row[4])))
        resource = _stored(body, sid, spec.status)

        def run(conn: Connection) -> Result:
            sql, dbapi = rawsql.for_connection(conn)
            self.owned(ctx, sid, "update", dbapi)  # still there, inside the transaction
            op = WriteOp("PUT", "Subscription", sid, resource)
            apply(conn, [op], utcnow(), ctx.base)
            # requested: handshake again and resume from the first unacknowledged event (IG: how a
            # client brings a subscription back from error); off: pause, events still numbered.
            sql.run(
                dbapi,
                "UPDATE subscriptions SET endpoint = ?, headers = ?, content = ?, heartbeat = ?, filters = ?, ends = ?, "
                "status = ?, failures = 0, next_attempt = NULL, lease_until = NULL WHERE id = ?",
                (*_settings(spec), spec.status, sid),
            )
            return _write_result(ctx, op)

        result = self.store.run_write(run)
        self.wake()
        return result

    def delete(self, ctx: Ctx, sid: str) -> Result:
        self.owned(ctx, sid, "delete")

        def run(conn: Connection) -> Result:
            sql, dbapi = rawsql.for_connection(conn)
            self.owned(ctx, sid, "delete", dbapi)
            op = WriteOp("DELETE", "Subscription", sid)
            apply(conn, [op], utcnow(), ctx.base)
            sql.run(dbapi, "DELETE FROM subscription_deliveries WHERE sub_id = ?", (sid,))
            sql.run(dbapi, "DELETE FROM subscriptions WHERE id = ?", (sid,))
            return Result(204, None, {"ETag": f'W/"{op.version}"'} if op.version else {})

        return self.store.run_write(run)

    def read(self, ctx: Ctx, sid: str) -> Result:
        self.owned(ctx, sid, "read")
        head = self.store._current(None, "Subscription", sid)
        if head is None or head.deleted:
            raise FhirError(404, f"Subscription/{sid} is not known", "not-found")
        return Result(
            200, head.content, version_headers(ctx.base, "Subscription", sid, head.version_id, head.last_updated)
        )

    def search(self, ctx: Ctx, params) -> Result:
        """The caller's own subscriptions (``_id`` and ``status`` may narrow them)."""
        access.require(ctx.grant, "Subscription", "search", None)
        wanted_ids, wanted_status = None, None
        for name, value in params:
            if name == "_id":
                wanted_ids = set(value.split(","))
            elif name == "status":
                wanted_status = set(value.split(","))
            elif name not in ("_format", "_count", "_pretty", "_summary"):
                raise FhirError(400, f"Subscription searches take _id and status only, not '{name}'", "not-supported")
        with self.sql.reading() as raw:
            rows = self.sql.fetch(
                raw, "SELECT id, owner_client, owner_org, owner_user, status FROM subscriptions ORDER BY created, id"
            )
            mine = [
                r[0]
                for r in rows
                if _is_owner(ctx, r)
                and (wanted_ids is None or r[0] in wanted_ids)
                and (wanted_status is None or r[4] in wanted_status)
            ]
            entries = []
            for sid in mine[:1000]:
                head = self.store._current(None, "Subscription", sid)
                if head is not None and not head.deleted and head.content:
                    entries.append(
                        {
                            "fullUrl": f"{ctx.base}/Subscription/{sid}",
                            "resource": json.loads(head.content),
                            "search": {"mode": "match"},
                        }
                    )
        bundle = {
            "resourceType": "Bundle",
            "id": str(uuid.uuid4()),
            "type": "searchset",
            "total": len(entries),
            "link": [{"relation": "self", "url": f"{ctx.base}/Subscription"}],
            "entry": entries,
        }
        return Result(200, bundle)

    def status(self, ctx: Ctx, sid: str) -> Result:
        row = self.owned(ctx, sid, "read")
        return Result(200, status_bundle(ctx.base, sid, row[5], int(row[6])))

    def events(self, ctx: Ctx, sid: str, params) -> Result:
        """``$events``: the numbered events in [eventsSinceNumber, eventsUntilNumber], oldest first."""
        row = self.owned(ctx, sid, "read")
        total = int(row[6])
        since, until, content = 1, total, row[7]
        for name, value in params:
            if name in ("eventsSinceNumber", "eventsUntilNumber"):
                number = _number(name, value)
                since, until = (number, until) if name == "eventsSinceNumber" else (since, number)
            elif name == "content":
                if value == "full-resource":
                    raise specs.unprocessable("$events never returns full resources (use id-only)", "content")
                if value not in specs.CONTENTS:
                    raise FhirError(400, "content must be id-only or empty", "invalid")
                content = value
            elif name not in ("_format", "_pretty"):
                raise FhirError(400, f"Unsupported $events parameter '{name}'", "not-supported")
        with self.sql.reading(snapshot=False) as raw:
            found = [
                Event(n, self.sql.dt(created), *rest)
                for n, created, *rest in self.sql.fetch(
                    raw,
                    "SELECT number, created, res_type, res_id, version_id, method, patient_key "
                    "FROM subscription_deliveries WHERE sub_id = ? AND number >= ? AND number <= ? "
                    "ORDER BY number LIMIT ?",
                    (sid, since, until, MAX_QUERY_EVENTS),
                )
            ]
        return Result(200, notification_bundle(ctx.base, sid, row[5], "query-event", total, found, content))


def _is_owner(ctx: Ctx, row) -> bool:
    grant = ctx.grant
    if grant is None:
        return True
    return (row[1], row[2], row[3]) == (grant.client_id, grant.organization, grant.user)


def _stored(body: dict, sid: str, status: str) -> dict:
    resource = {k: v for k, v in body.items() if k not in ("id", "error")}
    resource.update({"resourceType": "Subscription", "id": sid, "status": status})
    return specs.masked(resource)


def _settings(spec: specs.Spec) -> tuple:
    return (
        spec.endpoint,
        json.dumps(list(spec.headers)),
        spec.content,
        spec.heartbeat,
        json.dumps([[f.rtype, f.patient] for f in spec.filters]),
        spec.ends,
    )


def _write_result(ctx: Ctx, op: WriteOp) -> Result:
    headers = version_headers(ctx.base, op.rtype, op.rid, op.version or 0, op.last_updated, location=True)
    return Result(op.status, op.content, headers)


def _number(name: str, value) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise FhirError(400, f"{name} must be a whole number", "invalid") from None
    if not 0 <= number <= 2**62:
        raise FhirError(400, f"{name} is out of range", "invalid")
    return number


def _optional(body: Callable[[], object]):
    """The request body, or None when there is none (an operation POSTed without Parameters)."""
    try:
        return body()
    except FhirError as exc:
        if exc.status == 400 and exc.code == "required":
            return None
        raise


def _operation_params(body) -> list[tuple[str, str]]:
    """The name/value pairs of a Parameters body for ``$events`` (none without a body)."""
    if body is None:
        return []
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise FhirError(400, "POST $events takes a Parameters resource", "structure")
    out = []
    for p in body.get("parameter") or []:
        if not isinstance(p, dict) or not isinstance(p.get("name"), str):
            raise FhirError(400, "Each parameter needs a name", "structure")
        values = [v for k, v in p.items() if k.startswith("value")]
        if len(values) != 1 or isinstance(values[0], (dict, list)):
            raise FhirError(400, f"Parameter {p['name']} needs one simple value", "structure")
        out.append((p["name"], str(values[0])))
    return out
