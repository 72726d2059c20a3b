"""The app's error pages: one template, plain words, never a traceback, a token or an exception name.

Framing: an error page may be answered before the app knows which EHR (if any) frames it — a 404,
an unknown or expired launch, a sign-in link that is no longer valid. Inside the EHR's iframe a
``frame-ancestors 'none'`` answer shows the browser's "refused to connect" instead of our
"relaunch the app from the patient's record", so error pages are marked here (``g.error_page``)
and ``smart_app.security.frame_ancestors`` lets the registered EHR UI origins frame them. They hold
no form and no state-changing control, so being framed by a registered EHR gives a clickjacker
nothing to click; pages of a known launch keep that launch's own policy.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from flask import Flask, g, render_template, request
from werkzeug.exceptions import HTTPException

log = logging.getLogger("smart_app.errors")

TITLES = {
    400: "There is a problem with this request",
    403: "You cannot do that here",
    404: "Page not found",
    405: "That action is not available here",
    413: "What you sent is too large",
}

#: What to do after a 404: the address may be an old launch link, so say how to get back in.
NOT_FOUND_MESSAGE = (
    "Check the address. If you came from a patient's record, relaunch the app from there; agency staff "
    "sign in again from the agency sign-in page."
)


def error_page(status: int, title: str, message: str, **extra: Any):
    """A friendly HTML error page (never a traceback, never a token, never an exception name)."""
    g.error_page = True
    return (
        render_template("errors/message.html", status=status, title=title, message=message, **extra),
        status,
    )


def unknown_staff_page():
    """403 for an agency sign-in that names no member of staff (see ``LaunchContext.staff_ref``)."""
    return error_page(
        403,
        "We could not tell who you are",
        "Every look at a shared plan is recorded against the person who looked, and your sign-in did not "
        "say which member of staff you are. Sign in again and allow the app to know who you are, or ask "
        "your system administrator to link your account to your staff record.",
    )


def install(app: Flask) -> None:
    """Answer every HTTP error and every unexpected exception with :func:`error_page`."""

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        status = exc.code or 500
        message = (
            (exc.description or "")
            if status in (400, 403, 413)
            else {
                404: NOT_FOUND_MESSAGE,
                405: "Go back and try again.",
            }.get(status, "Something went wrong. Try again.")
        )
        return error_page(status, TITLES.get(status, "Something went wrong"), message)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        ref = uuid.uuid4().hex[:8]
        # The exception's class goes to the log (for support, with the ref), never onto the page.
        log.error(
            "unhandled error ref=%s on %s %s: %s", ref, request.method, request.path, type(exc).__name__, exc_info=exc
        )
        return error_page(
            500,
            "Sorry, there is a problem with the service",
            "Nothing has been lost that was already saved. Try again. If this keeps happening, "
            f"contact support and quote reference {ref}.",
        )
