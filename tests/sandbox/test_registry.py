"""Client registrations the sandbox refuses at load time, as Inferno's registration checks do."""

from __future__ import annotations

import pytest

from thrive_fhir.sandbox.keys import SigningKey, jwks
from thrive_fhir.sandbox.registry import Registry, RegistryError


def _client(**overrides):
    base = {"client_id": "c", "auth": "none", "redirect_uris": ["https://app.example/cb"], "scopes": "launch"}
    base.update(overrides)
    return {"clients": [base]}


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"redirect_uris": ["http://app.example/cb"]}, "must be an https URL"),
        ({"redirect_uris": ["https://app.example/cb#frag"]}, "must be an https URL"),
        ({"redirect_uris": ["https://user@app.example/cb"]}, "must be an https URL"),
        ({"redirect_uris": []}, "needs redirect_uris"),
        ({"launch_url": "ftp://app.example/launch"}, "must be an https URL"),
        ({"auth": "private_key_jwt"}, "needs jwks_uri or jwks"),
        ({"auth": "private_key_jwt", "jwks": {"keys": []}}, "at least one key"),
        ({"auth": "client_secret_basic"}, "needs client_secret"),
        ({"auth": "none", "grant_types": ["client_credentials"]}, "needs private_key_jwt"),
        ({"auth": "magic"}, "auth must be one of"),
        ({"colour": "blue"}, "unknown field"),
    ],
)
def test_bad_registrations_are_refused_with_the_reason(overrides, message):
    with pytest.raises(RegistryError, match=message):
        Registry.from_dict(_client(**overrides))


def test_private_keys_are_refused_in_a_registered_jwks():
    key = SigningKey.generate("RS384")
    public = jwks(key)
    public["keys"][0]["d"] = "secret"
    with pytest.raises(RegistryError, match="public keys only"):
        Registry.from_dict(_client(auth="private_key_jwt", jwks=public))


def test_loopback_http_is_allowed_for_the_demo_and_round_trips():
    key = SigningKey.generate("ES384")
    reg = Registry.from_dict(
        _client(
            auth="private_key_jwt",
            jwks=jwks(key),
            redirect_uris=["http://127.0.0.1:8101/cb"],
            scopes="launch patient/*.rs",
        )
    )
    again = Registry.from_dict(reg.to_dict())
    assert again.client("c").scopes == frozenset({"launch", "patient/*.rs"})
    assert again.client("c").jwks == jwks(key)
    assert set(again.users) == {"clinician", "mhst", "agency"}
