"""Run test files in the SQL on FHIR v2 conformance format through our engines.

A test file is one JSON object: ``resources`` (the FHIR resources every test of the file reads) and
``tests``, each with a ``title``, a ``view`` and one expectation: ``expect`` (the rows, in any
order), ``expectColumns`` (the column names, in order) or ``expectError`` (compiling or running the
view must fail). The report has the shape the specification's own runner writes
(``{file: {"tests": [{"name", "result": {"passed", "reason"?}}]}}``), so results can be compared
with other implementations'. The resources of each file are written as NDJSON to a scratch folder
and read by the same code as ``thrive view run``: nothing here evaluates FHIRPath itself.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .compiler import ViewError
from .sources import NdjsonFolder

#: Rows a failing test's reason quotes at most (reports stay readable).
_REASON_ROWS = 5


class ConformanceError(ValueError):
    """The test folder or one of its files cannot be read: one sentence."""


def _plain(value: Any) -> Any:
    """A value from an engine as JSON would hold it (lists, text dates, plain numbers)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    if hasattr(value, "asDict"):  # a Spark Row
        return {k: _plain(v) for k, v in value.asDict().items()}
    return value


def _key(value: Any) -> str:
    """A canonical text of a value, so 42 and 42.0 match and rows can be sorted and counted."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return json.dumps(float(value))
    if isinstance(value, list):
        return "[" + ",".join(_key(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{_key(v)}" for k, v in sorted(value.items())) + "}"
    return json.dumps(value)


def _row_key(row: dict) -> str:
    return "{" + ",".join(f"{json.dumps(k)}:{_key(v)}" for k, v in sorted(row.items())) + "}"


def compare(test: dict, columns: list[str], rows: list[dict]) -> dict:
    """The ``result`` of one test given the rows the engine gave (as dicts by column name)."""
    if "expectColumns" in test:
        if columns != list(test["expectColumns"]):
            return {"passed": False, "reason": f"columns {columns}, expected {test['expectColumns']}"}
        return {"passed": True}
    expected = test["expect"]
    if expected:
        want_cols = sorted({k for r in expected for k in r})
        if sorted(columns) != want_cols:
            return {"passed": False, "reason": f"columns {sorted(columns)}, expected {want_cols}"}
    # Rows are a multiset: the specification's tests do not fix the row order.
    got = sorted(_row_key(r) for r in rows)
    want = sorted(_row_key(r) for r in expected)
    if got == want:
        return {"passed": True}
    return {
        "passed": False,
        "reason": f"{len(rows)} rows, expected {len(expected)}; got {got[:_REASON_ROWS]}, expected {want[:_REASON_ROWS]}",
    }


def _expects_error(test: dict) -> bool:
    # Early versions of the format wrote ``"error"`` for ``"expectError"``.
    return bool(test.get("expectError")) or bool(test.get("error"))


class _Runner:
    """Gives (columns, rows) for a view over one folder, with one engine."""

    def __init__(self, engine: str):
        self.engine = engine
        self._spark = None

    def rows(self, view: dict, folder: NdjsonFolder) -> tuple[list[str], list[dict]]:
        if self.engine == "spark":
            from .spark import SparkEngine

            eng = SparkEngine(folder, session=self._session())
            columns, tuples = eng.rows(view)
        else:
            from .engine import DuckEngine

            duck = DuckEngine(folder, memory_limit=None)
            try:
                compiled, sql = duck.query_for(view)
                columns = [c.name for c in compiled.columns]
                tuples = duck.con.execute(sql).fetchall() if sql else []
            finally:
                duck.close()
        return columns, [dict(zip(columns, (_plain(v) for v in t), strict=True)) for t in tuples]

    def _session(self):
        if self._spark is None:
            from pyspark.sql import SparkSession

            self._spark = (
                SparkSession.builder.appName("thrive-conformance")
                .master("local[2]")
                .config("spark.ui.enabled", "false")
                .config("spark.ui.showConsoleProgress", "false")
                .config("spark.sql.shuffle.partitions", "2")
                .getOrCreate()
            )
            # Tests that expect an error make Spark log it with a Java trace: expected here, so quiet.
            self._spark.sparkContext.setLogLevel("FATAL")
        return self._spark

    def close(self) -> None:
        if self._spark is not None:
            self._spark.stop()


def _write_resources(resources: list, folder: Path) -> NdjsonFolder:
    by_type: dict[str, list[str]] = {}
    for r in resources:
        by_type.setdefault(str(r.get("resourceType", "Unknown")), []).append(json.dumps(r))
    for rtype, lines in by_type.items():
        (folder / f"{rtype}.ndjson").write_text("\n".join(lines) + "\n", encoding="utf-8")
    if not by_type:  # NdjsonFolder needs one file; an empty one of no type is read as no rows
        (folder / "empty.ndjson").write_text("", encoding="utf-8")
    return NdjsonFolder.open(folder)


def run_test(runner: _Runner, test: dict, folder: NdjsonFolder) -> dict:
    view = test.get("view")
    if not isinstance(view, dict):
        return {"passed": _expects_error(test), "reason": "the view is not a JSON object"}
    view = {"resourceType": "ViewDefinition", "name": "conformance", **view}
    if not _expects_error(test) and "expect" not in test and "expectColumns" not in test:
        return {"passed": False, "reason": "the test states no expectation"}
    try:
        columns, rows = runner.rows(view, folder)
    except ViewError as exc:
        if _expects_error(test):
            return {"passed": True}
        return {"passed": False, "reason": f"view error: {exc}"}
    except Exception as exc:  # an engine's own error (DuckDB, Spark) running the compiled SQL
        if _expects_error(test):
            return {"passed": True}
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        return {"passed": False, "reason": f"engine error: {first}"}
    if _expects_error(test):
        return {"passed": False, "reason": f"expected an error, got {len(rows)} rows"}
    return compare(test, columns, rows)


def run_file(runner: _Runner, path: Path) -> list[dict]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConformanceError(f"{path}: cannot read it as JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("tests"), list):
        raise ConformanceError(f"{path}: not a test file (no 'tests' list)")
    scratch = Path(tempfile.mkdtemp(prefix="thrive-conformance-"))
    try:
        folder = _write_resources(doc.get("resources") or [], scratch)
        results = []
        for test in doc["tests"]:
            results.append({"name": str(test.get("title", "")), "result": run_test(runner, test, folder)})
        return results
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def run_dir(
    directory: str | Path, engine: str = "duckdb", progress: Callable[[str], None] | None = None
) -> dict[str, dict]:
    """Run every ``*.json`` test file in ``directory``; the report, keyed by file name."""
    directory = Path(directory)
    if directory.is_file():
        files = [directory]
    elif directory.is_dir():
        files = sorted(p for p in directory.glob("*.json") if p.name != "test_report.json")
    else:
        raise ConformanceError(f"{directory} is neither a test file nor a folder of them")
    if not files:
        raise ConformanceError(f"{directory} holds no .json test files")
    runner = _Runner(engine)
    report: dict[str, dict] = {}
    try:
        for path in files:
            report[path.name] = {"tests": run_file(runner, path)}
            if progress:
                progress(f"{path.name}: {summary({path.name: report[path.name]})}")
    finally:
        runner.close()
    return report


def summary(report: dict[str, dict]) -> str:
    results = [t["result"]["passed"] for f in report.values() for t in f["tests"]]
    return f"{sum(results)}/{len(results)} passed"
