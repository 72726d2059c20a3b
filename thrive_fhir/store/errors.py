"""Errors as FHIR OperationOutcomes: every failure the store reports travels as one of these.

Diagnostics must never echo resource content (health data) — only paths, ids, parameter names and
the rule broken — because clients log them and so do proxies.
"""

from __future__ import annotations

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
    out = {"severity": severity, "code": code, "diagnostics": diagnostics}
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

    def outcome(self) -> dict:
        if self._outcome is not None:
            return self._outcome
        return operation_outcome([issue("error" if self.status < 500 else "fatal", self.code, self.message)])

    def with_prefix(self, prefix: str) -> "FhirError":
        """The same error, its message prefixed (e.g. with the failing Bundle entry)."""
        outcome = self._outcome
        if outcome is not None:
            outcome = {**outcome, "issue": [
                {**i, "diagnostics": f"{prefix}: {i['diagnostics']}" if i.get("diagnostics") else prefix}
                for i in outcome.get("issue", [])
            ]}
        return FhirError(self.status, f"{prefix}: {self.message}", self.code, outcome=outcome, headers=self.headers)
