"""How CLI commands that talk to a FHIR server (``thrive audit``, ``thrive store import``) authenticate.

``--auth CONFIG`` is a TOML file with an ``[auth]`` table in the sync worker's format (a sync config
file works as it is; docs/sync-config.md): ``type = "none" | "bearer" | "backend-services"``, with
``token_env``/``token_file`` for a bearer token or the Backend Services client settings. Without it
requests carry no token (a store run without access control). One home, so the commands agree.
"""

from __future__ import annotations

import click

from ..client.fhir_http import Auth, FhirClient, NoAuth
from ..client.ndjson_import import outcome_text


def open_client(
    url: str, auth_path: str | None, *, read_timeout: float = 60.0, user_agent: str = "thrive-cli"
) -> FhirClient:
    """A :class:`FhirClient` for ``url``; a bad ``--auth`` file is a one-line ClickException."""
    if not url.startswith(("http://", "https://")):
        raise click.UsageError(f"--url/--source must be an http(s) FHIR base URL, not {url!r}")
    auth: Auth = NoAuth()
    if auth_path:
        from ..sync.config import ConfigError, load_config
        from ..sync.runner import build_auth

        try:
            cfg = load_config(auth_path, env={}, fhir_base=url.rstrip("/"))
            auth = build_auth(cfg)
        except ConfigError as exc:
            raise click.ClickException(f"--auth {auth_path}: {exc}") from None
    return FhirClient(url, auth, read_timeout=read_timeout, user_agent=user_agent)


__all__ = ["open_client", "outcome_text"]
