"""The store's FHIR interactions, independent of HTTP: read, write, search, history.

Every method takes a :class:`Ctx` (base URL, the caller's Grant, preferences) and returns a
:class:`Result` or raises :class:`FhirError`. Resource JSON is kept as text from the database to the
socket (search Bundles are assembled around the stored text), so reads never re-parse resources.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import and_, false, func, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from ..smart_scopes import Grant
from . import access, agency_writes, search, validation_hook
from .agency_audit import AuditTrail, RequestAudit
from .consent_gate import ConsentGate
from .errors import FhirError, issue, operation_outcome
from .fhirdates import date_range, http_date, to_instant, utcnow
from .limits import MAX_SEQ, MAX_VERSION_ID, bounded_int
from .rawsql import Runner, placeholders
from .schema import resource_versions as rv
from .search_params import reference_key
from .statistics import StatisticsKeeper
from .validation_hook import ID_RE
from .writes import WriteOp, apply, dumps

log = logging.getLogger("thrive_fhir.store")


@dataclass
class Ctx:
    base: str
    grant: Grant | None = None
    strict: bool = False
    prefer_return: str = ""
    #: An agency request's :class:`~.agency_audit.RequestAudit`: a write records it in its own
    #: transaction (``audit.within``), so the change and its AuditEvent commit together or not at all.
    audit: RequestAudit | None = None


@dataclass
class Result:
    status: int
    body: dict | str | None = None  # str: JSON text already serialised
    headers: dict[str, str] = field(default_factory=dict)
    audit: tuple[str, list[tuple[str, str, str | None]]] | None = None
    outcome: dict | None = None  # issues to return under Prefer: return=OperationOutcome


class Head(NamedTuple):
    """The current version row of one resource."""

    version_id: int
    last_updated: datetime
    deleted: bool
    patient_key: str | None
    content: str | None


class Match(NamedTuple):
    """A resource found by conditional criteria."""

    res_id: str
    version_id: int
    last_updated: datetime
    content: str | None
    patient_key: str | None


class Included(NamedTuple):
    res_type: str
    res_id: str
    patient_key: str | None
    content: str


def version_headers(base: str, rtype: str, rid: str, version: int, last_updated, location: bool = False) -> dict:
    headers = {"ETag": f'W/"{version}"', "Last-Modified": http_date(last_updated)}
    if location:
        headers["Location"] = f"{base}/{rtype}/{rid}/_history/{version}"
    return headers


def parse_etag(value: str | None) -> int | None:
    """``W/"3"`` (or ``"3"`` or ``3``) -> 3; anything else is a 400, not a silent mismatch."""
    if value is None or value == "":
        return None
    text_ = value.strip()
    if text_.startswith("W/"):
        text_ = text_[2:]
    version = bounded_int(text_.strip('"'), MAX_VERSION_ID)
    if version is None:
        raise FhirError(400, 'If-Match must be a version ETag such as W/"3"', "invalid")
    return version


class Store:
    def __init__(self, engine: Engine, *, validate_on_write: bool | str, resource_types: frozenset[str]):
        self.engine = engine
        self.writer = engine.execution_options(write=True)
        self.validate_mode = validate_on_write
        self.resource_types = resource_types
        self.is_postgres = engine.dialect.name == "postgresql"
        self.sql = Runner(engine)
        # SQLite allows one writer; letting threads queue on a Python lock instead of SQLite's busy
        # handler (which sleeps in 1-100 ms steps) keeps concurrent writers from idling. Another
        # process on the same file is still arbitrated by BEGIN IMMEDIATE + busy_timeout.
        self._write_lock = threading.Lock() if engine.dialect.name == "sqlite" else contextlib.nullcontext()
        self.statistics = StatisticsKeeper(engine)
        self.consent = ConsentGate(engine, None)  # create_app sets the store's custodians (consent_gate)
        #: Called after every committed write (create_app: wakes the subscription dispatcher).
        self.after_commit: Callable[[], None] | None = None
        self.audit_trail = AuditTrail(self)  # agency AuditEvents, group-committed (agency_audit)

    # --- helpers ---------------------------------------------------------------------------------

    def check_type(self, rtype: str) -> None:
        if rtype not in self.resource_types:
            raise FhirError(404, f"Unknown or unsupported resource type '{rtype}'", "not-supported")

    @staticmethod
    def check_id(rid: str) -> None:
        if not ID_RE.match(rid):
            raise FhirError(400, "Resource ids are 1-64 characters of A-Z, a-z, 0-9, '-' and '.'", "invalid")

    def check_body(self, rtype: str, body, rid: str | None = None, *, need_id: bool = False) -> dict:
        if not isinstance(body, dict):
            raise FhirError(400, "The body must be a JSON object holding a FHIR resource", "structure")
        if body.get("resourceType") != rtype:
            raise FhirError(400, f"The body's resourceType must be '{rtype}' for this URL", "invalid")
        if rid is not None:
            if "id" not in body and need_id:
                raise FhirError(400, "The resource in an update must carry its id", "required")
            if "id" in body and body.get("id") != rid:
                raise FhirError(400, "The resource id in the body does not match the id in the URL", "invalid")
        elif "id" in body and not (isinstance(body["id"], str) and ID_RE.match(body["id"])):
            raise FhirError(400, "Invalid resource id in the body", "invalid")
        meta = body.get("meta")
        if meta is not None and not isinstance(meta, dict):
            raise FhirError(400, "meta must be an object", "structure")
        return body

    def validate(self, resource: dict) -> list[tuple] | None:
        """Issue tuples (None when validation is off); raises 422 when validation is on and the
        resource has errors. Turn them into OperationOutcome issues with ``issue_dicts``."""
        if not self.validate_mode:
            return None
        found = validation_hook.issues(resource)
        if self.validate_mode is True and validation_hook.has_errors(found):
            raise FhirError(
                422,
                f"{resource.get('resourceType')} failed validation",
                "processing",
                outcome=validation_hook.outcome_of(found),
            )
        return found

    def run_write(self, fn: Callable[[Connection], Result], *, conflict_status: int | None = None) -> Result:
        """Run ``fn`` in a write transaction; retry lost races unless the caller pinned a version.

        A unique-index violation means another writer got there first: with If-Match that is the
        caller's 412; otherwise the write is simply re-run on the new head. PostgreSQL deadlock and
        serialization failures (SQLSTATE class 40) are always safe to re-run.
        """
        attempts = 8
        for attempt in range(attempts):
            if attempt:
                time.sleep(random.uniform(0, 0.005 * attempt))  # de-synchronise the losers of a race  # noqa: S311 - jitter between retries, not a secret
            try:
                with self._write_lock, self.writer.begin() as conn:
                    result = fn(conn)
                self.statistics.after_write()  # PostgreSQL: statistics for fresh data (see statistics)
                if self.after_commit is not None:
                    self.after_commit()
                return result
            except IntegrityError:
                if conflict_status:
                    raise FhirError(
                        conflict_status, "The resource was changed by another request at the same time", "conflict"
                    ) from None
                last = FhirError(409, "Conflicting concurrent writes; retry the request", "conflict")
            except OperationalError as exc:
                if str(getattr(exc.orig, "sqlstate", "") or "").startswith("40"):
                    last = FhirError(409, "Conflicting concurrent writes; retry the request", "conflict")
                    continue
                if "locked" in str(exc.orig).lower():
                    raise FhirError(
                        503, "The store is busy; retry shortly", "transient", headers={"Retry-After": "1"}
                    ) from None
                raise
        raise last

    def lock_conditional(self, conn: Connection, rtype: str, criteria: str) -> None:
        """Serialise conditional writes on the same criteria (SQLite already serialises all writers)."""
        if self.is_postgres:
            key = int.from_bytes(hashlib.sha256(f"{rtype}?{criteria}".encode()).digest()[:8], "big", signed=True)
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})

    def authorize_op(self, grant: Grant | None, conn: Connection | None = None):
        """The check ``writes.apply`` runs on each write: scopes, the consent rule, and what an agency
        may state in a Provenance (``agency_writes``, which reads the plan in ``conn``'s transaction)."""
        if grant is None:
            return None

        def check(op: WriteOp, head_patient: str | None) -> None:
            # SMART v2: PUT needs 'u' whether it updates or creates (update-as-create is 'u').
            interaction = {"POST": "create", "PUT": "update", "DELETE": "delete"}[op.method]
            if head_patient is not None and head_patient != op.patient_key:
                access.require(grant, op.rtype, interaction, head_patient, op.resource)
            access.require(grant, op.rtype, interaction, op.patient_key, op.resource)
            self.consent.check_write(grant, op, head_patient)
            agency_writes.check(self.consent, grant, op, conn)

        return check

    # --- reads -----------------------------------------------------------------------------------

    # Hand-written (see rawsql): the read by id is the hottest path, ~10 µs of SQL.
    _CURRENT_SQL = (
        "SELECT version_id, last_updated, deleted, patient_key, content FROM resource_versions "
        "WHERE res_type = ? AND res_id = ? AND is_current"
    )

    def _current(self, conn: Connection | None, rtype: str, rid: str) -> Head | None:
        if conn is not None:
            rows = self.sql.fetch(self.sql.dbapi(conn), self._CURRENT_SQL, (rtype, rid))
        else:
            with self.sql.reading(snapshot=False) as raw:
                rows = self.sql.fetch(raw, self._CURRENT_SQL, (rtype, rid))
        if not rows:
            return None
        version, updated, deleted, pkey, content = rows[0]
        return Head(version, self.sql.dt(updated), bool(deleted), pkey, content)

    def read(self, ctx: Ctx, rtype: str, rid: str, *, conn: Connection | None = None) -> Result:
        self.check_type(rtype)
        self.check_id(rid)
        row = self._current(conn, rtype, rid)
        if row is None or self.consent.hides(ctx.grant, rtype, row.patient_key, conn and self.sql.dbapi(conn)):
            raise FhirError(404, f"{rtype}/{rid} is not known", "not-found")
        access.require(ctx.grant, rtype, "read", row.patient_key)
        if row.deleted:
            raise FhirError(
                410,
                f"{rtype}/{rid} was deleted",
                "deleted",
                headers=version_headers(ctx.base, rtype, rid, row.version_id, row.last_updated),
            )
        return Result(
            200,
            row.content,
            version_headers(ctx.base, rtype, rid, row.version_id, row.last_updated),
            audit=("read", [(rtype, rid, row.patient_key)]),
        )

    def vread(self, ctx: Ctx, rtype: str, rid: str, vid: str, *, conn: Connection | None = None) -> Result:
        self.check_type(rtype)
        self.check_id(rid)
        version = bounded_int(vid, MAX_VERSION_ID)  # larger cannot exist, and would not fit the column
        if version is None:
            raise FhirError(404, f"Version '{vid}' of {rtype}/{rid} is not known", "not-found")
        stmt = select(rv.c.version_id, rv.c.last_updated, rv.c.deleted, rv.c.patient_key, rv.c.content).where(
            rv.c.res_type == rtype, rv.c.res_id == rid, rv.c.version_id == version
        )
        if conn is not None:
            row = conn.execute(stmt).first()
        else:
            with self.engine.connect() as c:
                row = c.execute(stmt).first()
        if row is None or self.consent.hides(ctx.grant, rtype, row.patient_key, conn and self.sql.dbapi(conn)):
            raise FhirError(404, f"Version {vid} of {rtype}/{rid} is not known", "not-found")
        access.require(ctx.grant, rtype, "vread", row.patient_key)
        headers = version_headers(ctx.base, rtype, rid, row.version_id, row.last_updated)
        if row.deleted:
            raise FhirError(410, f"Version {vid} of {rtype}/{rid} is a deletion", "deleted", headers=headers)
        return Result(200, row.content, headers, audit=("vread", [(rtype, rid, row.patient_key)]))

    # --- writes ----------------------------------------------------------------------------------

    def _single_write(
        self, ctx: Ctx, op_factory: Callable[[Connection], WriteOp | Result], *, if_match: int | None
    ) -> Result:
        def run(conn: Connection) -> Result:
            made = op_factory(conn)
            if isinstance(made, Result):
                result = made
            else:
                op = made
                issues = None
                if op.resource is not None:
                    issues = self.validate({**op.resource, "resourceType": op.rtype, "id": op.rid})
                apply(conn, [op], utcnow(), ctx.base, authorize=self.authorize_op(ctx.grant, conn))
                result = self._write_result(ctx, op, issues)
            if ctx.audit is not None:
                ctx.audit.within(conn, result)
            return result

        return self.run_write(run, conflict_status=412 if if_match is not None else None)

    def _write_result(self, ctx: Ctx, op: WriteOp, found: list[tuple] | None) -> Result:
        issues = validation_hook.issue_dicts(found)
        if op.method == "DELETE":
            headers = {} if op.noop else {"ETag": f'W/"{op.version}"'}
            return Result(
                204 if not ctx.prefer_return == "OperationOutcome" else 200,
                None,
                headers,
                outcome=operation_outcome(
                    issues or [issue("information", "informational", "Deleted" if not op.noop else "Nothing to delete")]
                ),
            )
        headers = version_headers(ctx.base, op.rtype, op.rid, op.version, op.last_updated, location=True)
        note = "Created" if op.status == 201 else "Updated"
        return Result(
            op.status,
            op.content,
            headers,
            outcome=operation_outcome(issues or [issue("information", "informational", f"{note} {op.rtype}/{op.rid}")]),
        )

    def create(self, ctx: Ctx, rtype: str, body, if_none_exist: str | None = None) -> Result:
        self.check_type(rtype)
        resource = self.check_body(rtype, body)
        resource = {k: v for k, v in resource.items() if k != "id"}  # the server assigns ids on create

        def factory(conn: Connection):
            if if_none_exist:
                found = self.conditional_matches(conn, ctx, rtype, if_none_exist)
                if len(found) > 1:
                    raise FhirError(412, "If-None-Exist matches more than one resource", "multiple-matches")
                if found:
                    row = found[0]
                    return Result(
                        200,
                        row.content,
                        version_headers(ctx.base, rtype, row.res_id, row.version_id, row.last_updated, location=True),
                        outcome=operation_outcome(
                            [issue("information", "informational", "Matched an existing resource; nothing created")]
                        ),
                    )
            return WriteOp("POST", rtype, str(uuid.uuid4()), resource)

        return self._single_write(ctx, factory, if_match=None)

    def update(self, ctx: Ctx, rtype: str, rid: str, body, if_match: str | None = None) -> Result:
        self.check_type(rtype)
        self.check_id(rid)
        resource = self.check_body(rtype, body, rid, need_id=True)
        version = parse_etag(if_match)
        return self._single_write(
            ctx, lambda conn: WriteOp("PUT", rtype, rid, resource, if_match=version), if_match=version
        )

    def conditional_update(
        self, ctx: Ctx, rtype: str, params: list[tuple[str, str]], body, if_match: str | None = None
    ) -> Result:
        self.check_type(rtype)
        if not params:
            raise FhirError(400, "PUT on a type needs search criteria (conditional update) or an id", "invalid")
        resource = self.check_body(rtype, body)
        version = parse_etag(if_match)
        criteria = search.query_string(params)

        def factory(conn: Connection):
            found = self.conditional_matches(conn, ctx, rtype, criteria)
            if len(found) > 1:
                raise FhirError(412, "Conditional update criteria match more than one resource", "multiple-matches")
            if found:
                rid = found[0].res_id
                if "id" in resource and resource["id"] != rid:
                    raise FhirError(400, "The body's id differs from the resource the criteria matched", "invalid")
            else:
                rid = resource.get("id") or str(uuid.uuid4())
            return WriteOp("PUT", rtype, rid, resource, if_match=version)

        return self._single_write(ctx, factory, if_match=version)

    def delete(self, ctx: Ctx, rtype: str, rid: str, if_match: str | None = None) -> Result:
        self.check_type(rtype)
        self.check_id(rid)
        version = parse_etag(if_match)
        return self._single_write(ctx, lambda conn: WriteOp("DELETE", rtype, rid, if_match=version), if_match=version)

    def conditional_delete(self, ctx: Ctx, rtype: str, params: list[tuple[str, str]]) -> Result:
        self.check_type(rtype)
        if not params:
            raise FhirError(405, "DELETE on a whole type is not allowed; give criteria or an id", "not-supported")
        criteria = search.query_string(params)

        def factory(conn: Connection):
            found = self.conditional_matches(conn, ctx, rtype, criteria)
            if len(found) > 1:
                raise FhirError(412, "Conditional delete criteria match more than one resource", "multiple-matches")
            if not found:
                return Result(
                    204,
                    None,
                    {},
                    outcome=operation_outcome(
                        [issue("information", "informational", "No resource matched; nothing deleted")]
                    ),
                )
            return WriteOp("DELETE", rtype, found[0].res_id)

        return self._single_write(ctx, factory, if_match=None)

    def conditional_matches(self, conn: Connection, ctx: Ctx, rtype: str, criteria: str) -> list:
        """Current resources matching conditional-operation criteria (always strict: a typo must not match all)."""
        from urllib.parse import parse_qsl

        criteria = criteria.split("?", 1)[-1] if "?" in criteria else criteria
        pairs = parse_qsl(criteria, keep_blank_values=True)
        if not pairs:
            raise FhirError(400, "Conditional criteria are empty", "invalid")
        self.lock_conditional(conn, rtype, criteria)
        q = search.parse(rtype, pairs, strict=True, base=ctx.base)
        q.conditions += filter(None, [self.consent.search_condition(ctx.grant, rtype)])
        sql, params = search.build_select(q, columns="res_id, version_id, last_updated, content, patient_key")
        rows = self.sql.fetch(self.sql.dbapi(conn), sql + " LIMIT 2", params)
        return [
            Match(rid, version, self.sql.dt(updated), content, pkey) for rid, version, updated, content, pkey in rows
        ]

    # --- search ----------------------------------------------------------------------------------

    def search(self, ctx: Ctx, rtype: str, params: list[tuple[str, str]], *, conn: Connection | None = None) -> Result:
        self.check_type(rtype)
        restrict = access.search_restriction(ctx.grant, rtype)
        access.check_patient_params(restrict, params)
        q = search.parse(rtype, params, strict=ctx.strict, base=ctx.base)
        q.conditions += filter(None, [self.consent.search_condition(ctx.grant, rtype)])
        if conn is None:
            with self.sql.reading() as raw:
                return self._search(raw, ctx, q, restrict)
        return self._search(self.sql.dbapi(conn), ctx, q, restrict)

    def _search(self, conn, ctx: Ctx, q: search.SearchQuery, restrict: str | None) -> Result:
        """``conn``: a DBAPI connection (see rawsql)."""
        fetch = self.sql.fetch
        self_url = f"{ctx.base}/{q.rtype}" + ("?" + search.query_string(q.used) if q.used else "")
        bundle = {
            "resourceType": "Bundle",
            "id": str(uuid.uuid4()),
            "meta": {"lastUpdated": to_instant(utcnow())},
            "type": "searchset",
        }
        if q.summary_count or q.count == 0:
            bundle["total"] = fetch(conn, *search.count_select(q, restrict))[0][0]
            bundle["link"] = [{"relation": "self", "url": self_url}]
            return Result(200, _bundle_text(bundle, _ignored_entry(q)))
        rows = [search.PageRow(*row) for row in fetch(conn, *search.page_select(q, restrict))]
        has_more = len(rows) > q.count
        rows = rows[: q.count]
        if not has_more and q.cursor is None:
            bundle["total"] = len(rows)
        elif q.total_accurate:
            bundle["total"] = fetch(conn, *search.count_select(q, restrict))[0][0]
        links = [{"relation": "self", "url": self_url + _cursor_suffix(q.cursor, bool(q.used))}]
        if has_more:
            last = rows[-1]
            cursor = search.cursor_for(q, last._replace(last_updated=self.sql.dt(last.last_updated)))
            links.append({"relation": "next", "url": self_url + ("&" if q.used else "?") + "_cursor=" + cursor})
        bundle["link"] = links
        full_url = _full_url_prefix(ctx.base)
        entries = [_entry_text(full_url, q.rtype, r.res_id, r.content, "match") for r in rows]
        audited = [(q.rtype, r.res_id, r.patient_key) for r in rows]
        for rtype, rid, pkey, content in self._included(conn, ctx, q, rows, restrict):
            entries.append(_entry_text(full_url, rtype, rid, content, "include"))
            audited.append((rtype, rid, pkey))
        entries += _ignored_entry(q)
        return Result(200, _bundle_text(bundle, entries), audit=("search-type", audited))

    def _included(self, conn, ctx: Ctx, q: search.SearchQuery, rows, restrict: str | None):
        if not rows or not (q.includes or q.revincludes):
            return []
        fetch = self.sql.fetch
        ids = [r.res_id for r in rows]
        wanted: set[tuple[str, str]] = set()
        if q.includes:
            # By (res_type, res_id), the index that narrows most; the parameter is filtered here.
            # ``sys`` is selected (unused) so the query is not covered by ix_si_value: SQLite, without
            # statistics, would otherwise scan every index row of the type through that index.
            index_rows = fetch(
                conn,
                "SELECT param, val, sys FROM search_index WHERE res_type = ? AND res_id IN "  # noqa: S608 - only '?' placeholders and our own SQL are interpolated; values are bound
                f"({placeholders(len(ids))})",
                (q.rtype, *ids),
            )
            for src_type, param, target in q.includes:
                if src_type != q.rtype:
                    continue
                for p, val, _sys in index_rows:
                    if p == param and val and "/" in val and "://" not in val:
                        t, i = val.split("/", 1)
                        if target is None or t == target:
                            wanted.add((t, i))
        out = []
        seen = {(q.rtype, i) for i in ids}
        by_type: dict[str, list[str]] = {}
        for t, i in wanted - seen:
            by_type.setdefault(t, []).append(i)
        for t, t_ids in by_type.items():
            t_ids = t_ids[:1000]
            out += fetch(
                conn,
                "SELECT res_type, res_id, patient_key, content FROM resource_versions "  # noqa: S608 - only '?' placeholders and our own SQL are interpolated; values are bound
                f"WHERE res_type = ? AND res_id IN ({placeholders(len(t_ids))}) AND {search.CURRENT}",
                (t, *t_ids),
            )
        keys = [f"{q.rtype}/{i}" for i in ids]
        for src_type, param in q.revincludes:
            out += fetch(
                conn,
                "SELECT res_type, res_id, patient_key, content FROM resource_versions "  # noqa: S608 - only '?' placeholders and our own SQL are interpolated; values are bound
                f"WHERE res_type = ? AND {search.CURRENT} AND res_id IN (SELECT search_index.res_id "
                "FROM search_index WHERE search_index.res_type = ? AND search_index.param = ? "
                f"AND search_index.val IN ({placeholders(len(keys))})) LIMIT 1000",
                (src_type, src_type, param, *keys),
            )
        # The matches passed the consent filter in SQL (when it applies to this type): their young
        # people are shared, and only included resources of anyone else need asking about.
        narrowed = self.consent.search_condition(ctx.grant, q.rtype) is not None
        matched = {r.patient_key for r in rows if r.patient_key} if narrowed else frozenset()
        out = self.consent.visible_rows(ctx.grant, [Included(*r) for r in out], conn, matched)
        result, emitted = [], set(seen)
        for r in out:
            key = (r.res_type, r.res_id)
            if key in emitted:
                continue
            emitted.add(key)
            if ctx.grant is not None:
                if restrict is not None and r.patient_key not in (None, restrict):
                    continue
                from ..smart_scopes import permits

                if not permits(ctx.grant, r.res_type, "read", r.patient_key):
                    continue  # included resources the token may not read are left out, not refused
            result.append((r.res_type, r.res_id, r.patient_key, r.content))
        return result

    # --- history ---------------------------------------------------------------------------------

    def history(
        self,
        ctx: Ctx,
        rtype: str | None,
        rid: str | None,
        params: list[tuple[str, str]],
        *,
        conn: Connection | None = None,
    ) -> Result:
        if rtype:
            self.check_type(rtype)
        if rid:
            self.check_id(rid)
        count, since, cursor = search.DEFAULT_COUNT, None, None
        used = []
        for name, value in params:
            if name == "_count":
                count = search.parse_count(value)
                used.append((name, value))
            elif name == "_since":
                rng = date_range(value)
                if rng is None or "T" not in value:
                    raise FhirError(400, "_since must be an instant such as 2024-05-01T00:00:00Z", "invalid")
                since = rng[0]
                used.append((name, value))
            elif name == "_cursor":
                cursor = bounded_int(value, MAX_SEQ)
                if cursor is None:
                    raise FhirError(400, "Invalid _cursor (use the next link exactly as given)", "invalid")
            elif name in search.IGNORED_SILENTLY:
                continue
            elif ctx.strict:
                raise FhirError(400, f"Unsupported _history parameter '{name}'", "not-supported")
        stmt = select(
            rv.c.seq,
            rv.c.res_type,
            rv.c.res_id,
            rv.c.version_id,
            rv.c.last_updated,
            rv.c.deleted,
            rv.c.patient_key,
            rv.c.content,
        )
        restrict = None
        if rtype and rid:
            stmt = stmt.where(rv.c.res_type == rtype, rv.c.res_id == rid)
            head = self._current(conn, rtype, rid)
            if head is None or self.consent.hides(ctx.grant, rtype, head.patient_key):
                raise FhirError(404, f"{rtype}/{rid} is not known", "not-found")
            access.require(ctx.grant, rtype, "history-instance", head.patient_key)
        elif rtype:
            stmt = stmt.where(rv.c.res_type == rtype)
            restrict = access.search_restriction(ctx.grant, rtype, "history-type")
        else:
            restrict = access.search_restriction(ctx.grant, "*", "history-system")
            stmt = stmt.where(rv.c.res_type != "Subscription")  # only their creators see them (subscriptions/api)
        if restrict is not None:
            stmt = stmt.where((rv.c.patient_key == restrict) | rv.c.patient_key.is_(None))
        if (gated := self.consent.history_clause(ctx.grant)) is not None:
            stmt = stmt.where(gated)
        if since is not None:  # R4 http.html#history: versions created "at or after" _since
            stmt = stmt.where(rv.c.last_updated >= since)
        if cursor is not None:
            stmt = stmt.where(rv.c.seq < cursor)
        stmt = stmt.order_by(rv.c.seq.desc()).limit(count + 1)
        if conn is not None:
            rows = list(conn.execute(stmt))
        else:
            with self.engine.connect() as c:
                rows = list(c.execute(stmt))
        has_more = len(rows) > count
        rows = rows[:count]
        path = "/".join(p for p in (rtype, rid) if p)
        self_url = f"{ctx.base}/{path + '/' if path else ''}_history" + (
            "?" + search.query_string(used) if used else ""
        )
        links = [{"relation": "self", "url": self_url}]
        if has_more:
            links.append({"relation": "next", "url": self_url + ("&" if used else "?") + f"_cursor={rows[-1].seq}"})
        bundle = {"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": "history", "link": links}
        if not has_more and cursor is None:
            bundle["total"] = len(rows)
        entries = []
        for r in rows:
            method = "DELETE" if r.deleted else ("POST" if r.version_id == 1 else "PUT")
            url = r.res_type if method == "POST" else f"{r.res_type}/{r.res_id}"
            status = "204" if r.deleted else ("201" if r.version_id == 1 else "200")
            parts = [f'"fullUrl":{json.dumps(f"{ctx.base}/{r.res_type}/{r.res_id}")}']
            if not r.deleted:
                parts.append(f'"resource":{r.content}')
            parts.append('"request":' + dumps({"method": method, "url": url}))
            parts.append(
                '"response":'
                + dumps({"status": status, "etag": f'W/"{r.version_id}"', "lastModified": to_instant(r.last_updated)})
            )
            entries.append("{" + ",".join(parts) + "}")
        audited = [(r.res_type, r.res_id, r.patient_key) for r in rows if not r.deleted]
        subtype = "history-instance" if rid else ("history-type" if rtype else "history-system")
        return Result(200, _bundle_text(bundle, entries), audit=(subtype, audited))

    # --- audit -----------------------------------------------------------------------------------

    def write_audit(
        self, ctx: Ctx, subtype: str, entities: list[tuple[str, str, str | None]], query: str | None
    ) -> None:
        """Record a read of patient data. Server-generated, so it is not re-validated.

        Reads of AuditEvents themselves are not audited again (that would double the audit trail
        with every review of it)."""
        entities = [e for e in entities if e[0] != "AuditEvent"]
        if not any(p for _t, _i, p in entities):
            return
        now = utcnow()
        event = access.audit_event(ctx.grant, subtype, entities[:200], to_instant(now), query)
        with self._write_lock, self.writer.begin() as conn:
            apply(conn, [WriteOp("POST", "AuditEvent", event["id"], event)], now, ctx.base)

    def count_all(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(
                select(func.count()).select_from(rv).where(rv.c.is_current, rv.c.deleted == false())
            ).scalar_one()


def _ignored_entry(q: search.SearchQuery) -> list[str]:
    """The parameters a lenient search ignored, as an OperationOutcome entry (search mode
    ``outcome``, R4 bundle.html#searchset): the self link alone leaves the client to guess why."""
    if not q.ignored:
        return []
    oid = str(uuid.uuid4())
    outcome = {
        "id": oid,
        **operation_outcome([issue("warning", "not-supported", f"Ignored: {text}") for text in q.ignored]),
    }
    return [
        '{"fullUrl":"urn:uuid:'
        + oid
        + '","resource":'
        + dumps({"resourceType": "OperationOutcome", **outcome})
        + ',"search":{"mode":"outcome"}}'
    ]


def _cursor_suffix(cursor, has_query: bool) -> str:
    if not cursor:
        return ""
    return ("&" if has_query else "?") + "_cursor=" + search.encode_cursor(list(cursor))


def _full_url_prefix(base: str) -> str:
    """``{"fullUrl":"<base>/`` with the base JSON-escaped once per search (it comes from the Host
    header); types and ids need no escaping (ids are checked against ID_RE on every write)."""
    return '{"fullUrl":' + json.dumps(base)[:-1] + "/"


def _entry_text(full_url_prefix: str, rtype: str, rid: str, content: str, mode: str) -> str:
    return full_url_prefix + rtype + "/" + rid + '","resource":' + content + ',"search":{"mode":"' + mode + '"}}'


def _bundle_text(bundle: dict, entries: list[str]) -> str:
    head = dumps(bundle)
    if not entries:
        return head
    return head[:-1] + ',"entry":[' + ",".join(entries) + "]}"


__all__ = ["Ctx", "Result", "Store", "and_", "reference_key"]
