"""FHIR search: query-string parameters -> one SQL statement over the current versions.

Each search parameter becomes ``res_id IN (SELECT res_id FROM search_index WHERE ...)``; repeated
parameters AND, comma-separated values OR (FHIR search semantics). Paging is keyset-based on the sort
key (``_cursor`` in the ``next`` link), so a page boundary never shifts when resources are added
while a client pages through results.

The SQL is built as text with ``?`` placeholders and every value a parameter (never spliced in), and
run by :mod:`.rawsql`: building and compiling SQLAlchemy expressions for each search cost ~30x the
database work. ``Cond`` is one SQL fragment with its parameters.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple
from urllib.parse import urlencode

from .errors import FhirError
from .fhirdates import date_range
from .fhirjson import string_problem
from .limits import MAX_SEARCH_TERMS
from .rawsql import placeholders
from .search_params import INCLUDES, SearchParam, params_for, reference_key

DEFAULT_COUNT = 50
MAX_COUNT = 1000
SORTS = ("_id", "-_id", "_lastUpdated", "-_lastUpdated")
DATE_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb")
#: Parameters every type accepts beyond its own table.
COMMON_PARAMS = ("_id", "_lastUpdated")
RESULT_PARAMS = ("_count", "_sort", "_include", "_revinclude", "_summary", "_total", "_cursor", "_elements")
IGNORED_SILENTLY = ("_format", "_pretty")

#: Only current, not deleted versions are searched. ``is_current`` is tested bare so SQLite can use
#: the partial index ``ix_current`` (its WHERE clause must appear literally).
CURRENT = "resource_versions.is_current AND NOT resource_versions.deleted"


class Cond(NamedTuple):
    sql: str
    params: tuple


def _or(conds: list[Cond]) -> Cond:
    return _balanced("OR", conds)


def _balanced(op: str, conds: list[Cond]) -> Cond:
    """``c1 op c2 op ...`` as a balanced tree of parenthesised pairs.

    SQLite parses a flat ``a OR b OR c ...`` into a tree as deep as the list is long and refuses
    trees deeper than 1,000 ("Expression tree is too large"): ~490 comma alternatives or ~1,000
    repeated parameters were a 500. Nested halves keep the depth at log2(n) on any database, so the
    only bound left is the number of values (limits.MAX_SEARCH_TERMS)."""
    if len(conds) == 1:
        return conds[0]
    if len(conds) <= 8:
        return Cond("(" + f" {op} ".join(c.sql for c in conds) + ")", tuple(p for c in conds for p in c.params))
    mid = len(conds) // 2
    left, right = _balanced(op, conds[:mid]), _balanced(op, conds[mid:])
    return Cond(f"({left.sql} {op} {right.sql})", left.params + right.params)


@dataclass
class SearchQuery:
    rtype: str
    conditions: list[Cond] = field(default_factory=list)
    count: int = DEFAULT_COUNT
    sort: str = "_id"
    cursor: tuple | None = None
    includes: list[tuple[str, str, str | None]] = field(default_factory=list)
    revincludes: list[tuple[str, str]] = field(default_factory=list)
    summary_count: bool = False
    total_accurate: bool = False
    used: list[tuple[str, str]] = field(default_factory=list)  # params honoured, for the self link
    ignored: list[str] = field(default_factory=list)  # what was ignored and why (lenient handling)


#: Parameters that narrow a search in ways this server cannot evaluate. Ignoring them (what lenient
#: handling does with an unknown parameter) would answer with resources the client excluded, so
#: they are refused in every mode. Chained parameters (``subject.name``) are refused for the same reason.
UNSUPPORTED_FILTERS = ("_has", "_filter", "_query", "_text", "_content", "_list")
SUMMARY_VALUES = ("true", "text", "data", "count", "false")


def parse(rtype: str, params: list[tuple[str, str]], *, strict: bool, base: str | None) -> SearchQuery:
    """Build a SearchQuery.

    Invalid values are 400. What the server does not support follows R4 search.html#errors:
    under ``Prefer: handling=strict`` it is a 400; otherwise it is ignored only where ignoring is
    safe — the answer still holds exactly the matches, perhaps unsorted, without includes or with
    more elements than asked (unknown parameter names, ``_sort`` on other keys, unsupported
    ``_include``/``_revinclude``, ``_elements``, ``_summary`` other than count/false) — and each is
    listed in ``q.ignored``, which the search Bundle reports in an OperationOutcome entry
    (search mode ``outcome``). Filters it cannot apply (UNSUPPORTED_FILTERS, chains, unknown
    modifiers) are refused in both modes: ignoring them would return what the client excluded."""
    q = SearchQuery(rtype)
    known = params_for(rtype)
    terms = sum(1 + value.count(",") for _name, value in params)
    if terms > MAX_SEARCH_TERMS:
        raise FhirError(
            400,
            f"The search has {terms} values; this server takes at most {MAX_SEARCH_TERMS} "
            "(parameters and comma-separated alternatives together)",
            "too-costly",
        )
    for raw_name, value in params:
        problem = string_problem(raw_name) or string_problem(value)
        if problem:  # e.g. %00, which PostgreSQL cannot even compare: no value with it can match
            raise FhirError(400, f"Search parameter '{_clip(raw_name)}': the value {problem}", "value")
        name, _, modifier = raw_name.partition(":")
        if name in IGNORED_SILENTLY:
            continue
        if name in RESULT_PARAMS:
            if _result_param(q, name, modifier, value, strict):
                q.used.append((raw_name, value))
            continue
        if name in UNSUPPORTED_FILTERS or "." in name:
            raise FhirError(
                400,
                f"'{_clip(raw_name)}' is not supported by this server; it narrows the search, so it is "
                "not ignored (that would return resources it excludes)",
                "not-supported",
            )
        if name in ("_id", "_lastUpdated") and modifier:
            raise FhirError(400, f"Modifier ':{_clip(modifier)}' is not supported on '{name}'", "not-supported")
        if name == "_id" and not modifier:
            ids = _split(value)
            q.conditions.append(Cond(f"resource_versions.res_id IN ({placeholders(len(ids))})", tuple(ids)))
        elif name == "_lastUpdated" and not modifier:
            q.conditions.append(_or([_point_date("resource_versions.last_updated", v, name) for v in _split(value)]))
        elif name in known:
            q.conditions.append(_param_condition(rtype, known[name], modifier, value, base))
        else:
            _unsupported(q, strict, f"Unknown or unsupported search parameter '{_clip(raw_name)}' for {rtype}")
            continue
        q.used.append((raw_name, value))
    return q


def _unsupported(q: SearchQuery, strict: bool, message: str) -> None:
    """A parameter it is safe to ignore: 400 under strict handling, else noted in ``q.ignored``."""
    if strict:
        raise FhirError(400, message, "not-supported")
    q.ignored.append(message)


def _result_param(q: SearchQuery, name: str, modifier: str, value: str, strict: bool) -> bool:
    if name == "_count":
        q.count = parse_count(value)
        return True
    if name == "_sort":
        if value not in SORTS:
            _unsupported(
                q,
                strict,
                f"_sort={_clip(value)} is not supported (only {', '.join(SORTS)}); "
                "results are in the default order (_id)",
            )
            return False
        q.sort = value
        return True
    if name == "_cursor":
        q.cursor = _decode_cursor(value)
        return False
    if name == "_summary":
        if value not in SUMMARY_VALUES:
            raise FhirError(400, f"_summary must be one of {', '.join(SUMMARY_VALUES)}", "invalid")
        if value == "count":
            q.summary_count = True
            return True
        if value == "false":
            return True
        _unsupported(
            q, strict, f"_summary={value} is not supported (only count and false); whole resources are returned"
        )
        return False
    if name == "_elements":
        _unsupported(q, strict, "_elements is not supported; whole resources are returned")
        return False
    if name == "_total":
        if value not in ("none", "estimate", "accurate"):
            raise FhirError(400, "_total must be none, estimate or accurate", "invalid")
        if value == "accurate":
            q.total_accurate = True
        return True
    if name == "_include":
        parts = value.split(":")
        if modifier or len(parts) not in (2, 3) or f"{parts[0]}:{parts[1]}" not in INCLUDES or parts[0] != q.rtype:
            _unsupported(q, strict, f"_include={_clip(value)} is not supported; those resources are not included")
            return False
        q.includes.append((parts[0], parts[1], parts[2] if len(parts) == 3 else None))
        return True
    if name == "_revinclude":
        parts = value.split(":")
        if modifier or len(parts) not in (2, 3) or f"{parts[0]}:{parts[1]}" not in INCLUDES:
            _unsupported(q, strict, f"_revinclude={_clip(value)} is not supported; those resources are not included")
            return False
        q.revincludes.append((parts[0], parts[1]))
        return True
    return False


def _clip(text: str) -> str:
    return "".join(ch if ch.isprintable() else "?" for ch in text[:60])


def parse_count(value: str) -> int:
    """``_count``: a non-negative integer; above MAX_COUNT means MAX_COUNT (a server may page smaller)."""
    if not (value.isascii() and value.isdigit()):
        raise FhirError(400, "_count must be a non-negative integer", "invalid")
    digits = value.lstrip("0")
    return MAX_COUNT if len(digits) > 6 else min(int(digits or "0"), MAX_COUNT)


def _split(value: str) -> list[str]:
    """Comma-separated alternatives; ``\\,`` is a literal comma."""
    if "\\" not in value:
        return value.split(",")
    parts, cur, i = [], [], 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            cur.append(value[i + 1])
            i += 2
            continue
        if ch == ",":
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return parts


def _prefixed(value: str, name: str) -> tuple[str, tuple]:
    prefix = value[:2] if value[:2] in DATE_PREFIXES else "eq"
    text = value[2:] if value[:2] in DATE_PREFIXES else value
    rng = date_range(text)
    if rng is None:
        raise FhirError(
            400, f"Invalid date value for '{name}' (expected [prefix]YYYY[-MM[-DD[Thh:mm[:ss][Z|+hh:mm]]]])", "invalid"
        )
    return prefix, rng


def _point_date(col: str, value: str, name: str) -> Cond:
    prefix, (lo, hi) = _prefixed(value, name)
    return {
        "eq": Cond(f"({col} >= ? AND {col} <= ?)", (lo, hi)),
        "ne": Cond(f"({col} < ? OR {col} > ?)", (lo, hi)),
        "gt": Cond(f"{col} > ?", (hi,)),
        "lt": Cond(f"{col} < ?", (lo,)),
        "ge": Cond(f"{col} >= ?", (lo,)),
        "le": Cond(f"{col} <= ?", (hi,)),
        "sa": Cond(f"{col} > ?", (hi,)),
        "eb": Cond(f"{col} < ?", (lo,)),
    }[prefix]


def _range_date(value: str, name: str) -> Cond:
    prefix, (lo, hi) = _prefixed(value, name)
    return {
        "eq": Cond("(search_index.dt_lo >= ? AND search_index.dt_hi <= ?)", (lo, hi)),
        "ne": Cond("(search_index.dt_lo < ? OR search_index.dt_hi > ?)", (lo, hi)),
        "gt": Cond("search_index.dt_hi > ?", (hi,)),
        "lt": Cond("search_index.dt_lo < ?", (lo,)),
        "ge": Cond("search_index.dt_hi >= ?", (lo,)),
        "le": Cond("search_index.dt_lo <= ?", (hi,)),
        "sa": Cond("search_index.dt_lo > ?", (hi,)),
        "eb": Cond("search_index.dt_hi < ?", (lo,)),
    }[prefix]


_LIKE = "search_index.val LIKE ? ESCAPE '\\'"


def _param_condition(rtype: str, sp: SearchParam, modifier: str, value: str, base: str | None) -> Cond:
    scope = "search_index.res_type = ? AND search_index.param = ?"
    scope_params = (rtype, sp.name)
    if modifier == "missing":
        if value not in ("true", "false"):
            raise FhirError(400, f"{sp.name}:missing takes true or false", "invalid")
        present = f"resource_versions.res_id IN (SELECT search_index.res_id FROM search_index WHERE {scope})"  # noqa: S608  constant SQL, values bound
        return Cond(f"NOT ({present})" if value == "true" else present, scope_params)
    values = _split(value)
    if any(v == "" for v in values):
        raise FhirError(400, f"Empty value for search parameter '{sp.name}'", "invalid")
    if sp.type == "token":
        if modifier not in ("", "not"):
            raise FhirError(
                400, f"Modifier ':{modifier}' is not supported on token parameter '{sp.name}'", "not-supported"
            )
        match = _or([_token(v) for v in values])
    elif sp.type == "reference":
        if modifier and not (modifier[:1].isupper() and modifier.isalpha()):
            raise FhirError(
                400, f"Modifier ':{modifier}' is not supported on reference parameter '{sp.name}'", "not-supported"
            )
        match = _or([_reference(sp, modifier or None, v, base) for v in values])
    elif sp.type == "date":
        if modifier:
            raise FhirError(
                400, f"Modifier ':{modifier}' is not supported on date parameter '{sp.name}'", "not-supported"
            )
        match = _or([_range_date(v, sp.name) for v in values])
    else:  # string
        if modifier not in ("", "contains"):
            raise FhirError(
                400, f"Modifier ':{modifier}' is not supported on string parameter '{sp.name}'", "not-supported"
            )
        match = _or(
            [Cond(_LIKE, (("%" if modifier == "contains" else "") + _like_escape(v.lower()) + "%",)) for v in values]
        )
    sub = f"resource_versions.res_id IN (SELECT search_index.res_id FROM search_index WHERE {scope} AND {match.sql})"  # noqa: S608  our SQL fragments, values bound
    return Cond(f"NOT ({sub})" if modifier == "not" else sub, scope_params + match.params)


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _token(value: str) -> Cond:
    if "|" not in value:
        return Cond("search_index.val = ?", (value,))
    system, code = value.split("|", 1)
    if system == "":
        return Cond("(search_index.sys IS NULL AND search_index.val = ?)", (code,))
    if code == "":
        return Cond("search_index.sys = ?", (system,))
    return Cond("(search_index.sys = ? AND search_index.val = ?)", (system, code))


def _reference(sp: SearchParam, type_modifier: str | None, value: str, base: str | None) -> Cond:
    key = reference_key(value, base) if "/" in value else None
    if key:
        return Cond("search_index.val = ?", (key,))
    if "/" in value:
        return Cond("search_index.val = ?", (value,))  # foreign absolute reference
    target = type_modifier or sp.target
    if target:
        return Cond("search_index.val = ?", (f"{target}/{value}",))
    return Cond(_LIKE, ("%/" + _like_escape(value),))


# --- paging --------------------------------------------------------------------------------------


def encode_cursor(values: list) -> str:
    raw = json.dumps([v.isoformat() if hasattr(v, "isoformat") else v for v in values]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(text: str) -> tuple:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        values = json.loads(raw)
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ValueError
        return tuple(values)
    except (ValueError, TypeError):
        raise FhirError(400, "Invalid _cursor (use the next link exactly as given)", "invalid") from None


PAGE_COLUMNS = "res_id, content, last_updated, patient_key"


def build_select(q: SearchQuery, restrict_patient: str | None = None, *, columns: str = PAGE_COLUMNS) -> Cond:
    """``SELECT columns`` of the current resources matching ``q`` (unordered, unlimited)."""
    where = ["resource_versions.res_type = ?", CURRENT]
    params = [q.rtype]
    if q.conditions:
        matched = _balanced("AND", q.conditions)  # repeated parameters: see _balanced
        where.append(matched.sql)
        params += matched.params
    if restrict_patient is not None:
        where.append("(resource_versions.patient_key = ? OR resource_versions.patient_key IS NULL)")
        params.append(restrict_patient)
    # columns and where are this module's own SQL text (callers pass constant column lists); values are bound
    return Cond(f"SELECT {columns} FROM resource_versions WHERE " + " AND ".join(where), tuple(params))  # noqa: S608


def count_select(q: SearchQuery, restrict_patient: str | None = None) -> Cond:
    return build_select(q, restrict_patient, columns="count(*)")


def page_select(q: SearchQuery, restrict_patient: str | None = None) -> Cond:
    """One page (plus one row, to know whether there is a next page) in sort order after the cursor."""
    sql, bound = build_select(q, restrict_patient)
    params = list(bound)
    desc = q.sort.startswith("-")
    by_updated = q.sort.lstrip("-") == "_lastUpdated"
    op = "<" if desc else ">"
    if q.cursor:
        if by_updated:
            if len(q.cursor) != 2:
                raise FhirError(400, "Invalid _cursor for this _sort", "invalid")
            try:
                point = (datetime.fromisoformat(q.cursor[0]), q.cursor[1])
            except ValueError:
                raise FhirError(400, "Invalid _cursor (use the next link exactly as given)", "invalid") from None
            sql += f" AND (resource_versions.last_updated, resource_versions.res_id) {op} (?, ?)"
            params += point
        else:
            sql += f" AND resource_versions.res_id {op} ?"
            params.append(q.cursor[0])
    order = (
        ["resource_versions.last_updated", "resource_versions.res_id"] if by_updated else ["resource_versions.res_id"]
    )
    sql += " ORDER BY " + ", ".join(f"{c} {'DESC' if desc else 'ASC'}" for c in order) + " LIMIT ?"
    params.append(q.count + 1)
    return Cond(sql, tuple(params))


class PageRow(NamedTuple):
    res_id: str
    content: str
    last_updated: object  # as the driver returns it; rawsql.Sql.dt() makes it a datetime
    patient_key: str | None


def cursor_for(q: SearchQuery, last_row) -> str:
    if q.sort.lstrip("-") == "_lastUpdated":
        return encode_cursor([last_row.last_updated, last_row.res_id])
    return encode_cursor([last_row.res_id])


_PLAIN = re.compile(r"[A-Za-z0-9_.~|:,/-]*")


def query_string(pairs: list[tuple[str, str]]) -> str:
    """``urlencode(pairs)`` keeping ``|:,/`` readable; pairs that need no quoting (ids, references,
    tokens) are joined directly: same text, a fraction of the cost on every search's self link."""
    if all(_PLAIN.fullmatch(k) and _PLAIN.fullmatch(v) for k, v in pairs):
        return "&".join(f"{k}={v}" for k, v in pairs)
    return urlencode(pairs, safe="|:,/")


__all__ = ["Cond", "PageRow", "SearchQuery", "count_select", "cursor_for", "page_select", "parse", "query_string"]
