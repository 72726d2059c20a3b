""" "Changed since your last visit" on the agency worker's list of young people.

What a visit is: the worker opened the young person's shared plan (the consent check passed). What
is kept (``app_agency_visit``, :mod:`smart_app.shared_changes`): per (worker, young person) the
newest ``meta.lastUpdated`` among the plan resources the store showed them then ("seen through"),
in the store's own clock, so the app's clock never has to agree with the store's. Ids and times
only.

How "changed" is decided: from the shared store, with the worker's own token, when the list is
drawn. One ``batch`` Bundle holds one search per plan type over all the listed young people the
worker has visited (``Type?patient=<ids>&_lastUpdated=gt<oldest seen-through>``); a young person
is marked when a resource of theirs is newer than what that worker saw. Why not from the
notifications this deployment receives: those are the deployment's (its Backend Services
Subscription, under its organisation's consent), not the agency worker's; asking the store with the
worker's token means the store's consent rule and audit apply to the question itself, so a worker
never learns that an unshared young person changed. A store that refuses the batch is asked type
by type. Deletions are not seen (a search finds only what exists), and a change the worker cannot
read (another organisation's AuditEvent) is not a change of their shared plan.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from urllib.parse import quote

from thrive_fhir.client.fhir_http import BATCH_REFUSED, is_fhir_id, next_link, search_batch

from ..launch.ehr_client import EhrError, EhrSessionEnded
from .shared_record import PLAN_TYPES

log = logging.getLogger("smart_app.agency_changes")

PAGE = 200


def _instant(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def seen_through(resources: list[dict]) -> str:
    """The newest ``meta.lastUpdated`` of ``resources`` as the store wrote it (now, if none has one)."""
    newest: tuple[datetime, str] | None = None
    for res in resources:
        text = (res.get("meta") or {}).get("lastUpdated")
        when = _instant(text)
        if when is not None and (newest is None or when > newest[0]):
            newest = (when, str(text))
    if newest is None:
        return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    return newest[1]


def worker_key(launch) -> str | None:
    """Whose visits: the signed-in worker's ``fhirUser`` on this store (None when there is none)."""
    if not launch.user_ref:
        return None
    key = f"{launch.user_ref}@{launch.iss}"
    return key if len(key) <= 512 else None


def _patient_of(res: dict) -> str | None:
    for key in ("patient", "subject", "for"):
        ref = (res.get(key) or {}).get("reference") if isinstance(res.get(key), dict) else None
        if isinstance(ref, str) and ref.startswith("Patient/"):
            return ref.split("/", 1)[1]
    return None


def _batch_pages(body: object, n: int) -> list[dict] | None:
    """The ``n`` searchsets of a batch-response, or None when it is not one."""
    entries = body.get("entry") if isinstance(body, dict) else None
    if not isinstance(entries, list) or len(entries) != n:
        return None
    pages = []
    for entry in entries:
        status = str(((entry.get("response") or {}) if isinstance(entry, dict) else {}).get("status") or "")
        if not status.startswith("2") or not isinstance(entry.get("resource"), dict):
            return None
        pages.append(entry["resource"])
    return pages


def _searches(client, paths: list[str]) -> list[dict]:
    """Every resource found by ``paths``: one batch, else one search at a time (a store that does not
    take batches, or answers one oddly)."""
    try:
        pages = _batch_pages(client.request("POST", "", json=search_batch(paths)).json(), len(paths))
    except EhrSessionEnded:
        raise
    except EhrError as exc:
        if exc.status not in BATCH_REFUSED:
            raise
        pages = None
    except ValueError:  # not JSON
        pages = None
    if pages is None:
        pages = [client.request("GET", p).json() for p in paths]
    found: list[dict] = []
    for bundle in pages:
        for _ in range(10):
            for entry in bundle.get("entry") or []:
                res = entry.get("resource") if isinstance(entry, dict) else None
                if isinstance(res, dict) and (entry.get("search") or {}).get("mode", "match") == "match":
                    found.append(res)
            nxt = next_link(bundle)  # the client refuses a URL outside the store's base itself
            if not nxt:
                break
            bundle = client.request("GET", nxt).json()
    return found


def changed_since_visits(client, seen: dict[str, str]) -> set[str]:
    """The young people (Patient ids) among ``seen`` (id -> seen-through instant) with a plan
    resource newer than what the worker saw; raises the client's errors (the caller says so)."""
    marks = {pid: when for pid, text in seen.items() if is_fhir_id(pid) and (when := _instant(text)) is not None}
    if not marks:
        return set()
    oldest = min(seen[pid] for pid in marks)
    ids = ",".join(sorted(marks))
    paths = [f"{t}?patient={ids}&_lastUpdated={quote('gt' + oldest, safe='')}&_count={PAGE}" for t in PLAN_TYPES]
    out: set[str] = set()
    for res in _searches(client, paths):
        pid = _patient_of(res)
        updated = _instant((res.get("meta") or {}).get("lastUpdated"))
        if pid in marks and updated is not None and updated > marks[pid]:
            out.add(pid)
    return out


__all__ = ["changed_since_visits", "seen_through", "worker_key"]
