"""CSRF protection, response security headers and log redaction for an app that lives in an iframe.

Why these matter here: the binding cookie must be ``SameSite=None`` to survive the cross-site
redirect back into the EHR frame, which removes the browser's own CSRF defence, so every
state-changing request carries a per-launch synchronizer token and a same-origin ``Origin``
(docs/design/smart-launch.md TS-04). Framing is allowed only from the launching EHR's registered UI origins
(TS-05); error pages that cannot tell which EHR frames them may be framed by any registered EHR UI
(``smart_app.errors`` says why that is safe). Tokens, codes and launch values never reach a log
line (TS-06), and values from requests are escaped there, so a newline in a query parameter cannot
forge a log line.
"""

from __future__ import annotations

import http.client
import logging
import re
import secrets
from urllib.parse import urlsplit

from flask import Flask, abort, g, request
from flask.logging import default_handler
from markupsafe import Markup, escape

from .context import COOKIE_NAME, load_launch_record
from .state import state

UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")

_SENSITIVE_PARAMS = (
    "code|state|launch|code_verifier|client_assertion|access_token|refresh_token|id_token|"
    "client_secret|csrf_token|assertion|token"
)
_PARAM_RE = re.compile(rf"(?i)(?<![A-Za-z0-9_])({_SENSITIVE_PARAMS})=([^&\s\"']*)")
_BEARER_RE = re.compile(r"(?i)\b(Bearer|Basic)\s+[A-Za-z0-9\-._~+/]+=*")
_COOKIE_RE = re.compile(r"(?i)((?:set-)?cookie:?\s*)[^\r\n]*")
_JWT_RE = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")


#: Characters that would end or forge a log line (C0/C1 controls and Unicode line separators).
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def redact(text: str) -> str:
    """Mask secret query values, bearer/basic credentials, cookies and anything JWT-shaped."""
    text = _PARAM_RE.sub(lambda m: f"{m.group(1)}=[redacted]", text)
    text = _BEARER_RE.sub(lambda m: f"{m.group(1)} [redacted]", text)
    text = _COOKIE_RE.sub(lambda m: f"{m.group(1)}[redacted]", text)
    return _JWT_RE.sub("[redacted-jwt]", text)


def escape_controls(text: str) -> str:
    """Write control characters (newline, carriage return, escape, Unicode line separators) as
    visible escapes, so one record is always one line whatever its values held (log injection)."""
    return _CONTROL_RE.sub(
        lambda m: {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(
            m.group(0), f"\\x{ord(m.group(0)):02x}" if ord(m.group(0)) < 0x100 else f"\\u{ord(m.group(0)):04x}"
        ),
        text,
    )


class RedactingFilter(logging.Filter):
    """Rewrites each record's message through :func:`redact` (including Werkzeug's request line)
    and :func:`escape_controls` (log injection: a value holding a newline)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True
        cleaned = escape_controls(redact(message))
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


#: Loggers whose records may carry request URLs or HTTP details.
REDACTED_LOGGERS = (
    "werkzeug",
    "waitress",
    "urllib3",
    "urllib3.connectionpool",
    "smart_app",
    "thrive_fhir",
    "thrive_fhir.client.smart_launch",
    "requests",
)
_FILTER = RedactingFilter()


def _our_loggers() -> list[logging.Logger]:
    """Every logger of the app and library that exists now (records are filtered where they are
    made: a filter on ``smart_app`` alone would miss records of ``smart_app.launch``)."""
    names = set(REDACTED_LOGGERS)
    names.update(n for n in logging.root.manager.loggerDict if n.split(".", 1)[0] in ("smart_app", "thrive_fhir"))
    return [logging.getLogger(n) for n in sorted(names)]


def install_logging(app: Flask) -> None:
    """The app's logging: each record written once, redacted and escaped.

    Written once: Flask puts its own stderr handler on ``app.logger`` — the ``smart_app`` logger,
    parent of every logger here — when no handler is configured yet, which is the case while the
    app is being built. Once the server configured the root logger (``thrive app serve``), each
    record then went to both, so every app log line was written twice. The app adds no handler of
    its own: where log lines go is the server's choice (the root logger)."""
    app.logger.removeHandler(default_handler)
    install_log_redaction(app)


def install_log_redaction(app: Flask) -> None:
    for logger in [*_our_loggers(), logging.getLogger(app.import_name)]:
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
        for handler in logger.handlers:
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)
    # Records propagated from child loggers skip parent *logger* filters but not handler filters,
    # so also guard the root handlers that exist now (test log capture adds its own; see tests).
    for handler in logging.getLogger().handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
    # http.client debug prints headers to stdout, bypassing logging: keep it off.
    http.client.HTTPConnection.debuglevel = 0


def our_origin() -> str:
    configured = state().config.public_base_url
    if configured:
        parts = urlsplit(configured)
        return f"{parts.scheme}://{parts.netloc}"
    return request.host_url.rstrip("/")


def _origin_ok() -> bool:
    origin = request.headers.get("Origin")
    if origin is None or origin == "":
        referer = request.headers.get("Referer")
        if not referer:
            return True  # no header to judge by; the synchronizer token decides
        parts = urlsplit(referer)
        origin = f"{parts.scheme}://{parts.netloc}"
    return origin == our_origin()


def csrf_field() -> Markup:
    """Hidden input with this launch's CSRF token; put ``{{ csrf_field() }}`` in every form."""
    record = load_launch_record()
    if record is None:
        return Markup("")
    return Markup('<input type="hidden" name="csrf_token" value="%s">') % escape(record.csrf_token)


def csrf_token() -> str:
    record = load_launch_record()
    return record.csrf_token if record else ""


def csrf_exempt(view):
    """Mark a view that no browser posts to (a server-to-server endpoint that checks its own
    credential, such as the notification receiver): no launch, no CSRF token, no Origin."""
    view.csrf_exempt = True
    return view


def install_csrf(app: Flask) -> None:
    @app.before_request
    def _check_csrf():
        if request.method not in UNSAFE_METHODS:
            return None
        if getattr(app.view_functions.get(request.endpoint or ""), "csrf_exempt", False):
            return None
        if not _origin_ok():
            abort(403, description="This form came from another site and was refused.")
        record = load_launch_record()
        sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
        if record is None or not sent or not secrets.compare_digest(sent, record.csrf_token):
            abort(
                403,
                description="This form has expired or did not come from this session. Go back, "
                "reload the page and try again.",
            )
        return None

    app.jinja_env.globals["csrf_field"] = csrf_field
    app.jinja_env.globals["csrf_token"] = csrf_token


def frame_ancestors() -> str:
    """The CSP ``frame-ancestors`` value for this response.

    - a clinician launch's pages (``g.frame_ancestors_iss``): that EHR's registered UI origins;
    - an agency worker's standalone launch (``g.frame_none``): ``'none'`` (SA-03);
    - an error page that cannot tell which EHR (if any) frames it — a 404, an unknown or expired
      launch, a stale sign-in link — (``g.error_page``): every registered EHR UI origin, so the
      "relaunch the app from the patient's record" page shows inside the EHR instead of the
      browser's "refused to connect". Such a page has no form or action to click-jack;
    - everything else: ``'none'``."""
    if g.get("frame_none"):
        return "'none'"
    iss = g.get("frame_ancestors_iss")
    if iss:
        reg = state().config.ehr_for_iss(iss)
        return " ".join(reg.frame_ancestors) if reg and reg.frame_ancestors else "'none'"
    if g.get("error_page"):
        origins = sorted({o for reg in state().config.ehrs.values() for o in reg.frame_ancestors})
        return " ".join(origins) if origins else "'none'"
    return "'none'"


def csp_nonce() -> str:
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


def install_headers(app: Flask) -> None:
    app.jinja_env.globals["csp_nonce"] = csp_nonce

    @app.after_request
    def _headers(response):
        nonce = g.get("csp_nonce")
        script = f"'self' 'nonce-{nonce}'" if nonce else "'self'"
        response.headers["Content-Security-Policy"] = (
            f"default-src 'self'; script-src {script}; style-src 'self'; img-src 'self' data:; "
            f"font-src 'self' https://assets.nhs.uk; connect-src 'self'; object-src 'none'; "
            f"base-uri 'none'; form-action 'self'; frame-ancestors {frame_ancestors()}"
        )
        response.headers.pop("X-Frame-Options", None)  # never: it would block the EHR (TS-05)
        response.headers["X-Content-Type-Options"] = "nosniff"
        # Launch URLs carry a context id; do not leak it (or anything else) to other sites.
        # same-origin, not no-referrer: under no-referrer browsers send "Origin: null" on form POSTs,
        # which the Origin check above (rightly) refuses, so no form could be saved in a real browser.
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        if not request.path.startswith(("/assets/", "/static/")):
            response.headers["Cache-Control"] = "no-store"
            response.headers["Pragma"] = "no-cache"
        if request.is_secure or (state().config.public_base_url or "").startswith("https://"):
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response


def set_binding_cookie(response, value: str) -> None:
    """``__Host-`` cookie: Secure, HttpOnly, SameSite=None, Partitioned, Path=/, no Domain (TS-03)."""
    response.set_cookie(
        COOKIE_NAME,
        value,
        secure=True,
        httponly=True,
        samesite="None",
        partitioned=True,
        path="/",
        max_age=int(state().config.session_max_hours * 3600),
    )
