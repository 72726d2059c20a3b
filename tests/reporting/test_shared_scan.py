"""Views of one resource type share one read of its NDJSON and give the same rows as alone.

``DuckEngine.materialise_many`` computes the views of a type in one scan (groupings and GBO
scores are both Observations); these tests hold it to the rows each view gives on its own.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from thrive_fhir.cli import cli
from thrive_fhir.reporting.compiler import only_columns
from thrive_fhir.reporting.engine import DuckEngine, load_shipped_view, shipped_view_names, write_output
from thrive_fhir.reporting.reports import REPORTS, Options, prepare, run_report
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
        prepare(engine, list(REPORTS), whole_views=True)
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


def test_reports_compute_only_the_columns_they_read_and_more_when_a_later_report_needs_them(population):
    folder, truth = population(*POPULATIONS[0])
    whole = DuckEngine(NdjsonFolder.open(folder))
    engine = DuckEngine(NdjsonFolder.open(folder))
    try:
        prepare(whole, ["groupings", "transitions"], whole_views=True)
        prepare(engine, ["groupings", "outcomes"])
        assert [c.name for c in engine.tables["groupings"].columns] == [
            "patient",
            "episode",
            "grouping",
            "effective",
            "clinician",
        ]
        assert "component" not in engine.tables["groupings"].structure["children"]  # not even parsed
        # Same rows as the whole view, column for column.
        cols = '"patient", "episode", "grouping", "effective", "clinician"'
        assert sorted(engine.con.execute(f"SELECT {cols} FROM groupings").fetchall(), key=repr) == sorted(
            whole.con.execute(f"SELECT {cols} FROM groupings").fetchall(), key=repr
        )
        # transitions reads id and previous as well: the view is made again with both sets.
        table = run_report(engine, "transitions", Options())
        names = {c.name for c in engine.tables["groupings"].columns}
        assert {"id", "previous", "patient", "clinician"} <= names and "source" not in names
        assert sum(r["transitions"] for r in table.rows if r["from_grouping"] == "total") == sum(
            n for row in truth["transitions"].values() for n in row.values()
        )
        # gbo_scores (still over the first shared scan) is untouched by that.
        assert engine.con.execute("SELECT count(*) FROM gbo_scores").fetchone()[0] > 0
    finally:
        whole.close()
        engine.close()


def test_only_columns_cuts_plain_views_and_leaves_others_whole():
    plain = {
        "resource": "Patient",
        "select": [
            {"column": [{"name": "id", "path": "id"}, {"name": "gender", "path": "gender"}]},
            {"select": [{"column": [{"name": "birth", "path": "birthDate"}]}]},
        ],
    }
    assert only_columns(plain, ["gender"])["select"] == [{"column": [{"name": "gender", "path": "gender"}]}]
    assert only_columns(plain, ["nothing"]) is plain  # a view needs a column: keep it whole
    each = {
        "resource": "Patient",
        "select": [
            {"column": [{"name": "id", "path": "id"}]},
            {"forEach": "name", "column": [{"name": "f", "path": "family"}]},
        ],
    }
    # forEach decides how many rows there are: cutting its columns could change them.
    assert only_columns(each, ["id"]) is each


def test_a_duckdb_report_output_keeps_the_whole_views(tmp_path, population):
    folder, _ = population(*POPULATIONS[0])
    out = tmp_path / "g.duckdb"
    result = CliRunner().invoke(cli, ["report", "groupings", "--source", str(folder), "--out", str(out)])
    assert result.exit_code == 0, result.output
    con = duckdb.connect(str(out), read_only=True)
    try:
        cols = [r[0] for r in con.execute("DESCRIBE groupings").fetchall()]
    finally:
        con.close()
    assert cols == [c["name"] for c in load_shipped_view("groupings")["select"][0]["column"]]


def test_outcomes_read_the_episodes_only_when_asked_for_their_status_or_agency(population):
    folder, truth = population(*POPULATIONS[0])
    engine = DuckEngine(NdjsonFolder.open(folder))
    try:
        plain = run_report(engine, "outcomes", Options())
        assert "episodes" not in engine.tables
        closed = run_report(engine, "outcomes", Options(closed_only=True))
        assert "episodes" in engine.tables
        total = {r["indicator"]: r["n"] for r in plain.rows}["total"]
        assert total == truth["gbo"]["paired"]["goals"]
        assert {r["indicator"]: r["n"] for r in closed.rows}["total"] == truth["gbo"]["paired_closed_episodes"]["goals"]
    finally:
        engine.close()


def test_a_plain_run_leaves_out_the_columns_only_a_breakdown_reads(population):
    """Without --by the clinician (groupings) and the episode (GBO scores) are not computed: at
    1M + 3M Observations they are the dearest columns of the scan. A later --by agency, or
    --closed-only, makes the view again with them and gets the same totals."""
    folder, truth = population(*POPULATIONS[0])
    engine = DuckEngine(NdjsonFolder.open(folder))
    try:
        prepare(engine, ["groupings", "outcomes"], options=Options())
        cols = lambda view: {c.name for c in engine.tables[view].columns}  # noqa: E731
        assert cols("groupings") == {"patient", "episode", "grouping", "effective"}
        assert cols("gbo_scores") == {"goal", "rater", "effective", "score"}
        # The scan's "filter pushdown off" is for its own statement only: reports get it back.
        assert engine.con.execute("SELECT current_setting('disabled_optimizers')").fetchone()[0] == ""
        plain = run_report(engine, "groupings", Options())
        by_agency = run_report(engine, "groupings", Options(by="agency"))
        assert "clinician" in cols("groupings")
        total = lambda t: sum(r["decisions"] for r in t.rows if r["grouping"] == "total")  # noqa: E731
        assert total(plain) == total(by_agency) == sum(truth["groupings"]["decisions"].values())
        closed = run_report(engine, "outcomes", Options(closed_only=True))
        assert "episode" in cols("gbo_scores")
        assert {r["indicator"]: r["n"] for r in closed.rows}["total"] == truth["gbo"]["paired_closed_episodes"]["goals"]
    finally:
        engine.close()
