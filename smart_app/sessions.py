"""Server-side sessions: pending authorisations, per-launch contexts and preserved drafts.

Why not Flask's ``session``: it is a signed, readable cookie (docs/design/smart-launch.md TS-01). Here the browser
holds only a random *binding* id in a ``__Host-`` cookie; everything else lives in the app database,
with tokens and preserved form contents encrypted (TS-07). Each completed launch is its own context
(``launch_id``, 192 random bits) named in the URL path, so two tabs with two patients never share
state (TS-02); a context is usable only together with the binding cookie that created it.

State values are stored as SHA-256 hashes and consumed with an atomic DELETE … RETURNING, so a
replayed or raced callback finds nothing (EL-07).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, overload

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken

AUTH_REQUEST_TTL = timedelta(minutes=10)
DRAFT_TTL = timedelta(hours=24)

metadata = sa.MetaData()

auth_requests = sa.Table(
    "app_auth_request",
    metadata,
    sa.Column("state_hash", sa.String(64), primary_key=True),
    sa.Column("binding_hash", sa.String(64), nullable=False),
    sa.Column("mode", sa.String(16), nullable=False),  # ehr | standalone
    sa.Column("iss", sa.Text, nullable=False),
    sa.Column("launch_param_enc", sa.Text),
    sa.Column("client_id", sa.Text, nullable=False),
    sa.Column("redirect_uri", sa.Text, nullable=False),
    sa.Column("code_verifier_enc", sa.Text, nullable=False),
    sa.Column("nonce", sa.String(128), nullable=False),
    sa.Column("token_endpoint", sa.Text, nullable=False),
    sa.Column("issuer", sa.Text),
    sa.Column("jwks_uri", sa.Text),
    sa.Column("requested_scope", sa.Text, nullable=False),
    sa.Column("standalone_key", sa.String(64)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

launches = sa.Table(
    "app_launch",
    metadata,
    sa.Column("launch_id", sa.String(64), primary_key=True),
    sa.Column("binding_hash", sa.String(64), nullable=False, index=True),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("iss", sa.Text, nullable=False),
    sa.Column("standalone_key", sa.String(64)),
    sa.Column("patient_id", sa.Text),
    sa.Column("encounter_id", sa.Text),
    sa.Column("user_ref", sa.Text),
    sa.Column("sub", sa.Text),
    sa.Column("practitioner_role_ref", sa.Text),
    sa.Column("organization_ref", sa.Text),
    sa.Column("scopes", sa.Text, nullable=False, default=""),
    sa.Column("need_patient_banner", sa.Boolean, nullable=False, default=True),
    sa.Column("banner_json", sa.Text),
    sa.Column("access_token_enc", sa.Text),
    sa.Column("refresh_token_enc", sa.Text),
    sa.Column("token_endpoint", sa.Text),
    sa.Column("token_expires_at", sa.DateTime(timezone=True)),
    sa.Column("refreshed_at", sa.DateTime(timezone=True)),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ended", sa.Boolean, nullable=False, default=False),
)

drafts = sa.Table(
    "app_draft",
    metadata,
    sa.Column("draft_id", sa.String(64), primary_key=True),
    sa.Column("binding_hash", sa.String(64), nullable=False, index=True),
    sa.Column("iss", sa.Text, nullable=False),
    sa.Column("patient_id", sa.Text),
    sa.Column("user_ref", sa.Text),
    sa.Column("path", sa.Text, nullable=False),  # path below /l/<launch_id>
    sa.Column("form_enc", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)


def utcnow() -> datetime:
    return datetime.now(UTC)


@overload
def _aware(value: datetime) -> datetime: ...
@overload
def _aware(value: datetime | None) -> datetime | None: ...
def _aware(value: datetime | None) -> datetime | None:
    # SQLite returns naive datetimes even for timezone=True columns.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def new_binding() -> str:
    """A fresh random browser binding id (the only thing the cookie ever holds)."""
    return secrets.token_urlsafe(32)


@dataclass
class AuthRequest:
    """A pending authorisation, as stored when the app redirected to the authorize endpoint."""

    mode: str
    iss: str
    launch_param: str | None
    client_id: str
    redirect_uri: str
    code_verifier: str
    nonce: str
    token_endpoint: str
    issuer: str | None
    jwks_uri: str | None
    requested_scope: str
    standalone_key: str | None
    created_at: datetime


@dataclass
class LaunchRecord:
    """One launch context as stored (tokens decrypted on demand by :class:`SessionStore`)."""

    launch_id: str
    binding_hash: str
    mode: str
    iss: str
    standalone_key: str | None
    patient_id: str | None
    encounter_id: str | None
    user_ref: str | None
    sub: str | None
    practitioner_role_ref: str | None
    organization_ref: str | None
    scopes: str
    need_patient_banner: bool
    banner: dict | None
    token_endpoint: str | None
    token_expires_at: datetime | None
    refreshed_at: datetime | None
    has_refresh_token: bool
    csrf_token: str
    created_at: datetime
    ends_at: datetime
    ended: bool


@dataclass
class Draft:
    draft_id: str
    path: str
    form: list[tuple[str, str]]
    created_at: datetime


class SessionStore:
    """All server-side session state of the app, in the app database."""

    def __init__(self, engine: sa.Engine, secret_key: bytes):
        self.engine = engine
        key = hashlib.sha256(b"thrive-app-token-encryption|" + secret_key).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(key))
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def create_tables(self) -> None:
        metadata.create_all(self.engine, checkfirst=True)

    # --- encryption -------------------------------------------------------------------------
    def encrypt(self, value: str | None) -> str | None:
        return None if value is None else self._fernet.encrypt(value.encode()).decode()

    def decrypt(self, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return self._fernet.decrypt(value.encode()).decode()
        except InvalidToken:
            return None  # key rotated: treat as no token (relaunch), never crash

    # --- pending authorisation requests (EL-07) ------------------------------------------------
    def create_auth_request(self, binding: str, **fields: Any) -> str:
        state = secrets.token_urlsafe(32)
        now = utcnow()
        with self.engine.begin() as conn:
            conn.execute(auth_requests.delete().where(auth_requests.c.created_at < now - AUTH_REQUEST_TTL))
            conn.execute(
                auth_requests.insert().values(
                    state_hash=sha256(state),
                    binding_hash=sha256(binding),
                    mode=fields["mode"],
                    iss=fields["iss"],
                    launch_param_enc=self.encrypt(fields.get("launch_param")),
                    client_id=fields["client_id"],
                    redirect_uri=fields["redirect_uri"],
                    code_verifier_enc=self.encrypt(fields["code_verifier"]),
                    nonce=fields["nonce"],
                    token_endpoint=fields["token_endpoint"],
                    issuer=fields.get("issuer"),
                    jwks_uri=fields.get("jwks_uri"),
                    requested_scope=fields["requested_scope"],
                    standalone_key=fields.get("standalone_key"),
                    created_at=now,
                )
            )
        return state

    def consume_auth_request(self, state: str, binding: str | None) -> AuthRequest | None:
        """Atomically remove and return the request for ``state`` if it is fresh and was started
        by this browser; otherwise None. The row is deleted either way (one-time use)."""
        if not state or len(state) > 512:
            return None
        with self.engine.begin() as conn:
            row = conn.execute(
                auth_requests.delete().where(auth_requests.c.state_hash == sha256(state)).returning(*auth_requests.c)
            ).first()
        if row is None:
            return None
        if binding is None or not secrets.compare_digest(row.binding_hash, sha256(binding)):
            return None
        if _aware(row.created_at) < utcnow() - AUTH_REQUEST_TTL:
            return None
        return AuthRequest(
            mode=row.mode,
            iss=row.iss,
            launch_param=self.decrypt(row.launch_param_enc),
            client_id=row.client_id,
            redirect_uri=row.redirect_uri,
            code_verifier=self.decrypt(row.code_verifier_enc) or "",
            nonce=row.nonce,
            token_endpoint=row.token_endpoint,
            issuer=row.issuer,
            jwks_uri=row.jwks_uri,
            requested_scope=row.requested_scope,
            standalone_key=row.standalone_key,
            created_at=_aware(row.created_at),
        )

    # --- launch contexts (TS-02) ------------------------------------------------------------
    def create_launch(
        self,
        binding: str,
        *,
        mode: str,
        iss: str,
        max_hours: float,
        access_token: str | None = None,
        refresh_token: str | None = None,
        expires_in: int | None = None,
        banner: dict | None = None,
        **fields: Any,
    ) -> str:
        launch_id = secrets.token_urlsafe(24)
        now = utcnow()
        with self.engine.begin() as conn:
            conn.execute(
                launches.insert().values(
                    launch_id=launch_id,
                    binding_hash=sha256(binding),
                    mode=mode,
                    iss=iss,
                    standalone_key=fields.get("standalone_key"),
                    patient_id=fields.get("patient_id"),
                    encounter_id=fields.get("encounter_id"),
                    user_ref=fields.get("user_ref"),
                    sub=fields.get("sub"),
                    practitioner_role_ref=fields.get("practitioner_role_ref"),
                    organization_ref=fields.get("organization_ref"),
                    scopes=fields.get("scopes", ""),
                    need_patient_banner=fields.get("need_patient_banner", True),
                    banner_json=json.dumps(banner) if banner else None,
                    access_token_enc=self.encrypt(access_token),
                    refresh_token_enc=self.encrypt(refresh_token),
                    token_endpoint=fields.get("token_endpoint"),
                    token_expires_at=(now + timedelta(seconds=expires_in)) if expires_in else None,
                    refreshed_at=None,
                    csrf_token=secrets.token_urlsafe(32),
                    created_at=now,
                    ends_at=now + timedelta(hours=max_hours),
                    ended=False,
                )
            )
        return launch_id

    def fork_launch(self, launch_id: str, *, patient_id: str, banner: dict | None) -> str | None:
        """A new launch context for ``patient_id``, made from a standalone launch that had none
        (the in-app patient picker, SA-04). One patient per context (TS-02): the picker's context
        stays patient-less, so the worker can go back and choose another young person.

        The new context gets the access token but NOT the refresh token: two contexts refreshing
        with one refresh token would use it twice (TS-08). It ends when that access token does."""
        now = utcnow()
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(launches).where(launches.c.launch_id == launch_id)).first()
            if row is None or row.ended or row.patient_id is not None:
                return None
            new_id = secrets.token_urlsafe(24)
            values = dict(row._mapping)
            values.update(
                launch_id=new_id,
                patient_id=patient_id,
                banner_json=json.dumps(banner) if banner else None,
                refresh_token_enc=None,
                refreshed_at=None,
                csrf_token=secrets.token_urlsafe(32),
                created_at=now,
            )
            conn.execute(launches.insert().values(**values))
        return new_id

    @staticmethod
    def _record(row: Any) -> LaunchRecord:
        return LaunchRecord(
            launch_id=row.launch_id,
            binding_hash=row.binding_hash,
            mode=row.mode,
            iss=row.iss,
            standalone_key=row.standalone_key,
            patient_id=row.patient_id,
            encounter_id=row.encounter_id,
            user_ref=row.user_ref,
            sub=row.sub,
            practitioner_role_ref=row.practitioner_role_ref,
            organization_ref=row.organization_ref,
            scopes=row.scopes or "",
            need_patient_banner=bool(row.need_patient_banner),
            banner=json.loads(row.banner_json) if row.banner_json else None,
            token_endpoint=row.token_endpoint,
            token_expires_at=_aware(row.token_expires_at),
            refreshed_at=_aware(row.refreshed_at),
            has_refresh_token=row.refresh_token_enc is not None,
            csrf_token=row.csrf_token,
            created_at=_aware(row.created_at),
            ends_at=_aware(row.ends_at),
            ended=bool(row.ended),
        )

    def get_launch(self, launch_id: str) -> LaunchRecord | None:
        if not launch_id or len(launch_id) > 64:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(launches).where(launches.c.launch_id == launch_id)).first()
        return None if row is None else self._record(row)

    def binding_matches(self, record: LaunchRecord, binding: str | None) -> bool:
        return binding is not None and secrets.compare_digest(record.binding_hash, sha256(binding))

    def access_token(self, launch_id: str) -> str | None:
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.select(launches.c.access_token_enc).where(launches.c.launch_id == launch_id)
            ).scalar()
        return self.decrypt(value)

    def set_banner(self, launch_id: str, banner: dict) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                launches.update().where(launches.c.launch_id == launch_id).values(banner_json=json.dumps(banner))
            )

    def lock(self, launch_id: str) -> threading.Lock:
        """Process-local lock serialising refreshes of one context (TS-08)."""
        with self._locks_guard:
            return self._locks.setdefault(launch_id, threading.Lock())

    def refresh_tokens(self, launch_id: str, refresher, rejected_token: str | None = None) -> bool:
        """Serialised, single-use refresh (TS-08). ``refresher(refresh_token)`` returns the token
        response dict or raises. Inside the lock the row is re-read: if another request already
        refreshed (expiry moved on), nothing is sent. Returns True when a usable token exists.

        ``rejected_token``: the access token the EHR just answered 401 to (TS-09). The EHR may end a
        token before its ``expires_in`` (revocation, key rotation), so then the expiry we hold proves
        nothing: refresh unless the stored token is already a different one."""
        with self.lock(launch_id):
            with self.engine.begin() as conn:
                row = conn.execute(
                    sa.select(launches).where(launches.c.launch_id == launch_id).with_for_update()
                ).first()
                if row is None or row.ended:
                    return False
                expires = _aware(row.token_expires_at)
                if rejected_token is not None:
                    if self.decrypt(row.access_token_enc) != rejected_token:
                        return True  # someone else refreshed while we waited
                elif expires and expires - utcnow() > timedelta(seconds=60):
                    return True  # someone else refreshed while we waited
                refresh = self.decrypt(row.refresh_token_enc)
                if not refresh:
                    return bool(expires and expires > utcnow())
                try:
                    response = refresher(refresh)
                except Exception:
                    # invalid_grant and friends: drop both tokens (TS-07); the context ends.
                    conn.execute(
                        launches.update()
                        .where(launches.c.launch_id == launch_id)
                        .values(access_token_enc=None, refresh_token_enc=None, token_expires_at=utcnow())
                    )
                    return False
                now = utcnow()
                values = {
                    "access_token_enc": self.encrypt(response["access_token"]),
                    "token_expires_at": now + timedelta(seconds=int(response.get("expires_in") or 300)),
                    "refreshed_at": now,
                }
                if response.get("refresh_token"):
                    values["refresh_token_enc"] = self.encrypt(response["refresh_token"])
                conn.execute(launches.update().where(launches.c.launch_id == launch_id).values(**values))
                return True

    def end_launch(self, launch_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                launches.update()
                .where(launches.c.launch_id == launch_id)
                .values(ended=True, access_token_enc=None, refresh_token_enc=None)
            )

    # --- preserved form posts (TS-09) ------------------------------------------------------
    def save_draft(self, binding: str, record: LaunchRecord, path: str, form: list[tuple[str, str]]) -> str:
        draft_id = secrets.token_urlsafe(18)
        now = utcnow()
        with self.engine.begin() as conn:
            conn.execute(drafts.delete().where(drafts.c.created_at < now - DRAFT_TTL))
            conn.execute(
                drafts.insert().values(
                    draft_id=draft_id,
                    binding_hash=sha256(binding),
                    iss=record.iss,
                    patient_id=record.patient_id,
                    user_ref=record.user_ref,
                    path=path,
                    form_enc=self.encrypt(json.dumps(form)),
                    created_at=now,
                )
            )
        return draft_id

    def drafts_for(self, binding: str | None, record: LaunchRecord) -> list[Draft]:
        """Drafts this browser left for the same EHR, patient and user (newest first)."""
        if binding is None:
            return []
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(drafts)
                .where(
                    drafts.c.binding_hash == sha256(binding),
                    drafts.c.iss == record.iss,
                    drafts.c.patient_id == record.patient_id,
                    drafts.c.user_ref == record.user_ref,
                    drafts.c.created_at >= utcnow() - DRAFT_TTL,
                )
                .order_by(drafts.c.created_at.desc())
            ).all()
        out = []
        for row in rows:
            form = json.loads(self.decrypt(row.form_enc) or "[]")
            out.append(Draft(row.draft_id, row.path, [tuple(p) for p in form], _aware(row.created_at)))
        return out

    def take_draft(self, binding: str | None, record: LaunchRecord, draft_id: str) -> Draft | None:
        for draft in self.drafts_for(binding, record):
            if draft.draft_id == draft_id:
                return draft
        return None

    def delete_draft(self, draft_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(drafts.delete().where(drafts.c.draft_id == draft_id))
