"""Configuration of the clinician SMART app: which EHRs may launch it, and how it talks to each.

The registry is the security boundary of the launch (docs/design/smart-launch.md EL-02, EL-03, SA-01): an ``iss``
that is not listed here is refused before any network call, discovery results must point at hosts
pinned here, and the standalone launch takes its FHIR base from here, never from the browser.

A config file may be TOML (``.toml``), JSON (``.json``) or YAML (``.yaml``/``.yml``). Example (TOML)::

    secret_key_file = "instance/app-secret"   # 32+ random bytes; encrypts tokens at rest
    database_url = "sqlite:///instance/app.db" # the app's own DB (local store + sessions)
    ods_code = "RXX"                          # deploying organisation
    public_base_url = "https://thrive.example.nhs.uk"  # used to build redirect_uri
    write_back_grouping = false               # also write the grouping Observation to the EHR
    directory = "instance/services.json"      # the locality's services directory (agencies and
                                              # local offer, shape: smart_app/directory/example-
                                              # directory.json); relative to this file. Left out:
                                              # the THRIVE_DIRECTORY environment variable, else the
                                              # invented example directory.
    # journeys = true                         # register smart_app.journeys (false: summary only)

    [[ehr]]
    name = "Northshire Hospital EHR"
    iss = "https://ehr.example.nhs.uk/fhir"   # exact string the EHR sends as ?iss=
    client_id = "thrive-app"
    auth_method = "private_key_jwt"           # or "client_secret_basic" or "public"
    private_key_file = "instance/app-key.pem" # private_key_jwt only (RSA or EC P-384)
    key_id = "thrive-2025-01"
    # client_secret = "..."                   # client_secret_basic only
    scope_version = "v2"                      # or "v1" (SC-03)
    online_access = true                      # ask for online_access (a refresh token while the user
                                              # works; both launch kinds): the default
    auth_hosts = ["auth.example.nhs.uk"]      # where discovery may point (pinned), besides the iss's
                                              # own origin: "host" (https, port 443) or a whole origin
                                              # "https://auth.example.nhs.uk:8443"; compared by scheme,
                                              # host and port
    # epic_client_id_header = true            # Epic only: send Epic-Client-ID to /metadata
    # oidc_issuer = "https://auth.example.nhs.uk/oauth2"  # id_token issuer (EL-17); needed when the EHR
    #                                         # has no .well-known/smart-configuration (/metadata fallback)
    frame_ancestors = ["https://ehr-ui.example.nhs.uk"]  # EHR UI origins allowed to frame us
    # allow_insecure_loopback = true          # sandbox only: http on 127.0.0.1/localhost
    # need_patient_picker = true              # standalone launches may come back without a patient
                                              # (Epic provider standalone, SA-04): agency staff then
                                              # find the young person in the app, among those whose
                                              # sharing consent names their organisation; adds the
                                              # user/Patient.rs scope to standalone launches

    [[standalone]]
    name = "Northshire High School"          # what the agency worker picks
    iss = "https://ehr.example.nhs.uk/fhir"  # must also be an [[ehr]] entry (client settings)
    organization = "Organization/school-123" # the agency the worker acts for (consent check)

    [shared_store]                           # optional: the Summary also shows the young person's
                                             # shared record (smart_app.summary.shared_history)
    fhir_base = "https://shared.example.nhs.uk/fhir"
    client_id = "thrive-app-backend"         # SMART Backend Services client of this deployment
    private_key_file = "instance/backend-key.pem"  # RSA (RS384) or EC P-384 (ES384)
    kid = "thrive-backend-2025-01"
    alg = "RS384"
    token_url = "https://auth.example.nhs.uk/token"
    scope = "system/*.rs"                    # read only: the Summary never writes there
    max_age_seconds = 30                     # freshness rule of the per-launch cache
    # allow_insecure_loopback = true         # sandbox only: http on 127.0.0.1/localhost
    # Change notifications (optional; smart_app.subscribe and smart_app.notification_receiver):
    # notification_endpoint = "https://thrive.example.nhs.uk/notifications/shared-plan"
    # notification_secret_file = "instance/notification-secret"  # 32+ chars; the store sends it back
    #                                        # as "Authorization: Bearer <secret>" with each notification
    # heartbeat_seconds = 60                 # asked of the store; no heartbeat for 2 periods = no
    #                                        # active subscription (the 30 s rule applies again)
    # subscribed_max_age_seconds = 900       # the cache's max age while notifications arrive
    # subscription_scope = "system/Subscription.cruds"  # asked for, with scope, only when subscribing
    #                                        # (the store tells a subscriber only of what it may read)

``smart_app.create_app(config)`` also accepts the same structure as a dict.

Secrets come from files, never from the config text or the environment: ``secret_key_file``,
``private_key_file``, ``client_secret_file`` (instead of ``client_secret``) and
``database_url_file`` (a file holding the database URL with its password; or leave the password
out of ``database_url`` and give PostgreSQL's own ``PGPASSFILE``). Mounted secrets (``/run/secrets``)
fit this. For containers, environment variables override the file's top-level settings (see
:data:`ENV_KEYS`): ``THRIVE_APP_DATABASE_URL``, ``THRIVE_APP_SECRET_KEY_FILE``... and
``thrive app serve`` reads the config file named by ``THRIVE_APP_CONFIG``, or runs on the
environment alone.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

AUTH_METHODS = ("public", "private_key_jwt", "client_secret_basic")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class ConfigError(ValueError):
    """The configuration is unusable; the message names the field."""


def normalise_iss(iss: str) -> str:
    """Lower-case scheme and host only (EL-02 allows nothing else to be normalised)."""
    parts = urlsplit(iss)
    netloc = parts.netloc
    if "@" not in netloc:
        netloc = netloc.lower()
    rest = iss[len(parts.scheme) + 3 + len(parts.netloc) :]
    return f"{parts.scheme.lower()}://{netloc}{rest}"


@dataclass(frozen=True)
class EhrRegistration:
    """One EHR (FHIR server + authorization server) this deployment is registered with."""

    iss: str
    client_id: str
    name: str = ""
    auth_method: str = "private_key_jwt"
    private_key_file: str | None = None
    key_id: str | None = None
    client_secret: str | None = None
    scope_version: str = "v2"
    online_access: bool = True
    auth_hosts: tuple[str, ...] = ()
    frame_ancestors: tuple[str, ...] = ()
    allow_insecure_loopback: bool = False
    need_patient_picker: bool = False
    oidc_issuer: str | None = None
    #: Epic: its /metadata may list the endpoints registered for a client only when the request names
    #: that client in an ``Epic-Client-ID`` header (fhir.epic.com/Documentation?docId=oauth2, Step 2).
    #: Other EHRs get no such header: it would tell them our client id for nothing.
    epic_client_id_header: bool = False

    @property
    def display_name(self) -> str:
        return self.name or urlsplit(self.iss).hostname or self.iss

    def url_allowed(self, url: str, *, pinned: bool) -> bool:
        """True if ``url`` may be used for this EHR: https (or loopback http when allowed), no
        userinfo, and when ``pinned`` its host is the iss host or one of ``auth_hosts``."""
        try:
            parts = urlsplit(url)
            host = parts.hostname or ""
            _ = parts.port  # raises on a malformed port
        except ValueError:
            return False
        if parts.username or parts.password or not host:
            return False
        if parts.scheme == "https":
            pass
        elif parts.scheme == "http" and self.allow_insecure_loopback and host in LOOPBACK_HOSTS:
            pass
        else:
            return False
        if pinned:
            return _origin(url) in self.pinned_origins
        return True

    @property
    def pinned_origins(self) -> frozenset[tuple[str, str, int]]:
        """(scheme, host, port) of the iss and of each ``auth_hosts`` entry. Whole origins, not host
        names: an authorization server on another port of the same host is another server."""
        origins = {_origin(self.iss)}
        for entry in self.auth_hosts:
            origins.add(_origin(entry if "://" in entry else f"https://{entry}"))
        return frozenset(o for o in origins if o is not None)


def _origin(url: str) -> tuple[str, str, int] | None:
    """``(scheme, lower-case host, port)`` with the scheme's default port filled in."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname or parts.scheme not in ("http", "https"):
        return None
    return parts.scheme, parts.hostname.lower(), port or (443 if parts.scheme == "https" else 80)


@dataclass(frozen=True)
class StandaloneEntry:
    """An organisation an agency worker can sign in through (standalone launch)."""

    key: str
    name: str
    iss: str
    organization: str | None = None


@dataclass(frozen=True)
class SharedStoreConfig:
    """The shared cross-agency store the Summary reads with this deployment's Backend Services
    credentials (``[shared_store]``; :mod:`smart_app.summary.shared_history`)."""

    fhir_base: str
    client_id: str
    private_key_file: str
    kid: str
    token_url: str
    scope: str = "system/*.rs"
    alg: str = "RS384"
    max_age_seconds: float = 30.0
    timeout_seconds: float = 5.0
    #: Change notifications (:mod:`smart_app.subscribe`, :mod:`smart_app.notification_receiver`):
    #: the app's public URL of its receiver, the channel secret the store sends back with each
    #: notification, the heartbeat asked for, the cache's max age while notifications arrive, and
    #: the scope asked for when creating the Subscription.
    notification_endpoint: str | None = None
    notification_secret: str | None = field(default=None, repr=False)
    heartbeat_seconds: int = 60
    subscribed_max_age_seconds: float = 900.0
    subscription_scope: str = "system/Subscription.cruds"

    @property
    def notifications(self) -> bool:
        """Change notifications are configured (an endpoint and a secret)."""
        return bool(self.notification_endpoint and self.notification_secret)

    @property
    def channel_alive_seconds(self) -> float:
        """How recently a notification (handshake, heartbeat or event) must have arrived for the
        channel to count as working: two heartbeat periods, so one lost heartbeat is not an outage,
        plus 15 s for delivery. The Summary's cache keeps its long max age only within it, and
        ``thrive app serve`` subscribes again after it."""
        return 2 * self.heartbeat_seconds + 15


@dataclass
class AppConfig:
    """Everything ``create_app`` needs, validated once at start-up."""

    secret_key: bytes
    database_url: str = "sqlite:///thrive-app.db"
    ods_code: str = "RXX"
    public_base_url: str | None = None
    write_back_grouping: bool = False
    #: Path of the local services directory file (``smart_app.directory``), or None for the
    #: ``THRIVE_DIRECTORY`` environment variable, else the invented example directory.
    directory: str | None = None
    ehrs: dict[str, EhrRegistration] = field(default_factory=dict)
    standalone: dict[str, StandaloneEntry] = field(default_factory=dict)
    session_max_hours: float = 12.0
    nhsuk_frontend_dir: str | None = None
    app_name: str = "THRIVE care plan"
    testing: bool = False
    journeys: bool = True
    #: Where the Summary reads the shared record from; None: local data only.
    shared_store: SharedStoreConfig | None = None

    def ehr_for_iss(self, iss: str) -> EhrRegistration | None:
        """Exact registry match (scheme/host case-insensitive), else None (EL-02)."""
        if not iss:
            return None
        return self.ehrs.get(normalise_iss(iss))


def _bool(raw: dict, key: str, default: bool) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    return value


def _strs(raw: dict, key: str, where: str) -> tuple[str, ...]:
    value = raw.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}.{key}: expected a list of strings")
    return tuple(value)


def _auth_hosts(raw: dict, where: str) -> tuple[str, ...]:
    entries = _strs(raw, "auth_hosts", where)
    for entry in entries:
        split = urlsplit(entry if "://" in entry else f"https://{entry}")
        parts: SplitResult | None = split
        try:
            _ = split.port
        except ValueError:
            parts = None
        if (
            parts is None
            or not parts.hostname
            or parts.path
            or parts.query
            or parts.username
            or parts.scheme not in ("http", "https")
        ):
            raise ConfigError(f"{where}.auth_hosts: {entry!r} is not a host or an origin (scheme://host[:port])")
    return entries


def _ehr(raw: Any, i: int, base_dir: Path) -> EhrRegistration:
    where = f"ehr[{i}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a table/object")
    iss = raw.get("iss")
    client_id = raw.get("client_id")
    if not isinstance(iss, str) or not iss:
        raise ConfigError(f"{where}.iss: required")
    if not isinstance(client_id, str) or not client_id:
        raise ConfigError(f"{where}.client_id: required")
    method = raw.get("auth_method", "private_key_jwt")
    if method not in AUTH_METHODS:
        raise ConfigError(f"{where}.auth_method: one of {', '.join(AUTH_METHODS)}")
    key_file = raw.get("private_key_file")
    if method == "private_key_jwt":
        if not key_file:
            raise ConfigError(f"{where}.private_key_file: required for private_key_jwt")
        key_file = str((base_dir / key_file).resolve()) if not Path(key_file).is_absolute() else key_file
        if not Path(key_file).is_file():
            raise ConfigError(f"{where}.private_key_file: {key_file} does not exist")
    if raw.get("client_secret_file"):
        raw = dict(
            raw,
            client_secret=_read_secret_file(raw["client_secret_file"], base_dir, f"{where}.client_secret_file").decode(
                "utf-8", "replace"
            ),
        )
    if method == "client_secret_basic" and not raw.get("client_secret"):
        raise ConfigError(f"{where}.client_secret: required for client_secret_basic")
    version = raw.get("scope_version", "v2")
    if version not in ("v1", "v2"):
        raise ConfigError(f"{where}.scope_version: v1 or v2")
    frame = _strs(raw, "frame_ancestors", where)
    for origin in frame:
        if origin.strip() in ("*", "'none'") or "://" not in origin:
            raise ConfigError(f"{where}.frame_ancestors: {origin!r} is not an origin (never '*')")
    reg = EhrRegistration(
        iss=iss,
        client_id=client_id,
        name=str(raw.get("name", "")),
        auth_method=method,
        private_key_file=key_file,
        key_id=raw.get("key_id"),
        client_secret=raw.get("client_secret"),
        scope_version=version,
        online_access=_bool(raw, "online_access", True),
        auth_hosts=_auth_hosts(raw, where),
        frame_ancestors=frame,
        allow_insecure_loopback=_bool(raw, "allow_insecure_loopback", False),
        need_patient_picker=_bool(raw, "need_patient_picker", False),
        oidc_issuer=raw.get("oidc_issuer"),
        epic_client_id_header=_bool(raw, "epic_client_id_header", False),
    )
    if not reg.url_allowed(iss, pinned=False):
        raise ConfigError(f"{where}.iss: must be https (http only on 127.0.0.1/localhost with allow_insecure_loopback)")
    if reg.oidc_issuer is not None and (
        not isinstance(reg.oidc_issuer, str) or not reg.url_allowed(reg.oidc_issuer, pinned=True)
    ):
        raise ConfigError(f"{where}.oidc_issuer: must be an https URL on the iss host or one of auth_hosts")
    return reg


def _shared_store(raw: Any, base_dir: Path) -> SharedStoreConfig | None:
    if raw is None:
        return None
    where = "shared_store"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a table/object")
    values = {}
    for key in ("fhir_base", "client_id", "private_key_file", "kid", "token_url"):
        value = raw.get(key)
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}.{key}: required")
        values[key] = value
    key_file = values["private_key_file"]
    key_file = key_file if Path(key_file).is_absolute() else str((base_dir / key_file).resolve())
    if not Path(key_file).is_file():
        raise ConfigError(f"{where}.private_key_file: {key_file} does not exist")
    values["private_key_file"] = key_file
    loopback = _bool(raw, "allow_insecure_loopback", False)
    for key in ("fhir_base", "token_url"):
        parts = urlsplit(values[key])
        secure = parts.scheme == "https" or (loopback and parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS)
        if not parts.hostname or parts.username or not secure:
            raise ConfigError(
                f"{where}.{key}: must be https (http only on 127.0.0.1/localhost with allow_insecure_loopback)"
            )
    alg = raw.get("alg", "RS384")
    if alg not in ("RS384", "ES384"):
        raise ConfigError(f"{where}.alg: RS384 or ES384")
    scope = raw.get("scope", "system/*.rs")
    if not isinstance(scope, str) or not all(s.startswith("system/") for s in scope.split()):
        raise ConfigError(f"{where}.scope: system/ scopes only (SMART Backend Services)")
    numbers: dict[str, Any] = {}
    for key, default in (("max_age_seconds", 30.0), ("timeout_seconds", 5.0), ("subscribed_max_age_seconds", 900.0)):
        value = raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(f"{where}.{key}: expected a number of seconds")
        numbers[key] = float(value)
    notify = _notifications(raw, base_dir, loopback)
    return SharedStoreConfig(
        **notify,
        fhir_base=values["fhir_base"].rstrip("/"),
        client_id=values["client_id"],
        private_key_file=key_file,
        kid=values["kid"],
        token_url=values["token_url"],
        scope=scope,
        alg=alg,
        **numbers,
    )


#: A channel secret: long enough not to be guessed, and safe inside an HTTP header line.
_CHANNEL_SECRET_RE = re.compile(r"[A-Za-z0-9\-._~+/=]{32,512}")


def _notifications(raw: dict, base_dir: Path, loopback: bool) -> dict:
    """The change-notification settings of ``[shared_store]`` (all optional, but the endpoint and the
    secret file come together)."""
    where = "shared_store"
    out: dict[str, Any] = {}
    endpoint = raw.get("notification_endpoint")
    secret_file = raw.get("notification_secret_file")
    if endpoint is None and secret_file is None:
        return out
    if not isinstance(endpoint, str) or not endpoint:
        raise ConfigError(f"{where}.notification_endpoint: required with notification_secret_file")
    parts = urlsplit(endpoint)
    secure = parts.scheme == "https" or (loopback and parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS)
    if not parts.hostname or parts.username or parts.query or parts.fragment or not secure:
        raise ConfigError(
            f"{where}.notification_endpoint: an https URL of this app's receiver "
            "(http only on 127.0.0.1/localhost with allow_insecure_loopback)"
        )
    secret = _read_secret_file(secret_file, base_dir, f"{where}.notification_secret_file").decode("utf-8", "replace")
    if not _CHANNEL_SECRET_RE.fullmatch(secret):
        raise ConfigError(
            f"{where}.notification_secret_file: 32 to 512 characters of A-Z a-z 0-9 - . _ ~ + / = "
            "(it is sent in an HTTP header)"
        )
    heartbeat = raw.get("heartbeat_seconds", 60)
    if isinstance(heartbeat, bool) or not isinstance(heartbeat, int) or not 10 <= heartbeat <= 86400:
        raise ConfigError(f"{where}.heartbeat_seconds: a whole number of seconds from 10 to 86400")
    scope = raw.get("subscription_scope", "system/Subscription.cruds")
    if not isinstance(scope, str) or not all(s.startswith("system/Subscription.") for s in scope.split()):
        raise ConfigError(f"{where}.subscription_scope: system/Subscription.* scopes only")
    out.update(
        notification_endpoint=endpoint,
        notification_secret=secret,
        heartbeat_seconds=heartbeat,
        subscription_scope=scope,
    )
    return out


def _read_secret_file(name: Any, base_dir: Path, key: str) -> bytes:
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{key}: expected a file path")
    path = Path(name) if Path(name).is_absolute() else base_dir / name
    try:
        return path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror}") from None


#: Top-level settings an environment variable ``THRIVE_APP_<KEY>`` overrides, with how its text is
#: read. Secrets only as ``*_file`` (a path), so they never sit in the environment of a process.
ENV_PREFIX = "THRIVE_APP_"
ENV_KEYS = {
    "database_url": str,
    "database_url_file": "path",
    "secret_key_file": "path",
    "ods_code": str,
    "public_base_url": str,
    "directory": "path",
    "nhsuk_frontend_dir": "path",
    "app_name": str,
    "write_back_grouping": bool,
    "journeys": bool,
    "session_max_hours": float,
}


#: ``[shared_store]`` settings an environment variable ``THRIVE_APP_SHARED_STORE_<KEY>`` overrides
#: (only where the config has a ``[shared_store]`` section: the credentials live there).
ENV_SHARED_STORE_KEYS = {"notification_endpoint": str, "notification_secret_file": "path"}


def apply_environment(raw: dict, environ: dict | None = None) -> dict:
    """``raw`` with every ``THRIVE_APP_<KEY>`` of :data:`ENV_KEYS` set in ``environ`` applied.

    Paths from the environment are taken relative to the working directory."""
    env = os.environ if environ is None else environ
    out = dict(raw)
    for key, kind in ENV_KEYS.items():
        text = env.get(ENV_PREFIX + key.upper())
        if text is None or text == "":
            continue
        if kind is bool:
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ConfigError(f"{ENV_PREFIX}{key.upper()}: expected true or false")
            out[key] = text.lower() in ("true", "1", "yes")
        elif kind is float:
            try:
                out[key] = float(text)
            except ValueError:
                raise ConfigError(f"{ENV_PREFIX}{key.upper()}: expected a number") from None
        elif kind == "path":
            out[key] = str(Path(text).resolve())
        else:
            out[key] = text
        if key in ("database_url", "database_url_file"):  # the environment's choice wins over the file's
            out.pop("database_url_file" if key == "database_url" else "database_url", None)
    if isinstance(out.get("shared_store"), dict):
        section = dict(out["shared_store"])
        for key, kind in ENV_SHARED_STORE_KEYS.items():
            text = env.get(f"{ENV_PREFIX}SHARED_STORE_{key.upper()}")
            if text:
                section[key] = str(Path(text).resolve()) if kind == "path" else text
        out["shared_store"] = section
    return out


def load_config(path: str | Path | None, environ: dict | None = None) -> AppConfig:
    """The app config from a file (if given) with the environment's overrides applied."""
    if path is None:
        return parse_config(apply_environment({}, environ), base_dir=Path.cwd())
    return load_config_file(path, environ=environ)


def _secret(raw: dict, base_dir: Path, testing: bool) -> bytes:
    if raw.get("secret_key_file"):
        path = Path(raw["secret_key_file"])
        path = path if path.is_absolute() else base_dir / path
        try:
            data = path.read_bytes().strip()
        except OSError as exc:
            raise ConfigError(f"secret_key_file: cannot read {path}: {exc.strerror}") from None
    elif raw.get("secret_key"):
        data = str(raw["secret_key"]).encode()
    elif testing:
        data = secrets.token_bytes(32)
    else:
        raise ConfigError("secret_key_file: required (32 or more random bytes)")
    if len(data) < 32:
        raise ConfigError("secret_key: must be at least 32 bytes")
    return data


def parse_config(raw: dict | None, base_dir: Path | None = None) -> AppConfig:
    """Validate a raw mapping (from a file or a test) into an :class:`AppConfig`."""
    raw = dict(raw or {})
    base_dir = base_dir or Path.cwd()
    testing = _bool(raw, "testing", False)
    ehrs: dict[str, EhrRegistration] = {}
    for i, item in enumerate(raw.get("ehr", raw.get("ehrs", [])) or []):
        reg = _ehr(item, i, base_dir)
        ehrs[normalise_iss(reg.iss)] = reg
    standalone: dict[str, StandaloneEntry] = {}
    for i, item in enumerate(raw.get("standalone", []) or []):
        if not isinstance(item, dict) or not item.get("name") or not item.get("iss"):
            raise ConfigError(f"standalone[{i}]: name and iss are required")
        if normalise_iss(item["iss"]) not in ehrs:
            raise ConfigError(f"standalone[{i}].iss: {item['iss']} is not a registered [[ehr]]")
        key = str(item.get("key") or f"org{i + 1}")
        standalone[key] = StandaloneEntry(
            key=key, name=item["name"], iss=item["iss"], organization=item.get("organization")
        )
    directory = raw.get("directory")
    if directory is not None:
        if not isinstance(directory, str) or not directory.strip():
            raise ConfigError("directory: expected the path of the services directory file")
        directory = directory if Path(directory).is_absolute() else str((base_dir / directory).resolve())
        if not Path(directory).is_file():
            raise ConfigError(f"directory: {directory} does not exist")
    if raw.get("database_url_file"):
        raw["database_url"] = _read_secret_file(raw["database_url_file"], base_dir, "database_url_file").decode(
            "utf-8", "replace"
        )
    public = raw.get("public_base_url")
    if public is not None and (not isinstance(public, str) or "://" not in public):
        raise ConfigError("public_base_url: expected an absolute URL")
    return AppConfig(
        secret_key=_secret(raw, base_dir, testing),
        database_url=str(raw.get("database_url", "sqlite:///thrive-app.db")),
        ods_code=str(raw.get("ods_code", "RXX")),
        public_base_url=public.rstrip("/") if public else None,
        write_back_grouping=_bool(raw, "write_back_grouping", False),
        directory=directory,
        ehrs=ehrs,
        standalone=standalone,
        session_max_hours=float(raw.get("session_max_hours", 12)),
        nhsuk_frontend_dir=raw.get("nhsuk_frontend_dir"),
        app_name=str(raw.get("app_name", "THRIVE care plan")),
        testing=testing,
        journeys=_bool(raw, "journeys", True),
        shared_store=_shared_store(raw.get("shared_store"), base_dir),
    )


def load_config_file(path: str | Path, environ: dict | None = None) -> AppConfig:
    """Read a TOML, JSON or YAML config file; relative paths inside resolve from its folder.
    ``THRIVE_APP_*`` environment variables override its top-level settings (:func:`apply_environment`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from None
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            raw = tomllib.loads(text)
        elif suffix == ".json":
            raw = json.loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml

            raw = yaml.safe_load(text)
        else:
            raise ConfigError(f"{path}: use a .toml, .json or .yaml file")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except Exception as exc:  # yaml.YAMLError without importing yaml eagerly
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{path}: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a table/object")
    return parse_config(apply_environment(raw, environ), base_dir=path.parent)
