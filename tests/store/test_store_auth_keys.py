"""The store's cache of an issuer's signing keys (token_verification.KeySet) against a real JWKS
endpoint on loopback: refetch on an unknown kid at most once per interval, and keys kept through an
outage of the issuer."""

from __future__ import annotations

import time

from flask import Flask, jsonify

from thrive_fhir.sandbox.keys import SigningKey, jwks
from thrive_fhir.sandbox.server import ServerThread
from thrive_fhir.store.token_verification import AuthSettings, JwtTokenVerifier, KeySet


def _jwks_server(holder: dict) -> ServerThread:
    app = Flask("issuer-jwks")

    @app.get("/jwks")
    def serve():
        holder["fetches"] += 1
        return jsonify(jwks(*holder["keys"]))

    return ServerThread(name="jwks").start(app)


def test_unknown_kid_refetches_at_most_once_per_interval_and_outage_keeps_keys():
    first, second = SigningKey.generate("RS256"), SigningKey.generate("ES384")
    holder = {"keys": [first], "fetches": 0}
    server = _jwks_server(holder)
    keys = KeySet(server.origin + "/jwks", refetch_interval=0.5)
    keys.load()
    assert holder["fetches"] == 1
    assert keys.key_for(first.kid).key_id == first.kid
    assert keys.key_for(None).key_id == first.kid  # no kid: the only key
    for _ in range(20):  # invented kids: one refetch, then the rate limit holds
        assert keys.key_for("invented") is None
    assert holder["fetches"] == 2
    holder["keys"] = [first, second]  # the issuer rotates
    assert keys.key_for(second.kid) is None  # within the interval: not fetched yet
    time.sleep(0.6)
    assert keys.key_for(second.kid).key_id == second.kid
    assert holder["fetches"] == 3
    assert keys.key_for(None) is None  # two keys: a token must say which
    server.stop()  # the issuer goes away: the keys already known still verify
    time.sleep(0.6)
    keys.lifespan = 0
    assert keys.key_for(first.kid).key_id == first.kid
    assert keys.key_for("invented-2") is None


def test_verifier_checks_key_type_against_alg():
    """An ES384 token cannot be checked with an RSA key of the same kid (and the reverse)."""
    rsa = SigningKey.generate("RS256")
    holder = {"keys": [rsa], "fetches": 0}
    server = _jwks_server(holder)
    try:
        keys = KeySet(server.origin + "/jwks", refetch_interval=60)
        keys.load()
        verifier = JwtTokenVerifier(
            AuthSettings(issuer="https://issuer.example", audience="https://store.example"), keys
        )
        now = int(time.time())
        claims = {
            "iss": "https://issuer.example",
            "aud": "https://store.example",
            "exp": now + 60,
            "iat": now,
            "client_id": "c",
            "scope": "system/*.rs",
            "organization": "https://store.example/Organization/o",
        }
        good = rsa.sign(claims)
        grant = verifier(good)
        assert grant is not None and grant.organization == "Organization/o"  # made relative to the store
        es = SigningKey.generate("ES384")
        import jwt

        forged = jwt.encode(claims, es.private_key, algorithm="ES384", headers={"kid": rsa.kid})
        assert verifier(forged) is None
        rs384 = jwt.encode(claims, rsa.private_key, algorithm="RS384", headers={"kid": rsa.kid})
        assert verifier(rs384) is None  # the JWK says RS256
        assert verifier(rsa.sign({**claims, "scope": None})) is None  # no scope: nothing granted
    finally:
        server.stop()
