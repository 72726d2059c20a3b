"""EHR launch, standalone launch, the OAuth callback, token refresh and draft resumption.

Order of checks follows smart-launch.md: the ``iss`` allowlist before any network call (EL-02),
state consumed before anything else at the callback (EL-10), stored endpoints only (no values
taken from the callback query), and nothing stored when a step fails.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from urllib.parse import urlsplit

from flask import Blueprint, g, redirect, render_template, request

from thrive_fhir import canonical, ids
from thrive_fhir.client.smart_launch import SmartError, fhir_user_ref, new_code_verifier
from thrive_fhir.client.smart_scopes import patient_picker_scopes, requested_scopes

from ..context import COOKIE_NAME, error_page, is_staff_ref, launch_required, state, unknown_staff_page
from ..security import set_binding_cookie
from ..sessions import LaunchRecord, new_binding

log = logging.getLogger("smart_app.launch")

bp = Blueprint("launch", __name__)

MAX_PARAM = 8192


def _redirect_uri() -> str:
    base = state().config.public_base_url or request.host_url.rstrip("/")
    return base + "/callback"


def _smart():
    return state().smart


def _start_authorization(reg, *, mode: str, aud: str, launch_param: str | None, standalone_key: str | None):
    """Discovery, then a pending request (state, PKCE, nonce) and the redirect to authorize."""
    try:
        conf = _smart().discover(reg)
    except SmartError as exc:
        log.warning("discovery failed for a registered EHR: %s", exc.kind)
        return error_page(502, "EHR configuration unavailable", "EHR configuration unavailable, try again later.")
    binding = request.cookies.get(COOKIE_NAME) or new_binding()
    verifier = new_code_verifier()
    nonce = secrets.token_urlsafe(24)
    scope = requested_scopes(mode, reg.scope_version, online_access=reg.online_access)
    if mode == "standalone" and reg.need_patient_picker:
        # SA-04: the agency worker finds the young person in the app (smart_app.summary.picker)
        scope = patient_picker_scopes(scope, reg.scope_version)
    redirect_uri = _redirect_uri()
    st = state().sessions.create_auth_request(
        binding,
        mode=mode,
        iss=aud,
        launch_param=launch_param,
        client_id=reg.client_id,
        redirect_uri=redirect_uri,
        code_verifier=verifier,
        nonce=nonce,
        token_endpoint=conf.token_endpoint,
        issuer=conf.issuer,
        jwks_uri=conf.jwks_uri,
        requested_scope=scope,
        standalone_key=standalone_key,
    )
    url = _smart().authorize_url(
        conf,
        client_id=reg.client_id,
        redirect_uri=redirect_uri,
        scope=scope,
        state=st,
        aud=aud,
        code_verifier=verifier,
        nonce=nonce,
        launch=launch_param,
    )
    response = redirect(url, code=302)
    set_binding_cookie(response, binding)
    return response


@bp.get("/launch")
def ehr_launch():
    """``GET /launch?iss=…&launch=…`` from the EHR (EL-01, EL-02)."""
    iss = request.args.get("iss", "")
    launch_param = request.args.get("launch", "")
    if not iss or not launch_param or len(iss) > MAX_PARAM or len(launch_param) > MAX_PARAM:
        return error_page(
            400,
            "This app must be opened from a patient's record",
            "The launch link is incomplete. Open the app again from the patient's record in your clinical system.",
        )
    reg = state().config.ehr_for_iss(iss)
    if reg is None:
        return error_page(
            400,
            "This EHR is not registered",
            f"This EHR is not registered for {state().config.app_name}. Ask your system administrator to "
            "register it before using the app.",
        )
    g.frame_ancestors_iss = reg.iss
    return _start_authorization(reg, mode="ehr", aud=iss, launch_param=launch_param, standalone_key=None)


@bp.get("/standalone")
def standalone():
    """Agency staff pick their organisation; the FHIR base comes from config only (SA-01)."""
    entries = list(state().config.standalone.values())
    return render_template("base/standalone.html", entries=entries)


@bp.get("/standalone/start")
def standalone_start():
    entry = state().config.standalone.get(request.args.get("org", ""))
    if entry is None:
        return error_page(
            400, "Choose your organisation", "Choose your organisation from the list to sign in."
        )
    reg = state().config.ehr_for_iss(entry.iss)
    return _start_authorization(reg, mode="standalone", aud=entry.iss, launch_param=None, standalone_key=entry.key)


def _safe_error_uri(value: str | None, token_endpoint: str) -> str | None:
    if not value:
        return None
    try:
        parts, auth = urlsplit(value), urlsplit(token_endpoint)
    except ValueError:
        return None
    if parts.scheme == "https" and parts.hostname and parts.hostname == auth.hostname:
        return value
    return None


def _org_ref_for(ods_code: str) -> str:
    return f"Organization/{ids.deterministic_id(canonical.ODS_ORG, ods_code)}"


@bp.get("/callback")
def callback():
    """OAuth redirect back from the authorization server (EL-10, error table in 1.3)."""
    binding = request.cookies.get(COOKIE_NAME)
    auth = state().sessions.consume_auth_request(request.args.get("state", ""), binding)
    if auth is None:
        log.info("callback rejected: state missing, unknown, expired, reused or other browser")
        return error_page(
            400,
            "This sign-in link is no longer valid",
            "This sign-in link is no longer valid. Close this and relaunch the app from the patient's chart."
            + ("" if binding else " If this keeps happening, your browser may be blocking the app's cookie: "
               "open the app in a new window from the chart."),
        )
    if auth.mode == "ehr":
        g.frame_ancestors_iss = auth.iss
    app_name = state().config.app_name
    error = request.args.get("error")
    if error:
        ref = uuid.uuid4().hex[:8]
        if error == "access_denied":
            return error_page(
                403,
                "Access was not approved",
                f"Access for {app_name} was not approved. Relaunch from the chart if this was a mistake.",
            )
        log.warning("authorization error %s ref=%s", error[:40], ref)
        return error_page(
            502,
            "The EHR rejected this app's setup",
            f"The EHR rejected this app's setup. Contact support, ref {ref}.",
            ref=ref,
            error_uri=_safe_error_uri(request.args.get("error_uri"), auth.token_endpoint),
        )
    code = request.args.get("code")
    if not code or len(code) > MAX_PARAM:
        return error_page(400, "This sign-in link is no longer valid", "The sign-in answer had no code. Relaunch the app.")
    reg = state().config.ehr_for_iss(auth.iss)
    if reg is None:
        return error_page(400, "This EHR is not registered", f"This EHR is not registered for {app_name}.")
    smart = _smart()
    try:
        tokens = smart.exchange_code(
            reg,
            token_endpoint=auth.token_endpoint,
            code=code,
            redirect_uri=auth.redirect_uri,
            code_verifier=auth.code_verifier,
            requested_scope=auth.requested_scope,
        )
        claims = {}
        if "openid" in auth.requested_scope.split():
            if not tokens.get("id_token"):
                raise SmartError("id_token", "The EHR did not say who you are (no identity token).")
            claims = smart.validate_id_token(
                reg, tokens["id_token"], issuer=auth.issuer, jwks_uri=auth.jwks_uri, nonce=auth.nonce
            )
    except SmartError as exc:
        return _smart_error_page(exc, auth.token_endpoint)

    patient = tokens.get("patient")
    if not isinstance(patient, str) or not patient:
        patient = None
    picker = auth.mode == "standalone" and reg.need_patient_picker  # SA-04: smart_app.summary.picker
    if patient is None and not picker:
        # Epic gives no patient for provider-facing standalone launches (SA-04); nothing is stored.
        if auth.mode == "standalone":
            return error_page(
                400,
                "No young person was chosen",
                "Your organisation's system did not say which young person you want to see, and choosing "
                "a young person inside this app is not supported. Ask your system administrator to turn on "
                "patient selection for this app, then sign in again.",
            )
        return error_page(
            400,
            "No patient was chosen",
            "The EHR did not say which young person this is about. Open the app from the young person's "
            "record (choosing a patient inside the app is not supported).",
        )
    user_ref = fhir_user_ref(claims.get("fhirUser") or claims.get("profile"), auth.iss)
    if not is_staff_ref(user_ref):
        # Saves name their author (Provenance) and agency reads their reader (AuditEvent): both must
        # be a Practitioner(Role). A missing fhirUser, or a patient/parent one, cannot use this app.
        log.warning("launch refused: fhirUser is %s (mode=%s)",
                    "missing" if user_ref is None else user_ref.split("/", 1)[0], auth.mode)
        if auth.mode == "ehr" and user_ref is not None:
            return error_page(
                403,
                "This app is for staff",
                f"The EHR says you signed in as a {user_ref.split('/', 1)[0]}, not as a member of staff. "
                "This app records the work of the clinical team. If you are staff, ask your system "
                "administrator to link your account to your staff record.",
            )
        if auth.mode == "ehr":
            return error_page(
                400,
                "The EHR did not say who you are",
                "The app needs to know which member of staff is signed in to record who made each change. "
                "Ask your system administrator to allow the fhirUser scope for this app.",
            )
        return unknown_staff_page()
    need_banner = tokens.get("need_patient_banner")
    entry = state().config.standalone.get(auth.standalone_key) if auth.standalone_key else None
    organization_ref = (
        (entry.organization if entry else None) if auth.mode == "standalone" else _org_ref_for(state().config.ods_code)
    )
    banner = _fetch_banner(auth.iss, patient, tokens["access_token"], reg) if patient else None
    launch_id = state().sessions.create_launch(
        binding,
        mode=auth.mode,
        iss=auth.iss,
        max_hours=state().config.session_max_hours,
        access_token=tokens["access_token"],
        refresh_token=tokens.get("refresh_token") if isinstance(tokens.get("refresh_token"), str) else None,
        expires_in=tokens["expires_in"],
        banner=banner,
        standalone_key=auth.standalone_key,
        patient_id=patient,
        encounter_id=tokens.get("encounter") if isinstance(tokens.get("encounter"), str) else None,
        user_ref=user_ref,
        sub=str(claims.get("sub")) if claims.get("sub") else None,
        practitioner_role_ref=user_ref if user_ref and user_ref.startswith("PractitionerRole/") else None,
        organization_ref=organization_ref,
        scopes=tokens.get("scope", ""),
        need_patient_banner=need_banner if isinstance(need_banner, bool) else True,
        token_endpoint=auth.token_endpoint,
    )
    log.info("launch completed mode=%s", auth.mode)
    target = "summary.index" if auth.mode == "ehr" else ("agency.index" if patient else "picker.index")
    from flask import url_for

    return redirect(url_for(target, launch_id=launch_id), code=303)


def _smart_error_page(exc: SmartError, token_endpoint: str):
    ref = uuid.uuid4().hex[:8]
    log.warning("launch failed kind=%s ref=%s", exc.kind, ref)
    if exc.kind == "invalid_grant":
        return error_page(401, "Sign-in expired", "This sign-in has expired or was already used. Relaunch the app from the patient's chart.")
    if exc.kind == "unavailable":
        return error_page(502, "The EHR did not respond", "The EHR did not respond. Relaunch to try again.", ref=ref)
    if exc.kind == "id_token":
        return error_page(401, "Could not confirm who you are", f"{exc} Relaunch the app; if it happens again contact support, ref {ref}.", ref=ref)
    if exc.kind == "discovery":
        return error_page(502, "EHR configuration unavailable", "EHR configuration unavailable, try again later.", ref=ref)
    return error_page(502, "The EHR rejected this app's setup", f"The EHR rejected this app's setup. Contact support, ref {ref}.", ref=ref)


def _fetch_banner(iss: str, patient_id: str, access_token: str, reg) -> dict:
    """Read the Patient once at launch for the banner; a failure leaves a minimal banner."""
    from .ehr_client import EhrClient, banner_from_patient

    client = EhrClient(iss, lambda: access_token, reg=reg)
    try:
        patient = client.read("Patient", patient_id)
    except Exception as exc:  # the banner must never block the launch
        log.warning("could not read Patient for the banner: %s", type(exc).__name__)
        return {"name": None, "unavailable": True}
    return banner_from_patient(patient)


def refresh_launch_tokens(record: LaunchRecord, rejected_token: str | None = None) -> bool:
    """Serialised single-use refresh for one context (TS-08); False ends the session.
    ``rejected_token``: the access token the EHR just refused with 401 (TS-09)."""
    reg = state().config.ehr_for_iss(record.iss)
    if reg is None or not record.token_endpoint:
        return False
    smart = _smart()
    return state().sessions.refresh_tokens(
        record.launch_id,
        lambda rt: smart.refresh(reg, token_endpoint=record.token_endpoint, refresh_token=rt),
        rejected_token=rejected_token,
    )


@bp.get("/l/<launch_id>/resume/<draft_id>")
@launch_required
def resume_draft(draft_id: str):
    """Show what was typed before the session ended, ready to save with one button (TS-09)."""
    from ..context import current_launch

    launch = current_launch()
    draft = state().sessions.take_draft(request.cookies.get(COOKIE_NAME), launch.record, draft_id)
    if draft is None:
        return error_page(404, "Nothing to restore", "That unsaved entry is no longer available.")
    return render_template("base/resume.html", draft=draft, action=launch.path(draft.path))


@bp.post("/l/<launch_id>/resume/<draft_id>/discard")
@launch_required
def discard_draft(draft_id: str):
    from ..context import current_launch

    launch = current_launch()
    draft = state().sessions.take_draft(request.cookies.get(COOKIE_NAME), launch.record, draft_id)
    if draft is not None:
        state().sessions.delete_draft(draft.draft_id)
    return redirect(launch.url_for("summary.index"), code=303)
