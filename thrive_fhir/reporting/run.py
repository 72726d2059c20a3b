"""The glue the CLI calls: open a source (folder or server), run views or reports, write files."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from .cache import ViewCache
from .engine import DuckEngine, _first_line, check_output, write_output
from .sources import NdjsonFolder, SourceError


class RunError(ValueError):
    """Anything the user must fix (source, output, options): one readable sentence."""


@contextlib.contextmanager
def open_source(
    source: str,
    *,
    types: list[str] | None = None,
    since: str | None = None,
    auth: dict | None = None,
    progress: Callable[[str], None] | None = None,
    keep: Path | None = None,
) -> Iterator[NdjsonFolder]:
    """A folder of NDJSON for ``source``: the folder itself, or a fresh download from a server.

    From a server, Bulk Data ``$export`` is tried first (with ``types`` as ``_type`` and ``since``
    as ``_since``); a server without ``$export`` is read by paging searches. The download goes to
    ``keep`` if given, otherwise to a temporary folder removed afterwards.
    """
    if source.startswith(("http://", "https://")):
        from .bulk_client import BulkError, download

        target = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="thrive-report-"))
        try:
            try:
                download(source, target, types=types, since=since, auth=auth, progress=progress)
                yield NdjsonFolder.open_or_empty(target)
            except (BulkError, SourceError) as exc:
                raise RunError(str(exc)) from None
        finally:
            if keep is None:
                shutil.rmtree(target, ignore_errors=True)
        return
    try:
        folder = NdjsonFolder.open(source)
    except SourceError as exc:
        raise RunError(str(exc)) from None
    yield folder


def run_view_to_file(
    view: dict,
    folder: NdjsonFolder,
    out: Path,
    *,
    engine: str = "duckdb",
    master: str | None = None,
    cache: ViewCache | None = None,
) -> int:
    """Run one view and write its rows; return the row count. ``cache`` (DuckDB only): read the
    view's rows from, or keep them in, a :class:`.cache.ViewCache`."""
    try:
        check_output(out)
    except SourceError as exc:
        raise RunError(str(exc)) from None
    if engine == "spark":
        from pyspark.errors import PySparkException

        from .spark import SparkEngine

        try:
            with SparkEngine(folder, master=master) as spark:
                return spark.write_view(view, out)
        except PySparkException as exc:  # e.g. a column with several values where the view allows one
            raise RunError(_first_line(exc)) from None
    eng = DuckEngine(folder, cache=cache)
    try:
        name = eng.materialise(view)
        write_output(eng, f'SELECT * FROM "{name}"', out, tables=[name])
        row = eng.con.execute(f'SELECT count(*) FROM "{name}"').fetchone()
        return row[0] if row else 0  # count(*) always gives one row
    except SourceError as exc:
        raise RunError(str(exc)) from None
    except eng.duckdb.Error as exc:  # e.g. a column with several values where the view allows one
        raise RunError(_first_line(exc)) from None
    finally:
        eng.close()


def engine_for(
    folder: NdjsonFolder, engine: str = "duckdb", master: str | None = None, cache: ViewCache | None = None
) -> DuckEngine:
    """The engine reports run on. With ``spark`` the views (the heavy part: every resource's JSON)
    run on Spark and only their flat rows come back, as Parquet, for the small report queries.
    ``cache`` (DuckDB only): keep the flattened views as Parquet for later runs (:mod:`.cache`)."""
    if engine == "spark":
        return SparkViews(folder, master=master)
    return DuckEngine(folder, cache=cache)


class SparkViews(DuckEngine):
    shared_scans = False  # each view is its own Spark job

    def __init__(self, folder: NdjsonFolder, master: str | None = None):
        super().__init__(folder)
        from .spark import SparkEngine

        self.spark_engine = SparkEngine(folder, master=master)
        self._tmp = Path(tempfile.mkdtemp(prefix="thrive-spark-views-"))

    def materialise(self, view: dict, table: str | None = None) -> str:
        compiled, df = self.spark_engine.dataframe(view)
        name = table or compiled.name
        target = self._tmp / name
        df.write.mode("overwrite").parquet(str(target))
        parts = sorted(target.glob("*.parquet"))
        if parts:
            self.con.execute(f"CREATE OR REPLACE TABLE \"{name}\" AS SELECT * FROM read_parquet('{target}/*.parquet')")
        else:
            cols = ", ".join(
                f'CAST(NULL AS {c.sql_type}{"[]" if c.collection else ""}) AS "{c.name}"' for c in compiled.columns
            )
            self.con.execute(f'CREATE OR REPLACE TABLE "{name}" AS SELECT {cols} WHERE FALSE')
        self.tables[name] = compiled
        return name

    def close(self) -> None:
        self.spark_engine.__exit__(None, None, None)
        shutil.rmtree(self._tmp, ignore_errors=True)
        super().close()
