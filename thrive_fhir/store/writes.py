"""Writing resource versions: one code path for single requests and whole transaction Bundles.

All writes of a request are applied together, in set-wise statements (one SELECT of the current
heads, one UPDATE retiring them, one multi-row INSERT of new versions, one DELETE + INSERT of index
rows). That keeps a 100-entry transaction at a handful of round trips, which is what makes ingest fast
on both SQLite and PostgreSQL. The unique indexes in ``schema`` turn a lost race into an
IntegrityError, which callers map to 412 (If-Match given) or retry.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.engine import Connection

from . import fhirjson, rawsql
from .consent_gate import index_consent_writes
from .errors import FhirError
from .fhirdates import to_instant
from .schema import resource_versions as rv
from .schema import search_index as si
from .search_params import compartment_patient, extract, reference_key


def dumps(resource: dict) -> str:
    """Compact JSON; decimals exactly as the client sent them (see fhirjson)."""
    return fhirjson.dumps(resource)


@dataclass
class WriteOp:
    """One write. ``method`` is POST (create), PUT (update or create-on-update) or DELETE."""

    method: str
    rtype: str
    rid: str
    resource: dict | None = None
    if_match: int | None = None
    # filled in by apply():
    status: int = 0
    version: int | None = None
    last_updated: datetime | None = None
    content: str | None = None
    patient_key: str | None = None
    index_rows: list = field(default_factory=list)
    noop: bool = False
    body_text: str | None = None  # JSON of the resource without resourceType/id/meta (see prepare)

    def fresh(self) -> WriteOp:
        """This write as prepared, before apply() filled in its outcome (for a retried transaction)."""
        return WriteOp(
            self.method,
            self.rtype,
            self.rid,
            self.resource,
            self.if_match,
            patient_key=self.patient_key,
            index_rows=self.index_rows,
            body_text=self.body_text,
        )


def patient_key_of(rtype: str, rid: str, resource: dict, base: str | None) -> tuple[str | None, list]:
    rows = extract(rtype, resource, base)
    return compartment_patient(rtype, rid, rows), rows


def prepare(op: WriteOp, base: str | None) -> None:
    """The database-independent work of a write: index rows, compartment, and the resource's JSON
    apart from ``meta`` (which needs the version). A transaction does this before taking the write
    lock, so one request's Python work overlaps another's SQLite work (which runs without the GIL)."""
    if op.resource is None:
        return
    op.patient_key, op.index_rows = patient_key_of(op.rtype, op.rid, op.resource, base)
    op.body_text = dumps({k: v for k, v in op.resource.items() if k not in _HEAD_KEYS})


_HEAD_KEYS = ("resourceType", "id", "meta")


def _content(rtype: str, rid: str, meta: dict, body_text: str) -> str:
    """``dumps`` of {"resourceType", "id", "meta", **rest}, from the rest's prepared JSON text."""
    # Types are known type names and ids match ID_RE (checked on every write path): no escaping.
    head = '{"resourceType":"' + rtype + '","id":"' + rid + '","meta":' + dumps(meta)
    return head + ("}" if body_text == "{}" else "," + body_text[1:])


def apply(
    conn: Connection,
    ops: list[WriteOp],
    now: datetime,
    base: str | None,
    authorize: Callable[[WriteOp, str | None], None] | None = None,
) -> None:
    """Apply ``ops`` inside the caller's transaction. Raises FhirError (412/409) on version conflicts.

    ``authorize(op, previous_patient)`` is called for every effective write once the compartment of
    the new content is known; it raises to refuse (the caller's transaction then rolls back).
    """
    if not ops:
        return
    sql, dbapi = rawsql.for_connection(conn)
    heads: dict[tuple[str, str], tuple[int, int, bool, str | None]] = {}
    for rtype, ids in _by_type({(op.rtype, op.rid) for op in ops}).items():
        for chunk in _chunks(ids, 400):
            # Per type with ``res_id IN``: a row-value IN over (type, id) pairs made SQLite scan the table.
            for seq, rid, version, deleted, pkey in sql.fetch(
                dbapi,
                "SELECT seq, res_id, version_id, deleted, patient_key FROM resource_versions "  # noqa: S608 - only '?' placeholders and our own SQL are interpolated; values are bound
                f"WHERE res_type = ? AND res_id IN ({rawsql.placeholders(len(chunk))}) AND is_current",
                (rtype, *chunk),
            ):
                heads[(rtype, rid)] = (seq, version, bool(deleted), pkey)

    now_text = to_instant(now)
    retire_seqs: list[int] = []
    reindex: list[tuple[str, str]] = []
    version_rows: list[tuple] = []
    index_rows: list[tuple] = []
    seen: set[tuple[str, str]] = set()
    mismatch: FhirError | None = None
    for op in ops:
        key = (op.rtype, op.rid)
        if key in seen:
            raise FhirError(400, f"{op.rtype}/{op.rid} is written more than once in one request", "invalid")
        seen.add(key)
        head = heads.get(key)
        current_version = head[1] if head and not head[2] else None
        if op.if_match is not None and (head is None or head[1] != op.if_match or head[2]) and mismatch is None:
            have = "none" if head is None else ("deleted" if head[2] else f'W/"{head[1]}"')
            # raised after the authorization checks: a caller who may not see the resource must not
            # learn its version (consent_gate answers such callers as for a missing resource)
            mismatch = FhirError(
                412, f'If-Match W/"{op.if_match}" does not match the current version ({have})', "conflict"
            )
        if op.method == "POST" and head is not None:
            raise FhirError(409, f"{op.rtype}/{op.rid} already exists", "duplicate")
        if op.method == "DELETE":
            op.status = 204
            if head is None or head[2]:
                op.noop = True
                continue
            op.version = head[1] + 1
            op.patient_key = head[3]
        else:
            op.version = head[1] + 1 if head else 1
            op.status = 200 if current_version is not None else 201
        op.last_updated = now
        if head:
            retire_seqs.append(head[0])
            reindex.append(key)
        if op.resource is not None:
            meta = dict(op.resource.get("meta") or {})
            meta["versionId"] = str(op.version)
            meta["lastUpdated"] = now_text
            if op.body_text is None:
                prepare(op, base)
            if authorize is not None:  # scope checks see the resource as it will be stored
                op.resource = {
                    "resourceType": op.rtype,
                    "id": op.rid,
                    "meta": meta,
                    **{k: v for k, v in op.resource.items() if k not in _HEAD_KEYS},
                }
            op.content = _content(op.rtype, op.rid, meta, op.body_text)

    _resolve_provenance_patients(conn, ops, heads)
    if authorize is not None:
        for op in ops:  # no-ops too: a refused delete must not reveal that nothing was there
            head = heads.get((op.rtype, op.rid))
            authorize(op, head[3] if head else None)
    if mismatch is not None:
        raise mismatch

    db_time = sql.db_time
    now_db = db_time(now)
    for op in ops:
        if op.noop:
            continue
        version_rows.append(
            (op.rtype, op.rid, op.version, now_db, op.method == "DELETE", True, op.patient_key, op.content)
        )
        if op.method != "DELETE":
            index_rows += _index_rows(op, db_time)

    for chunk in _chunks(retire_seqs, 500):
        sql.run(
            dbapi,
            f"UPDATE resource_versions SET is_current = ? WHERE seq IN ({rawsql.placeholders(len(chunk))})",  # noqa: S608 - only '?' placeholders and our own SQL are interpolated; values are bound
            (False, *chunk),
        )
    for rtype, ids in _by_type(reindex).items():
        for chunk in _chunks(ids, 400):
            sql.run(
                dbapi,
                f"DELETE FROM search_index WHERE res_type = ? AND res_id IN ({rawsql.placeholders(len(chunk))})",  # noqa: S608 - only '?' placeholders and our own SQL are interpolated; values are bound
                (rtype, *chunk),
            )
    if version_rows:
        _insert_many(conn, sql, rv, _VERSION_COLUMNS, version_rows)
    if index_rows:
        _insert_many(conn, sql, si, _INDEX_COLUMNS, index_rows)
    index_consent_writes(conn, ops)  # the store's consent filter reads consent_shares (consent_gate)
    if conn.get_execution_options().get("subscription_events"):  # set by create_app (subscriptions/events)
        from .subscriptions.events import record

        record(conn, ops, now)


def insert_new(conn: Connection, ops: list[WriteOp], base: str | None) -> None:
    """Insert resources the server made itself under fresh UUIDs, as version 1 at ``op.last_updated``.

    Why: the store writes an AuditEvent for every agency request, so this is on the hot path of every
    agency read. :func:`apply` looks up current heads, authorises, and keeps Provenance compartments
    and ``consent_shares`` in step: work for client writes that a new server-made resource does not
    need, each a round trip. The rows are the ones :func:`apply` writes (search index included), so
    the resources are found and read alike; an id that did exist still fails on the unique index.
    Two statements for any number of resources.
    """
    if not ops:
        return
    sql, _dbapi = rawsql.for_connection(conn)
    version_rows: list[tuple] = []
    index_rows: list[tuple] = []
    for op in ops:
        if op.resource is None or op.last_updated is None:
            raise ValueError("insert_new takes resources with their last_updated set")
        if op.body_text is None:
            prepare(op, base)
        meta = {**(op.resource.get("meta") or {}), "versionId": "1", "lastUpdated": to_instant(op.last_updated)}
        op.version, op.status = 1, 201
        op.content = _content(op.rtype, op.rid, meta, op.body_text or "{}")
        version_rows.append(
            (op.rtype, op.rid, 1, sql.db_time(op.last_updated), False, True, op.patient_key, op.content)
        )
        index_rows += _index_rows(op, sql.db_time)
    _insert_many(conn, sql, rv, _VERSION_COLUMNS, version_rows)
    if index_rows:
        _insert_many(conn, sql, si, _INDEX_COLUMNS, index_rows)


def _index_rows(op: WriteOp, db_time) -> list[tuple]:
    """``search_index`` rows of one written resource, in driver form."""
    return [
        (
            op.rtype,
            op.rid,
            name,
            _cap(system),
            _cap(value),
            None if lo is None else db_time(lo),
            None if hi is None else db_time(hi),
        )
        for name, system, value, lo, hi in op.index_rows
    ]


def _by_type(keys) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for rtype, rid in keys:
        out.setdefault(rtype, []).append(rid)
    return out


def _chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


_VERSION_COLUMNS = (
    "res_type",
    "res_id",
    "version_id",
    "last_updated",
    "deleted",
    "is_current",
    "patient_key",
    "content",
)
_INDEX_COLUMNS = ("res_type", "res_id", "param", "sys", "val", "dt_lo", "dt_hi")


def _insert_many(conn: Connection, sql: rawsql.Sql, table, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """Multi-row INSERT of rows already in driver form (datetimes through ``sql.db_time``, so SQLite
    stores exactly the text SQLAlchemy stores and compares; booleans as Python bools).

    SQLAlchemy's per-row parameter processing cost more than the database work for 100-entry
    transactions, so the rows go to the driver directly.
    """
    dialect = conn.dialect
    names = ", ".join(columns)
    if dialect.name == "postgresql":
        # One statement with the rows as one JSON array of arrays: a round trip per row (even
        # pipelined) or a huge VALUES list (re-parsed by the driver every time) both cost more than
        # the inserts, and psycopg's array parameters (one per column) escape every element in
        # Python with a regular expression, which was a third of an agency read's CPU (its
        # AuditEvent's index rows). json.dumps runs in C.
        casts = ", ".join(f"(r->>{i})::{table.c[c].type.compile(dialect)}" for i, c in enumerate(columns))
        sql.run(
            conn.connection,
            f"INSERT INTO {table.name} ({names}) SELECT {casts} FROM json_array_elements(?::json) AS x(r)",  # noqa: S608 - table and type names from our schema; values are bound
            (json.dumps(rows, ensure_ascii=False, separators=(",", ":"), default=_json_datetime),),
        )
    else:
        conn.exec_driver_sql(f"INSERT INTO {table.name} ({names}) VALUES ({', '.join('?' * len(columns))})", rows)  # noqa: S608 - table and column names from our schema; values are bound


def _json_datetime(value):
    """A datetime as PostgreSQL reads a ``timestamp without time zone`` (the store's naive UTC)."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__} in a row")


def _cap(value: str | None) -> str | None:
    # Index columns are bounded; a longer value is still matched on its first 512 characters.
    return value[:512] if isinstance(value, str) and len(value) > 512 else value


def _resolve_provenance_patients(conn: Connection, ops: list[WriteOp], heads) -> None:
    """A Provenance is in the compartment of the patient its targets belong to.

    R4 only puts a Provenance in a patient's compartment when it targets the Patient itself, but the
    app's Provenance targets the Observation/Goal it records; without this, patient-scoped clients
    could not write or read the Provenance of their own patient's data (or could read another's).
    """
    pending = [op for op in ops if op.rtype == "Provenance" and op.resource is not None and op.patient_key is None]
    if not pending:
        return
    in_request = {f"{op.rtype}/{op.rid}": op.patient_key for op in ops if op.patient_key}
    for op in pending:
        raw = op.resource.get("target")
        targets = [
            reference_key(t.get("reference"), None)
            for t in (raw if isinstance(raw, list) else [])
            if isinstance(t, dict) and isinstance(t.get("reference"), str)
        ]
        targets = [t for t in targets if t and "/" in t and "://" not in t]
        found = {in_request[t] for t in targets if t in in_request}
        unknown = [t for t in targets if t not in in_request]
        if unknown:
            sql, dbapi = rawsql.for_connection(conn)
            for rtype, ids in _by_type(tuple(t.split("/", 1)) for t in unknown).items():
                for (pkey,) in sql.fetch(
                    dbapi,
                    "SELECT patient_key FROM resource_versions WHERE res_type = ? AND "  # noqa: S608 - only '?' placeholders and our own SQL are interpolated; values are bound
                    f"res_id IN ({rawsql.placeholders(len(ids))}) AND is_current",
                    (rtype, *ids),
                ):
                    if pkey:
                        found.add(pkey)
        if len(found) == 1:
            op.patient_key = found.pop()
