"""SQL for FHIRPath ``lowBoundary()`` / ``highBoundary()`` (the SQL on FHIR v2 required subset).

A FHIR decimal or date/time value stands for a range: ``1.0`` is anything from 0.95 up to 1.05,
``2010-10`` any instant in October 2010. These functions give the ends of that range. They are
translated to plain string and integer SQL that DuckDB and Spark evaluate alike (no engine date
type, whose range, time zone handling and rounding differ between the two):

- decimal/integer: the value minus (or plus) half a unit of its last written digit, computed on
  the digits as a whole number so both engines make the same one division;
- date, dateTime, time: the missing parts filled with their least (greatest) value, to the
  requested precision; a dateTime without a time zone takes the earliest (``+14:00``) or latest
  (``-12:00``) zone, as the SQL on FHIR tests expect.

The precision argument counts digits as FHIRPath does: 4/6/8 for a date (year, month, day),
10/12/14/17 more for a dateTime (hour, minute, second, millisecond), 2/4/6/9 for a time, and the
decimal places for a decimal. Defaults: 8 for a decimal and a date, 17 for a dateTime, 9 for a time.
"""

from __future__ import annotations

#: The FHIR types whose boundaries are computed, by the kind of value they hold.
DECIMAL_TYPES = frozenset({"decimal", "integer", "integer64", "positiveInt", "unsignedInt"})
DATE_TYPES = frozenset({"date"})
DATETIME_TYPES = frozenset({"dateTime", "instant"})
TIME_TYPES = frozenset({"time"})

PRECISIONS = {
    "decimal": (8, tuple(range(0, 17))),
    "date": (8, (4, 6, 8)),
    "dateTime": (17, (4, 6, 8, 10, 12, 14, 17)),
    "time": (9, (2, 4, 6, 9)),
}

#: Whole numbers of up to 17 digits: their digits times ten still fit a BIGINT.
_DECIMAL = "-?[0-9]{1,17}(?:[.][0-9]+)?"
# Only the parts are captured (DuckDB reads groups 1 to 9 only): year 1, month 2, day 3, hour 4,
# minute 5, second 6, fraction 7, zone 8; a time has hour 1 to fraction 4.
_DATETIME = (
    "([0-9]{4})(?:-([0-9]{2}))?(?:-([0-9]{2}))?"
    "(?:T([0-9]{2})(?::([0-9]{2}))?(?::([0-9]{2}))?(?:[.]([0-9]+))?)?(Z|[+-][0-9]{2}:[0-9]{2})?"
)
_DATE = "([0-9]{4})(?:-([0-9]{2}))?(?:-([0-9]{2}))?"
_TIME = "([0-9]{2})(?::([0-9]{2}))?(?::([0-9]{2}))?(?:[.]([0-9]+))?"


def kind_of(ftype: str | None) -> str | None:
    """``decimal`` / ``date`` / ``dateTime`` / ``time`` for a FHIR type with boundaries, else None."""
    if ftype in DECIMAL_TYPES:
        return "decimal"
    if ftype in DATE_TYPES:
        return "date"
    if ftype in DATETIME_TYPES:
        return "dateTime"
    if ftype in TIME_TYPES:
        return "time"
    return None


def boundary_sql(d, text: str, kind: str, high: bool, precision: int) -> str:
    """SQL for the boundary of the value whose text is ``text`` (NULL when it is not well formed).

    A decimal gives a DOUBLE, the others their text form."""
    if kind == "decimal":
        return _decimal(d, text, high, precision)
    if kind == "time":
        return _time(d, text, high, precision)
    return _datetime(d, text, high, precision, with_time=kind == "dateTime")


def _decimal(d, t: str, high: bool, p: int) -> str:
    # The digits of "-1.587" are the whole number -1587 at scale 3; half a unit of the last digit
    # is 5 at scale 4, so the boundaries are (-15870 -/+ 5) / 10^4.
    scale = f"(CASE WHEN instr({t}, '.') > 0 THEN length({t}) - instr({t}, '.') ELSE 0 END)"
    digits = f"CAST(replace({t}, '.', '') AS BIGINT)"
    scaled = f"(CAST({digits} * 10 {'+' if high else '-'} 5 AS DOUBLE))"  # at scale + 1
    exact = f"({scaled} / power(10, {scale} + 1))"
    # Fewer places than the boundary has: round outwards, so the range is never narrowed.
    rounding = "ceil" if high else "floor"
    cut = f"(CAST({rounding}({scaled} / power(10, {scale} + 1 - {p})) AS DOUBLE) / power(10, {p}))"
    value = f"(CASE WHEN {scale} + 1 <= {p} THEN {exact} ELSE {cut} END)"
    return f"(CASE WHEN {d.regex_match(t, _DECIMAL)} THEN {value} END)"


def _pick(d, t: str, pattern: str, group: int, default: str) -> str:
    """One part of the value, or ``default`` where it was not written."""
    part = d.regex_group(t, "^" + pattern + "$", group)
    return f"coalesce(NULLIF({part}, ''), {default})"


def _last_day(year: str, month: str) -> str:
    y = f"CAST({year} AS INT)"
    leap = f"({y} % 4 = 0 AND ({y} % 100 <> 0 OR {y} % 400 = 0))"
    return (
        f"(CASE {month} WHEN '02' THEN (CASE WHEN {leap} THEN '29' ELSE '28' END) "
        f"WHEN '04' THEN '30' WHEN '06' THEN '30' WHEN '09' THEN '30' WHEN '11' THEN '30' ELSE '31' END)"
    )


def _clock(d, t: str, pattern: str, first: int, high: bool, p: int) -> list[str]:
    """The ``hh:mm:ss.fff`` pieces to precision ``p`` (2/4/6/9), from groups ``first`` to +3."""
    hour = _pick(d, t, pattern, first, "'23'" if high else "'00'")
    minute = _pick(d, t, pattern, first + 1, "'59'" if high else "'00'")
    second = _pick(d, t, pattern, first + 2, "'59'" if high else "'00'")
    frac = d.regex_group(t, "^" + pattern + "$", first + 3)
    # Milliseconds: digits beyond the third are more precise than the result and are dropped;
    # missing ones are 0 at the low end and 9 at the high end (".5" spans .500 to .599).
    millis = f"rpad(substr(coalesce({frac}, ''), 1, 3), 3, {'9' if high else '0'!r})"
    parts = [hour]
    if p >= 4:
        parts += ["':'", minute]
    if p >= 6:
        parts += ["':'", second]
    if p >= 9:
        parts += ["'.'", millis]
    return parts


def _datetime(d, t: str, high: bool, p: int, with_time: bool) -> str:
    year = d.regex_group(t, "^" + _DATETIME + "$", 1)
    month = _pick(d, t, _DATETIME, 2, "'12'" if high else "'01'")
    day = _pick(d, t, _DATETIME, 3, _last_day(year, month) if high else "'01'")
    parts = [year]
    if p >= 6:
        parts += ["'-'", month]
    if p >= 8:
        parts += ["'-'", day]
    if with_time and p >= 10:
        # dateTime precision 10/12/14/17 is time precision 2/4/6/9.
        parts += ["'T'", *_clock(d, t, _DATETIME, 4, high, p - 8)]
        parts.append(_pick(d, t, _DATETIME, 8, "'-12:00'" if high else "'+14:00'"))
    pattern = _DATETIME if with_time else _DATE
    return f"(CASE WHEN {d.regex_match(t, pattern)} THEN {' || '.join(parts)} END)"


def _time(d, t: str, high: bool, p: int) -> str:
    parts = _clock(d, t, _TIME, 1, high, p)
    return f"(CASE WHEN {d.regex_match(t, _TIME)} THEN {' || '.join(parts)} END)"
