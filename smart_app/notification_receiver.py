"""The receiver of the shared store's change notifications: ``POST /notifications/shared-plan``.

Why: with a subscription to the store's "shared plan changed" topic (:mod:`smart_app.subscribe`),
the clinician Summary's cached read of a young person's shared record is dropped as soon as another
team or an agency changes it, instead of living out its 30 s (the freshness rule in
:mod:`smart_app.summary.shared_history`).

Server to server, so outside the launch session and its CSRF check: the credential is the channel
secret this app gave the store in ``Subscription.channel.header`` (``Authorization: Bearer
<secret>``), compared in constant time. Without notifications configured the endpoint is a 404.

What it does with a notification (handshake, heartbeat or event-notification; the Backport IG's R4
shape or another server's R4B/R5 ``SubscriptionStatus``, read by
:mod:`thrive_fhir.client.notifications`): records that the subscription is alive and, per event,
"young person X changed now (event N)" in the app's database (:mod:`smart_app.shared_changes`). It
answers at once; it never reads the store while the store waits. Repeating an event number changes
nothing (the store retries deliveries it thinks failed).

Missed events: when the first new event number is more than one past the highest received (or a
heartbeat's ``events-since-subscription-start`` is ahead of it), events were lost, and which young
people they concerned is unknown. The receiver then marks every cached read stale (one re-read per
open launch at its next Summary) rather than fetching the gap with ``$events``: the cache is the
only consumer of the per-young-person record, and a re-read of the launch's own young person is what
``$events`` would have led to anyway, with no extra round trip while the store waits.

Answers: 200 with an OperationOutcome (information) when recorded; 401 without the right secret;
400 for a body that is not a notification of our topic; 413 over :data:`MAX_BODY`; 415 for a body
that is not JSON; 404 when notifications are not configured; 405 for other methods; 503 when the
app's database cannot record it (the store delivers it again later). Never a 500 for
what the caller sent, and the body is never logged.
"""

from __future__ import annotations

import hmac
import json
import logging

from flask import Blueprint, Response, request
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException

from thrive_fhir import canonical
from thrive_fhir.client import notifications

from .security import csrf_exempt
from .state import state

log = logging.getLogger("smart_app.notifications")

bp = Blueprint("notifications", __name__)

PATH = "/notifications/shared-plan"
#: A notification of an id-only subscription is small; a batch of events stays far below this.
MAX_BODY = 256 * 1024
_JSON_TYPES = ("application/fhir+json", "application/json")


def outcome(status: int, severity: str, code: str, text: str) -> Response:
    body = {"resourceType": "OperationOutcome", "issue": [{"severity": severity, "code": code, "diagnostics": text}]}
    resp = Response(json.dumps(body), status=status, mimetype="application/fhir+json")
    if status == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="thrive-notifications"'
    return resp


def _authorised(secret: str) -> bool:
    sent = request.headers.get("Authorization", "")
    return hmac.compare_digest(sent.encode("utf-8", "replace"), f"Bearer {secret}".encode())


@bp.route(PATH, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
@csrf_exempt
def receive():
    cfg = state().config.shared_store
    if cfg is None or not cfg.notifications or cfg.notification_secret is None:
        return outcome(404, "error", "not-found", "Notifications are not configured here.")
    if request.method != "POST":
        return outcome(405, "error", "not-supported", "Notifications are POSTed.")
    if not _authorised(cfg.notification_secret):
        log.warning("notification refused: wrong or missing channel secret")
        return outcome(401, "error", "login", "The channel secret is missing or wrong.")
    if request.mimetype not in _JSON_TYPES:
        return outcome(415, "error", "not-supported", "Send application/fhir+json.")
    if request.content_length is not None and request.content_length > MAX_BODY:
        return outcome(413, "error", "too-costly", f"A notification is at most {MAX_BODY} bytes.")
    try:
        request.max_content_length = MAX_BODY
        raw = request.get_data(cache=False)
    except HTTPException:
        return outcome(413, "error", "too-costly", f"A notification is at most {MAX_BODY} bytes.")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        return outcome(400, "error", "structure", "The body is not JSON.")
    try:
        note = notifications.parse(body)
    except (notifications.NotificationError, RecursionError) as exc:
        return outcome(400, "error", "invalid", f"Not a subscription notification: {exc}")
    if note.topic not in (None, canonical.TOPIC_SHARED_PLAN_CHANGED):
        return outcome(400, "error", "invalid", "Not the topic this app subscribed to.")
    changes = state().changes
    try:
        seen = changes.record(note)
        if seen.missed is not None:
            # Which young people the missed events concerned is unknown: every cached read is stale.
            log.warning("notifications: events %s to %s were not received; every cached read is stale", *seen.missed)
            changes.invalidate_everyone()
    except SQLAlchemyError as exc:  # the app's database is down: the store retries the delivery
        log.error("notification not recorded: the app database failed (%s)", type(exc).__name__)
        return outcome(503, "error", "transient", "The notification could not be recorded now; send it again.")
    log.info(
        "notification %s: %d event(s)%s", note.type, len(note.events), " (already received)" if seen.duplicate else ""
    )
    return outcome(200, "information", "informational", "Recorded.")


__all__ = ["MAX_BODY", "PATH", "bp"]
