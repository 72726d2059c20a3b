"""The real app launched through the hostile EHR (conftest.py), one hostile behaviour at a time.

Each test names the item of issue 16 it holds the app to; each failed on the code before the fix.
The app's SMART client is never mocked: its discovery, token, JWKS and Patient calls go over
loopback HTTP to the hostile server, which records every request it received.
"""

from __future__ import annotations

import json
import logging
import re
import time
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from smart_app.sessions import utcnow


def text(response) -> str:
    return response.get_data(as_text=True) if hasattr(response, "get_data") else response.text


def assert_plain_words(page: str) -> None:
    """Error pages never name exception classes (issue 16 item 8)."""
    assert not re.search(r"\b[A-Z][A-Za-z]+(Error|Exception)\b", page), re.findall(r"\w+Error\w*", page)
    assert "Traceback" not in page


def test_a_correct_ehr_launch_completes_with_identity_and_refresh_token(ehr, make_app, launcher):
    """The baseline every hostile variant departs from."""
    L = launcher(make_app())
    callback = L.ehr_launch()
    assert callback.status_code == 303, text(callback)[:500]
    page = L.follow(callback)
    assert page.status_code == 200 and "<h1>Summary</h1>" in text(page)
    record = L.only_launch()
    assert record.patient_id == ehr.PATIENT_ID and record.user_ref == "Practitioner/pr-hostile-1"
    assert record.has_refresh_token


# --- item 1: the patient id goes into URLs only after the FHIR id rule -------------------------


@pytest.mark.parametrize("patient", ["../../../../x", "..", ".", "a/b", "Patient/yp-1", "x" * 65, "yp 1", 42, ["yp"]])
def test_patient_id_breaking_the_fhir_id_rule_stops_the_launch_before_any_fhir_call(ehr, make_app, launcher, patient):
    L = launcher(make_app())
    ehr.token["patient"] = patient
    page = L.ehr_launch()
    assert page.status_code == 502, text(page)[:500]
    assert "The EHR sent a launch the app cannot use" in text(page)
    assert L.launch_count() == 0
    # The bearer token was sent nowhere: no request reached the server with an Authorization header,
    # least of all one outside the FHIR base.
    assert [r.raw_uri for r in ehr.requests if "Authorization" in r.headers] == []
    assert all(r.path.startswith(("/fhir/", "/auth/")) for r in ehr.requests), [r.raw_uri for r in ehr.requests]


def test_ehr_client_builds_urls_from_checked_segments(ehr):
    from smart_app.launch.ehr_client import EhrClient, EhrRefused

    token = "t-" + "x" * 20
    ehr.tokens.add(token)
    client = EhrClient(ehr.fhir_base, lambda: token)
    for bad in ("../../../../x", "..", "a/b", "%2e%2e", ""):
        with pytest.raises(EhrRefused):
            client.read("Patient", bad)
    for bad_url in (
        ehr.fhir_base + "/Patient/../../x",
        ehr.fhir_base + "/Patient/%2e%2e/x",
        ehr.origin + "/x",
        ehr.fhir_base + "x/Patient/1",
    ):
        with pytest.raises(EhrRefused):
            client.request("GET", bad_url)
    with pytest.raises(EhrRefused):
        client.update({"resourceType": "Patient", "id": "../x"})
    assert ehr.requests == []  # nothing was sent
    assert client.read("Patient", ehr.PATIENT_ID)["id"] == ehr.PATIENT_ID
    assert [r.path for r in ehr.requests] == [f"/fhir/Patient/{ehr.PATIENT_ID}"]


def test_sync_fhir_client_checks_ids_too(ehr):
    from thrive_fhir.client.fhir_http import PAYLOAD, FhirClient, StaticBearer

    client = FhirClient(ehr.fhir_base, StaticBearer("t"))
    for bad in ("../../x", "..", "a/b"):
        reply = client.read("Patient", bad)
        assert reply.kind == PAYLOAD and reply.status == 0
    assert client.request("GET", "Patient/../../x").kind == PAYLOAD
    assert ehr.requests == []


# --- item 2: the id_token issuer is always checked ------------------------------------------------


def test_forged_id_token_issuer_is_refused_when_discovery_names_no_issuer(ehr, make_app, launcher):
    L = launcher(make_app())
    ehr.discovery_issuer = False
    ehr.claims["iss"] = "https://attacker.example/auth"
    page = L.ehr_launch()
    assert page.status_code == 401 and "Could not confirm who you are" in text(page)
    assert L.launch_count() == 0


def test_openid_launch_without_any_expected_issuer_is_refused(ehr, make_app, launcher):
    """Discovery has no ``issuer`` and the registry pins none: nothing to check ``iss`` against."""
    L = launcher(make_app())
    ehr.discovery_issuer = False
    page = L.ehr_launch()
    assert page.status_code == 401
    assert "does not say which service issues its identity tokens" in text(page)
    assert L.launch_count() == 0


def test_pinned_oidc_issuer_is_the_expected_issuer_when_discovery_names_none(ehr, make_app, launcher):
    app = make_app(oidc_issuer=ehr.issuer)
    ehr.discovery_issuer = False
    assert launcher(app).ehr_launch().status_code == 303
    ehr.claims["iss"] = "https://attacker.example/auth"
    L = launcher(make_app(oidc_issuer=ehr.issuer))
    page = L.ehr_launch()
    assert page.status_code == 401 and "was not issued by this EHR" in text(page)
    assert_plain_words(text(page))


# --- item 3: pinned authorization servers are whole origins ---------------------------------------


def test_authorization_server_on_another_port_of_the_same_host_is_refused(ehr, make_app, launcher):
    L = launcher(make_app())
    ehr.auth_on_other_port = True
    page = L.ehr_launch()
    assert page.status_code == 502 and "EHR configuration unavailable" in text(page)
    assert L.authorize is None  # never sent to authorize there
    assert not [r for r in ehr.requests if r.origin == ehr.other.origin]
    assert L.launch_count() == 0


def test_authorization_server_on_another_port_is_accepted_when_its_origin_is_pinned(ehr, make_app, launcher):
    L = launcher(make_app(auth_hosts=[ehr.other.origin]))
    ehr.auth_on_other_port = True
    assert L.ehr_launch().status_code == 303
    assert {r.path for r in ehr.requests if r.origin == ehr.other.origin} == {"/auth/authorize", "/auth/token"}


def test_auth_hosts_entries_must_be_hosts_or_origins():
    from smart_app.config import ConfigError, parse_config

    base = {"iss": "https://ehr.example.test/fhir", "client_id": "c", "auth_method": "public"}
    reg = parse_config(
        {"testing": True, "ehr": [{**base, "auth_hosts": ["auth.example.test", "https://idp.example.test:8443"]}]}
    ).ehrs[base["iss"]]
    assert reg.url_allowed("https://auth.example.test/token", pinned=True)
    assert reg.url_allowed("https://idp.example.test:8443/authorize", pinned=True)
    assert reg.url_allowed("https://ehr.example.test/oauth/token", pinned=True)
    for other in (
        "https://auth.example.test:8443/token",
        "https://idp.example.test/authorize",
        "https://ehr.example.test:444/oauth",
        "http://auth.example.test/token",
    ):
        assert not reg.url_allowed(other, pinned=True), other
    for bad in ("https://auth.example.test/path", "ftp://auth.example.test", "https://u@auth.example.test"):
        with pytest.raises(ConfigError, match="auth_hosts"):
            parse_config({"testing": True, "ehr": [{**base, "auth_hosts": [bad]}]})


# --- item 4: the Patient read at launch fails closed ----------------------------------------------

BAD_PATIENT_ANSWERS = {
    "http-500": (500, b'{"resourceType": "OperationOutcome"}', "application/fhir+json", "HTTP 500"),
    "malformed-json": (200, b'{"resourceType": "Patient", "id": ', "application/fhir+json", "could not be read"),
    "html": (200, b"<!doctype html><title>Sign in</title><p>Session expired</p>", "text/html", "could not be read"),
    "list-body": (200, None, "application/fhir+json", "was not a patient record"),
    "identifier-strings": (200, None, "application/fhir+json", "not in a form the app can read"),
    "other-patient": (200, None, "application/fhir+json", "different young person"),
    "no-name": (200, None, "application/fhir+json", "has no name"),
}


def _bad_body(ehr, kind: str) -> bytes:
    good = ehr.good_patient()
    body = {
        "list-body": [good],
        "identifier-strings": {**good, "identifier": [ehr.NHS]},
        "other-patient": {**good, "id": "someone-else"},
        "no-name": {k: v for k, v in good.items() if k != "name"},
    }[kind]
    return json.dumps(body).encode()


@pytest.mark.parametrize("kind", list(BAD_PATIENT_ANSWERS))
def test_patient_read_failure_shows_no_plan_and_offers_a_retry(ehr, make_app, launcher, kind):
    L = launcher(make_app())
    status, body, content_type, said = BAD_PATIENT_ANSWERS[kind]
    ehr.patient_answer = (status, body if body is not None else _bad_body(ehr, kind), content_type)
    callback = L.ehr_launch()
    assert callback.status_code == 303, text(callback)[:300]
    page = L.follow(callback)
    html = text(page)
    assert page.status_code == 502
    assert "We could not confirm who this young person is" in html and said in html
    assert "<h1>Summary</h1>" not in html and "thrive-patient-banner" not in html and 'id="risk-alert"' not in html
    assert_plain_words(html)
    record = L.only_launch()
    # every page of the launch leads back to the same page: no plan without a confirmed identity
    summary = L.get(f"/l/{record.launch_id}/summary")
    assert summary.status_code == 303 and summary.headers["Location"].endswith(f"/l/{record.launch_id}/patient")
    # the EHR recovers; "Try again" reads the Patient again and the plan opens under their name
    ehr.patient_answer = None
    retry = re.search(r'id="identity-retry" href="([^"]+)"', html).group(1).replace("&amp;", "&")
    again = L.follow(L.get(retry))
    assert again.status_code == 200 and "<h1>Summary</h1>" in text(again)
    assert "HOSTILE-TEST, Robin" in text(again) and f"{ehr.NHS[:3]} {ehr.NHS[3:6]} {ehr.NHS[6:]}" in text(again)


def test_patient_read_at_launch_refreshes_a_lapsed_token_once(ehr, make_app, launcher):
    """The EHR refuses the fresh access token (it lapsed early): one refresh, one retry, and the
    identity is confirmed, rather than a launch stopped for nothing."""
    L = launcher(make_app())
    ehr.refuse_first_access_token = True
    page = L.follow(L.ehr_launch())
    assert page.status_code == 200 and "<h1>Summary</h1>" in text(page)
    grants = [r.form.get("grant_type") for r in ehr.seen("/auth/token")]
    assert grants == ["authorization_code", "refresh_token"]
    assert [r.path for r in ehr.seen("/fhir/Patient")] == [f"/fhir/Patient/{ehr.PATIENT_ID}"] * 2


def test_a_launch_whose_identity_was_never_read_shows_no_plan(app):
    """The agency picker stores an unconfirmed banner when its Patient read fails: same rule."""
    from tests.support.app import TEST_ORIGIN, make_launch

    launch = make_launch(app, banner={"name": None, "unavailable": True})
    r = launch.client().get(launch.url("summary"), base_url=TEST_ORIGIN)
    assert r.status_code == 303 and r.headers["Location"].endswith("/patient")


# --- item 5: every token-response member is hostile input -----------------------------------------


@pytest.mark.parametrize(
    "members,check",
    [
        ({"expires_in": 10**12}, lambda rec, s: rec.token_expires_at - utcnow() <= timedelta(hours=24)),
        ({"expires_in": 1.5e300}, lambda rec, s: rec.token_expires_at - utcnow() <= timedelta(hours=24)),
        ({"expires_in": -5}, lambda rec, s: timedelta(0) < rec.token_expires_at - utcnow() <= timedelta(seconds=300)),
        ({"expires_in": "3600"}, lambda rec, s: timedelta(minutes=59) < rec.token_expires_at - utcnow()),
        ({"expires_in": [1]}, lambda rec, s: rec.token_expires_at - utcnow() <= timedelta(seconds=300)),
        ({"refresh_token": 12345}, lambda rec, s: not rec.has_refresh_token),
        ({"scope": ["patient/*.cruds"]}, lambda rec, s: "patient/*.cruds" not in rec.scopes and "launch" in rec.scopes),
        ({"need_patient_banner": "no"}, lambda rec, s: rec.need_patient_banner is True),
        ({"encounter": "../../e"}, lambda rec, s: rec.encounter_id is None),
        ({"encounter": {"id": 1}}, lambda rec, s: rec.encounter_id is None),
    ],
    ids=[
        "expires-1e12",
        "expires-float-huge",
        "expires-negative",
        "expires-string",
        "expires-list",
        "refresh-int",
        "scope-list",
        "banner-string",
        "encounter-dots",
        "encounter-object",
    ],
)
def test_hostile_token_response_values_never_give_a_500(ehr, make_app, launcher, members, check):
    L = launcher(make_app())
    ehr.token.update(members)
    callback = L.ehr_launch()
    assert callback.status_code == 303, text(callback)[:500]
    assert L.follow(callback).status_code == 200
    assert check(L.only_launch(), L.sessions)


@pytest.mark.parametrize(
    "members",
    [{"token_type": 7}, {"token_type": None}, {"access_token": {"t": 1}}, {"access_token": ""}, {"id_token": 5}],
)
def test_unusable_token_response_members_stop_the_launch_with_a_page(ehr, make_app, launcher, members):
    L = launcher(make_app())
    ehr.token.update(members)
    page = L.ehr_launch()
    assert page.status_code in (401, 502), text(page)[:300]
    assert_plain_words(text(page))
    assert L.launch_count() == 0


# --- item 6: log injection ------------------------------------------------------------------------


def test_newline_in_the_callback_error_cannot_forge_a_log_line(ehr, make_app, launcher, caplog):
    caplog.set_level(logging.INFO)
    L = launcher(make_app())
    ehr.authorize_error = "invalid_request\n2026-12-02 10:00:00 smart_app.launch INFO launch completed mode=ehr"
    page = L.ehr_launch()
    assert page.status_code == 502
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("smart_app")]
    assert messages and not [m for m in messages if "\n" in m or "\r" in m]
    assert not [m for m in messages if "launch completed" in m]


def test_every_app_log_value_is_escaped(make_app, caplog):
    make_app()
    caplog.set_level(logging.INFO)
    for name in ("smart_app", "smart_app.launch", "smart_app.summary.agency", "thrive_fhir.client.smart_launch"):
        logging.getLogger(name).warning("value %s", "a\r\nFORGED line\u2028and\x1b[31mred")
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 4
    for m in messages:
        assert "\n" not in m and "\r" not in m and "\u2028" not in m and "\x1b" not in m
        assert "a\\r\\nFORGED line" in m


def test_error_uri_is_linked_only_on_the_authorization_servers_origin():
    from smart_app.launch.routes import _safe_error_uri

    token = "https://auth.example.test/oauth/token"
    assert (
        _safe_error_uri("https://auth.example.test/reapprove?x=1", token) == "https://auth.example.test/reapprove?x=1"
    )
    for bad in (
        "https://auth.example.test:8443/reapprove",
        "http://auth.example.test/reapprove",
        "https://evil.example/reapprove",
        "https://user@auth.example.test/x",
        "javascript:alert(1)",
        "",
    ):
        assert _safe_error_uri(bad, token) is None, bad


# --- item 7: refresh tokens for both launch kinds, expiry worded per kind --------------------------


def _authorize_scope(ehr) -> list[str]:
    [authorize] = ehr.seen("/auth/authorize")
    return parse_qs(urlsplit(authorize.raw_uri).query)["scope"][0].split()


def test_ehr_launch_asks_for_online_access_and_keeps_the_refresh_token(ehr, make_app, launcher):
    L = launcher(make_app())
    assert L.ehr_launch().status_code == 303
    scopes = _authorize_scope(ehr)
    assert "online_access" in scopes and "offline_access" not in scopes
    assert L.only_launch().has_refresh_token


def test_standalone_agency_launch_asks_for_online_access_and_keeps_the_refresh_token(ehr, make_app, launcher):
    L = launcher(make_app())
    callback = L.standalone_launch()
    assert callback.status_code == 303, text(callback)[:400]
    scopes = _authorize_scope(ehr)
    assert "launch/patient" in scopes and "online_access" in scopes and "offline_access" not in scopes
    record = L.only_launch()
    assert record.mode == "standalone" and record.has_refresh_token


def test_session_end_is_worded_for_the_launch_kind(ehr, make_app, launcher):
    app = make_app()
    agency = launcher(app)
    assert agency.standalone_launch().status_code == 303
    record = agency.only_launch()
    agency.sessions.end_launch(record.launch_id)
    ended = agency.get(f"/l/{record.launch_id}/shared-plan")
    page = text(ended)
    assert ended.status_code == 401 and "Your sign-in has ended" in page and "Sign in again" in page
    assert "chart" not in page and "patient&#39;s record" not in page
    clinician = launcher(make_app())
    assert clinician.ehr_launch().status_code == 303
    record = clinician.only_launch()
    clinician.sessions.end_launch(record.launch_id)
    ended = clinician.get(f"/l/{record.launch_id}/summary")
    assert ended.status_code == 401 and "Relaunch the app from the patient's chart" in text(ended)


# --- item 8: loose acceptance ---------------------------------------------------------------------


def test_absolute_fhir_user_on_another_server_is_refused(ehr, make_app, launcher):
    L = launcher(make_app())
    ehr.claims["fhirUser"] = "https://other-ehr.example/fhir/Practitioner/pr-hostile-1"
    page = L.ehr_launch()
    assert page.status_code == 403 and "on another system" in text(page)
    assert L.launch_count() == 0
    assert not [r for r in ehr.requests if "Practitioner" in r.path]


def test_id_token_with_an_extra_audience_and_no_azp_is_refused(ehr, make_app, launcher):
    L = launcher(make_app())
    ehr.claims["aud"] = [ehr.CLIENT_ID, "another-app"]
    page = L.ehr_launch()
    assert page.status_code == 401 and "issued for another app" in text(page)
    assert L.launch_count() == 0


@pytest.mark.parametrize(
    "claims,accepted",
    [
        ({"aud": ["CLIENT", "another-app"], "azp": "CLIENT"}, True),
        ({"aud": ["CLIENT"]}, True),
        ({"azp": "another-app"}, False),
        ({"aud": ["CLIENT", "another-app"], "azp": "another-app"}, False),
    ],
)
def test_id_token_azp_rules(ehr, make_app, launcher, claims, accepted):
    L = launcher(make_app())
    ehr.claims.update(json.loads(json.dumps(claims).replace("CLIENT", ehr.CLIENT_ID)))
    assert (L.ehr_launch().status_code == 303) is accepted


@pytest.mark.parametrize(
    "switch,said",
    [
        ("stranger_key", "signature does not match"),
        ("expired", "has expired"),
        ("wrong_aud", "issued for another app"),
        ("no_sub", "leaves out details"),
    ],
)
def test_id_token_error_pages_say_it_plainly(ehr, make_app, launcher, switch, said):
    L = launcher(make_app())
    if switch == "stranger_key":
        ehr.sign_with_stranger_key = True
    elif switch == "expired":
        ehr.claims.update({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 4000})
    elif switch == "wrong_aud":
        ehr.claims["aud"] = "another-app"
    else:
        ehr.claims["sub"] = ehr.DROP
    page = L.ehr_launch()
    assert page.status_code == 401 and said in text(page)
    assert_plain_words(text(page))


# --- Epic-Client-ID (issue 17: a vendor quirk made explicit) ------------------------------------


@pytest.mark.parametrize("configured", [False, True])
def test_epic_client_id_header_goes_only_to_ehrs_configured_for_it(ehr, make_app, launcher, configured):
    L = launcher(make_app(oidc_issuer=ehr.issuer, epic_client_id_header=configured))
    ehr.well_known_404 = True
    assert L.ehr_launch().status_code == 303
    [metadata] = ehr.seen("/fhir/metadata")
    assert metadata.headers.get("Epic-Client-Id") == (ehr.CLIENT_ID if configured else None)
    assert all("Epic-Client-Id" not in r.headers for r in ehr.requests if r.path != "/fhir/metadata")
