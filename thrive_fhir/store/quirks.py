"""Quirks mode: make the embedded store behave like FHIR servers sites really run, for testing only.

The sync worker must cope with shared stores that differ from the FHIR specification's easy path.
Those servers cannot be installed here, so ``thrive store serve --quirks ...`` wraps the store's WSGI
app in :class:`QuirksMiddleware`, which reproduces each behaviour we have met. Nothing in the store
itself changes; without ``--quirks`` this module is never imported.

Quirks (comma-separated names, or ``medplum`` for all of them):

- ``batch-transactions``: a ``transaction`` Bundle is processed entry by entry, like a batch: a
  failing entry does not roll back the others, and the answer is a 200 ``transaction-response``
  whose entries carry their own statuses. Medplum 5.x does this unless the project feature
  ``transaction-bundles`` is switched on (https://www.medplum.com/docs/fhir-datastore/fhir-batch-requests).
- ``server-ids``: client-assigned ids are refused. ``PUT Type/<id>`` for an id the store does not
  hold answers 404 (as for a Medplum client that is not a super-admin); ``POST`` and a conditional
  ``PUT Type?criteria`` that creates ignore any id in the body and assign one.
- ``empty-errors``: under ``Prefer: return=minimal`` errors have empty bodies (no OperationOutcome),
  and successful writes carry no ``ETag`` and no version in ``Location`` (seen on Medplum).
- ``first-scope``: the store requires a bearer token from its own token endpoint
  (``/auth/token``, advertised in ``/.well-known/smart-configuration``), and a token grants only the
  FIRST wildcard scope requested: ``system/*.rs system/*.cu`` is read-only (Medplum's behaviour).
  The response's ``scope`` still echoes everything asked for, so only a real write shows the gap.
  THE TOKEN ENDPOINT CHECKS NO CREDENTIALS: it is a test double; never run quirks mode on real data.
- ``max-updates=N`` (``medplum`` uses 50): a Bundle with more than N write entries is refused with
  400 as a whole (Medplum limits the updates per Bundle).
"""

from __future__ import annotations

import io
import json
import secrets
import threading
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl

from ..smart_scopes import Grant

ALL = ("batch-transactions", "server-ids", "empty-errors", "first-scope")
MEDPLUM_MAX_UPDATES = 50
TOKEN_PATH = "/auth/token"  # noqa: S105  a URL path, not a secret


class QuirksError(ValueError):
    """An unknown quirk name; one readable line for the CLI."""


@dataclass(frozen=True)
class Quirks:
    batch_transactions: bool = False
    server_ids: bool = False
    empty_errors: bool = False
    first_scope: bool = False
    max_updates: int | None = None

    @classmethod
    def parse(cls, spec: str) -> Quirks:
        names: dict[str, bool] = {}
        max_updates: int | None = None
        for raw in (spec or "").split(","):
            name = raw.strip().lower()
            if not name:
                continue
            if name == "medplum":
                names.update({n: True for n in ALL})
                max_updates = MEDPLUM_MAX_UPDATES
            elif name.startswith("max-updates="):
                value = name.split("=", 1)[1]
                if not value.isdigit() or int(value) < 1:
                    raise QuirksError("max-updates needs a positive number, e.g. max-updates=50")
                max_updates = int(value)
            elif name in ALL:
                names[name] = True
            else:
                raise QuirksError(f"unknown quirk {name!r} (known: medplum, {', '.join(ALL)}, max-updates=N)")
        return cls(
            batch_transactions=bool(names.get("batch-transactions")),
            server_ids=bool(names.get("server-ids")),
            empty_errors=bool(names.get("empty-errors")),
            first_scope=bool(names.get("first-scope")),
            max_updates=max_updates,
        )

    def describe(self) -> str:
        flags = (self.batch_transactions, self.server_ids, self.empty_errors, self.first_scope)
        on = [n for n, f in zip(ALL, flags, strict=True) if f]
        if self.max_updates:
            on.append(f"max-updates={self.max_updates}")
        return ", ".join(on) or "none"


def first_wildcard_only(scope: str) -> str:
    """Medplum's reading of a scope string: non-wildcard scopes stay, and of the wildcard ones
    (``system/*.x``, ``user/*.x``, ``patient/*.x``) only the first counts."""
    kept, seen_wildcard = [], False
    for token in scope.split():
        if "/*." in token:
            if seen_wildcard:
                continue
            seen_wildcard = True
        kept.append(token)
    return " ".join(kept)


class TokenBook:
    """Opaque tokens issued by the quirks token endpoint (in memory; a restart forgets them)."""

    def __init__(self, lifetime: float = 300.0):
        self.lifetime = lifetime
        self._tokens: dict[str, Grant] = {}
        self._lock = threading.Lock()

    def issue(self, client_id: str, scope: str) -> str:
        token = secrets.token_urlsafe(24)
        grant = Grant.from_scope_string(
            client_id or "quirks-client", first_wildcard_only(scope), expires=time.time() + self.lifetime
        )
        with self._lock:
            self._tokens[token] = grant
        return token

    def verify(self, token: str) -> Grant | None:
        with self._lock:
            return self._tokens.get(token)


@dataclass
class _Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def json(self):
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


class QuirksMiddleware:
    """WSGI middleware around the store app (see the module docstring)."""

    def __init__(self, app, quirks: Quirks, tokens: TokenBook | None = None):
        self.app = app
        self.quirks = quirks
        self.tokens = tokens
        self.max_body = getattr(app, "max_body", None)

    # --- plumbing --------------------------------------------------------------------------------
    def _call(
        self,
        environ,
        method: str | None = None,
        path: str | None = None,
        query: str | None = None,
        body: bytes | None = None,
        headers: dict[str, str | None] | None = None,
    ) -> _Answer:
        env = dict(environ)
        if method is not None:
            env["REQUEST_METHOD"] = method
        if path is not None:
            env["PATH_INFO"] = path
        if query is not None:
            env["QUERY_STRING"] = query
        if body is not None:
            env["wsgi.input"] = io.BytesIO(body)
            env["CONTENT_LENGTH"] = str(len(body))
            env["CONTENT_TYPE"] = "application/fhir+json"
        elif method is not None:
            env["wsgi.input"] = io.BytesIO(b"")
            env["CONTENT_LENGTH"] = "0"
        for k, v in (headers or {}).items():
            key = "HTTP_" + k.upper().replace("-", "_")
            if v is None:
                env.pop(key, None)
            else:
                env[key] = v
        captured: dict = {}

        def start_response(status, headers, exc_info=None):
            captured["status"] = int(status.split(" ", 1)[0])
            captured["headers"] = list(headers)
            return lambda data: None

        chunks = self.app(env, start_response)
        try:
            data = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close:
                close()
        return _Answer(captured["status"], captured["headers"], data)

    @staticmethod
    def _send(start_response, answer: _Answer):
        headers = [(k, v) for k, v in answer.headers if k.lower() != "content-length"]
        if answer.status != 204:
            headers.append(("Content-Length", str(len(answer.body))))
        start_response(f"{answer.status} {_REASONS.get(answer.status, 'Status')}", headers)
        return [answer.body]

    @staticmethod
    def _outcome(status: int, text: str, code: str = "processing") -> _Answer:
        body = json.dumps(
            {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code, "diagnostics": text}]}
        ).encode()
        return _Answer(status, [("Content-Type", "application/fhir+json; charset=utf-8")], body)

    # --- entry -----------------------------------------------------------------------------------
    def __call__(self, environ, start_response):
        answer = self.handle(environ)
        return self._send(start_response, self.finish(environ, answer))

    def handle(self, environ) -> _Answer:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "") or "/"
        segs = [s for s in path.split("/") if s]
        q = self.quirks
        if q.first_scope and segs == [".well-known", "smart-configuration"]:
            return self._smart_configuration(environ)
        if q.first_scope and path.rstrip("/") == TOKEN_PATH:
            return self._token(environ)
        if not (q.batch_transactions or q.server_ids or q.max_updates):
            return self._call(environ)
        if method == "POST" and not segs:
            raw = _read(environ)
            try:
                bundle = json.loads(raw or b"null")
            except ValueError:
                bundle = None
            if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
                return self._call(environ, body=raw)
            return self._bundle(environ, bundle, raw)
        if q.server_ids and method == "PUT" and len(segs) == 2:
            if not self._exists(environ, segs[0], segs[1]):
                return self._outcome(404, "Not found", "not-found")
        if q.server_ids and method in ("POST", "PUT") and len(segs) == 1:
            raw = _read(environ)
            try:
                body = json.loads(raw or b"null")
            except ValueError:
                return self._call(environ, body=raw)
            if isinstance(body, dict) and "id" in body:
                body = {k: v for k, v in body.items() if k != "id"}
                return self._call(environ, body=json.dumps(body).encode())
            return self._call(environ, body=raw)
        return self._call(environ)

    def finish(self, environ, answer: _Answer) -> _Answer:
        """``empty-errors``: under return=minimal, no error bodies and no versions on success."""
        if not self.quirks.empty_errors or "return=minimal" not in environ.get("HTTP_PREFER", ""):
            return answer
        if answer.status >= 400:
            return _Answer(answer.status, [(k, v) for k, v in answer.headers if k.lower() != "content-type"], b"")
        headers = [(k, v) for k, v in answer.headers if k.lower() != "etag"]
        headers = [(k, _unversioned(v) if k.lower() in ("location", "content-location") else v) for k, v in headers]
        body = answer.body
        doc = answer.json() if body else None
        if (
            isinstance(doc, dict)
            and doc.get("resourceType") == "Bundle"
            and str(doc.get("type", "")).endswith("-response")
        ):
            for e in doc.get("entry") or []:
                resp = e.get("response") or {}
                resp.pop("etag", None)
                resp.pop("outcome", None)
                if "location" in resp:
                    resp["location"] = _unversioned(resp["location"])
            body = json.dumps(doc).encode()
        return _Answer(answer.status, headers, body)

    # --- Bundles ---------------------------------------------------------------------------------
    def _bundle(self, environ, bundle: dict, raw: bytes) -> _Answer:
        q = self.quirks
        entries: list = bundle["entry"] if isinstance(bundle.get("entry"), list) else []
        writes = sum(
            1
            for e in entries
            if isinstance(e, dict) and (e.get("request") or {}).get("method") in ("PUT", "POST", "PATCH", "DELETE")
        )
        if q.max_updates and writes > q.max_updates:
            return self._outcome(400, f"Bundle has {writes} updates; at most {q.max_updates} are allowed", "too-costly")
        if q.server_ids:
            entries = [self._server_id_entry(environ, e) for e in entries]
        if bundle.get("type") == "transaction" and q.batch_transactions:
            return self._as_batch(environ, entries)
        if q.server_ids:
            if bundle.get("type") == "transaction":
                refused = next((i for i, e in enumerate(entries) if isinstance(e, dict) and e.get("_refused")), None)
                if refused is not None:
                    return self._outcome(404, f"Bundle.entry[{refused}]: Not found", "not-found")
                return self._call(environ, body=json.dumps(dict(bundle, entry=entries)).encode())
            return self._as_batch(environ, entries, kind="batch-response")
        return self._call(environ, body=raw)

    def _server_id_entry(self, environ, entry):
        """Mark PUT Type/<unknown id> as refused; drop body ids where the server would assign one."""
        if not isinstance(entry, dict):
            return entry
        req = entry.get("request") or {}
        method, url = req.get("method"), str(req.get("url") or "")
        path, _, query = url.partition("?")
        segs = [s for s in path.split("/") if s]
        resource = entry.get("resource")
        if method == "PUT" and len(segs) == 2 and not query:
            if not self._exists(environ, segs[0], segs[1]):
                return dict(entry, _refused=True)
        if method in ("POST", "PUT") and len(segs) == 1 and isinstance(resource, dict) and "id" in resource:
            return dict(entry, resource={k: v for k, v in resource.items() if k != "id"})
        return entry

    def _exists(self, environ, rtype: str, rid: str) -> bool:
        answer = self._call(environ, "GET", f"/{rtype}/{rid}", "", headers={"Prefer": None, "If-Match": None})
        return answer.status == 200

    def _as_batch(self, environ, entries: list, kind: str = "transaction-response") -> _Answer:
        """Each entry on its own (a one-entry transaction), urn:uuid references resolved as we go.

        Medplum labels the answer ``transaction-response`` although nothing was atomic; only the
        entries' own statuses tell what happened."""
        idmap: dict[str, str] = {}
        answers = []
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict):
                answers.append(_entry_error(400, f"Bundle.entry[{index}] is not an object"))
                continue
            if entry.get("_refused"):
                answers.append(_entry_error(404, "Not found", "not-found"))
                continue
            entry = _resolve(entry, idmap)
            one = {"resourceType": "Bundle", "type": "transaction", "entry": [entry]}
            answer = self._call(environ, "POST", "/", "", json.dumps(one).encode())
            doc = answer.json()
            if answer.status < 300 and isinstance(doc, dict) and doc.get("entry"):
                out = doc["entry"][0]
                loc = (out.get("response") or {}).get("location") or ""
                full = entry.get("fullUrl")
                if full and loc:
                    idmap[full] = "/".join(loc.split("/")[:2])
                answers.append(out)
            else:
                status = answer.status if answer.status >= 400 else 500
                outcome = doc if isinstance(doc, dict) and doc.get("resourceType") == "OperationOutcome" else None
                answers.append(
                    {
                        "response": {
                            "status": f"{status} {_REASONS.get(status, '')}".strip(),
                            **({"outcome": outcome} if outcome else {}),
                        }
                    }
                )
        body = {"resourceType": "Bundle", "type": kind, "entry": answers}
        return _Answer(200, [("Content-Type", "application/fhir+json; charset=utf-8")], json.dumps(body).encode())

    # --- token endpoint (first-scope) ------------------------------------------------------------
    def _base(self, environ) -> str:
        host = environ.get("HTTP_HOST") or f"{environ.get('SERVER_NAME')}:{environ.get('SERVER_PORT')}"
        return f"{environ.get('wsgi.url_scheme', 'http')}://{host}{environ.get('SCRIPT_NAME', '')}"

    def _smart_configuration(self, environ) -> _Answer:
        doc = {
            "token_endpoint": self._base(environ) + TOKEN_PATH,
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
            "grant_types_supported": ["client_credentials"],
            "scopes_supported": ["system/*.rs", "system/*.cu", "system/*.cruds"],
            "capabilities": ["client-confidential-asymmetric"],
        }
        return _Answer(200, [("Content-Type", "application/json")], json.dumps(doc).encode())

    def _token(self, environ) -> _Answer:
        if self.tokens is None:  # first-scope without a TokenBook (wrap() always gives one): no token endpoint
            return self._outcome(404, "This server has no token endpoint")
        if environ.get("REQUEST_METHOD") != "POST":
            return self._outcome(405, "POST the token request")
        form = dict(parse_qsl(_read(environ).decode("utf-8", "replace")))
        if form.get("grant_type") != "client_credentials":
            body = json.dumps({"error": "unsupported_grant_type"}).encode()
            return _Answer(400, [("Content-Type", "application/json")], body)
        scope = form.get("scope", "")
        token = self.tokens.issue(_client_of(form.get("client_assertion", "")), scope)
        body = json.dumps(
            {"access_token": token, "token_type": "bearer", "expires_in": int(self.tokens.lifetime), "scope": scope}
        ).encode()
        return _Answer(200, [("Content-Type", "application/json"), ("Cache-Control", "no-store")], body)


def wrap(make_app, spec: str):
    """Build the store app through ``make_app(token_verifier=...)`` and wrap it for ``spec``."""
    quirks = Quirks.parse(spec)
    tokens = TokenBook() if quirks.first_scope else None
    app = make_app(token_verifier=tokens.verify if tokens else None)
    return QuirksMiddleware(app, quirks, tokens)


def _read(environ) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    data = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(data)
    return data


def _client_of(assertion: str) -> str:
    """The ``iss`` of a client assertion, read but NOT verified (test double)."""
    import base64

    try:
        payload = assertion.split(".")[1]
        return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))).get("iss") or "")
    except (IndexError, ValueError):
        return ""


def _unversioned(location: str) -> str:
    return location.split("/_history/", 1)[0]


def _entry_error(status: int, text: str, code: str = "invalid") -> dict:
    return {
        "response": {
            "status": f"{status} {_REASONS.get(status, '')}".strip(),
            "outcome": {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": code, "diagnostics": text}],
            },
        }
    }


def _resolve(entry: dict, idmap: dict[str, str]) -> dict:
    if not idmap:
        return entry

    def walk(node):
        if isinstance(node, dict):
            return {
                k: (idmap.get(v, v) if k == "reference" and isinstance(v, str) else walk(v)) for k, v in node.items()
            }
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    out = dict(entry)
    if "resource" in out:
        out["resource"] = walk(out["resource"])
    return out


_REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    412: "Precondition Failed",
    422: "Unprocessable Entity",
    500: "Internal Server Error",
}
