"""The consent-to-share rule: which organisations a young person's sharing Consent lets see their record.

One home for the rule, used by the embedded store (which enforces it on every request made with an
agency token, :mod:`thrive_fhir.store.consent_gate`) and by the app (its own check, kept as defence in
depth). If the two disagreed, an agency could see in one place what it is refused in the other.

The rule (docs/consent-enforcement.md; the Consent shape is the project's ``thrive-sharing-consent``):

- the Consent is ``status = active`` (``inactive`` is a withdrawal from everyone; ``draft``,
  ``proposed``, ``rejected`` and ``entered-in-error`` share nothing);
- its ``scope``, when coded, is ``patient-privacy`` (a treatment or research consent is not an
  agreement to share);
- ``provision.type`` is ``permit``;
- the organisation is a ``provision.actor.reference`` (an ``Organization/<id>`` reference, relative or
  absolute). Withdrawing one agency is a new version of the Consent without that actor;
- ``provision.period`` covers the moment of the request. A date-only end is inclusive (sharing
  "until 2026-03-04" still holds on that day, UTC); a missing start or end is open on that side;
- a nested ``provision.provision`` of type ``deny`` naming the organisation takes it out again
  (fail closed: we do not try to work out which part of the record the exception covers).

Times are naive UTC :class:`datetime` values, as the store keeps them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from .store.fhirdates import date_range

CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"


@dataclass(frozen=True)
class Share:
    """One organisation a Consent shares with, from ``starts`` to ``ends`` (inclusive; None = open)."""

    organization: str  # "Organization/<id>"
    starts: datetime | None
    ends: datetime | None

    def covers(self, now: datetime) -> bool:
        return (self.starts is None or self.starts <= now) and (self.ends is None or now <= self.ends)


def organization_ref(reference: str | None) -> str | None:
    """``Organization/<id>`` from a relative or absolute Organization reference, else None."""
    if not isinstance(reference, str):
        return None
    parts = reference.rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2] == "Organization" and parts[-1] and "_history" not in parts:
        return f"Organization/{parts[-1]}"
    if len(parts) >= 4 and parts[-4] == "Organization" and parts[-2] == "_history":  # versioned reference
        return f"Organization/{parts[-3]}"
    return None


def shares(consent: dict) -> list[Share]:
    """Every organisation ``consent`` shares the young person's record with, with its period.

    Empty when the Consent is not an active permit sharing consent. The period is not compared with
    now here: the store keeps the periods and compares them at each request, so expiry takes effect
    without anything being rewritten.
    """
    if not isinstance(consent, dict) or consent.get("resourceType") != "Consent" or consent.get("status") != "active":
        return []
    if not _privacy_scope(consent.get("scope")):
        return []
    provision = consent.get("provision")
    if not isinstance(provision, dict) or provision.get("type") != "permit":
        return []
    window = _period(provision.get("period"))
    if window is None:
        return []  # a period we cannot read shares nothing (fail closed)
    denied = _denied(provision.get("provision"))
    out: dict[str, Share] = {}
    for org in _actors(provision):
        if org not in denied:
            out.setdefault(org, Share(org, *window))
    return list(out.values())


def active_consent_for(
    consents: list[dict], patient_ref: str, organization: str | None, now: datetime | None = None
) -> dict | None:
    """The first of ``consents`` about ``patient_ref`` that shares with ``organization`` at ``now``."""
    org = organization_ref(organization)
    if org is None:
        return None
    when = _naive_utc(now or datetime.now(UTC))
    pid = patient_ref.rsplit("/", 1)[-1]
    for consent in consents:
        ref = ((consent.get("patient") or {}).get("reference") or "") if isinstance(consent, dict) else ""
        parts = ref.rstrip("/").split("/")
        if len(parts) < 2 or parts[-2] != "Patient" or parts[-1] != pid:
            continue
        if any(s.organization == org and s.covers(when) for s in shares(consent)):
            return consent
    return None


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def _privacy_scope(scope) -> bool:
    if scope is None:
        return True
    codings = scope.get("coding") if isinstance(scope, dict) else None
    if not codings:
        return True  # text-only scope: judged by the rest of the Consent
    return any(
        isinstance(c, dict) and c.get("code") == "patient-privacy" and c.get("system") in (None, CONSENT_SCOPE)
        for c in codings
    )


def _period(period) -> tuple[datetime | None, datetime | None] | None:
    if period is None:
        return None, None
    if not isinstance(period, dict):
        return None
    starts = ends = None
    if period.get("start") is not None:
        rng = date_range(period["start"])
        if rng is None:
            return None
        starts = rng[0]
    if period.get("end") is not None:
        rng = date_range(period["end"])
        if rng is None:
            return None
        ends = rng[1]
    if starts is not None and ends is not None and ends < starts:
        return None
    return starts, ends


def _actors(provision: dict) -> list[str]:
    out = []
    for actor in provision.get("actor") or []:
        if isinstance(actor, dict):
            org = organization_ref(
                (actor.get("reference") or {}).get("reference") if isinstance(actor.get("reference"), dict) else None
            )
            if org:
                out.append(org)
    return out


def _denied(nested) -> set[str]:
    denied: set[str] = set()
    for sub in nested if isinstance(nested, list) else []:
        if not isinstance(sub, dict):
            continue
        if sub.get("type") == "deny":
            denied.update(_actors(sub))
        denied |= _denied(sub.get("provision"))
    return denied


__all__ = ["Share", "active_consent_for", "organization_ref", "shares"]
