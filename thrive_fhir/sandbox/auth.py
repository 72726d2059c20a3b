"""HTTP face of the sandbox authorization server (SMART App Launch 2.2). DEVELOPMENT AND TESTING ONLY.

Mounted at ``/auth`` on the sandbox origin. Routes::

    GET/POST /authorize        authorization endpoint (EHR launch and standalone launch)
    GET/POST /login            pick a sandbox user (no password: this is a sandbox)
    GET/POST /select-patient   standalone patient picker
    GET/POST /consent          tick or untick scopes, approve or deny
    POST     /token            authorization_code, refresh_token, client_credentials
    POST     /introspect       RFC 7662
    GET      /jwks             public keys for id_token and access token signatures
    GET      /.well-known/openid-configuration

``smart_configuration_app`` serves ``.well-known/smart-configuration`` under a FHIR base.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, jsonify, redirect, render_template, request

from . import DEV_ONLY_NOTICE, scope_policy
from .authority import Authority, AuthorizeError, AuthRequest
from .errors import OAuthError
from .patient_lookup import PatientLookupError
from .quirks import discovery_document

TEMPLATES = Path(__file__).with_name("templates")
SESSION_COOKIE = "sandbox_auth_session"

#: Plain-language labels for the consent page.
_LETTERS = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}
_NAMED = {
    "openid": "Confirm who you are to the app (OpenID Connect)",
    "fhirUser": "Tell the app which staff record is yours",
    "profile": "Share your name with the app",
    "online_access": "Keep access while you are signed in to the EHR",
    "offline_access": "Keep access after you sign out",
    "launch": "Open with the patient currently on screen",
    "launch/patient": "Open with a patient you choose",
    "launch/encounter": "Open with the current encounter",
}


def describe_scope(scope: str) -> str:
    if scope in _NAMED:
        return _NAMED[scope]
    parsed = scope_policy.resource_scope(scope)
    if parsed is None:
        return scope
    verbs = ", ".join(_LETTERS[ch] for ch in "cruds" if ch in parsed.permissions)
    what = "all record types" if parsed.resource_type == "*" else parsed.resource_type
    whose = {"patient": "for this patient", "user": "that you can see", "system": "for the whole system"}
    return f"{verbs.capitalize()} {what} {whose[parsed.context]}"


def _no_store(resp: Response) -> Response:
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Pragma"] = "no-cache"
    return resp


def _oauth_json(exc: OAuthError) -> Response:
    resp = jsonify(exc.body())
    resp.status_code = exc.status
    if exc.status == 401 and (request.headers.get("Authorization") or "").lower().startswith("basic "):
        resp.headers["WWW-Authenticate"] = 'Basic realm="sandbox"'
    return _no_store(resp)


def _form() -> dict[str, str]:
    """Form fields as a plain dict; a repeated OAuth parameter is itself an error (RFC 6749 3.1)."""
    out: dict[str, str] = {}
    for key in request.form:
        values = request.form.getlist(key)
        if len(values) > 1:
            raise OAuthError("invalid_request", f"parameter {key} is repeated")
        out[key] = values[0]
    return out


def create_auth_app(authority: Authority) -> Flask:
    """The Flask app for ``/auth``; ``authority`` holds every decision and all state."""
    app = Flask(__name__, template_folder=str(TEMPLATES))
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024

    def frame_ancestors() -> str:
        # EHR launch runs the authorize/consent pages inside the app's iframe inside the EHR page,
        # so both the sandbox origin and every registered app origin are ancestors.
        origins = {"'self'"}
        for client in authority.registry.clients.values():
            for url in (*client.redirect_uris, client.launch_url or ""):
                parts = urlsplit(url)
                if parts.scheme in ("http", "https") and parts.netloc:
                    origins.add(f"{parts.scheme}://{parts.netloc}")
        return " ".join(sorted(origins))

    @app.after_request
    def headers(resp: Response) -> Response:
        resp.headers.setdefault("Cache-Control", "no-store")
        resp.headers["X-Sandbox"] = "development and testing only"
        if resp.mimetype == "text/html":
            resp.headers["Content-Security-Policy"] = f"frame-ancestors {frame_ancestors()}"
        return resp

    def page(template: str, status: int = 200, **ctx: Any) -> Response:
        resp = Response(render_template(template, notice=DEV_ONLY_NOTICE, **ctx), status=status,
                        mimetype="text/html")
        return resp

    def error_page(error: str, description: str, status: int = 400) -> Response:
        if request.accept_mimetypes.best == "application/json":
            resp = jsonify({"error": error, "error_description": description})
            resp.status_code = status
            return resp
        return page("auth_error.html", status, error=error, description=description)

    def next_step(req: AuthRequest) -> Response:
        if req.user is None:
            return redirect(f"{request.script_root}/login?req={req.id}", 303)
        if req.needs_patient:
            return redirect(f"{request.script_root}/select-patient?req={req.id}", 303)
        if req.client.auto_approve:
            return redirect(authority.approve(req.id), 303)
        return redirect(f"{request.script_root}/consent?req={req.id}", 303)

    def pending_or_error() -> AuthRequest | Response:
        req = authority.pending(request.values.get("req"))
        if req is None:
            return error_page("invalid_request",
                              "This sign-in request has expired or is unknown. Relaunch the app.")
        return req

    @app.route("/authorize", methods=["GET", "POST"])
    def authorize() -> Response:
        params = {k: request.values.get(k) for k in request.values}
        session_user = authority.session_user(request.cookies.get(SESSION_COOKIE))
        try:
            req = authority.begin_authorization(params, session_user)
        except AuthorizeError as exc:
            if exc.redirect_uri is None:
                return error_page(exc.error, exc.description)
            return redirect(exc.location(), 302)
        return next_step(req)

    @app.route("/login", methods=["GET", "POST"])
    def login() -> Response:
        req = pending_or_error()
        if isinstance(req, Response):
            return req
        users = list(authority.registry.users.values())
        if request.method == "GET":
            return page("login.html", req=req, users=users)
        user_id = request.form.get("user")
        if authority.registry.user(user_id) is None:
            return page("login.html", 400, req=req, users=users, message="Choose one of the sandbox users.")
        req.user = user_id
        resp = next_step(req)
        resp.set_cookie(SESSION_COOKIE, authority.start_session(user_id), httponly=True, samesite="Lax",
                        path=request.script_root or "/")
        return resp

    @app.route("/select-patient", methods=["GET", "POST"])
    def select_patient() -> Response:
        req = pending_or_error()
        if isinstance(req, Response):
            return req
        lookup = authority.patient_lookups.get(req.aud)
        query = (request.values.get("q") or "").strip()
        message = None
        try:
            if request.method == "POST":
                chosen = lookup.get(request.form.get("patient", "")) if lookup else None
                if chosen is not None:
                    req.patient = chosen["id"]
                    return next_step(req)
                message = "Choose a patient from the list."
            patients = lookup.search(query or None) if lookup else []
        except PatientLookupError:
            patients, message = [], "The record system did not answer; try again."
        return page("select_patient.html", 400 if message else 200, req=req, patients=patients, q=query,
                    message=message)

    @app.route("/consent", methods=["GET", "POST"])
    def consent() -> Response:
        req = pending_or_error()
        if isinstance(req, Response):
            return req
        if request.method == "GET":
            if req.user is None or req.needs_patient:
                return next_step(req)
            rows = [(s, describe_scope(s), s in scope_policy.CONTEXT_SCOPES) for s in req.scopes]
            user = authority.registry.user(req.user)
            return page("consent.html", req=req, rows=rows, user=user)
        try:
            if request.form.get("decision") == "approve":
                return redirect(authority.approve(req.id, request.form.getlist("scope")), 303)
            return redirect(authority.deny(req.id), 303)
        except OAuthError as exc:
            return error_page(exc.error, exc.description)

    @app.post("/token")
    def token() -> Response:
        try:
            body = authority.token(request.headers.get("Authorization"), _form())
        except OAuthError as exc:
            return _oauth_json(exc)
        return _no_store(jsonify(body))

    @app.post("/introspect")
    def introspect() -> Response:
        try:
            body = authority.introspect(request.headers.get("Authorization"), _form())
        except OAuthError as exc:
            return _oauth_json(exc)
        return _no_store(jsonify(body))

    @app.get("/jwks")
    def jwks() -> Response:
        resp = jsonify(authority.jwks())
        resp.headers["Cache-Control"] = "public, max-age=300"
        resp.headers["Access-Control-Allow-Origin"] = "*"
        return resp

    @app.get("/.well-known/openid-configuration")
    def openid_configuration() -> Response:
        resp = jsonify(authority.openid_configuration())
        resp.headers["Cache-Control"] = "public, max-age=300"
        resp.headers["Access-Control-Allow-Origin"] = "*"
        return resp

    @app.errorhandler(OAuthError)
    def oauth_error(exc: OAuthError) -> Response:
        if request.path.endswith(("/token", "/introspect")):
            return _oauth_json(exc)
        return error_page(exc.error, exc.description)

    @app.errorhandler(404)
    def not_found(_exc: Exception) -> Response:
        return error_page("not_found", "There is no such page on the sandbox authorization server.", 404)

    @app.errorhandler(405)
    def bad_method(_exc: Exception) -> Response:
        return error_page("invalid_request", "This endpoint does not accept that HTTP method.", 405)

    @app.errorhandler(413)
    def too_large(_exc: Exception) -> Response:
        return error_page("invalid_request", "The request is too large.", 413)

    return app


def smart_configuration_app(authority: Authority) -> Flask:
    """Serves ``/smart-configuration``; mount it at ``<fhir base path>/.well-known``."""
    app = Flask(__name__ + ".wellknown")

    @app.get("/smart-configuration")
    def smart_configuration() -> Response:
        quirks = authority.quirks
        if quirks.well_known_404:
            # Mock switch: an older EHR without SMART discovery; clients fall back to /metadata (EL-04).
            resp = jsonify({"error": "not_found"})
            resp.status_code = 404
            return resp
        resp = jsonify(discovery_document(authority.smart_configuration(), quirks))
        resp.headers["Cache-Control"] = "public, max-age=300"
        resp.headers["Access-Control-Allow-Origin"] = "*"
        return resp

    @app.errorhandler(404)
    def not_found(_exc: Exception) -> Response:
        resp = jsonify({"error": "not_found"})
        resp.status_code = 404
        return resp

    return app
