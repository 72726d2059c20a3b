"""Agencies act on the referral and signposting Tasks their organisation owns, in the shared store.

Rules (docs/design/fhir-model.md "Signposting and referral": the receiving agency updates the Task, never the
ServiceRequest):
- only a Task whose ``owner`` is the worker's organisation can be changed, and only along
  :data:`TRANSITIONS` (accept or decline a new request; start an accepted one; complete one under
  way). Declining needs a reason (``statusReason.text``);
- each update is sent with ``If-Match`` = the version the worker saw, in one transaction with a
  Provenance naming the worker (author) and their organisation (``onBehalfOf``). If anyone changed
  the Task since the page was drawn, the store answers 412 and the worker is shown what it is now:
  nothing is overwritten;
- the app keeps no copy: the Task is read from and written to the shared store with the worker's token.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from thrive_fhir.consent_rule import organization_ref

#: action -> (statuses it may start from, status it sets, button label, past-tense message)
TRANSITIONS: dict[str, tuple[frozenset[str], str, str, str]] = {
    "accept": (frozenset({"requested", "received", "ready"}), "accepted", "Accept", "accepted"),
    "decline": (frozenset({"requested", "received", "ready"}), "rejected", "Decline", "declined"),
    "start": (frozenset({"accepted"}), "in-progress", "Mark in progress", "marked in progress"),
    "complete": (frozenset({"accepted", "in-progress"}), "completed", "Mark completed", "marked completed"),
}
DATA_OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
PROVENANCE_AGENT = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
MAX_REASON = 500


@dataclass
class TaskView:
    id: str
    version: str
    status: str
    what: str
    requested_by: str
    since: str
    actions: list[tuple[str, str]]  # (action, button label)
    reason: str = ""


def owners_for(client, organization: str | None) -> frozenset[str]:
    """What a Task's ``owner`` may say for it to be this organisation's: the Organization itself, or
    one of the HealthcareServices it provides (referrals are usually addressed to a service)."""
    from .shared_record import _search_all

    org = organization_ref(organization)
    if org is None:
        return frozenset()
    services = _search_all(client, "HealthcareService", [("organization", org), ("_count", "200")])
    return frozenset({org, *(f"HealthcareService/{s['id']}" for s in services)})


def _owner_key(reference: str | None) -> str | None:
    if not isinstance(reference, str):
        return None
    parts = reference.rstrip("/").split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    return "/".join(parts[-2:]) if len(parts) >= 2 else None


def owned_by(task: dict, owners: frozenset[str]) -> bool:
    return _owner_key((task.get("owner") or {}).get("reference")) in owners


def allowed_actions(task: dict) -> list[tuple[str, str]]:
    status = task.get("status", "")
    return [(action, label) for action, (start, _to, label, _done) in TRANSITIONS.items() if status in start]


def task_views(records, owners: frozenset[str], names, show_date, concept_text) -> list[TaskView]:
    """The Tasks of this young person owned by the agency (``owners_for``), with what may be done next."""
    requests = {f"ServiceRequest/{r['id']}": r for r in records.all("ServiceRequest")}
    out = []
    for task in records.all("Task"):
        if not owned_by(task, owners):
            continue
        focus = requests.get(((task.get("focus") or {}).get("reference")) or "")
        what = concept_text(focus.get("code")) if focus else ""
        out.append(
            TaskView(
                id=task["id"],
                version=str((task.get("meta") or {}).get("versionId") or ""),
                status=task.get("status", ""),
                what=what or concept_text(task.get("code")) or "Request",
                requested_by=names(task.get("requester")),
                since=show_date(task.get("authoredOn")),
                actions=allowed_actions(task),
                reason=(task.get("statusReason") or {}).get("text", ""),
            )
        )
    return out


class ActionRefused(Exception):
    """The action cannot be done (not this organisation's Task, wrong state, no reason); ``message`` says why."""


class Conflict(Exception):
    """Someone changed the Task since the worker saw it (the store said 412); ``current`` is it now."""

    def __init__(self, current: dict | None):
        super().__init__("changed by someone else")
        self.current = current


def act(
    client,
    task_id: str,
    action: str,
    seen_version: str,
    reason: str,
    *,
    staff_ref: str,
    organization: str,
    now: datetime | None = None,
) -> dict:
    """Apply ``action`` to Task ``task_id`` in the shared store; returns the Task as now stored."""
    from ..launch.ehr_client import EhrError

    if action not in TRANSITIONS:
        raise ActionRefused("Choose what to do with the request.")
    if not seen_version.isdigit():
        raise ActionRefused("Reload the page and try again.")
    reason = " ".join(reason.split())[:MAX_REASON]
    if action == "decline" and not reason:
        raise ActionRefused("Say why you are declining, so the team can find another way to help.")
    task = client.read("Task", task_id)
    if not owned_by(task, owners_for(client, organization)):
        raise ActionRefused("This request is not for your organisation.")
    starts, new_status, _label, _done = TRANSITIONS[action]
    current_version = str((task.get("meta") or {}).get("versionId") or "")
    if task.get("status") not in starts and current_version == seen_version:
        raise ActionRefused(
            f"This request is {task.get('status', 'in another state')} and cannot be {TRANSITIONS[action][3]}."
        )
    when = (now or datetime.now(UTC)).isoformat(timespec="seconds").replace("+00:00", "Z")
    updated = {k: v for k, v in task.items() if k != "meta"}
    updated["status"] = new_status
    updated["lastModified"] = when
    if action == "decline":
        updated["statusReason"] = {"text": reason}
    provenance = {
        "resourceType": "Provenance",
        "target": [{"reference": f"Task/{task_id}"}],
        "recorded": when,
        "activity": {"coding": [{"system": DATA_OPERATION, "code": "UPDATE", "display": "revise"}]},
        "agent": [
            {
                "type": {"coding": [{"system": PROVENANCE_AGENT, "code": "author", "display": "Author"}]},
                "who": {"reference": staff_ref},
                "onBehalfOf": {"reference": organization},
            }
        ],
        "reason": [{"text": f"Agency {TRANSITIONS[action][3]} the request"}],
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"Task/{task_id}",
                "resource": updated,
                "request": {"method": "PUT", "url": f"Task/{task_id}", "ifMatch": f'W/"{seen_version}"'},
            },
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": provenance,
                "request": {"method": "POST", "url": "Provenance"},
            },
        ],
    }
    try:
        client.request("POST", "", json=bundle)
    except EhrError as exc:
        if exc.status in (409, 412):
            raise Conflict(_reread(client, task_id)) from None
        raise
    return client.read("Task", task_id)


def _reread(client, task_id: str) -> dict | None:
    from ..launch.ehr_client import EhrError

    try:
        return client.read("Task", task_id)
    except EhrError:
        return None


__all__ = ["TRANSITIONS", "ActionRefused", "Conflict", "TaskView", "act", "owned_by", "owners_for", "task_views"]
