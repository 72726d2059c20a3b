"""Spark (local mode, one shared session) gives the rows DuckDB gives: for every shipped view, and for
every feature case written from the SQL on FHIR v2 text (tests/reporting/test_view_features.py).

Both Spark tests live in this one module so that a parallel run (``make test``: pytest-xdist, a
module per worker) starts one JVM for them, not one per module."""

from __future__ import annotations

import pytest

from tests.reporting.test_view_features import CASES, write_feature_data
from thrive_fhir.reporting.engine import DuckEngine, load_shipped_view, shipped_view_names
from thrive_fhir.reporting.sources import NdjsonFolder


def _norm(rows):
    return sorted((tuple(list(v) if isinstance(v, (list, tuple)) else v for v in r) for r in rows), key=repr)


@pytest.mark.slow
def test_every_shipped_view_is_identical_on_spark(population, spark):
    from thrive_fhir.reporting.spark import SparkEngine

    folder, _ = population(40, 1)
    source = NdjsonFolder.open(folder)
    duck = DuckEngine(source)
    sparky = SparkEngine(source, session=spark)
    names = shipped_view_names()
    assert len(names) >= 10
    for name in names:
        view = load_shipped_view(name)
        _, sql = duck.query_for(view)
        expected = duck.con.execute(sql).fetchall()
        _, got = sparky.rows(view)
        assert expected, name  # every shipped view has rows in the synthetic population
        assert _norm(got) == _norm(expected), name


@pytest.mark.slow
def test_spark_gives_the_same_rows(tmp_path, spark):
    from thrive_fhir.reporting.spark import SparkEngine

    engine = SparkEngine(write_feature_data(tmp_path), session=spark)
    for case, (view, expected) in CASES.items():
        _, rows = engine.rows({"resourceType": "ViewDefinition", "name": "v", **view})
        assert _norm(rows) == _norm(expected), case
