"""EHR and standalone launch end to end against the real sandbox (auth server + EHR FHIR store) and
the app, each served on its own loopback port. No mocks: every hop is real HTTP."""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from smart_app.sessions import launches


def _launch(live, patient, browser=None, origin=None, user="clinician"):
    b = browser or live.browser_session(origin or live.app_origin)
    r = b.go(live.ehr_launch_url(patient, user=user, origin=origin or live.app_origin))
    return b, r


def test_ehr_launch_reaches_summary_with_banner_and_no_tokens_exposed(live, caplog):
    caplog.set_level(logging.DEBUG)
    b, r = _launch(live, live.patients[0])
    assert r.status_code == 200, r.text[:500]
    assert re.search(r"/l/[A-Za-z0-9_-]+/summary$", r.url)
    assert "<h1>Summary</h1>" in r.text
    # the sandbox EHR page shows its own banner -> need_patient_banner false -> no banner from us
    # inside its frame (a browser says Sec-Fetch-Dest: iframe there)
    framed = b.request("GET", r.url, headers={"Sec-Fetch-Dest": "iframe"})
    assert framed.status_code == 200 and "thrive-patient-banner" not in framed.text
    # authorize request carried every parameter, aud = iss exactly, S256
    authorize = next(h for h in b.history if "/auth/authorize" in h.url)
    q = {k: v[0] for k, v in parse_qs(urlsplit(authorize.url).query).items()}
    assert q["aud"] == live.fhir_base and q["code_challenge_method"] == "S256"
    assert q["redirect_uri"] == live.app_origin + "/callback" and q["launch"] and len(q["state"]) >= 43
    # tokens never reach the browser or the logs
    cookie_header = " ".join(h.headers.get("Set-Cookie", "") for h in b.history if h.url.startswith(live.app_origin))
    assert "__Host-thrive=" in cookie_header
    for part in ("Secure", "HttpOnly", "SameSite=None", "Partitioned", "Path=/"):
        assert part in cookie_header
    assert "Domain=" not in cookie_header
    callback = next(h for h in b.history if "/callback?" in h.url)
    code = parse_qs(urlsplit(callback.url).query)["code"][0]
    state = parse_qs(urlsplit(callback.url).query)["state"][0]
    launch_id = r.url.rsplit("/", 2)[-2]
    token = live.app.extensions["thrive"].sessions.access_token(launch_id)
    assert token
    secrets_ = [token, code, state, q["launch"]]
    for h in b.history:
        if h.url.startswith(live.app_origin):
            for s in secrets_[:1]:
                assert s not in h.text and s not in h.url
    logged = "\n".join(rec.getMessage() for rec in caplog.records)
    for s in secrets_:
        assert s not in logged


def test_launch_record_holds_identity_scopes_and_encrypted_tokens(live):
    _b, r = _launch(live, live.patients[1])
    launch_id = r.url.rsplit("/", 2)[-2]
    rec = live.app.extensions["thrive"].sessions.get_launch(launch_id)
    assert rec.patient_id == live.patients[1]
    assert rec.user_ref and rec.user_ref.startswith("Practitioner/")
    assert rec.need_patient_banner is False
    assert "patient/Goal.c" in rec.scopes
    token = live.app.extensions["thrive"].sessions.access_token(launch_id)
    with live.app.extensions["thrive"].sessions.engine.connect() as conn:
        row = conn.execute(sa.select(launches).where(launches.c.launch_id == launch_id)).mappings().first()
    assert token not in repr(dict(row))
    assert rec.banner.get("name")  # Patient read once with the token for the banner


def test_two_tabs_two_patients_one_browser(live):
    b, first = _launch(live, live.patients[0])
    _, second = _launch(live, live.patients[1], browser=b)
    id1, id2 = first.url.rsplit("/", 2)[-2], second.url.rsplit("/", 2)[-2]
    assert id1 != id2
    s = live.app.extensions["thrive"].sessions
    assert s.get_launch(id1).patient_id == live.patients[0]
    assert s.get_launch(id2).patient_id == live.patients[1]
    assert b.go(first.url).status_code == 200 and b.go(second.url).status_code == 200
    # another browser cannot use either context
    other = live.browser_session()
    assert other.go(first.url).status_code == 403


def test_replayed_callback_and_other_browser_state_are_refused(live):
    b, _r = _launch(live, live.patients[0])
    callback = next(h for h in b.history if "/callback?" in h.url)
    again = b.go(callback.url)
    assert again.status_code == 400 and "no longer valid" in again.text
    # state started in browser A, callback delivered to browser B (no/other cookie)
    a = live.browser_session()
    first = a.request("GET", live.ehr_launch_url(live.patients[0]))
    auth = a.request("GET", first.headers["Location"])
    assert auth.status_code in (302, 303)
    cb_url = auth.headers["Location"]
    assert cb_url.startswith(live.app_origin + "/callback")
    stranger = live.browser_session()
    refused = stranger.go(cb_url)
    assert refused.status_code == 400


def test_unknown_iss_is_refused_without_redirect(live):
    b = live.browser_session()
    r = b.go(f"{live.app_origin}/launch?iss=http://127.0.0.1:1/fhir&launch=abc")
    assert r.status_code == 400 and "not registered" in r.text
    assert len(b.history) == 1


def test_denied_authorization_shows_clear_page_and_stores_nothing(live):
    b = live.browser_session(live.ro_origin)
    r = b.go(live.ehr_launch_url(live.patients[0], origin=live.ro_origin))
    assert r.status_code == 200 and "/auth/consent" in r.url
    req = re.search(r'name="req" value="([^"]+)"', r.text).group(1)
    before = _count_launches(live.ro_app)
    denied = b.go(live.sandbox_origin + "/auth/consent", method="POST", data={"req": req, "decision": "deny"})
    assert denied.status_code == 403
    assert "was not approved" in denied.text
    assert _count_launches(live.ro_app) == before


def test_narrowed_grant_gives_read_only_mode_said_plainly(live):
    b = live.browser_session(live.ro_origin)
    r = b.go(live.ehr_launch_url(live.patients[0], origin=live.ro_origin))
    req = re.search(r'name="req" value="([^"]+)"', r.text).group(1)
    scopes = [s for s in re.findall(r'name="scope" value="([^"]+)"', r.text) if s != "patient/Goal.c"]
    page = b.go(
        live.sandbox_origin + "/auth/consent", method="POST", data={"req": req, "decision": "approve", "scope": scopes}
    )
    assert page.status_code == 200, page.text[:400]
    assert "did not give this app permission to save changes" in page.text
    assert "Goal" in page.text


def test_token_refresh_is_single_use_and_serialised(live, caplog):
    caplog.set_level(logging.DEBUG)
    b, r = _launch(live, live.patients[0])
    launch_id = r.url.rsplit("/", 2)[-2]
    sessions = live.app.extensions["thrive"].sessions
    rec = sessions.get_launch(launch_id)
    assert rec.has_refresh_token, "online_access should give a refresh token"
    old = sessions.access_token(launch_id)
    from datetime import timedelta

    from smart_app.sessions import utcnow

    with sessions.engine.begin() as conn:
        conn.execute(
            launches.update()
            .where(launches.c.launch_id == launch_id)
            .values(token_expires_at=utcnow() + timedelta(seconds=10))
        )
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(lambda _: b.http.get(r.url, timeout=20).status_code, range(6)))
    assert statuses == [200] * 6
    new = sessions.access_token(launch_id)
    assert new != old
    # a second refresh still works: the rotated refresh token was stored (reuse would revoke the family)
    with sessions.engine.begin() as conn:
        conn.execute(
            launches.update()
            .where(launches.c.launch_id == launch_id)
            .values(token_expires_at=utcnow() + timedelta(seconds=10), refreshed_at=None)
        )
    assert b.http.get(r.url, timeout=20).status_code == 200
    latest = sessions.access_token(launch_id)
    assert latest not in (old, new)
    with sessions.engine.connect() as conn:
        refresh = sessions.decrypt(
            conn.execute(sa.select(launches.c.refresh_token_enc).where(launches.c.launch_id == launch_id)).scalar()
        )
    logged = "\n".join(rec.getMessage() for rec in caplog.records)
    for secret in (old, new, latest, refresh):
        assert secret and secret not in logged


def test_ehr_client_sends_token_only_to_the_ehr(live):
    from smart_app.launch.ehr_client import EhrClient, EhrError

    _b, r = _launch(live, live.patients[0])
    launch_id = r.url.rsplit("/", 2)[-2]
    state = live.app.extensions["thrive"]
    client = EhrClient.for_launch(state, state.sessions.get_launch(launch_id))
    assert client.read("Patient", live.patients[0])["id"] == live.patients[0]
    with pytest.raises(EhrError):
        client.request("GET", "https://other.example/fhir/Patient/1")
    with pytest.raises(EhrError):
        client.request("GET", live.fhir_base + "-evil/Patient/1")


def test_standalone_agency_launch(live):
    b = live.browser_session()
    start = b.go(live.app_origin + "/standalone")
    assert start.status_code == 200 and "Sandbox High School" in start.text
    assert start.headers["Content-Security-Policy"].endswith("frame-ancestors 'none'")
    login = b.go(live.app_origin + "/standalone/start?org=school&iss=http://127.0.0.1:1/evil")
    authorize = next(h for h in b.history if "/auth/authorize" in h.url)
    q = {k: v[0] for k, v in parse_qs(urlsplit(authorize.url).query).items()}
    assert "launch" not in q and q["aud"] == live.fhir_base and "launch/patient" in q["scope"]
    req = re.search(r'name="req" value="([^"]+)"', login.text).group(1)
    pick = b.go(live.sandbox_origin + "/auth/login", method="POST", data={"req": req, "user": "agency"})
    assert "select-patient" in pick.url
    done = b.go(
        live.sandbox_origin + "/auth/select-patient", method="POST", data={"req": req, "patient": live.patients[0]}
    )
    # no consent recorded for this young person yet: refused, and the refusal is audited
    assert done.status_code == 403, done.text[:300]
    assert "not shared with your organisation" in done.text
    launch_id = re.search(r"/l/([^/]+)/shared-plan", done.url).group(1)
    rec = live.app.extensions["thrive"].sessions.get_launch(launch_id)
    assert rec.mode == "standalone" and rec.patient_id == live.patients[0]
    audits = live.app.extensions["thrive"].local_store.for_patient(f"Patient/{live.patients[0]}", type="AuditEvent")
    assert audits and audits[-1]["outcome"] == "4"


def _count_launches(app) -> int:
    with app.extensions["thrive"].sessions.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(launches)).scalar()


def test_ehr_launch_completion_starts_the_shared_read(live, monkeypatch):
    """The callback starts reading the shared record before the Summary opens (smart_app.summary.
    shared_history.prefetch; here without a [shared_store] it would do nothing, so a spy)."""
    from smart_app.launch import routes

    started: list[str] = []
    monkeypatch.setattr(routes, "prefetch", lambda app, record: started.append(record.launch_id))
    _b, r = _launch(live, live.patients[0])
    assert r.status_code == 200 and started == [r.url.rsplit("/", 2)[-2]]
