"""Compiled tables are cached on disk and reused; a changed input rebuilds them."""

from __future__ import annotations

import shutil

from thrive_fhir.validation import Validator
from thrive_fhir.validation.cache import REPO_ROOT, Sources


def test_tables_are_built_once_then_loaded(tmp_path, monkeypatch):
    monkeypatch.setenv("THRIVE_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "proj"
    shutil.copytree(REPO_ROOT / "profiles" / "generated", root / "profiles" / "generated")
    shutil.copytree(REPO_ROOT / "terminology", root / "terminology")
    first = Validator.from_sources(Sources.default(root))
    assert first.loaded_from_cache is False
    second = Validator.from_sources(Sources.default(root))
    assert second.loaded_from_cache is True
    assert second.startup_seconds < first.startup_seconds
    assert second.own_profiles == first.own_profiles and len(first.own_profiles) >= 10
    # editing a profile invalidates the cache
    sd = next((root / "profiles" / "generated").glob("StructureDefinition-*.json"))
    sd.write_text(sd.read_text().replace('"status"', ' "status"', 1))
    assert Validator.from_sources(Sources.default(root)).loaded_from_cache is False
    # without project profiles the validator still knows base R4, and says our profiles are unknown
    bare = Validator.from_sources(Sources.default(tmp_path / "empty"))
    assert not bare.own_profiles and "Observation" in bare.tables.resources


def test_skipped_bindings_are_documented():
    skipped = Validator.default().skipped_bindings
    assert "http://hl7.org/fhir/ValueSet/mimetypes" in skipped
    assert all(reason for reason in skipped.values())
