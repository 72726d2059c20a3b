"""Notification Bundles and the SubscriptionStatus Parameters, as the Backport IG's R4 representation.

A notification is a ``history`` Bundle whose first entry is a Parameters resource (profile
``backport-subscription-status-r4``) saying which subscription, topic, status, notification type and
event count this is; each ``notification-event`` part names the event number, its time, the changed
resource (``focus``) and the young person (``additional-context``). With ``id-only`` content one more
entry per event carries the changed resource's URL and NO ``resource``: the receiver reads what it
needs with its own token, under the store's consent rule. With ``empty`` content the events carry
only their number and time.
"""

from __future__ import annotations

import uuid
from typing import NamedTuple

from ...canonical import BACKPORT_SD, TOPIC_SHARED_PLAN_CHANGED
from ..fhirdates import to_instant, utcnow

PROFILE_NOTIFICATION = f"{BACKPORT_SD}/backport-subscription-notification-r4"
PROFILE_STATUS = f"{BACKPORT_SD}/backport-subscription-status-r4"


class Event(NamedTuple):
    """One numbered event of one subscription (a row of ``subscription_deliveries``)."""

    number: int
    created: object  # datetime
    res_type: str
    res_id: str
    version_id: int
    method: str  # POST | PUT | DELETE
    patient_key: str


def status_parameters(
    base: str, sub_id: str, status: str, kind: str, events_total: int, events: list[Event], content: str
) -> dict:
    """The SubscriptionStatus as Parameters (``kind``: handshake, heartbeat, event-notification,
    query-status or query-event)."""
    params: list[dict] = [
        {"name": "subscription", "valueReference": {"reference": f"{base}/Subscription/{sub_id}"}},
        {"name": "topic", "valueCanonical": TOPIC_SHARED_PLAN_CHANGED},
        {"name": "status", "valueCode": status},
        {"name": "type", "valueCode": kind},
        {"name": "events-since-subscription-start", "valueString": str(events_total)},
    ]
    for event in events:
        parts: list[dict] = [
            {"name": "event-number", "valueString": str(event.number)},
            {"name": "timestamp", "valueInstant": to_instant(event.created)},
        ]
        if content == "id-only":
            parts.append({"name": "focus", "valueReference": {"reference": f"{event.res_type}/{event.res_id}"}})
            parts.append(
                {"name": "additional-context", "valueReference": {"reference": f"Patient/{event.patient_key}"}}
            )
        params.append({"name": "notification-event", "part": parts})
    pid = str(uuid.uuid4())
    return {"resourceType": "Parameters", "id": pid, "meta": {"profile": [PROFILE_STATUS]}, "parameter": params}


def notification_bundle(
    base: str, sub_id: str, status: str, kind: str, events_total: int, events: list[Event], content: str
) -> dict:
    """A notification (or a ``$events`` answer, ``kind`` = query-event): history Bundle, status first."""
    status_resource = status_parameters(base, sub_id, status, kind, events_total, events, content)
    entries: list[dict] = [
        {
            "fullUrl": f"urn:uuid:{status_resource['id']}",
            "resource": status_resource,
            "request": {"method": "GET", "url": f"{base}/Subscription/{sub_id}/$status"},
            "response": {"status": "200"},
        }
    ]
    if content == "id-only":
        for event in events:  # R4 history entries need request and response (bdl-3, bdl-4)
            url = f"{event.res_type}/{event.res_id}"
            entries.append(
                {
                    "fullUrl": f"{base}/{url}",
                    "request": {"method": event.method, "url": event.res_type if event.method == "POST" else url},
                    "response": {
                        "status": {"POST": "201", "PUT": "200", "DELETE": "204"}[event.method],
                        "etag": f'W/"{event.version_id}"',
                    },
                }
            )
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"profile": [PROFILE_NOTIFICATION]},
        "type": "history",
        "timestamp": to_instant(utcnow()),
        "entry": entries,
    }


def status_bundle(base: str, sub_id: str, status: str, events_total: int) -> dict:
    """The answer to ``Subscription/{id}/$status``: a searchset holding the status."""
    status_resource = status_parameters(base, sub_id, status, "query-status", events_total, [], "empty")
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": "searchset",
        "total": 1,
        "entry": [
            {
                "fullUrl": f"urn:uuid:{status_resource['id']}",
                "resource": status_resource,
                "search": {"mode": "match"},
            }
        ],
    }
