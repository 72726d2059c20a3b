"""SMART client pieces that need no server: PKCE, scopes, config registry, error branches.

Error branches of discovery/token calls use ``responses`` (allowed for unit tests of error
branches); the happy paths run against the real sandbox in test_launch_live.py.
"""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import responses

from smart_app.config import ConfigError, parse_config
from smart_app.scopes import GrantedScopes, requested_scopes
from thrive_fhir.client.smart_launch import (
    SmartClient,
    SmartConfiguration,
    SmartError,
    code_challenge,
    fhir_user_ref,
    foreign_fhir_user,
    new_code_verifier,
)
from thrive_fhir.smart_scopes import ScopeError, parse_scope

ISS = "https://ehr.example.test/fhir"


def reg(**over):
    raw = {
        "testing": True,
        "ehr": [{"iss": ISS, "client_id": "c1", "auth_method": "public", "auth_hosts": ["auth.example.test"], **over}],
    }
    return parse_config(raw).ehrs[ISS]


def test_pkce_rfc7636_vector_and_verifier_shape():
    assert (
        code_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )
    verifiers = {new_code_verifier() for _ in range(200)}
    assert len(verifiers) == 200
    assert all(
        43 <= len(v) <= 128 and set(v) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
        for v in verifiers
    )


def test_scope_strings_snapshot_v2_v1_and_standalone():
    assert requested_scopes("ehr", "v2") == (
        "launch openid fhirUser patient/Patient.r patient/Observation.c patient/Goal.c patient/CarePlan.c "
        "patient/Consent.c patient/Provenance.c"
    )
    assert requested_scopes("standalone", "v1") == (
        "launch/patient openid fhirUser patient/Patient.read patient/Consent.read patient/Observation.read "
        "patient/Goal.read patient/CarePlan.read patient/ServiceRequest.read patient/CareTeam.read "
        "patient/HealthcareService.read patient/Task.read patient/Task.write patient/Provenance.read patient/Provenance.write"
    )
    # the agency sign-in: read the shared plan, update Tasks, record Provenance; nothing else
    assert requested_scopes("standalone", "v2") == (
        "launch/patient openid fhirUser patient/Patient.rs patient/Consent.rs patient/Observation.rs "
        "patient/Goal.rs patient/CarePlan.rs patient/ServiceRequest.rs patient/CareTeam.rs "
        "patient/HealthcareService.rs patient/Task.rus "
        "patient/Provenance.crs"
    )
    assert requested_scopes("ehr", "v2", online_access=True).endswith(" online_access")
    # issue 16 item 7: agency (standalone) sessions outlive one access token too
    assert requested_scopes("standalone", "v2", online_access=True).endswith(" online_access")
    assert "offline_access" not in requested_scopes("standalone", "v2", online_access=True)


def test_scope_builder_rejects_out_of_order_letters():
    with pytest.raises(ScopeError):
        parse_scope("patient/Goal.dus")
    with pytest.raises(ScopeError):
        parse_scope("patient/Goal.x")
    parse_scope("patient/Goal.cruds")


def test_granted_scope_parser_maps_v1_and_v2_and_reports_missing_writes():
    v2 = GrantedScopes.parse(requested_scopes("ehr", "v2"))
    v1 = GrantedScopes.parse(requested_scopes("ehr", "v1"))
    assert v2.can_write and v1.can_write
    narrowed = GrantedScopes.parse("launch openid fhirUser patient/Patient.r patient/Observation.c")
    assert not narrowed.can_write
    assert narrowed.missing_writes() == ["Goal", "CarePlan", "Consent", "Provenance"]
    assert GrantedScopes.parse("patient/*.cruds").can_write
    # a query-restricted grant does not count as blanket permission
    assert not GrantedScopes.parse("patient/Observation.c?category=x").allows("Observation", "c")


def test_config_rejects_bad_registrations(tmp_path):
    with pytest.raises(ConfigError, match="iss"):
        parse_config(
            {
                "testing": True,
                "ehr": [{"iss": "http://ehr.example.test/fhir", "client_id": "c", "auth_method": "public"}],
            }
        )
    with pytest.raises(ConfigError, match="frame_ancestors"):
        reg(frame_ancestors=["*"])
    with pytest.raises(ConfigError, match="private_key_file"):
        parse_config({"testing": True, "ehr": [{"iss": ISS, "client_id": "c"}]})
    with pytest.raises(ConfigError, match="standalone"):
        parse_config({"testing": True, "standalone": [{"name": "x", "iss": "https://other.test/fhir"}]})
    with pytest.raises(ConfigError, match="secret"):
        parse_config({})
    # loopback http only when explicitly allowed
    ok = parse_config(
        {
            "testing": True,
            "ehr": [
                {
                    "iss": "http://127.0.0.1:9/fhir",
                    "client_id": "c",
                    "auth_method": "public",
                    "allow_insecure_loopback": True,
                }
            ],
        }
    )
    assert ok.ehr_for_iss("http://127.0.0.1:9/fhir") is not None


def test_iss_lookup_is_exact_apart_from_scheme_and_host_case():
    cfg = parse_config({"testing": True, "ehr": [{"iss": ISS, "client_id": "c", "auth_method": "public"}]})
    assert cfg.ehr_for_iss("HTTPS://EHR.example.test/fhir") is not None
    for bad in (
        ISS + "/",
        "https://ehr.example.test:444/fhir",
        "https://user@ehr.example.test/fhir",
        "https://ehr.example.test/FHIR",
        "http://ehr.example.test/fhir",
        "",
    ):
        assert cfg.ehr_for_iss(bad) is None, bad


def test_config_file_formats(tmp_path):
    from smart_app.config import load_config_file

    toml = tmp_path / "app.toml"
    toml.write_text(
        f'secret_key = "{"k" * 40}"\nods_code = "RYY"\n[[ehr]]\niss = "{ISS}"\nclient_id = "c"\nauth_method = "public"\n'
    )
    assert load_config_file(toml).ods_code == "RYY"
    yml = tmp_path / "app.yaml"
    yml.write_text(f"secret_key: {'k' * 40}\nehr:\n  - iss: {ISS}\n    client_id: c\n    auth_method: public\n")
    assert ISS in load_config_file(yml).ehrs
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match=r"bad\.json"):
        load_config_file(bad)


def test_authorize_url_has_all_parameters_and_exact_aud():
    conf = SmartConfiguration("https://auth.example.test/authorize", "https://auth.example.test/token")
    for aud in (ISS, ISS + "/"):
        url = SmartClient.authorize_url(
            conf,
            client_id="c1",
            redirect_uri="https://app.test/callback",
            scope="launch openid",
            state="s" * 43,
            aud=aud,
            code_verifier="dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
            nonce="n",
            launch="L" * 3000,
        )
        q = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        assert q["aud"] == aud
        assert q["launch"] == "L" * 3000
        assert q["code_challenge_method"] == "S256"
        assert q["code_challenge"] == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        assert {"response_type", "client_id", "redirect_uri", "scope", "state"} <= set(q)


@responses.activate
def test_discovery_relative_endpoints_resolved_and_unpinned_host_refused():
    responses.get(
        f"{ISS}/.well-known/smart-configuration",
        json={
            "authorization_endpoint": "https://auth.example.test/authorize",
            "token_endpoint": "https://evil.example.test/token",
        },
    )
    with pytest.raises(SmartError) as err:
        SmartClient().discover(reg())
    assert err.value.kind == "discovery"


@responses.activate
def test_discovery_falls_back_to_metadata_and_fails_cleanly():
    responses.get(f"{ISS}/.well-known/smart-configuration", status=404)
    ext = {
        "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
        "extension": [{"url": "authorize", "valueUri": "auth/authorize"}, {"url": "token", "valueUri": "auth/token"}],
    }
    responses.get(
        f"{ISS}/metadata", json={"resourceType": "CapabilityStatement", "rest": [{"security": {"extension": [ext]}}]}
    )
    conf = SmartClient().discover(reg())
    assert conf.authorization_endpoint == f"{ISS}/auth/authorize"  # relative, resolved against iss
    assert responses.calls[1].request.headers["Accept"] == "application/fhir+json"
    responses.reset()
    responses.get(f"{ISS}/.well-known/smart-configuration", body="<html>")
    responses.get(f"{ISS}/metadata", status=500)
    with pytest.raises(SmartError, match="unavailable"):
        SmartClient().discover(reg())


@responses.activate
def test_discovery_plain_only_pkce_aborts():
    responses.get(
        f"{ISS}/.well-known/smart-configuration",
        json={
            "authorization_endpoint": "https://auth.example.test/a",
            "token_endpoint": "https://auth.example.test/t",
            "code_challenge_methods_supported": ["plain"],
        },
    )
    with pytest.raises(SmartError):
        SmartClient().discover(reg())


@responses.activate
@pytest.mark.parametrize(
    "status,body,kind",
    [
        (400, {"error": "invalid_grant"}, "invalid_grant"),
        (401, {"error": "invalid_client"}, "config"),
        (503, None, "unavailable"),
        (200, {"access_token": "x", "token_type": "mac"}, "config"),
        (200, {"token_type": "bearer"}, "unavailable"),
    ],
)
def test_token_errors_map_to_kinds(status, body, kind):
    kwargs = {"json": body} if body is not None else {"body": "down"}
    responses.post("https://auth.example.test/token", status=status, **kwargs)
    with pytest.raises(SmartError) as err:
        SmartClient().exchange_code(
            reg(),
            token_endpoint="https://auth.example.test/token",
            code="c",
            redirect_uri="https://app/cb",
            code_verifier="v",
            requested_scope="openid",
        )
    assert err.value.kind == kind
    assert "c" not in str(err.value).split()  # no code in the message


@responses.activate
def test_token_response_defaults_and_public_client_body():
    responses.post("https://auth.example.test/token", json={"access_token": "AT", "token_type": "Bearer"})
    body = SmartClient().exchange_code(
        reg(),
        token_endpoint="https://auth.example.test/token",
        code="c",
        redirect_uri="https://app/cb",
        code_verifier="v",
        requested_scope="openid x",
    )
    assert body["expires_in"] == 300 and body["scope"] == "openid x"
    sent = parse_qs(responses.calls[0].request.body)
    assert sent["client_id"] == ["c1"] and sent["grant_type"] == ["authorization_code"]


@responses.activate
def test_client_secret_basic_header_and_no_secret_in_body(tmp_path):
    r = reg(auth_method="client_secret_basic", client_secret="s3cret-Value_1.~")
    responses.post(
        "https://auth.example.test/token", json={"access_token": "AT", "token_type": "bearer", "expires_in": 60}
    )
    SmartClient().refresh(r, token_endpoint="https://auth.example.test/token", refresh_token="RT")
    req = responses.calls[0].request
    assert req.headers["Authorization"].startswith("Basic ")
    body = parse_qs(req.body)
    assert "client_secret" not in body and "client_id" not in body and "scope" not in body


def test_private_key_jwt_assertion_claims(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (tmp_path / "k.pem").write_bytes(pem)
    cfg = parse_config(
        {
            "testing": True,
            "ehr": [{"iss": ISS, "client_id": "c1", "private_key_file": str(tmp_path / "k.pem"), "key_id": "kid-1"}],
        }
    )
    assertion = SmartClient().client_assertion(cfg.ehrs[ISS], "https://auth.example.test/token")
    header = jwt.get_unverified_header(assertion)
    assert header["alg"] == "RS384" and header["kid"] == "kid-1" and header["typ"] == "JWT"
    claims = jwt.decode(assertion, key.public_key(), algorithms=["RS384"], audience="https://auth.example.test/token")
    assert claims["iss"] == claims["sub"] == "c1"
    assert claims["exp"] - claims["iat"] <= 300 and claims["exp"] <= time.time() + 300
    assert (
        claims["jti"]
        != jwt.decode(SmartClient().client_assertion(cfg.ehrs[ISS], "x"), options={"verify_signature": False})["jti"]
    )


def test_fhir_user_ref():
    assert fhir_user_ref(f"{ISS}/Practitioner/abc", ISS) == "Practitioner/abc"
    assert fhir_user_ref("PractitionerRole/r1", ISS) == "PractitionerRole/r1"
    # issue 16 item 8: an absolute fhirUser on another server is never taken as a local reference
    assert fhir_user_ref("https://elsewhere/fhir/Practitioner/x", ISS) is None
    assert foreign_fhir_user("https://elsewhere/fhir/Practitioner/x", ISS)
    assert not foreign_fhir_user(f"{ISS}/Practitioner/abc", ISS) and not foreign_fhir_user("Practitioner/x", ISS)
    assert fhir_user_ref("Practitioner/..", ISS) is None and fhir_user_ref("Practitioner/a/b", ISS) is None
    assert fhir_user_ref("Device/x", ISS) is None
    assert fhir_user_ref(None, ISS) is None
