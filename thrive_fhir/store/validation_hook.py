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

log = logging.getLogger("thrive_fhir.store")

ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")

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
                from thrive_fhir.validation import Validator  # noqa: PLC0415 - optional, heavy import

                _validator = Validator.default()
            except ImportError as exc:
                log.warning("thrive_fhir.validation unavailable (%s); structural checks only", type(exc).__name__)
                _validator = None
            _loaded = True
    return _validator


def error_issues(outcome: dict) -> list[dict]:
    return [i for i in outcome.get("issue", []) if i.get("severity") in ("error", "fatal")]


def validate(resource: dict) -> dict:
    """An OperationOutcome for ``resource`` (no error issues = valid)."""
    validator = project_validator()
    if validator is not None:
        return validator.validate(resource)
    return {"resourceType": "OperationOutcome", "issue": []}
