"""An oversized request to the token or introspection endpoint is answered as OAuth JSON, not HTML."""

from __future__ import annotations

import pytest
import requests


@pytest.mark.parametrize("path", ["/auth/token", "/auth/introspect"])
def test_oversized_token_request_is_an_oauth_json_error(sb, path):
    resp = requests.post(sb.origin + path, data={"grant_type": "client_credentials", "pad": "x" * 200_000}, timeout=10)
    assert resp.status_code == 413
    assert resp.headers["Content-Type"].startswith("application/json")
    assert resp.json()["error"] == "invalid_request"
    assert resp.headers["Cache-Control"] == "no-store"
