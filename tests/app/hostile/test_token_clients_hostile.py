"""The sync worker's Backend Services token client against the hostile token endpoint: every member
of the token response is hostile input there too (issue 16 item 5)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from thrive_fhir.client.backend_services import BackendServicesAuth
from thrive_fhir.client.fhir_http import TokenError


@pytest.fixture(scope="module")
def pem():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def auth(ehr, pem, clock=None):
    kwargs = {"clock": clock} if clock else {}
    return BackendServicesAuth(
        token_url=ehr.origin + "/auth/token",
        client_id="sync-worker",
        private_key_pem=pem,
        kid="k1",
        scope="system/Goal.ru",
        min_failure_backoff=0.0,
        **kwargs,
    )


@pytest.mark.parametrize(
    "expires_in,renew_within",
    [
        (float("inf"), 24 * 3600),
        (10**12, 24 * 3600),
        ("nan", 300),
        (-1, 300),
        ([3600], 300),
        ("600", 600),
    ],
)
def test_token_lifetime_is_bounded(ehr, pem, expires_in, renew_within):
    now = [1_000_000.0]
    a = auth(ehr, pem, clock=lambda: now[0])
    ehr.token["expires_in"] = expires_in
    first = a.token()
    now[0] += renew_within + 1  # past the longest lifetime believed: a new token is fetched
    assert a.token() != first


@pytest.mark.parametrize(
    "members",
    [
        {"access_token": {"a": 1}},
        {"access_token": ""},
        {"token_type": ["bearer"]},
        {"scope": ["system/Goal.ru"], "access_token": ["x"]},
    ],
)
def test_unusable_token_members_are_a_token_error_not_a_crash(ehr, pem, members):
    ehr.token.update(members)
    with pytest.raises(TokenError):
        auth(ehr, pem).token()


def test_helpers():
    from thrive_fhir.client.token_response import bounded_string, expires_in_seconds

    assert expires_in_seconds(10**12) == 24 * 3600 and expires_in_seconds(float("inf")) == 300
    assert expires_in_seconds(True) == 300 and expires_in_seconds(" 60 ") == 60 and expires_in_seconds(0) == 300
    assert bounded_string("x" * 70000) is None and bounded_string(" ") is None and bounded_string("t") == "t"
