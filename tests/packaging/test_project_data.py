"""Where the generated FHIR data is read from (thrive_fhir.project_data), and that the wheel's
copy covers everything the code reads."""

from __future__ import annotations

import shutil

from thrive_fhir import project_data
from thrive_fhir.terminology.loader import terminology_dir
from thrive_fhir.validation.cache import Sources


def test_checkout_is_used_in_a_checkout(monkeypatch):
    monkeypatch.delenv(project_data.ENV_ROOT, raising=False)
    assert project_data.data_root() == project_data.CHECKOUT_ROOT


def test_packaged_copy_is_used_without_a_checkout(monkeypatch, tmp_path):
    """Simulates an installed wheel: no data next to the package, a copy under _data."""
    real_checkout = project_data.CHECKOUT_ROOT
    fake_pkg = tmp_path / "site" / "thrive_fhir"
    for folder, pattern in project_data.SHIPPED.items():
        (fake_pkg / "_data" / folder).mkdir(parents=True, exist_ok=True)
        for f in (project_data.CHECKOUT_ROOT / folder).glob(pattern):
            shutil.copy(f, fake_pkg / "_data" / folder / f.name)
    monkeypatch.delenv(project_data.ENV_ROOT, raising=False)
    monkeypatch.delenv("THRIVE_TERMINOLOGY_DIR", raising=False)
    monkeypatch.setattr(project_data, "CHECKOUT_ROOT", tmp_path / "site")
    monkeypatch.setattr(project_data, "PACKAGED_ROOT", fake_pkg / "_data")
    assert project_data.data_root() == fake_pkg / "_data"
    assert terminology_dir() == fake_pkg / "_data" / "terminology"
    src = Sources.default()
    assert len(src.profile_files) == len(list((real_checkout / "profiles" / "generated").glob("*.json")))
    assert all(str(f).startswith(str(fake_pkg)) for f in src.profile_files + src.term_files + src.expansion_files)


def test_shipped_patterns_cover_every_file_the_validator_reads(monkeypatch):
    monkeypatch.delenv(project_data.ENV_ROOT, raising=False)
    src = Sources.default()
    root = project_data.CHECKOUT_ROOT
    shipped = {f for folder, pattern in project_data.SHIPPED.items() for f in (root / folder).glob(pattern)}
    read = set(src.profile_files) | set(src.term_files) | set(src.expansion_files)
    assert read and read <= shipped
