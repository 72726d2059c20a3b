"""Writing report tables: CSV, Parquet, a DuckDB file (the report plus the flattened views), HTML."""

from __future__ import annotations

import os
from pathlib import Path

from .engine import check_output
from .suppression import Table, suppress


def _typed(table: Table, suppressed: bool) -> tuple[list[str], list[tuple], list[str]]:
    """Rows ready to write; with suppression every count column is text (it may hold ``*``)."""
    t = suppress(table) if suppressed else table
    masked_cols = set(t.counts) | set(t.derived) if suppressed else set()
    types = []
    for c in t.columns:
        values = [r.get(c) for r in t.rows if r.get(c) is not None]
        if c in masked_cols:
            types.append("VARCHAR")
        elif values and all(isinstance(v, bool) for v in values):
            types.append("BOOLEAN")
        elif values and all(isinstance(v, int) for v in values):
            types.append("BIGINT")
        elif values and all(isinstance(v, (int, float)) for v in values):
            types.append("DOUBLE")
        else:
            types.append("VARCHAR")
    rows = []
    for r in t.rows:
        rows.append(
            tuple(
                None if r.get(c) is None else (str(r[c]) if ty == "VARCHAR" else r[c])
                for c, ty in zip(t.columns, types)
            )
        )
    return t.columns, rows, types


def write_table(engine, table: Table, out: Path, *, suppressed: bool = True) -> None:
    suffix = check_output(out)
    cols, rows, types = _typed(table, suppressed)
    con = engine.con
    con.execute("DROP TABLE IF EXISTS report")
    con.execute("CREATE TABLE report (" + ", ".join(f'"{c}" {t}' for c, t in zip(cols, types)) + ")")
    if rows:
        con.executemany("INSERT INTO report VALUES (" + ", ".join("?" for _ in cols) + ")", rows)
    target = str(out).replace("'", "''")
    if suffix == ".csv":
        con.execute(f"COPY report TO '{target}' (HEADER, DELIMITER ',')")
    elif suffix == ".parquet":
        con.execute(f"COPY report TO '{target}' (FORMAT PARQUET)")
    else:
        if out.exists():
            os.remove(out)
        con.execute(f"ATTACH '{target}' AS outdb")
        try:
            con.execute("CREATE TABLE outdb.report AS SELECT * FROM report")
            for t in list(engine.tables):
                con.execute(f'CREATE TABLE outdb."{t}" AS SELECT * FROM "{t}"')
        finally:
            con.execute("DETACH outdb")


def write_report_html(engine, opts, out: Path, *, suppressed: bool = True, progress=None) -> None:
    from .html import render

    render(engine, opts, out, suppressed=suppressed, progress=progress)
