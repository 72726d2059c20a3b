"""Every shipped view gives identical rows on DuckDB and on Spark (local mode, one shared session)."""

from __future__ import annotations

import pytest

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
