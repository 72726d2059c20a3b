"""HTTP layer: routing, content negotiation, body limits, authentication and the error envelope.

Everything a client controls is checked here before it reaches the service, and every failure is
answered with an OperationOutcome. Logs carry method, route shape, status and exception class — and
for a database error its primary message and SQLSTATE with quoted values cut (errors.describe) — never
URLs with query strings, bodies, tokens or the database's DETAIL text (which can quote resource JSON).
"""

from __future__ import annotations

import functools
import json
import logging
import traceback
from collections.abc import Callable
from http import HTTPStatus
from urllib.parse import parse_qsl

from werkzeug.urls import iri_to_uri
from werkzeug.wrappers import Request, Response
from werkzeug.wsgi import wrap_file

from ..smart_scopes import Grant
from . import agency_audit, bundles, fhirjson
from .admission import WriteAdmission
from .bulk_export import Exporter
from .errors import FhirError, describe, issue, operation_outcome
from .service import Ctx, Result, Store
from .subscriptions import Subscriptions

log = logging.getLogger("thrive_fhir.store")

FHIR_JSON = "application/fhir+json"
JSON_TYPES = ("application/fhir+json", "application/json", "text/json", "json")
ACCEPT_ANY = (
    "*/*",
    "application/*",
    "application/fhir+json",
    "application/json",
    "text/json",
    "json",
    "application/fhir+ndjson",
    "application/ndjson",
)


class StoreApp:
    """The WSGI application returned by :func:`thrive_fhir.store.create_app`."""

    def __init__(
        self,
        store: Store,
        exporter: Exporter,
        *,
        base_url: str | None,
        token_verifier: Callable[[str], Grant | None] | None,
        audit_reads: bool,
        max_body: int,
        capability: Callable[[str], dict],
        smart_configuration: dict | None,
    ):
        self.store = store
        self.exporter = exporter
        self.base_url = base_url.rstrip("/") if base_url else None
        self.token_verifier = token_verifier
        self.audit_reads = audit_reads
        self.max_body = max_body
        self.capability = capability
        self.smart_configuration = smart_configuration
        self.admission = WriteAdmission()
        #: Topic-based Subscriptions (store/subscriptions); create_app sets it.
        self.subscriptions: Subscriptions | None = None

    # --- WSGI entry ------------------------------------------------------------------------------

    def __call__(self, environ, start_response):
        request = Request(environ)
        try:
            response = self.handle(request)
        except FhirError as exc:
            response = self.error(exc)
        except Exception as exc:
            log.error(
                "unhandled %s on %s %s:\n%s",
                describe(exc),
                request.method,
                _route_shape(_path(environ)),
                "".join(traceback.format_tb(exc.__traceback__)),
            )
            response = self.error(FhirError(500, "Internal server error", "exception"))
        return response(environ, start_response)

    def base(self, request: Request) -> str:
        if self.base_url:
            return self.base_url
        env = request.environ
        return _base_url(
            env.get("wsgi.url_scheme", "http"),
            env.get("HTTP_HOST"),
            env.get("SERVER_NAME", ""),
            env.get("SERVER_PORT", ""),
            env.get("SCRIPT_NAME", ""),
        )

    # --- dispatch --------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        method = request.method
        segs = [s for s in _path(request.environ).split("/") if s]
        params = _query_pairs(request.query_string.decode("latin-1"))
        self.negotiate(request, params)
        if segs == ["metadata"] and method in ("GET", "HEAD"):
            return self.json_response(200, self.capability(self.base(request)))
        if segs[:1] == [".well-known"]:
            if segs == [".well-known", "smart-configuration"] and self.smart_configuration and method == "GET":
                return self.json_response(200, self.smart_configuration, content_type="application/json")
            raise FhirError(404, "Not found", "not-found")
        prefer = request.headers.get("Prefer", "")
        ctx = Ctx(
            base=self.base(request),
            grant=self.authenticate(request),
            strict="handling=strict" in prefer,
            prefer_return=_prefer_return(prefer),
        )
        audit = agency_audit.begin(self.store, ctx, method, segs, request.query_string.decode("latin-1"))
        ctx.audit = audit
        try:
            with self.admission.admit(method, segs):  # writers never take every thread (see admission)
                result = self.route(request, ctx, method, segs, params, prefer)
        except Exception as exc:  # an agency's refused request is audited too (agency_audit)
            if audit is not None:
                audit.failed(exc)
            raise
        if audit is not None:
            audit.done(result)
        if isinstance(result, Response):
            return result
        if (
            audit is None
            and self.audit_reads
            and result.audit
            and result.status == 200
            and method in ("GET", "HEAD", "POST")
        ):
            subtype, entities = result.audit
            self.store.write_audit(ctx, subtype, entities, request.query_string.decode("latin-1") or None)
        return self.result_response(ctx, method, result)

    def route(self, request: Request, ctx: Ctx, method: str, segs: list[str], params, prefer: str):
        store = self.store
        n = len(segs)
        if n == 0:
            if method == "POST":
                return bundles.process(store, ctx, self.body(request))
            raise FhirError(
                400 if method == "GET" else 405,
                "System-level search is not supported; use [base]/[type]",
                "not-supported",
            )
        head = segs[0]
        if head in ("_export", "$export") or segs[-1] == "$export":
            store.consent.refuse_export(ctx.grant)
        if head == "_export":
            return self.export_route(request, ctx, method, segs)
        if head == "$export" and n == 1:
            self.only(method, "GET")
            return self.exporter.kickoff(ctx, "system", request.query_string.decode("latin-1"), prefer, request.url)
        if head == "_history" and n == 1:
            self.only(method, "GET", "HEAD")
            return store.history(ctx, None, None, params)
        store.check_type(head)
        if head == "Subscription" and self.subscriptions is not None:
            return self.subscriptions.api.route(ctx, method, segs, params, functools.partial(self.body, request))
        rtype = head
        if n == 1:
            if method in ("GET", "HEAD"):
                return store.search(ctx, rtype, params)
            if method == "POST":
                return store.create(ctx, rtype, self.body(request), request.headers.get("If-None-Exist"))
            if method == "PUT":
                return store.conditional_update(ctx, rtype, params, self.body(request), request.headers.get("If-Match"))
            if method == "DELETE":
                return store.conditional_delete(ctx, rtype, params)
            raise self.not_allowed(method)
        second = segs[1]
        if n == 2:
            if second == "_search":
                self.only(method, "POST")
                return store.search(ctx, rtype, params + self.form(request))
            if second == "_history":
                self.only(method, "GET", "HEAD")
                return store.history(ctx, rtype, None, params)
            if second == "$export" and rtype == "Patient":
                self.only(method, "GET")
                return self.exporter.kickoff(
                    ctx, "patient", request.query_string.decode("latin-1"), prefer, request.url
                )
            if second.startswith("$"):
                raise FhirError(404, f"Operation {second} is not supported on {rtype}", "not-supported")
            if method in ("GET", "HEAD"):
                return store.read(ctx, rtype, second)
            if method == "PUT":
                return store.update(ctx, rtype, second, self.body(request), request.headers.get("If-Match"))
            if method == "DELETE":
                return store.delete(ctx, rtype, second, request.headers.get("If-Match"))
            raise self.not_allowed(method)
        if segs[2] == "_history":
            self.only(method, "GET", "HEAD")
            if n == 3:
                return store.history(ctx, rtype, second, params)
            if n == 4:
                return store.vread(ctx, rtype, second, segs[3])
        raise FhirError(404, "Unsupported URL for this server", "not-supported")

    def export_route(self, request: Request, ctx: Ctx, method: str, segs: list[str]):
        if len(segs) == 2:
            if method == "DELETE":
                return self.exporter.cancel(ctx, segs[1])
            self.only(method, "GET")
            return self.exporter.status(ctx, segs[1])
        if len(segs) == 3:
            self.only(method, "GET")
            path = self.exporter.file_path(ctx, segs[1], segs[2])
            fh = open(path, "rb")  # closed by the WSGI server through wrap_file
            response = Response(
                wrap_file(request.environ, fh, buffer_size=1 << 16),
                200,
                content_type="application/fhir+ndjson",
                direct_passthrough=True,
            )
            response.content_length = path.stat().st_size
            return response
        raise FhirError(404, "Unknown export URL", "not-found")

    # --- request checks --------------------------------------------------------------------------

    @staticmethod
    def only(method: str, *allowed: str) -> None:
        if method not in allowed:
            raise FhirError(
                405, f"{method} is not allowed here", "not-supported", headers={"Allow": ", ".join(allowed)}
            )

    @staticmethod
    def not_allowed(method: str) -> FhirError:
        return FhirError(405, f"{method} is not allowed here", "not-supported")

    @staticmethod
    def negotiate(request: Request, params) -> None:
        fmt = dict(params).get("_format")
        if fmt and fmt.lower() not in JSON_TYPES:
            raise FhirError(406, "Only JSON is supported (_format=json)", "not-supported")
        accept = request.headers.get("Accept")
        if accept:
            kinds = [part.split(";")[0].strip().lower() for part in accept.split(",")]
            if not any(k in ACCEPT_ANY for k in kinds):
                raise FhirError(406, "Only application/fhir+json can be produced", "not-supported")

    def authenticate(self, request: Request) -> Grant | None:
        if self.token_verifier is None:
            return None
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise FhirError(
                401,
                "A bearer access token is required",
                "login",
                headers={"WWW-Authenticate": 'Bearer realm="thrive-fhir"'},
            )
        try:
            grant = self.token_verifier(token.strip())
        except Exception as exc:
            log.error("token verifier raised %s", type(exc).__name__)
            grant = None
        if grant is None or grant.expired():
            raise FhirError(
                401,
                "The access token is invalid or expired",
                "login",
                headers={"WWW-Authenticate": 'Bearer realm="thrive-fhir", error="invalid_token"'},
            )
        return grant

    def raw_body(self, request: Request) -> bytes:
        length = request.content_length
        if length is not None and length > self.max_body:
            raise FhirError(413, f"Request body larger than {self.max_body} bytes", "too-costly")
        data = request.stream.read(self.max_body + 1)
        if len(data) > self.max_body:
            raise FhirError(413, f"Request body larger than {self.max_body} bytes", "too-costly")
        return data

    def body(self, request: Request):
        ctype = (request.mimetype or "").lower()
        if ctype and ctype not in JSON_TYPES:
            raise FhirError(415, "Send FHIR resources as application/fhir+json", "not-supported")
        data = self.raw_body(request)
        if not data.strip():
            raise FhirError(400, "The request body is empty", "required")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise FhirError(400, "The request body is not valid UTF-8", "structure") from None
        return fhirjson.loads(text)  # decimals as sent, FHIR string rules, bounded depth

    def form(self, request: Request) -> list[tuple[str, str]]:
        if not request.content_length:
            return []
        if request.mimetype != "application/x-www-form-urlencoded":
            raise FhirError(415, "POST _search takes application/x-www-form-urlencoded", "not-supported")
        raw = self.raw_body(request)
        try:
            return parse_qsl(raw.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            raise FhirError(400, "The form body is not valid UTF-8", "structure") from None

    # --- responses -------------------------------------------------------------------------------

    def result_response(self, ctx: Ctx, method: str, result: Result) -> Response:
        body = result.body
        if method in ("POST", "PUT", "DELETE") and result.outcome is not None:  # single-resource writes
            if ctx.prefer_return == "minimal":
                body = None
            elif ctx.prefer_return == "OperationOutcome":
                body = result.outcome
        return self.json_response(result.status, body, result.headers)

    def json_response(
        self, status: int, body, headers: dict | None = None, content_type: str = FHIR_JSON
    ) -> JsonResponse:
        data = None
        if body is not None:
            text = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"), ensure_ascii=False)
            data = text.encode("utf-8")
        return JsonResponse(status, data, headers, content_type)

    def error(self, exc: FhirError) -> Response:
        return self.json_response(exc.status, exc.outcome(), exc.headers)


class JsonResponse:
    """A finished JSON answer, handed to the WSGI server as it is.

    werkzeug's Response re-copies and re-checks every header per request; with answers that are
    always one encoded body and a few known headers that was a fifth of a read's cost. The rules kept
    from it: no body (and no Content-Type) when there is nothing to send, no Content-Length on 204,
    HEAD gets the headers without the body, Location as a URI.
    """

    __slots__ = ("body", "content_type", "headers", "status")

    def __init__(self, status: int, body: bytes | None, headers: dict | None = None, content_type: str = FHIR_JSON):
        self.status = status
        self.body = body
        self.headers = headers
        self.content_type = content_type

    def __call__(self, environ, start_response):
        status, body = self.status, self.body
        out = []
        if body is not None:
            out.append(("Content-Type", f"{self.content_type}; charset=utf-8"))
        if status != 204 and status >= 200:
            out.append(("Content-Length", str(len(body)) if body is not None else "0"))
        for key, value in (self.headers or {}).items():
            if value:
                if key in ("Location", "Content-Location") and not value.isascii():
                    value = iri_to_uri(value)
                out.append((key, value))
        start_response(_status_line(status), out)
        if body is None or environ.get("REQUEST_METHOD") == "HEAD" or status in (204, 304) or status < 200:
            return []
        return [body]


def _query_pairs(query: str) -> list[tuple[str, str]]:
    """``parse_qsl(query, keep_blank_values=True)``; without escapes there is nothing to decode."""
    if "%" in query or "+" in query:
        return parse_qsl(query, keep_blank_values=True)
    return [(name, value) for name, _, value in (part.partition("=") for part in query.split("&") if part)]


@functools.cache
def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Unknown"


def _path(environ) -> str:
    """The request path, decoded: WSGI servers pass PATH_INFO as latin-1 text of the raw bytes."""
    raw = environ.get("PATH_INFO", "")
    return raw.encode("latin-1").decode("utf-8", "replace") if not raw.isascii() else raw


@functools.lru_cache(maxsize=64)  # the Host header is client-controlled: keep the cache bounded
def _base_url(scheme: str, host: str | None, server_name: str, server_port: str, script_name: str) -> str:
    """The base URL a client used, as werkzeug computes it (its Request is the reference)."""
    environ = {
        "wsgi.url_scheme": scheme,
        "SERVER_NAME": server_name,
        "SERVER_PORT": server_port,
        "SCRIPT_NAME": script_name,
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "REQUEST_METHOD": "GET",
    }
    if host is not None:
        environ["HTTP_HOST"] = host
    request = Request(environ)
    return request.host_url.rstrip("/") + request.script_root


def _prefer_return(prefer: str) -> str:
    for part in prefer.split(","):
        for token in part.split(";"):
            key, _, value = token.strip().partition("=")
            if key == "return":
                return value.strip('"')
    return ""


def _route_shape(path: str) -> str:
    """``/Observation/abc/_history/2`` -> ``/Observation/{id}/_history/{v}``: no ids in logs."""
    segs = [s for s in path.split("/") if s]
    shaped = [s if i == 0 or s.startswith("_") or s.startswith("$") else "{x}" for i, s in enumerate(segs)]
    return "/" + "/".join(shaped)


__all__ = ["StoreApp", "issue", "operation_outcome"]
