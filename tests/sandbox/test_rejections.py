"""Every request a real EHR refuses, refused by the sandbox with the exact OAuth error code."""

from __future__ import annotations

import re
import time
import uuid

import pytest
import requests

from thrive_fhir.sandbox.client_auth import ASSERTION_TYPE
from thrive_fhir.sandbox.clientkit import assertion_form, client_assertion, pkce_pair
from thrive_fhir.sandbox.keys import SigningKey

REDIRECT = "http://127.0.0.1:9/callback"


def page_error(resp: requests.Response) -> str:
    """The OAuth error code on the sandbox's 'request refused' page (no redirect happened)."""
    assert resp.status_code == 400 and "Location" not in resp.headers, resp.status_code
    return re.search(r'data-error="([^"]+)"', resp.text).group(1)


def oauth_error(resp: requests.Response, status: int = 400) -> str:
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers["Cache-Control"] == "no-store"
    return resp.json()["error"]


# -- authorization endpoint -------------------------------------------------------------------------


def test_unknown_client_at_authorize_is_not_redirected(sb, flows):
    params, _ = flows.ehr_params(sb.patients[0], client_id="no-such-client")
    assert page_error(flows.authorize(**params)) == "invalid_client"


def test_unregistered_redirect_uri_is_not_redirected(sb, flows):
    params, _ = flows.ehr_params(sb.patients[0], redirect_uri="https://evil.example/cb")
    resp = flows.authorize(**params)
    assert page_error(resp) == "invalid_request"
    assert "evil.example" not in resp.headers.get("Location", "")


def test_unregistered_redirect_uri_json_error(sb, flows):
    params, _ = flows.ehr_params(sb.patients[0], redirect_uri=REDIRECT + "/")
    resp = requests.get(
        sb.auth + "/authorize", params=params, headers={"Accept": "application/json"}, allow_redirects=False, timeout=10
    )
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    "overrides, error",
    [
        ({"code_challenge": None}, "invalid_request"),  # PKCE mandatory
        ({"code_challenge_method": "plain"}, "invalid_request"),  # plain refused
        ({"code_challenge_method": None}, "invalid_request"),
        ({"state": None}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "launch patient/Patient.rs system/Patient.rs"}, "invalid_scope"),  # not registered
        ({"scope": "launch patient/Patient.rs patient/Condition.r"}, "invalid_scope"),  # not registered
        ({"scope": "launch patient/Observation.dus"}, "invalid_scope"),  # malformed
        ({"scope": "openid patient/Patient.rs"}, "invalid_scope"),  # launch scope missing
    ],
)
def test_authorize_errors_redirect_with_code(sb, flows, overrides, error):
    params, _ = flows.ehr_params(sb.patients[0], **overrides)
    got = flows.redirect_params(flows.authorize(**params))
    assert got["error"] == error
    if overrides.get("state", "x") is not None:
        assert got["state"] == params["state"]
    assert "code" not in got


@pytest.mark.parametrize("aud", ["wrong", "trailing-slash", "missing", "other-host"])
def test_aud_must_equal_the_fhir_base(sb, flows, aud):
    value = {
        "wrong": "https://evil.example/fhir",
        "trailing-slash": sb.fhir_base + "/",
        "missing": None,
        "other-host": sb.fhir_base.replace("127.0.0.1", "localhost"),
    }[aud]
    params, _ = flows.ehr_params(sb.patients[0], aud=value)
    assert flows.redirect_params(flows.authorize(**params))["error"] == "invalid_request"


def test_launch_handle_is_single_use(sb, flows):
    params, _ = flows.ehr_params(sb.patients[0])
    assert flows.authorize(**params).status_code == 303
    assert flows.redirect_params(flows.authorize(**params))["error"] == "invalid_request"


def test_made_up_or_expired_launch_is_refused(sb, flows, later):
    params, _ = flows.ehr_params(sb.patients[0], launch="0" * 64)
    assert flows.redirect_params(flows.authorize(**params))["error"] == "invalid_request"
    params, _ = flows.ehr_params(sb.patients[0])
    later(3600)
    assert flows.redirect_params(flows.authorize(**params))["error"] == "invalid_request"


def test_user_denial_redirects_with_access_denied(sb, flows):
    params, _ = flows.ehr_params(sb.patients[0])
    got = flows.redirect_params(flows.consent(flows.authorize(**params), decision="deny"))
    assert got == {"error": "access_denied", "error_description": got["error_description"], "state": params["state"]}


# -- token endpoint: the authorization code ------------------------------------------------------


def test_reused_code_is_invalid_grant_and_revokes_its_tokens(sb, flows):
    code, verifier = flows.code_for(sb.patients[0])
    first = flows.exchange(code, verifier)
    assert first.status_code == 200
    assert oauth_error(flows.exchange(code, verifier)) == "invalid_grant"
    assert flows.fhir(f"/Patient/{sb.patients[0]}", first.json()["access_token"]).status_code == 401


def test_expired_code_is_invalid_grant(sb, flows, later):
    code, verifier = flows.code_for(sb.patients[0])
    later(601)
    # The client's own clock agrees with the server's, so only the code is stale.
    assert oauth_error(flows.exchange(code, verifier, now=time.time() + 601)) == "invalid_grant"


def test_wrong_redirect_uri_at_token_is_invalid_grant(sb, flows):
    code, verifier = flows.code_for(sb.patients[0])
    resp = flows.token(
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT + "?x=1",
            "code_verifier": verifier,
            **flows.jwt_auth(),
        }
    )
    assert oauth_error(resp) == "invalid_grant"


@pytest.mark.parametrize("verifier", ["missing", "wrong", "short"])
def test_missing_or_wrong_pkce_verifier_is_invalid_grant(sb, flows, verifier):
    code, good = flows.code_for(sb.patients[0])
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, **flows.jwt_auth()}
    if verifier == "wrong":
        form["code_verifier"] = pkce_pair()[0]
    elif verifier == "short":
        form["code_verifier"] = good[:20]
    assert oauth_error(flows.token(form)) == "invalid_grant"


def test_code_issued_to_another_client_is_invalid_grant(sb, flows):
    code, verifier = flows.code_for(sb.patients[0], client_id="app-public")
    assert oauth_error(flows.exchange(code, verifier, client_id="app-jwt")) == "invalid_grant"


# -- token endpoint: client authentication -------------------------------------------------------


def _code_form(flows, sb):
    code, verifier = flows.code_for(sb.patients[0])
    return {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier}


def test_unknown_client_at_token_is_invalid_client(sb, flows):
    stranger = SigningKey.generate("RS384")
    form = {
        "grant_type": "client_credentials",
        "scope": "system/Patient.rs",
        **assertion_form(stranger, "no-such-client", sb.token_url),
    }
    assert oauth_error(flows.token(form), 401) == "invalid_client"
    public = {
        "grant_type": "authorization_code",
        "code": "x",
        "redirect_uri": REDIRECT,
        "code_verifier": "y" * 43,
        "client_id": "no-such-client",
    }
    assert oauth_error(flows.token(public), 401) == "invalid_client"
    basic = flows.token(public | {"client_id": None}, auth=("no-such-client", "secret"))
    assert oauth_error(basic, 401) == "invalid_client"


def test_assertion_exp_more_than_five_minutes_ahead_is_invalid_client(sb, flows):
    form = {"grant_type": "client_credentials", "scope": "system/Patient.rs", **flows.jwt_auth("backend", lifetime=600)}
    assert oauth_error(flows.token(form), 401) == "invalid_client"


def test_replayed_jti_is_invalid_client(sb, flows):
    jti = str(uuid.uuid4())
    form = {"grant_type": "client_credentials", "scope": "system/Patient.rs", **flows.jwt_auth("backend", jti=jti)}
    assert flows.token(form).status_code == 200
    again = {"grant_type": "client_credentials", "scope": "system/Patient.rs", **flows.jwt_auth("backend", jti=jti)}
    assert oauth_error(flows.token(again), 401) == "invalid_client"


@pytest.mark.parametrize(
    "case",
    [
        "rs256",
        "no-kid",
        "unknown-kid",
        "wrong-aud",
        "expired",
        "iss-not-sub",
        "bad-signature",
        "jku-mismatch",
        "wrong-type",
        "typ-not-jwt",
    ],
)
def test_bad_assertions_are_invalid_client(sb, flows, case):
    key = sb.keys["backend"]
    form = {"grant_type": "client_credentials", "scope": "system/Patient.rs"}
    if case == "rs256":
        rs256 = SigningKey(key.private_key, "RS256")
        form |= assertion_form(rs256, "backend", sb.token_url, headers={"kid": key.kid})
    elif case == "no-kid":
        import jwt as pyjwt

        claims = {
            "iss": "backend",
            "sub": "backend",
            "aud": sb.token_url,
            "jti": str(uuid.uuid4()),
            "exp": int(time.time()) + 240,
        }
        form |= {
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": pyjwt.encode(claims, key.private_key, algorithm="RS384"),
        }
    elif case == "unknown-kid":
        form |= assertion_form(key, "backend", sb.token_url, headers={"kid": "not-registered"})
    elif case == "wrong-aud":
        form |= assertion_form(key, "backend", sb.token_url + "/")
    elif case == "expired":
        form |= assertion_form(key, "backend", sb.token_url, now=time.time() - 600)
    elif case == "iss-not-sub":
        form |= assertion_form(key, "backend", sb.token_url, claims={"sub": "app-jwt"})
    elif case == "bad-signature":
        other = SigningKey.generate("RS384")
        form |= assertion_form(other, "backend", sb.token_url, headers={"kid": key.kid})
    elif case == "jku-mismatch":
        form |= assertion_form(key, "backend", sb.token_url, headers={"jku": "https://evil.example/jwks"})
    elif case == "wrong-type":
        form |= {
            "client_assertion_type": "urn:example:other",
            "client_assertion": client_assertion(key, "backend", sb.token_url),
        }
    elif case == "typ-not-jwt":
        form |= assertion_form(key, "backend", sb.token_url, headers={"typ": "at+jwt"})
    assert oauth_error(flows.token(form), 401) == "invalid_client"


def test_basic_auth_wrong_secret_or_secret_in_body_is_invalid_client(sb, flows):
    form = _code_form(flows, sb)
    assert oauth_error(flows.token(form, auth=("app-secret", "wrong")), 401) == "invalid_client"
    body = form | {"client_id": "app-secret", "client_secret": "s3cret-Value_1.~"}
    assert oauth_error(flows.token(body), 401) == "invalid_client"


def test_confidential_client_without_credentials_is_invalid_client(sb, flows):
    form = _code_form(flows, sb) | {"client_id": "app-jwt"}
    assert oauth_error(flows.token(form), 401) == "invalid_client"


def test_two_authentication_methods_is_invalid_request(sb, flows):
    form = _code_form(flows, sb) | flows.jwt_auth()
    assert oauth_error(flows.token(form, auth=("app-secret", "s3cret-Value_1.~"))) == "invalid_request"


# -- token endpoint: grants and scopes -----------------------------------------------------------


def test_client_credentials_scope_outside_registration_is_invalid_scope(sb, flows):
    for scope in ("system/Goal.rs", "system/Observation.cruds system/Patient.cruds", "patient/Patient.rs", ""):
        form = {"grant_type": "client_credentials", "scope": scope, **flows.jwt_auth("backend")}
        assert oauth_error(flows.token(form)) == "invalid_scope", scope


def test_app_client_may_not_use_client_credentials(sb, flows):
    form = {"grant_type": "client_credentials", "scope": "system/Patient.rs", **flows.jwt_auth("app-jwt")}
    assert oauth_error(flows.token(form)) == "unauthorized_client"


def test_unknown_grant_type(sb, flows):
    assert oauth_error(flows.token({"grant_type": "password", **flows.jwt_auth()})) == "unsupported_grant_type"


def test_refresh_cannot_widen_scope(sb, flows):
    code, verifier = flows.code_for(sb.patients[0])
    refresh = flows.exchange(code, verifier).json()["refresh_token"]
    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh,
        "scope": "patient/Goal.cruds online_access",
        **flows.jwt_auth(),
    }
    assert oauth_error(flows.token(form)) == "invalid_scope"


def test_refresh_token_of_another_client_or_unknown_is_invalid_grant(sb, flows):
    code, verifier = flows.code_for(sb.patients[0])
    refresh = flows.exchange(code, verifier).json()["refresh_token"]
    other = {"grant_type": "refresh_token", "refresh_token": refresh, **flows.jwt_auth("app-es", key=sb.keys["app-es"])}
    assert oauth_error(flows.token(other)) == "invalid_grant"
    unknown = {"grant_type": "refresh_token", "refresh_token": "made-up", **flows.jwt_auth()}
    assert oauth_error(flows.token(unknown)) == "invalid_grant"


def test_expired_access_token_is_refused_by_the_store(sb, flows, later):
    resp = flows.token({"grant_type": "client_credentials", "scope": "system/Patient.rs", **flows.jwt_auth("backend")})
    token = resp.json()["access_token"]
    later(301)
    assert flows.fhir("/Patient", token).status_code == 401
