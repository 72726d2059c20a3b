"""``thrive validate``: one readable line per problem, a summary, exit 0/1/2."""

from __future__ import annotations

import json

from click.testing import CliRunner

from tests.support.validation_helpers import EXAMPLES, gbo_score, grouping
from thrive_fhir.cli import cli


def run(*args):
    return CliRunner().invoke(cli, ["validate", *map(str, args)])


def test_help():
    r = run("--help")
    assert r.exit_code == 0
    assert "NDJSON" in r.output and "Exit status" in r.output


def test_valid_directory_exits_0():
    r = run(EXAMPLES)
    assert r.exit_code == 0, r.output
    n = len(list(EXAMPLES.glob("*.json")))
    assert r.output.strip().splitlines()[-1].startswith(f"{n} resources in {n} files: {n} valid, 0 invalid")


def test_invalid_json_file_line_format(tmp_path):
    obs = gbo_score()
    obs["valueInteger"] = 11
    f = tmp_path / "score.json"
    f.write_text(json.dumps(obs))
    r = run(f)
    assert r.exit_code == 1
    first = r.output.splitlines()[0]
    assert first == f"{f}: Observation/{obs['id']}: Observation: thr-gbo-1: " + first.split("thr-gbo-1: ", 1)[1]
    assert "1 invalid" in r.output.splitlines()[-1]


def test_ndjson_reports_line_numbers_and_streams_cross_rules(tmp_path):
    good = grouping()
    bad = gbo_score()
    bad["effectiveDateTime"] = "2025-13-45"
    f = tmp_path / "batch.ndjson"
    f.write_text(json.dumps(good) + "\n\n" + json.dumps(bad) + "\n" + "{not json\n")
    r = run(f)
    assert r.exit_code == 1
    lines = r.output.splitlines()
    assert any(
        line.startswith(f"{f}:3: Observation/{bad['id']}: Observation.effectiveDateTime: invalid-value:")
        for line in lines
    )
    assert any(line.startswith(f"{f}:4: -: -: json: malformed JSON at line 1 column 2") for line in lines)
    assert lines[-1].startswith("3 resources in 1 file: 1 valid, 2 invalid")


def test_cross_resource_rules_across_ndjson_lines(tmp_path):
    prev = grouping()
    prev["id"] = "prev"
    prev["effectiveDateTime"] = "2025-03-05T10:00:00Z"  # later than the one derived from it
    prev["issued"] = "2025-03-05T10:10:00Z"
    prev.pop("derivedFrom", None)
    cur = grouping()
    cur["derivedFrom"] = [{"reference": "Observation/prev"}]
    f = tmp_path / "g.ndjson"
    f.write_text(json.dumps(prev) + "\n" + json.dumps(cur) + "\n")
    r = run(f)
    assert r.exit_code == 1
    assert f"{f}:2: Observation/{cur['id']}: Observation.derivedFrom[0]: app-derivedfrom-mismatch:" in r.output


def test_malformed_and_non_utf8_files_exit_1(tmp_path):
    a = tmp_path / "a.json"
    a.write_bytes(b'{"resourceType": ')
    b = tmp_path / "b.json"
    b.write_bytes(b'{"resourceType": "Patient", "id": "\xfe"}')
    r = run(a, b)
    assert r.exit_code == 1
    assert f"{a}: -: -: json: malformed JSON" in r.output
    assert f"{b}: -: -: encoding: the input is not valid UTF-8" in r.output
    assert "Traceback" not in r.output


def test_oversized_file_is_refused(tmp_path):
    f = tmp_path / "big.json"
    f.write_text(json.dumps(grouping()))
    r = run("--max-bytes", 100, f)
    assert r.exit_code == 1
    assert "too-long" in r.output


def test_usage_errors_exit_2(tmp_path):
    assert run().exit_code == 2
    r = run(tmp_path / "missing.json")
    assert r.exit_code == 2 and "does not exist" in r.output


def test_json_format_prints_operation_outcomes(tmp_path):
    obs = gbo_score()
    obs["valueInteger"] = -1
    f = tmp_path / "s.ndjson"
    f.write_text(json.dumps(grouping()) + "\n" + json.dumps(obs) + "\n")
    r = CliRunner().invoke(cli, ["validate", "--format", "json", str(f)])
    assert r.exit_code == 1
    records = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert [rec["line"] for rec in records] == [1, 2]
    assert records[0]["outcome"]["issue"][0]["code"] == "informational"
    assert records[1]["outcome"]["issue"][0]["details"]["text"].startswith("thr-gbo-1")


def test_synth_output_validates_as_a_directory(tmp_path):
    """``thrive synth`` writes ground_truth.json beside its NDJSON: directory mode skips it, says so
    on stderr, and validates every resource."""
    out = tmp_path / "pop"
    made = CliRunner().invoke(cli, ["synth", "-n", "12", "-s", "4", "-o", str(out), "--provenance", "-q"])
    assert made.exit_code == 0, made.output
    truth = json.loads((out / "ground_truth.json").read_text())
    r = run(tmp_path)
    assert r.exit_code == 0, r.output
    assert r.stderr.splitlines() == [f"skipped: {out / 'ground_truth.json'}: not a FHIR resource"]
    n_files = len(list(out.glob("*.ndjson")))
    n = truth["resources_total"]
    assert r.stdout.splitlines() == [f"{n} resources in {n_files} files: {n} valid, 0 invalid (0 errors, 0 warnings)"]


def test_only_directory_mode_skips_json_without_resource_type(tmp_path):
    folder = tmp_path / "dir"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "notes.json").write_text(json.dumps({"title": "not FHIR"}))
    (folder / "broken.json").write_text('{"title": ')
    (folder / "g.json").write_text(json.dumps(grouping()))
    r = run(folder)
    # A non-resource object is skipped; malformed JSON is still a failure.
    assert r.exit_code == 1
    assert r.stderr.splitlines() == [f"skipped: {folder / 'sub' / 'notes.json'}: not a FHIR resource"]
    assert f"{folder / 'broken.json'}: -: -: json: malformed JSON" in r.stdout
    assert r.stdout.splitlines()[-1].startswith("2 resources in 2 files: 1 valid, 1 invalid")
    # Named explicitly, the same file is validated and fails.
    named = run(folder / "sub" / "notes.json")
    assert named.exit_code == 1 and "skipped" not in named.output
    assert "resourceType" in named.stdout and named.stdout.splitlines()[-1].startswith("1 resource in 1 file: 0 valid")
