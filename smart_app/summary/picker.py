"""In-app patient picker for agency staff whose standalone launch came back without a patient.

Epic gives no patient for provider-facing standalone launches (docs/design/smart-launch.md SA-04). Where the
registry says so (``need_patient_picker``), the agency worker finds the young person here. Only
young people whose active sharing Consent names the worker's organisation can be found: that set
is worked out FIRST from the Consents in the shared store (read with the worker's token; the store
itself shows only young people shared with the organisation), and the store is then asked only about those young people
(``Patient?_id=…&name=…``, with the ``user/Patient.rs`` scope), so nobody else's record is ever
looked up, let alone listed. A search needs an NHS number or at least two letters of a name (no
browsing), and every young person shown in a result list gets an AuditEvent (``search-type``).

The first page (no search yet) lists the young people this worker opened before who still share
with their organisation (consent checked first, as for a search; each listing audited), so the
worker sees at a glance whose plan moved on. A young person whose shared plan changed since this
worker last opened it is marked "Changed since your last visit" there and in search results
(:mod:`.agency_changes` says how that is decided).

Choosing a young person checks the consent again (never trusting the form) and opens a new launch
context for them (``SessionStore.fork_launch``; one patient per context, TS-02), whose shared-plan
page does its own consent check and read audit.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime

from flask import redirect, render_template, request, url_for

from thrive_fhir import canonical

from ..context import current_launch, error_page, launch_blueprint, launch_required, state
from ..launch.ehr_client import EhrError, EhrSessionEnded, banner_from_patient
from ..launch.identity import identity_or_problem
from .agency import build_read_audit, consent_for, unattributable, write_audit
from .agency_changes import changed_since_visits, worker_key

log = logging.getLogger("smart_app.picker")

bp = launch_blueprint("picker", __name__, audience="agency")

#: How many young people the EHR is asked about per search request (keeps ``_id`` lists short).
ID_CHUNK = 50
MAX_QUERY = 100
#: How many young people opened before are listed on the picker's first page.
RECENT = 20
_ID_RE = re.compile(r"[A-Za-z0-9\-.]{1,64}")  # a FHIR id


def consenting_patients(launch, organization_ref: str | None, now: datetime) -> list[str]:
    """Patient references whose active sharing Consent names ``organization_ref`` now.

    Asks the shared store (the launch's FHIR base) with the worker's token for the Consents naming
    the organisation (``Consent?actor=…&status=active``; the store shows only those it would share
    anyway) and applies the same rule as the shared-plan page (``agency.consent_for``)."""
    if not organization_ref:
        return []
    from .shared_record import _search_all

    consents = _search_all(
        launch.ehr_client, "Consent", [("actor", organization_ref), ("status", "active"), ("_count", "200")]
    )
    by_patient: dict[str, list[dict]] = {}
    for consent in consents:
        ref = (consent.get("patient") or {}).get("reference") or ""
        if ref.startswith("Patient/"):
            by_patient.setdefault(ref, []).append(consent)
    return sorted(p for p, cs in by_patient.items() if consent_for(cs, p, organization_ref, now))


def _query_params(q: str) -> list[tuple[str, str]] | None:
    """EHR search parameters for what the worker typed, or None if it is too vague to search."""
    digits = re.sub(r"[\s-]", "", q)
    if digits.isdigit():
        return [("identifier", f"{canonical.NHS_NUMBER}|{digits}")] if len(digits) == 10 else None
    if len(q) < 2:
        return None
    return [("name", q)]


def _search_ehr(launch, patient_refs: list[str], params: list[tuple[str, str]]) -> list[dict]:
    """Patients among ``patient_refs`` matching ``params``, asking the EHR about those only."""
    ids = [r.split("/", 1)[1] for r in patient_refs]
    found: list[dict] = []
    for i in range(0, len(ids), ID_CHUNK):
        bundle = launch.ehr_client.request(
            "GET", "Patient", params=[("_id", ",".join(ids[i : i + ID_CHUNK])), *params, ("_count", str(ID_CHUNK))]
        ).json()
        allowed = set(ids)
        for entry in bundle.get("entry", []):
            res = entry.get("resource") or {}
            if res.get("resourceType") == "Patient" and res.get("id") in allowed:  # never trust the EHR to filter
                found.append(res)
    return found


def _changed(launch, patient_ids: list[str]) -> set[str]:
    """Which of the listed young people's shared plans changed since this worker last opened them
    (:mod:`.agency_changes`, asked of the store with the worker's token); none when it cannot tell."""
    key = worker_key(launch)
    if key is None or not patient_ids:
        return set()
    seen = state().changes.last_visits(key, patient_ids)
    try:
        return changed_since_visits(launch.ehr_client, seen)
    except EhrError:
        log.warning("patient picker: changes since the last visits could not be checked")
        return set()


def _picker_launch():
    launch = current_launch()
    if launch.mode != "standalone" or launch.patient_id is not None:
        return launch, error_page(404, "Page not found", "Check the address, or go back to the shared plan.")
    if not launch.organization_ref:
        return launch, error_page(
            403,
            "Your organisation is not set up here",
            "This sign-in is not linked to an organisation, so no shared plans can be found. "
            "Ask your system administrator to set your organisation up for this app.",
        )
    return launch, unattributable(launch)


def _listed(launch, patients: list[dict], now: datetime) -> list[dict]:
    """What the page shows of each young person found, each listing audited (``search-type``)."""
    changed = _changed(launch, [p["id"] for p in patients])
    out = []
    for patient in patients:
        banner = banner_from_patient(patient)
        out.append({"id": patient["id"], **banner, "changed": patient["id"] in changed})
        write_audit(
            launch,
            build_read_audit(
                launch, [], allowed=True, now=now, patient_ref=f"Patient/{patient['id']}", interaction="search-type"
            ),
        )
    return out


def _opened_before(launch, now: datetime) -> tuple[list[dict], str | None]:
    """The young people this worker opened before and who still share with their organisation (at
    most :data:`RECENT`, most recently opened first): where "changed since your last visit" shows
    without a search. Only people the worker already opened, so nobody is browsed."""
    key = worker_key(launch)
    recent = state().changes.recent_visits(key, RECENT) if key else []
    if not recent:
        return [], None
    try:
        allowed = set(consenting_patients(launch, launch.organization_ref, now))  # consent first
        wanted = [f"Patient/{pid}" for pid in recent if f"Patient/{pid}" in allowed]
        patients = _search_ehr(launch, wanted, []) if wanted else []
    except EhrSessionEnded:
        return [], "Your session has ended. Sign in again to see the young people you opened before."
    except EhrError:
        log.warning("patient picker: the young people opened before could not be read")
        return [], "The young people you opened before could not be shown just now."
    order = {pid: i for i, pid in enumerate(recent)}
    patients.sort(key=lambda p: order.get(p["id"], len(order)))
    return _listed(launch, patients, now), None


@bp.get("/choose")
@launch_required
def index():
    launch, refused = _picker_launch()
    if refused:
        return refused
    q = (request.args.get("q") or "").strip()[:MAX_QUERY]
    results, message = [], None
    now = datetime.now(UTC)
    if q:
        params = _query_params(q)
        if params is None:
            message = "Enter a 10-digit NHS number, or at least 2 letters of the young person's name."
        else:
            patients = []
            try:
                allowed = consenting_patients(launch, launch.organization_ref, now)  # consent first
                if allowed:
                    patients = _search_ehr(launch, allowed, params)
            except EhrSessionEnded:
                message = "Your session has ended. Sign in again to search."
            except EhrError:
                log.warning("patient picker: the shared store search failed")
                message = "The search could not be done just now. Try again."
            results = _listed(launch, patients, now)
            if not results and message is None:
                message = "No young person matching that has agreed to share their plan with your organisation."
        recent, recent_message = [], None
    else:
        recent, recent_message = _opened_before(launch, now)
    return render_template(
        "summary/picker.html", q=q, results=results, message=message, recent=recent, recent_message=recent_message
    )


@bp.post("/choose")
@launch_required
def choose():
    launch, refused = _picker_launch()
    if refused:
        return refused
    patient_id = (request.form.get("patient") or "").strip()
    if not _ID_RE.fullmatch(patient_id):
        return error_page(400, "Choose a young person", "Choose a young person from the search results.")
    now = datetime.now(UTC)
    patient_ref = f"Patient/{patient_id}"
    try:
        allowed = consenting_patients(launch, launch.organization_ref, now)
    except EhrError:
        return error_page(
            502,
            "The shared record is unavailable",
            "The shared record could not be read just now. Try again in a few minutes.",
        )
    if patient_ref not in allowed:
        write_audit(launch, build_read_audit(launch, [], allowed=False, now=now, patient_ref=patient_ref))
        return error_page(
            403,
            "This plan is not shared with your organisation",
            "The young person has not agreed to share their plan with your organisation, or their agreement has ended.",
        )
    # The young person's identity is confirmed (or not) by the one rule for every launch: an
    # unconfirmed one leads every page of the new context to the "try again" page.
    banner = identity_or_problem(launch.ehr_client, patient_id)
    new_id = state().sessions.fork_launch(launch.launch_id, patient_id=patient_id, banner=banner)
    if new_id is None:
        return error_page(404, "Session not found", "This sign-in has ended. Sign in again to find a young person.")
    return redirect(url_for("agency.index", launch_id=new_id), code=303)
