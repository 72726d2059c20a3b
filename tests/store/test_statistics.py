"""PostgreSQL: after a burst of writes into fresh tables the store refreshes the planner statistics
itself (see thrive_fhir/store/statistics.py) instead of leaving searches on row-by-row plans until
autovacuum's next round."""

from __future__ import annotations

import time
import uuid

import pytest
import requests
import sqlalchemy

from tests.support.servers import create_pg_database
from tests.support.store_data import observation, patient
from tests.support.store_servers import start_ours

JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


@pytest.mark.postgres
def test_a_burst_of_writes_gets_fresh_statistics_within_seconds():
    url, drop = create_pg_database()
    server = start_ours(url)
    engine = sqlalchemy.create_engine(url)
    try:
        entries = []
        for _ in range(40):
            pid = str(uuid.uuid4())
            entries.append({"resource": patient(pid), "request": {"method": "PUT", "url": f"Patient/{pid}"}})
            entries += [
                {"resource": observation(f"Patient/{pid}"), "request": {"method": "POST", "url": "Observation"}}
                for _ in range(4)
            ]
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
        assert requests.post(server.base, json=bundle, headers=JSON).status_code == 200
        deadline = time.time() + 15
        analysed: set[str] = set()
        while time.time() < deadline and analysed != {"resource_versions", "search_index"}:
            time.sleep(0.5)
            with engine.connect() as conn:  # last_analyze: a manual ANALYZE (autovacuum sets last_autoanalyze)
                analysed = {
                    r[0]
                    for r in conn.exec_driver_sql(
                        "SELECT relname FROM pg_stat_user_tables WHERE last_analyze IS NOT NULL "
                        "AND relname IN ('resource_versions', 'search_index')"
                    )
                }
        assert analysed == {"resource_versions", "search_index"}
    finally:
        engine.dispose()
        server.stop()
        drop()
