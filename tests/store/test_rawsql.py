"""The hand-written SQL runner under the store's hot paths: driver errors surface as SQLAlchemy's
exception classes (run_write's race and retry handling depends on them), and a read that hit a
database error leaves nothing behind (no open transaction, no broken connection) for the next read."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from tests.support.servers import create_pg_database
from thrive_fhir.store import rawsql
from thrive_fhir.store.schema import create_schema, make_engine

INSERT_JOB = "INSERT INTO export_jobs (id, status, created, transaction_time, request) VALUES (?, ?, ?, ?, ?)"


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request, tmp_path):
    if request.param == "sqlite":
        url, drop = f"sqlite:///{tmp_path / 'raw.db'}", (lambda: None)
    else:
        url, drop = create_pg_database()
    engine = make_engine(url)
    create_schema(engine)
    yield engine
    engine.dispose()
    drop()


def test_driver_errors_are_sqlalchemy_errors_and_roll_back(engine):
    now = datetime(2024, 5, 1, 12, 0)
    with pytest.raises(IntegrityError):
        with engine.begin() as conn:
            sql, dbapi = rawsql.for_connection(conn)
            sql.run(dbapi, INSERT_JOB, ("job-1", "complete", now, now, "r"))
            sql.run(dbapi, INSERT_JOB, ("job-1", "complete", now, now, "r"))  # same primary key
    runner = rawsql.Runner(engine)
    with runner.reading() as dbapi:
        assert runner.fetch(dbapi, "SELECT count(*) FROM export_jobs WHERE id = ?", ("job-1",)) == [(0,)]


def test_a_read_connection_that_failed_is_replaced(engine):
    runner = rawsql.Runner(engine)
    for snapshot in (True, False):
        with pytest.raises((OperationalError, ProgrammingError)):
            with runner.reading(snapshot=snapshot) as dbapi:
                runner.fetch(dbapi, "SELECT no_such_column FROM resource_versions")
        with runner.reading(snapshot=snapshot) as dbapi:
            assert runner.fetch(dbapi, "SELECT count(*) FROM resource_versions") == [(0,)]
