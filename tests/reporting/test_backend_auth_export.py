"""$export through SMART Backend Services auth: against sekmet-fhir's real token endpoint, and against our own
store (`thrive store serve --auth-issuer`) trusting the sandbox authorization server over HTTP."""

from __future__ import annotations

import json
import uuid

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.support.servers import SekmetProcess
from thrive_fhir.reporting.bulk_client import BulkError, download

CLIENT_ID = "thrive-report-test"
KID = "report-key-1"


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid=KID, alg="RS384", use="sig")
    workdir = tmp_path_factory.mktemp("sekmet")
    server = SekmetProcess(
        workdir,
        server_auth={
            "types": ["smart"],
            "smart_clients": [{"client_id": CLIENT_ID, "jwks": {"keys": [jwk]}, "scopes": "system/*.rs system/*.cu"}],
            "token_lifetime": 300,
        },
    ).start()
    key_file = workdir / "client.pem"
    key_file.write_bytes(pem)
    try:
        yield server, key_file
    finally:
        server.stop()


@pytest.mark.slow
def test_export_with_backend_services_token(secured, tmp_path):
    server, key_file = secured
    auth = {"client_id": CLIENT_ID, "key_file": str(key_file), "kid": KID, "scope": "system/*.rs system/*.cu"}
    from thrive_fhir.reporting.bulk_client import make_auth

    token_header = make_auth(server.base_url, auth).header()
    pid = str(uuid.uuid4())
    put = requests.put(
        f"{server.base_url}/Patient/{pid}",
        json={"resourceType": "Patient", "id": pid, "gender": "female"},
        headers={**token_header, "Content-Type": "application/fhir+json"},
        timeout=30,
    )
    assert put.status_code in (200, 201)
    with pytest.raises(BulkError) as err:  # no token: refused, and said plainly
        download(server.base_url, tmp_path / "anon", types=["Patient"], mode="bulk")
    assert "refused" in str(err.value)
    result = download(server.base_url, tmp_path / "ok", types=["Patient"], auth=auth)
    ids = {json.loads(line)["id"] for f in result["files"] for line in open(f) if line.strip()}
    assert pid in ids


@pytest.fixture(scope="module")
def own_store(tmp_path_factory):
    """Our store (``thrive store serve --auth-issuer``) trusting a real authorization server."""
    from tests.support.store_auth import start_auth_world

    world = start_auth_world(tmp_path_factory.mktemp("own-store-auth"))
    try:
        yield world
    finally:
        world.stop()


@pytest.mark.slow
def test_export_with_backend_services_token_against_our_store(own_store, tmp_path):
    """The same client against our own store: discovery through the store's smart-configuration, the
    token from the issuer, the manifest's files downloaded with it; an agency's token is refused."""
    world = own_store
    pid = str(uuid.uuid4())
    put = requests.put(
        f"{world.base}/Patient/{pid}",
        json={"resourceType": "Patient", "id": pid, "gender": "female"},
        headers={"Authorization": f"Bearer {world.token('trust-backend')}", "Content-Type": "application/fhir+json"},
        timeout=30,
    )
    assert put.status_code in (200, 201), put.text
    with pytest.raises(BulkError) as err:  # no token: refused, and said plainly
        download(world.base, tmp_path / "anon", types=["Patient"], mode="bulk")
    assert "refused" in str(err.value)
    key_files = {}
    for client_id in ("trust-backend", "school-a-backend"):
        key_files[client_id] = tmp_path / f"{client_id}.pem"
        key_files[client_id].write_bytes(world.keys[client_id].private_pem())
    agency = {
        "client_id": "school-a-backend",
        "key_file": str(key_files["school-a-backend"]),
        "kid": world.keys["school-a-backend"].kid,
        "scope": "system/*.rs",
    }
    with pytest.raises(BulkError) as err:  # an agency organisation's token: no bulk copy (consent gate)
        download(world.base, tmp_path / "agency", types=["Patient"], mode="bulk", auth=agency)
    assert "HTTP 403" in str(err.value)
    auth = {
        "client_id": "trust-backend",
        "key_file": str(key_files["trust-backend"]),
        "kid": world.keys["trust-backend"].kid,
        "scope": "system/*.rs",
    }
    result = download(world.base, tmp_path / "ok", types=["Patient"], mode="bulk", auth=auth)
    assert result["method"] == "bulk"
    ids = {json.loads(line)["id"] for f in result["files"] for line in open(f) if line.strip()}
    assert pid in ids
