"""OperationOutcome construction and reading: the validator's only output format."""

from __future__ import annotations

SEVERITY_RANK = {"fatal": 0, "error": 1, "warning": 2, "information": 3}


def outcome(issues: list[tuple]) -> dict:
    """OperationOutcome for ``(severity, code, expression, text)`` tuples.

    With no issues the outcome still has one ``information`` issue: R4 requires at least one
    issue, and a reader can tell "checked and fine" from "not checked".
    """
    if not issues:
        return {
            "resourceType": "OperationOutcome",
            "issue": [
                {
                    "severity": "information",
                    "code": "informational",
                    "details": {"text": "validation passed: no errors or warnings"},
                }
            ],
        }
    out = []
    seen = set()
    for sev, code, expr, text in issues:
        k = (sev, code, expr, text)
        if k in seen:
            continue
        seen.add(k)
        issue = {"severity": sev, "code": code, "details": {"text": text}}
        if expr:
            issue["expression"] = [expr]
        out.append(issue)
    out.sort(key=lambda i: SEVERITY_RANK.get(i["severity"], 9))  # stable: keeps document order
    return {"resourceType": "OperationOutcome", "issue": out}


def errors(oo: dict) -> list[tuple[str, str, str | None, str]]:
    """``(severity, code, expression, text)`` for every issue of an OperationOutcome."""
    result = []
    for issue in oo.get("issue", []):
        expr = issue.get("expression") or [None]
        result.append(
            (
                issue.get("severity"),
                issue.get("code"),
                expr[0],
                (issue.get("details") or {}).get("text") or issue.get("diagnostics") or "",
            )
        )
    return result


def has_errors(oo: dict) -> bool:
    return any(i.get("severity") in ("error", "fatal") for i in oo.get("issue", []))


def rule_of(text: str) -> str:
    """The rule name an issue text starts with (``"thr-gbo-1: ..."`` -> ``"thr-gbo-1"``)."""
    head, sep, _ = text.partition(": ")
    return head if sep else ""
