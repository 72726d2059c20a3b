"""Happy paths through the real sandbox on loopback: EHR launch, standalone, refresh, backend, OIDC."""

from __future__ import annotations

import re

import jwt
import requests

from thrive_fhir.sandbox.clientkit import pkce_pair
from thrive_fhir.sandbox.keys import SigningKey, jwks

REDIRECT = "http://127.0.0.1:9/callback"


def test_discovery_is_served_under_the_fhir_base(sb):
    conf = requests.get(sb.fhir_base + "/.well-known/smart-configuration", timeout=10).json()
    assert conf["authorization_endpoint"] == sb.auth + "/authorize"
    assert conf["token_endpoint"] == sb.token_url
    assert conf["code_challenge_methods_supported"] == ["S256"]
    assert {"RS384", "ES384"} <= set(conf["token_endpoint_auth_signing_alg_values_supported"])
    assert "launch-ehr" in conf["capabilities"] and "launch-standalone" in conf["capabilities"]
    oidc = requests.get(sb.auth + "/.well-known/openid-configuration", timeout=10).json()
    assert oidc["issuer"] == conf["issuer"] == sb.auth


def test_jwks_has_no_private_members(sb):
    keys = requests.get(sb.auth + "/jwks", timeout=10).json()["keys"]
    assert keys and all(not ({"d", "p", "q", "dp", "dq", "qi"} & set(k)) for k in keys)
    assert all(k["kid"] and k["use"] == "sig" for k in keys)


def test_ehr_page_lists_patients_and_labels_itself_dev_only(sb):
    page = requests.get(sb.origin + "/ehr/", timeout=10)
    assert page.status_code == 200
    assert "development and testing only" in page.text
    assert "Alex Sandbox-One" in page.text and "Billie Sandbox-Two" in page.text
    patient = requests.get(f"{sb.origin}/ehr/patients/{sb.patients[0]}", timeout=10)
    assert "Launch THRIVE" in patient.text


def test_ehr_launch_iframe_carries_iss_and_a_one_time_launch(sb, flows):
    handle = flows.ehr_launch_handle(sb.patients[0])
    assert re.fullmatch(r"[0-9a-f]{64}", handle)


def test_ehr_launch_end_to_end(sb, flows):
    """authorize -> code -> token (PKCE, private_key_jwt) -> read own patient 200, other patient 403."""
    code, verifier = flows.code_for(sb.patients[0])
    resp = flows.exchange(code, verifier)
    assert resp.status_code == 200, resp.text
    assert resp.headers["Cache-Control"] == "no-store"
    body = resp.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] > 0
    assert body["patient"] == sb.patients[0]
    assert body["need_patient_banner"] is False
    assert set(body["scope"].split()) == set(
        "launch openid fhirUser online_access patient/Patient.rs patient/Observation.c".split()
    )
    assert "refresh_token" in body  # online_access was granted
    own = flows.fhir(f"/Patient/{sb.patients[0]}", body["access_token"])
    assert own.status_code == 200, own.text
    assert own.json()["id"] == sb.patients[0]
    other = flows.fhir(f"/Patient/{sb.patients[1]}", body["access_token"])
    assert other.status_code == 403
    assert flows.fhir(f"/Patient/{sb.patients[0]}", "not-a-token").status_code == 401


def test_unticked_scopes_narrow_the_grant(sb, flows):
    code, verifier = flows.code_for(sb.patients[0], untick=("patient/Patient.rs",))
    body = flows.exchange(code, verifier).json()
    granted = body["scope"].split()
    assert "patient/Patient.rs" not in granted and "patient/Observation.c" in granted
    assert "launch" in granted  # context scopes cannot be unticked
    assert flows.fhir(f"/Patient/{sb.patients[0]}", body["access_token"]).status_code == 403


def test_id_token_verifies_with_the_published_jwks(sb, flows):
    code, verifier = flows.code_for(sb.patients[0])
    body = flows.exchange(code, verifier).json()
    header = jwt.get_unverified_header(body["id_token"])
    assert header["alg"] == "RS256" and header["kid"]
    signing_key = jwt.PyJWKClient(sb.auth + "/jwks").get_signing_key_from_jwt(body["id_token"])
    claims = jwt.decode(
        body["id_token"],
        signing_key.key,
        algorithms=["RS256"],
        audience="app-jwt",
        issuer=sb.auth,
        leeway=60,
        options={"require": ["iss", "aud", "exp", "iat", "sub"]},
    )
    assert claims["nonce"] == "n-123"
    assert claims["sub"] == "clinician"
    assert claims["fhirUser"].startswith(sb.fhir_base + "/Practitioner/")
    # The id_token is not an access token.
    assert flows.fhir(f"/Patient/{sb.patients[0]}", body["id_token"]).status_code == 401


def test_standalone_launch_with_login_and_patient_picker(sb, flows):
    s = requests.Session()
    verifier, challenge = pkce_pair()
    resp = flows.authorize(
        s,
        response_type="code",
        client_id="app-secret",
        redirect_uri=REDIRECT,
        scope="launch/patient openid fhirUser patient/Patient.rs",
        state="standalone-1",
        aud=sb.fhir_base,
        code_challenge=challenge,
        code_challenge_method="S256",
    )
    assert resp.status_code == 303 and "/login?req=" in resp.headers["Location"]
    login_page = s.get(sb.auth + "/login?" + resp.headers["Location"].split("?", 1)[1], timeout=10)
    assert "Dr Ada Sandbox" in login_page.text
    req = re.search(r'name="req" value="([^"]+)"', login_page.text).group(1)
    resp = s.post(sb.auth + "/login", data={"req": req, "user": "agency"}, allow_redirects=False, timeout=10)
    assert "/select-patient?req=" in resp.headers["Location"]
    picker = s.get(sb.auth + "/select-patient", params={"req": req, "q": "Billie"}, timeout=10)
    assert "Billie Sandbox-Two" in picker.text and "Alex Sandbox-One" not in picker.text
    resp = s.post(
        sb.auth + "/select-patient", data={"req": req, "patient": sb.patients[1]}, allow_redirects=False, timeout=10
    )
    got = flows.redirect_params(flows.consent(resp, s))
    assert got["state"] == "standalone-1"
    tok = flows.token(
        {"grant_type": "authorization_code", "code": got["code"], "redirect_uri": REDIRECT, "code_verifier": verifier},
        auth=("app-secret", "s3cret-Value_1.~"),
    )
    assert tok.status_code == 200, tok.text
    body = tok.json()
    assert body["patient"] == sb.patients[1] and body["need_patient_banner"] is True
    assert "refresh_token" not in body  # neither online_access nor offline_access requested
    assert flows.fhir(f"/Patient/{sb.patients[1]}", body["access_token"]).status_code == 200
    # The login cookie means a second standalone authorization skips the login page.
    again = flows.authorize(
        s,
        response_type="code",
        client_id="app-secret",
        redirect_uri=REDIRECT,
        scope="launch/patient patient/Patient.rs",
        state="standalone-2",
        aud=sb.fhir_base,
        code_challenge=challenge,
        code_challenge_method="S256",
    )
    assert "/select-patient?req=" in again.headers["Location"]


def test_public_client_uses_client_id_and_pkce(sb, flows):
    code, verifier = flows.code_for(sb.patients[0], client_id="app-public")
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


def test_es384_client_with_jwks_url_and_key_rotation(sb, flows):
    code, verifier = flows.code_for(sb.patients[0], client_id="app-es")
    assert flows.exchange(code, verifier, client_id="app-es").status_code == 200
    # The client publishes a new key; the server refetches its JWKS once for the unknown kid.
    new_key = SigningKey.generate("ES384")
    sb.jwks_holder["jwks"] = jwks(sb.keys["app-es"], new_key)
    before = sb.jwks_holder["fetches"]
    code, verifier = flows.code_for(sb.patients[0], client_id="app-es")
    resp = flows.token(
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
            **flows.jwt_auth("app-es", key=new_key),
        }
    )
    assert resp.status_code == 200, resp.text
    assert sb.jwks_holder["fetches"] == before + 1


def test_refresh_tokens_rotate_and_reuse_revokes_the_family(sb, flows):
    code, verifier = flows.code_for(sb.patients[0])
    first = flows.exchange(code, verifier).json()
    second = flows.token({"grant_type": "refresh_token", "refresh_token": first["refresh_token"], **flows.jwt_auth()})
    assert second.status_code == 200, second.text
    second = second.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["patient"] == sb.patients[0]
    assert flows.fhir(f"/Patient/{sb.patients[0]}", second["access_token"]).status_code == 200
    # Narrowing on refresh is allowed.
    third = flows.token(
        {
            "grant_type": "refresh_token",
            "refresh_token": second["refresh_token"],
            "scope": "patient/Patient.rs online_access",
            **flows.jwt_auth(),
        }
    ).json()
    assert third["scope"] == "patient/Patient.rs online_access"
    # Replaying an old refresh token fails and revokes everything issued in that grant.
    reuse = flows.token({"grant_type": "refresh_token", "refresh_token": first["refresh_token"], **flows.jwt_auth()})
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    latest = flows.token({"grant_type": "refresh_token", "refresh_token": third["refresh_token"], **flows.jwt_auth()})
    assert latest.json()["error"] == "invalid_grant"
    assert flows.fhir(f"/Patient/{sb.patients[0]}", third["access_token"]).status_code == 401


def test_non_rotating_refresh_keeps_the_same_token(sb, flows):
    params, verifier = flows.ehr_params(sb.patients[0], client_id="app-fixed")
    got = flows.redirect_params(flows.authorize(**params))  # auto_approve: no consent page
    first = flows.token(
        {
            "grant_type": "authorization_code",
            "code": got["code"],
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
            "client_id": "app-fixed",
        }
    ).json()
    for _ in range(2):
        again = flows.token(
            {"grant_type": "refresh_token", "refresh_token": first["refresh_token"], "client_id": "app-fixed"}
        )
        assert again.status_code == 200 and "refresh_token" not in again.json()


def test_backend_services_client_credentials(sb, flows):
    resp = flows.token({"grant_type": "client_credentials", "scope": "system/Patient.rs", **flows.jwt_auth("backend")})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["scope"] == "system/Patient.rs" and body["expires_in"] == 300
    assert "refresh_token" not in body and "patient" not in body
    search = flows.fhir("/Patient", body["access_token"])
    assert search.status_code == 200
    ids = {e["resource"]["id"] for e in search.json().get("entry", [])}
    assert set(sb.patients) <= ids


def test_introspection(sb, flows):
    code, verifier = flows.code_for(sb.patients[0])
    body = flows.exchange(code, verifier).json()
    auth = flows.jwt_auth("backend")
    active = requests.post(sb.auth + "/introspect", data={"token": body["access_token"], **auth}, timeout=10)
    assert active.status_code == 200, active.text
    info = active.json()
    assert info["active"] is True and info["client_id"] == "app-jwt" and info["patient"] == sb.patients[0]
    assert set(info["scope"].split()) == set(body["scope"].split())
    refresh = requests.post(
        sb.auth + "/introspect", data={"token": body["refresh_token"], **flows.jwt_auth("backend")}, timeout=10
    ).json()
    assert refresh["active"] is True and refresh["token_type"] == "refresh_token"
    junk = requests.post(sb.auth + "/introspect", data={"token": "junk", **flows.jwt_auth("backend")}, timeout=10)
    assert junk.json() == {"active": False}
    anonymous = requests.post(sb.auth + "/introspect", data={"token": body["access_token"]}, timeout=10)
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "invalid_client"


def test_introspection_names_the_users_organisation(sb, flows):
    """A store verifying tokens by introspection applies the consent rule by the organisation it is
    told (token_introspection), so the answer carries ``organization`` as the access token does."""
    from thrive_fhir.sandbox.registry import TRUST_REF
    from thrive_fhir.store.token_introspection import IntrospectionVerifier
    from thrive_fhir.store.token_verification import AuthSettings

    code, verifier = flows.code_for(sb.patients[0])
    token = flows.exchange(code, verifier).json()["access_token"]
    info = requests.post(sb.auth + "/introspect", data={"token": token, **flows.jwt_auth("backend")}, timeout=10)
    assert info.json()["organization"] == TRUST_REF
    store_side = IntrospectionVerifier(
        AuthSettings(issuer=sb.auth, audience=sb.fhir_base, require_organization=True),
        sb.auth + "/introspect",
        "app-secret",
        "s3cret-Value_1.~",
    )
    grant = store_side(token)
    assert grant is not None and grant.organization == TRUST_REF and grant.user.startswith("Practitioner/")


def test_authorize_accepts_post_as_advertised(sb, flows):
    params, verifier = flows.ehr_params(sb.patients[0])
    resp = requests.post(sb.auth + "/authorize", data=params, allow_redirects=False, timeout=10)
    code = flows.redirect_params(flows.consent(resp))["code"]
    assert flows.exchange(code, verifier).status_code == 200


def test_ehr_page_unknown_or_malformed_patient_is_404(sb):
    for pid in ("no-such-patient", "bad id!", "x" * 65):
        assert requests.get(f"{sb.origin}/ehr/patients/{pid}", timeout=10).status_code == 404
    assert requests.post(f"{sb.origin}/ehr/patients/nobody/launch", timeout=10).status_code == 404
