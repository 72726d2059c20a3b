"""Mock switches (thrive_fhir/sandbox/quirks.py): the exact answer each one makes the running
sandbox give, over real HTTP on loopback. The app's side of each is in tests/app/test_launch_quirks.py."""

from __future__ import annotations

import json
import re
from urllib.parse import urljoin

import jwt
import pytest
import requests

from thrive_fhir.sandbox.clientkit import pkce_pair
from thrive_fhir.sandbox.quirks import SIMULATED_ERRORS, QuirkError, Quirks, switched
from thrive_fhir.sandbox.registry import Registry, RegistryError

REDIRECT = "http://127.0.0.1:9/callback"  # registered for every client in conftest.py
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"


# --- registry -----------------------------------------------------------------------------------


def _registry(client_quirks=None, top=None):
    client = {"client_id": "c", "auth": "none", "redirect_uris": ["https://app.example/cb"], "scopes": "launch"}
    if client_quirks is not None:
        client["quirks"] = client_quirks
    data = {"clients": [client]}
    if top is not None:
        data["quirks"] = top
    return data


def test_switches_load_from_the_registry_json_and_round_trip():
    reg = Registry.from_dict(
        _registry(
            {"no_patient": True, "simulate_error": "token_invalid_scope"},
            {"token_lifetime": 570, "well_known_404": True},
        )
    )
    assert reg.quirks == Quirks(token_lifetime=570, well_known_404=True)
    assert reg.client("c").quirks == Quirks(no_patient=True, simulate_error="token_invalid_scope")
    again = Registry.from_dict(json.loads(json.dumps(reg.to_dict())))
    assert again.quirks == reg.quirks and again.client("c").quirks == reg.client("c").quirks
    # No switches: nothing written (the demo's clients.json stays as it was).
    plain = Registry.from_dict(_registry()).to_dict()
    assert "quirks" not in plain and "quirks" not in plain["clients"][0]


@pytest.mark.parametrize(
    "client_quirks, top, message",
    [
        ({"no_patinet": True}, None, r"unknown switch\(es\) \['no_patinet'\]"),
        (None, {"token_lifetime": 0}, "token_lifetime: must be a whole number of seconds"),
        (None, {"token_lifetime": "570"}, "token_lifetime: must be a whole number of seconds"),
        ({"no_patient": "yes"}, None, "no_patient: must be true or false"),
        ({"simulate_error": "auth_sad"}, None, "simulate_error: must be one of"),
        ({"well_known_404": True}, None, "can only be set for the whole sandbox"),
        (None, ["no_patient"], "must be an object"),
    ],
)
def test_bad_switches_are_refused_with_the_reason(client_quirks, top, message):
    with pytest.raises(RegistryError, match=message):
        Registry.from_dict(_registry(client_quirks, top))


def test_unknown_top_level_field_is_refused():
    with pytest.raises(RegistryError, match="unknown top-level field"):
        Registry.from_dict({"clients": [], "quirk": {"no_patient": True}})


def test_client_switches_override_the_sandbox_wide_ones_both_ways():
    instance = Quirks(token_lifetime=570, rotate_refresh_tokens=False, no_patient=True)
    client = Quirks(token_lifetime=60, no_patient=False)
    merged = Quirks.effective(instance, client)
    assert merged == Quirks(token_lifetime=60, rotate_refresh_tokens=False, no_patient=False)
    assert Quirks.effective(instance, Quirks()) == instance


def test_switched_restores_and_refuses_instance_switches_on_a_client(sb):
    client = sb.registry.client("app-jwt")
    with switched(client, token_lifetime=5):
        assert sb.authority.quirks_for(client).token_lifetime == 5
    assert client.quirks == Quirks()
    with pytest.raises(QuirkError):
        with switched(client, well_known_404=True):
            pass
    assert client.quirks == Quirks()


# --- helpers ------------------------------------------------------------------------------------


def _ehr_tokens(flows, patient, client_id="app-jwt"):
    code, verifier = flows.code_for(patient, client_id=client_id)
    resp = flows.exchange(code, verifier, client_id=client_id)
    assert resp.status_code == 200, resp.text
    return resp.json()


def _refresh(flows, refresh_token, client_id="app-jwt"):
    return flows.token({"grant_type": "refresh_token", "refresh_token": refresh_token, **flows.jwt_auth(client_id)})


def _standalone_code(sb, flows, client_id="app-secret"):
    """Standalone launch as the agency user; returns (redirect params, verifier, last response)."""
    s = requests.Session()
    verifier, challenge = pkce_pair()
    resp = flows.authorize(
        s,
        response_type="code",
        client_id=client_id,
        redirect_uri=REDIRECT,
        scope="launch/patient openid fhirUser patient/Patient.rs",
        state="sa-1",
        aud=sb.fhir_base,
        code_challenge=challenge,
        code_challenge_method="S256",
    )
    req = re.search(r"req=([^&]+)", resp.headers["Location"]).group(1)
    resp = s.post(sb.auth + "/login", data={"req": req, "user": "agency"}, allow_redirects=False, timeout=10)
    return resp, s, verifier


# --- no_patient ---------------------------------------------------------------------------------


def test_no_patient_standalone_skips_the_picker_and_answers_without_patient(sb, flows):
    with switched(sb.registry.client("app-secret"), no_patient=True):
        resp, s, verifier = _standalone_code(sb, flows)
        assert "/select-patient" not in resp.headers["Location"]
        assert "/consent?req=" in resp.headers["Location"]
        got = flows.redirect_params(flows.consent(resp, s))
        tok = flows.token(
            {
                "grant_type": "authorization_code",
                "code": got["code"],
                "redirect_uri": REDIRECT,
                "code_verifier": verifier,
            },
            auth=("app-secret", "s3cret-Value_1.~"),
        )
    assert tok.status_code == 200, tok.text
    body = tok.json()
    assert "patient" not in body and body["access_token"]
    assert "patient" not in jwt.decode(body["access_token"], options={"verify_signature": False})
    # Without the switch the same client is sent to the patient picker.
    resp, _s, _v = _standalone_code(sb, flows)
    assert "/select-patient?req=" in resp.headers["Location"]


def test_no_patient_also_strips_the_ehr_launch_patient(sb, flows):
    with switched(sb.registry, no_patient=True):
        body = _ehr_tokens(flows, sb.patients[0])
    assert "patient" not in body
    assert "patient" in _ehr_tokens(flows, sb.patients[0])


# --- id_token kid and signing keys -----------------------------------------------------------------


def test_id_token_without_kid_verifies_with_the_single_published_key(sb, flows):
    with switched(sb.registry.client("app-jwt"), id_token_without_kid=True):
        body = _ehr_tokens(flows, sb.patients[0])
    header = jwt.get_unverified_header(body["id_token"])
    assert "kid" not in header and header["alg"] == "RS256"
    keys = requests.get(sb.auth + "/jwks", timeout=10).json()["keys"]
    assert len(keys) == 1
    claims = jwt.decode(
        body["id_token"], jwt.PyJWK(keys[0]).key, algorithms=["RS256"], audience="app-jwt", issuer=sb.auth
    )
    assert claims["sub"] == "clinician"
    # Access tokens keep their kid: only the id_token is LAUNCHER-style.
    assert jwt.get_unverified_header(body["access_token"])["kid"] == keys[0]["kid"]


def test_jwks_extra_key_publishes_a_second_key_that_signs_nothing(sb, flows):
    with switched(sb.registry, jwks_extra_key=True):
        keys = requests.get(sb.auth + "/jwks", timeout=10).json()["keys"]
        body = _ehr_tokens(flows, sb.patients[0])
    assert len(keys) == 2 and keys[0]["kid"] != keys[1]["kid"]
    assert all("d" not in k for k in keys)
    assert jwt.get_unverified_header(body["id_token"])["kid"] == keys[0]["kid"]
    assert len(requests.get(sb.auth + "/jwks", timeout=10).json()["keys"]) == 1


def test_rotation_keeps_the_previous_key_published_so_old_tokens_still_work(sb, flows):
    before = _ehr_tokens(flows, sb.patients[0])
    old_kid = jwt.get_unverified_header(before["id_token"])["kid"]
    new = sb.authority.rotate_signing_key()
    kids = [k["kid"] for k in requests.get(sb.auth + "/jwks", timeout=10).json()["keys"]]
    assert kids[0] == new.kid and old_kid in kids
    after = _ehr_tokens(flows, sb.patients[0])
    assert jwt.get_unverified_header(after["id_token"])["kid"] == new.kid
    assert flows.fhir(f"/Patient/{sb.patients[0]}", before["access_token"]).status_code == 200
    # A hard rotation (old key withdrawn): tokens it signed stop working at the FHIR API.
    sb.authority.rotate_signing_key(keep_previous=False)
    assert flows.fhir(f"/Patient/{sb.patients[0]}", after["access_token"]).status_code == 401
    assert len(requests.get(sb.auth + "/jwks", timeout=10).json()["keys"]) == 1


def test_timed_rotation(sb, later):
    first = requests.get(sb.auth + "/jwks", timeout=10).json()["keys"][0]["kid"]
    with switched(sb.registry, jwks_rotate_every=60):
        assert requests.get(sb.auth + "/jwks", timeout=10).json()["keys"][0]["kid"] == first
        later(61)
        kids = [k["kid"] for k in requests.get(sb.auth + "/jwks", timeout=10).json()["keys"]]
    assert kids[0] != first and kids[1] == first


# --- lifetimes and refresh ------------------------------------------------------------------------


def test_token_lifetime_sandbox_wide_and_per_client(sb, flows):
    with switched(sb.registry, token_lifetime=570):
        body = _ehr_tokens(flows, sb.patients[0])
        with switched(sb.registry.client("app-jwt"), token_lifetime=5):
            short = _ehr_tokens(flows, sb.patients[0])
    assert body["expires_in"] == 570
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 570
    assert short["expires_in"] == 5


def test_short_tokens_expire_at_the_fhir_api(sb, flows, later):
    with switched(sb.registry.client("app-jwt"), token_lifetime=5):
        body = _ehr_tokens(flows, sb.patients[0])
    assert flows.fhir(f"/Patient/{sb.patients[0]}", body["access_token"]).status_code == 200
    later(6)
    assert flows.fhir(f"/Patient/{sb.patients[0]}", body["access_token"]).status_code == 401


def test_non_rotating_refresh_switch_on_a_rotating_client(sb, flows):
    with switched(sb.registry, rotate_refresh_tokens=False):
        first = _ehr_tokens(flows, sb.patients[0])
        for _ in range(2):
            again = _refresh(flows, first["refresh_token"])
            assert again.status_code == 200, again.text
            assert "refresh_token" not in again.json()
        # The client's own switch wins over the sandbox-wide one.
        with switched(sb.registry.client("app-jwt"), rotate_refresh_tokens=True):
            rotated = _refresh(flows, first["refresh_token"]).json()
    assert rotated["refresh_token"] != first["refresh_token"]
    assert _refresh(flows, first["refresh_token"]).json()["error"] == "invalid_grant"


# --- discovery ------------------------------------------------------------------------------------


def test_well_known_404_leaves_the_capability_statement_as_the_way_in(sb):
    url = sb.fhir_base + "/.well-known/smart-configuration"
    assert requests.get(url, timeout=10).status_code == 200
    with switched(sb.registry, well_known_404=True):
        gone = requests.get(url, headers={"Accept": "application/json"}, timeout=10)
    assert gone.status_code == 404 and gone.json() == {"error": "not_found"}
    meta = requests.get(sb.fhir_base + "/metadata", headers={"Accept": "application/fhir+json"}, timeout=10)
    assert meta.status_code == 200
    ext = meta.json()["rest"][0]["security"]["extension"]
    uris = {e["url"]: e["valueUri"] for x in ext if x["url"] == OAUTH_URIS for e in x["extension"]}
    assert uris == {"authorize": sb.auth + "/authorize", "token": sb.auth + "/token"}


def test_relative_discovery_endpoints_resolve_against_the_fhir_base(sb):
    url = sb.fhir_base + "/.well-known/smart-configuration"
    absolute = requests.get(url, timeout=10).json()
    with switched(sb.registry, relative_discovery_endpoints=True):
        doc = requests.get(url, timeout=10).json()
    for key in ("authorization_endpoint", "token_endpoint", "jwks_uri", "introspection_endpoint"):
        assert doc[key].startswith("/auth/"), doc[key]
        assert urljoin(sb.fhir_base + "/", doc[key]) == absolute[key]
    assert doc["issuer"] == absolute["issuer"]  # an identifier, not an endpoint: stays absolute


# --- LAUNCHER's simulated errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, error",
    [
        ("auth_invalid_client_id", "invalid_client"),
        ("auth_invalid_redirect_uri", "invalid_request"),
    ],
)
def test_authorize_errors_that_must_not_redirect(sb, flows, name, error):
    params, _verifier = flows.ehr_params(sb.patients[0])
    with switched(sb.registry.client("app-jwt"), simulate_error=name):
        resp = flows.authorize(**params)
    assert resp.status_code == 400 and "Location" not in resp.headers
    assert error in resp.text and f"simulated: {name}" in resp.text
    again = flows.authorize(**flows.ehr_params(sb.patients[0])[0])
    assert again.status_code == 303  # switch off: the same kind of request goes through


def test_authorize_invalid_scope_redirects_with_state(sb, flows):
    params, _verifier = flows.ehr_params(sb.patients[0])
    with switched(sb.registry.client("app-jwt"), simulate_error="auth_invalid_scope"):
        got = flows.redirect_params(flows.authorize(**params))
    assert got["error"] == "invalid_scope" and got["state"] == params["state"] and "code" not in got
    assert "simulated: auth_invalid_scope" in got["error_description"]


@pytest.mark.parametrize(
    "name, status, error",
    [
        ("auth_invalid_client_secret", 401, "invalid_client"),
        ("token_invalid_token", 401, "invalid_client"),
        ("token_invalid_jti", 401, "invalid_client"),
        ("token_invalid_scope", 400, "invalid_scope"),
    ],
)
def test_token_errors_on_the_code_exchange(sb, flows, name, status, error):
    code, verifier = flows.code_for(sb.patients[0])
    with switched(sb.registry.client("app-jwt"), simulate_error=name):
        resp = flows.exchange(code, verifier)
    assert resp.status_code == status, resp.text
    assert resp.json()["error"] == error and f"simulated: {name}" in resp.json()["error_description"]
    assert resp.headers["Cache-Control"] == "no-store" and "access_token" not in resp.text
    # The refusal did not use up the code: with the switch off it is still good once.
    assert flows.exchange(code, verifier).status_code == 200


def test_token_invalid_jti_needs_an_assertion(sb, flows):
    """Clients that send no client assertion have no jti to refuse."""
    code, verifier = flows.code_for(sb.patients[0], client_id="app-public")
    with switched(sb.registry.client("app-public"), simulate_error="token_invalid_jti"):
        resp = flows.token(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT,
                "code_verifier": verifier,
                "client_id": "app-public",
            }
        )
    assert resp.status_code == 200, resp.text


def test_token_expired_refresh_token_only_strikes_the_refresh(sb, flows):
    with switched(sb.registry.client("app-jwt"), simulate_error="token_expired_refresh_token"):
        body = _ehr_tokens(flows, sb.patients[0])
        resp = _refresh(flows, body["refresh_token"])
    assert resp.status_code == 400
    assert resp.json()["error"] == "invalid_grant"
    assert resp.json()["error_description"].startswith("refresh token has expired")


@pytest.mark.parametrize(
    "name, words",
    [
        ("request_invalid_token", "access token is invalid"),
        ("request_expired_token", "access token expired"),
    ],
)
def test_request_errors_refuse_the_token_at_the_fhir_api(sb, flows, name, words):
    with switched(sb.registry.client("app-jwt"), simulate_error=name):
        body = _ehr_tokens(flows, sb.patients[0])
        resp = flows.fhir(f"/Patient/{sb.patients[0]}", body["access_token"])
    assert resp.status_code == 401
    assert resp.headers["Content-Type"].startswith("application/fhir+json")
    challenge = resp.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge and words in challenge
    outcome = resp.json()
    assert outcome["resourceType"] == "OperationOutcome" and words in outcome["issue"][0]["diagnostics"]
    # Baked into the token (as LAUNCHER does): still refused after the switch is off, and
    # introspection calls it inactive; a refreshed token issued without the switch works.
    assert flows.fhir(f"/Patient/{sb.patients[0]}", body["access_token"]).status_code == 401
    info = requests.post(
        sb.auth + "/introspect", data={"token": body["access_token"], **flows.jwt_auth("backend")}, timeout=10
    ).json()
    assert info == {"active": False}
    fresh = _refresh(flows, body["refresh_token"]).json()
    assert flows.fhir(f"/Patient/{sb.patients[0]}", fresh["access_token"]).status_code == 200


def test_every_simulated_error_name_is_pinned_here():
    names = {
        "auth_invalid_client_id",
        "auth_invalid_redirect_uri",
        "auth_invalid_scope",
        "auth_invalid_client_secret",
        "token_invalid_token",
        "token_expired_refresh_token",
        "token_invalid_scope",
        "token_invalid_jti",
        "request_invalid_token",
        "request_expired_token",
    }
    assert set(SIMULATED_ERRORS) == names
