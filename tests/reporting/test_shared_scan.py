"""Views of one resource type share one read of its NDJSON and give the same rows as alone.

``DuckEngine.materialise_many`` computes the views of a type in one scan (groupings and GBO
scores are both Observations); these tests hold it to the rows each view gives on its own.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from thrive_fhir.reporting.engine import DuckEngine, load_shipped_view, shipped_view_names, write_output
from thrive_fhir.reporting.reports import REPORTS, prepare
from thrive_fhir.reporting.sources import NdjsonFolder

from .conftest import POPULATIONS


def _sorted_rows(engine: DuckEngine, name: str) -> list[tuple]:
    return sorted(engine.con.execute(f'SELECT * FROM "{name}"').fetchall(), key=repr)


@pytest.mark.parametrize("size_seed", POPULATIONS[:2], ids=lambda p: f"n{p[0]}-seed{p[1]}")
def test_every_shipped_view_gives_the_same_rows_shared_or_alone(population, size_seed):
    folder, _truth = population(*size_seed)
    views = [load_shipped_view(n) for n in shipped_view_names()]
    alone, shared = DuckEngine(NdjsonFolder.open(folder)), DuckEngine(NdjsonFolder.open(folder))
    try:
        for v in views:
            alone.materialise(v)
        names = shared.materialise_many(views)
        assert names == [v["name"] for v in views]
        # The Observation views really were computed in one scan (not one query each).
        scans = {
            r[0]
            for r in shared.con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE table_name LIKE '__scan_%'"
            ).fetchall()
        }
        assert "__scan_Observation" in scans
        for n in names:
            assert [c.name for c in shared.tables[n].columns] == [c.name for c in alone.tables[n].columns]
            got, want = _sorted_rows(shared, n), _sorted_rows(alone, n)
            assert got == want, n
            assert want or n not in ("groupings", "gbo_scores")
    finally:
        alone.close()
        shared.close()


def test_prepare_then_a_view_materialised_again_replaces_the_shared_one(population, tmp_path: Path):
    folder, _truth = population(*POPULATIONS[0])
    engine = DuckEngine(NdjsonFolder.open(folder))
    try:
        prepare(engine, list(REPORTS))
        before = _sorted_rows(engine, "groupings")
        engine.materialise(load_shipped_view("groupings"))  # a table where the shared view was
        assert _sorted_rows(engine, "groupings") == before
        engine.materialise_many([load_shipped_view("groupings"), load_shipped_view("gbo_scores")])
        assert _sorted_rows(engine, "groupings") == before
        # The .duckdb output holds the flattened views as tables, whether shared or not.
        out = tmp_path / "views.duckdb"
        write_output(engine, "SELECT count(*) AS n FROM groupings", out)
        con = duckdb.connect(str(out), read_only=True)
        try:
            assert con.execute("SELECT n FROM report").fetchone()[0] == len(before)
            assert sorted(con.execute("SELECT * FROM groupings").fetchall(), key=repr) == before
            assert con.execute("SELECT count(*) FROM gbo_scores").fetchone()[0] > 0
        finally:
            con.close()
    finally:
        engine.close()
