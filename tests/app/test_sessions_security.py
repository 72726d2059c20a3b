"""Sessions, CSRF, headers, framing and the launch context, through the Flask test client."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from smart_app import create_app
from smart_app.context import COOKIE_NAME, current_launch, launch_blueprint, launch_required, write_required
from smart_app.security import redact
from smart_app.sessions import launches, utcnow
from tests.support.app import READ_ONLY_SCOPES, TEST_ORIGIN, make_launch, test_config


def _app_with_probe(tmp_path, **cfg):
    """An app with a tiny journey-like blueprint, the way H7b's journeys use the context."""
    app = create_app(test_config(tmp_path, journeys=False, **cfg))
    bp = launch_blueprint("probe", __name__, url_prefix="/probe")

    @bp.route("/", methods=["GET", "POST"])
    @launch_required
    @write_required
    def index():
        launch = current_launch()
        if launch.record and __import__("flask").request.method == "POST":
            return {"saved_for": launch.patient_ref, "by": launch.user_ref}
        return {
            "patient": launch.patient_ref,
            "self": launch.url_for("probe.index"),
            "summary": __import__("flask").url_for("summary.index"),
            "can_write": launch.can_write,
        }

    app.register_blueprint(bp)
    return app


def test_launch_context_and_url_helpers(tmp_path):
    app = _app_with_probe(tmp_path)
    a = make_launch(app, patient_id="pat-A")
    r = a.client().get(a.url("probe/"), base_url=TEST_ORIGIN)
    assert r.status_code == 200, r.data
    assert r.json == {
        "patient": "Patient/pat-A",
        "self": f"/l/{a.launch_id}/probe/",
        "summary": f"/l/{a.launch_id}/summary",
        "can_write": True,
    }


def test_two_launches_in_one_browser_never_cross(tmp_path):
    app = _app_with_probe(tmp_path)
    a = make_launch(app, patient_id="pat-A")
    b = make_launch(app, patient_id="pat-B", binding=a.binding)  # same browser, second tab
    client = a.client()
    assert client.get(a.url("probe/"), base_url=TEST_ORIGIN).json["patient"] == "Patient/pat-A"
    assert client.get(b.url("probe/"), base_url=TEST_ORIGIN).json["patient"] == "Patient/pat-B"
    assert a.post(client, "probe/").json["saved_for"] == "Patient/pat-A"
    assert b.post(client, "probe/").json["saved_for"] == "Patient/pat-B"


def test_other_browser_cannot_use_a_launch_id(tmp_path):
    app = _app_with_probe(tmp_path)
    a = make_launch(app, patient_id="pat-A")
    other = make_launch(app, patient_id="pat-B")  # different binding cookie
    r = other.client().get(a.url("probe/"), base_url=TEST_ORIGIN)
    assert r.status_code == 403
    assert b"pat-A" not in r.data
    nocookie = app.test_client().get(a.url("summary"), base_url=TEST_ORIGIN)
    assert nocookie.status_code == 403
    assert app.test_client().get("/l/unknown-launch/summary", base_url=TEST_ORIGIN).status_code == 404


def test_csrf_required_on_every_post(tmp_path):
    app = _app_with_probe(tmp_path)
    a = make_launch(app, patient_id="pat-A")
    b = make_launch(app, patient_id="pat-B", binding=a.binding)
    client = a.client()
    url = a.url("probe/")
    assert client.post(url, base_url=TEST_ORIGIN).status_code == 403  # no token
    assert client.post(url, data={"csrf_token": b.csrf_token}, base_url=TEST_ORIGIN).status_code == 403  # other context
    foreign = client.post(
        url, data={"csrf_token": a.csrf_token}, headers={"Origin": "https://evil.example"}, base_url=TEST_ORIGIN
    )
    assert foreign.status_code == 403
    assert (
        client.post(
            url, data={"csrf_token": a.csrf_token}, headers={"Origin": TEST_ORIGIN}, base_url=TEST_ORIGIN
        ).status_code
        == 200
    )
    # POSTs outside any launch are refused too
    assert client.post("/launch", base_url=TEST_ORIGIN).status_code in (403, 405)


def test_csrf_field_helper_renders_token(tmp_path, app):
    a = make_launch(app)
    with app.test_request_context(
        a.url("summary"), base_url=TEST_ORIGIN, headers={"Cookie": f"{COOKIE_NAME}={a.binding}"}
    ):
        app.preprocess_request()
        html = app.jinja_env.from_string("{{ csrf_field() }}").render()
    assert f'name="csrf_token" value="{a.csrf_token}"' in html


def test_read_only_mode_blocks_writes_and_says_so(tmp_path):
    app = _app_with_probe(tmp_path)
    ro = make_launch(app, scopes=READ_ONLY_SCOPES)
    client = ro.client()
    page = client.get(ro.url("summary"), base_url=TEST_ORIGIN)
    text = page.get_data(as_text=True)
    assert "did not give this app permission to save changes" in text
    assert "Observation" in text and "Goal" in text
    assert client.get(ro.url("probe/"), base_url=TEST_ORIGIN).json["can_write"] is False
    refused = ro.post(client, "probe/")
    assert refused.status_code == 403 and b"Nothing was saved" in refused.data


def test_headers_csp_cache_and_no_xfo(app, launch):
    r = launch.client().get(launch.url("summary"), base_url=TEST_ORIGIN)
    csp = r.headers["Content-Security-Policy"]
    assert "frame-ancestors https://ehr-ui.test.invalid" in csp
    assert "X-Frame-Options" not in r.headers
    assert r.headers["Cache-Control"] == "no-store"
    assert r.headers["Referrer-Policy"] == "same-origin"  # no-referrer makes browsers send Origin: null on POSTs
    # pages with no known EHR may not be framed at all
    for path in ("/", "/standalone", "/launch?iss=https://unknown.example/fhir&launch=x"):
        assert app.test_client().get(path).headers["Content-Security-Policy"].endswith("frame-ancestors 'none'")


def test_standalone_agency_launch_pages_are_never_framed(app):
    a = make_launch(app, mode="standalone")
    r = a.client().get(a.url("shared-plan"), base_url=TEST_ORIGIN)
    assert r.headers["Content-Security-Policy"].endswith("frame-ancestors 'none'")


def test_static_frontend_assets_served_from_node_modules(app):
    c = app.test_client()
    css = c.get("/assets/nhsuk-frontend.min.css")
    assert css.status_code == 200 and b".nhsuk-" in css.data
    assert c.get("/assets/images/favicon.ico").status_code == 200
    assert c.get("/assets/../package.json").status_code == 404
    assert c.get("/assets/index.scss").status_code == 404


def test_launch_parameter_checks_before_any_network(app, monkeypatch):
    import requests

    def no_network(*a, **k):
        raise AssertionError("no outbound call allowed")

    monkeypatch.setattr(requests.Session, "request", no_network)
    c = app.test_client()
    for query in (
        "",
        "?iss=https://ehr.test.invalid/fhir",
        "?launch=abc",
        "?iss=https://evil.example/fhir&launch=x",
        "?iss=http://ehr.test.invalid/fhir&launch=x",
        "?iss=https://ehr.test.invalid:444/fhir&launch=x",
        "?iss=https://u@ehr.test.invalid/fhir&launch=x",
        "?iss=https://ehr.test.invalid/fhir&launch=" + "x" * 9000,
    ):
        r = c.get("/launch" + query)
        assert r.status_code == 400, query
        assert "Location" not in r.headers
        assert COOKIE_NAME not in r.headers.get("Set-Cookie", "")


def test_callback_with_unknown_state_is_refused_without_token_call(app, monkeypatch):
    import requests

    monkeypatch.setattr(requests.Session, "request", lambda *a, **k: pytest.fail("token call made"))
    c = app.test_client()
    r = c.get("/callback?code=abc&state=forged&next=https://evil.example")
    assert r.status_code == 400
    assert b"no longer valid" in r.data
    assert "Location" not in r.headers


def test_standalone_ignores_iss_from_the_browser(app, monkeypatch):
    import requests

    monkeypatch.setattr(requests.Session, "request", lambda *a, **k: pytest.fail("network call made"))
    r = app.test_client().get("/standalone/start?org=nope&iss=https://evil.example/fhir")
    assert r.status_code == 400


def test_session_ended_keeps_the_form_and_offers_it_after_relaunch(tmp_path):
    app = _app_with_probe(tmp_path)
    a = make_launch(app, access_token="AT-1", expires_in=30)  # < 60 s left, no refresh token
    engine = app.extensions["thrive"].sessions.engine
    with engine.begin() as conn:
        conn.execute(
            launches.update()
            .where(launches.c.launch_id == a.launch_id)
            .values(token_expires_at=utcnow() - timedelta(seconds=5))
        )
    client = a.client()
    r = a.post(client, "probe/", data={"rating": "7", "note": "Feeling better at school"})
    assert r.status_code == 401
    text = r.get_data(as_text=True)
    assert "Your session with the EHR has ended" in text
    assert "Feeling better at school" in text  # what was typed is still on the page
    # relaunch in the same browser for the same patient and user: the draft is offered
    b = make_launch(app, binding=a.binding)
    summary = client.get(b.url("summary"), base_url=TEST_ORIGIN).get_data(as_text=True)
    assert "unsaved entry" in summary
    drafts = app.extensions["thrive"].sessions.drafts_for(a.binding, b.record)
    assert len(drafts) == 1 and ("note", "Feeling better at school") in drafts[0].form
    resume = client.get(b.url(f"resume/{drafts[0].draft_id}"), base_url=TEST_ORIGIN).get_data(as_text=True)
    assert 'value="Feeling better at school"' in resume and b.csrf_token in resume
    saved = b.post(client, "probe/", data={"rating": "7", "_resume_draft": drafts[0].draft_id})
    assert saved.status_code == 200
    assert app.extensions["thrive"].sessions.drafts_for(a.binding, b.record) == []
    # a different browser never sees it
    assert app.extensions["thrive"].sessions.drafts_for("other-binding", b.record) == []


def test_tokens_encrypted_at_rest(app):
    a = make_launch(app, access_token="ACCESS-abc123", refresh_token="REFRESH-xyz789", expires_in=600)
    with app.extensions["thrive"].sessions.engine.connect() as conn:
        row = conn.execute(sa.select(launches).where(launches.c.launch_id == a.launch_id)).mappings().first()
    dump = repr(dict(row))
    assert "ACCESS-abc123" not in dump and "REFRESH-xyz789" not in dump
    assert app.extensions["thrive"].sessions.access_token(a.launch_id) == "ACCESS-abc123"


def test_redaction_masks_tokens_in_logs():
    line = (
        "GET /callback?code=SECRETCODE&state=SECRETSTATE HTTP/1.1 Authorization: Bearer abc.def "
        "launch=LAUNCHVAL eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.sig"
    )
    out = redact(line)
    for secret in ("SECRETCODE", "SECRETSTATE", "abc.def", "LAUNCHVAL", "eyJhbGci"):
        assert secret not in out


def test_friendly_error_pages_never_traceback(app, launch):
    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals")

    r = app.test_client().get("/boom")
    assert r.status_code == 500
    assert b"secret internals" not in r.data and b"Traceback" not in r.data
    assert b"quote reference" in r.data
    assert app.test_client().get("/nope").status_code == 404
