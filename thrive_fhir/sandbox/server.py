"""Putting the sandbox together on one origin, and running WSGI apps on loopback threads.

``build_sandbox`` composes the EHR page, the authorization server and the EHR's FHIR store into one
WSGI app with Werkzeug's ``DispatcherMiddleware`` (longest mount prefix wins, so
``/fhir/.well-known`` reaches the auth server while the rest of ``/fhir`` reaches the store).
``ServerThread`` runs any WSGI app on a background thread with Werkzeug's threaded development
server and stops it cleanly; the sandbox is a development tool, so that server is the right size.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from .auth import create_auth_app, smart_configuration_app
from .auth_state_mirror import AuthStateMirror
from .authority import Authority
from .ehr import create_ehr_app
from .keys import SigningKey
from .patient_lookup import PatientLookup
from .registry import Registry

log = logging.getLogger("thrive.sandbox")


class _QuietHandler(WSGIRequestHandler):
    """Logs method, path and status only: query strings carry codes, state and launch handles."""

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        path = urlsplit(self.path).path
        log.debug("%s %s %s", self.command, path, code)

    def log_error(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        log.debug("http server: " + format, *args)


class ServerThread:
    """A WSGI app served on ``host:port`` (0 = pick a free port) from a daemon thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, name: str = "server") -> None:
        # Bind first, build the app later: the app needs its own URL, which needs the real port.
        # threaded=True builds werkzeug's ThreadedWSGIServer, whose request threads are daemons
        # (daemon_threads = True), so a hung request never keeps the process alive.
        self._server: BaseWSGIServer = make_server(host, port, _not_ready, threaded=True, request_handler=_QuietHandler)
        self.host = host
        self.port = self._server.server_port
        self.name = name
        self._thread: threading.Thread | None = None

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, app: Callable[..., Any]) -> ServerThread:
        self._server.app = app
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name=f"thrive-{self.name}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> ServerThread:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def free_port() -> int:
    """A loopback port nothing listens on right now (for child processes that bind their own)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _not_ready(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
    return [b"starting"]


def _not_found(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("404 Not Found", [("Content-Type", "application/json")])
    return [b'{"error": "not_found"}']


class SimulatedRequestErrors:
    """WSGI middleware in front of a FHIR store: answers 401 for access tokens issued under the
    ``request_invalid_token`` / ``request_expired_token`` mock switches, the way a resource server
    refuses a revoked or expired token (RFC 6750 section 3.1), before the store sees the request."""

    MESSAGES: ClassVar[dict[str, str]] = {
        "request_invalid_token": "The access token is invalid (simulated: request_invalid_token)",
        "request_expired_token": "The access token expired (simulated: request_expired_token)",
    }

    def __init__(self, app: Any, authority: Authority) -> None:
        self.app = app
        self.authority = authority

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        header = environ.get("HTTP_AUTHORIZATION") or ""
        if header[:7].lower() == "bearer ":
            simulated = self.authority.simulated_request_error(header[7:].strip())
            if simulated:
                message = self.MESSAGES[simulated]
                body = json.dumps(
                    {
                        "resourceType": "OperationOutcome",
                        "issue": [{"severity": "error", "code": "login", "diagnostics": message}],
                    }
                ).encode()
                start_response(
                    "401 Unauthorized",
                    [
                        ("Content-Type", "application/fhir+json"),
                        ("Content-Length", str(len(body))),
                        (
                            "WWW-Authenticate",
                            f'Bearer realm="sandbox", error="invalid_token", error_description="{message}"',
                        ),
                        ("Cache-Control", "no-store"),
                    ],
                )
                return [body]
        return self.app(environ, start_response)


def protected_store(store_app: Any, authority: Authority, fhir_path: str = "/fhir") -> DispatcherMiddleware:
    """A FHIR store mounted at ``fhir_path`` with its SMART discovery document beside it."""
    return DispatcherMiddleware(
        _not_found,
        {
            fhir_path: SimulatedRequestErrors(store_app, authority),
            f"{fhir_path}/.well-known": smart_configuration_app(authority),
        },
    )


def create_store(database_url: str, base_url: str, verifier: Callable[[str], Any], **kwargs: Any) -> Any:
    """The embedded FHIR store (thrive_fhir.store) with the sandbox's token check."""
    from thrive_fhir.store import create_app

    return create_app(database_url, base_url=base_url, token_verifier=verifier, **kwargs)


@dataclass
class Sandbox:
    """One sandbox origin: the composed WSGI app and the parts tests and the demo need."""

    wsgi: Any
    authority: Authority
    fhir_base: str
    store: Any
    patient_lookup: PatientLookup


def build_sandbox(
    database_url: str,
    origin: str,
    *,
    registry: Registry | None = None,
    key: SigningKey | None = None,
    app_launch_url: str | None = None,
    extra_fhir_bases: list[str] | None = None,
    store_app: Any = None,
    persist_state: bool = False,
    **store_kwargs: Any,
) -> Sandbox:
    """Compose EHR page + auth server + EHR FHIR store for ``origin`` (e.g. http://127.0.0.1:8100).

    ``extra_fhir_bases`` are other stores (the shared cross-agency store in the demo) that accept
    this server's tokens: ``aud`` may name them, and client_credentials clients may target them.
    ``persist_state``: keep the auth server's codes, refresh tokens, sign-ins and used assertion
    ids in ``database_url`` too (table ``sandbox_auth_state``), so a restart logs nobody out.
    """
    origin = origin.rstrip("/")
    fhir_base = f"{origin}/fhir"
    registry = registry or Registry()
    state_mirror = AuthStateMirror(database_url) if persist_state else None
    authority = Authority(
        origin,
        registry,
        key or SigningKey.generate("RS256"),
        fhir_bases=[fhir_base, *(extra_fhir_bases or [])],
        state_mirror=state_mirror,
    )
    if store_app is None:
        # The CapabilityStatement carries the oauth-uris extension, for clients whose discovery
        # falls back to /metadata (the well_known_404 mock switch).
        store_kwargs.setdefault("smart_configuration", authority.smart_configuration())
        store_app = create_store(database_url, fhir_base, authority.token_verifier(fhir_base), **store_kwargs)
    patient_lookup = PatientLookup(
        fhir_base, lambda: authority.mint_internal_token(fhir_base, "system/Patient.rs"), wsgi_app=store_app
    )
    authority.patient_lookups[fhir_base] = patient_lookup
    if app_launch_url is None:
        app_launch_url = next((c.launch_url for c in registry.clients.values() if c.launch_url), None)
    ehr = create_ehr_app(authority, patient_lookup, fhir_base, app_launch_url)
    wsgi = DispatcherMiddleware(
        ehr,
        {
            "/auth": create_auth_app(authority),
            "/fhir": SimulatedRequestErrors(store_app, authority),
            "/fhir/.well-known": smart_configuration_app(authority),
        },
    )
    return Sandbox(wsgi, authority, fhir_base, store_app, patient_lookup)
