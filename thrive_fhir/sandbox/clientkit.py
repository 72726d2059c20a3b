"""Client-side helpers for talking to the sandbox: PKCE pairs and client assertions.

Used by the sandbox tests and the demo's smoke check. The SMART app and sync worker have their own
client code; this is deliberately minimal and follows docs/design/smart-launch.md BS-02/BS-03 (RS384/ES384,
``kid`` and ``typ: JWT`` in the header, ``exp`` 4 minutes ahead, fresh ``jti``).
"""

from __future__ import annotations

import secrets
import time
import uuid
from typing import Any

from .authority import pkce_challenge
from .client_auth import ASSERTION_TYPE
from .keys import SigningKey


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge)."""
    verifier = secrets.token_urlsafe(64)
    return verifier, pkce_challenge(verifier)


def client_assertion(
    key: SigningKey,
    client_id: str,
    token_endpoint: str,
    *,
    lifetime: int = 240,
    now: float | None = None,
    jti: str | None = None,
    headers: dict[str, Any] | None = None,
    claims: dict[str, Any] | None = None,
) -> str:
    """A private_key_jwt assertion; ``headers``/``claims`` override defaults (tests use them)."""
    now = int(now if now is not None else time.time())
    body = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_endpoint,
        "jti": jti or str(uuid.uuid4()),
        "iat": now - 30,
        "exp": now + lifetime,
    }
    body.update(claims or {})
    return key.sign(body, headers)


def assertion_form(key: SigningKey, client_id: str, token_endpoint: str, **kwargs: Any) -> dict[str, str]:
    """The two form fields that carry a client assertion."""
    return {
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": client_assertion(key, client_id, token_endpoint, **kwargs),
    }
