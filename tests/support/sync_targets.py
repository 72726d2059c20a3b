"""The stores the sync contract tests run against, behind one interface.

- ``sekmet``: sekmet-fhir (independent implementation, strict validation);
- ``own``: our embedded store;
- ``medplum-like``: our store in quirks mode emulating Medplum (transactions applied as batches, no
  client-assigned ids, empty error bodies under return=minimal, first wildcard scope only, at most 50
  updates per Bundle), with the settings a site would use for it;
- ``external``: a site's own server, named by ``THRIVE_TEST_FHIR_BASE`` with ``THRIVE_TEST_FHIR_TOKEN``
  (a bearer token) or ``THRIVE_TEST_FHIR_AUTH`` (a sync config file with an ``[auth]`` section for
  SMART Backend Services, and the store settings ``thrive sync check`` named: ``id_mode``,
  ``atomic_transactions``, ...). Skipped when ``THRIVE_TEST_FHIR_BASE`` is unset.

Tests use ``target.patients(n)``, ``target.worker(store)``, ``target.headers()`` and
``target.store_id(store, type, local_id)`` so the same test reads right for every store.
"""

from __future__ import annotations

import os

WORKER_SETTINGS = ("id_mode", "identifier_create", "atomic_transactions", "prefer_return")


class Target:
    def __init__(
        self,
        kind: str,
        base_url: str,
        *,
        server=None,
        auth_factory=None,
        settings: dict | None = None,
        client_ids: bool = True,
        config_lines: str = "",
    ):
        self.kind = kind
        self.base_url = base_url
        self.server = server
        self._auth_factory = auth_factory
        self._auth = None
        self.settings = settings or {}
        self.client_ids = client_ids
        self.config_lines = config_lines  # extra TOML for a `thrive sync` config file ([auth] last)

    def auth(self):
        if self._auth_factory is None:
            return None
        if self._auth is None:
            self._auth = self._auth_factory()
        return self._auth

    def headers(self) -> dict:
        a = self.auth()
        return a.header() if a is not None else {}

    def patients(self, n: int) -> list[str]:
        from tests.support.sync_quirks import create_patients
        from tests.support.sync_synthetic import put_patients
        from tests.support.sync_workers import new_patients

        if self.client_ids:
            ids = new_patients(n)
            put_patients(self.base_url, ids, headers=self.headers())
            return ids
        return create_patients(self.base_url, n, headers=self.headers())

    def worker(self, store, **kw):
        from tests.support.sync_workers import make_worker

        return make_worker(store, self.base_url, auth=self.auth(), **{**self.settings, **kw})

    def store_id(self, store, rtype: str, local_id: str) -> str:
        from thrive_fhir.localstore import outbox as queue

        st = queue.load_states(store, [(rtype, local_id)]).get((rtype, local_id))
        return (st[2] if st else None) or local_id

    def config(self, database_url: str) -> str:
        settings = "".join(
            f"{k} = {str(v).lower() if isinstance(v, bool) else chr(34) + str(v) + chr(34)}\n"
            for k, v in self.settings.items()
        )
        return (
            f'database_url = "{database_url}"\nfhir_base = "{self.base_url}"\nods_code = "RXX"\n'
            + settings
            + self.config_lines
        )

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


def _medplum_like(workdir) -> Target:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from tests.support.sync_quirks import QuirksStoreProcess
    from thrive_fhir.client.backend_services import BackendServicesAuth, discover_token_url

    server = QuirksStoreProcess(workdir, "medplum").start()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    key_file = workdir / "client-key.pem"
    key_file.write_bytes(pem)
    base = server.base_url

    def auth():
        return BackendServicesAuth(
            token_url=discover_token_url(base),
            client_id="thrive-sync",
            private_key_pem=pem,
            kid="k1",
            scope="system/*.cruds",
        )

    settings = {"id_mode": "identifier", "atomic_transactions": False, "prefer_return": "representation"}
    lines = (
        f'[auth]\ntype = "backend-services"\nclient_id = "thrive-sync"\nprivate_key_file = "{key_file}"\n'
        f'kid = "k1"\nscope = "system/*.cruds"\n'
    )
    return Target(
        "medplum-like", base, server=server, auth_factory=auth, settings=settings, client_ids=False, config_lines=lines
    )


def _external(base: str, token: str = "", auth_file: str = "") -> Target:
    """A server named from outside (THRIVE_TEST_FHIR_BASE, with THRIVE_TEST_FHIR_TOKEN or a
    backend-services config file in THRIVE_TEST_FHIR_AUTH), used with no knowledge of what it is."""
    settings: dict = {}
    lines = ""
    auth_factory = None
    if auth_file:
        from thrive_fhir.sync import runner
        from thrive_fhir.sync.config import load_config

        cfg = load_config(auth_file, env={}, fhir_base=base)
        settings = {k: getattr(cfg, k) for k in WORKER_SETTINGS}
        a = cfg.auth
        lines = (
            f'[auth]\ntype = "{a.type}"\nclient_id = "{a.client_id}"\nprivate_key_file = "{a.private_key_file}"\n'
            f'kid = "{a.kid}"\nalg = "{a.alg}"\nscope = "{a.scope}"\n'
            + (f'token_url = "{a.token_url}"\n' if a.token_url else "")
        )

        def auth_factory():
            return runner.build_auth(cfg)
    elif token:
        from thrive_fhir.client.fhir_http import StaticBearer

        def auth_factory():
            return StaticBearer(token)

        lines = '[auth]\ntype = "bearer"\ntoken_env = "THRIVE_TEST_FHIR_TOKEN"\n'
    # POST for patients works on every server, whether it takes client ids or not
    return Target("external", base, auth_factory=auth_factory, settings=settings, client_ids=False, config_lines=lines)


def start(kind: str, workdir) -> Target:
    from tests.support.servers import OwnStoreProcess, SekmetProcess

    if kind == "sekmet":
        server = SekmetProcess(workdir, strict=True).start()
        return Target(kind, server.base_url, server=server)
    if kind == "own":
        server = OwnStoreProcess(workdir).start()
        return Target(kind, server.base_url, server=server)
    if kind == "medplum-like":
        return _medplum_like(workdir)
    if kind == "external":
        base = os.environ.get("THRIVE_TEST_FHIR_BASE", "").rstrip("/")
        if base:
            return _external(
                base, os.environ.get("THRIVE_TEST_FHIR_TOKEN", ""), os.environ.get("THRIVE_TEST_FHIR_AUTH", "")
            )
        # No site server named: the same path runs against our store started here, so the external
        # target's code is exercised in every run; a site names its own server to prove it.
        server = OwnStoreProcess(workdir).start()
        target = _external(server.base_url)
        target.server = server
        return target
    raise ValueError(kind)
