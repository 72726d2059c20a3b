"""The delivery thread: plans recorded events, then sends handshakes, notifications and heartbeats.

Latency: a committed write wakes the thread at once (``Store.after_commit`` -> :meth:`wake`), so a
save reaches the endpoint in one planning transaction, one claim and one POST. Writes made by
another store process on the same PostgreSQL database are picked up by polling (every ``poll``
seconds, 0.5 by default).

Delivery is at-least-once. A subscription is claimed by a lease (``lease_until``) taken in a short
transaction (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the write lock on SQLite), so only one
dispatcher, in any process, delivers to it at a time, and its events go out in number order. The
lease is dropped once the answer is recorded; if a process dies between sending and recording, the
lease expires and the same events are sent again, with the same event numbers, which is how a
receiver recognises a repeat. Events that queue up while a delivery is in flight (or failing) go out
together in the next notification, at most :data:`MAX_EVENTS` per Bundle.

Failures: anything but a 2xx within the timeout (redirects are not followed) counts. The next
attempt waits ``base * 2**(failures-1)`` seconds, capped, times a random factor in [0.5, 1) so many
subscriptions failing together do not retry in step. After ``max_failures`` failures in a row the
subscription's status becomes ``error`` (in its row and on the Subscription resource) and nothing
more is sent: as the IG describes, the client sets it back to ``requested`` (a PUT), the store
handshakes again and delivery resumes from the first unacknowledged event. Events keep being
numbered meanwhile, so ``$events`` can catch the receiver up.

Logs name the subscription id and the failure (HTTP status or exception class), never the
endpoint's headers (they hold the receiver's secret) or any body.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

import requests
from sqlalchemy.engine import Connection

from .. import rawsql
from ..errors import describe
from ..fhirdates import utcnow
from . import events
from .notification import Event, notification_bundle
from .resource import set_resource_status

log = logging.getLogger("thrive_fhir.store.subscriptions")

#: Events in one notification Bundle; more wait for the next one (sent straight after).
MAX_EVENTS = 100
#: How long delivered events stay available to ``$events`` (undelivered ones are kept).
RETENTION = timedelta(days=7)
#: Seconds between prunes of old delivered events, per process.
PRUNE_EVERY = 60.0
#: Subscriptions with work that may be due and no live lease (PostgreSQL: rows another process is
#: claiming right now are skipped, not waited for).
_CLAIM = (
    "SELECT id, status, heartbeat, last_sent, events_total, delivered_through FROM subscriptions "
    "WHERE status IN ('requested', 'active') AND (lease_until IS NULL OR lease_until < ?) "
    "AND (next_attempt IS NULL OR next_attempt <= ?)"
)
_CLAIM_PG = _CLAIM + " FOR UPDATE SKIP LOCKED"
_RELEASE = "UPDATE subscriptions SET lease_until = NULL WHERE id = ?"
_ENDED = "SELECT id, base FROM subscriptions WHERE ends IS NOT NULL AND ends <= ? AND status <> 'off'"


def _due(last_sent, heartbeat: int, now) -> bool:
    return last_sent is None or last_sent + timedelta(seconds=heartbeat) <= now


@dataclass(frozen=True)
class RetryPolicy:
    """Back-off and give-up rule for failed deliveries (seconds)."""

    base: float = 1.0
    cap: float = 60.0
    max_failures: int = 6
    timeout: float = 5.0

    def delay(self, failures: int) -> float:
        """Seconds before the next attempt after ``failures`` consecutive failures (>= 1)."""
        return min(self.cap, self.base * 2 ** (failures - 1)) * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not a secret


class Dispatcher:
    """One per store process; ``start()`` once, ``stop()`` to end its thread and workers."""

    def __init__(
        self,
        store,
        policy: RetryPolicy | None = None,
        *,
        poll: float = 0.5,
        workers: int = 4,
        retention: timedelta = RETENTION,
    ):
        self.store = store
        self.policy = policy or RetryPolicy()
        self.poll = poll
        self.retention = retention
        self._pruned = 0.0  # time.monotonic() of the last prune
        self.sql = rawsql.Runner(store.engine)
        self.postgres = store.engine.dialect.name == "postgresql"
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="thrive-subscription")
        self._local = threading.local()
        self._sessions: list[requests.Session] = []  # one per worker thread, closed by stop()
        # Subscriptions handed to a worker and not finished: never claimed twice by this process,
        # even when a queued job outlives its lease.
        self._inflight: set[str] = set()
        self._inflight_lock = threading.Lock()

    # --- life cycle ------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="thrive-subscription-dispatcher", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=True)
        for session in self._sessions:
            session.close()

    def wake(self) -> None:
        """Called after every committed write: plan and deliver now rather than at the next poll."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.poll)
            self._wake.clear()
            if self._stopping.is_set():
                break
            try:
                self.tick()
            except Exception as exc:  # the thread must outlive a database hiccup
                log.error("subscription dispatcher: %s", describe(exc))

    # --- one round -------------------------------------------------------------------------------

    def tick(self) -> None:
        """Plan every recorded event, then hand each subscription with work due to a worker."""
        while self._tx(lambda conn: events.plan(conn, self.store.consent, postgres=self.postgres)) >= events.PLAN_BATCH:
            pass
        for sub_id, kind in self._tx(self._claim):
            with self._inflight_lock:
                self._inflight.add(sub_id)
            self._pool.submit(self._deliver, sub_id, kind)
        if time.monotonic() - self._pruned >= PRUNE_EVERY:
            self._pruned = time.monotonic()
            self._tx(self._prune)

    def _prune(self, conn: Connection) -> None:
        """Forget delivered events older than the retention period (``$events`` no longer has them)."""
        sql, dbapi = rawsql.for_connection(conn)
        sql.run(
            dbapi,
            "DELETE FROM subscription_deliveries WHERE created < ? AND number <= "
            "(SELECT delivered_through FROM subscriptions WHERE subscriptions.id = subscription_deliveries.sub_id)",
            (utcnow() - self.retention,),
        )

    def _tx(self, fn):
        with self.store._write_lock, self.store.writer.begin() as conn:
            return fn(conn)

    def _claim(self, conn: Connection) -> list[tuple[str, str]]:
        sql, dbapi = rawsql.for_connection(conn)
        now = utcnow()
        for sid, base in sql.fetch(dbapi, _ENDED, (now,)):  # Subscription.end has passed: switch it off
            sql.run(dbapi, "UPDATE subscriptions SET status = 'off', lease_until = NULL WHERE id = ?", (sid,))
            set_resource_status(conn, sid, "off", base, None)
        rows = sql.fetch(dbapi, _CLAIM_PG if self.postgres else _CLAIM, (now, now))
        claimed = []
        with self._inflight_lock:
            busy = set(self._inflight)
        for sid, status, heartbeat, last_sent, total, through in rows:
            if sid in busy:
                continue
            if status == "requested":
                claimed.append((sid, "handshake"))
            elif int(total) > int(through):
                claimed.append((sid, "event-notification"))
            elif heartbeat and (last_sent is None or _due(sql.dt(last_sent), heartbeat, now)):
                claimed.append((sid, "heartbeat"))
        lease = now + timedelta(seconds=2 * self.policy.timeout + 5)
        for sid, _kind in claimed:
            sql.run(dbapi, "UPDATE subscriptions SET lease_until = ? WHERE id = ?", (lease, sid))
        return claimed

    # --- one delivery ----------------------------------------------------------------------------

    def _deliver(self, sub_id: str, kind: str) -> None:
        try:
            self._deliver_one(sub_id, kind)
        except Exception as exc:
            log.error("subscription %s: delivery round failed: %s", sub_id, describe(exc))
        finally:
            with self._inflight_lock:
                self._inflight.discard(sub_id)

    def _deliver_one(self, sub_id: str, kind: str) -> None:
        with self.sql.reading() as dbapi:
            rows = self.sql.fetch(
                dbapi,
                "SELECT endpoint, headers, content, status, events_total, delivered_through, failures, base "
                "FROM subscriptions WHERE id = ?",
                (sub_id,),
            )
            if not rows:
                return
            endpoint, headers, content, status, total, through, failures, base = rows[0]
            pending: list[Event] = []
            if kind == "event-notification":
                pending = [
                    Event(n, self.sql.dt(created), *rest)
                    for n, created, *rest in self.sql.fetch(
                        dbapi,
                        "SELECT number, created, res_type, res_id, version_id, method, patient_key "
                        "FROM subscription_deliveries WHERE sub_id = ? AND number > ? ORDER BY number LIMIT ?",
                        (sub_id, through, MAX_EVENTS),
                    )
                ]
        if kind == "event-notification" and not pending:  # nothing left to send: just release the lease
            self._tx(lambda conn: self.sql.run(conn.connection, _RELEASE, (sub_id,)))
            return
        bundle = notification_bundle(base, sub_id, status, kind, int(total), pending, content)
        failure = self._post(endpoint, json.loads(headers), bundle)
        last = pending[-1].number if pending else int(through)
        self._tx(lambda conn: self._record(conn, sub_id, status, kind, last, failure, int(failures), base))
        if failure is None and int(total) > last:
            self.wake()  # events queued up meanwhile, or waited for the handshake: send them now

    def _post(self, endpoint: str, headers: list[str], bundle: dict) -> str | None:
        """POST the notification; None on success, else a loggable reason (no URL, headers or body)."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.trust_env = False  # no proxy or .netrc from the environment reaches the endpoint
            self._sessions.append(session)
        sent = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
        for header in headers:
            name, _, value = header.partition(":")
            sent[name.strip()] = value.strip()
        try:
            resp = session.post(
                endpoint,
                data=json.dumps(bundle, separators=(",", ":")),
                headers=sent,
                timeout=(min(2.0, self.policy.timeout), self.policy.timeout),
                allow_redirects=False,
            )
            resp.close()
        except requests.RequestException as exc:
            return type(exc).__name__
        return None if 200 <= resp.status_code < 300 else f"HTTP {resp.status_code}"

    def _record(
        self,
        conn: Connection,
        sub_id: str,
        status: str,
        kind: str,
        last: int,
        failure: str | None,
        failures: int,
        base: str,
    ) -> None:
        sql, dbapi = rawsql.for_connection(conn)
        now = utcnow()
        current = sql.fetch(dbapi, "SELECT status FROM subscriptions WHERE id = ?", (sub_id,))
        if not current or current[0][0] != status:
            return  # deleted or updated (PUT) meanwhile: this answer belongs to the old settings
        if failure is None:
            new_status = "active" if kind == "handshake" else status
            sql.run(
                dbapi,
                "UPDATE subscriptions SET status = ?, failures = 0, next_attempt = NULL, lease_until = NULL, "
                "last_sent = ?, delivered_through = ? WHERE id = ? AND delivered_through <= ?",
                (new_status, now, last, sub_id, last),
            )
            if new_status != status:
                set_resource_status(conn, sub_id, new_status, base, None)
            return
        failures += 1
        log.warning("subscription %s: %s failed (%s), %d in a row", sub_id, kind, failure, failures)
        if failures >= self.policy.max_failures:
            sql.run(
                dbapi,
                "UPDATE subscriptions SET status = 'error', failures = ?, next_attempt = NULL, lease_until = NULL "
                "WHERE id = ?",
                (failures, sub_id),
            )
            set_resource_status(
                conn, sub_id, "error", base, f"Delivery failed {failures} times in a row (last: {failure})"
            )
            return
        sql.run(
            dbapi,
            "UPDATE subscriptions SET failures = ?, next_attempt = ?, lease_until = NULL WHERE id = ?",
            (failures, now + timedelta(seconds=self.policy.delay(failures)), sub_id),
        )
