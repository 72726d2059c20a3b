"""The app against real-EHR quirks, each produced by a mock switch of the real sandbox on loopback
(thrive_fhir/sandbox/quirks.py; the sandbox's exact answers are pinned in tests/sandbox/test_quirks.py).

Every test starts its own app instance registered as its own sandbox client, so per-client switches
do not leak between tests and the app's discovery/JWKS caches start empty. Each asserts what the user
sees (a clear page), what is stored (nothing, on failure), and that no code or token reaches the logs.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from smart_app import create_app
from smart_app.launch.ehr_client import EhrClient, EhrSessionEnded
from smart_app.sessions import launches, utcnow
from thrive_fhir import canonical, ids
from thrive_fhir.sandbox.keys import jwks
from thrive_fhir.sandbox.quirks import Quirks, switched
from thrive_fhir.sandbox.registry import Client
from thrive_fhir.sandbox.server import ServerThread

SCOPES = frozenset("launch launch/patient openid fhirUser online_access offline_access patient/*.cruds".split())
AGENCY_ORG_REF = f"Organization/{ids.deterministic_id(canonical.ODS_ORG, 'SXX01')}"
SETUP_REJECTED = "The EHR rejected this app&#39;s setup. Contact support, ref"


@pytest.fixture
def start_app(live, tmp_path):
    """``start_app(name, online_access=..., oidc_issuer=..., **client_switches)``: a fresh app on its
    own loopback port, registered with the live sandbox as its own (auto-approving) client."""
    servers: list[ServerThread] = []

    def start(name: str, *, online_access: bool = True, oidc_issuer: str | None = None, **switches):
        server = ServerThread(name=f"app-{name}")
        servers.append(server)
        origin = server.origin
        client = live.authority.registry.add(
            Client(
                f"thrive-{name}-{server.port}",
                "private_key_jwt",
                name=f"THRIVE ({name})",
                auto_approve=True,
                redirect_uris=(origin + "/callback",),
                launch_url=origin + "/launch",
                scopes=SCOPES,
                jwks=jwks(live.key),
                organization="RXX01",
                quirks=Quirks(**switches),
            )
        )
        ehr = {
            "name": "Sandbox EHR",
            "iss": live.fhir_base,
            "client_id": client.client_id,
            "auth_method": "private_key_jwt",
            "private_key_file": str(live.tmp / "app-key.pem"),
            "key_id": live.key.kid,
            "online_access": online_access,
            "allow_insecure_loopback": True,
            "frame_ancestors": [live.sandbox_origin],
        }
        if oidc_issuer:
            ehr["oidc_issuer"] = oidc_issuer
        app = create_app(
            {
                "secret_key": secrets.token_urlsafe(32),
                "database_url": f"sqlite:///{tmp_path}/{name}.db",
                "ods_code": "RXX01",
                "public_base_url": origin,
                "journeys": False,
                "ehr": [ehr],
                "standalone": [
                    {
                        "key": "school",
                        "name": "Sandbox High School",
                        "iss": live.fhir_base,
                        "organization": AGENCY_ORG_REF,
                    }
                ],
            }
        )
        server.start(app)
        return SimpleNamespace(
            app=app,
            origin=origin,
            client=client,
            sessions=app.extensions["thrive"].sessions,
            browser=lambda: live.browser_session(origin),
            launch_url=lambda patient, user="clinician": live.ehr_launch_url(patient, user=user, origin=origin),
        )

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def logs(caplog):
    caplog.set_level(logging.DEBUG)
    return caplog


# --- helpers ------------------------------------------------------------------------------------


def ehr_launch(app, patient):
    b = app.browser()
    return b, b.go(app.launch_url(patient))


def standalone_launch(app, live):
    """Agency worker: pick the organisation, sign in at the sandbox as the agency user."""
    b = app.browser()
    login = b.go(app.origin + "/standalone/start?org=school")
    assert "/auth/login" in login.url, login.text[:300]
    req = re.search(r'name="req" value="([^"]+)"', login.text).group(1)
    return b, b.go(live.sandbox_origin + "/auth/login", method="POST", data={"req": req, "user": "agency"})


def launch_id_of(resp) -> str:
    return re.search(r"/l/([^/]+)/", resp.url).group(1)


def count_launches(app) -> int:
    with app.sessions.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(launches)).scalar()


def stored_refresh_token(app, launch_id) -> str | None:
    with app.sessions.engine.connect() as conn:
        value = conn.execute(sa.select(launches.c.refresh_token_enc).where(launches.c.launch_id == launch_id)).scalar()
    return app.sessions.decrypt(value)


def assert_nothing_secret_logged(logs, browser, *extra: str | None) -> None:
    """No authorization code, state, launch handle or token in any log record."""
    found: list[str] = [s for s in extra if s]
    for resp in browser.history:
        query = parse_qs(urlsplit(resp.url).query)
        for name in ("code", "state", "launch"):
            found += query.get(name, [])
    logged = "\n".join(r.getMessage() for r in logs.records)
    for value in found:
        assert value not in logged


def ehr_client(app, launch_id):
    state = app.app.extensions["thrive"]
    return EhrClient.for_launch(state, state.sessions.get_launch(launch_id))


# --- no patient (Epic provider standalone, SA-04) -------------------------------------------------


def test_no_patient_standalone_says_not_supported_and_stores_nothing(live, start_app, logs):
    app = start_app("nopatient-sa", no_patient=True)
    b, page = standalone_launch(app, live)
    assert page.url.startswith(app.origin + "/callback")
    assert page.status_code == 400
    assert "No young person was chosen" in page.text and "is not supported" in page.text
    assert not any("/select-patient" in h.url for h in b.history)  # the EHR never asked
    assert count_launches(app) == 0
    assert_nothing_secret_logged(logs, b)


@pytest.fixture
def parent_user(live):
    """A sandbox user whose fhirUser is a RelatedPerson (a parent), not a member of staff."""
    from thrive_fhir.sandbox.registry import SandboxUser

    live.authority.registry.users["parent"] = SandboxUser("parent", "Pat Parent", "RelatedPerson/rp-1", None, "Parent")
    yield "parent"
    del live.authority.registry.users["parent"]


def test_agency_sign_in_that_is_not_staff_is_refused_at_launch(live, start_app, logs, parent_user):
    """A parent signing in on the agency page: no staff fhirUser, so no read could be audited."""
    app = start_app("not-staff-sa")
    before = count_launches(app)
    b = app.browser()
    login = b.go(app.origin + "/standalone/start?org=school")
    req = re.search(r'name="req" value="([^"]+)"', login.text).group(1)
    pick = b.go(live.sandbox_origin + "/auth/login", method="POST", data={"req": req, "user": parent_user})
    page = (
        b.go(
            live.sandbox_origin + "/auth/select-patient", method="POST", data={"req": req, "patient": live.patients[0]}
        )
        if "select-patient" in pick.url
        else pick
    )
    assert page.url.startswith(app.origin + "/callback")
    assert page.status_code == 403 and "We could not tell who you are" in page.text
    assert count_launches(app) == before
    assert "rp-1" not in "\n".join(r.getMessage() for r in logs.records)
    assert_nothing_secret_logged(logs, b)


def test_ehr_launch_by_someone_who_is_not_staff_is_refused(live, start_app, logs, parent_user):
    app = start_app("not-staff-ehr")
    before = count_launches(app)
    b = app.browser()
    page = b.go(app.launch_url(live.patients[0], user=parent_user))
    assert page.url.startswith(app.origin + "/callback")
    assert page.status_code == 403 and "This app is for staff" in page.text and "RelatedPerson" in page.text
    assert count_launches(app) == before
    assert_nothing_secret_logged(logs, b)


def test_no_patient_in_an_ehr_launch_is_refused_clearly(live, start_app, logs):
    app = start_app("nopatient-ehr", no_patient=True)
    b, page = ehr_launch(app, live.patients[0])
    assert page.status_code == 400 and "No patient was chosen" in page.text
    assert count_launches(app) == 0
    assert_nothing_secret_logged(logs, b)


# --- id_token without kid (LAUNCHER), JWKS with one or two keys, rotation -----------------------


def test_id_token_without_kid_and_one_published_key_is_accepted(live, start_app, logs):
    app = start_app("nokid-one", id_token_without_kid=True)
    assert len(live.authority.jwks()["keys"]) == 1
    b, page = ehr_launch(app, live.patients[0])
    assert page.status_code == 200 and "<h1>Summary</h1>" in page.text, page.text[:400]
    record = app.sessions.get_launch(launch_id_of(page))
    assert record.user_ref and record.user_ref.startswith("Practitioner/")
    assert_nothing_secret_logged(logs, b, app.sessions.access_token(record.launch_id))


def test_id_token_without_kid_and_two_published_keys_is_refused_clearly(live, start_app, logs):
    app = start_app("nokid-two", id_token_without_kid=True)
    with switched(live.authority.registry, jwks_extra_key=True):
        b, page = ehr_launch(app, live.patients[0])
    assert page.status_code == 401
    assert "Could not confirm who you are" in page.text
    assert "does not say which of the EHR&#39;s signing keys was used" in page.text
    assert count_launches(app) == 0
    assert_nothing_secret_logged(logs, b)


def test_rotated_signing_key_is_fetched_once_and_accepted(live, start_app, logs):
    app = start_app("rotate")
    _b, first = ehr_launch(app, live.patients[0])
    assert first.status_code == 200
    live.authority.rotate_signing_key()  # new kid; the app's cached JWKS does not have it
    b2, second = ehr_launch(app, live.patients[1])
    assert second.status_code == 200 and "<h1>Summary</h1>" in second.text, second.text[:400]
    assert app.sessions.get_launch(launch_id_of(second)).patient_id == live.patients[1]
    assert_nothing_secret_logged(logs, b2)


def test_kidless_id_token_after_a_hard_rotation_refetches_the_lone_key(live, start_app):
    app = start_app("nokid-rotate", id_token_without_kid=True)
    live.authority.rotate_signing_key(keep_previous=False)  # start from one published key
    assert ehr_launch(app, live.patients[0])[1].status_code == 200  # caches the lone key
    live.authority.rotate_signing_key(keep_previous=False)  # the cached key is gone for good
    _b, page = ehr_launch(app, live.patients[0])
    assert page.status_code == 200 and "<h1>Summary</h1>" in page.text, page.text[:400]


def test_token_withdrawn_mid_session_gets_one_refresh_and_a_retry(live, start_app, logs):
    """A hard key rotation makes the EHR refuse a token whose expires_in has not run out (TS-09)."""
    app = start_app("withdrawn")
    b, page = ehr_launch(app, live.patients[0])
    lid = launch_id_of(page)
    old = app.sessions.access_token(lid)
    live.authority.rotate_signing_key(keep_previous=False)
    with app.app.app_context():
        patient = ehr_client(app, lid).read("Patient", live.patients[0])
    assert patient["id"] == live.patients[0]
    new = app.sessions.access_token(lid)
    assert new and new != old
    assert_nothing_secret_logged(logs, b, old, new, stored_refresh_token(app, lid))


# --- token lifetime, rotating and non-rotating refresh ------------------------------------------


def test_oracle_570_second_tokens_are_kept_with_their_expiry(live, start_app):
    app = start_app("oracle", token_lifetime=570)
    _b, page = ehr_launch(app, live.patients[0])
    assert page.status_code == 200
    record = app.sessions.get_launch(launch_id_of(page))
    left = (record.token_expires_at - utcnow()).total_seconds()
    assert 540 < left <= 570, left
    # 570 s is well over the 60 s refresh margin: the first page did not refresh.
    assert record.refreshed_at is None


@pytest.mark.parametrize("rotate", [True, False], ids=["rotating", "non-rotating"])
def test_short_tokens_are_refreshed_mid_session(live, start_app, logs, rotate):
    app = start_app(f"short-{int(rotate)}", token_lifetime=1, rotate_refresh_tokens=rotate)
    b, page = ehr_launch(app, live.patients[0])
    assert page.status_code == 200, page.text[:300]
    lid = launch_id_of(page)
    seen_access, seen_refresh = [app.sessions.access_token(lid)], [stored_refresh_token(app, lid)]
    for _ in range(2):
        time.sleep(1.2)  # the token has expired at the EHR and in the app
        again = b.go(page.url)
        assert again.status_code == 200 and "<h1>Summary</h1>" in again.text
        seen_access.append(app.sessions.access_token(lid))
        seen_refresh.append(stored_refresh_token(app, lid))
    assert len(set(seen_access)) == 3  # a new access token each time
    if rotate:
        assert len(set(seen_refresh)) == 3  # each rotated refresh token replaced the old one
    else:
        assert len(set(seen_refresh)) == 1  # none returned: the app kept (and reused) the old one
    assert_nothing_secret_logged(logs, b, *seen_access, *seen_refresh)


def test_short_tokens_without_refresh_end_the_session_clearly(live, start_app):
    app = start_app("short-norefresh", online_access=False, token_lifetime=1)
    b, page = ehr_launch(app, live.patients[0])
    lid = launch_id_of(page)
    assert stored_refresh_token(app, lid) is None
    time.sleep(1.2)
    ended = b.go(page.url)
    assert ended.status_code == 401
    assert "Your session with the EHR has ended" in ended.text and "Relaunch the app" in ended.text


# --- discovery ------------------------------------------------------------------------------------


def test_well_known_404_falls_back_to_metadata(live, start_app, logs):
    app = start_app("wk404", oidc_issuer=live.sandbox_origin + "/auth")
    with switched(live.authority.registry, well_known_404=True):
        b, page = ehr_launch(app, live.patients[0])
    assert page.status_code == 200 and "<h1>Summary</h1>" in page.text, page.text[:400]
    authorize = next(h for h in b.history if "/auth/authorize" in h.url)
    assert authorize.url.startswith(live.sandbox_origin + "/auth/authorize?")
    assert_nothing_secret_logged(logs, b, app.sessions.access_token(launch_id_of(page)))


def test_well_known_404_without_a_pinned_id_token_issuer_stops_clearly(live, start_app):
    """/metadata names no id_token issuer or keys: without a registry pin the app cannot check who
    the user is, so it stops with a clear page and stores nothing."""
    app = start_app("wk404-nopin")
    with switched(live.authority.registry, well_known_404=True):
        _b, page = ehr_launch(app, live.patients[0])
    assert page.status_code == 401 and "Could not confirm who you are" in page.text
    assert count_launches(app) == 0


def test_relative_discovery_endpoints_are_resolved(live, start_app):
    app = start_app("relative")
    with switched(live.authority.registry, relative_discovery_endpoints=True):
        b, page = ehr_launch(app, live.patients[0])
    assert page.status_code == 200 and "<h1>Summary</h1>" in page.text, page.text[:400]
    authorize = next(h for h in b.history if "/auth/authorize" in h.url)
    assert authorize.url.startswith(live.sandbox_origin + "/auth/authorize?")


# --- LAUNCHER's simulated errors ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["auth_invalid_client_id", "auth_invalid_redirect_uri"])
def test_authorize_errors_that_cannot_come_back_stop_at_the_ehr(live, start_app, logs, name):
    """RFC 6749 4.1.2.1: the EHR shows these itself and never redirects; the app stores nothing."""
    app = start_app(name, simulate_error=name)
    b, page = ehr_launch(app, live.patients[0])
    assert page.url.startswith(live.sandbox_origin + "/auth/authorize")
    assert page.status_code == 400
    assert not any(h.url.startswith(app.origin + "/callback") for h in b.history)
    assert count_launches(app) == 0
    assert_nothing_secret_logged(logs, b)


def test_authorize_invalid_scope_shows_the_setup_page(live, start_app, logs):
    app = start_app("auth-scope", simulate_error="auth_invalid_scope")
    b, page = ehr_launch(app, live.patients[0])
    assert page.url.startswith(app.origin + "/callback") and page.status_code == 502
    assert SETUP_REJECTED in page.text
    assert count_launches(app) == 0
    assert_nothing_secret_logged(logs, b)


@pytest.mark.parametrize(
    "name", ["auth_invalid_client_secret", "token_invalid_token", "token_invalid_jti", "token_invalid_scope"]
)
def test_token_endpoint_refusals_show_the_setup_page(live, start_app, logs, name):
    app = start_app(name.replace("_", "-"), simulate_error=name)
    b, page = ehr_launch(app, live.patients[0])
    assert page.url.startswith(app.origin + "/callback") and page.status_code == 502
    assert SETUP_REJECTED in page.text
    assert count_launches(app) == 0
    assert "code=" not in page.text
    assert_nothing_secret_logged(logs, b)


def test_expired_refresh_token_mid_session_ends_the_session_and_drops_tokens(live, start_app, logs):
    app = start_app("refresh-expired", token_lifetime=1)
    b, page = ehr_launch(app, live.patients[0])
    assert page.status_code == 200
    lid = launch_id_of(page)
    access, refresh = app.sessions.access_token(lid), stored_refresh_token(app, lid)
    with switched(app.client, simulate_error="token_expired_refresh_token"):
        time.sleep(1.2)
        ended = b.go(page.url)
    assert ended.status_code == 401 and "Your session with the EHR has ended" in ended.text
    assert app.sessions.access_token(lid) is None and stored_refresh_token(app, lid) is None
    assert_nothing_secret_logged(logs, b, access, refresh)


@pytest.mark.parametrize("name", ["request_invalid_token", "request_expired_token"])
def test_refused_access_token_gets_one_refresh_then_the_session_ends(live, start_app, logs, name):
    app = start_app(name.replace("_", "-"), simulate_error=name)
    b, page = ehr_launch(app, live.patients[0])
    # The Patient read at launch was refused too: no plan without a confirmed identity (issue 16
    # item 4), so the launch lands on the page that says so and offers a retry.
    assert page.status_code == 502 and "We could not confirm who this young person is" in page.text
    assert "<h1>Summary</h1>" not in page.text and 'id="identity-retry"' in page.text
    lid = launch_id_of(page)
    first = app.sessions.access_token(lid)
    with app.app.app_context(), pytest.raises(EhrSessionEnded):
        ehr_client(app, lid).read("Patient", live.patients[0])
    second = app.sessions.access_token(lid)
    assert second != first  # one refresh was made (its token is refused too), then it gave up
    assert_nothing_secret_logged(logs, b, first, second, stored_refresh_token(app, lid))


def test_refused_access_token_recovers_when_the_refreshed_one_is_good(live, start_app):
    app = start_app("request-recover")
    with switched(app.client, simulate_error="request_expired_token"):
        _b, page = ehr_launch(app, live.patients[0])
    lid = launch_id_of(page)
    with app.app.app_context():
        assert ehr_client(app, lid).read("Patient", live.patients[0])["id"] == live.patients[0]


def test_pinned_id_token_issuer_must_match_discovery(live, start_app):
    """A discovery document naming another issuer than the registry pins is refused (EL-17 step 2)."""
    app = start_app("issuer-mismatch", oidc_issuer=live.sandbox_origin + "/other-idp")
    b, page = ehr_launch(app, live.patients[0])
    assert page.status_code == 502 and "EHR configuration unavailable" in page.text
    assert not any("/auth/authorize" in h.url for h in b.history)
    assert count_launches(app) == 0


def test_oidc_issuer_must_be_on_a_pinned_host():
    from smart_app.config import ConfigError, parse_config

    base = {
        "testing": True,
        "ehr": [
            {
                "iss": "https://ehr.example.test/fhir",
                "client_id": "c",
                "auth_method": "public",
                "auth_hosts": ["idp.example.test"],
            }
        ],
    }
    ok = parse_config({**base, "ehr": [{**base["ehr"][0], "oidc_issuer": "https://idp.example.test/oauth2"}]})
    assert ok.ehrs["https://ehr.example.test/fhir"].oidc_issuer == "https://idp.example.test/oauth2"
    for bad in ("https://evil.example.test/oauth2", "http://idp.example.test/oauth2", 42):
        with pytest.raises(ConfigError, match="oidc_issuer"):
            parse_config({**base, "ehr": [{**base["ehr"][0], "oidc_issuer": bad}]})
