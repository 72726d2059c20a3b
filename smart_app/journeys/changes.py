"""Status changes to records that already exist: ending a safety plan, cancelling a referral,
withdrawing sharing. Each returns a new version of the stored resource (the caller saves it with
the version it read, so a change made meanwhile elsewhere is a conflict, never overwritten).

Why not the builders: these are one-element changes to a resource that may have arrived by sync
from another agency's app; rebuilding it from our form inputs could drop elements we do not model.
The change is made on a copy of what is stored, and tests validate the result against our profiles.
"""

from __future__ import annotations

import copy
from datetime import datetime

from smart_app.records import Signpost, Versioned


def stamp(when: datetime) -> str:
    # full precision, as the builders write it: a record made earlier in the same second must
    # still sort before this change (Task inv-1: lastModified >= authoredOn)
    from thrive_fhir.builders._common import fhir_datetime

    return fhir_datetime(when)


def _add_note(resource: dict, text: str, author_ref: str | None, when: datetime) -> None:
    note: dict = {"time": stamp(when), "text": text}
    if author_ref and author_ref.startswith("Practitioner/"):
        note = {"authorReference": {"reference": author_ref}, **note}
    resource.setdefault("note", []).append(note)


def end_safety_plan(plan: Versioned, reason: str, author_ref: str | None, when: datetime) -> dict:
    """The plan, completed (no longer active; kept, with every earlier version, in the history)."""
    r = copy.deepcopy(plan.resource)
    r["status"] = "completed"
    for activity in r.get("activity", []):
        if "detail" in activity:
            activity["detail"]["status"] = "completed"
    _add_note(r, reason, author_ref, when)
    return r


def cancel_referral(sp: Signpost, reason: str, when: datetime) -> list[dict]:
    """The referral's Task cancelled (with the reason) and its ServiceRequest revoked."""
    out = []
    if sp.task is not None:
        task = copy.deepcopy(sp.task)
        task["status"] = "cancelled"
        task["statusReason"] = {"text": reason}
        task["lastModified"] = stamp(when)
        out.append(task)
    sr = copy.deepcopy(sp.request)
    sr["status"] = "revoked"
    out.append(sr)
    return out


def withdraw_sharing(consent: Versioned) -> dict:
    """Sharing withdrawn from every agency: status inactive, the agencies kept so the record still
    says what had been agreed (as the sharing journey does)."""
    r = copy.deepcopy(consent.resource)
    r["status"] = "inactive"
    return r
