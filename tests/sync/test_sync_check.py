"""`thrive sync check` against stores that differ: our store (easy case), sekmet-fhir, and our store in
quirks mode as Medplum (non-atomic, no client ids, empty errors, first-wildcard scope)."""

from __future__ import annotations

import requests
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.sync_quirks import QuirksStoreProcess
from thrive_fhir.cli.sync_cmd import sync as sync_cli


def _probe_leftovers(base, headers=None) -> int:
    """Probe Organizations still readable in the store (searched by the probe's name)."""
    r = requests.get(
        f"{base}/Organization", params={"name": "thrive sync check probe", "_count": 500}, headers=headers, timeout=30
    )
    r.raise_for_status()
    return len(r.json().get("entry") or [])


def _check(tmp_path, base, extra=""):
    cfg = tmp_path / "check.toml"
    cfg.write_text(f'fhir_base = "{base}"\n' + extra)
    return CliRunner().invoke(sync_cli, ["check", "--config", str(cfg)])


def test_check_names_the_settings_each_store_needs(target, tmp_path):
    cfg = tmp_path / "check.toml"
    cfg.write_text(target.config("sqlite://"))
    res = CliRunner().invoke(sync_cli, ["check", "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    assert "probe resources deleted" in res.output
    lines = res.output.splitlines()

    def said(name, word):
        return any(line.startswith(name) and f" {word} " in line for line in lines)

    if target.kind in ("sekmet", "own"):
        assert said("client-ids", "yes") and said("atomic-transactions", "yes") and said("if-match", "yes"), res.output
        assert "use: id_mode = deterministic" in res.output and "atomic_transactions = true" in res.output
    if target.kind == "medplum-like":
        assert said("client-ids", "NO") and said("atomic-transactions", "NO"), res.output
        assert "use: id_mode = identifier" in res.output and "atomic_transactions = false" in res.output
    if target.kind == "own":  # a name search we know it supports
        assert _probe_leftovers(target.base_url) == 0


def test_check_on_a_medplum_like_store_names_identifier_mode_and_the_scope(tmp_path):
    server = QuirksStoreProcess(tmp_path / "s", "medplum").start()
    try:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        (tmp_path / "key.pem").write_bytes(pem)
        auth = (
            f'[auth]\ntype = "backend-services"\nclient_id = "c"\nprivate_key_file = "{tmp_path / "key.pem"}"\n'
            f'kid = "k"\n'
        )
        res = _check(tmp_path, server.base_url, auth + 'scope = "system/*.rs system/*.cu"\n')
        assert res.exit_code == 1, res.output
        assert "FIRST wildcard scope" in res.output and "REFUSED (403)" in res.output
        res = _check(tmp_path, server.base_url, auth + 'scope = "system/*.cruds"\n')
        assert res.exit_code == 0, res.output
        out = res.output
        assert any(line.startswith("client-ids") and " NO " in line for line in out.splitlines()), out
        assert any(line.startswith("atomic-transactions") and " NO " in line for line in out.splitlines()), out
        assert "use: id_mode = identifier, identifier_create = conditional-update, atomic_transactions = false" in out
        assert "max_entries = 50" in out  # the 100-entry Bundle is refused (at most 50 updates)
        assert "probe resources deleted" in out
    finally:
        server.stop()
