"""A young person's shared record, read over FHIR from the shared store with the signed-in user's token.

Why not the app's own database: an agency sees a plan because the young person agreed to share it,
wherever it was recorded; the app's local store only knows what this deployment saved. The store
decides what the token may see (consent enforcement and audit in the store); the app keeps no copy:
what is read here lives for one request, in memory.

Each read is one search per resource type (``Type?patient=<id>``), so each shows in the store's audit
trail as what it is. A young person the store does not show (not shared, or not there) comes back as
:class:`NotShared`, whichever it was: the store answers both the same way.
"""

from __future__ import annotations

import logging

from thrive_fhir.client.fhir_http import next_link

from ..records import PatientRecords

log = logging.getLogger("smart_app.shared_record")

#: What the agency view shows, and what it needs to draw it.
PLAN_TYPES = ("Consent", "Observation", "Goal", "CarePlan", "ServiceRequest", "Task", "CareTeam")
PAGE = 200


class NotShared(Exception):
    """The store shows no such young person to this user (not shared with them, or not there)."""


class StoreUnavailable(Exception):
    """The shared store could not be read just now (network, 5xx, session ended)."""


def read_record(client, patient_id: str) -> tuple[dict, PatientRecords]:
    """(the Patient, every plan resource of theirs the store shows this user) via ``client``.

    ``client`` is the launch's :class:`~smart_app.launch.ehr_client.EhrClient` (the token goes only
    to the store's own base URL)."""
    from ..launch.ehr_client import EhrError, EhrForbidden

    try:
        patient = client.read("Patient", patient_id)
    except EhrForbidden:
        raise NotShared() from None
    except EhrError as exc:
        if exc.status in (404, 410):
            raise NotShared() from None
        raise StoreUnavailable(str(exc)) from None
    rows: list[tuple[str, str, int, dict]] = []
    try:
        for rtype in PLAN_TYPES:
            for resource in _search_all(client, rtype, [("patient", patient_id), ("_count", str(PAGE))]):
                version = (resource.get("meta") or {}).get("versionId") or "1"
                rows.append((rtype, resource["id"], int(version) if str(version).isdigit() else 1, resource))
    except EhrError as exc:
        raise StoreUnavailable(str(exc)) from None
    return patient, PatientRecords(f"Patient/{patient_id}", rows)


def _search_all(client, rtype: str, params: list[tuple[str, str]], max_pages: int = 20) -> list[dict]:
    """Every matching resource (following ``next`` links, bounded), ``match`` entries only."""
    out: list[dict] = []
    resp = client.request("GET", rtype, params=params)
    for _ in range(max_pages):
        bundle = resp.json()
        for entry in bundle.get("entry") or []:
            res = entry.get("resource") or {}
            if res.get("resourceType") == rtype and (entry.get("search") or {}).get("mode", "match") == "match":
                out.append(res)
        nxt = next_link(bundle)  # EhrClient refuses a URL outside the FHIR base itself
        if not nxt:
            break
        resp = client.request("GET", nxt)
    return out


__all__ = ["PLAN_TYPES", "NotShared", "StoreUnavailable", "read_record"]
