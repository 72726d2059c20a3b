"""FHIR date/dateTime/instant values as [low, high] ranges of naive UTC datetimes.

FHIR date search compares ranges, not points: ``2024-05`` means the whole of May, and a search for
``date=ge2024-05-10`` must match an Observation effective ``2024-05`` (the ranges overlap). So both
indexed values and search values become (low, high) pairs at their own precision.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, timedelta

MIN = datetime(1, 1, 1)
MAX = datetime(9999, 12, 31, 23, 59, 59, 999999)

_DATE_RE = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d+))?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)

_US = timedelta(microseconds=1)


def _shift(dt: datetime, delta: timedelta) -> datetime:
    """``dt + delta`` held inside [MIN, MAX]: the edges of the range are valid FHIR values
    (``9999-12-31``, ``0001-01-01T00:00:00+14:00``) whose bounds or UTC shift fall outside what a
    datetime can hold. The range is open-ended there, so the edge itself is the right bound."""
    try:
        return dt + delta
    except OverflowError:
        return MAX if delta > timedelta(0) else MIN


def date_range(text: str) -> tuple[datetime, datetime] | None:
    """(low, high) inclusive bounds in naive UTC, or None when ``text`` is not a FHIR date/dateTime."""
    if not isinstance(text, str):
        return None
    m = _DATE_RE.match(text.strip())
    if not m:
        return None
    g = m.groupdict()
    try:
        year = int(g["y"])
        if g["m"] is None:
            return datetime(year, 1, 1), datetime(year, 12, 31, 23, 59, 59, 999999)
        month = int(g["m"])
        if g["d"] is None:
            low = datetime(year, month, 1)
            if month == 12:
                return low, datetime(year, 12, 31, 23, 59, 59, 999999)
            return low, datetime(year, month + 1, 1) - _US
        day = int(g["d"])
        if g["H"] is None:
            low = datetime(year, month, day)
            return low, low.replace(hour=23, minute=59, second=59, microsecond=999999)
        frac = (g["f"] or "")[:6]
        local = datetime(year, month, day, int(g["H"]), int(g["M"]), int(g["S"] or 0), int(frac.ljust(6, "0") or 0))
    except ValueError:
        return None
    tz = g["tz"]
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        offset = timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6]))
        local = _shift(local, -sign * offset)
    # A dateTime's implicit range is its precision: minutes -> the whole minute, seconds -> the second.
    if g["S"] is None:
        span = timedelta(minutes=1)
    elif g["f"]:
        span = timedelta(microseconds=10 ** (6 - len(frac))) if len(frac) < 6 else _US
    else:
        span = timedelta(seconds=1)
    return local, _shift(local, span - _US)


def utcnow() -> datetime:
    """Now, naive UTC, at microsecond precision (what the database columns hold)."""
    return datetime.now(UTC).replace(tzinfo=None)


@functools.lru_cache(maxsize=256)  # every entry of a transaction carries the same instant
def to_instant(dt: datetime) -> str:
    """A naive-UTC datetime as a FHIR instant string."""
    # Full microseconds, so ``_lastUpdated=gt<meta.lastUpdated>`` never matches the same version.
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def http_date(dt: datetime) -> str:
    return dt.replace(tzinfo=UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
