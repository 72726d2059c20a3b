"""``fhir_http.environment_session``: the proxy and CA bundle requests would take from the environment
for one server, read once. A real loopback HTTP server stands in for the proxy, so the test sees
where the request really went."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from thrive_fhir.client.fhir_http import environment_session

STORE = "http://store.test.invalid/fhir"


@pytest.fixture
def proxy():
    """A loopback server answering every request, recording the request line's target."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", seen
    server.shutdown()
    server.server_close()


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("NO_PROXY", "no_proxy", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_the_proxy_in_the_environment_is_used_and_read_once(proxy, clean_env):
    origin, seen = proxy
    clean_env.setenv("HTTP_PROXY", origin)
    session = environment_session(STORE)
    clean_env.delenv("HTTP_PROXY")  # read at creation: a later change does not reach it
    assert session.get(f"{STORE}/metadata", timeout=5).status_code == 200
    assert seen == [f"{STORE}/metadata"]  # a proxy gets the absolute URL


def test_no_proxy_naming_the_server_goes_direct(proxy, clean_env):
    origin, seen = proxy
    clean_env.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens: used, it would fail
    clean_env.setenv("NO_PROXY", "127.0.0.1")
    session = environment_session(origin)
    assert session.get(f"{origin}/fhir/metadata", timeout=5).status_code == 200
    assert seen == ["/fhir/metadata"]


def test_the_ca_bundle_in_the_environment_is_kept(clean_env, tmp_path):
    bundle = tmp_path / "ca.pem"
    clean_env.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    assert environment_session("https://store.test.invalid/fhir").verify == str(bundle)
    clean_env.delenv("REQUESTS_CA_BUNDLE")
    assert environment_session("https://store.test.invalid/fhir").verify is True
