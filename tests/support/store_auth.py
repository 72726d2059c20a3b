"""A real authorization server (the sandbox's, in a thread: its discovery, JWKS and token endpoint
answer over HTTP) and ``thrive store serve`` as its own process trusting it with ``--auth-issuer``.

Used by tests/store/test_store_auth.py and the reporting $export test: the store verifies every
token against the issuer's published keys, exactly as it would against a real one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import requests

from tests.support.consent_data import CUSTODIAN, ORG_A
from tests.support.servers import OwnStoreProcess, free_port
from thrive_fhir.sandbox.clientkit import assertion_form
from thrive_fhir.sandbox.keys import SigningKey, jwks
from thrive_fhir.sandbox.registry import Client, Registry
from thrive_fhir.sandbox.server import ServerThread, build_sandbox

#: Backend Services clients of the authorization server: client id -> (organisation, scopes, for the store?)
CLIENTS = {
    "trust-backend": (CUSTODIAN, "system/*.rs system/*.cu", True),
    "school-a-backend": (ORG_A, "system/*.rs", True),
    # tokens of this client name the sandbox's own EHR FHIR base in aud, not the store
    "ehr-backend": (CUSTODIAN, "system/*.rs", False),
}

#: The store's own client at the introspection endpoint: (client_id, client_secret), invented.
INTROSPECTOR = ("store-introspector", "intro-Secret_value.1")


class AuthStoreProcess(OwnStoreProcess):
    """``thrive store serve`` with ``--auth-*`` options (a list of extra arguments)."""

    def __init__(self, workdir: Path, port: int, extra: list[str]):
        super().__init__(workdir, port, validate=False)
        self.extra = extra

    def command(self) -> list[str]:
        return [*super().command(), "--base-url", self.base_url, *self.extra]


@dataclass
class AuthWorld:
    """The running authorization server and store, and how to get tokens from them."""

    auth_server: ServerThread
    sandbox: object
    store: AuthStoreProcess
    keys: dict[str, SigningKey] = field(default_factory=dict)

    @property
    def issuer(self) -> str:
        return self.sandbox.authority.issuer

    @property
    def token_url(self) -> str:
        return self.sandbox.authority.token_endpoint

    @property
    def base(self) -> str:
        return self.store.base_url

    def token(self, client_id: str, scope: str | None = None) -> str:
        """An access token from the real token endpoint (client_credentials, private_key_jwt)."""
        form = {
            "grant_type": "client_credentials",
            "scope": scope or CLIENTS[client_id][1],
            **assertion_form(self.keys[client_id], client_id, self.token_url),
        }
        resp = requests.post(self.token_url, data=form, timeout=10)
        assert resp.status_code == 200, resp.text
        return resp.json()["access_token"]

    def stop(self) -> None:
        self.store.stop()
        self.auth_server.stop()


def start_auth_world(workdir: Path, *, custodians: tuple[str, ...] = (CUSTODIAN,), refetch: float = 1.0) -> AuthWorld:
    """Start the authorization server, then the store trusting it."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    store_base = f"http://127.0.0.1:{port}"
    keys = {cid: SigningKey.generate("RS384") for cid in CLIENTS}
    registry = Registry()
    for cid, (org, scopes, for_store) in CLIENTS.items():
        registry.add(
            Client(
                cid,
                "private_key_jwt",
                grant_types=("client_credentials",),
                scopes=frozenset(scopes.split()),
                jwks=jwks(keys[cid]),
                organization=org,
                fhir_base=store_base if for_store else None,
                access_token_lifetime=300,
            )
        )
    # a confidential client the store authenticates as at the introspection endpoint (RFC 7662)
    registry.add(
        Client(
            INTROSPECTOR[0],
            "client_secret_basic",
            redirect_uris=("http://127.0.0.1:9/unused",),
            client_secret=INTROSPECTOR[1],
        )
    )
    server = ServerThread(name="auth")
    sandbox = build_sandbox(
        f"sqlite:///{workdir / 'ehr.db'}",
        server.origin,
        registry=registry,
        extra_fhir_bases=[store_base],
        validate_on_write=False,
    )
    server.start(sandbox.wsgi)
    extra = [
        "--auth-issuer",
        sandbox.authority.issuer,
        # the SMART discovery document lives beside a FHIR base; the store republishes it
        "--auth-discovery-url",
        f"{sandbox.fhir_base}/.well-known/smart-configuration",
        "--auth-jwks-refetch",
        str(refetch),
    ]
    for c in custodians:
        extra += ["--consent-custodian", c]
    store = AuthStoreProcess(workdir / "store", port, extra)
    try:
        store.start()
    except RuntimeError:
        server.stop()
        raise
    return AuthWorld(server, sandbox, store, keys)
