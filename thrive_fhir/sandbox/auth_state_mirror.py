"""Optional durable copy of the sandbox authorization server's state. DEVELOPMENT AND TESTING ONLY.

Without it a restarted ``thrive sandbox serve`` forgets every code, refresh token and used
assertion id, so every app session dies with the process. With it, the same state is written
through to one table, ``sandbox_auth_state``, in the EHR store's database (any SQLAlchemy URL),
and read back at start: refresh tokens keep working across a restart, reused codes and refresh
tokens are still caught, revoked grants stay revoked and replayed ``jti`` values stay refused.

Memory stays the working copy (one sandbox process owns its state); the table is a write-through
mirror (hence the name: it is not one of the project's FHIR "stores", see docs/architecture.md,
"Words"). Tokens are never stored in clear: rows are keyed by SHA-256 of the code or token, which is
also how the in-memory tables are keyed, so a database dump hands out nothing usable.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

metadata = sa.MetaData()
state_table = sa.Table(
    "sandbox_auth_state",
    metadata,
    sa.Column("kind", sa.String(16), primary_key=True),  # launch | code | refresh | revoked | jti | session
    sa.Column("key", sa.String(512), primary_key=True),  # SHA-256 hex of the secret, or a plain id
    sa.Column("data", sa.Text, nullable=False),  # the record as JSON
    sa.Column("expires", sa.Float, nullable=False, index=True),
)

#: Kept this long after expiry, as the in-memory tables are (reuse is still recognised meanwhile).
GRACE_SECONDS = 3600


def digest(secret: str) -> str:
    """How codes, refresh tokens and launch handles are keyed, in memory and on disk."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class AuthStateMirror:
    """The ``sandbox_auth_state`` table in the database at ``database_url`` (created if missing)."""

    def __init__(self, database_url: str) -> None:
        kwargs: dict[str, Any] = {}
        if database_url.startswith("sqlite"):
            # The EHR store writes to the same file from its own engine: wait for its lock.
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        self.engine = sa.create_engine(database_url, **kwargs)
        metadata.create_all(self.engine)

    def put(self, kind: str, key: str, data: dict[str, Any], expires: float) -> None:
        """Insert or replace one record."""
        where = sa.and_(state_table.c.kind == kind, state_table.c.key == key)
        with self.engine.begin() as conn:
            conn.execute(state_table.delete().where(where))
            conn.execute(state_table.insert().values(kind=kind, key=key, data=json.dumps(data), expires=expires))

    def load(self, kind: str, now: float) -> Iterator[tuple[str, dict[str, Any], float]]:
        """Every record of ``kind`` not yet past its grace period: (key, data, expires)."""
        query = sa.select(state_table.c.key, state_table.c.data, state_table.c.expires).where(
            state_table.c.kind == kind, state_table.c.expires + GRACE_SECONDS >= now
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        for key, data, expires in rows:
            yield key, json.loads(data), expires

    def purge(self, now: float) -> None:
        with self.engine.begin() as conn:
            conn.execute(state_table.delete().where(state_table.c.expires + GRACE_SECONDS < now))

    def close(self) -> None:
        self.engine.dispose()
