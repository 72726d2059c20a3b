"""Run ViewDefinitions on Spark: the same compiled plan as DuckDB, as Spark SQL.

For data that outgrows one machine. The NDJSON is read as text (one resource per line, gzip
read transparently) and each view compiles to one Spark SQL query (:mod:`.compiler`, dialect
``spark``), so the rows are the same as DuckDB's for the same view and data (tested).
``master`` is any Spark master URL (``local[2]``, ``spark://host:7077``, ``yarn``); the files must be
readable from the executors (a shared filesystem or object store path).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .compiler import CompiledView, compile_view
from .sources import NdjsonFolder


class SparkEngine:
    def __init__(self, folder: NdjsonFolder, master: str | None = None, session=None):
        self.folder = folder
        self._own = session is None
        if session is None:
            from pyspark.sql import SparkSession

            session = (
                SparkSession.builder.appName("thrive-report")
                .master(master or "local[2]")
                .config("spark.ui.enabled", "false")
                .config("spark.ui.showConsoleProgress", "false")
                .config("spark.sql.shuffle.partitions", "4")
                .getOrCreate()
            )
            session.sparkContext.setLogLevel("ERROR")
        self.spark = session
        self._sources: dict[str, str] = {}

    def __enter__(self) -> SparkEngine:
        return self

    def __exit__(self, *exc) -> None:
        if self._own:
            self.spark.stop()

    def source(self, resource_type: str) -> str | None:
        if resource_type in self._sources:
            return self._sources[resource_type]
        files = self.folder.files_for(resource_type)
        if not files:
            return None
        name = f"src_{resource_type}_{len(self._sources)}"
        df = self.spark.read.text([str(p) for p in files]).withColumnRenamed("value", "resource")
        df.createOrReplaceTempView(name)
        self._sources[resource_type] = name
        return name

    def dataframe(self, view: dict):
        compiled: CompiledView = compile_view(view, "spark")
        src = self.source(compiled.resource)
        if src is None:
            empty = self.spark.createDataFrame([], "resource STRING")
            src = f"empty_{compiled.resource}"
            empty.createOrReplaceTempView(src)
        return compiled, self.spark.sql(compiled.sql(src))

    def rows(self, view: dict) -> tuple[list[str], list[tuple]]:
        compiled, df = self.dataframe(view)
        return [c.name for c in compiled.columns], [tuple(r) for r in df.collect()]

    def write_view(self, view: dict, out: Path) -> int:
        compiled, df = self.dataframe(view)
        suffix = out.suffix.lower()
        if suffix == ".duckdb":
            import duckdb

            cols, rows = [c.name for c in compiled.columns], [tuple(r) for r in df.collect()]
            if out.exists():
                os.remove(out)
            con = duckdb.connect(str(out))
            types = [c.sql_type + ("[]" if c.collection else "") for c in compiled.columns]
            con.execute(
                f'CREATE TABLE "{compiled.name}" (' + ", ".join(f'"{c}" {t}' for c, t in zip(cols, types)) + ")"
            )
            if rows:
                con.executemany(
                    f'INSERT INTO "{compiled.name}" VALUES (' + ", ".join("?" for _ in cols) + ")",
                    [tuple(list(v) if isinstance(v, (list, tuple)) else v for v in r) for r in rows],
                )
            con.close()
            return len(rows)
        tmp = Path(tempfile.mkdtemp(prefix="thrive-spark-"))
        try:
            target = tmp / "out"
            one = df.coalesce(1)
            if suffix == ".csv":
                from pyspark.sql import functions as F

                for c in compiled.columns:
                    if c.collection:  # CSV has no arrays: write them as JSON text, as DuckDB's COPY does
                        one = one.withColumn(c.name, F.to_json(F.col(c.name)))
                one.write.option("header", True).csv(str(target))
            else:
                one.write.parquet(str(target))
            part = next(p for p in target.iterdir() if p.name.startswith("part-"))
            shutil.move(str(part), out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return df.count()
