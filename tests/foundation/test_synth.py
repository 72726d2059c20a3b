"""Synthetic population: deterministic, valid, realistic, and its ground truth survives a recount."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from thrive_fhir import canonical
from thrive_fhir.cli import cli
from thrive_fhir.ids import is_test_nhs_number
from thrive_fhir.synth import GROUND_TRUTH, SynthError, generate
from thrive_fhir.validation import Validator, errors

N = 120
SEED = 20250304


@pytest.fixture(scope="module")
def population(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synth")
    truth = generate(N, SEED, out, provenance=True)
    return out, truth


def read_all(out: Path) -> dict[str, list[dict]]:
    return {p.stem: [json.loads(line) for line in p.open(encoding="utf-8")] for p in sorted(out.glob("*.ndjson"))}


def _files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def test_same_seed_same_bytes_other_seed_other_bytes(population, tmp_path):
    out, _ = population
    again = tmp_path / "again"
    generate(N, SEED, again, provenance=True)
    assert _files(again) == _files(out)
    other = tmp_path / "other"
    generate(N, SEED + 1, other, provenance=True)
    assert _files(other)["Patient.ndjson"] != _files(out)["Patient.ndjson"]


def test_a_patient_does_not_depend_on_population_size(population, tmp_path):
    """Each patient has its own random stream: the first 30 of 120 equal a run of 30."""
    out, _ = population
    small = tmp_path / "small"
    generate(30, SEED, small, provenance=True)
    big_patients = (out / "Patient.ndjson").read_text().splitlines()
    assert (small / "Patient.ndjson").read_text().splitlines() == big_patients[:30]


def test_every_resource_validates_as_a_set(population):
    out, _ = population
    resources = [r for rs in read_all(out).values() for r in rs]
    outcomes = Validator.default().validate_set(resources)
    assert len(outcomes) == len(resources)
    problems = {k: e for k, oo in outcomes.items() for e in errors(oo) if e[0] in ("error", "fatal", "warning")}
    assert not problems, list(problems.items())[:5]


def test_every_reference_resolves_inside_the_output(population):
    out, _ = population
    data = read_all(out)
    known = {f"{t}/{r['id']}" for t, rs in data.items() for r in rs}
    seen = 0

    def walk(node):
        nonlocal seen
        if isinstance(node, dict):
            ref = node.get("reference")
            if isinstance(ref, str):
                assert ref in known, ref
                seen += 1
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for rs in data.values():
        for r in rs:
            walk(r)
    assert seen > 1000


def test_nhs_numbers_valid_test_range_and_unique(population):
    out, _ = population
    numbers = [
        i["value"] for p in read_all(out)["Patient"] for i in p["identifier"] if i["system"] == canonical.NHS_NUMBER
    ]
    assert len(numbers) == N == len(set(numbers))
    assert all(is_test_nhs_number(n) and n.startswith("999") for n in numbers)


def _recount(out: Path) -> dict:
    """An independent recount from the files, the way a report would (LAG over effective)."""
    data = read_all(out)
    groupings = [o for o in data["Observation"] if o["code"]["coding"][0]["code"] == "thrive-grouping"]
    scores = [o for o in data["Observation"] if o["code"]["coding"][0]["system"] == canonical.SNOMED]
    episode_status = {f"EpisodeOfCare/{e['id']}": e["status"] for e in data["EpisodeOfCare"]}

    def ep(o):
        return next(x["valueReference"]["reference"] for x in o["extension"] if x["url"] == canonical.EXT_EPISODE)

    def when(o):
        return datetime.fromisoformat(o["effectiveDateTime"].replace("Z", "+00:00"))

    by_episode = defaultdict(list)
    for o in groupings:
        by_episode[ep(o)].append(o)
    current, ever, decisions = Counter(), Counter(), Counter()
    transitions = Counter()
    ever_pairs = set()
    for obs in by_episode.values():
        obs.sort(key=when)
        codes = [o["valueCodeableConcept"]["coding"][0]["code"] for o in obs]
        current[codes[-1]] += 1
        decisions.update(codes)
        for o, c in zip(obs, codes):
            ever_pairs.add((o["subject"]["reference"], c))
        for (a, ca), (b, cb) in zip(zip(obs, codes), zip(obs[1:], codes[1:])):
            assert b["derivedFrom"] == [{"reference": f"Observation/{a['id']}"}]  # explicit chain == LAG
            transitions[(ca, cb)] += 1
        assert "derivedFrom" not in obs[0]
    for _, c in ever_pairs:
        ever[c] += 1
    per_goal = defaultdict(list)
    for s in scores:
        per_goal[(s["focus"][0]["reference"], s["performer"][0]["reference"])].append(s)
    paired, closed = Counter(), Counter()
    for ss in per_goal.values():
        if len(ss) < 2:
            continue
        ss.sort(key=when)
        change = ss[-1]["valueInteger"] - ss[0]["valueInteger"]
        outcome = (
            "reliable_improvement"
            if change >= 3
            else "reliable_deterioration"
            if change <= -3
            else "no_reliable_change"
        )
        paired[outcome] += 1
        if all(episode_status[ep(s)] == "finished" for s in ss):
            closed[outcome] += 1
    return {
        "patients": len(data["Patient"]),
        "resources": {t: len(rs) for t, rs in data.items()},
        "current": current,
        "ever": ever,
        "decisions": decisions,
        "transitions": transitions,
        "paired": paired,
        "closed": closed,
        "goals": len(data["Goal"]),
    }


def test_ground_truth_matches_a_recount_of_the_files(population):
    out, truth = population
    assert json.loads((out / GROUND_TRUTH).read_text()) == truth
    rc = _recount(out)
    assert truth["patients"] == rc["patients"] == N
    assert truth["resources"] == rc["resources"]
    assert truth["resources_total"] == sum(rc["resources"].values())
    g = truth["groupings"]
    for code in canonical.GROUPINGS:
        assert g["current"][code] == rc["current"][code]
        assert g["ever"][code] == rc["ever"][code]
        assert g["decisions"][code] == rc["decisions"][code]
        for to in canonical.GROUPINGS:
            assert truth["transitions"][code][to] == rc["transitions"][(code, to)], (code, to)
    assert truth["transitions_changed"] == sum(n for (a, b), n in rc["transitions"].items() if a != b)
    for key in ("reliable_improvement", "no_reliable_change", "reliable_deterioration"):
        assert truth["gbo"]["paired"][key] == rc["paired"][key]
        assert truth["gbo"]["paired_closed_episodes"][key] == rc["closed"][key]
    assert truth["gbo"]["goals"] == rc["goals"]


def test_population_is_realistic(population):
    out, truth = population
    g = truth["groupings"]
    # Getting Risk Support is a minority; every grouping appears; changes have reasons.
    assert 0 < g["ever"]["getting-risk-support"] < N / 3
    assert all(g["ever"][c] > 0 for c in canonical.GROUPINGS)
    assert truth["transitions_changed"] > 0 and sum(truth["change_reasons"].values()) == truth["transitions_changed"]
    paired = truth["gbo"]["paired"]
    assert paired["reliable_improvement"] > paired["no_reliable_change"] > paired["reliable_deterioration"] > 0
    data = read_all(out)
    # Goals only for young people who were ever in Getting Help or Getting More Help; 1-3 each.
    helped = {
        o["subject"]["reference"]
        for o in data["Observation"]
        if o["code"]["coding"][0]["code"] == "thrive-grouping"
        and o["valueCodeableConcept"]["coding"][0]["code"] in ("getting-help", "getting-more-help")
    }
    per_patient = Counter(goal["subject"]["reference"] for goal in data["Goal"])
    assert set(per_patient) <= helped and max(per_patient.values()) <= 3
    # Safety plans only in Getting Risk Support, for some of them.
    at_risk = {
        o["subject"]["reference"]
        for o in data["Observation"]
        if o["code"]["coding"][0]["code"] == "thrive-grouping"
        and o["valueCodeableConcept"]["coding"][0]["code"] == "getting-risk-support"
    }
    planned = {p["subject"]["reference"] for p in data["CarePlan"]}
    assert planned and planned <= at_risk
    # Organisations of every agency kind; the trust has an ODS code, the others the local system.
    kinds = Counter(o["type"][0]["text"] for o in data["Organization"])
    assert {"camhs", "school", "social care", "youth justice", "voluntary sector"} <= set(kinds)
    assert any(i["system"] == canonical.ODS_ORG for o in data["Organization"] for i in o["identifier"])
    # The first grouping is agreed on or after the first contact.
    assert truth["first_contact_to_first_grouping_days"]["total_days"] >= 0
    for e in data["EpisodeOfCare"]:
        assert e["period"]["start"] <= e["period"].get("end", "9999")
    assert all(r["meta"]["source"].startswith(canonical.source_uri("")) for r in data["Observation"])


def test_without_provenance_there_is_no_provenance_file(tmp_path):
    truth = generate(5, 1, tmp_path)
    assert not (tmp_path / "Provenance.ndjson").exists() and "Provenance" not in truth["resources"]


@pytest.mark.parametrize("n", [0, -3, True, 1.5])
def test_generate_refuses_bad_sizes(tmp_path, n):
    with pytest.raises(SynthError):
        generate(n, 1, tmp_path)


def test_existing_population_needs_overwrite(tmp_path):
    generate(3, 1, tmp_path)
    with pytest.raises(SynthError, match="--overwrite"):
        generate(3, 1, tmp_path)
    generate(4, 1, tmp_path, overwrite=True)
    assert json.loads((tmp_path / GROUND_TRUTH).read_text())["patients"] == 4


# --- CLI -------------------------------------------------------------------------------------
def _run(*args: str):
    return CliRunner().invoke(cli, ["synth", *args])


def test_cli_writes_population(tmp_path):
    result = _run("--patients", "4", "--seed", "9", "--out", str(tmp_path / "pop"))
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and (tmp_path / "pop" / GROUND_TRUTH).exists()


def test_cli_help():
    result = _run("--help")
    assert result.exit_code == 0 and "--patients" in result.output and "--seed" in result.output


@pytest.mark.parametrize(
    "args, words",
    [
        (["--patients", "0"], "at least 1"),
        (["--patients", "-2"], "at least 1"),
        (["--patients", "lots"], "not a valid integer"),
        (["--patients", "900001"], "at most"),
        (["--seed", "x", "--patients", "2"], "not a valid integer"),
        (["--patients", "2", "--bogus"], "No such option"),
    ],
)
def test_cli_bad_arguments_one_line_exit_2(tmp_path, args, words):
    result = _run(*args, "--out", str(tmp_path / "o"))
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and words in lines[0], result.output
    assert not (tmp_path / "o").exists()


def test_cli_missing_out_and_unwritable_out(tmp_path):
    result = _run("--patients", "2")
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = _run("--patients", "2", "--out", str(blocker / "sub"))
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"Error: cannot create {blocker / 'sub'}: Not a directory"]
    result = _run("--patients", "2", "--out", str(blocker))
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1


def test_same_bytes_across_processes_with_different_hash_seeds(tmp_path):
    """Nothing may depend on set or hash order: two interpreters with different PYTHONHASHSEED agree."""
    import os
    import subprocess
    import sys

    outs = []
    for hash_seed in ("1", "2"):
        out = tmp_path / f"h{hash_seed}"
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run(
            [
                sys.executable,
                "-c",
                "from thrive_fhir.cli import main; main()",
                "synth",
                "-n",
                "15",
                "-s",
                "3",
                "-o",
                str(out),
                "--provenance",
                "-q",
            ],
            check=True,
            env=env,
        )
        outs.append(_files(out))
    assert outs[0] == outs[1] and len(outs[0]) > 10
