"""SMART Backend Services client: assertion claims, discovery checks, caching, single flight, 401 refresh.

End-to-end against sekmet-fhir's real token endpoint; ``responses`` only for refusal branches."""

from __future__ import annotations

import json
import logging
import threading
import time

import jwt
import pytest
import requests
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import RSAAlgorithm

from tests.support.servers import SekmetProcess
from tests.support.sync_synthetic import Scenario
from tests.support.sync_workers import drain, make_worker, new_patients
from thrive_fhir.client.backend_services import BackendServicesAuth, discover_token_url
from thrive_fhir.client.fhir_http import FhirClient, TokenError
from thrive_fhir.localstore import LocalStore

CLIENT_ID = "thrive-sync-test"
KID = "sync-key-1"


def _rsa_pem():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return key, pem


@pytest.fixture(scope="module")
def rsa_key():
    return _rsa_pem()


@pytest.fixture(scope="module")
def smart_store(tmp_path_factory, rsa_key):
    key, _pem = rsa_key
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid=KID, alg="RS384", use="sig")
    server = SekmetProcess(
        tmp_path_factory.mktemp("smart"),
        strict=True,
        server_auth={
            "types": ["smart"],
            "smart_clients": [{"client_id": CLIENT_ID, "jwks": {"keys": [jwk]}, "scopes": "system/*.rs system/*.cu"}],
            "token_lifetime": 300,
        },
    ).start()
    yield server
    server.stop()


def test_assertion_claims_with_frozen_clock(rsa_key):
    key, pem = rsa_key
    auth = BackendServicesAuth(
        token_url="https://auth.example/token",
        client_id=CLIENT_ID,
        private_key_pem=pem,
        kid=KID,
        clock=lambda: 1_700_000_000,
    )
    a1, a2 = auth.assertion(), auth.assertion()
    header = jwt.get_unverified_header(a1)
    assert header == {"alg": "RS384", "kid": KID, "typ": "JWT"}
    claims = jwt.decode(
        a1,
        key.public_key(),
        algorithms=["RS384"],
        audience="https://auth.example/token",
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims["iss"] == claims["sub"] == CLIENT_ID
    assert claims["exp"] == 1_700_000_240 and claims["iat"] == 1_699_999_970
    assert claims["exp"] - claims["iat"] == 270 <= 300
    assert claims["jti"] != jwt.decode(a2, options={"verify_signature": False})["jti"]


def test_es384_assertion_verifies():
    key = ec.generate_private_key(ec.SECP384R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    auth = BackendServicesAuth(token_url="https://a/t", client_id="c", private_key_pem=pem, kid="k", alg="ES384")
    assert jwt.decode(auth.assertion(), key.public_key(), algorithms=["ES384"], audience="https://a/t")["iss"] == "c"
    with pytest.raises(ValueError):
        BackendServicesAuth(token_url="https://a/t", client_id="c", private_key_pem=pem, kid="k", alg="RS256")


def test_worker_syncs_through_backend_services_with_one_token_for_many_threads(smart_store, rsa_key, sqlite_url):
    _key, pem = rsa_key
    token_url = discover_token_url(smart_store.base_url, alg="RS384")
    auth = BackendServicesAuth(token_url=token_url, client_id=CLIENT_ID, private_key_pem=pem, kid=KID)
    # 20 concurrent callers -> exactly one token request
    tokens = []
    threads = [threading.Thread(target=lambda: tokens.append(auth.token())) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert auth.requests_made == 1 and len(set(tokens)) == 1
    patients = new_patients(2)
    for pid in patients:
        r = requests.put(
            f"{smart_store.base_url}/Patient/{pid}",
            json={"resourceType": "Patient", "id": pid},
            headers={**auth.header(), "Content-Type": "application/fhir+json"},
            timeout=30,
        )
        assert r.status_code in (200, 201)
    store = LocalStore(sqlite_url)
    store.migrate()
    Scenario(store, patients).random_saves(10)
    # a token the server no longer accepts: one refresh, one retry, no failure
    auth._token = "expired-or-revoked"
    auth._renew_at = time.time() + 3600
    drain([make_worker(store, smart_store.base_url, auth=auth), make_worker(store, smart_store.base_url, auth=auth)])
    assert auth.requests_made == 2
    headers = auth.header()
    r = requests.get(f"{smart_store.base_url}/_history", headers=headers, timeout=30)
    assert r.status_code == 200
    store.dispose()


def test_unauthenticated_request_is_refused_by_the_store(smart_store):
    reply = FhirClient(smart_store.base_url).read("Patient", "x")
    assert reply.kind == "auth" and reply.status == 401


def _conf(**over):
    doc = {
        "token_endpoint": "https://auth.example/token",
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
    }
    doc.update(over)
    return doc


@responses.activate
def test_discovery_without_client_credentials_refuses_to_start(caplog):
    responses.get(
        "https://fhir.example/.well-known/smart-configuration", json=_conf(grant_types_supported=["authorization_code"])
    )
    with caplog.at_level(logging.ERROR, logger="thrive_fhir.alerts"), pytest.raises(TokenError) as err:
        discover_token_url("https://fhir.example")
    assert err.value.kind == "discovery-refused"
    assert any(r.msg == "backend_services_discovery_refused" for r in caplog.records)
    responses.get("https://fhir.example/.well-known/smart-configuration", json=_conf())
    with pytest.raises(TokenError):
        discover_token_url("https://fhir.example", pinned="https://other.example/token")


@responses.activate
def test_narrower_scope_halts_with_alert_and_skew_is_reported(rsa_key, caplog):
    _key, pem = rsa_key
    responses.post(
        "https://auth.example/token",
        json={"access_token": "t", "token_type": "Bearer", "expires_in": 300, "scope": "system/*.rs"},
        headers={"Date": "Mon, 01 Jan 2001 00:00:00 GMT"},
    )
    auth = BackendServicesAuth(token_url="https://auth.example/token", client_id="c", private_key_pem=pem, kid="k")
    with caplog.at_level(logging.WARNING, logger="thrive_fhir.alerts"), pytest.raises(TokenError) as err:
        auth.token()
    assert err.value.kind == "scope-not-granted"
    events = {r.msg for r in caplog.records}
    assert {"backend_services_scope_not_granted", "clock_skew"} <= events
    # the exact form fields of BS-04: no client_id, no refresh_token
    sent = dict(p.split("=", 1) for p in responses.calls[0].request.body.split("&"))
    assert set(sent) == {"grant_type", "scope", "client_assertion_type", "client_assertion"}
    # after a refusal the client backs off instead of hammering the endpoint
    with pytest.raises(TokenError) as err:
        auth.token()
    assert err.value.kind == "backoff" and len(responses.calls) == 1


@responses.activate
def test_token_is_renewed_before_expiry(rsa_key):
    _key, pem = rsa_key
    now = [1000.0]
    responses.post("https://auth.example/token", json={"access_token": "a", "token_type": "bearer", "expires_in": 1000})
    auth = BackendServicesAuth(
        token_url="https://auth.example/token", client_id="c", private_key_pem=pem, kid="k", clock=lambda: now[0]
    )
    auth.token()
    now[0] += 899
    auth.token()
    assert auth.requests_made == 1
    now[0] += 2  # inside the last max(60 s, 10%) = 100 s
    auth.token()
    assert auth.requests_made == 2
