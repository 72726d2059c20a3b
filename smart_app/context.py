"""The launch context every page works in, and the decorators that guard journey views.

For journey blueprints (H7b) the whole interface is::

    from smart_app.context import launch_blueprint, launch_required, write_required, current_launch

    bp = launch_blueprint("goals", __name__, url_prefix="/goals")   # URLs are /l/<launch_id>/goals/...

    @bp.route("/", methods=["GET", "POST"])
    @launch_required
    @write_required          # POST only: GETs still render (read-only mode shows the page)
    def index():
        launch = current_launch()
        launch.patient_ref, launch.user_ref, launch.local_store, launch.url_for("goals.index")

View functions do NOT take a ``launch_id`` argument: it is taken from the URL into the context and
added back automatically by ``url_for`` inside a launch. Every form needs ``{{ csrf_field() }}``.
Add a navigation entry with ``register_nav(app, "goals.index", "Goals", order=30)``.

A launch blueprint is for clinicians (EHR launches) unless it says otherwise
(``launch_blueprint(..., audience="agency" | "any")``): an agency worker's standalone launch gets
403 on clinician pages, which show records without the sharing-consent check, and does not see them
in the navigation. Read a young person's records with ``smart_app.records.of(store, patient_ref)``
(one read per request) and their risk state with ``smart_app.risk``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from flask import Blueprint, g, has_request_context, redirect, render_template, request, url_for

from .errors import error_page, unknown_staff_page
from .launch.ehr_client import EhrClient
from .launch.identity import identity_confirmed
from .launch.tokens import ensure_fresh_token
from .scopes import GrantedScopes
from .sessions import LaunchRecord
from .state import AppState, state

__all__ = [
    "COOKIE_NAME",
    "LaunchContext",
    "current_launch",
    "error_page",
    "launch_blueprint",
    "launch_required",
    "register_nav",
    "state",
    "unknown_staff_page",
    "write_required",
]

COOKIE_NAME = "__Host-thrive"
# fhirUser types that are members of staff: the only authors/readers Provenance and AuditEvent accept here.
STAFF_REF_PREFIXES = ("PractitionerRole/", "Practitioner/")


def is_staff_ref(ref: str | None) -> TypeGuard[str]:
    """``ref`` names a member of staff (see ``LaunchContext.staff_ref``)."""
    return ref is not None and ref.startswith(STAFF_REF_PREFIXES)


@dataclass
class LaunchContext:
    """What a page knows about the launch it runs in. Built per request; never stored as is."""

    record: LaunchRecord
    _app_state: AppState = field(repr=False)

    # --- identity and patient ---------------------------------------------------------------
    @property
    def launch_id(self) -> str:
        return self.record.launch_id

    @property
    def mode(self) -> str:
        """``ehr`` (clinician, launched from the chart) or ``standalone`` (agency worker)."""
        return self.record.mode

    @property
    def iss(self) -> str:
        return self.record.iss

    @property
    def patient_id(self) -> str | None:
        return self.record.patient_id

    @property
    def patient_ref(self) -> str | None:
        return f"Patient/{self.record.patient_id}" if self.record.patient_id else None

    @property
    def encounter_ref(self) -> str | None:
        return f"Encounter/{self.record.encounter_id}" if self.record.encounter_id else None

    @property
    def user_ref(self) -> str | None:
        """The user's ``fhirUser`` as a relative reference (``Practitioner/…``), from the id_token."""
        return self.record.user_ref

    @property
    def practitioner_role_ref(self) -> str | None:
        return self.record.practitioner_role_ref

    @property
    def organization_ref(self) -> str | None:
        return self.record.organization_ref

    @property
    def staff_ref(self) -> str | None:
        """The member of staff signed in (``PractitionerRole/…`` if known, else ``Practitioner/…``).

        Every save names its author in Provenance and every agency read names its reader in an
        AuditEvent; both profiles allow only a Practitioner(Role) there. None when the sign-in said
        nobody, or somebody who is not staff (a ``Patient``/``RelatedPerson``/``Person`` fhirUser):
        callers refuse rather than write an unattributed record."""
        for ref in (self.record.practitioner_role_ref, self.record.user_ref):
            if is_staff_ref(ref):
                return ref
        return None

    @property
    def ods_code(self) -> str:
        return self._app_state.config.ods_code

    @property
    def banner(self) -> dict | None:
        """Patient banner data (name, birth_date, gender, nhs_number) read once at launch."""
        return self.record.banner

    @property
    def need_patient_banner(self) -> bool:
        return self.record.need_patient_banner

    @property
    def show_patient_banner(self) -> bool:
        """Show our banner (name, NHS number) on this response?

        ``need_patient_banner: false`` means the EHR shows the young person's identity around our
        frame, which is true only inside that frame. Opened in a new window or tab, nothing else on
        screen says whose plan this is, so the banner shows unless the browser says this response
        goes into an iframe (``Sec-Fetch-Dest``). A browser that does not send the header gets the
        banner: when in doubt, show who this is."""
        if not self.patient_id:
            return False
        if self.need_patient_banner:
            return True
        return request.headers.get("Sec-Fetch-Dest") != "iframe"

    # --- permissions ------------------------------------------------------------------------
    @functools.cached_property
    def scopes(self) -> GrantedScopes:
        return GrantedScopes.parse(self.record.scopes)

    @property
    def can_write(self) -> bool:
        """True only for a clinician launch whose granted scopes allow every write the app makes."""
        return self.mode == "ehr" and self.scopes.can_write

    @property
    def write_back_grouping(self) -> bool:
        """Also send the agreed grouping Observation to the EHR (config ``write_back_grouping``,
        clinician launch, and the EHR granted Observation create). Use ``ehr_client.create``."""
        return (
            bool(self._app_state.config.write_back_grouping)
            and self.mode == "ehr"
            and self.scopes.allows("Observation", "c")
        )

    @property
    def missing_writes(self) -> list[str]:
        return self.scopes.missing_writes()

    # --- services ---------------------------------------------------------------------------
    @property
    def local_store(self):
        """The app's own FHIR store (``thrive_fhir.localstore.LocalStore``)."""
        return self._app_state.local_store

    @functools.cached_property
    def ehr_client(self) -> EhrClient:
        """An authorised FHIR client for the launching EHR (token sent only under its base)."""
        return EhrClient.for_launch(self._app_state, self.record)

    @property
    def registration(self):
        return self._app_state.config.ehr_for_iss(self.record.iss)

    # --- URLs -------------------------------------------------------------------------------
    def url_for(self, endpoint: str, **values: Any) -> str:
        """``flask.url_for`` with this launch's id filled in."""
        return url_for(endpoint, launch_id=self.launch_id, **values)

    def path(self, suffix: str = "") -> str:
        return f"/l/{self.launch_id}/{suffix.lstrip('/')}"


def current_launch() -> LaunchContext:
    """The launch of the current request (set by :func:`launch_required`)."""
    launch = g.get("launch")
    if launch is None:
        raise RuntimeError("current_launch() used outside a @launch_required view")
    return launch


#: Who a launch blueprint's pages are for, by blueprint name (see :func:`launch_blueprint`).
_AUDIENCE: dict[str, str] = {}
AUDIENCES = ("clinician", "agency", "any")


def launch_blueprint(
    name: str, import_name: str, url_prefix: str = "", *, audience: str = "clinician", **kwargs: Any
) -> Blueprint:
    """A blueprint whose routes live under ``/l/<launch_id>``; use with :func:`launch_required`.

    ``audience``: ``clinician`` (the default: EHR launches only; an agency worker's standalone
    launch gets 403, because a journey page shows the young person's records without the sharing
    consent check), ``agency`` (standalone launches only) or ``any`` (the view decides)."""
    if audience not in AUDIENCES:
        raise ValueError(f"audience must be one of {AUDIENCES}")
    _AUDIENCE[name] = audience
    return Blueprint(name, import_name, url_prefix="/l/<launch_id>" + url_prefix, **kwargs)


def audience_allows(blueprint: str | None, mode: str) -> bool:
    """May a launch in ``mode`` (``ehr``/``standalone``) use pages of ``blueprint``?"""
    audience = _AUDIENCE.get(blueprint or "", "any")
    return audience == "any" or (audience == "clinician") == (mode == "ehr")


def register_nav(app, endpoint: str, label: str, order: int = 50) -> None:
    """Add a link to the app's navigation (shown on every launch page)."""
    nav = app.extensions["thrive"].nav
    nav.append((order, endpoint, label))
    nav.sort()


def load_launch_record() -> LaunchRecord | None:
    """The launch record named in the URL, if its binding matches this browser (cached in ``g``)."""
    if "launch_record" in g:
        return g.launch_record
    record = None
    launch_id = g.get("launch_id")
    if launch_id:
        candidate = state().sessions.get_launch(launch_id)
        if candidate is not None and state().sessions.binding_matches(candidate, request.cookies.get(COOKIE_NAME)):
            record = candidate
        elif candidate is not None:
            g.launch_binding_mismatch = True
    g.launch_record = record
    return record


def session_ended_response(record: LaunchRecord):
    """Session over. A POST's form is kept server-side and offered again after relaunch (TS-09)."""
    draft_fields: list[tuple[str, str]] = []
    if request.method == "POST":
        draft_fields = [(k, v) for k, v in request.form.items(multi=True) if k != "csrf_token"]
        path = request.path[len(f"/l/{record.launch_id}") :] or "/"
        # launch_required matched the binding cookie, so it is there
        state().sessions.save_draft(request.cookies.get(COOKIE_NAME) or "", record, path, draft_fields)
    _frame_policy_for(record)
    return (
        render_template("errors/session_ended.html", record=record, draft_fields=draft_fields),
        401,
    )


def _frame_policy_for(record: LaunchRecord) -> None:
    """Who may frame this launch's pages: the launching EHR's UI for a clinician launch; nobody
    for an agency worker's standalone launch (SA-03), error pages included."""
    if record.mode == "ehr":
        g.frame_ancestors_iss = record.iss
    else:
        g.frame_none = True


def launch_required(view: Callable) -> Callable:
    """Require a live launch bound to this browser; sets :func:`current_launch`."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any):
        record = load_launch_record()
        if record is None:
            if g.get("launch_binding_mismatch"):
                return error_page(
                    403,
                    "This page belongs to another session",
                    "This link was opened in a different browser session. Relaunch the app from the patient's record.",
                )
            return error_page(
                404,
                "Session not found",
                "This app session was not found or has ended. Relaunch the app from the patient's record.",
            )
        _frame_policy_for(record)
        usable, refreshed = ensure_fresh_token(record)
        if not usable:
            return session_ended_response(state().sessions.get_launch(record.launch_id) or record)
        if refreshed:  # re-read: new expiry (tokens themselves are fetched on use)
            g.launch_record = state().sessions.get_launch(record.launch_id) or record
        g.launch = LaunchContext(g.launch_record, state())
        if (
            record.patient_id
            and not identity_confirmed(record.banner)
            and not getattr(view, "identity_not_needed", False)
        ):
            # Never a young person's plan without their confirmed identity (wrong-patient hazard):
            # the identity page says what went wrong and offers to read the Patient again.
            return redirect(url_for("launch.patient_identity", launch_id=record.launch_id), code=303)
        if not audience_allows(request.blueprint, record.mode):
            if record.mode != "ehr":
                return error_page(
                    403,
                    "This page is for the young person's clinical team",
                    "You can read the plan the young person agreed to share with your organisation on "
                    "the shared plan page.",
                )
            return error_page(404, "Page not found", "Check the address, or go back to the summary.")
        return view(*args, **kwargs)

    return wrapper


def write_required(view: Callable) -> Callable:
    """Refuse state-changing requests in read-only mode (scopes not granted, or agency view).
    GET/HEAD still run so the page can show what is recorded and say why saving is off."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any):
        launch = current_launch()
        if request.method not in ("GET", "HEAD") and not launch.can_write:
            return error_page(
                403,
                "You can view but not save",
                read_only_reason(launch) + " Nothing was saved.",
            )
        return view(*args, **kwargs)

    return wrapper


def read_only_reason(launch: LaunchContext) -> str:
    if launch.mode != "ehr":
        return (
            "The shared plan itself is read-only here; you can update the requests sent to your organisation "
            "and confirm what the safety plan says your organisation will do."
        )
    missing = ", ".join(launch.missing_writes)
    return "Read-only: the EHR did not give this app permission to save changes" + (
        f" (no permission to create {missing})." if missing else "."
    )


def install(app) -> None:
    """Move ``launch_id`` from URLs into ``g`` and back into ``url_for`` for launch routes."""

    @app.url_value_preprocessor
    def _pull_launch_id(endpoint, values):
        if values and "launch_id" in values:
            g.launch_id = values.pop("launch_id")

    @app.after_request
    def _drop_resumed_draft(response):
        # A preserved form that was re-posted and accepted is done with (TS-09).
        if request.method == "POST" and response.status_code < 400 and g.get("launch_record") is not None:
            draft_id = request.form.get("_resume_draft")
            if draft_id:
                draft = state().sessions.take_draft(request.cookies.get(COOKIE_NAME), g.launch_record, draft_id)
                if draft is not None:
                    state().sessions.delete_draft(draft.draft_id)
        return response

    @app.url_defaults
    def _add_launch_id(endpoint, values):
        if "launch_id" in values or not has_request_context() or not g.get("launch_id"):
            return
        if app.url_map.is_endpoint_expecting(endpoint, "launch_id"):
            values["launch_id"] = g.launch_id
