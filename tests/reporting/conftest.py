"""Synthetic populations shared by the reporting tests (generated once per session)."""

from __future__ import annotations

import json
from datetime import date

import pytest

from thrive_fhir.synth import generate

#: (patients, seed): several sizes and seeds, small enough to keep the suite fast.
POPULATIONS = [(40, 1), (160, 7), (420, 3)]


@pytest.fixture(scope="session")
def population(tmp_path_factory):
    cache = {}

    def get(patients: int, seed: int):
        key = (patients, seed)
        if key not in cache:
            out = tmp_path_factory.mktemp(f"synth{patients}_{seed}")
            generate(patients, seed, out, as_of=date(2026, 1, 1))
            cache[key] = (out, json.loads((out / "ground_truth.json").read_text()))
        return cache[key]

    return get


@pytest.fixture(scope="session")
def spark():
    """One local SparkSession for every Spark test (starting one takes seconds)."""
    pyspark = pytest.importorskip("pyspark")
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[1]")
        .appName("thrive-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "1")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
    del pyspark
