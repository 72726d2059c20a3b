"""THRIVE terminology: CodeSystems, ValueSet expansions, grouping translation and the CLI.

Expected codes are written out here from docs/design/fhir-model.md (not read back from the JSON), so a change
to the FSH that drops or adds a code fails a test.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from thrive_fhir import canonical, terminology
from thrive_fhir.cli.terminology_cmd import terminology as terminology_cli
from thrive_fhir.terminology import loader

ROOT = Path(__file__).resolve().parents[2]
TERM_DIR = ROOT / "terminology"
SYNONYM = ("http://snomed.info/sct", "900000000000013009")

GROUPINGS = {
    "thriving": "Thriving",
    "getting-advice": "Getting Advice and Signposting",
    "getting-help": "Getting Help",
    "getting-more-help": "Getting More Help",
    "getting-risk-support": "Getting Risk Support",
}

#: received label -> canonical code (docs/design/fhir-model.md 1.3), including case and punctuation variants
TRANSLATIONS = {
    "thriving": "thriving",
    "THRIVING": "thriving",
    "Getting Advice and Signposting": "getting-advice",
    "getting advice & signposting": "getting-advice",
    "Getting-Advice-and-Signposting": "getting-advice",
    "Getting Advice": "getting-advice",
    "getting_advice": "getting-advice",
    "Coping": "getting-advice",
    " coping. ": "getting-advice",
    "Getting Help": "getting-help",
    "getting-help": "getting-help",
    "Getting More Help": "getting-more-help",
    "GETTING   MORE HELP": "getting-more-help",
    "Getting Additional Help": "getting-more-help",
    "getting-additional-help": "getting-more-help",
    "Getting Risk Support": "getting-risk-support",
    "getting risk support!": "getting-risk-support",
}

EXPECTED_VALUESETS = {
    canonical.VS_GROUPING: {(canonical.CS_GROUPING, c) for c in GROUPINGS},
    canonical.VS_INVOLVEMENT: {
        (canonical.CS_INVOLVEMENT, c)
        for c in ("agreed", "partly-agreed", "not-agreed", "not-involved", "not-applicable")
    },
    canonical.VS_CHANGE_REASON: {
        (canonical.CS_CHANGE_REASON, c)
        for c in (
            "needs-changed",
            "goals-achieved",
            "not-benefiting",
            "risk-increased",
            "risk-reduced",
            "yp-or-family-choice",
            "service-change",
            "other",
        )
    },
    canonical.VS_GBO_SCORE: {
        (canonical.SNOMED, c) for c in ("1638531000000102", "1638541000000106", "1638551000000109")
    },
    canonical.VS_GBO_SCORE_ANY: {
        (canonical.SNOMED, c)
        for c in (
            "1638531000000102",
            "1638541000000106",
            "1638551000000109",
            "1034351000000101",
            "1034361000000103",
            "1034371000000105",
            "959951000000108",
        )
    },
    canonical.VS_SAFETY_PLAN_SECTION: {
        (canonical.CS_SAFETY_PLAN_SECTION, c)
        for c in (
            "warning-signs",
            "internal-coping",
            "social-distraction",
            "people-to-ask",
            "professionals-agencies",
            "safe-environment",
            "reasons-for-living",
            "agency-actions",
        )
    },
    canonical.VS_SDM_PARTICIPANT: {
        (canonical.CS_SDM_PARTICIPANT, c)
        for c in (
            "young-person",
            "parent-carer",
            "clinician",
            "school",
            "social-care",
            "youth-justice",
            "voluntary-sector",
            "other-agency",
        )
    },
    canonical.VS_GROUPING_METHOD: {
        (canonical.CS_CONCEPTS, "shared-decision-making"),
        (canonical.CS_CONCEPTS, "decided-without-agreement"),
    },
    canonical.VS_REQUEST_CATEGORY: {(canonical.CS_CONCEPTS, "signposting"), (canonical.CS_CONCEPTS, "referral")},
    canonical.VS_RECORDED_OBSERVATION_STATUS: {
        ("http://hl7.org/fhir/observation-status", c) for c in ("final", "amended", "corrected", "entered-in-error")
    },
}

OUR_CODESYSTEMS = {
    canonical.CS_GROUPING: "active",
    canonical.CS_GROUPING_VARIANTS: "active",
    canonical.CS_CONCEPTS: "active",
    canonical.CS_INVOLVEMENT: "draft",  # proposal awaiting clinical sign-off
    canonical.CS_CHANGE_REASON: "draft",  # proposal awaiting clinical sign-off
    canonical.CS_SAFETY_PLAN_SECTION: "active",
    canonical.CS_SDM_PARTICIPANT: "active",
    canonical.CS_DECISION_COMPETENCE: "draft",  # proposal awaiting clinical sign-off
    canonical.local_offer_cs("example"): "active",
}


def _files(pattern: str) -> list[dict]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(TERM_DIR.glob(pattern))]


# ---- grouping translation -------------------------------------------------------------------


@pytest.mark.parametrize(("label", "code"), sorted(TRANSLATIONS.items()))
def test_translate_known_labels(label, code):
    assert terminology.translate_grouping(label) == code


def test_every_display_and_synonym_in_the_codesystem_translates():
    cs = terminology.load().codesystem(canonical.CS_GROUPING)
    seen = 0
    for concept in cs["concept"]:
        for name in [concept["code"], concept["display"], *(d["value"] for d in concept.get("designation", []))]:
            for variant in (name, name.upper(), name.lower(), f"  {name}  ", name.replace(" ", "_")):
                assert terminology.translate_grouping(variant) == concept["code"], variant
            seen += 1
    assert seen == 5 + 5 + 3  # codes, displays, synonyms (Getting Advice, Coping, Getting Additional Help)


def test_every_conceptmap_entry_translates_to_its_target():
    cm = terminology.load().conceptmap(canonical.CM_GROUPING_VARIANTS)
    mapped = 0
    for element in cm["group"][0]["element"]:
        target = element["target"][0]
        if target["equivalence"] == "unmatched":
            with pytest.raises(terminology.UnmatchedGrouping):
                terminology.translate_grouping(element["code"])
        else:
            assert terminology.translate_grouping(element["code"]) == target["code"]
            mapped += 1
    assert mapped == 9


@pytest.mark.parametrize(
    "label",
    [
        "Getting Some Help",
        "Level 3",
        "getting helps",
        "risk",
        "Getting Advice and",
        "Specialist CAMHS",
        "Quadrant 1",
        "quadrant-4",
        "Getting Help / Getting More Help",
        "1",
        "",
        "   ",
        "---",
    ],
)
def test_unmatched_labels_are_rejected_never_guessed(label):
    with pytest.raises(terminology.UnmatchedGrouping) as info:
        terminology.translate_grouping(label)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "is not a THRIVE grouping" in message
    assert repr(label) in message
    for display in GROUPINGS.values():
        assert display in message  # the accepted labels are listed
    assert "\n" not in message
    assert info.value.accepted[:1] == ["Thriving"]


def test_quadrant_numbers_say_why_they_are_refused():
    with pytest.raises(terminology.UnmatchedGrouping, match="ambiguous"):
        terminology.translate_grouping("Quadrant 2")


@pytest.mark.parametrize("label", [None, 3, ["Getting Help"]])
def test_non_text_labels_are_rejected(label):
    with pytest.raises(terminology.UnmatchedGrouping, match="not text"):
        terminology.translate_grouping(label)  # type: ignore[arg-type]


def test_translate_grouping_coding():
    assert terminology.translate_grouping_coding("coping") == {
        "system": canonical.CS_GROUPING,
        "code": "getting-advice",
        "display": "Getting Advice and Signposting",
    }


def test_normalise_label_keeps_digits_and_collapses_punctuation():
    assert terminology.normalise_label("  Getting Advice & Signposting ") == "getting-advice-signposting"
    assert terminology.normalise_label("Quadrant 3") == "quadrant-3"


# ---- CodeSystems ------------------------------------------------------------------------------


def test_groupings_are_the_five_in_codesystem_order_with_definitions():
    rows = terminology.groupings()
    assert [r.code for r in rows] == list(canonical.GROUPINGS)
    assert {r.code: r.display for r in rows} == GROUPINGS
    assert all(len(r.definition) > 40 for r in rows)
    assert rows[4].definition.startswith("Not benefiting from, or not able to use, help")


def test_groupings_have_no_order_property_or_hierarchy():
    cs = terminology.load().codesystem(canonical.CS_GROUPING)
    assert "property" not in cs and "hierarchyMeaning" not in cs
    for concept in cs["concept"]:
        assert "property" not in concept, concept["code"]
        assert "concept" not in concept, concept["code"]
        for designation in concept.get("designation", []):
            assert (designation["use"]["system"], designation["use"]["code"]) == SYNONYM


def test_synonyms_are_designations():
    cs = terminology.load().codesystem(canonical.CS_GROUPING)
    synonyms = {c["code"]: sorted(d["value"] for d in c.get("designation", [])) for c in cs["concept"]}
    assert synonyms == {
        "thriving": [],
        "getting-advice": ["Coping", "Getting Advice"],
        "getting-help": [],
        "getting-more-help": ["Getting Additional Help"],
        "getting-risk-support": [],
    }


def test_codesystem_metadata_and_canonical_urls():
    found = {cs["url"]: cs for cs in _files("CodeSystem-*.json")}
    assert set(found) == set(OUR_CODESYSTEMS)
    for url, cs in found.items():
        assert url == canonical.cs(cs["id"])
        assert cs["status"] == OUR_CODESYSTEMS[url], url
        assert cs["version"] == canonical.IG_VERSION
        assert cs["caseSensitive"] is True and cs["content"] == "complete"
        assert cs["count"] == len(cs["concept"])
        for concept in cs["concept"]:
            assert concept.get("display") and concept.get("definition"), (url, concept["code"])


def test_display_and_definition_lookups():
    assert terminology.display(canonical.CS_GROUPING, "getting-help") == "Getting Help"
    assert terminology.definition(canonical.CS_GROUPING, "thriving").startswith("Doing OK")
    assert terminology.display(canonical.CS_CONCEPTS, "thrive-grouping") == "THRIVE needs-based grouping"
    assert terminology.display(canonical.SNOMED, canonical.GBO_SCORE_CODES[2][0]) == canonical.GBO_SCORE_CODES[2][1]
    assert terminology.display(canonical.CS_SAFETY_PLAN_SECTION, "agency-actions") == "What each agency will do"
    assert terminology.display(canonical.CS_GROUPING, "getting-some-help") is None
    assert terminology.definition("http://example.org/unknown", "x") is None


def test_conceptmap_metadata():
    (cm,) = _files("ConceptMap-*.json")
    assert cm["url"] == canonical.CM_GROUPING_VARIANTS
    assert cm["version"] == canonical.IG_VERSION and cm["status"] == "active"
    group = cm["group"][0]
    assert (group["source"], group["target"]) == (canonical.CS_GROUPING_VARIANTS, canonical.CS_GROUPING)
    variants = terminology.load().codesystem(canonical.CS_GROUPING_VARIANTS)
    assert [e["code"] for e in group["element"]] == [c["code"] for c in variants["concept"]]
    additional = next(e for e in group["element"] if e["code"] == "getting-additional-help")
    assert "confirm" in additional["target"][0]["comment"]


# ---- ValueSets -----------------------------------------------------------------------------


@pytest.mark.parametrize("url", sorted(EXPECTED_VALUESETS))
def test_valueset_expansion_is_exactly_the_intended_codes(url):
    assert terminology.expand(url) == frozenset(EXPECTED_VALUESETS[url])


def test_local_offer_includes_the_example_site():
    codes = {c for _, c in terminology.expand(canonical.VS_LOCAL_OFFER)}
    example = terminology.load().codesystem(canonical.local_offer_cs("example"))
    assert codes == {c["code"] for c in example["concept"]}
    assert {"crisis-line", "mhst", "cyp-iapt-therapy", "personal-health-budget", "ambit-multi-agency"} <= codes


def test_gbo_valuesets_match_canonical_codes():
    assert {c for _, c in terminology.expand(canonical.VS_GBO_SCORE)} == {
        code for code, _ in canonical.GBO_SCORE_CODES.values()
    }
    assert {c for _, c in terminology.expand(canonical.VS_GBO_SCORE_ANY)} == (
        {code for code, _ in canonical.GBO_SCORE_CODES.values()} | set(canonical.GBO_SCORE_CODES_LEGACY)
    )


def test_every_valueset_file_is_a_canonical_constant_with_a_committed_expansion():
    constants = {v for k, v in vars(canonical).items() if k.startswith("VS_")}
    files = {vs["url"]: vs for vs in _files("ValueSet-*.json")}
    assert set(files) == constants
    for url, vs in files.items():
        assert vs["version"] == canonical.IG_VERSION
        path = TERM_DIR / "expansions" / f"ValueSet-{vs['id']}.json"
        expanded = json.loads(path.read_text(encoding="utf-8"))
        contains = expanded["expansion"]["contains"]
        assert expanded["expansion"]["total"] == len(contains)
        assert {(c["system"], c["code"]) for c in contains} == set(terminology.expand(url))
        assert all(c.get("display") for c in contains), url


def test_unknown_valueset_is_an_error():
    with pytest.raises(terminology.TerminologyMissing, match="no ValueSet"):
        terminology.expand(canonical.vs("no-such-valueset"))


def test_missing_terminology_folder_gives_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv(loader.ENV_DIR, str(tmp_path))
    with pytest.raises(terminology.TerminologyMissing, match=re.escape("build_profiles.py")):
        loader.terminology_dir()


# ---- CLI -----------------------------------------------------------------------------------


def _run(*args: str):
    return CliRunner().invoke(terminology_cli, list(args))


def test_cli_groupings_lists_the_five():
    result = _run("groupings")
    assert result.exit_code == 0
    lines = [ln for ln in result.output.splitlines() if not ln.startswith("\t")]
    assert [ln.split("\t")[0] for ln in lines] == list(canonical.GROUPINGS)


def test_cli_translate_and_json():
    result = _run("translate", "Getting Additional Help")
    assert result.exit_code == 0 and result.output == "getting-more-help\tGetting More Help\n"
    result = _run("translate", "--json", "coping")
    assert json.loads(result.output)["code"] == "getting-advice"


def test_cli_translate_unmatched_is_one_line_exit_1():
    result = _run("translate", "Level 2")
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1
    assert "'Level 2' is not a THRIVE grouping" in result.output
    assert "Traceback" not in result.output


def test_cli_lookup():
    result = _run("lookup", "thrive-grouping", "getting-risk-support")
    assert result.exit_code == 0
    assert f"{canonical.CS_GROUPING}#getting-risk-support\tGetting Risk Support" in result.output
    assert _run("lookup", "sct", "736253002").exit_code == 1  # SNOMED code we do not enumerate
    result = _run("lookup", "thrive-grouping", "level-4")
    assert result.exit_code == 1 and "not found" in result.output


@pytest.mark.parametrize("command", [[], ["groupings"], ["lookup"], ["translate"]])
def test_cli_help(command):
    result = _run(*command, "--help")
    assert result.exit_code == 0 and "Usage:" in result.output
