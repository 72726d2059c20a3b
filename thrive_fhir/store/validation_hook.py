"""Validation on write, through the project's validator (``thrive_fhir.validation``).

The store never stores what the validator rejects. ``mode`` is True (reject errors with 422),
"warn" (store, and return the issues in the response's OperationOutcome when asked) or False.
When the project validator cannot be imported (a trimmed install), the store falls back to the
structural checks it needs anyway and says so once in the log; it does not silently pretend.
"""

from __future__ import annotations

import logging
import re
import threading
import traceback

log = logging.getLogger("thrive_fhir.store")

#: A FHIR id. ``\Z``, not ``$``: ``$`` also matches before a final newline, and ``abc\n`` was accepted as
#: an id (it is spliced unescaped into stored JSON and into Location headers).
ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}\Z")

_lock = threading.Lock()
_validator = None
_loaded = False


def project_validator():
    """The shared ``Validator.default()`` instance, or None when the module is not available."""
    global _validator, _loaded
    if _loaded:
        return _validator
    with _lock:
        if not _loaded:
            try:
                from thrive_fhir.validation import Validator  # optional, heavy import

                _validator = Validator.default()
            except ImportError as exc:
                log.warning("thrive_fhir.validation unavailable (%s); structural checks only", type(exc).__name__)
                _validator = None
            _loaded = True
    return _validator


def validate(resource: dict) -> dict:
    """An OperationOutcome for ``resource`` (no error issues = valid)."""
    return outcome_of(issues(resource))


def issues(resource: dict) -> list[tuple]:
    """The validator's issue tuples ``(severity, code, expression, text)``: its fast path, with no
    OperationOutcome built — a transaction only needs one when an entry fails or the client asks."""
    validator = project_validator()
    if validator is None:
        return []
    from .fhirjson import plain

    try:
        return validator.issues(plain(resource))  # the validator checks decimals as JSON floats
    except Exception as exc:  # a validator bug must not be the client's 500
        # The resource was not checked, so it is not stored; the client gets a 422 that says so
        # instead of a bare 500 (and a retry loop). The log names the failure, never the content.
        from .errors import describe

        log.error(
            "validator failed on a %s: %s\n%s",
            resource.get("resourceType"),
            describe(exc),
            "".join(traceback.format_tb(exc.__traceback__)),
        )
        return [
            (
                "error",
                "exception",
                str(resource.get("resourceType") or "Resource"),
                "The validator failed on this resource (an internal error, logged); it was not stored",
            )
        ]


def has_errors(found: list[tuple]) -> bool:
    return any(i[0] in ("error", "fatal") for i in found)


def outcome_of(found: list[tuple]) -> dict:
    """The OperationOutcome for issue tuples (with none: one "validation passed" information issue)."""
    from thrive_fhir.validation.outcome import outcome  # same optional import as above

    return outcome(found)


def issue_dicts(found: list[tuple] | None) -> list[dict]:
    """OperationOutcome issues for a write's response; ``None`` (not validated) gives none."""
    return [] if found is None else outcome_of(found)["issue"]
