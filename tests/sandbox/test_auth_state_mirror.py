"""The auth server's state survives a restart when ``persist_state`` is on (``thrive sandbox serve``):
two sandbox processes-worth of servers, one after the other, on the same port and database, talking
real HTTP. SQLite and PostgreSQL."""

from __future__ import annotations

import re

import pytest
import requests
import sqlalchemy as sa

from thrive_fhir.sandbox.auth_state_mirror import digest
from thrive_fhir.sandbox.clientkit import assertion_form, pkce_pair
from thrive_fhir.sandbox.keys import SigningKey, jwks
from thrive_fhir.sandbox.registry import Client, Registry
from thrive_fhir.sandbox.server import ServerThread, build_sandbox

REDIRECT = "http://127.0.0.1:9/callback"
SCOPE = "launch openid fhirUser online_access patient/Patient.rs"


class Run:
    """One run of the sandbox (what one ``thrive sandbox serve`` process holds)."""

    def __init__(self, database_url: str, client_key: SigningKey, port: int = 0, persist: bool = True) -> None:
        registry = Registry()
        registry.add(
            Client(
                "app",
                "private_key_jwt",
                redirect_uris=(REDIRECT,),
                auto_approve=True,
                scopes=frozenset([*SCOPE.split(), "launch/patient"]),
                jwks=jwks(client_key),
            )
        )
        self.key = client_key
        self.server = ServerThread(port=port, name="sandbox")
        self.sb = build_sandbox(database_url, self.server.origin, registry=registry, persist_state=persist)
        self.server.start(self.sb.wsgi)
        self.origin, self.port = self.server.origin, self.server.port
        self.token_url = self.origin + "/auth/token"

    def stop(self) -> None:
        self.server.stop()
        if self.sb.authority.state_mirror is not None:
            self.sb.authority.state_mirror.close()

    def code(self, patient: str = "p1") -> tuple[str, str]:
        verifier, challenge = pkce_pair()
        launch = self.sb.authority.mint_launch(patient, "clinician")
        resp = requests.get(
            self.origin + "/auth/authorize",
            allow_redirects=False,
            timeout=10,
            params={
                "response_type": "code",
                "client_id": "app",
                "redirect_uri": REDIRECT,
                "launch": launch,
                "scope": SCOPE,
                "state": "s1",
                "aud": self.sb.fhir_base,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            },
        )
        assert resp.status_code == 303, resp.text
        return re.search(r"code=([^&]+)", resp.headers["Location"]).group(1), verifier

    def token(self, form: dict, **assertion) -> requests.Response:
        return requests.post(
            self.token_url, data={**form, **assertion_form(self.key, "app", self.token_url, **assertion)}, timeout=10
        )

    def exchange(self, code: str, verifier: str, **assertion) -> requests.Response:
        return self.token(
            {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier},
            **assertion,
        )

    def refresh(self, refresh_token: str) -> requests.Response:
        return self.token({"grant_type": "refresh_token", "refresh_token": refresh_token})


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/ehr.db"
    return request.getfixturevalue("fresh_postgres_url")


def test_a_restart_logs_nobody_out(database_url):
    client_key = SigningKey.generate("RS384")
    first = Run(database_url, client_key)
    try:
        tokens = first.exchange(*first.code(), jti="jti-before-restart").json()
        unused_code, unused_verifier = first.code()
        used_code, used_verifier = first.code()
        assert first.exchange(used_code, used_verifier).status_code == 200
        handle = first.sb.authority.mint_launch("p1", "clinician")
        sid = first.sb.authority.start_session("agency")
    finally:
        first.stop()
    # Nothing secret is stored in clear.
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        dump = " ".join(str(v) for row in conn.execute(sa.text("SELECT * FROM sandbox_auth_state")) for v in row)
    engine.dispose()
    for secret in (tokens["refresh_token"], unused_code, used_code, handle, sid):
        assert secret not in dump
    assert digest(tokens["refresh_token"]) in dump

    second = Run(database_url, client_key, port=first.port)  # a new signing key, as serve without --key
    try:
        refreshed = second.refresh(tokens["refresh_token"])
        assert refreshed.status_code == 200, refreshed.text
        body = refreshed.json()
        fhir = requests.get(
            f"{second.sb.fhir_base}/Patient?_count=1",
            timeout=10,
            headers={"Authorization": f"Bearer {body['access_token']}"},
        )
        assert fhir.status_code != 401
        assert second.exchange(unused_code, unused_verifier).status_code == 200
        # Single use still holds across the restart: the used code, the rotated refresh token and
        # the assertion id are all remembered; the sign-in and the unused launch handle survive.
        reused = second.exchange(used_code, used_verifier)
        assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
        assert second.refresh(tokens["refresh_token"]).json()["error"] == "invalid_grant"  # rotated: reuse
        replay = second.exchange(*second.code(), jti="jti-before-restart")
        assert replay.status_code == 401 and "jti" in replay.json()["error_description"]
        assert second.sb.authority.session_user(sid) == "agency"
        assert second.sb.authority._launches[digest(handle)].used is False
    finally:
        second.stop()


def test_without_persistence_a_restart_forgets_everything(tmp_path):
    client_key = SigningKey.generate("RS384")
    first = Run(f"sqlite:///{tmp_path}/ehr.db", client_key, persist=False)
    try:
        tokens = first.exchange(*first.code()).json()
    finally:
        first.stop()
    second = Run(f"sqlite:///{tmp_path}/ehr.db", client_key, port=first.port, persist=False)
    try:
        assert second.refresh(tokens["refresh_token"]).json()["error"] == "invalid_grant"
    finally:
        second.stop()
