"""An agency worker confirms the safety plan items that name their organisation.

The representation and the rule are the library's (:mod:`thrive_fhir.entry_confirmation`): the
agency records its own Provenance pointing at the item; the plan itself is never written. The
shared store checks the item is the organisation's and still says what the worker saw
(``thrive_fhir.store.agency_writes``); the app checks the same first, so a worker is never offered
a button the store would refuse. Like Task updates, everything goes to and comes from the shared
store with the worker's own token; the app keeps no copy.
"""

from __future__ import annotations

from datetime import UTC, datetime

from thrive_fhir.entry_confirmation import agency_entries, build_confirmation, confirmations, held_by


class ConfirmRefused(Exception):
    """The item cannot be confirmed by this worker (not theirs, already confirmed); ``str`` says why."""


class PlanChanged(Exception):
    """The item is no longer in the plan as the worker saw it (reworded or removed since)."""


def read_confirmations(client, plan: dict | None) -> list[dict]:
    """Confirmations recorded against ``plan`` in the shared store (one search)."""
    from .shared_record import _search_all

    if not plan or not plan.get("id"):
        return []
    return _search_all(client, "Provenance", [("target", f"CarePlan/{plan['id']}"), ("_count", "200")])


def mark_confirmable(summary, owners: frozenset[str], organization: str | None) -> None:
    """Let the worker confirm the unconfirmed items held by their organisation (or its services)."""
    plan = summary.safety_plan
    if plan is None or organization is None:
        return
    services = frozenset(o for o in owners if o.startswith("HealthcareService/"))
    for _label, items in plan.sections:
        for item in items:
            if item.id and not item.confirmed:
                item.can_confirm = held_by(tuple(item.performers), organization, services)


def confirm(
    client,
    plan: dict,
    seen_version: str,
    entry_id: str,
    *,
    staff_ref: str,
    organization: str,
    owners: frozenset[str],
    now: datetime | None = None,
) -> dict:
    """Record the organisation's confirmation of item ``entry_id`` of ``plan`` (as read just now)."""
    from ..launch.ehr_client import EhrError

    if not seen_version.isdigit():
        raise ConfirmRefused("Reload the page and try again.")
    entry = next((e for e in agency_entries(plan) if e.id == entry_id), None)
    if entry is None:
        raise PlanChanged()
    services = frozenset(o for o in owners if o.startswith("HealthcareService/"))
    if not held_by(entry.performers, organization, services):
        raise ConfirmRefused("This part of the plan is not for your organisation.")
    if entry_id in confirmations(plan, read_confirmations(client, plan)):
        raise ConfirmRefused("Your organisation has already confirmed this.")
    provenance = build_confirmation(
        plan["id"],
        seen_version,
        entry_id,
        worker=staff_ref,
        organization=organization,
        recorded=now or datetime.now(UTC),
    )
    try:
        return client.request("POST", "Provenance", json=provenance).json()
    except EhrError as exc:
        if exc.status == 409:
            raise PlanChanged() from None
        if exc.status == 403:
            raise ConfirmRefused("The shared record did not let your organisation confirm this.") from None
        raise


__all__ = ["ConfirmRefused", "PlanChanged", "confirm", "mark_confirmable", "read_confirmations"]
