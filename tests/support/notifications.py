"""Building Subscription notification Bundles as the shared store sends them (the wire contract of the
Backport IG's R4 representation), for tests of receivers and parsers, and a loopback sender.

    bundle = notification("sub-1", "event-notification", events=[(3, "Task/t1", "Patient/p1")],
                          since_start=3, base="http://127.0.0.1:1234/fhir")
    status, body = post(app_url + "/notifications/shared-plan", bundle, secret="s3cret")

Everything is ids and times; nothing here is health data.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import requests

from thrive_fhir import canonical


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def notification(
    subscription_id: str,
    kind: str = "event-notification",
    *,
    events: list[tuple[int, str, str | None]] = (),  # type: ignore[assignment]
    since_start: int | None = None,
    base: str = "http://127.0.0.1:9/fhir",
    status: str = "active",
    bundle_type: str = "history",
) -> dict:
    """A notification Bundle (R4 Parameters status, id-only entries). ``events``: (number, focus,
    patient or None)."""
    parts: list[dict] = [
        {"name": "subscription", "valueReference": {"reference": f"{base}/Subscription/{subscription_id}"}},
        {"name": "topic", "valueCanonical": canonical.TOPIC_SHARED_PLAN_CHANGED},
        {"name": "status", "valueCode": status},
        {"name": "type", "valueCode": kind},
    ]
    if since_start is not None:
        parts.append({"name": "events-since-subscription-start", "valueString": str(since_start)})
    for number, focus, patient in events:
        sub = [
            {"name": "event-number", "valueString": str(number)},
            {"name": "timestamp", "valueInstant": _now()},
            {"name": "focus", "valueReference": {"reference": focus}},
        ]
        if patient:
            sub.append({"name": "additional-context", "valueReference": {"reference": patient}})
        parts.append({"name": "notification-event", "part": sub})
    entries: list[dict] = [
        {
            "fullUrl": f"urn:uuid:{uuid.uuid4()}",
            "resource": {
                "resourceType": "Parameters",
                "id": str(uuid.uuid4()),
                "meta": {"profile": [f"{canonical.BACKPORT_SD}/backport-subscription-status-r4"]},
                "parameter": parts,
            },
        }
    ]
    entries += [{"fullUrl": f"{base}/{focus}"} for _n, focus, _p in events]
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": bundle_type,
        "timestamp": _now(),
        "entry": entries,
    }


def r4b_notification(subscription_id: str, kind: str, *, events=(), since_start: int | None = None) -> dict:
    """The same as an R4B ``SubscriptionStatus`` resource (another server's variant)."""
    status: dict = {
        "resourceType": "SubscriptionStatus",
        "status": "active",
        "type": kind,
        "subscription": {"reference": f"Subscription/{subscription_id}"},
        "topic": canonical.TOPIC_SHARED_PLAN_CHANGED,
        "notificationEvent": [
            {
                "eventNumber": str(n),
                "timestamp": _now(),
                "focus": {"reference": focus},
                **({"additionalContext": [{"reference": p}]} if p else {}),
            }
            for n, focus, p in events
        ],
    }
    if since_start is not None:
        status["eventsSinceSubscriptionStart"] = str(since_start)
    return {"resourceType": "Bundle", "type": "history", "entry": [{"resource": status}]}


def post(url: str, body: dict | str | bytes, *, secret: str | None, timeout: float = 10) -> requests.Response:
    """POST ``body`` as the store does (``Authorization: Bearer <secret>`` from ``channel.header``)."""
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    headers = {"Content-Type": "application/fhir+json"}
    if secret is not None:
        headers["Authorization"] = f"Bearer {secret}"
    return requests.post(url, data=data, headers=headers, timeout=timeout)
