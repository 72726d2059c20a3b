"""NDJSON folders: gzip, any file naming, missing types, broken lines."""

from __future__ import annotations

import gzip
import shutil

from click.testing import CliRunner

from thrive_fhir.cli import cli
from thrive_fhir.reporting.engine import DuckEngine
from thrive_fhir.reporting.reports import Options, run_report
from thrive_fhir.reporting.sources import NdjsonFolder


def test_gzip_and_export_style_names_give_the_same_report(tmp_path, population):
    folder, truth = population(40, 1)
    packed = tmp_path / "packed"
    packed.mkdir()
    for i, path in enumerate(sorted(folder.glob("*.ndjson"))):
        # Names like a bulk export's: Type.<n>.ndjson.gz
        with open(path, "rb") as src, gzip.open(packed / f"{path.stem}.{i:03d}.ndjson.gz", "wb") as dst:
            shutil.copyfileobj(src, dst)
    rows = run_report(DuckEngine(NdjsonFolder.open(packed)), "groupings", Options()).rows
    assert {r["grouping"]: r["decisions"] for r in rows if r["grouping"] != "total"} == truth["groupings"]["decisions"]


def test_missing_types_give_empty_reports_not_errors(tmp_path, population):
    folder, _ = population(40, 1)
    shutil.copy(folder / "Observation.ndjson", tmp_path / "Observation.ndjson")
    table = run_report(DuckEngine(NdjsonFolder.open(tmp_path)), "referral-tasks", Options())
    assert table.rows == []


def test_a_broken_line_is_one_readable_error(tmp_path, population):
    folder, _ = population(40, 1)
    lines = [*(folder / "Observation.ndjson").read_text().splitlines()[:3], '{"resourceType": "Observation", broken']
    (tmp_path / "Observation.ndjson").write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(
        cli, ["report", "groupings", "--source", str(tmp_path), "--out", str(tmp_path / "g.csv")]
    )
    assert result.exit_code == 1
    assert "could not read the NDJSON" in result.output and "Malformed JSON" in result.output
    assert "Traceback" not in result.output


def test_not_a_folder_and_bad_output_name(tmp_path, population):
    folder, _ = population(40, 1)
    r1 = CliRunner().invoke(
        cli, ["report", "groupings", "--source", str(tmp_path / "nope"), "--out", str(tmp_path / "g.csv")]
    )
    assert r1.exit_code == 1 and "is not a folder" in r1.output
    r2 = CliRunner().invoke(cli, ["report", "groupings", "--source", str(folder), "--out", str(tmp_path / "g.xlsx")])
    assert r2.exit_code == 1 and ".csv, .parquet or .duckdb" in r2.output
