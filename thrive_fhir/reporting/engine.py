"""Run ViewDefinitions over NDJSON with DuckDB and keep their rows as tables.

One :class:`DuckEngine` per run: each view is compiled (:mod:`.compiler`), run once over the
NDJSON of its resource type, and materialised as a table named after the view, so reports are
plain SQL over small flat tables. Views of one resource type asked for together
(:meth:`DuckEngine.materialise_many`) share one scan, so the JSON is parsed once per type. ``write_output`` saves a
query or the tables as ``.csv``, ``.parquet`` or ``.duckdb`` (the flattened views, for SQL).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import shutil
import tempfile
from importlib import resources as importlib_resources
from pathlib import Path

from .cache import ViewCache
from .compiler import CompiledView, ViewError, compile_shared, compile_view, shared_scan_sql, shared_view_sql
from .sources import NdjsonFolder, SourceError

OUTPUT_SUFFIXES = (".csv", ".parquet", ".duckdb")
#: DuckDB's memory cap for a report run (it spills to its scratch folder beyond this).
DEFAULT_MEMORY_LIMIT = "1GB"
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def shipped_view_names() -> list[str]:
    folder = importlib_resources.files("thrive_fhir.reporting") / "views"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))


def load_shipped_view(name: str) -> dict:
    """One of the ViewDefinitions shipped in ``thrive_fhir/reporting/views``."""
    path = importlib_resources.files("thrive_fhir.reporting") / "views" / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8"))


def load_view_file(path: str | Path) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ViewError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ViewError(f"{path}: cannot read it ({exc})") from None
    except json.JSONDecodeError as exc:
        raise ViewError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None


def _sql_list(paths: list[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


class DuckEngine:
    """A DuckDB connection holding the flattened views of one NDJSON folder."""

    def __init__(
        self,
        source: NdjsonFolder,
        database: str | None = None,
        threads: int | None = None,
        memory_limit: str | None = DEFAULT_MEMORY_LIMIT,
        cache: ViewCache | None = None,
    ):
        """``database`` None: a scratch DuckDB file in a temporary folder (removed by :meth:`close`
        or at exit), whose folder also takes what DuckDB spills, so memory stays bounded by
        ``memory_limit`` however large the input (measured: without a limit an in-memory database
        peaked at 2.3 GB for 1M + 3M Observations; with it, 1.1 GB).

        The flattened views are TEMP tables: kept uncompressed in memory and spilled to the folder
        beyond the limit. Writing them as tables of the database file instead compresses every
        column (measured ~0.8 CPU-s per 300k rows: ~12 CPU-s of the run at 1M + 3M). So a given
        ``database`` does not keep the views: :func:`write_output` to ``.duckdb`` does.

        With a ``cache`` (:class:`.cache.ViewCache`) each view query's rows go to a Parquet file
        there instead of a TEMP table, and a later engine asking the same query over the same,
        unchanged files reads that file: the NDJSON is not parsed again."""
        import duckdb

        self.duckdb = duckdb
        self.source = source
        self._scratch = None
        if database is None:
            self._scratch = tempfile.mkdtemp(prefix="thrive-report-db-")
            database = os.path.join(self._scratch, "views.duckdb")
            atexit.register(shutil.rmtree, self._scratch, True)
        self.con = duckdb.connect(database)
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        if memory_limit:
            self.con.execute(f"SET memory_limit = '{memory_limit}'")
        if self._scratch:
            self.con.execute(f"SET temp_directory = '{self._scratch}'")
        self.con.execute("SET preserve_insertion_order = false")
        self.con.execute("SET enable_progress_bar = false")
        self.tables: dict[str, CompiledView] = {}
        #: Names in ``tables`` that are DuckDB views over a shared scan table -> that table.
        self._views: dict[str, str] = {}
        self._scans: dict[str, set[str]] = {}  # shared scan table -> the views over it
        self.cache = cache
        #: Names that are DuckDB views over a cached Parquet file -> this run's hold on that file.
        self._parquet_views: dict[str, Path] = {}

    def close(self) -> None:
        self.con.close()
        if self.cache is not None:
            for held in self._parquet_views.values():
                self.cache.release(held)
            self._parquet_views.clear()
        if self._scratch:
            shutil.rmtree(self._scratch, ignore_errors=True)

    def source_sql(self, resource_type: str) -> str | None:
        files = self.source.files_for(resource_type)
        if not files:
            return None
        scan = f"read_ndjson_objects({_sql_list(files)})"
        if not self.source.incremental:
            return f"(SELECT json AS resource FROM {scan})"
        # Several export runs (_since) in one folder: keep the newest version of each resource.
        return (
            f"(SELECT resource FROM (SELECT json AS resource, row_number() OVER (PARTITION BY "
            f"json_extract_string(json, '$.resourceType'), json_extract_string(json, '$.id') ORDER BY json_extract_string(json, '$.meta.lastUpdated') DESC NULLS LAST) AS rn "
            f"FROM {scan}) WHERE rn = 1)"
        )

    def query_for(self, view: dict) -> tuple[CompiledView, str | None]:
        # Several export runs in one folder need the JSON plan (it deduplicates versions).
        compiled = compile_view(view, "duckdb", typed=not self.source.incremental)
        if compiled.typed:
            files = self.source.files_for(compiled.resource)
            return compiled, (compiled.sql(_sql_list(files)) if files else None)
        src = self.source_sql(compiled.resource)
        return compiled, (compiled.sql(src) if src else None)

    def materialise(self, view: dict, table: str | None = None) -> str:
        """Run ``view`` and store its rows as a table; return the table name."""
        compiled, sql = self.query_for(view)
        name = table or compiled.name
        if not _TABLE_NAME.match(name):
            raise ViewError(f"view name {name!r} cannot be a table name (letters, digits and _ only)")
        if sql is None:  # no resources of that type: an empty table with the right columns
            cols = ", ".join(
                f'CAST(NULL AS {c.sql_type}{"[]" if c.collection else ""}) AS "{c.name}"' for c in compiled.columns
            )
            sql = f"SELECT {cols} WHERE FALSE"
        if name in self._views or name in self._parquet_views:
            self._drop(name)
        try:
            self._store(name, sql, self.source.files_for(compiled.resource))
        except self.duckdb.Error as exc:
            raise SourceError(f"view {name}: could not read the NDJSON ({_first_line(exc)})") from None
        self.tables[name] = compiled
        return name

    #: Whether views of one resource type may share one scan (:meth:`materialise_many`).
    shared_scans = True

    def materialise_many(self, views: list[dict]) -> list[str]:
        """Run several views; those of one resource type share a single parse of its NDJSON.

        The views of a type are computed together into one table ``__scan_<Type>`` (a flag per
        view and a column per distinct column expression, see :func:`.compiler.shared_scan_sql`)
        and each view's table is then a DuckDB view over its flag and columns: the JSON is read
        once and each row is stored once. The scan table is dropped with the last view over it. Views that cannot
        share (several export runs to deduplicate, a path the typed plan cannot read) run alone.
        """
        names: list[str] = []
        groups: dict[str, list[dict]] = {}
        for v in views:
            r = v.get("resource") if isinstance(v, dict) else None
            groups.setdefault(r if isinstance(r, str) else "", []).append(v)
        done: dict[int, str] = {}
        for resource, members in groups.items():
            if len(members) < 2 or not self.shared_scans or self.source.incremental or not _TABLE_NAME.match(resource):
                continue
            files = self.source.files_for(resource)
            compiled = compile_shared(members) if files else None
            if compiled is None:
                continue
            if any(not _TABLE_NAME.match(c.name) for c in compiled) or len({c.name for c in compiled}) < len(compiled):
                continue  # materialise() gives the error (or the later view replaces the earlier)
            scan = f"__scan_{resource}"
            n = 1
            while scan in self._scans:  # an earlier scan still feeds views: keep it, use a new name
                n += 1
                scan = f"__scan_{resource}_{n}"
            try:
                with self._flags_computed_once():
                    self._store(scan, shared_scan_sql(compiled, _sql_list(files)), files)
            except self.duckdb.Error as exc:
                raise SourceError(
                    f"views {', '.join(c.name for c in compiled)}: could not read the NDJSON ({_first_line(exc)})"
                ) from None
            for i, (v, c) in enumerate(zip(members, compiled)):
                self._drop(c.name)
                self.con.execute(f'CREATE TEMP VIEW "{c.name}" AS {shared_view_sql(compiled, i, scan)}')
                self._views[c.name] = scan
                self._scans.setdefault(scan, set()).add(c.name)
                self.tables[c.name] = c
                done[id(v)] = c.name
        for v in views:
            names.append(done.get(id(v)) or self.materialise(v))
        return names

    @contextlib.contextmanager
    def _flags_computed_once(self):
        """DuckDB's filter pushdown, off for one statement: a shared scan keeps the rows any view
        flags (``WHERE __w0 OR __w1`` over the subquery that computes the flags), and pushing that
        filter below the subquery evaluates every view's ``where`` twice, once to filter and again
        for the flag (measured at 1M + 3M Observations: 10.4 CPU-s for the scan, 9.5 without).
        Nothing else in the scan can be pushed: JSON files take no filters."""
        self.con.execute("SET disabled_optimizers = 'filter_pushdown'")
        try:
            yield
        finally:
            self.con.execute("RESET disabled_optimizers")

    def _store(self, name: str, sql: str, files: list[Path]) -> None:
        """Keep the rows of ``sql`` (which reads ``files``) under ``name``: a TEMP table, or with
        a cache a view over its Parquet file (built now if the cache lacks it)."""
        self._drop_stored(name)
        if self.cache is None or not files:
            self.con.execute(f'CREATE OR REPLACE TEMP TABLE "{name}" AS {sql}')
            return
        try:
            path, transient = self.cache.path_for(self.con, sql, files)
        except OSError as exc:
            raise SourceError(f"cannot use the cache folder {self.cache.folder} ({exc.strerror or exc})") from None
        if transient:  # an input changed while it was read: not cached, so held in memory for this run
            try:
                self.con.execute(f'CREATE TEMP TABLE "{name}" AS SELECT * FROM read_parquet({_sql_list([path])})')
            finally:
                path.unlink()
            return
        try:
            held = self.cache.hold(path)
        except FileNotFoundError:  # evicted by another run since path_for: not this run's input any more
            raise SourceError(
                f"view {name}: the cache entry {path.name} was removed while this run used it; run it again"
            ) from None
        atexit.register(self.cache.release, held)  # a process that never closes the engine
        self.con.execute(f'CREATE OR REPLACE TEMP VIEW "{name}" AS SELECT * FROM read_parquet({_sql_list([held])})')
        self._parquet_views[name] = held

    def _drop_stored(self, name: str) -> None:
        if name in self._parquet_views:
            held = self._parquet_views.pop(name)
            self.con.execute(f'DROP VIEW IF EXISTS "{name}"')
            if self.cache is not None:
                self.cache.release(held)
        else:
            self.con.execute(f'DROP TABLE IF EXISTS "{name}"')

    def _drop(self, name: str) -> None:
        if name in self._views:
            self.con.execute(f'DROP VIEW IF EXISTS "{name}"')
            scan = self._views.pop(name)
            self._scans[scan].discard(name)
            if not self._scans[scan]:  # no view reads it any more: free its memory
                del self._scans[scan]
                self._drop_stored(scan)
        else:
            self._drop_stored(name)

    def rows(self, sql: str) -> tuple[list[str], list[tuple]]:
        cur = self.con.execute(sql)
        return [d[0] for d in cur.description], cur.fetchall()


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:300]


def check_output(out: Path) -> str:
    suffix = out.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise SourceError(f"{out}: the output must end in .csv, .parquet or .duckdb")
    if out.parent and not out.parent.exists():
        raise SourceError(f"{out.parent} does not exist")
    return suffix


def write_output(engine: DuckEngine, sql: str, out: Path, tables: list[str] | None = None) -> None:
    """Write the result of ``sql`` to ``out`` (.csv/.parquet), or for .duckdb: the result as
    table ``report`` plus the flattened views ``tables`` (all of the run's views by default)."""
    suffix = check_output(out)
    target = str(out).replace("'", "''")
    if suffix == ".csv":
        engine.con.execute(f"COPY ({sql}) TO '{target}' (HEADER, DELIMITER ',')")
    elif suffix == ".parquet":
        engine.con.execute(f"COPY ({sql}) TO '{target}' (FORMAT PARQUET)")
    else:
        if out.exists():
            os.remove(out)
        engine.con.execute(f"ATTACH '{target}' AS outdb")
        try:
            engine.con.execute(f"CREATE TABLE outdb.report AS {sql}")
            for t in tables if tables is not None else list(engine.tables):
                engine.con.execute(f'CREATE TABLE outdb."{t}" AS SELECT * FROM "{t}"')
        finally:
            engine.con.execute("DETACH outdb")
