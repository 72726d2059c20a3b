"""Signing keys for the sandbox authorization server and for the demo's clients.

One RSA key signs id_tokens (RS256, as OIDC requires) and access tokens; clients get their own
RS384 keys (SMART asymmetric client authentication asks for RS384/ES384). Keys are stored as PEM
files so that a restarted sandbox keeps accepting tokens it issued and clients keep their
registered JWKS. Key ids are RFC 7638 thumbprints, so the same key always has the same ``kid``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def thumbprint(public_jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url) of the required public members."""
    if public_jwk["kty"] == "RSA":
        members = {k: public_jwk[k] for k in ("e", "kty", "n")}
    else:
        members = {k: public_jwk[k] for k in ("crv", "kty", "x", "y")}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return _b64(hashlib.sha256(canonical).digest())


@dataclass
class SigningKey:
    """A private key, the algorithm it signs with, and its public JWK."""

    private_key: Any
    alg: str

    @classmethod
    def generate(cls, alg: str = "RS256") -> SigningKey:
        if alg.startswith("ES"):
            return cls(ec.generate_private_key(ec.SECP384R1()), alg)
        return cls(rsa.generate_private_key(public_exponent=65537, key_size=2048), alg)

    @classmethod
    def from_pem(cls, pem: bytes, alg: str) -> SigningKey:
        return cls(serialization.load_pem_private_key(pem, password=None), alg)

    @classmethod
    def load_or_create(cls, path: str | os.PathLike[str], alg: str = "RS256") -> SigningKey:
        """Read the PEM at ``path``; create it (mode 0600) when missing."""
        path = Path(path)
        if path.exists():
            return cls.from_pem(path.read_bytes(), alg)
        key = cls.generate(alg)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key.private_pem())
        return key

    def private_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def public_key(self) -> Any:
        return self.private_key.public_key()

    def public_jwk(self) -> dict[str, Any]:
        """Public members only (never ``d``), with ``kid``, ``alg`` and ``use``."""
        algo = ECAlgorithm if isinstance(self.private_key, ec.EllipticCurvePrivateKey) else RSAAlgorithm
        jwk = algo.to_jwk(self.public_key, as_dict=True)
        jwk.update({"kid": thumbprint(jwk), "alg": self.alg, "use": "sig", "key_ops": ["verify"]})
        return jwk

    @property
    def kid(self) -> str:
        return self.public_jwk()["kid"]

    def sign(self, claims: dict[str, Any], headers: dict[str, Any] | None = None, *, kid: bool = True) -> str:
        """A compact JWS of ``claims`` with ``kid`` and ``typ: JWT`` in the header.

        ``kid=False`` leaves the key id out, as LAUNCHER does for its id_tokens (a mock switch)."""
        hdr: dict[str, Any] = {"kid": self.kid, "typ": "JWT"} if kid else {"typ": "JWT"}
        hdr.update(headers or {})
        return jwt.encode(claims, self.private_key, algorithm=self.alg, headers=hdr)


def jwks(*keys: SigningKey) -> dict[str, Any]:
    """A JWK Set of the public halves of ``keys``."""
    return {"keys": [k.public_jwk() for k in keys]}
