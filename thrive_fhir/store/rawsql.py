"""Hand-written SQL on the hot read paths, run on the DBAPI connection of SQLAlchemy's pool.

Why: a read by id costs ~10 µs in SQLite but ~200 µs through SQLAlchemy Core (statement cache key,
execution context, Row objects, autobegin), and a search with ``_include`` ~1.5 ms against ~50 µs of
SQL. Under 20 concurrent clients that overhead, not the database, set the latency. So searches and
reads build their SQL as text with ``?`` placeholders (:mod:`.search`) and run it here; writes,
schema and pooling stay on SQLAlchemy.

The SQL is written to mean the same on SQLite and PostgreSQL: booleans are tested as ``is_current``
/ ``NOT deleted`` (which is also what lets SQLite use the partial ``ix_current`` index — SQLAlchemy
renders ``is_current = 1``, which SQLite cannot match to ``WHERE is_current``), placeholders become
``%s`` for psycopg, and datetimes go through SQLAlchemy's own DateTime processors so SQLite values
compare as exactly the strings SQLAlchemy stored.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.exc import DBAPIError


class Sql:
    """Placeholder style and datetime conversion for one SQLAlchemy dialect."""

    def __init__(self, dialect: Dialect):
        self.sqlite = dialect.name == "sqlite"
        impl = DateTime().dialect_impl(dialect)
        self._dt_in = impl.bind_processor(dialect)
        self._dt_out = impl.result_processor(dialect, None)
        self.sql = functools.lru_cache(maxsize=4096)(self._convert)
        self._dbapi_error = dialect.loaded_dbapi.Error

    def _convert(self, sql: str) -> str:
        # No literal '?' or '%' ever appears in the store's SQL text (values are always parameters).
        return sql if self.sqlite else sql.replace("?", "%s")

    def bind(self, params) -> tuple:
        dt_in = self._dt_in
        if dt_in is None:
            return tuple(params)
        return tuple(dt_in(p) if type(p) is datetime else p for p in params)

    def db_time(self, value: datetime):
        """A datetime as this driver should receive it."""
        return value if self._dt_in is None else self._dt_in(value)

    def dt(self, value) -> datetime | None:
        """A datetime column value as read from the driver -> datetime."""
        if value is None or self._dt_out is None or isinstance(value, datetime):
            return value
        return self._dt_out(value)

    def fetch(self, dbapi_conn, sql: str, params=()) -> list[tuple]:
        return self._execute(dbapi_conn, sql, params, True)

    def run(self, dbapi_conn, sql: str, params=()) -> None:
        self._execute(dbapi_conn, sql, params, False)

    def _execute(self, dbapi_conn, sql: str, params, fetch: bool):
        cur = dbapi_conn.cursor()
        try:
            cur.execute(self.sql(sql), self.bind(params))
            return cur.fetchall() if fetch else None
        except self._dbapi_error as exc:
            # The same exception classes SQLAlchemy raises (IntegrityError, OperationalError with the
            # driver's error as .orig), so run_write's race and retry handling sees no difference.
            raise DBAPIError.instance(sql, params, exc, self._dbapi_error) from exc
        finally:
            cur.close()


_BY_DIALECT: dict[str, Sql] = {}


def for_connection(conn: Connection) -> tuple[Sql, object]:
    """(the Sql of ``conn``'s dialect, its DBAPI connection inside the same transaction)."""
    sql = _BY_DIALECT.get(conn.dialect.name)
    if sql is None:
        sql = _BY_DIALECT.setdefault(conn.dialect.name, Sql(conn.dialect))
    return sql, conn.connection


class Runner(Sql):
    """:class:`Sql` bound to an engine, with read connections."""

    def __init__(self, engine: Engine):
        super().__init__(engine.dialect)
        self.engine = engine
        self._local = threading.local()

    @staticmethod
    def dbapi(conn: Connection):
        """The DBAPI connection under a SQLAlchemy Connection (sharing its transaction)."""
        return conn.connection

    @contextlib.contextmanager
    def reading(self, *, snapshot: bool = True):
        """A DBAPI connection for reads.

        ``snapshot``: several statements see one consistent state (SQLite: a deferred read
        transaction; PostgreSQL: psycopg opens its transaction implicitly). A single statement runs
        in SQLite autocommit mode, skipping BEGIN/ROLLBACK round trips.

        SQLite: each server thread keeps its own connection, detached from the pool (so it never
        takes a pool slot a writer needs). Checking a connection out of the pool and back in (locks,
        reset, events) cost more than the read itself. PostgreSQL connections come from the pool,
        which rolls back on return, so no transaction is left open between requests.
        """
        raw: Any
        if not self.sqlite:
            raw = self.engine.raw_connection()
            try:
                yield raw
            finally:
                raw.close()
            return
        raw = getattr(self._local, "raw", None)
        if raw is None or self._local.pool is not self.engine.pool:  # new thread, or engine disposed
            raw = self.engine.raw_connection()
            raw.detach()
            self._local.raw, self._local.pool = raw, self.engine.pool
        dbapi: Any = raw.dbapi_connection  # set: the connection was checked out above
        try:
            if not snapshot:
                yield dbapi
                return
            dbapi.execute("BEGIN")
            try:
                yield dbapi
            finally:
                dbapi.execute("ROLLBACK")
        except (DBAPIError, self._dbapi_error):
            # A database error may have left the connection unusable: the next read opens a new one.
            self._local.raw = None
            raw.close()
            raise


def placeholders(n: int) -> str:
    return ",".join("?" * n)
