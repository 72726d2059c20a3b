"""Saving a journey's resources: one local transaction, one save, never a silent overwrite.

Three outcomes of :func:`save`:

* ``"saved"``: the resources, their Provenance and one outbox row were written together
  (``LocalStore.record`` does that in the caller's transaction).
* ``"duplicate"``: the same form was posted twice (double click, browser resend). The first post
  already created the record whose local id is the form token, or the record already holds exactly
  what this post would write. Nothing is written; the page shows the saved record as if saved.
* :class:`Conflict` raised: someone else changed a record after this form was drawn. Nothing is
  written; the page shows both versions and asks what to keep (docs/design/thrive-framework.md, clinical
  safety: conflicting edits are shown, not merged blindly).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from smart_app import records
from smart_app.risk import RiskState
from thrive_fhir.builders import EpisodeInput, RiskFlagInput, build_episode, build_risk_flag
from thrive_fhir.localstore import ChangeSet, StaleVersion

from .localids import derived_uuid4

#: Keys whose value is the time of saving, not content: two posts of one form differ only there.
_VOLATILE = {"meta", "time", "dateTime", "issued", "authoredOn", "lastModified", "recorded", "statusDate"}


class Conflict(Exception):
    """A record changed since the form was drawn. ``current`` is what is saved now."""

    def __init__(self, resource_ref: str, current: dict | None, current_version: int):
        super().__init__(f"{resource_ref} changed since the form was drawn")
        self.resource_ref = resource_ref
        self.current = current
        self.current_version = current_version


@dataclass
class Who:
    """Who is saving, from the launch."""

    patient_ref: str
    author_ref: str
    organization_ref: str
    practitioner_ref: str | None  # Practitioner/… for Annotation.authorReference (R4 allows no role)


def who(launch) -> Who:
    author = launch.staff_ref
    practitioner = launch.user_ref if (launch.user_ref or "").startswith("Practitioner/") else None
    return Who(
        patient_ref=launch.patient_ref,
        author_ref=author,
        organization_ref=launch.organization_ref or author,
        practitioner_ref=practitioner,
    )


def stable(value):
    """Content without save-time stamps, for telling a resent form from a real change."""
    if isinstance(value, dict):
        return {k: stable(v) for k, v in value.items() if k not in _VOLATILE}
    if isinstance(value, list):
        return [stable(v) for v in value]
    return value


def save(
    store,
    w: Who,
    items: list[tuple[dict, int | None]],
    *,
    activity: str,
    created_ref: str | None = None,
    reason: str | None = None,
) -> str:
    """Record ``items`` ((resource, expected local version)) as one save; see the module docstring.

    ``created_ref`` names the resource whose local id is the form token: if it exists already, this
    post is a resend of a form that was saved.
    """
    if created_ref:
        rtype, rid = created_ref.split("/", 1)
        if store.current_version(rtype, rid) > 0:
            return "duplicate"
    cs = ChangeSet(
        patient_key=w.patient_ref,
        author_ref=w.author_ref,
        organization_ref=w.organization_ref,
        activity=activity,
        reason=reason,
    )
    for resource, expected in items:
        cs.put(resource, expected_local_version=expected)
    try:
        with store.session() as s:
            store.record(s, cs)
    except StaleVersion as exc:
        records.forget()  # the page redrawn after a refused save must show what is saved now
        if created_ref and exc.resource_ref == created_ref:
            return "duplicate"  # the twin post won the race
        mine = next((r for r, _ in items if f"{r['resourceType']}/{r['id']}" == exc.resource_ref), None)
        if mine is not None and exc.current_resource is not None and stable(mine) == stable(exc.current_resource):
            return "duplicate"
        raise Conflict(exc.resource_ref, exc.current_resource, exc.current_version) from None
    records.forget()
    return "saved"


# --- the episode every grouping and rating belongs to ------------------------------------------
def episode_for(store, w: Who, token: str, today: date) -> tuple[str, list[tuple[dict, int | None]]]:
    """The active episode with this organisation, or a new one to save with this form's records."""
    current = records.active_episode(store, w.patient_ref, w.organization_ref)
    if current is not None:
        return current.ref, []
    episode = build_episode(
        EpisodeInput(
            local_id=derived_uuid4(token, "episode"),
            subject=w.patient_ref,
            managing_organization=w.organization_ref,
            start=today,
        )
    )
    return f"EpisodeOfCare/{episode['id']}", [(episode, 0)]


# --- the risk banner Flag ---------------------------------------------------------------------
def flag_changes(
    store, w: Who, token: str, *, risk: RiskState, now: datetime | None = None
) -> list[tuple[dict, int | None]]:
    """Raise or clear the "Getting Risk Support: safety plan in place" Flag to match ``risk``, the
    risk state the records will have once this save lands (``smart_app.risk.assess``).

    The Flag is derived, never the source of truth: it is active exactly while ``risk.flag_wanted``
    (Getting Risk Support AND an active, in-date safety plan; see ``smart_app.risk``). Clearing keeps
    the Flag with an end time; raising again later starts a new Flag.
    """
    now = now or datetime.now(UTC)
    wanted = risk.flag_wanted
    current = records.active_flag(store, w.patient_ref)
    if wanted and current is None:
        flag = build_risk_flag(
            RiskFlagInput(local_id=derived_uuid4(token, "flag"), subject=w.patient_ref, author=w.author_ref, start=now),
            now=now,
        )
        return [(flag, 0)]
    if not wanted and current is not None:
        start = records.parse_when(current.resource.get("period", {}).get("start")) or now
        if not isinstance(start, datetime):
            start = datetime(start.year, start.month, start.day, tzinfo=UTC)
        cleared = build_risk_flag(
            RiskFlagInput(
                local_id=current.local_id,
                subject=w.patient_ref,
                author=current.resource.get("author", {}).get("reference", w.author_ref),
                start=min(start, now),
                end=now,
                status="inactive",
            ),
            now=now,
        )
        return [(cleared, current.version)]
    return []
