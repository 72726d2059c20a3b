"""Checks for FHIR primitive values as they appear in JSON.

The regexes come from the R4 StructureDefinitions themselves (the ``regex`` extension on each
primitive's ``value`` element), read at build time by :mod:`.build`; this module adds what a regex
cannot say: the JSON type (``"5"`` is not an integer, ``true`` is not a string), numeric ranges,
calendar validity (``2025-02-30`` matches the date regex but is not a date) and length limits.

One checker per primitive type, returned as a small tuple so the hot path does no dispatch beyond
a tuple unpack: ``(json_kind, compiled_regex_or_None, extra_check_or_None)``.
"""

from __future__ import annotations

import re
from datetime import date as _date
from functools import partial

#: FHIR R4: a string value SHALL NOT exceed 1 MB; we count characters (a lower bound on bytes).
MAX_STRING_CHARS = 1024 * 1024

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

# JSON representation of each primitive (R4 JSON format, "Primitive types").
_JSON_KIND = {
    "boolean": "bool",
    "integer": "int",
    "unsignedInt": "int",
    "positiveInt": "int",
    "decimal": "number",
}

#: Types whose spec regex is effectively "non-empty": checking emptiness is enough and cheaper.
_NONEMPTY_ONLY = {"string", "markdown", "xhtml"}

# Fallback regexes used only if a StructureDefinition lacks one (xhtml has none in R4).
_DEFAULT_REGEX: dict[str, str] = {}


def _calendar_ok(value: str) -> bool:
    """The date part of a date/dateTime/instant names a real day (regex allows 02-31)."""
    if len(value) < 10:
        return True
    try:
        _date(int(value[0:4]), int(value[5:7]), int(value[8:10]))
    except ValueError:
        return False
    return True


def _check_range(lo: int | None, hi: int | None, value) -> str | None:
    if lo is not None and value < lo:
        return f"must be at least {lo}"
    if hi is not None and value > hi:
        return f"must be at most {hi}"
    return None


def _int_range(lo: int | None, hi: int | None):
    # functools.partial of a module-level function, so the checker pickles with the tables
    return partial(_check_range, lo, hi)


def _date_check(value: str) -> str | None:
    return None if _calendar_ok(value) else "is not a real calendar date"


_EXTRA = {
    "integer": _int_range(INT32_MIN, INT32_MAX),
    "unsignedInt": _int_range(0, INT32_MAX),
    "positiveInt": _int_range(1, INT32_MAX),
    "date": _date_check,
    "dateTime": _date_check,
    "instant": _date_check,
}


def make_checker(type_code: str, regex: str | None) -> tuple[str, re.Pattern | None, object]:
    """The checker tuple for one primitive type (built once; pickled with the rule tables)."""
    kind = _JSON_KIND.get(type_code, "str")
    pattern = None
    if kind == "str" and type_code not in _NONEMPTY_ONLY:
        rx = regex or _DEFAULT_REGEX.get(type_code)
        if rx:
            pattern = re.compile(rx)
    return (kind, pattern, _EXTRA.get(type_code))


def check_primitive(checker, value) -> tuple[str, str] | None:
    """``None`` when ``value`` is a valid JSON form of the primitive, else (issue code, reason)."""
    kind, pattern, extra = checker
    tv = type(value)
    if kind == "str":
        if tv is not str:
            return ("structure", f"must be a JSON string, not {_json_name(value)}")
        if not value:
            return ("value", "must not be an empty string (ele-1: every element has a value or children)")
        if len(value) > MAX_STRING_CHARS:
            return ("too-long", f"is {len(value)} characters; FHIR strings are limited to 1 MB")
        if pattern is not None and pattern.fullmatch(value) is None:
            return ("value", f"'{_clip(value)}' is not a valid value for this type")
        if value.strip() == "" and pattern is None:
            return ("value", "must not be only whitespace")
    elif kind == "int":
        if tv is not int:  # bool is a subclass of int: the identity check excludes it
            if tv is float and value.is_integer():
                return ("structure", f"must be a JSON integer, not the decimal {value!r}")
            return ("structure", f"must be a JSON integer, not {_json_name(value)}")
    elif kind == "bool":
        if tv is not bool:
            return ("structure", f"must be a JSON boolean (true/false), not {_json_name(value)}")
    else:  # number
        if tv is not int and tv is not float:
            return ("structure", f"must be a JSON number, not {_json_name(value)}")
        if tv is float and value != value:  # NaN cannot come from JSON but can from Python callers
            return ("value", "is not a number")
    if extra is not None:
        problem = extra(value)
        if problem:
            return ("value", f"'{_clip(str(value))}' {problem}")
    return None


def _json_name(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


json_name = _json_name
clip = _clip
