"""Keeping a launch's access token usable: proactive refresh before expiry, and the one refresh
allowed after the EHR refuses a token (launch rules TS-08, TS-09).

The refresh itself is serialised and single-use in ``SessionStore.refresh_tokens``; this module
decides *when* to refresh and calls the SMART client with the endpoint stored at launch. It imports
only the app state and the session store, so the launch context and the EHR client can both use it
without an import cycle.
"""

from __future__ import annotations

from datetime import timedelta

from ..sessions import LaunchRecord, utcnow
from ..state import state

#: When fewer seconds than this remain on the access token, refresh before using it (TS-09).
REFRESH_MARGIN = timedelta(seconds=60)
#: Never refresh one context more often than this (Oracle Health throttles faster refreshes).
MIN_REFRESH_INTERVAL = timedelta(seconds=60)


def refresh_launch_tokens(record: LaunchRecord, rejected_token: str | None = None) -> bool:
    """Serialised single-use refresh for one context (TS-08); False ends the session.
    ``rejected_token``: the access token the EHR just refused with 401 (TS-09)."""
    reg = state().config.ehr_for_iss(record.iss)
    if reg is None or not record.token_endpoint:
        return False
    smart = state().smart
    token_endpoint = record.token_endpoint
    return state().sessions.refresh_tokens(
        record.launch_id,
        lambda rt: smart.refresh(reg, token_endpoint=token_endpoint, refresh_token=rt),
        rejected_token=rejected_token,
    )


def ensure_fresh_token(record: LaunchRecord) -> tuple[bool, bool]:
    """Refresh proactively when < 60 s remain (at most once a minute).
    Returns ``(usable, refreshed)``: usable False means the session is over."""
    now = utcnow()
    if record.ended or record.ends_at <= now:
        return False, False
    expires = record.token_expires_at
    if expires is None:
        return True, False  # test launches and EHRs that do not say: rely on the FHIR 401 path
    if expires - now > REFRESH_MARGIN:
        return True, False
    recently = record.refreshed_at is not None and now - record.refreshed_at < MIN_REFRESH_INTERVAL
    if record.has_refresh_token and not (recently and expires > now):
        if refresh_launch_tokens(record):
            return True, True
    return expires > utcnow(), False
