"""PostgreSQL: keep planner statistics current while the store is being filled.

Why (measured with ``benchmarks/store_reads.py --database postgresql://...``): right after a burst of
writes into fresh tables PostgreSQL has no statistics for ``search_index`` and
``resource_versions``, believes each holds a row or two, and answers ``res_id IN (SELECT ... FROM
search_index ...)`` by walking every current resource of the type and probing the index for each:
the plan search took 400-540 ms with 40 patients, growing with the square of the data, until
autovacuum's next round (up to ``autovacuum_naptime``, a minute by default, later when its workers
are busy). With statistics the same search takes a few milliseconds.

So after writes the store checks, every :data:`CHECK_EVERY` seconds while writes go on (and once
after they stop) in a background thread, what autovacuum would check — rows changed since the last ANALYZE against
``50 + 10% of the table`` (autovacuum's default threshold) — and runs ``ANALYZE`` on the tables
past it. ANALYZE reads a fixed sample, so it costs well under a second however large the table.
It needs the tables' owner (or MAINTAIN): without that it logs once and stops trying.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from .errors import describe

log = logging.getLogger("thrive_fhir.store")

CHECK_EVERY = 2.0
TABLES = ("resource_versions", "search_index")
_STALE = text(
    "SELECT relname FROM pg_stat_user_tables WHERE relname = ANY(:tables) "
    "AND n_mod_since_analyze > 50 + 0.1 * GREATEST(n_live_tup - n_mod_since_analyze, 0)"
)


class StatisticsKeeper:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.enabled = engine.dialect.name == "postgresql"
        self._dirty = False
        self._running = threading.Lock()

    def after_write(self) -> None:
        """Cheap on the write path: marks the tables changed and makes sure a checker thread runs."""
        if not self.enabled:
            return
        self._dirty = True
        if self._running.acquire(blocking=False):
            threading.Thread(target=self._loop, name="store-analyze", daemon=True).start()

    def _loop(self) -> None:
        """Check CHECK_EVERY seconds after writes, again while they go on, and once after they stop
        (a burst that ends between two checks must still be analysed)."""
        try:
            while self._dirty and self.enabled:
                self._dirty = False
                time.sleep(CHECK_EVERY)
                self.run()
        finally:
            self._running.release()
        if self._dirty and self.enabled and self._running.acquire(blocking=False):  # a write slipped in
            threading.Thread(target=self._loop, name="store-analyze", daemon=True).start()

    def run(self) -> list[str]:
        """ANALYZE the store's tables whose statistics are stale; returns their names."""
        try:
            with self.engine.connect() as conn:
                stale = [row[0] for row in conn.execute(_STALE, {"tables": list(TABLES)})]
            for table in stale:
                with self.engine.begin() as conn:
                    conn.execute(text(f"ANALYZE {table}"))  # a name from TABLES, never client input
            return stale
        except SQLAlchemyError as exc:
            log.warning("store statistics not refreshed: %s", describe(exc))
            self.enabled = False
            return []
