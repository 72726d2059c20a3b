"""JSON into and out of the store: numbers kept as sent, strings held to FHIR's rules, bounded depth.

Why not plain ``json.loads``/``json.dumps``:

- **Numbers.** ``json.loads`` turns ``1.50`` into the float 1.5 and ``1e309`` into ``inf``, which
  ``json.dumps`` then writes as the bare token ``Infinity`` (not JSON): every answer holding that
  resource became unreadable, and ``1.0e-400`` became ``0.0``. R4 decimals keep their precision
  (datatypes.html#decimal), so a decimal is parsed to a :class:`JsonDecimal` that remembers its
  literal, and :func:`dumps` writes that literal back unchanged. A number beyond what a double
  can hold (``1e309``, a 400-digit integer) is refused: most clients parse JSON numbers as doubles,
  so JSON cannot carry it to them.
- **Strings.** R4 strings are Unicode text without control characters (datatypes.html#string: no
  code points below 32 but tab, CR and LF). ``\\u0000`` cannot be stored by PostgreSQL at all, and a
  lone surrogate (``\\ud800``) is not a character and cannot be encoded as UTF-8: both were 500s.
  They are refused with a 400 naming the rule, on both databases alike.
- **Depth.** Deeply nested JSON failed in the parser's recursion and was reported as "not valid
  JSON"; it is now refused above :data:`limits.MAX_JSON_DEPTH` levels with a message saying so.

The validator expects plain floats for decimals (it checks JSON types exactly): :func:`plain` gives
it a view with floats, copying only the objects that hold a decimal.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from decimal import Decimal

from .errors import FhirError
from .limits import MAX_JSON_DEPTH


class JsonDecimal(Decimal):
    """A JSON decimal: its value, and its text exactly as the client wrote it."""

    __slots__ = ("literal",)
    literal: str

    def __new__(cls, literal: str):
        self = super().__new__(cls, literal)
        self.literal = literal
        return self

    def __str__(self) -> str:
        return self.literal


class _Refused(Exception):
    """Raised inside the parser's hooks; turned into a 400 by :func:`loads`."""


_TOO_LARGE = "A number in the body is too large for JSON to carry (beyond a double's range, about 1.8e308)"
_MAX_FLOAT_DIGITS = len(str(int(1.7976931348623157e308)))  # 309
#: An integer this long may be past a double's range (a hook on every integer would slow every parse).
_LONG_DIGITS = re.compile(rf"\d{{{_MAX_FLOAT_DIGITS}}}")


def _decimal(text: str) -> JsonDecimal:
    value = JsonDecimal(text)
    if math.isinf(float(value)):
        raise _Refused(_TOO_LARGE)  # the number itself is not echoed: diagnostics carry no content
    return value


def _constant(name: str):
    raise _Refused(f"{name} is not a JSON number; FHIR JSON cannot carry it")


#: The escapes that can bring a character FHIR strings forbid: C0 controls and surrogates (a raw
#: control character is already invalid JSON, and raw surrogates are invalid UTF-8).
_SUSPECT_ESCAPE = re.compile(r"\\u(?:00[01][0-9a-fA-F]|[dD][89a-fA-F])")
_FORBIDDEN_CHAR = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


def string_problem(text: str) -> str | None:
    """Why ``text`` is not a FHIR string (None when it is)."""
    if _FORBIDDEN_CHAR.search(text):
        return "contains a control character (FHIR strings allow none below U+0020 but tab, CR and LF)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate (\\ud800-\\udfff without its pair), which is not a Unicode character"
    return None


def loads(text: str):
    """Parse a request body. Raises FhirError 400 for invalid JSON, numbers JSON cannot carry,
    strings FHIR forbids and nesting deeper than MAX_JSON_DEPTH."""
    try:
        value = json.loads(text, parse_float=_decimal, parse_constant=_constant)
    except _Refused as exc:
        raise FhirError(400, str(exc), "value") from None
    except RecursionError:
        raise FhirError(400, _too_deep(), "too-costly") from None
    except ValueError as exc:
        if not isinstance(exc, json.JSONDecodeError) and "digits" in str(exc):  # int() past 4,300 digits
            raise FhirError(400, _TOO_LARGE, "value") from None
        where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise FhirError(400, f"The request body is not valid JSON{where}", "structure") from None
    if (
        type(value) in (dict, list)
        and text.count("{") + text.count("[") > MAX_JSON_DEPTH
        and _depth_exceeds(value, MAX_JSON_DEPTH)
    ):
        raise FhirError(400, _too_deep(), "too-costly")
    if _SUSPECT_ESCAPE.search(text) or _LONG_DIGITS.search(text):
        _check_values(value)
    return value


def _too_deep() -> str:
    return (
        f"The JSON is nested more than {MAX_JSON_DEPTH} levels deep (objects and arrays); this server "
        "accepts at most that"
    )


def _depth_exceeds(value, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if type(node) is dict else node
        for child in children:
            if type(child) is dict or type(child) is list:
                if depth >= limit:
                    return True
                stack.append((child, depth + 1))
    return False


def _check_values(value) -> None:
    """Strings (and property names) by FHIR's rules, integers within a double's range."""
    stack = [(value, "")]
    while stack:
        node, path = stack.pop()
        kind = type(node)
        if kind is dict:
            for key, child in node.items():
                problem = string_problem(key)
                if problem:
                    raise FhirError(400, f"A property name in '{path or '$'}' {problem}", "value")
                stack.append((child, f"{path}.{key}" if path else key))
        elif kind is list:
            stack.extend((child, f"{path}[{i}]") for i, child in enumerate(node))
        elif kind is str:
            problem = string_problem(node)
            if problem:
                raise FhirError(400, f"The string at '{path or '$'}' {problem}", "value")
        elif kind is int and _beyond_double(node):
            raise FhirError(
                400,
                f"The number at '{path or '$'}' is too large for JSON to carry (beyond a "
                "double's range, about 1.8e308)",
                "value",
            )


def _beyond_double(number: int) -> bool:
    try:
        float(number)
    except OverflowError:
        return True
    return False


def dumps(value) -> str:
    """Compact JSON text, with every :class:`JsonDecimal` written as its literal.

    The C encoder does the work; decimals (which it cannot write as numbers) go out as unique
    placeholder strings that are then replaced by their literals. Without decimals (most resources)
    that is a plain ``json.dumps``."""
    literals: list[str] = []
    nonce: list[str] = []

    def number(obj):
        if isinstance(obj, Decimal) and obj.is_finite():
            if not nonce:
                nonce.append(uuid.uuid4().hex)
            literals.append(str(obj))
            return f"\x00{nonce[0]}:{len(literals) - 1}\x00"
        raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")

    # allow_nan=False: a float inf/nan from a Python caller raises instead of becoming "Infinity".
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=number)
    if not literals:
        return text
    marker = re.compile(r'"\\u0000' + nonce[0] + r':(\d+)\\u0000"')
    return marker.sub(lambda m: literals[int(m.group(1))], text)


def plain(value):
    """``value`` with decimals as floats (what the validator checks), copying only what changes."""
    if isinstance(value, Decimal):
        return float(value)
    if type(value) is dict:
        out = None
        for key, child in value.items():
            if type(child) in (dict, list) or isinstance(child, Decimal):
                new = plain(child)
                if new is not child:
                    if out is None:
                        out = dict(value)
                    out[key] = new
        return value if out is None else out
    if type(value) is list:
        out = None
        for i, child in enumerate(value):
            if type(child) in (dict, list) or isinstance(child, Decimal):
                new = plain(child)
                if new is not child:
                    if out is None:
                        out = list(value)
                    out[i] = new
        return value if out is None else out
    return value
