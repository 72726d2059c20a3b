"""Fixtures shared by every test folder. Folder-specific fixtures live in that folder's conftest."""

from __future__ import annotations

import os
import socket
import uuid

import pytest

PG_ADMIN_URL = os.environ.get("THRIVE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def fresh_postgres_url():
    """A brand-new PostgreSQL database for one test, dropped afterwards.

    Tests of concurrency must run on PostgreSQL (SQLite serialises writers). The database server
    is started by .ci/run; a test that needs it fails loudly rather than skipping when it is down.
    """
    sqlalchemy = pytest.importorskip("sqlalchemy")
    name = f"thrive_t_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
