"""``thrive store serve --auth-issuer``: the store as its own process verifies access tokens against a
real authorization server (the sandbox's, over HTTP: discovery, JWKS, token endpoint) and enforces
sharing Consents on agency tokens. Forged, expired and misdirected tokens get 401."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import time
import uuid

import jwt
import pytest
import requests

from tests.support.consent_data import CUSTODIAN, JSON, ORG_A, ORG_B, WORKER_A, WORKER_B, consent, day
from tests.support.servers import VENV_BIN, free_port
from tests.support.store_auth import start_auth_world
from tests.support.store_data import observation, patient
from thrive_fhir.sandbox.keys import SigningKey

AGENCY_SCOPES = "openid fhirUser user/*.rs user/Task.u"


def bearer(token: str) -> dict:
    return {**JSON, "Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = start_auth_world(tmp_path_factory.mktemp("store-auth"))
    w.issued = []  # every token handed to the store, to check none of them reaches its log
    trust = w.token("trust-backend")
    w.issued.append(trust)
    w.pids = {name: str(uuid.uuid4()) for name in ("shared-a", "shared-b", "unshared")}
    w.obs = {}
    for org, name in ((ORG_A, "School A"), (ORG_B, "Social care B"), (CUSTODIAN, "Trust")):
        _put(w, {"resourceType": "Organization", "id": org.split("/")[1], "name": name}, trust)
    for name, pid in w.pids.items():
        _put(w, patient(pid), trust)
        w.obs[name] = str(uuid.uuid4())
        _put(w, observation(f"Patient/{pid}", oid=w.obs[name]), trust)
    _put(w, consent(str(uuid.uuid4()), w.pids["shared-a"], [ORG_A], start=day(-30), end=day(30)), trust)
    _put(w, consent(str(uuid.uuid4()), w.pids["shared-b"], [ORG_B], start=day(-30), end=day(30)), trust)
    yield w
    w.stop()


def _put(w, resource: dict, token: str) -> None:
    resp = requests.put(
        f"{w.base}/{resource['resourceType']}/{resource['id']}", json=resource, headers=bearer(token), timeout=30
    )
    assert resp.status_code in (200, 201), resp.text


def _get(w, path: str, token: str | None, **params) -> requests.Response:
    headers = bearer(token) if token is not None else JSON
    if token is not None:
        w.issued.append(token)
    return requests.get(f"{w.base}/{path}", params=params, headers=headers, timeout=30)


def _ids(bundle: dict, rtype: str) -> set[str]:
    return {e["resource"]["id"] for e in bundle.get("entry", []) if e["resource"]["resourceType"] == rtype}


def _claims(w, **over) -> dict:
    now = int(time.time())
    claims = {
        "iss": w.issuer,
        "aud": w.base,
        "sub": "school-a-backend",
        "client_id": "school-a-backend",
        "scope": "system/*.rs",
        "organization": ORG_A,
        "iat": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
    }
    claims.update(over)
    return claims


def _signed(w, claims: dict) -> str:
    """Signed with the authorization server's real key: only the claims decide."""
    return w.sandbox.authority.key.sign(claims, {"typ": "at+jwt"})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hs256_with_public_key(w, claims: dict) -> str:
    """The algorithm-confusion forgery: HMAC keyed with the issuer's PUBLIC key (PEM), which anyone has.
    PyJWT refuses to make one, so it is put together by hand."""
    from cryptography.hazmat.primitives import serialization

    key = w.sandbox.authority.key
    pem = key.public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    head = _b64(json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": key.kid}).encode())
    body = _b64(json.dumps(claims).encode())
    sig = hmac.new(pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(sig)}"


def _assert_invalid_token(resp: requests.Response) -> None:
    assert resp.status_code == 401, resp.text
    assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    outcome = resp.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "login"


@pytest.mark.slow
def test_agency_token_from_the_token_endpoint_sees_only_consented_young_people(world):
    agency = world.token("school-a-backend")
    patients = _get(world, "Patient", agency)
    assert patients.status_code == 200, patients.text
    assert _ids(patients.json(), "Patient") == {world.pids["shared-a"]}
    obs = _get(world, "Observation", agency).json()
    assert _ids(obs, "Observation") == {world.obs["shared-a"]}
    hidden = _get(world, f"Patient/{world.pids['unshared']}", agency)
    missing = _get(world, f"Patient/{uuid.uuid4()}", agency)
    assert hidden.status_code == missing.status_code == 404
    # the custodian's token (same issuer, another organisation) sees everyone
    trust = world.token("trust-backend")
    assert set(world.pids.values()) <= _ids(_get(world, "Patient", trust, _count="100").json(), "Patient")


@pytest.mark.slow
def test_agency_user_token_is_gated_and_audited_with_its_worker(world):
    authority = world.sandbox.authority
    worker_b = authority.mint_internal_token(world.base, AGENCY_SCOPES, user=WORKER_B, organization=ORG_B)
    assert _ids(_get(world, "Patient", worker_b).json(), "Patient") == {world.pids["shared-b"]}
    worker_a = authority.mint_internal_token(world.base, AGENCY_SCOPES, user=WORKER_A, organization=ORG_A)
    resp = _get(world, f"Patient/{world.pids['shared-a']}", worker_a)
    assert resp.status_code == 200
    events = _get(world, "AuditEvent", world.token("trust-backend"), _sort="-_lastUpdated", _count="1").json()
    event = events["entry"][0]["resource"]
    who = {a["who"].get("reference") for a in event["agent"]}
    assert {WORKER_A, ORG_A} <= who
    assert f"Patient/{world.pids['shared-a']}" in {e["what"]["reference"] for e in event["entity"] if "what" in e}


@pytest.mark.slow
def test_forged_expired_and_misdirected_tokens_get_401(world):
    path = f"Patient/{world.pids['shared-a']}"
    # control: the same claims, properly signed, are accepted, so each case below fails for its own reason
    assert _get(world, path, _signed(world, _claims(world))).status_code == 200
    now = int(time.time())
    good = _signed(world, _claims(world))
    head, _body, sig = good.split(".")
    raised = _b64(json.dumps(_claims(world, organization=CUSTODIAN)).encode())
    cases = {
        "expired": _signed(world, _claims(world, iat=now - 900, exp=now - 300)),
        "not-yet-valid": _signed(world, _claims(world, nbf=now + 900)),
        "issued-in-future": _signed(world, _claims(world, iat=now + 900)),
        "embedded-jwk": jwt.encode(
            _claims(world),
            (attacker := SigningKey.generate("RS256")).private_key,
            algorithm="RS256",
            headers={"jwk": attacker.public_jwk(), "typ": "at+jwt"},
        ),
        "wrong-audience": world.token("ehr-backend"),  # a real token, for the EHR's FHIR base
        "wrong-issuer": _signed(world, _claims(world, iss="http://127.0.0.1:9/auth")),
        "no-exp": _signed(world, {k: v for k, v in _claims(world).items() if k != "exp"}),
        "alg-none": jwt.encode(
            _claims(world), None, algorithm="none", headers={"kid": world.sandbox.authority.key.kid, "typ": "at+jwt"}
        ),
        "hs256-public-key": _hs256_with_public_key(world, _claims(world)),
        "unknown-kid": SigningKey.generate("RS256").sign(_claims(world), {"typ": "at+jwt"}),
        "claims-swapped": f"{head}.{raised}.{sig}",  # custodian's organisation under agency A's signature
        "not-a-jwt": "opaque-" + uuid.uuid4().hex,
        "id-token-typ": world.sandbox.authority.key.sign(_claims(world), {"typ": "logout+jwt"}),
        # neither user nor organisation: with custodians configured, refused rather than let through ungated
        "no-organization": _signed(world, {k: v for k, v in _claims(world).items() if k != "organization"}),
    }
    for name, token in cases.items():
        resp = _get(world, path, token)
        assert resp.status_code == 401, (name, resp.status_code)
        _assert_invalid_token(resp)
    anonymous = _get(world, path, None)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    assert anonymous.json()["resourceType"] == "OperationOutcome"


@pytest.mark.slow
def test_rotated_key_is_fetched_and_the_old_one_still_verifies(world):
    authority = world.sandbox.authority
    before = world.token("school-a-backend")
    assert _get(world, "Patient", before).status_code == 200
    authority.rotate_signing_key(keep_previous=True)
    time.sleep(1.2)  # the store refetches the JWKS for an unknown kid at most once a second here
    after = world.token("school-a-backend")
    assert jwt.get_unverified_header(after)["kid"] != jwt.get_unverified_header(before)["kid"]
    assert _get(world, "Patient", after).status_code == 200
    assert _get(world, "Patient", before).status_code == 200


@pytest.mark.slow
def test_store_republishes_the_issuers_smart_configuration(world):
    doc = requests.get(f"{world.base}/.well-known/smart-configuration", timeout=10).json()
    assert doc["issuer"] == world.issuer
    assert doc["token_endpoint"] == world.token_url
    meta = requests.get(f"{world.base}/metadata", timeout=10).json()
    assert meta["rest"][0]["security"]


@pytest.mark.slow
def test_tokens_never_reach_the_store_log(world):
    """Every token handed to the store so far (all of them when this runs last, as in file order)."""
    log = (world.store.workdir / "thrive-store.log").read_text()
    assert "access tokens: issuer" in log
    for token in world.issued:
        assert token not in log
        signature = token.split(".")[-1]
        assert len(signature) < 20 or signature not in log


def _serve(args: list[str], timeout: float = 30, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    port = free_port()
    return subprocess.run(
        [
            str(VENV_BIN / "thrive"),
            "store",
            "serve",
            "--database",
            "sqlite:///:memory:",
            "--port",
            str(port),
            "--no-validate",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.slow
def test_cli_refuses_settings_that_cannot_verify_tokens(world):
    cases = [
        (["--require-auth"], 2, "--require-auth"),
        (["--consent-custodian", CUSTODIAN], 2, "--auth-issuer"),
        (["--auth-issuer", world.issuer], 2, "--auth-audience"),
        (
            ["--auth-issuer", world.issuer, "--base-url", "http://x", "--consent-custodian", "org-1"],
            2,
            "Organization/<id>",
        ),
        # the issuer's own discovery (openid-configuration) names a different issuer than the one given
        (
            [
                "--auth-issuer",
                world.issuer + "-other",
                "--base-url",
                "http://x",
                "--auth-discovery-url",
                f"{world.issuer}/.well-known/openid-configuration",
            ],
            1,
            "names issuer",
        ),
        (["--auth-issuer", f"http://127.0.0.1:{free_port()}/auth", "--base-url", "http://x"], 1, "discovery"),
        (
            [
                "--auth-issuer",
                world.issuer,
                "--base-url",
                "http://x",
                "--auth-introspect",
                world.issuer + "/introspect",
            ],
            1,
            "--auth-introspect-client",
        ),
    ]
    env_cases = [  # the same settings from the environment
        ({"THRIVE_STORE_REQUIRE_AUTH": "1"}, 2, "--require-auth"),
        (
            {
                "THRIVE_STORE_AUTH_ISSUER": world.issuer,
                "THRIVE_STORE_AUTH_AUDIENCE": "http://x",
                "THRIVE_STORE_CONSENT_CUSTODIANS": f"{CUSTODIAN} org-b",
            },
            2,
            "'org-b'",
        ),
    ]
    runs = [(args, code, words, None) for args, code, words in cases]
    runs += [([], code, words, env) for env, code, words in env_cases]
    for args, code, words, env in runs:
        result = _serve(args, env=env)
        assert result.returncode == code, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0], (args, result.stderr)
        assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_issuer_discovery_without_explicit_urls(world, tmp_path):
    """Only --auth-issuer: the store finds jwks_uri in <issuer>/.well-known/openid-configuration."""
    from tests.support.store_auth import AuthStoreProcess

    port = free_port()
    store = AuthStoreProcess(
        tmp_path, port, ["--auth-issuer", world.issuer, "--auth-audience", f"http://127.0.0.1:{port}"]
    )
    store.start()
    try:
        token = world.sandbox.authority.mint_internal_token(store.base_url, "system/Patient.rs")
        assert requests.get(f"{store.base_url}/Patient", headers=bearer(token), timeout=10).status_code == 200
        assert requests.get(f"{store.base_url}/Patient", headers=JSON, timeout=10).status_code == 401
        other = _signed(world, _claims(world))  # names the module's store, not this one
        assert requests.get(f"{store.base_url}/Patient", headers=bearer(other), timeout=10).status_code == 401
    finally:
        store.stop()


@pytest.mark.slow
def test_introspection_checks_each_token_at_the_issuer(world, tmp_path):
    """--auth-introspect: tokens are asked about at the issuer's RFC 7662 endpoint, not checked as JWTs."""
    from tests.support.store_auth import INTROSPECTOR, AuthStoreProcess

    client_file = tmp_path / "introspect.toml"
    client_file.write_text(f'client_id = "{INTROSPECTOR[0]}"\nclient_secret = "{INTROSPECTOR[1]}"\n')
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    world.sandbox.authority.fhir_bases.append(base)  # the issuer serves this store too (extra_fhir_bases)
    store = AuthStoreProcess(
        tmp_path / "store",
        port,
        [
            "--auth-issuer",
            world.issuer,
            "--auth-audience",
            base,
            "--auth-introspect",
            world.issuer + "/introspect",
            "--auth-introspect-client",
            str(client_file),
        ],
    )
    store.start()
    try:
        token = world.sandbox.authority.mint_internal_token(base, "system/Patient.rs")
        for _ in range(2):  # the second answer comes from the cache
            assert requests.get(f"{base}/Patient", headers=bearer(token), timeout=10).status_code == 200
        assert requests.get(f"{base}/Observation", headers=bearer(token), timeout=10).status_code == 403  # scopes
        refused = {
            "other-store": world.token("trust-backend"),  # active at the issuer, but aud names the other store
            "unknown-key": SigningKey.generate("RS256").sign(_claims(world, aud=base), {"typ": "at+jwt"}),
            "opaque-junk": uuid.uuid4().hex,
        }
        for name, bad in refused.items():
            resp = requests.get(f"{base}/Patient", headers=bearer(bad), timeout=10)
            assert resp.status_code == 401, name
            _assert_invalid_token(resp)
    finally:
        store.stop()
        world.sandbox.authority.fhir_bases.remove(base)


@pytest.mark.slow
def test_introspection_gates_by_the_organisation_it_is_told(world, tmp_path):
    """With custodians, a store verifying by introspection applies the consent rule by the answer's
    ``organization`` (the sandbox used to leave it out: every agency user then saw no young person),
    and refuses a token naming neither a user nor an organisation."""
    from tests.support.store_auth import INTROSPECTOR, AuthStoreProcess

    client_file = tmp_path / "introspect.toml"
    client_file.write_text(f'client_id = "{INTROSPECTOR[0]}"\nclient_secret = "{INTROSPECTOR[1]}"\n')
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    authority = world.sandbox.authority
    authority.fhir_bases.append(base)
    store = AuthStoreProcess(
        tmp_path / "store",
        port,
        [
            *("--auth-issuer", world.issuer, "--auth-audience", base),
            *("--auth-introspect", world.issuer + "/introspect", "--auth-introspect-client", str(client_file)),
            *("--consent-custodian", CUSTODIAN),
        ],
    )
    store.start()
    try:
        trust = authority.mint_internal_token(base, "system/*.cruds", organization=CUSTODIAN)
        shared, unshared = str(uuid.uuid4()), str(uuid.uuid4())
        for pid in (shared, unshared):
            resp = requests.put(f"{base}/Patient/{pid}", json=patient(pid), headers=bearer(trust), timeout=30)
            assert resp.status_code == 201, resp.text
        cid = str(uuid.uuid4())
        shares = consent(cid, shared, [ORG_A], start=day(-30), end=day(30))
        assert requests.put(f"{base}/Consent/{cid}", json=shares, headers=bearer(trust), timeout=30).status_code == 201
        worker = authority.mint_internal_token(base, "user/Patient.rs", user=WORKER_A, organization=ORG_A)
        seen = requests.get(f"{base}/Patient", headers=bearer(worker), timeout=30).json()
        assert [e["resource"]["id"] for e in seen.get("entry", [])] == [shared]
        assert requests.get(f"{base}/Patient/{unshared}", headers=bearer(worker), timeout=30).status_code == 404
        nobody = authority.mint_internal_token(base, "system/Patient.rs")  # neither user nor organisation
        _assert_invalid_token(requests.get(f"{base}/Patient", headers=bearer(nobody), timeout=30))
    finally:
        store.stop()
        authority.fhir_bases.remove(base)
