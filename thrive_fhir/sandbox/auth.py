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
from werkzeug.wrappers import Response as BaseResponse

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


def _public(resp: Response) -> Response:
    """A public, cacheable discovery document (keys, configuration): any origin may read it."""
    resp.headers["Cache-Control"] = "public, max-age=300"
    resp.headers["Access-Control-Allow-Origin"] = "*"
    return resp


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
    """The Flask app for ``/auth``; ``authority`` holds every decision and all state.

    The routes are the methods of :class:`AuthViews`, one per endpoint; this function only wires
    them to their URLs, so the whole surface of the server is readable here in one place.
    """
    app = Flask(__name__, template_folder=str(TEMPLATES))
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    views = AuthViews(authority)
    app.after_request(views.headers)
    # Browser steps of an authorization (each ends in the next step or a redirect to the app).
    app.add_url_rule("/authorize", view_func=views.authorize, methods=["GET", "POST"])
    app.add_url_rule("/login", view_func=views.login, methods=["GET", "POST"])
    app.add_url_rule("/select-patient", view_func=views.select_patient, methods=["GET", "POST"])
    app.add_url_rule("/consent", view_func=views.consent, methods=["GET", "POST"])
    # Back-channel endpoints (OAuth JSON answers).
    app.add_url_rule("/token", view_func=views.token, methods=["POST"])
    app.add_url_rule("/introspect", view_func=views.introspect, methods=["POST"])
    # Discovery.
    app.add_url_rule("/jwks", view_func=views.jwks, methods=["GET"])
    app.add_url_rule("/.well-known/openid-configuration", view_func=views.openid_configuration, methods=["GET"])
    # Errors.
    app.register_error_handler(OAuthError, views.oauth_error)
    app.register_error_handler(404, views.not_found)
    app.register_error_handler(405, views.bad_method)
    app.register_error_handler(413, views.too_large)
    return app


class AuthViews:
    """The ``/auth`` endpoints of one sandbox origin, as methods over its :class:`Authority`.

    Grouped as the server is: response helpers, the browser steps (authorize -> login ->
    select-patient -> consent, :meth:`next_step` picks the next one), the back-channel endpoints
    (token, introspect), discovery (jwks, openid-configuration) and the error handlers.
    """

    def __init__(self, authority: Authority) -> None:
        self.authority = authority

    # -- response helpers ----------------------------------------------------------------------

    def frame_ancestors(self) -> str:
        # EHR launch runs the authorize/consent pages inside the app's iframe inside the EHR page,
        # so both the sandbox origin and every registered app origin are ancestors.
        origins = {"'self'"}
        for client in self.authority.registry.clients.values():
            for url in (*client.redirect_uris, client.launch_url or ""):
                parts = urlsplit(url)
                if parts.scheme in ("http", "https") and parts.netloc:
                    origins.add(f"{parts.scheme}://{parts.netloc}")
        return " ".join(sorted(origins))

    def headers(self, resp: Response) -> Response:
        resp.headers.setdefault("Cache-Control", "no-store")
        resp.headers["X-Sandbox"] = "development and testing only"
        if resp.mimetype == "text/html":
            resp.headers["Content-Security-Policy"] = f"frame-ancestors {self.frame_ancestors()}"
        return resp

    def page(self, template: str, status: int = 200, **ctx: Any) -> Response:
        return Response(render_template(template, notice=DEV_ONLY_NOTICE, **ctx), status=status, mimetype="text/html")

    def error_page(self, error: str, description: str, status: int = 400) -> Response:
        if request.accept_mimetypes.best == "application/json":
            resp = jsonify({"error": error, "error_description": description})
            resp.status_code = status
            return resp
        return self.page("auth_error.html", status, error=error, description=description)

    # -- browser steps: authorize, login, select-patient, consent ------------------------------

    def next_step(self, req: AuthRequest) -> BaseResponse:
        if req.user is None:
            return redirect(f"{request.script_root}/login?req={req.id}", 303)
        if req.needs_patient:
            return redirect(f"{request.script_root}/select-patient?req={req.id}", 303)
        if req.client.auto_approve:
            return redirect(self.authority.approve(req.id), 303)
        return redirect(f"{request.script_root}/consent?req={req.id}", 303)

    def pending_or_error(self) -> AuthRequest | Response:
        req = self.authority.pending(request.values.get("req"))
        if req is None:
            return self.error_page(
                "invalid_request", "This sign-in request has expired or is unknown. Relaunch the app."
            )
        return req

    def authorize(self) -> BaseResponse:
        params = {k: request.values[k] for k in request.values}
        session_user = self.authority.session_user(request.cookies.get(SESSION_COOKIE))
        try:
            req = self.authority.begin_authorization(params, session_user)
        except AuthorizeError as exc:
            if exc.redirect_uri is None:
                return self.error_page(exc.error, exc.description)
            return redirect(exc.location(), 302)
        return self.next_step(req)

    def login(self) -> BaseResponse:
        authority = self.authority
        req = self.pending_or_error()
        if isinstance(req, Response):
            return req
        users = list(authority.registry.users.values())
        if request.method == "GET":
            return self.page("login.html", req=req, users=users)
        user_id = request.form.get("user")
        if user_id is None or authority.registry.user(user_id) is None:
            return self.page("login.html", 400, req=req, users=users, message="Choose one of the sandbox users.")
        req.user = user_id
        resp = self.next_step(req)
        resp.set_cookie(
            SESSION_COOKIE,
            authority.start_session(user_id),
            httponly=True,
            samesite="Lax",
            path=request.script_root or "/",
        )
        return resp

    def select_patient(self) -> BaseResponse:
        authority = self.authority
        req = self.pending_or_error()
        if isinstance(req, Response):
            return req
        lookup = authority.patient_lookups.get(req.aud)
        user = authority.registry.user(req.user)
        if lookup is not None and user is not None:  # list what this user may see, not everyone
            lookup = lookup.with_token(
                lambda: authority.mint_internal_token(
                    req.aud, "system/Patient.rs", user=user.fhirUser, organization=user.organization
                )
            )
        query = (request.values.get("q") or "").strip()
        message = None
        try:
            if request.method == "POST":
                chosen = lookup.get(request.form.get("patient", "")) if lookup else None
                if chosen is not None:
                    req.patient = chosen["id"]
                    return self.next_step(req)
                message = "Choose a patient from the list."
            patients = lookup.search(query or None) if lookup else []
        except PatientLookupError:
            patients, message = [], "The record system did not answer; try again."
        return self.page(
            "select_patient.html", 400 if message else 200, req=req, patients=patients, q=query, message=message
        )

    def consent(self) -> BaseResponse:
        authority = self.authority
        req = self.pending_or_error()
        if isinstance(req, Response):
            return req
        if request.method == "GET":
            if req.user is None or req.needs_patient:
                return self.next_step(req)
            rows = [(s, describe_scope(s), s in scope_policy.CONTEXT_SCOPES) for s in req.scopes]
            user = authority.registry.user(req.user)
            return self.page("consent.html", req=req, rows=rows, user=user)
        try:
            if request.form.get("decision") == "approve":
                return redirect(authority.approve(req.id, request.form.getlist("scope")), 303)
            return redirect(authority.deny(req.id), 303)
        except OAuthError as exc:
            return self.error_page(exc.error, exc.description)

    # -- back channel: token, introspect -------------------------------------------------------

    def token(self) -> Response:
        try:
            body = self.authority.token(request.headers.get("Authorization"), _form())
        except OAuthError as exc:
            return _oauth_json(exc)
        return _no_store(jsonify(body))

    def introspect(self) -> Response:
        try:
            body = self.authority.introspect(request.headers.get("Authorization"), _form())
        except OAuthError as exc:
            return _oauth_json(exc)
        return _no_store(jsonify(body))

    # -- discovery: jwks, openid-configuration -------------------------------------------------

    def jwks(self) -> Response:
        return _public(jsonify(self.authority.jwks()))

    def openid_configuration(self) -> Response:
        return _public(jsonify(self.authority.openid_configuration()))

    # -- errors --------------------------------------------------------------------------------

    def oauth_error(self, exc: OAuthError) -> Response:
        if request.path.endswith(("/token", "/introspect")):
            return _oauth_json(exc)
        return self.error_page(exc.error, exc.description)

    def not_found(self, _exc: Exception) -> Response:
        return self.error_page("not_found", "There is no such page on the sandbox authorization server.", 404)

    def bad_method(self, _exc: Exception) -> Response:
        return self.error_page("invalid_request", "This endpoint does not accept that HTTP method.", 405)

    def too_large(self, _exc: Exception) -> Response:
        if request.path.endswith(("/token", "/introspect")):  # OAuth clients parse JSON errors (RFC 6749 5.2)
            return _oauth_json(OAuthError("invalid_request", "The request is too large.", 413))
        return self.error_page("invalid_request", "The request is too large.", 413)


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
        return _public(jsonify(discovery_document(authority.smart_configuration(), quirks)))

    @app.errorhandler(404)
    def not_found(_exc: Exception) -> Response:
        resp = jsonify({"error": "not_found"})
        resp.status_code = 404
        return resp

    return app
