"""The local services directory: loading, checking and turning it into FHIR."""

from __future__ import annotations

import json

import pytest

from smart_app import directory
from thrive_fhir import canonical


def test_example_directory_loads_and_maps_every_grouping():
    d = directory.load()
    assert d.site == "example" and d.code_system == canonical.local_offer_cs("example")
    for g in canonical.GROUPINGS:
        matched, others = d.services_for(g)
        assert matched, g
        assert len(matched) + len(others) == len(d.services)
    # synthetic only: Ofcom drama ranges, invented names
    for s in d.services:
        assert s.phone.replace(" ", "").startswith(("01632960", "0808157", "07700900")), s.phone
    assert {a.kind for a in d.agencies} >= {"school", "social-care", "youth-justice", "voluntary-sector"}


def test_directory_becomes_valid_organizations_and_healthcareservices(validator):
    d = directory.load()
    resources = directory.to_fhir(d)
    types = [r["resourceType"] for r in resources]
    assert types.count("Organization") == len(d.agencies) and types.count("HealthcareService") == len(d.services)
    for r in resources:
        oo = validator.validate(r)
        assert not [i for i in oo.get("issue", []) if i["severity"] in ("error", "fatal")], (r["id"], oo)
    # ids are stable: loading again gives the same resources
    assert [r["id"] for r in directory.to_fhir(directory.load())] == [r["id"] for r in resources]
    crisis = next(
        r
        for r in resources
        if r["resourceType"] == "HealthcareService" and r["type"][0]["coding"][0]["code"] == "crisis-line"
    )
    assert {c["coding"][0]["code"] for c in crisis["characteristic"]} == set(canonical.GROUPINGS)
    assert directory.service_ref(d, d.service("crisis-line")) == f"HealthcareService/{crisis['id']}"


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["services"][0].update(groupings=["severe"]), "'severe' is not a THRIVE grouping code"),
        (lambda d: d["services"][0].update(organisation="nobody"), "'organisation' 'nobody' is not in 'organisations'"),
        (lambda d: d["organisations"][0].update(kind="spaceship"), "'kind' must be one of"),
        (lambda d: d["services"].append(dict(d["services"][0])), "is used twice"),
        (lambda d: d["services"][0].update(phone="call me"), "is not a phone number"),
        (lambda d: d["services"][0].update(website="http://insecure.example"), "must start with https://"),
        (lambda d: d.update(site="Not A Site"), "'site' must be a short lower-case code"),
    ],
)
def test_bad_directory_entries_are_named_in_one_clear_line(tmp_path, mutate, message):
    data = json.loads(directory.EXAMPLE_PATH.read_text())
    mutate(data)
    path = tmp_path / "dir.json"
    path.write_text(json.dumps(data))
    with pytest.raises(directory.DirectoryError) as err:
        directory.load(path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_unreadable_directory_files(tmp_path):
    bad_json = tmp_path / "a.json"
    bad_json.write_text("{ not json")
    with pytest.raises(directory.DirectoryError, match="not valid JSON"):
        directory.load(bad_json)
    latin = tmp_path / "b.json"
    latin.write_bytes(b'{"site": "caf\xe9"}')
    with pytest.raises(directory.DirectoryError, match="not UTF-8"):
        directory.load(latin)
    with pytest.raises(directory.DirectoryError, match="cannot read"):
        directory.load(tmp_path / "missing.json")


def test_app_uses_the_configured_directory(tmp_path):
    from smart_app import create_app
    from tests.support.app import make_launch, test_config

    data = json.loads(directory.EXAMPLE_PATH.read_text())
    data["services"] = [s for s in data["services"] if s["code"] in ("crisis-line", "mhst")]
    path = tmp_path / "local.json"
    path.write_text(json.dumps(data))
    import os

    os.environ["THRIVE_DIRECTORY"] = str(path)
    try:
        app = create_app(test_config(tmp_path))
    finally:
        del os.environ["THRIVE_DIRECTORY"]
    launch = make_launch(app)
    page = launch.client().get(launch.url("services/"), base_url="https://localhost").get_data(as_text=True)
    assert page.count('name="service" type="radio"') == 2


def test_config_directory_field_wins_over_the_environment(tmp_path, monkeypatch):
    from smart_app import create_app
    from smart_app.config import ConfigError, parse_config
    from tests.support.app import make_launch, test_config

    data = json.loads(directory.EXAMPLE_PATH.read_text())
    data["services"] = [s for s in data["services"] if s["code"] == "crisis-line"]
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "one.json").write_text(json.dumps(data))
    monkeypatch.setenv("THRIVE_DIRECTORY", str(directory.EXAMPLE_PATH))
    # a relative path resolves from the config file's folder
    cfg = parse_config(test_config(tmp_path, directory="one.json"), base_dir=tmp_path / "conf")
    assert cfg.directory == str((tmp_path / "conf" / "one.json").resolve())
    app = create_app(cfg)
    launch = make_launch(app)
    page = launch.client().get(launch.url("services/"), base_url="https://localhost").get_data(as_text=True)
    assert page.count('name="service" type="radio"') == 1
    with pytest.raises(ConfigError, match=r"directory: .*missing\.json does not exist"):
        parse_config(test_config(tmp_path, directory="missing.json"), base_dir=tmp_path)
    with pytest.raises(ConfigError, match="directory: expected"):
        parse_config(test_config(tmp_path, directory=""), base_dir=tmp_path)
