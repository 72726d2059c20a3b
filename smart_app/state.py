"""The app-wide state of one Flask app, and :func:`state` to reach it from a request.

A leaf module on purpose: it imports nothing of ``smart_app`` at run time (the types below are for
type checkers only), so every other module — the launch context, the launch routes, the EHR client,
the security hooks — can import it without creating an import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from flask import current_app

if TYPE_CHECKING:
    from thrive_fhir.client.smart_launch import SmartClient
    from thrive_fhir.localstore import LocalStore

    from .config import AppConfig
    from .sessions import SessionStore
    from .shared_changes import SharedChanges
    from .writeback import WriteBacks

#: Key of the state in ``app.extensions``.
EXTENSION = "thrive"


@dataclass
class AppState:
    """Per-app singletons, reachable as ``app.extensions["thrive"]`` or :func:`state`."""

    config: AppConfig
    sessions: SessionStore
    local_store: LocalStore
    smart: SmartClient
    writebacks: WriteBacks
    #: Changes announced by the shared store, the Subscription's state and agency visits.
    changes: SharedChanges
    #: Navigation entries ``(order, endpoint, label)`` (``smart_app.context.register_nav``).
    nav: list[tuple[int, str, str]] = field(default_factory=list)


def state() -> AppState:
    """The state of the app handling the current request (or app context)."""
    return current_app.extensions[EXTENSION]
