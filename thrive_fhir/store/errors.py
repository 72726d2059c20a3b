"""Errors as FHIR OperationOutcomes: every failure the store reports travels as one of these.

Diagnostics must never echo resource content (health data) — only paths, ids, parameter names and
the rule broken — because clients log them and so do proxies.
"""

from __future__ import annotations

import re

#: HTTP status -> default OperationOutcome issue code.
_CODES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    410: "deleted",
    412: "conflict",
    413: "too-costly",
    415: "not-supported",
    422: "processing",
    500: "exception",
}


def operation_outcome(issues: list[dict]) -> dict:
    return {"resourceType": "OperationOutcome", "issue": issues}


def issue(severity: str, code: str, diagnostics: str, expression: list[str] | None = None) -> dict:
    out: dict = {"severity": severity, "code": code, "diagnostics": diagnostics}
    if expression:
        out["expression"] = expression
    return out


class FhirError(Exception):
    """An error answer: HTTP status plus an OperationOutcome (built from a message or given whole)."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        *,
        outcome: dict | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or _CODES.get(status, "processing")
        self._outcome = outcome
        self.headers = headers or {}
        #: The young person a refused request was about, for the agency AuditEvent only (never in
        #: the answer: store/consent_gate sets it, store/agency_audit reads it).
        self.audit_patient: str | None = None

    def outcome(self) -> dict:
        if self._outcome is not None:
            return self._outcome
        return operation_outcome([issue("error" if self.status < 500 else "fatal", self.code, self.message)])

    def with_prefix(self, prefix: str) -> FhirError:
        """The same error, its message prefixed (e.g. with the failing Bundle entry)."""
        outcome = self._outcome
        if outcome is not None:
            outcome = {
                **outcome,
                "issue": [
                    {**i, "diagnostics": f"{prefix}: {i['diagnostics']}" if i.get("diagnostics") else prefix}
                    for i in outcome.get("issue", [])
                ],
            }
        return FhirError(self.status, f"{prefix}: {self.message}", self.code, outcome=outcome, headers=self.headers)


_QUOTED_VALUE = re.compile(r':\s*(["\']).*$')


def describe(exc: BaseException) -> str:
    """An exception for the log: its class and, for a database error, the database's own message
    (SQLSTATE and primary text) so an operator can act on it — without data.

    PostgreSQL keeps row values in DETAIL (never read here), but a few primary messages end with
    the offending input (``invalid input syntax for type integer: "..."``): that tail is cut."""
    name = type(exc).__name__
    orig = getattr(exc, "orig", None)
    if orig is None:
        return name
    diag = getattr(orig, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    text = primary or (str(orig).splitlines() or [""])[0]
    text = _QUOTED_VALUE.sub(": (value left out)", text)[:300]
    state = getattr(orig, "sqlstate", None)
    return f"{name} ({type(orig).__name__}{' ' + state if state else ''}): {text}"
