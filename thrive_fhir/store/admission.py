"""Write admission: writers may never take every server thread, so reads keep being served.

Why (measured with ``benchmarks/store_reads.py --writers``): waitress runs each request on one of a
fixed pool of threads, in arrival order. On SQLite every write waits for the one write lock, and a
write request keeps its thread while it waits. With 8 threads and 8 clients posting 100-entry
transactions, all 8 threads sat in writes (most of them just waiting for the lock) and each search
queued behind them: plan-search p95 went from 17 ms to 250 ms. The database was not the bottleneck
— the read itself still took a few milliseconds once it had a thread.

So at most ``threads - reserved`` write requests are inside the application at once; a write that
arrives when they are all taken is answered 503 with ``Retry-After`` at once (it would only have
queued for the lock anyway, and the store keeps ingesting at its full rate meanwhile). The reserved
threads (a quarter, at least 2) are what reads can always get. PostgreSQL is limited the same way:
its writers do not share a lock, but they do share the thread pool.

Only :func:`thrive_fhir.store.serve` knows the thread count, so it sets the limit; an app served
some other way (tests that build their own waitress server) runs without one.
"""

from __future__ import annotations

import contextlib
import threading

from .errors import FhirError

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def reserved_for_reads(threads: int) -> int:
    return max(2, threads // 4)


class WriteAdmission:
    def __init__(self, limit: int | None = None):
        self.limit = limit
        self._lock = threading.Lock()
        self._inside = 0

    def configure(self, threads: int, connections: int | None = None) -> None:
        """Leave :func:`reserved_for_reads` of ``threads`` — and of the pool's ``connections`` when
        every request needs one (PostgreSQL) — to requests that are not writes."""
        capacity = min(threads, connections) if connections else threads
        self.limit = max(1, capacity - reserved_for_reads(capacity))

    @staticmethod
    def is_write(method: str, segs: list[str]) -> bool:
        return method in WRITE_METHODS and segs[-1:] != ["_search"]

    @contextlib.contextmanager
    def admit(self, method: str, segs: list[str]):
        if self.limit is None or not self.is_write(method, segs):
            yield
            return
        with self._lock:
            if self._inside >= self.limit:
                raise FhirError(
                    503,
                    f"The store is busy with {self._inside} writes; retry shortly",
                    "transient",
                    headers={"Retry-After": "1"},
                )
            self._inside += 1
        try:
            yield
        finally:
            with self._lock:
                self._inside -= 1
