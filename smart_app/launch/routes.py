"""EHR and standalone launch, the OAuth callback, the identity check and draft resumption.

Order of checks follows docs/design/smart-launch.md: the ``iss`` allowlist before any network call (EL-02),
state consumed before anything else at the callback (EL-10), stored endpoints only (no values
taken from the callback query), and nothing stored when a step fails. The callback is a sequence
of named steps (:func:`callback`); each either returns what the next step needs or stops the launch
with the page the user sees (:class:`LaunchStopped`).
"""

from __future__ import annotations

import logging
import re
import secrets
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, current_app, g, redirect, render_template, request, url_for

from thrive_fhir import canonical, ids
from thrive_fhir.client.smart_launch import SmartError, fhir_user_ref, foreign_fhir_user, new_code_verifier

from ..config import EhrRegistration
from ..context import COOKIE_NAME, current_launch, is_staff_ref, launch_required
from ..errors import error_page, unknown_staff_page
from ..scopes import patient_picker_scopes, requested_scopes
from ..security import set_binding_cookie
from ..sessions import AuthRequest, LaunchRecord, new_binding
from ..state import state
from ..summary.shared_history import prefetch
from .ehr_client import EhrClient
from .identity import identity_confirmed, identity_or_problem

log = logging.getLogger("smart_app.launch")

bp = Blueprint("launch", __name__)

MAX_PARAM = 8192
#: An OAuth error code as RFC 6749 spells them; anything else is logged as "unrecognised".
_OAUTH_ERROR_RE = re.compile(r"[a-z_]{1,40}")


class LaunchStopped(Exception):
    """A callback step refused the launch; ``response`` is the page to answer with."""

    def __init__(self, response: Any):
        super().__init__("launch stopped")
        self.response = response


def _stop(status: int, title: str, message: str, **extra: Any) -> LaunchStopped:
    return LaunchStopped(error_page(status, title, message, **extra))


def _redirect_uri() -> str:
    base = state().config.public_base_url or request.host_url.rstrip("/")
    return base + "/callback"


# --- starting a launch ----------------------------------------------------------------------------
def _start_authorization(
    reg: EhrRegistration, *, mode: str, aud: str, launch_param: str | None, standalone_key: str | None
):
    """Discovery, then a pending request (state, PKCE, nonce) and the redirect to authorize."""
    smart = state().smart
    try:
        conf = smart.discover(reg)
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
    url = smart.authorize_url(
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
    g.frame_none = True  # until the iss is known to be a registered EHR (then its UI may frame us)
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
    g.frame_none = False
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
        return error_page(400, "Choose your organisation", "Choose your organisation from the list to sign in.")
    reg = state().config.ehr_for_iss(entry.iss)
    return _start_authorization(reg, mode="standalone", aud=entry.iss, launch_param=None, standalone_key=entry.key)


# --- the callback, step by step -----------------------------------------------------------------
@dataclass(frozen=True)
class _Identity:
    """Who signed in, from the validated id_token (EL-17)."""

    user_ref: str
    sub: str | None


@bp.get("/callback")
def callback():
    """OAuth redirect back from the authorization server (EL-10), in named steps; each of the first
    five may stop the launch with its page, and nothing is stored before the launch record."""
    try:
        auth = _state_check()
        _authorization_error(auth)
        reg = _registration(auth)
        tokens, claims = _token_exchange(auth, reg)
        patient_id = _patient(auth, reg, tokens)
        user = _staff_user(auth, claims)
        launch_id = _launch_record(auth, tokens, patient_id, user)
        _patient_identity(launch_id, patient_id)
    except LaunchStopped as stop:
        return stop.response
    if auth.mode == "ehr":
        _start_shared_read(launch_id)
    log.info("launch completed mode=%s", auth.mode)
    return redirect(url_for(_landing(auth.mode, patient_id), launch_id=launch_id), code=303)


def _state_check() -> AuthRequest:
    """Step 1: consume the pending request named by ``state``, bound to this browser (EL-07)."""
    binding = request.cookies.get(COOKIE_NAME)
    auth = state().sessions.consume_auth_request(request.args.get("state", ""), binding)
    if auth is None:
        log.info("callback rejected: state missing, unknown, expired, reused or other browser")
        raise _stop(
            400,
            "This sign-in link is no longer valid",
            "This sign-in link is no longer valid. Close this and relaunch the app from the patient's chart."
            + (
                ""
                if binding
                else " If this keeps happening, your browser may be blocking the app's cookie: "
                "open the app in a new window from the chart."
            ),
        )
    if auth.mode == "ehr":
        g.frame_ancestors_iss = auth.iss
    else:
        g.frame_none = True
    return auth


def _authorization_error(auth: AuthRequest) -> None:
    """Step 2: the authorization server answered with ``error`` instead of a code."""
    error = request.args.get("error")
    if not error:
        return
    app_name = state().config.app_name
    if error == "access_denied":
        raise _stop(
            403,
            "Access was not approved",
            f"Access for {app_name} was not approved. "
            + (
                "Relaunch from the chart if this was a mistake."
                if auth.mode == "ehr"
                else "Sign in again if this was a mistake."
            ),
        )
    ref = uuid.uuid4().hex[:8]
    # The value is the other server's: log only a recognised OAuth error code, never the raw text.
    code = error if _OAUTH_ERROR_RE.fullmatch(error) else "unrecognised"
    log.warning("authorization error %s ref=%s", code, ref)
    raise _stop(
        502,
        "The EHR rejected this app's setup",
        f"The EHR rejected this app's setup. Contact support, ref {ref}.",
        ref=ref,
        error_uri=_safe_error_uri(request.args.get("error_uri"), auth.token_endpoint),
    )


def _registration(auth: AuthRequest) -> EhrRegistration:
    reg = state().config.ehr_for_iss(auth.iss)
    if reg is None:
        raise _stop(400, "This EHR is not registered", f"This EHR is not registered for {state().config.app_name}.")
    return reg


def _token_exchange(auth: AuthRequest, reg: EhrRegistration) -> tuple[dict, dict]:
    """Step 3: swap the code for tokens at the stored endpoint, then validate the id_token."""
    code = request.args.get("code")
    if not code or len(code) > MAX_PARAM:
        raise _stop(400, "This sign-in link is no longer valid", "The sign-in answer had no code. Relaunch the app.")
    smart = state().smart
    try:
        tokens = smart.exchange_code(
            reg,
            token_endpoint=auth.token_endpoint,
            code=code,
            redirect_uri=auth.redirect_uri,
            code_verifier=auth.code_verifier,
            requested_scope=auth.requested_scope,
        )
        claims: dict = {}
        if "openid" in auth.requested_scope.split():
            if not tokens.get("id_token"):
                raise SmartError("id_token", "The EHR did not say who you are (no identity token).")
            claims = smart.validate_id_token(
                reg, tokens["id_token"], issuer=auth.issuer, jwks_uri=auth.jwks_uri, nonce=auth.nonce
            )
    except SmartError as exc:
        raise LaunchStopped(_smart_error_page(exc, auth.mode)) from None
    return tokens, claims


def _patient(auth: AuthRequest, reg: EhrRegistration, tokens: dict) -> str | None:
    """Step 4: the patient in context (checked against the FHIR id rule by the SMART client)."""
    patient = tokens.get("patient")
    picker = auth.mode == "standalone" and reg.need_patient_picker  # SA-04: smart_app.summary.picker
    if patient is None and not picker:
        # Epic gives no patient for provider-facing standalone launches (SA-04); nothing is stored.
        if auth.mode == "standalone":
            raise _stop(
                400,
                "No young person was chosen",
                "Your organisation's system did not say which young person you want to see, and choosing "
                "a young person inside this app is not supported. Ask your system administrator to turn on "
                "patient selection for this app, then sign in again.",
            )
        raise _stop(
            400,
            "No patient was chosen",
            "The EHR did not say which young person this is about. Open the app from the young person's "
            "record (choosing a patient inside the app is not supported).",
        )
    return patient


def _staff_user(auth: AuthRequest, claims: dict) -> _Identity:
    """Step 5: the signed-in user must be a member of staff on this EHR (Provenance, AuditEvent)."""
    raw = claims.get("fhirUser") or claims.get("profile")
    if foreign_fhir_user(raw, auth.iss):
        log.warning("launch refused: fhirUser is on another server (mode=%s)", auth.mode)
        raise _stop(
            403,
            "Your sign-in names a user on another system",
            "The EHR said you are a user recorded on a different server from this EHR, so the app cannot "
            "tell which member of staff you are here. Ask your system administrator to check the app's setup.",
        )
    user_ref = fhir_user_ref(raw, auth.iss)
    if not is_staff_ref(user_ref):
        # Saves name their author (Provenance) and agency reads their reader (AuditEvent): both must
        # be a Practitioner(Role). A missing fhirUser, or a patient/parent one, cannot use this app.
        log.warning(
            "launch refused: fhirUser is %s (mode=%s)",
            "missing" if user_ref is None else user_ref.split("/", 1)[0],
            auth.mode,
        )
        if auth.mode == "ehr" and user_ref is not None:
            raise _stop(
                403,
                "This app is for staff",
                f"The EHR says you signed in as a {user_ref.split('/', 1)[0]}, not as a member of staff. "
                "This app records the work of the clinical team. If you are staff, ask your system "
                "administrator to link your account to your staff record.",
            )
        if auth.mode == "ehr":
            raise _stop(
                400,
                "The EHR did not say who you are",
                "The app needs to know which member of staff is signed in to record who made each change. "
                "Ask your system administrator to allow the fhirUser scope for this app.",
            )
        raise LaunchStopped(unknown_staff_page())
    sub = claims.get("sub")
    return _Identity(user_ref=user_ref, sub=sub if isinstance(sub, str) and sub else None)


def _launch_record(auth: AuthRequest, tokens: dict, patient_id: str | None, user: _Identity) -> str:
    """Step 6: store the launch context (TS-02); tokens encrypted (TS-07). Its young person's
    identity is unconfirmed until step 7 reads it."""
    config = state().config
    entry = config.standalone.get(auth.standalone_key) if auth.standalone_key else None
    organization_ref = (
        (entry.organization if entry else None) if auth.mode == "standalone" else _org_ref_for(config.ods_code)
    )
    binding = request.cookies.get(COOKIE_NAME) or ""
    return state().sessions.create_launch(
        binding,
        mode=auth.mode,
        iss=auth.iss,
        max_hours=config.session_max_hours,
        access_token=tokens["access_token"],
        refresh_token=tokens.get("refresh_token"),
        expires_in=tokens["expires_in"],
        banner=None,
        standalone_key=auth.standalone_key,
        patient_id=patient_id,
        encounter_id=tokens.get("encounter"),
        user_ref=user.user_ref,
        sub=user.sub,
        practitioner_role_ref=user.user_ref if user.user_ref.startswith("PractitionerRole/") else None,
        organization_ref=organization_ref,
        scopes=tokens.get("scope", ""),
        need_patient_banner=tokens["need_patient_banner"],
        token_endpoint=auth.token_endpoint,
    )


def _patient_identity(launch_id: str, patient_id: str | None) -> None:
    """Step 7: read the Patient once, through the launch's own EHR client (so a token the EHR has
    already let lapse gets its one refresh and retry). A failure is stored as an unconfirmed
    identity, and every page of the launch then shows :func:`patient_identity` (what happened, and
    a retry) instead of the young person's plan."""
    if patient_id is None:
        return
    record = state().sessions.get_launch(launch_id)
    if record is None:  # pragma: no cover - just created
        return
    banner = identity_or_problem(EhrClient.for_launch(state(), record), patient_id)
    state().sessions.set_banner(launch_id, banner)


def _start_shared_read(launch_id: str) -> None:
    """Start reading the young person's shared record (clinician launches with a ``[shared_store]``)
    now, so it is read or nearly when the Summary opens (smart_app.summary.shared_history)."""
    record = state().sessions.get_launch(launch_id)
    if record is not None and identity_confirmed(record.banner):
        prefetch(current_app, record)


def _landing(mode: str, patient_id: str | None) -> str:
    """The first page of a launch: the Summary (clinician), the shared plan or the picker (agency)."""
    if mode == "ehr":
        return "summary.index"
    return "agency.index" if patient_id else "picker.index"


def _safe_error_uri(value: str | None, token_endpoint: str) -> str | None:
    """``error_uri`` as a link only when it is https on the authorization server's own origin
    (Oracle Health uses it for re-approval); anything else could send the user anywhere."""
    if not value or len(value) > MAX_PARAM:
        return None
    try:
        parts, auth = urlsplit(value), urlsplit(token_endpoint)
        same_origin = (parts.scheme, parts.hostname, parts.port) == (auth.scheme, auth.hostname, auth.port)
    except ValueError:
        return None
    if parts.scheme == "https" and parts.hostname and not parts.username and same_origin:
        return value
    return None


def _org_ref_for(ods_code: str) -> str:
    return f"Organization/{ids.deterministic_id(canonical.ODS_ORG, ods_code)}"


def _smart_error_page(exc: SmartError, mode: str):
    ref = uuid.uuid4().hex[:8]
    log.warning("launch failed kind=%s ref=%s", exc.kind, ref)
    again = "Relaunch the app from the patient's chart." if mode == "ehr" else "Sign in again."
    if exc.kind == "invalid_grant":
        return error_page(401, "Sign-in expired", f"This sign-in has expired or was already used. {again}")
    if exc.kind == "unavailable":
        return error_page(502, "The EHR did not respond", f"The EHR did not respond. {again}", ref=ref)
    if exc.kind == "id_token":
        # The SmartError message is written for people (no exception names, no token contents).
        return error_page(
            401,
            "Could not confirm who you are",
            f"{exc} {again} If it happens again contact support, ref {ref}.",
            ref=ref,
        )
    if exc.kind == "context":
        return error_page(
            502,
            "The EHR sent a launch the app cannot use",
            f"{exc} {again} If it happens again contact support, ref {ref}.",
            ref=ref,
        )
    if exc.kind == "discovery":
        return error_page(
            502, "EHR configuration unavailable", "EHR configuration unavailable, try again later.", ref=ref
        )
    return error_page(
        502,
        "The EHR rejected this app's setup",
        f"The EHR rejected this app's setup. Contact support, ref {ref}.",
        ref=ref,
    )


# --- pages of a launch --------------------------------------------------------------------------
def identity_not_needed(view):
    """Mark a launch view that may run before the young person's identity is confirmed."""
    view.identity_not_needed = True
    return view


@bp.get("/l/<launch_id>/patient")
@launch_required
@identity_not_needed
def patient_identity():
    """Shown instead of every page of a launch whose Patient read did not confirm an identity:
    what happened, and a retry (``?retry=1`` reads the Patient again with the launch's token)."""
    launch = current_launch()
    record: LaunchRecord = launch.record
    landing = url_for(_landing(launch.mode, launch.patient_id), launch_id=launch.launch_id)
    if not launch.patient_id or identity_confirmed(record.banner):
        return redirect(landing, code=303)
    banner = record.banner or {}
    if request.args.get("retry"):
        banner = identity_or_problem(launch.ehr_client, launch.patient_id)
        state().sessions.set_banner(launch.launch_id, banner)
        if identity_confirmed(banner):
            return redirect(landing, code=303)
    reason = banner.get("unconfirmed") or "The app has not read the young person's details from the EHR yet."
    return render_template(
        "errors/identity.html",
        launch=None,  # no banner, no risk alert: nothing about the young person until we know who it is
        reason=reason,
        retry_href=url_for("launch.patient_identity", launch_id=launch.launch_id, retry=1),
        ehr_launch=launch.mode == "ehr",
    ), 502


@bp.get("/l/<launch_id>/resume/<draft_id>")
@launch_required
def resume_draft(draft_id: str):
    """Show what was typed before the session ended, ready to save with one button (TS-09)."""
    launch = current_launch()
    draft = state().sessions.take_draft(request.cookies.get(COOKIE_NAME), launch.record, draft_id)
    if draft is None:
        return error_page(404, "Nothing to restore", "That unsaved entry is no longer available.")
    return render_template("base/resume.html", draft=draft, action=launch.path(draft.path))


@bp.post("/l/<launch_id>/resume/<draft_id>/discard")
@launch_required
def discard_draft(draft_id: str):
    launch = current_launch()
    draft = state().sessions.take_draft(request.cookies.get(COOKIE_NAME), launch.record, draft_id)
    if draft is not None:
        state().sessions.delete_draft(draft.draft_id)
    return redirect(launch.url_for("summary.index"), code=303)


__all__ = ["LaunchStopped", "bp", "identity_not_needed"]
