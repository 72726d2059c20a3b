"""What a client may ask for in a Subscription, checked before anything is stored.

The store supports one topic (``canonical.TOPIC_SHARED_PLAN_CHANGED``), the ``rest-hook`` channel and
the ``id-only`` or ``empty`` payloads of the Subscriptions Backport IG (R4 representation). A
notification never carries health data, so ``full-resource`` is refused, not downgraded.

The endpoint is where the store will send requests from inside the trust's network, so it is checked
against the operator's allowlist (``--subscription-endpoint`` prefixes) by parsed parts, not by string
prefix: ``https://app.example.org`` must not admit ``https://app.example.org.evil.test/``. Loopback or
plain-http endpoints are allowed only when a listed prefix names them. Redirects are never followed
when delivering (dispatcher), so an allowed host cannot bounce a delivery elsewhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from ...canonical import BACKPORT_SD, TOPIC_SHARED_PLAN_CHANGED
from ..errors import FhirError, issue, operation_outcome
from ..fhirdates import date_range, utcnow
from ..validation_hook import ID_RE

EXT_FILTER = f"{BACKPORT_SD}/backport-filter-criteria"
EXT_PAYLOAD = f"{BACKPORT_SD}/backport-payload-content"
EXT_HEARTBEAT = f"{BACKPORT_SD}/backport-heartbeat-period"
EXT_TIMEOUT = f"{BACKPORT_SD}/backport-timeout"
PAYLOAD_TYPES = ("application/fhir+json", "application/json")
CONTENTS = ("id-only", "empty")
#: Shown instead of a header's value when the Subscription is read back (the value is the
#: receiver's secret; it is kept only in the ``subscriptions`` table).
HIDDEN = "(hidden)"
MAX_HEADERS = 10
MAX_ENDPOINT_LEN = 2048  # the column's size (schema.subscriptions)
MAX_HEADER_LEN = 2048
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")
#: Headers the HTTP client itself must set; a subscriber must not override them.
_RESERVED_HEADERS = frozenset({"host", "content-length", "content-type", "transfer-encoding", "connection"})
#: ``Patient?_id=<id>`` or ``<Type>?patient=<id>`` / ``Patient/<id>`` (also ``subject``).
_FILTER = re.compile(r"^([A-Z][A-Za-z]{0,63})\?(_id|patient|subject)=(?:Patient/)?([A-Za-z0-9.-]{1,64})$")


@dataclass(frozen=True)
class Filter:
    """An event matches when its focus type (if given) and young person (if given) are these."""

    rtype: str | None
    patient: str | None

    def matches(self, rtype: str, patient_key: str) -> bool:
        return (self.rtype in (None, "Patient") or self.rtype == rtype) and self.patient in (None, patient_key)


@dataclass(frozen=True)
class Spec:
    """A validated Subscription request."""

    status: str  # requested | off
    endpoint: str
    headers: tuple[str, ...]
    content: str
    heartbeat: int | None
    filters: tuple[Filter, ...]
    ends: datetime | None = None


def unprocessable(message: str, expression: str) -> FhirError:
    return FhirError(
        422,
        message,
        "processing",
        outcome=operation_outcome([issue("error", "processing", message, [expression])]),
    )


def check(body, allowlist: tuple[str, ...], *, rid: str | None = None, old_headers: tuple[str, ...] = ()) -> Spec:
    """The Subscription in ``body`` as a :class:`Spec`, or a 400 (shape) / 422 (not supported) error."""
    if not isinstance(body, dict) or body.get("resourceType") != "Subscription":
        raise FhirError(400, "The body must be a Subscription resource", "structure")
    if rid is not None and body.get("id") not in (None, rid):
        raise FhirError(400, "The resource id in the body does not match the id in the URL", "invalid")
    status = body.get("status", "requested")
    if status not in ("requested", "off"):
        raise unprocessable("Subscription.status must be 'requested' (or 'off' to pause it)", "Subscription.status")
    if body.get("criteria") != TOPIC_SHARED_PLAN_CHANGED:
        raise unprocessable(
            f"Subscription.criteria must be the topic {TOPIC_SHARED_PLAN_CHANGED}", "Subscription.criteria"
        )
    filters = _filters(body.get("_criteria"))
    channel = body.get("channel")
    if not isinstance(channel, dict):
        raise FhirError(400, "Subscription.channel is required", "required")
    if channel.get("type") != "rest-hook":
        raise unprocessable("Only the rest-hook channel is supported", "Subscription.channel.type")
    endpoint = channel.get("endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        raise FhirError(400, "Subscription.channel.endpoint is required", "required")
    if len(endpoint) > MAX_ENDPOINT_LEN:
        raise unprocessable(
            f"channel.endpoint is longer than {MAX_ENDPOINT_LEN} characters", "Subscription.channel.endpoint"
        )
    check_endpoint(endpoint, allowlist)
    content = _content(channel)
    headers = _headers(channel.get("header"), old_headers)
    return Spec(status, endpoint, headers, content, _heartbeat(channel), filters, _end(body.get("end")))


def check_endpoint(endpoint: str, allowlist: tuple[str, ...]) -> None:
    """Refuse an endpoint no allowlisted prefix covers (scheme, host and port equal; path below)."""
    parts = _url_parts(endpoint)
    if parts is None:
        raise unprocessable("channel.endpoint must be an absolute http(s) URL", "Subscription.channel.endpoint")
    if not allowlist:
        raise unprocessable(
            "This store accepts no subscription endpoints (the operator lists them with --subscription-endpoint)",
            "Subscription.channel.endpoint",
        )
    if not any(covers(prefix, parts) for prefix in allowlist):
        raise unprocessable(
            "channel.endpoint is not on this store's list of allowed endpoints", "Subscription.channel.endpoint"
        )


def covers(prefix: str, parts: tuple[str, str, int, str]) -> bool:
    allowed = _url_parts(prefix)
    if allowed is None:
        return False
    scheme, host, port, path = allowed
    if (scheme, host, port) != parts[:3]:
        return False
    if path.endswith("/") or not path:
        return parts[3].startswith(path or "/")
    return parts[3] == path or parts[3].startswith(path + "/")


def _url_parts(url: str) -> tuple[str, str, int, str] | None:
    """(scheme, lower-case host, port, path) of an absolute http(s) URL without credentials or fragment."""
    if any(ch.isspace() or ord(ch) < 0x21 for ch in url) or "\\" in url:
        return None
    try:
        split = urlsplit(url)
        port = split.port
    except ValueError:
        return None
    if split.scheme not in ("http", "https") or not split.hostname or split.username or split.password:
        return None
    if split.fragment:
        return None
    return split.scheme, split.hostname.lower(), port or (443 if split.scheme == "https" else 80), split.path or "/"


def valid_prefix(prefix: str) -> bool:
    """For the CLI: is ``prefix`` usable as an allowlist entry?"""
    return _url_parts(prefix) is not None


def _filters(raw) -> tuple[Filter, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict) or not isinstance(raw.get("extension", []), list):
        raise FhirError(400, "Subscription._criteria must be an element with extensions", "structure")
    out = []
    for ext in raw.get("extension", []):
        if not isinstance(ext, dict) or ext.get("url") != EXT_FILTER:
            continue
        value = ext.get("valueString")
        match = _FILTER.match(value) if isinstance(value, str) else None
        if match is None:
            raise unprocessable(
                "Filter criteria must read 'Patient?_id=<id>' or '<Type>?patient=Patient/<id>'",
                "Subscription._criteria.extension",
            )
        rtype, param, patient = match.groups()
        if (param == "_id") != (rtype == "Patient"):
            raise unprocessable(
                "Filter criteria must read 'Patient?_id=<id>' or '<Type>?patient=Patient/<id>'",
                "Subscription._criteria.extension",
            )
        out.append(Filter(rtype, patient))
    return tuple(out)


def _content(channel: dict) -> str:
    payload = channel.get("payload")
    content = None
    ext = channel.get("_payload")
    if isinstance(ext, dict):
        for e in ext.get("extension") or []:
            if isinstance(e, dict) and e.get("url") == EXT_PAYLOAD:
                content = e.get("valueCode")
    if payload is None:
        if content not in (None, "empty"):
            raise unprocessable("channel.payload is required with a payload content", "Subscription.channel.payload")
        return "empty"  # R4: no payload type means notifications carry no resources
    if payload not in PAYLOAD_TYPES:
        raise unprocessable("channel.payload must be application/fhir+json", "Subscription.channel.payload")
    if content == "full-resource":
        raise unprocessable(
            "full-resource payloads are not offered: notifications never carry health data (use id-only)",
            "Subscription.channel.payload",
        )
    if content is None:
        return "id-only"
    if content not in CONTENTS:
        raise unprocessable("Payload content must be id-only or empty", "Subscription.channel.payload")
    return content


def _end(raw) -> datetime | None:
    """Subscription.end as naive UTC; a date or an instant, not in the past."""
    if raw is None:
        return None
    bounds = date_range(raw) if isinstance(raw, str) else None
    if bounds is None:
        raise FhirError(400, "Subscription.end must be an instant such as 2025-05-01T00:00:00Z", "invalid")
    if bounds[1] <= utcnow():
        raise unprocessable("Subscription.end is in the past", "Subscription.end")
    return bounds[1]


def _heartbeat(channel: dict) -> int | None:
    for e in channel.get("extension") or []:
        if isinstance(e, dict) and e.get("url") == EXT_HEARTBEAT:
            value = e.get("valueUnsignedInt")
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 86400:
                raise unprocessable("The heartbeat period must be 1 to 86400 seconds", "Subscription.channel.extension")
            return value
    return None


def _headers(raw, old: tuple[str, ...]) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > MAX_HEADERS:
        raise FhirError(400, f"channel.header must be a list of at most {MAX_HEADERS} strings", "structure")
    previous = dict(_split(h) for h in old)
    out = []
    for value in raw:
        if not isinstance(value, str) or len(value) > MAX_HEADER_LEN or "\r" in value or "\n" in value:
            raise FhirError(400, "Each channel.header must be one line of 'Name: value'", "invalid")
        name, val = _split(value)
        if not _HEADER_NAME.match(name) or not val:
            raise FhirError(400, "Each channel.header must be one line of 'Name: value'", "invalid")
        if name.lower() in _RESERVED_HEADERS:
            raise unprocessable(f"channel.header may not set {name}", "Subscription.channel.header")
        if val == HIDDEN:  # read back and sent again unchanged: keep the stored secret
            if name not in previous:
                raise FhirError(400, f"channel.header {name} has no stored value to keep", "invalid")
            val = previous[name]
        out.append(f"{name}: {val}")
    return tuple(out)


def _split(header: str) -> tuple[str, str]:
    name, _, value = header.partition(":")
    return name.strip(), value.strip()


def masked(resource: dict) -> dict:
    """``resource`` with every channel header's value replaced by :data:`HIDDEN`."""
    channel = resource.get("channel")
    if not isinstance(channel, dict) or not channel.get("header"):
        return resource
    shown = [f"{_split(h)[0]}: {HIDDEN}" for h in channel["header"] if isinstance(h, str)]
    return {**resource, "channel": {**channel, "header": shown}}


def check_id(rid: str) -> None:
    if not ID_RE.match(rid):
        raise FhirError(400, "Resource ids are 1-64 characters of A-Z, a-z, 0-9, '-' and '.'", "invalid")
