"""``transaction`` and ``batch`` Bundles.

A transaction is all or nothing: every entry is resolved (ids assigned, conditional criteria looked
up, ``urn:uuid`` references rewritten anywhere in the resources), validated and authorised, then all
writes go to the database in one database transaction; any failure rolls everything back and the
answer is the failing entry's error. Entries are processed in the order the spec prescribes
(DELETE, POST, PUT, GET) and answered in the order sent. A batch runs each entry on its own.
"""

from __future__ import annotations

import logging
import traceback
import uuid
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

from sqlalchemy.engine import Connection

from . import validation_hook
from .errors import FhirError, describe, operation_outcome
from .fhirdates import to_instant, utcnow
from .service import Ctx, Result, Store, parse_etag
from .writes import WriteOp, apply, dumps, prepare

log = logging.getLogger("thrive_fhir.store")

ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "GET": 3, "HEAD": 3}
REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    410: "Gone",
    412: "Precondition Failed",
    422: "Unprocessable Entity",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass
class Entry:
    index: int
    method: str
    rtype: str | None  # None: system history (GET _history)
    rid: str | None
    tail: list[str]  # after Type/id (or after Type, or alone): [], ["_history"] or ["_history", version]
    query: str
    resource: dict | None
    full_url: str | None
    if_match: int | None
    if_none_exist: str | None


def process(store: Store, ctx: Ctx, body) -> Result:
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
        raise FhirError(400, "POST to the base URL takes a Bundle of type transaction or batch", "invalid")
    kind = body.get("type")
    entries = body.get("entry") or []
    if not isinstance(entries, list):
        raise FhirError(400, "Bundle.entry must be a list", "structure")
    if kind == "transaction":
        return transaction(store, ctx, entries)
    if kind == "batch":
        return batch(store, ctx, entries)
    raise FhirError(400, "Only Bundles of type transaction or batch can be posted to the base URL", "invalid")


def _parse_entry(store: Store, ctx: Ctx, index: int, raw) -> Entry:
    where = f"Bundle.entry[{index}]"
    if not isinstance(raw, dict) or not isinstance(raw.get("request"), dict):
        raise FhirError(400, f"{where} needs a request with method and url", "structure")
    req = raw["request"]
    method = req.get("method")
    url = req.get("url")
    if method not in ORDER or method == "HEAD" or not isinstance(url, str) or not url:
        raise FhirError(400, f"{where}.request needs method GET, POST, PUT or DELETE and a url", "structure")
    try:
        segs, query = _entry_path(ctx, url)
        rtype, rid = _entry_route(store, method, segs, query)
        resource = raw.get("resource")
        if method in ("POST", "PUT"):
            resource = store.check_body(rtype, resource, rid, need_id=rid is not None and method == "PUT")
            if method == "POST":
                resource = {k: v for k, v in resource.items() if k != "id"}
        full_url = raw.get("fullUrl")
        if full_url is not None and not isinstance(full_url, str):
            raise FhirError(400, "fullUrl must be a string", "structure")
        if_none_exist = req.get("ifNoneExist")
        if if_none_exist is not None and not isinstance(if_none_exist, str):
            raise FhirError(400, "request.ifNoneExist must be a string", "structure")
        if_match = req.get("ifMatch")
        if if_match is not None and not isinstance(if_match, str):
            raise FhirError(400, 'request.ifMatch must be a string such as W/"3"', "structure")
        tail = segs[2:] if rid is not None else [s for s in segs if s == "_history"]
        return Entry(index, method, rtype, rid, tail, query, resource, full_url, parse_etag(if_match), if_none_exist)
    except FhirError as exc:
        raise exc.with_prefix(where) from None


def _entry_path(ctx: Ctx, url: str) -> tuple[list[str], str]:
    """An entry's ``request.url`` as (decoded path segments, query), relative to this server.

    Absolute URLs must be this server's own: an entry naming another host is refused rather than
    applied here under the path it happens to have."""
    base = ctx.base.rstrip("/")
    if url.startswith(base + "/") or url == base:
        url = url[len(base) + 1 :]
    parts = urlsplit(url)
    if parts.scheme or parts.netloc:
        raise FhirError(
            400, "request.url names another server; give a URL relative to this one (Type/id)", "not-supported"
        )
    if parts.fragment:
        raise FhirError(400, "request.url must not carry a fragment", "invalid")
    return [unquote(s) for s in parts.path.split("/") if s], parts.query


def _entry_route(store: Store, method: str, segs: list[str], query: str) -> tuple[str | None, str | None]:
    """(resource type, id) of an entry, by the same routing rules as the REST API (wsgi.route):
    an interaction REST refuses is refused here with the same status, never mapped to another one
    (``DELETE Patient/x/_history/1`` is a 405, not a delete of ``Patient/x``)."""
    n = len(segs)
    if n == 0:
        raise FhirError(400, "request.url must name a resource type", "invalid")
    if segs == ["_history"]:
        _only(method, "GET")
        return None, None
    if segs[0].startswith("$") or segs[0].startswith("_"):
        raise FhirError(400, f"'{segs[0]}' is not supported in a Bundle entry", "not-supported")
    rtype = segs[0]
    store.check_type(rtype)
    if rtype == "Subscription":  # its owner and handshake belong to one request (subscriptions/api.py)
        raise FhirError(400, "Subscriptions are managed at [base]/Subscription, not in a Bundle", "not-supported")
    if n == 1:
        if method in ("PUT", "DELETE") and not query:
            raise FhirError(
                405 if method == "DELETE" else 400,
                f"{method} entries need Type/id or Type?criteria",
                "not-supported" if method == "DELETE" else "invalid",
            )
        if method == "POST" and any(k not in ("_format", "_pretty") for k, _ in parse_qsl(query)):
            # criteria here would silently be ignored (and the create duplicate what they match)
            raise FhirError(400, "POST entries take the type only (Type); use ifNoneExist for criteria", "invalid")
        return rtype, None
    second = segs[1]
    if second == "_history" and n == 2:
        _only(method, "GET")
        return rtype, None
    if second.startswith("_") or second.startswith("$"):
        raise FhirError(400, f"'{second}' is not supported in a Bundle entry", "not-supported")
    store.check_id(second)
    if n == 2:
        if method == "POST":
            raise FhirError(405, "POST entries take the type only (Type)", "not-supported")
        return rtype, second
    if segs[2] == "_history" and n in (3, 4):
        _only(method, "GET")
        return rtype, second
    raise FhirError(404, "Unsupported URL for this server", "not-supported")


def _only(method: str, *allowed: str) -> None:
    if method not in allowed:
        raise FhirError(405, f"{method} is not allowed on this URL", "not-supported")


def _is_conditional(ref: str) -> bool:
    """``Type?criteria``. The criteria usually hold a URL (an identifier system), so the test is on
    the part before the '?' (it used to reject any reference containing '://', i.e. nearly all)."""
    head, sep, _ = ref.partition("?")
    return bool(sep) and head.isalpha() and head[:1].isupper()


def _rewrite(node, idmap: dict[str, str], unresolved: list[str], conditional: set[str] | None = None):
    """``node`` with references in ``idmap`` replaced, copying only what changes.

    ``urn:uuid``/``urn:oid`` references not in ``idmap`` are added to ``unresolved``; with
    ``conditional``, conditional references (``Type?criteria``) are added to it and left as they are.
    The input is never modified (a retried transaction resolves the same entries again with new
    ids), and the common case — no reference to rewrite — allocates nothing.
    """
    if isinstance(node, dict):
        out = None
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                if conditional is not None and _is_conditional(value):
                    conditional.add(value)
                    continue
                new = idmap.get(value, value)
                if new is value and (value.startswith("urn:uuid:") or value.startswith("urn:oid:")):
                    unresolved.append(value)
            elif isinstance(value, (dict, list)):
                new = _rewrite(value, idmap, unresolved, conditional)
            else:
                continue
            if new is not value:
                if out is None:
                    out = dict(node)
                out[key] = new
        return node if out is None else out
    if isinstance(node, list):
        out = None
        for i, value in enumerate(node):
            if isinstance(value, (dict, list)):
                new = _rewrite(value, idmap, unresolved, conditional)
                if new is not value:
                    if out is None:
                        out = list(node)
                    out[i] = new
        return node if out is None else out
    return node


def transaction(store: Store, ctx: Ctx, raw_entries: list) -> Result:
    entries = [_parse_entry(store, ctx, i, e) for i, e in enumerate(raw_entries)]
    _refuse_duplicates(entries)
    pinned = any(e.if_match is not None for e in entries)
    # Without conditional entries every id is known up front: resolve, validate and serialise before
    # taking the write lock (see writes.prepare). Otherwise all of it happens inside the transaction.
    plan = None if _needs_database(entries) else _resolve(store, ctx, None, entries)

    def run(conn: Connection) -> Result:
        result = Result(
            200, _response_bundle("transaction-response", _run_transaction(store, ctx, conn, entries, plan))
        )
        if ctx.audit is not None:  # an agency's transaction and its AuditEvent commit together
            ctx.audit.within(conn, result)
        return result

    return store.run_write(run, conflict_status=412 if pinned else None)


def _refuse_duplicates(entries: list[Entry]) -> None:
    """Refuse a transaction in which two entries claim the same identity.

    - Two entries with one ``fullUrl`` (bdl-7): a reference to it would silently resolve to
      whichever entry came last.
    - Two conditional writes with the same criteria (conditional PUT/DELETE URLs, POST
      ``ifNoneExist``): each would be resolved against the database as it was before the
      transaction, so both would create, and every later conditional write on those criteria
      would fail with 412. R4 (http.html#transaction) makes overlapping identities a failure;
      plain ``Type/id`` duplicates are refused in writes.apply, this is the same rule for criteria.
    """
    full_urls: dict[str, int] = {}
    criteria: dict[tuple, int] = {}
    for e in entries:
        if e.full_url:
            if e.full_url in full_urls:
                raise FhirError(
                    400,
                    f"Bundle.entry[{e.index}]: fullUrl is the same as entry[{full_urls[e.full_url]}]'s "
                    "(bdl-7: fullUrl must be unique in a Bundle)",
                    "invalid",
                )
            full_urls[e.full_url] = e.index
        query = e.if_none_exist if e.method == "POST" else (e.query if e.rid is None and e.method != "GET" else None)
        if query:
            query = query.split("?", 1)[1] if "?" in query else query
            key = (e.rtype, tuple(sorted(parse_qsl(query, keep_blank_values=True))))
            if key in criteria:
                raise FhirError(
                    400,
                    f"Bundle.entry[{e.index}]: the same conditional criteria as entry[{criteria[key]}]; "
                    "one transaction cannot apply two conditional writes to one resource",
                    "invalid",
                )
            criteria[key] = e.index


def _needs_database(entries: list[Entry]) -> bool:
    return any(e.if_none_exist or (e.method in ("PUT", "DELETE") and e.rid is None) for e in entries)


@dataclass
class _Plan:
    """Resolved entries: the writes (ids assigned, references rewritten, validated, prepared) and the
    answers already known (matched If-None-Exist, conditional deletes that matched nothing)."""

    ops: dict[int, WriteOp]
    answers: dict[int, dict]
    issues: dict[int, list[tuple] | None]


def _resolve(store: Store, ctx: Ctx, conn: Connection | None, entries: list[Entry]) -> _Plan | None:
    """Assign ids, resolve conditional criteria and references, rewrite, validate and prepare.

    ``conn`` None: outside the transaction; returns None when a conditional reference turns up (it
    can only be resolved inside)."""
    idmap: dict[str, str] = {}
    ops: dict[int, WriteOp] = {}
    answers: dict[int, dict] = {}
    ordered = sorted(entries, key=lambda e: ORDER[e.method])
    for e in ordered:
        where = f"Bundle.entry[{e.index}]"
        try:
            if e.method == "GET":
                continue
            rid = e.rid
            if e.method == "POST":
                if e.if_none_exist:
                    found = store.conditional_matches(conn, ctx, e.rtype, e.if_none_exist)
                    if len(found) > 1:
                        raise FhirError(412, "ifNoneExist matches more than one resource", "multiple-matches")
                    if found:
                        row = found[0]
                        answers[e.index] = _answer(200, e.rtype, row.res_id, row.version_id, row.last_updated)
                        _map(idmap, ctx, e, row.res_id)
                        continue
                rid = str(uuid.uuid4())
            elif rid is None:  # conditional PUT / DELETE
                found = store.conditional_matches(conn, ctx, e.rtype, e.query)
                if len(found) > 1:
                    raise FhirError(412, "Conditional criteria match more than one resource", "multiple-matches")
                if found:
                    rid = found[0].res_id
                    if e.resource is not None and e.resource.get("id") not in (None, rid):
                        raise FhirError(400, "The body's id differs from the resource the criteria matched", "invalid")
                elif e.method == "DELETE":
                    answers[e.index] = {"response": {"status": "204 No Content"}}
                    continue
                else:
                    rid = (e.resource or {}).get("id") or str(uuid.uuid4())
            ops[e.index] = WriteOp(e.method, e.rtype, rid, e.resource, if_match=e.if_match)
            _map(idmap, ctx, e, rid)
        except FhirError as exc:
            raise exc.with_prefix(where) from None

    # One walk per resource rewrites the references idmap knows and notes urn:uuid references no
    # entry defines and conditional references (Patient?identifier=...), which must resolve to
    # exactly one existing resource and are rewritten in a second pass.
    unresolved_by: dict[int, list[str]] = {}
    cond_refs: set[str] = set()
    with_cond: list[int] = []
    for index, op in ops.items():
        if op.resource is None:
            continue
        unresolved: list[str] = []
        found_cond: set[str] = set()
        op.resource = _rewrite(op.resource, idmap, unresolved, found_cond)
        unresolved_by[index] = unresolved
        if found_cond:
            cond_refs |= found_cond
            with_cond.append(index)
    if cond_refs:
        if conn is None:
            return None
        cond_map: dict[str, str] = {}
        for ref in cond_refs:
            rtype, criteria = ref.split("?", 1)
            store.check_type(rtype)
            found = store.conditional_matches(conn, ctx, rtype, criteria)
            if len(found) != 1:
                raise FhirError(
                    412 if found else 404,
                    f"Conditional reference {rtype}?... matched {len(found)} resources",
                    "not-found" if not found else "multiple-matches",
                )
            cond_map[ref] = f"{rtype}/{found[0].res_id}"
        for index in with_cond:
            ops[index].resource = _rewrite(ops[index].resource, cond_map, [])

    issues_by_entry: dict[int, list[tuple] | None] = {}
    for index, op in ops.items():
        if op.resource is None:
            continue
        where = f"Bundle.entry[{index}]"
        if unresolved_by[index]:
            raise FhirError(
                400,
                f"{where}: reference {unresolved_by[index][0]!r} does not match any fullUrl in the Bundle",
                "not-found",
            )
        try:
            issues_by_entry[index] = store.validate({**op.resource, "resourceType": op.rtype, "id": op.rid})
        except FhirError as exc:
            raise exc.with_prefix(where) from None
        prepare(op, ctx.base)
    return _Plan(ops, answers, issues_by_entry)


def _run_transaction(
    store: Store, ctx: Ctx, conn: Connection, entries: list[Entry], plan: _Plan | None = None
) -> list[dict]:
    """Write ``entries`` (resolved now, or before as ``plan``) and read the GET entries; the answers
    in entry order. May run more than once (run_write retries lost races): ``plan`` is not modified."""
    now = utcnow()
    if plan is None:
        plan = _resolve(store, ctx, conn, entries)
    ops = {i: op.fresh() for i, op in plan.ops.items()}
    answers = dict(plan.answers)
    issues_by_entry = plan.issues
    try:
        apply(conn, list(ops.values()), now, ctx.base, authorize=store.authorize_op(ctx.grant, conn))
    except FhirError as exc:
        failing = next((i for i, op in ops.items() if op.status == 0 and not op.noop), None)
        raise (exc.with_prefix(f"Bundle.entry[{failing}]") if failing is not None else exc) from None
    for index, op in ops.items():
        if op.method == "DELETE":
            answers[index] = {"response": {"status": "204 No Content"}}
        else:
            answers[index] = _answer(
                op.status,
                op.rtype,
                op.rid,
                op.version,
                op.last_updated,
                op.content if ctx.prefer_return == "representation" else None,
            )
            if ctx.prefer_return == "OperationOutcome":
                issues = validation_hook.issue_dicts(issues_by_entry.get(index))
                if issues:
                    answers[index]["response"]["outcome"] = operation_outcome(issues)
    for e in entries:
        if e.method == "GET":
            try:
                answers[e.index] = _get_entry(store, ctx, e, conn)
            except FhirError as exc:
                raise exc.with_prefix(f"Bundle.entry[{e.index}]") from None
    return [answers[e.index] for e in entries]


def _map(idmap: dict[str, str], ctx: Ctx, e: Entry, rid: str) -> None:
    local = f"{e.rtype}/{rid}"
    if e.full_url:
        idmap[e.full_url] = local
    idmap[f"{ctx.base.rstrip('/')}/{local}"] = local


def _answer(status: int, rtype: str, rid: str, version: int, last_updated, content: str | None = None) -> dict:
    out = {
        "response": {
            "status": f"{status} {REASONS.get(status, '')}".strip(),
            "location": f"{rtype}/{rid}/_history/{version}",
            "etag": f'W/"{version}"',
            "lastModified": to_instant(last_updated),
        }
    }
    if content is not None:
        out["resource"] = content  # JSON text, spliced in by _response_bundle
    return out


def _get_entry(store: Store, ctx: Ctx, e: Entry, conn: Connection | None) -> dict:
    params = parse_qsl(e.query, keep_blank_values=True)
    if e.tail[:1] == ["_history"]:
        vid = e.tail[1] if len(e.tail) == 2 else None
        result = (
            store.vread(ctx, e.rtype, e.rid, vid, conn=conn)
            if vid is not None
            else store.history(ctx, e.rtype, e.rid, params, conn=conn)
        )
    elif e.rid is None:
        result = store.search(ctx, e.rtype, params, conn=conn)
    else:
        result = store.read(ctx, e.rtype, e.rid, conn=conn)
    out = {"response": {"status": f"{result.status} {REASONS.get(result.status, '')}".strip()}}
    if "ETag" in result.headers:
        out["response"]["etag"] = result.headers["ETag"]
    if result.body is not None:
        out["resource"] = result.body if isinstance(result.body, str) else dumps(result.body)
    return out


def batch(store: Store, ctx: Ctx, raw_entries: list) -> Result:
    answers = []
    for index, raw in enumerate(raw_entries):
        try:
            e = _parse_entry(store, ctx, index, raw)
            if e.method == "GET":
                answers.append(_get_entry(store, ctx, e, None))
                continue
            if e.full_url:
                e.full_url = None  # batch entries cannot refer to each other
            answer = store.run_write(
                lambda conn, e=e: _run_transaction(store, ctx, conn, [e]),
                conflict_status=412 if e.if_match is not None else None,
            )
            answers.extend(answer)
        except FhirError as exc:
            answers.append(_error_answer(exc))
        except Exception as exc:  # one entry's bug must not take the others' answers away
            # Earlier entries have committed: a bare 500 for the whole batch would have the client
            # retry them (duplicate creates). This entry alone is answered 500.
            log.error(
                "batch entry %d: unhandled %s:\n%s",
                index,
                describe(exc),
                "".join(traceback.format_tb(exc.__traceback__)),
            )
            answers.append(_error_answer(FhirError(500, f"Bundle.entry[{index}]: internal server error", "exception")))
    return Result(200, _response_bundle("batch-response", answers))


def _error_answer(exc: FhirError) -> dict:
    return {"response": {"status": f"{exc.status} {REASONS.get(exc.status, '')}".strip(), "outcome": exc.outcome()}}


def _response_bundle(kind: str, answers: list[dict]) -> str:
    """Bundle JSON text; entries' ``resource`` may already be JSON text (spliced without re-parsing)."""
    head = dumps({"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": kind})
    parts = []
    for a in answers:
        resource = a.get("resource")
        rest = {k: v for k, v in a.items() if k != "resource"}
        text = dumps(rest)
        if resource is not None:
            res_text = resource if isinstance(resource, str) else dumps(resource)
            text = '{"resource":' + res_text + "," + text[1:]
        parts.append(text)
    return head[:-1] + ',"entry":[' + ",".join(parts) + "]}"
