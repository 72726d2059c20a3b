"""Raw input -> JSON value, with a precise issue for every way bytes can fail to be FHIR JSON.

Used by ``Validator.validate_bytes`` (API bodies) and the CLI (files and NDJSON lines). Checks, in
order: size limit (before decoding anything), UTF-8 (a leading BOM is tolerated), JSON syntax with
line and column, duplicate object keys and NaN/Infinity (both invalid in FHIR JSON), nesting depth,
and that the top level is an object.
"""

from __future__ import annotations

import json

MAX_DEPTH = 200


class _Bad(Exception):
    pass


def _pairs(pairs):
    obj = dict(pairs)
    if len(obj) != len(pairs):  # rare: find the culprit only then
        seen = set()
        for k, _v in pairs:
            if k in seen:
                raise _Bad(f"duplicate key '{k[:60]}' in a JSON object (not allowed in FHIR JSON)")
            seen.add(k)
    return obj


def _constant(name):
    raise _Bad(f"'{name}' is not a JSON number allowed in FHIR")


def parse_json_bytes(data: bytes, max_bytes: int, where: str | None = None):
    """``(value, None)`` on success, ``(None, issue_tuple)`` on failure."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        return None, ("fatal", "structure", where, "input: expected bytes")
    size = len(data)
    if size > max_bytes:
        return None, (
            "fatal",
            "too-long",
            where,
            f"too-long: input is {size:,} bytes; the limit is {max_bytes:,} bytes",
        )
    if size == 0:
        return None, ("fatal", "structure", where, "json: the input is empty")
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = bytes(data)[exc.start : exc.start + 1].hex()
        return None, (
            "fatal",
            "invalid",
            where,
            f"encoding: the input is not valid UTF-8 (byte 0x{bad} at offset {exc.start})",
        )
    return parse_json_text(text.lstrip("\ufeff"), where)


def parse_json_text(text: str, where: str | None = None):
    try:
        value = json.loads(text, object_pairs_hook=_pairs, parse_constant=_constant)
    except json.JSONDecodeError as exc:
        return None, (
            "fatal",
            "structure",
            where,
            f"json: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}",
        )
    except _Bad as exc:
        return None, ("fatal", "structure", where, f"json: {exc}")
    except RecursionError:
        return None, ("fatal", "structure", where, "json: the JSON is nested too deeply")
    if not isinstance(value, dict):
        return None, (
            "fatal",
            "structure",
            where,
            f"json: a FHIR resource must be a JSON object, not {type(value).__name__}",
        )
    # very deep nesting surfaces as RecursionError (above, or in the walker, which reports it)
    return value, None


def _depth(value, limit=MAX_DEPTH + 1) -> int:
    # iterative, so a hostile document cannot overflow the stack here
    stack = [(value, 1)]
    deepest = 0
    while stack:
        v, d = stack.pop()
        if d > deepest:
            deepest = d
            if deepest >= limit:
                return deepest
        if type(v) is dict:
            stack.extend((x, d + 1) for x in v.values() if type(x) in (dict, list))
        elif type(v) is list:
            stack.extend((x, d + 1) for x in v if type(x) in (dict, list))
    return deepest
