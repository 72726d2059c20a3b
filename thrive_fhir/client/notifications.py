"""Reading topic-based Subscription notifications (FHIR Subscriptions Backport IG) into plain events.

Why one module: the app's receiver, its ``$events`` catch-up and the store's own tests all need
"which young person changed, when, and as event number N" out of a notification Bundle, and the
Bundle comes in more than one shape. What is understood:

- the R4 representation of the Backport IG: a ``history`` Bundle whose first entry is a
  ``Parameters`` (the SubscriptionStatus profile) with parts ``subscription``, ``topic``, ``status``,
  ``type``, ``events-since-subscription-start`` and one ``notification-event`` per event (sub-parts
  ``event-number``, ``timestamp``, ``focus``, ``additional-context``);
- the R4B/R5 representation: a ``SubscriptionStatus`` resource (``eventsSinceSubscriptionStart``,
  ``notificationEvent[].eventNumber``...), in a ``history`` (R4B) or ``subscription-notification``
  (R5) Bundle;
- ``$status`` answers (a ``searchset`` holding the status) and ``$events`` answers.

Tolerances, each seen in the wild or allowed by the specifications: counters as ``valueString``
(the R4 backport, where there is no 64-bit integer), ``valueInteger``, ``valueUnsignedInt``,
``valueInteger64`` or ``valueDecimal``; a primitive carrying only an extension (``_valueString``)
counts as absent; references absolute (``https://server/fhir/Task/1/_history/2``) or relative;
``additional-context`` naming several resources, of which the Patient is the young person. With no
Patient there, a focus that is itself a Patient, or a full-resource entry's ``subject``/``patient``,
names the young person; otherwise the event's patient is None (the caller decides what an
unattributable change means; the app invalidates every cached read).

Nothing here keeps or logs the Bundle: a notification of an ``id-only`` subscription carries ids and
times only, and what is returned is ids and times only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: Kinds of notification (SubscriptionStatus.type).
HANDSHAKE = "handshake"
HEARTBEAT = "heartbeat"
EVENT = "event-notification"
QUERY_STATUS = "query-status"
QUERY_EVENT = "query-event"
TYPES = frozenset({HANDSHAKE, HEARTBEAT, EVENT, QUERY_STATUS, QUERY_EVENT})
#: Bundle types a notification or an operation's answer may come in.
BUNDLE_TYPES = frozenset({"history", "subscription-notification", "searchset"})
#: More events than this in one Bundle is refused (a store batches far fewer; bounds our work).
MAX_EVENTS = 1000

_REF_RE = re.compile(r"(?:^|/)([A-Z][A-Za-z]{1,63})/([A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]{1,64})?$")
_INT_KEYS = ("valueString", "valueInteger64", "valueUnsignedInt", "valueInteger", "valuePositiveInt", "valueDecimal")


class NotificationError(ValueError):
    """The body is not a notification this module can read; the message says why (no content)."""


@dataclass(frozen=True)
class Event:
    """One change announced by a notification: ids and times only."""

    number: int | None
    timestamp: str | None
    focus: str | None  # "Task/abc"
    patient: str | None  # "Patient/<id>" when the notification says which young person


@dataclass(frozen=True)
class Notification:
    """What a notification (or a ``$status``/``$events`` answer) says."""

    type: str
    status: str | None
    subscription: str | None  # the Subscription's id (not a URL)
    topic: str | None
    events_since_start: int | None
    events: tuple[Event, ...] = field(default_factory=tuple)

    @property
    def numbers(self) -> list[int]:
        return sorted(e.number for e in self.events if e.number is not None)


def relative_ref(value: object) -> str | None:
    """``Type/id`` of a reference string, absolute or relative, without its ``_history`` part."""
    if not isinstance(value, str) or len(value) > 2048:
        return None
    m = _REF_RE.search(value.split("?", 1)[0].split("#", 1)[0])
    return f"{m.group(1)}/{m.group(2)}" if m else None


def _ref_of(value: object) -> str | None:
    return relative_ref(value.get("reference")) if isinstance(value, dict) else None


def _count(value: object) -> int | None:
    """A non-negative whole number from a string or number; None for absent, refuse nonsense."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise NotificationError("a count is not a whole number")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 19:
        number = int(value.strip())
    else:
        raise NotificationError("a count is not a whole number")
    if number < 0:
        raise NotificationError("a count is negative")
    return number


def _part_count(part: dict) -> int | None:
    for key in _INT_KEYS:
        if key in part:
            return _count(part[key])
    return None


def _part_str(part: dict, *keys: str) -> str | None:
    for key in keys:
        value = part.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _patient_from(refs: list[str | None]) -> str | None:
    return next((r for r in refs if r and r.startswith("Patient/")), None)


def _parts(params: dict, key: str = "parameter") -> list[dict]:
    parts = params.get(key)
    if parts is None:
        return []
    if not isinstance(parts, list) or not all(isinstance(p, dict) for p in parts):
        raise NotificationError(f"Parameters {key} is not a list of parameters")
    return parts


def _from_parameters(params: dict) -> Notification:
    fields: dict[str, dict] = {}
    events: list[Event] = []
    for part in _parts(params):
        name = part.get("name")
        if name == "notification-event":
            if len(events) >= MAX_EVENTS:
                raise NotificationError("too many events in one notification")
            subparts = _parts(part, "part")
            sub = {p["name"]: p for p in subparts if isinstance(p.get("name"), str)}
            contexts = [_ref_of(p.get("valueReference")) for p in subparts if p.get("name") == "additional-context"]
            focus = _ref_of((sub.get("focus") or {}).get("valueReference"))
            events.append(
                Event(
                    number=_part_count(sub.get("event-number") or {}),
                    timestamp=_part_str(sub.get("timestamp") or {}, "valueInstant", "valueDateTime", "valueString"),
                    focus=focus,
                    patient=_patient_from([*contexts, focus]),
                )
            )
        elif isinstance(name, str) and name not in fields:
            fields[name] = part
    kind = _part_str(fields.get("type") or {}, "valueCode", "valueString")
    return Notification(
        type=_checked_type(kind),
        status=_part_str(fields.get("status") or {}, "valueCode", "valueString"),
        subscription=_subscription_id((fields.get("subscription") or {}).get("valueReference")),
        topic=_part_str(fields.get("topic") or {}, "valueCanonical", "valueUri", "valueString"),
        events_since_start=_part_count(fields.get("events-since-subscription-start") or {}),
        events=tuple(events),
    )


def _from_status_resource(status: dict) -> Notification:
    """R4B/R5 ``SubscriptionStatus``."""
    raw_events = status.get("notificationEvent") or []
    if not isinstance(raw_events, list) or not all(isinstance(e, dict) for e in raw_events):
        raise NotificationError("SubscriptionStatus.notificationEvent is not a list")
    if len(raw_events) > MAX_EVENTS:
        raise NotificationError("too many events in one notification")
    events = []
    for raw in raw_events:
        focus = _ref_of(raw.get("focus"))
        context = raw.get("additionalContext") or []
        contexts = [_ref_of(c) for c in (context if isinstance(context, list) else [context])]
        events.append(
            Event(
                number=_count(raw.get("eventNumber")),
                timestamp=raw.get("timestamp") if isinstance(raw.get("timestamp"), str) else None,
                focus=focus,
                patient=_patient_from([*contexts, focus]),
            )
        )
    since = status.get("eventsSinceSubscriptionStart")
    topic = status.get("topic")
    return Notification(
        type=_checked_type(status.get("type") if isinstance(status.get("type"), str) else None),
        status=status.get("status") if isinstance(status.get("status"), str) else None,
        subscription=_subscription_id(status.get("subscription")),
        topic=topic if isinstance(topic, str) else None,
        events_since_start=_count(since),
        events=tuple(events),
    )


def _checked_type(kind: str | None) -> str:
    if kind not in TYPES:
        raise NotificationError("the notification type is missing or unknown")
    return kind


def _subscription_id(value: object) -> str | None:
    ref = _ref_of(value)
    return ref.split("/", 1)[1] if ref and ref.startswith("Subscription/") else None


def parse(bundle: object) -> Notification:
    """The :class:`Notification` in ``bundle`` (a parsed JSON body); :class:`NotificationError` when
    it is not one. Events without a Patient in ``additional-context`` take it from the matching
    full-resource entry, when the payload carried resources."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise NotificationError("the body is not a Bundle")
    if bundle.get("type") not in BUNDLE_TYPES:
        raise NotificationError("the Bundle is not of type history")
    entries = bundle.get("entry") or []
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise NotificationError("Bundle.entry is not a list of entries")
    status_resource = None
    for entry in entries if bundle.get("type") == "searchset" else entries[:1]:
        res = entry.get("resource")
        if isinstance(res, dict) and res.get("resourceType") in ("Parameters", "SubscriptionStatus"):
            status_resource = res
            break
    if status_resource is None:
        raise NotificationError("the first entry is not a SubscriptionStatus")
    note = (
        _from_parameters(status_resource)
        if status_resource["resourceType"] == "Parameters"
        else _from_status_resource(status_resource)
    )
    if any(e.patient is None for e in note.events):
        note = _patients_from_entries(note, entries[1:])
    return note


def _patients_from_entries(note: Notification, entries: list[dict]) -> Notification:
    """Fill an event's patient from a full-resource entry's ``subject``/``patient``/``for``."""
    owner: dict[str, str] = {}
    for entry in entries:
        res = entry.get("resource")
        if not isinstance(res, dict):
            continue
        ref = relative_ref(f"{res.get('resourceType')}/{res.get('id')}")
        for key in ("subject", "patient", "for", "beneficiary"):
            patient = _ref_of(res.get(key))
            if ref and patient and patient.startswith("Patient/"):
                owner[ref] = patient
                break
    events = tuple(
        e if e.patient is not None or e.focus not in owner else Event(e.number, e.timestamp, e.focus, owner[e.focus])
        for e in note.events
    )
    return Notification(note.type, note.status, note.subscription, note.topic, note.events_since_start, events)


__all__ = [
    "EVENT",
    "HANDSHAKE",
    "HEARTBEAT",
    "Event",
    "Notification",
    "NotificationError",
    "parse",
    "relative_ref",
]
