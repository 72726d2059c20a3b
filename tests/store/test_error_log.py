"""The log line of an unhandled database error names what the database said, never the data."""

from __future__ import annotations

import logging

import pytest
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from tests.support.servers import PG_ADMIN_URL
from thrive_fhir.store.errors import describe

SECRET = "Testperson-77777"


def _db_error(url: str, sql: str, params: dict) -> DBAPIError:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text(sql), params)
    except DBAPIError as exc:
        return exc
    finally:
        engine.dispose()
    raise AssertionError("the statement did not fail")


def test_sqlite_error_message_is_logged():
    deep = "SELECT 1 WHERE " + " OR ".join(["x = :v"] * 1200)
    exc = _db_error("sqlite://", deep, {"v": SECRET})
    line = describe(exc)
    assert "OperationalError" in line and "Expression tree is too large" in line
    assert SECRET not in line


@pytest.mark.postgres
def test_postgres_error_message_is_logged_without_the_value():
    exc = _db_error(PG_ADMIN_URL, "SELECT CAST(:v AS integer)", {"v": SECRET})
    line = describe(exc)
    assert "22P02" in line and "invalid input syntax for type integer" in line
    assert SECRET not in line


def test_unhandled_database_error_in_a_request_logs_the_database_message(ours, monkeypatch, caplog):
    store = ours.app.store

    def search(ctx, rtype, params, **kwargs):  # a statement the database refuses, carrying a value
        with store.engine.connect() as conn:
            conn.execute(text("SELECT CAST(:v AS integer) + missing_column"), {"v": SECRET})

    monkeypatch.setattr(store, "search", search)
    with caplog.at_level(logging.ERROR, logger="thrive_fhir.store"):
        resp = requests.get(ours.url(f"Patient?name={SECRET}"))
    assert resp.status_code == 500 and resp.json()["resourceType"] == "OperationOutcome"
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "missing_column" in logged  # the database's own words: what an operator acts on
    assert SECRET not in logged
