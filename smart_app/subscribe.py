"""This deployment's Subscription to the shared store's "shared plan changed" topic.

Why: so the clinician Summary hears of another team's or an agency's change as it happens
(:mod:`smart_app.notification_receiver`) instead of re-reading the store every 30 s.

What is created (the Subscriptions Backport IG, R4 representation, as the store expects it):
``criteria`` = the topic URL with no filter (every young person the store lets this deployment
see: the store applies its consent rule to each event), a ``rest-hook`` channel to
``notification_endpoint``, ``id-only`` payloads (a notification never carries health data), the
channel secret as ``Authorization: Bearer <secret>`` in ``channel.header``, and the heartbeat period.

Idempotent (``thrive app subscribe``, and ``thrive app serve`` on start and then while no
notification arrives): the deployment's existing Subscription is found by its endpoint and topic
(``Subscription?url=<endpoint>``, every candidate checked here as well) before anything is created.
One found in ``error`` or ``off`` (the store gave up delivering), or whose channel no longer
matches the config (a new secret, another heartbeat), is updated back to ``requested``; an
``active`` or ``requested`` one is left alone. Credentials: the deployment's Backend Services client
of ``[shared_store]``, asking only for ``subscription_scope`` (``system/Subscription.cruds``) for
this; the Summary's reads keep their read-only token.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from thrive_fhir import canonical
from thrive_fhir.client.backend_services import BackendServicesAuth
from thrive_fhir.client.fhir_http import FhirClient, is_fhir_id, next_link

from .config import SharedStoreConfig

log = logging.getLogger("smart_app.subscribe")

FILTER_EXT = f"{canonical.BACKPORT_SD}/backport-filter-criteria"
PAYLOAD_EXT = f"{canonical.BACKPORT_SD}/backport-payload-content"
HEARTBEAT_EXT = f"{canonical.BACKPORT_SD}/backport-heartbeat-period"
#: Statuses after which the store no longer delivers: ask again.
DEAD = frozenset({"error", "off"})


class SubscribeError(Exception):
    """The Subscription could not be found or made; the message is one line for an operator."""


@dataclass(frozen=True)
class Subscribed:
    subscription_id: str
    status: str
    action: str  # "existing" | "created" | "re-requested"


def client_for(cfg: SharedStoreConfig) -> FhirClient:
    """A FHIR client on the shared store with a Backend Services token for ``subscription_scope``
    together with the read ``scope``: a store sends a subscriber only changes of young people it
    could read (ours checks the Subscription creator's scopes and consent when it plans each event),
    so a token for Subscriptions alone would make a Subscription that is never told anything."""
    auth = BackendServicesAuth(
        token_url=cfg.token_url,
        client_id=cfg.client_id,
        private_key_pem=Path(cfg.private_key_file).read_bytes(),
        kid=cfg.kid,
        alg=cfg.alg,
        scope=" ".join(dict.fromkeys(f"{cfg.subscription_scope} {cfg.scope}".split())),
        timeout=(min(cfg.timeout_seconds, 5.0), cfg.timeout_seconds),
    )
    return FhirClient(
        cfg.fhir_base,
        auth,
        connect_timeout=min(cfg.timeout_seconds, 3.0),
        read_timeout=cfg.timeout_seconds,
        user_agent="thrive-app-subscribe",
    )


def subscription_resource(cfg: SharedStoreConfig) -> dict:
    """The Subscription this deployment wants (without an id)."""
    return {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "Keep the THRIVE care plan app's view of shared plans fresh",
        "criteria": canonical.TOPIC_SHARED_PLAN_CHANGED,
        "channel": {
            "extension": [{"url": HEARTBEAT_EXT, "valueUnsignedInt": cfg.heartbeat_seconds}],
            "type": "rest-hook",
            "endpoint": cfg.notification_endpoint,
            "payload": "application/fhir+json",
            "_payload": {"extension": [{"url": PAYLOAD_EXT, "valueCode": "id-only"}]},
            "header": [f"Authorization: Bearer {cfg.notification_secret}"],
        },
    }


def _ours(found: dict, cfg: SharedStoreConfig) -> bool:
    channel = found.get("channel") or {}
    return (
        found.get("resourceType") == "Subscription"
        and is_fhir_id(found.get("id"))
        and found.get("criteria") == canonical.TOPIC_SHARED_PLAN_CHANGED
        and isinstance(channel, dict)
        and channel.get("endpoint") == cfg.notification_endpoint
    )


def _matches(found: dict, wanted: dict) -> bool:
    """The found Subscription's channel is what the config asks for. A store may leave the header
    out of what it returns, or mask its value (ours shows ``Authorization: (hidden)``); then only
    what it shows is compared: the header names. A secret changed in our config is still noticed:
    the store's next handshake or notification carries the old one, our receiver refuses it, the
    store puts the Subscription in ``error`` and the next turn asks for it again with the new one."""
    have, want = found.get("channel") or {}, wanted["channel"]
    if "header" in have and [_header_shown(h) for h in have.get("header") or []] != [
        _header_shown(h, masked=_masked(have)) for h in want["header"]
    ]:
        return False
    beat = next((e for e in have.get("extension") or [] if e.get("url") == HEARTBEAT_EXT), None)
    return beat is None or beat.get("valueUnsignedInt") == want["extension"][0]["valueUnsignedInt"]


def _masked(channel: dict) -> bool:
    return any(isinstance(h, str) and h.endswith("(hidden)") for h in channel.get("header") or [])


def _header_shown(header: object, *, masked: bool | None = None) -> str:
    """A header as compared: whole, or only its name when the store masks values."""
    text = header if isinstance(header, str) else ""
    hide = text.endswith("(hidden)") if masked is None else masked
    return text.partition(":")[0].strip().lower() if hide else text


def find(client: FhirClient, cfg: SharedStoreConfig) -> list[dict]:
    """This deployment's Subscriptions on the store (by endpoint and topic), newest first."""
    path = f"Subscription?url={quote(cfg.notification_endpoint or '', safe='')}&_count=50"
    reply = client.request("GET", path)
    if not reply.ok and reply.status == 400:  # a server without the url search parameter: list them
        path = "Subscription?_count=200"
        reply = client.request("GET", path)
    out: list[dict] = []
    for _ in range(20):
        if not reply.ok or not isinstance(reply.body, dict):
            raise SubscribeError(f"the store's Subscriptions could not be searched ({reply.error or reply.status})")
        for entry in reply.body.get("entry") or []:
            res = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(res, dict) and _ours(res, cfg):
                out.append(res)
        nxt = next_link(reply.body, cfg.fhir_base)
        if not nxt:
            break
        reply = client.request("GET", nxt)
    return sorted(out, key=lambda r: str((r.get("meta") or {}).get("lastUpdated") or ""), reverse=True)


def ensure(cfg: SharedStoreConfig, client: FhirClient | None = None) -> Subscribed:
    """Find this deployment's Subscription, or create it, or ask again for one the store gave up."""
    if not cfg.notifications:
        raise SubscribeError("[shared_store] has no notification_endpoint and notification_secret_file")
    client = client or client_for(cfg)
    wanted = subscription_resource(cfg)
    found = find(client, cfg)
    usable = [f for f in found if f.get("status") not in DEAD and _matches(f, wanted)]
    if usable:
        sub = usable[0]
        return Subscribed(sub["id"], str(sub.get("status") or ""), "existing")
    if found:
        sub = found[0]
        reply = client.request("PUT", f"Subscription/{sub['id']}", {**wanted, "id": sub["id"]})
        action = "re-requested"
    else:
        reply = client.request("POST", "Subscription", wanted)
        action = "created"
    if not reply.ok or not isinstance(reply.body, dict) or not is_fhir_id(reply.body.get("id")):
        raise SubscribeError(f"the store did not accept the Subscription ({reply.error or reply.status})")
    return Subscribed(reply.body["id"], str(reply.body.get("status") or ""), action)


def keep_subscribed(
    cfg: SharedStoreConfig, changes, stop: threading.Event, *, every: float = 600.0, first: float = 3.0
) -> None:
    """``thrive app serve``'s background loop: subscribe ``first`` seconds after start (the store's
    handshake is POSTed to this app while the Subscription is created, so the server must be
    listening by then), then again whenever no notification (not even a heartbeat) arrived for two
    heartbeat periods. Never raises."""
    wait = first
    while not stop.wait(wait):
        wait = every
        if changes.subscription_active(cfg.channel_alive_seconds):
            continue
        try:
            done = ensure(cfg)
            log.info("subscription %s: %s (status %s)", done.subscription_id, done.action, done.status or "unknown")
        except Exception as exc:  # store down, key unreadable: try again later
            log.warning("could not subscribe to the shared store's changes: %s", type(exc).__name__)


__all__ = ["SubscribeError", "Subscribed", "ensure", "find", "keep_subscribed", "subscription_resource"]
