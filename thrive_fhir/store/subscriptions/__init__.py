"""Topic-based Subscriptions (FHIR R4 Subscriptions Backport IG) for the embedded store.

One topic, "a young person's shared plan changed" (canonical.TOPIC_SHARED_PLAN_CHANGED); rest-hook
channel; id-only or empty payloads; handshake, heartbeat, ``$status`` and ``$events``. See
docs/subscriptions.md. The parts:

- :mod:`.spec` checks what a client asks for (topic, channel, payload, endpoint allowlist);
- :mod:`.events` records an event with each committed write and plans it per subscription under
  the consent rule;
- :mod:`.dispatcher` delivers (wake on commit, leases, retries with back-off, ``error`` status);
- :mod:`.notification` builds the Bundles; :mod:`.api` is the REST side.
"""

from __future__ import annotations

from .api import SubscriptionApi
from .dispatcher import Dispatcher, RetryPolicy


class Subscriptions:
    """The feature as create_app wires it: the REST handler and, when delivering, the dispatcher."""

    def __init__(self, store, allowlist: tuple[str, ...], *, policy: RetryPolicy | None = None, poll: float = 0.5):
        self.dispatcher = Dispatcher(store, policy, poll=poll) if allowlist else None
        self.api = SubscriptionApi(store, allowlist, self.wake)

    def wake(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.wake()

    def start(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.start()

    def stop(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.stop()


__all__ = ["Dispatcher", "RetryPolicy", "SubscriptionApi", "Subscriptions"]
