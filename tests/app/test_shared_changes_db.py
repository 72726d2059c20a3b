"""The app's record of shared-store changes, subscription liveness and agency visits
(smart_app.shared_changes) on SQLite and PostgreSQL: the upserts are dialect-specific SQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from smart_app.shared_changes import EVERYONE, SharedChanges
from tests.support.notifications import notification
from tests.support.servers import create_pg_database
from thrive_fhir.client.notifications import parse


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def changes(request, tmp_path):
    if request.param == "sqlite":
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}")
        drop = None
    else:
        url, drop = create_pg_database("thrive_appchg")
        engine = sa.create_engine(url)
    c = SharedChanges(engine)
    c.create_tables()
    c.create_tables()  # idempotent on every start
    yield c
    engine.dispose()
    if drop:
        drop()


def test_events_are_recorded_once_and_gaps_are_found(changes):
    assert changes.record(parse(notification("s1", "handshake", since_start=0)), now=100).missed is None
    seen = changes.record(parse(notification("s1", events=[(1, "Task/a", "Patient/p1")])), now=110)
    assert seen.missed is None and not seen.duplicate
    assert changes.changed_after(["p1"], 105) and not changes.changed_after(["p2"], 105)
    again = changes.record(parse(notification("s1", events=[(1, "Task/a", "Patient/p1")])), now=200)
    assert again.duplicate and not changes.changed_after(["p1"], 150)  # a repeat changes nothing
    gap = changes.record(parse(notification("s1", events=[(5, "Goal/g", "Patient/p2")])), now=210)
    assert gap.missed == (2, 4)
    changes.invalidate_everyone(now=220)
    assert changes.changed_after(["anyone"], 215)
    assert changes.subscription_active(30, now=225) and not changes.subscription_active(30, now=300)


def test_visits_are_per_worker_and_replaced(changes):
    changes.visited("Practitioner/w1@https://s/fhir", "p1", "2026-01-01T10:00:00.000001Z", now=1)
    changes.visited("Practitioner/w1@https://s/fhir", "p1", "2026-01-02T10:00:00.000001Z", now=2)
    changes.visited("Practitioner/w2@https://s/fhir", "p2", "2026-01-03T10:00:00Z", now=3)
    assert changes.last_visits("Practitioner/w1@https://s/fhir", ["p1", "p2"]) == {"p1": "2026-01-02T10:00:00.000001Z"}
    assert changes.last_visits("Practitioner/w2@https://s/fhir", []) == {}
    assert EVERYONE == "*"
