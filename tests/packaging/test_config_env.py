"""App configuration for deployment: environment variables override the file; secrets by file."""

from __future__ import annotations

from pathlib import Path

import pytest

from smart_app.config import ConfigError, apply_environment, load_config, load_config_file


def _secret(tmp_path: Path, name="app-secret") -> Path:
    p = tmp_path / name
    p.write_bytes(b"s" * 40)
    return p


def test_environment_alone_configures_the_app(tmp_path):
    dburl = tmp_path / "db-url"
    dburl.write_text("postgresql+psycopg://thrive:pw@db.internal/thrive\n")
    cfg = load_config(
        None,
        environ={
            "THRIVE_APP_SECRET_KEY_FILE": str(_secret(tmp_path)),
            "THRIVE_APP_DATABASE_URL_FILE": str(dburl),
            "THRIVE_APP_ODS_CODE": "RYY",
            "THRIVE_APP_JOURNEYS": "false",
            "THRIVE_APP_PUBLIC_BASE_URL": "https://thrive.example.nhs.uk",
        },
    )
    assert cfg.database_url == "postgresql+psycopg://thrive:pw@db.internal/thrive"
    assert cfg.secret_key == b"s" * 40
    assert cfg.ods_code == "RYY" and cfg.journeys is False
    assert cfg.public_base_url == "https://thrive.example.nhs.uk"


def test_environment_overrides_the_file(tmp_path):
    _secret(tmp_path)
    f = tmp_path / "app.toml"
    f.write_text('secret_key_file = "app-secret"\ndatabase_url = "sqlite:///file.db"\nods_code = "RXX"\n')
    assert load_config_file(f, environ={}).ods_code == "RXX"
    cfg = load_config_file(f, environ={"THRIVE_APP_ODS_CODE": "RZZ", "THRIVE_APP_DATABASE_URL": "sqlite:///env.db"})
    assert cfg.ods_code == "RZZ" and cfg.database_url == "sqlite:///env.db"


def test_env_database_url_wins_over_a_file_database_url_file(tmp_path):
    raw = apply_environment({"database_url_file": "x"}, {"THRIVE_APP_DATABASE_URL": "sqlite:///e.db"})
    assert raw == {"database_url": "sqlite:///e.db"}


def test_secrets_are_not_taken_from_the_environment(tmp_path):
    raw = apply_environment({}, {"THRIVE_APP_SECRET_KEY": "x" * 40, "THRIVE_APP_CLIENT_SECRET": "y"})
    assert raw == {}


def test_bad_environment_values_name_the_variable():
    with pytest.raises(ConfigError, match="THRIVE_APP_JOURNEYS"):
        apply_environment({}, {"THRIVE_APP_JOURNEYS": "maybe"})
    with pytest.raises(ConfigError, match="THRIVE_APP_SESSION_MAX_HOURS"):
        apply_environment({}, {"THRIVE_APP_SESSION_MAX_HOURS": "ten"})


def test_client_secret_from_a_file(tmp_path):
    _secret(tmp_path)
    (tmp_path / "ehr-secret").write_text("s3cr3t-from-file\n")
    f = tmp_path / "app.toml"
    f.write_text(
        'secret_key_file = "app-secret"\n[[ehr]]\niss = "https://ehr.example.nhs.uk/fhir"\n'
        'client_id = "thrive"\nauth_method = "client_secret_basic"\nclient_secret_file = "ehr-secret"\n'
    )
    cfg = load_config_file(f, environ={})
    (reg,) = cfg.ehrs.values()
    assert reg.client_secret == "s3cr3t-from-file"


def test_unreadable_secret_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="database_url_file: cannot read"):
        load_config(
            None,
            environ={
                "THRIVE_APP_SECRET_KEY_FILE": str(_secret(tmp_path)),
                "THRIVE_APP_DATABASE_URL_FILE": str(tmp_path / "missing"),
            },
        )
