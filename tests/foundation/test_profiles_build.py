"""The SUSHI build: committed JSON is reproducible, complete and consistent with canonical.py,
and the example and invalid fixtures really are valid / invalid under the profiles' invariants.

Runs SUSHI once (~4 s) for the drift check.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest
from fhirpathpy import evaluate
from fhirpathpy.models import models

from thrive_fhir import canonical, ids

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "profiles" / "generated"
EXAMPLES = ROOT / "profiles" / "examples"
INVALID = ROOT / "tests" / "fixtures" / "invalid"
FSH = ROOT / "profiles" / "input" / "fsh"
IMPOSE = "http://hl7.org/fhir/StructureDefinition/structuredefinition-imposeProfile"

PROFILES = {v for k, v in vars(canonical).items() if k.startswith("PROFILE_")}
EXTENSIONS = {v for k, v in vars(canonical).items() if k.startswith("EXT_") and v.startswith(canonical.BASE)}
RULES = {"cardinality", "binding", "fixed", "type", "unknown-element", "invalid-value"}
#: every invariant the brief and docs/design/fhir-model.md 2.3 require, plus our own keys for the other profiles
REQUIRED_INVARIANTS = {
    "thr-grp-1",
    "thr-grp-2",
    "thr-grp-3",
    "thr-grp-4",
    "thr-grp-5",
    "thr-goal-1",
    "thr-gbo-1",
    "thr-gbo-2",
    "thr-sp-1",
    "thr-sp-2",
    "thr-sp-3",
    "thr-sp-4",
    "thr-con-1",
    "thr-con-2",
    "thr-con-3",
    "thr-con-4",
    "thr-sr-1",
    "thr-sr-2",
    "thr-sr-3",
    "thr-task-1",
    "thr-task-2",
    "thr-prov-1",
    "thr-prov-2",
    "thr-aud-1",
    "thr-aud-2",
    "thr-aud-3",
    "thr-conf-1",  # an agency confirmation names one safety plan item
}
#: identifier system kind -> resource type, for the deterministic-id check (docs/design/fhir-model.md section 4)
ID_KINDS = (
    "grouping",
    "gbo-goal",
    "gbo-score",
    "safety-plan",
    "care-team",
    "sharing-consent",
    "signposting",
    "referral-task",
    "episode",
    "flag",
)


def _json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def structure_definitions() -> dict[str, dict]:
    return {sd["url"]: sd for sd in map(_json, sorted(GENERATED.glob("StructureDefinition-*.json")))}


def thr_invariants(profile_url: str) -> dict[str, str]:
    found = {}
    for element in structure_definitions()[profile_url]["snapshot"]["element"]:
        for c in element.get("constraint", []):
            if c["key"].startswith("thr-"):
                found[c["key"]] = c["expression"]
    return found


def failing_thr_invariants(resource: dict) -> set[str]:
    failing = set()
    for url in resource.get("meta", {}).get("profile", []):
        for key, expression in thr_invariants(url).items():
            if evaluate(resource, expression, {"resource": resource}, models["r4"]) != [True]:
                failing.add(key)
    return failing


# ---- the build itself -----------------------------------------------------------------------


def test_committed_json_matches_a_fresh_sushi_build():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_profiles.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Only the expected offline auto-dependency warnings: the script prints any other SUSHI warning.
    assert "SUSHI warn" not in proc.stderr, proc.stderr


def test_every_profile_is_generated_with_a_snapshot():
    sds = structure_definitions()
    assert {u for u, sd in sds.items() if sd["type"] != "Extension"} == PROFILES
    assert {u for u, sd in sds.items() if sd["type"] == "Extension"} == EXTENSIONS
    for url, sd in sds.items():
        assert sd["version"] == canonical.IG_VERSION and sd["fhirVersion"] == "4.0.1"
        assert sd["derivation"] == "constraint" and sd["snapshot"]["element"], url
        assert sd["baseDefinition"] == f"http://hl7.org/fhir/StructureDefinition/{sd['type']}"
        assert GENERATED.joinpath(f"StructureDefinition-{sd['id']}.json").exists()


def test_intended_uk_core_parent_is_recorded():
    for url, sd in structure_definitions().items():
        imposed = [e["valueCanonical"] for e in sd.get("extension", []) if e["url"] == IMPOSE]
        if sd["type"] in ("Goal", "Extension"):
            assert imposed == [], url  # UK Core has no Goal profile; an extension imposes no profile
        else:
            assert imposed == [canonical.ukcore(sd["type"])], url


def test_all_invariants_present_as_errors_with_descriptions():
    keys = {}
    for url in PROFILES:
        for element in structure_definitions()[url]["snapshot"]["element"]:
            for c in element.get("constraint", []):
                if c["key"].startswith("thr-"):
                    keys[c["key"]] = c
                    assert c["severity"] == "error" and len(c["human"]) > 20, c["key"]
    assert set(keys) == REQUIRED_INVARIANTS


def test_required_bindings_point_at_our_expanded_valuesets():
    bound = set()
    for sd in structure_definitions().values():
        for element in sd["differential"]["element"]:
            binding = element.get("binding")
            if binding and binding["valueSet"].startswith(canonical.BASE):
                bound.add(binding["valueSet"])
                assert (
                    ROOT / "terminology" / "expansions" / f"ValueSet-{binding['valueSet'].rsplit('/', 1)[1]}.json"
                ).exists()
    assert {
        canonical.VS_GROUPING,
        canonical.VS_INVOLVEMENT,
        canonical.VS_GBO_SCORE,
        canonical.VS_SAFETY_PLAN_SECTION,
        canonical.VS_LOCAL_OFFER,
    } <= bound


def test_sushi_config_and_aliases_match_canonical():
    config = (ROOT / "profiles" / "sushi-config.yaml").read_text(encoding="utf-8")
    assert re.search(r"^canonical: (\S+)$", config, re.M).group(1) == canonical.BASE
    assert re.search(r"^version: (\S+)$", config, re.M).group(1) == canonical.IG_VERSION
    assert not re.search(r"^dependencies:", config, re.M)
    aliases = dict(re.findall(r"^Alias: (\$\S+) = (\S+)$", (FSH / "aliases.fsh").read_text(encoding="utf-8"), re.M))
    project = {k: v for k, v in aliases.items() if k.startswith("$thr-")}
    assert project, "no project aliases found"
    for name, url in project.items():
        assert url.startswith(canonical.BASE + "/"), name
        if name.startswith("$thr-id-"):
            assert url == canonical.id_system(name.removeprefix("$thr-id-")), name
    assert project["$thr-policy-isa"] == canonical.SHARING_POLICY


def test_project_urls_in_fsh_are_known_canonicals():
    known = {v for v in vars(canonical).values() if isinstance(v, str)} | {canonical.id_system(k) for k in ID_KINDS}
    for path in FSH.rglob("*.fsh"):
        for url in re.findall(r"https://thrive-fhir\.org/fhir[^\s'\")]*", path.read_text(encoding="utf-8")):
            assert url.startswith(canonical.BASE)
            assert url in known or url.startswith(canonical.BASE + "/Id/") or "/source/" in url, (path.name, url)


# ---- examples ----------------------------------------------------------------------------------


def _examples() -> list[dict]:
    return [_json(p) for p in sorted(EXAMPLES.glob("*.json"))]


def test_every_profile_has_a_valid_example():
    claimed = {url for ex in _examples() for url in ex.get("meta", {}).get("profile", [])}
    assert claimed == PROFILES


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.json")), ids=lambda p: p.name)
def test_example_passes_every_thr_invariant(path):
    assert failing_thr_invariants(_json(path)) == set()


def test_example_ids_are_deterministic_from_identifiers():
    checked = 0
    for ex in _examples():
        for identifier in ex.get("identifier", []):
            kind = identifier.get("system", "").removeprefix(canonical.BASE + "/Id/")
            if kind in ID_KINDS:
                assert ex["id"] == ids.resource_id(kind, identifier["value"]), ex["id"]
                checked += 1
    assert checked >= 12
    # Provenance has no identifier: its id comes from the outbox row id of the save (1042 here).
    provenance = next(ex for ex in _examples() if ex["resourceType"] == "Provenance")
    assert provenance["id"] == ids.resource_id("provenance", "1042")


def test_examples_are_synthetic():
    patients = [ex for ex in _examples() if ex["resourceType"] == "Patient"]
    for patient in patients:
        for identifier in patient["identifier"]:
            if identifier["system"] == canonical.NHS_NUMBER:
                assert ids.is_test_nhs_number(identifier["value"]) and ids.is_valid_nhs_number(identifier["value"])


# ---- invalid fixtures ----------------------------------------------------------------------------


def _expected(folder: Path) -> dict[str, list[dict]]:
    return _json(folder / "expected.json")


@pytest.mark.parametrize("folder", [INVALID, INVALID / "app"], ids=["resources", "app"])
def test_expected_json_lists_every_fixture_in_the_documented_format(folder):
    expected = _expected(folder)
    files = {p.name for p in folder.glob("*.json")} - {"expected.json"}
    assert set(expected) == files
    for name, issues in expected.items():
        assert issues, name
        for issue in issues:
            assert set(issue) == {"expression", "rule"}, name
            root = "Bundle" if folder.name == "app" else _json(folder / name)["resourceType"]
            assert issue["expression"].split(".")[0].split("[")[0] == root, name
            if folder.name == "app":
                assert issue["rule"].startswith("app-"), name
            else:
                assert issue["rule"] in RULES or re.fullmatch(r"[a-z]+-\d+|thr-[a-z]+-\d+", issue["rule"]), name


def test_fixture_coverage_per_profile():
    counts: dict[str, int] = {}
    for name in _expected(INVALID):
        for url in _json(INVALID / name)["meta"]["profile"]:
            counts[url] = counts.get(url, 0) + 1
    assert set(counts) == PROFILES
    for url in (
        canonical.PROFILE_GROUPING,
        canonical.PROFILE_GBO_GOAL,
        canonical.PROFILE_GBO_SCORE,
        canonical.PROFILE_SAFETY_PLAN,
        canonical.PROFILE_CONSENT,
    ):
        assert counts[url] >= 3, url
    rules = {i["rule"] for issues in _expected(INVALID).values() for i in issues}
    assert RULES <= rules  # every non-invariant rule kind is exercised
    assert REQUIRED_INVARIANTS <= rules  # and every invariant


@pytest.mark.parametrize("name", sorted(_json(INVALID / "expected.json")))
def test_invalid_fixture_breaks_exactly_the_listed_invariants(name):
    resource = _json(INVALID / name)
    listed = {i["rule"] for i in _expected(INVALID)[name] if i["rule"].startswith("thr-")}
    assert failing_thr_invariants(resource) == listed


@pytest.mark.parametrize("name", sorted(_json(INVALID / "app" / "expected.json")))
def test_app_fixture_resources_pass_their_own_invariants(name):
    bundle = _json(INVALID / "app" / name)
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    for entry in bundle["entry"]:
        assert failing_thr_invariants(entry["resource"]) == set(), entry["fullUrl"]
