"""Sync worker configuration: a TOML file and/or ``THRIVE_SYNC_*`` environment variables.

Environment wins over the file so a container can keep the file in the image and inject secrets and
URLs at run time. See docs/sync-config.md for every setting and examples for HAPI FHIR and cloud stores.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

ENV_PREFIX = "THRIVE_SYNC_"


class ConfigError(ValueError):
    """Configuration that cannot work; the message is one readable line for the CLI."""


@dataclass
class AuthConfig:
    #: none | bearer | backend-services
    type: str = "none"
    #: bearer: the token itself (prefer token_env or token_file so it stays out of files in git)
    token: str = ""
    token_env: str = ""
    token_file: str = ""
    #: backend-services
    client_id: str = ""
    private_key_file: str = ""
    kid: str = ""
    alg: str = "RS384"
    scope: str = "system/*.rs system/*.cu"
    #: pin the token endpoint; empty = discover from {fhir_base}/.well-known/smart-configuration
    token_url: str = ""

    def __repr__(self) -> str:  # the token must never show up in logs or tracebacks
        return f"AuthConfig(type={self.type!r}, client_id={self.client_id!r}, token_url={self.token_url!r})"


#: Defaults per known store (``server = "..."``); any setting given in the file or environment wins.
#: ``thrive sync check`` probes a store and says which of these to use. See docs/sync-config.md.
SERVER_PRESETS: dict[str, dict] = {
    # HAPI FHIR JPA: atomic transactions, client-assigned (non-numeric) ids, If-Match, ETags.
    "hapi": {"auth": {"scope": "system/*.rs system/*.cu"}},
    # sekmet-fhir: atomic transactions and client ids; its Goal has no identifier search (no identifier mode).
    "sekmet": {"auth": {"scope": "system/*.rs system/*.cu"}},
    # our own embedded store
    "thrive-store": {"auth": {"scope": "system/*.rs system/*.cu"}},
    # Medplum 5.x: only the FIRST wildcard scope of a token counts ("system/*.rs system/*.cu" would be
    # read-only), so one scope that allows everything; ordinary clients cannot create with PUT Type/<id>
    # (404), so identifier mode; no ETag on its answers, so ask for the representation; transactions
    # holding conditional entries are capped at a few entries. Atomic only with the project feature
    # transaction-bundles (without it set atomic_transactions = false).
    "medplum": {
        "auth": {"scope": "system/*.cruds"},
        "id_mode": "identifier",
        "prefer_return": "representation",
        "max_entries": 8,
    },
}


@dataclass
class SyncConfig:
    #: a known store kind (hapi, medplum, sekmet, thrive-store) whose defaults to start from; empty: none
    server: str = ""
    database_url: str = "sqlite:///thrive-local.db"
    fhir_base: str = ""
    #: ODS code of the deploying organisation: meta.source = {base}/source/<ods>#<outbox row uid>
    ods_code: str = ""
    max_entries: int = 50
    max_patients: int = 50
    concurrency: int = 1
    poll_interval: float = 1.0
    lease_seconds: float = 120.0
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    backoff_base: float = 1.0
    backoff_max: float = 300.0
    #: after this many 409/412 answers that re-reading cannot explain, park the row as a conflict
    max_conflict_retries: int = 3
    #: true: one atomic ``transaction`` Bundle per batch (the worker still reads every entry and falls
    #: back to the non-atomic handling if the store answers otherwise). false: send ``batch`` Bundles
    #: on purpose, resources first and each save's Provenance after its resources landed, one save per
    #: young person per batch (Medplum without its ``transaction-bundles`` feature).
    atomic_transactions: bool = True
    #: deterministic: ``PUT Type/<uuid5 id>`` (the store must accept client-assigned ids).
    #: identifier: create by business identifier (conditional update or If-None-Exist), learn the
    #: store's id from its answer and rewrite references through the local id -> store id map.
    id_mode: str = "deterministic"
    #: identifier mode, how a new resource is created: conditional-update (``PUT Type?identifier=``)
    #: or if-none-exist (``POST Type`` with ``If-None-Exist: identifier=``)
    identifier_create: str = "conditional-update"
    #: ``Prefer: return=...`` on writes: OperationOutcome (errors explained, versions from ETag),
    #: representation (the stored resource back: versions from meta.versionId when a store sends no
    #: ETag) or minimal.
    prefer_return: str = "OperationOutcome"
    log_file: str = ""
    log_level: str = "INFO"
    metrics_file: str = ""
    metrics_port: int = 0
    metrics_interval: float = 5.0
    auth: AuthConfig = field(default_factory=AuthConfig)

    def validate(self) -> SyncConfig:
        if not self.fhir_base.startswith(("http://", "https://")):
            raise ConfigError("fhir_base must be the store's FHIR base URL (http:// or https://)")
        if not self.ods_code or not self.ods_code.isalnum():
            raise ConfigError("ods_code (the deploying organisation's ODS code) is required")
        if not 1 <= self.max_entries <= 1000:
            raise ConfigError("max_entries must be between 1 and 1000")
        if self.concurrency < 1:
            raise ConfigError("concurrency must be at least 1")
        if self.lease_seconds <= self.connect_timeout + self.read_timeout:
            raise ConfigError("lease_seconds must exceed connect_timeout + read_timeout")
        if self.id_mode not in ("deterministic", "identifier"):
            raise ConfigError("id_mode must be deterministic or identifier")
        if self.identifier_create not in ("conditional-update", "if-none-exist"):
            raise ConfigError("identifier_create must be conditional-update or if-none-exist")
        if self.prefer_return not in ("OperationOutcome", "representation", "minimal"):
            raise ConfigError("prefer_return must be OperationOutcome, representation or minimal")
        if self.auth.type not in ("none", "bearer", "backend-services"):
            raise ConfigError("auth.type must be none, bearer or backend-services")
        if self.auth.type == "backend-services":
            for name in ("client_id", "private_key_file", "kid"):
                if not getattr(self.auth, name):
                    raise ConfigError(f"auth.{name} is required for backend-services")
            if self.auth.alg not in ("RS384", "ES384"):
                raise ConfigError("auth.alg must be RS384 or ES384")
        if self.auth.type == "bearer" and not (self.auth.token or self.auth.token_env or self.auth.token_file):
            raise ConfigError("auth.type bearer needs auth.token_env, auth.token_file or auth.token")
        return self

    def bearer_token(self) -> str:
        a = self.auth
        if a.token_env:
            value = os.environ.get(a.token_env, "")
            if not value:
                raise ConfigError(f"environment variable {a.token_env} (auth.token_env) is empty")
            return value
        if a.token_file:
            try:
                return Path(a.token_file).read_text().strip()
            except OSError as exc:
                raise ConfigError(f"cannot read auth.token_file: {exc.strerror}") from None
        return a.token


def _coerce(kind: type, value, name: str):
    try:
        if kind is bool:
            return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes", "on")
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"setting {name} must be a {kind.__name__}") from None


def _apply(target, data: dict, where: str) -> None:
    known = {f.name: f for f in fields(target)}
    for key, value in data.items():
        name = key.replace("-", "_")
        if name not in known:
            raise ConfigError(f"unknown setting '{key}' in {where}")
        if name == "auth":
            if not isinstance(value, dict):
                raise ConfigError("[auth] must be a table")
            _apply(target.auth, value, f"{where} [auth]")
            continue
        default = getattr(target, name)
        setattr(target, name, _coerce(type(default), value, name))


def load_config(path: str | None = None, env: Mapping[str, str] | None = None, **overrides) -> SyncConfig:
    """Defaults, then the ``server`` preset, then the TOML file, then THRIVE_SYNC_* variables, then
    explicit overrides."""
    cfg = SyncConfig()
    data: dict = {}
    if path:
        try:
            data = tomllib.loads(Path(path).read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    env = os.environ if env is None else env
    server = overrides.get("server") or env.get(ENV_PREFIX + "SERVER") or data.get("server") or ""
    if server:
        if server not in SERVER_PRESETS:
            raise ConfigError(f"server must be one of {', '.join(sorted(SERVER_PRESETS))} (or left out)")
        _apply(cfg, SERVER_PRESETS[server], f"server preset {server}")
    if data:  # only read from a file, so path is set
        _apply(cfg, data, path or "config file")
    for f in fields(cfg):
        if f.name == "auth":
            continue
        value = env.get(ENV_PREFIX + f.name.upper())
        if value is not None:
            setattr(cfg, f.name, _coerce(type(getattr(cfg, f.name)), value, f.name))
    for f in fields(cfg.auth):
        value = env.get(ENV_PREFIX + "AUTH_" + f.name.upper())
        if value is not None:
            setattr(cfg.auth, f.name, value)
    for key, value in overrides.items():
        if value is not None:
            setattr(cfg, key, value)
    return cfg
