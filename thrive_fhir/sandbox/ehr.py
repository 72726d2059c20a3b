"""The sandbox EHR page: a minimal record viewer that launches the app. DEVELOPMENT AND TESTING ONLY.

It plays the part of a clinician's record system: a patient list read from the EHR FHIR store, a
patient page with the EHR's own banner, and a "Launch THRIVE" button that performs a real SMART
EHR launch inside an iframe: it mints a one-time ``launch`` handle bound to the patient and the
signed-in sandbox user, and loads ``<app launch URL>?iss=<FHIR base>&launch=<handle>``. Because
the page shows its own banner, tokens from such launches say ``need_patient_banner: false``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask, Response, redirect, render_template, request
from werkzeug.wrappers import Response as BaseResponse

from . import DEV_ONLY_NOTICE
from .authority import Authority, add_query
from .patient_lookup import PatientLookup, PatientLookupError

TEMPLATES = Path(__file__).with_name("templates")
USER_COOKIE = "sandbox_ehr_user"


def create_ehr_app(
    authority: Authority, lookup: PatientLookup, fhir_base: str, app_launch_url: str | None, app_name: str = "THRIVE"
) -> Flask:
    """The EHR page app, mounted at the root of the sandbox origin (routes under ``/ehr``)."""
    app = Flask(__name__, template_folder=str(TEMPLATES))

    def current_user() -> Any:
        users = list(authority.registry.users.values())
        chosen = authority.registry.user(request.cookies.get(USER_COOKIE))
        return chosen or (users[0] if users else None)

    def page(template: str, status: int = 200, **ctx: Any) -> Response:
        html = render_template(
            template,
            notice=DEV_ONLY_NOTICE,
            user=current_user(),
            users=list(authority.registry.users.values()),
            app_name=app_name,
            app_launch_url=app_launch_url,
            fhir_base=fhir_base,
            **ctx,
        )
        return Response(html, status=status, mimetype="text/html")

    @app.after_request
    def headers(resp: Response) -> Response:
        resp.headers["Cache-Control"] = "no-store"
        resp.headers["X-Sandbox"] = "development and testing only"
        if resp.mimetype == "text/html":
            resp.headers["Content-Security-Policy"] = "frame-ancestors 'none'"
        return resp

    @app.get("/")
    def root() -> BaseResponse:
        return redirect(f"{request.script_root}/ehr/", 302)

    @app.get("/ehr/")
    def patients() -> Response:
        q = (request.args.get("q") or "").strip()
        try:
            rows, message = lookup.search(q or None), None
        except PatientLookupError as exc:
            rows, message = [], f"Could not read patients: {exc}."
        return page("ehr_patients.html", 200 if message is None else 503, patients=rows, q=q, message=message)

    def load(patient_id: str) -> dict[str, Any] | Response:
        try:
            patient = lookup.get(patient_id)
        except PatientLookupError as exc:
            return page(
                "ehr_message.html",
                503,
                title="Record system unavailable",
                message=f"Could not read the patient: {exc}.",
            )
        if patient is None:
            return page(
                "ehr_message.html",
                404,
                title="Patient not found",
                message="There is no patient with that id in this sandbox record system.",
            )
        return patient

    @app.get("/ehr/patients/<patient_id>")
    def patient_page(patient_id: str) -> Response:
        patient = load(patient_id)
        if isinstance(patient, Response):
            return patient
        return page("ehr_patient.html", patient=patient, launch_src=None)

    @app.post("/ehr/patients/<patient_id>/launch")
    def launch(patient_id: str) -> BaseResponse:
        patient = load(patient_id)
        if isinstance(patient, Response):
            return patient
        user = current_user()
        if not app_launch_url:
            return page(
                "ehr_message.html",
                409,
                title="No app to launch",
                message="Start the sandbox with --app-launch-url to launch the app.",
            )
        handle = authority.mint_launch(patient["id"], user.id, fhir_base)
        src = add_query(app_launch_url, {"iss": fhir_base, "launch": handle})
        if request.form.get("window") == "new":
            # Top-level launch for browsers that block the app's cookies inside the iframe.
            return redirect(src, 303)
        return page("ehr_patient.html", patient=patient, launch_src=src)

    @app.post("/ehr/user")
    def choose_user() -> BaseResponse:
        user = authority.registry.user(request.form.get("user"))
        back = request.form.get("back") or ""
        # Only ever return to a page of this EHR (no open redirect).
        target = back if back.startswith("/ehr/") and "//" not in back else f"{request.script_root}/ehr/"
        resp = redirect(target, 303)
        if user is not None:
            resp.set_cookie(USER_COOKIE, user.id, httponly=True, samesite="Lax")
        return resp

    @app.errorhandler(404)
    def not_found(_exc: Exception) -> Response:
        return page("ehr_message.html", 404, title="Page not found", message="There is no such page.")

    @app.errorhandler(405)
    def bad_method(_exc: Exception) -> Response:
        return page("ehr_message.html", 405, title="Not allowed", message="That action is not allowed here.")

    return app
