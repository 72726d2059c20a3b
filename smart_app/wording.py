"""The words and formats every page shares: dates, times and the status of a referral.

One home, so the same fact never reads two ways on two pages ("6:21am" on one and "06:21" on
another; "Sent, waiting for the service" on one and "Requested" on another). Dates and times follow
the NHS style guide: "4 March 2025", "4 March 2025 at 3:30pm", "midday" and "midnight" in words.
"""

from __future__ import annotations

from datetime import date, datetime


def date_text(value: date | datetime | None) -> str:
    if not isinstance(value, (date, datetime)):
        return "unknown date"
    return f"{value.day} {value.strftime('%B %Y')}"


def time_text(value: datetime) -> str:
    if value.hour == 12 and value.minute == 0:
        return "midday"
    if value.hour == 0 and value.minute == 0:
        return "midnight"
    return value.strftime("%-I:%M%p").lower().replace(":00", "")


def datetime_text(value: date | datetime | None) -> str:
    """'4 March 2025 at 3:30pm'; a date alone is just the date."""
    if isinstance(value, datetime):
        return f"{date_text(value)} at {time_text(value)}"
    return date_text(value)


#: A referral's Task.status (what the receiving organisation last said) in plain words.
TASK_STATUS = {
    "draft": "Not sent yet",
    "requested": "Sent, waiting for the service",
    "received": "Received by the service",
    "accepted": "Accepted by the service",
    "rejected": "Not accepted by the service",
    "ready": "Ready",
    "cancelled": "Cancelled",
    "in-progress": "The service is working with the young person",
    "on-hold": "On hold",
    "failed": "Could not go ahead",
    "completed": "Completed",
    "entered-in-error": "Recorded in error",
}

#: A signposting (the family decides whether to go) has no Task: this is its status.
SIGNPOSTED = "Shared with the family"


def request_status(kind: str, task: dict | None, request_status: str | None = None) -> str:
    """The status of a signposting or referral in the words every page uses."""
    if kind != "referral":
        return "Withdrawn" if request_status in ("revoked", "entered-in-error") else SIGNPOSTED
    if task and task.get("status") in TASK_STATUS:
        return TASK_STATUS[task["status"]]
    if request_status == "revoked":
        return TASK_STATUS["cancelled"]
    return TASK_STATUS["requested"]
