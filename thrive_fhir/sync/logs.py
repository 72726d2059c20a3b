"""Structured logs (JSON lines) for the sync worker, with an allow-list of fields.

Only fields named in ``ALLOWED_FIELDS`` are written: ids of outbox rows, counts, HTTP statuses, error
classes and timings. Resource content, OperationOutcome text (stores echo values in diagnostics),
patient ids and tokens never leave the database, whatever a caller passes as ``extra``.
"""

from __future__ import annotations

import json
import logging
import sys
import time

ALLOWED_FIELDS = frozenset(
    {
        "worker",
        "rows",
        "entries",
        "row_uid",
        "row_uids",
        "http_status",
        "error_class",
        "error",
        "retry_in",
        "ms",
        "sent",
        "dead",
        "conflicts",
        "pending",
        "attempts",
        "lag_seconds",
        "skew_seconds",
        "problems",
        "missing",
        "port",
        "reason",
    }
)


class JsonLinesFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": str(record.msg),
        }
        for key, value in record.__dict__.items():
            if key in ALLOWED_FIELDS:
                out[key] = value
        if record.exc_info:
            # Exception type only: messages can carry payload fragments.
            out["exception"] = record.exc_info[0].__name__ if record.exc_info[0] else "unknown"
        return json.dumps(out, default=str)


def configure(log_file: str = "", level: str = "INFO") -> logging.Handler:
    """Send the thrive_fhir loggers to one JSON-lines handler (a file, or stderr)."""
    handler: logging.Handler = logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLinesFormatter())
    root = logging.getLogger("thrive_fhir")
    for old in list(root.handlers):
        if isinstance(old.formatter, JsonLinesFormatter):
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    root.propagate = False
    # urllib3 logs full URLs at DEBUG; keep it quiet.
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    return handler
