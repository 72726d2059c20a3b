"""The SQL spellings the view compiler needs, once for DuckDB and once for Spark SQL.

Both engines see a FHIR resource as JSON text and a FHIRPath collection as an array of JSON
values, so one compiler (:mod:`.compiler`) emits the same plan for both; only these spellings
differ. Spark's ``get_json_object`` returns a string primitive without its quotes while DuckDB
keeps JSON, so "the text of a value" (:meth:`Dialect.text`) is where the two meet.
"""

from __future__ import annotations

import re

#: Output column types: FHIR primitive type -> (DuckDB type, Spark type).
SQL_TYPES = {
    "boolean": ("BOOLEAN", "BOOLEAN"),
    "integer": ("BIGINT", "BIGINT"),
    "integer64": ("BIGINT", "BIGINT"),
    "positiveInt": ("BIGINT", "BIGINT"),
    "unsignedInt": ("BIGINT", "BIGINT"),
    "decimal": ("DOUBLE", "DOUBLE"),
}


def _key_path(key: str) -> str:
    if not key.replace("_", "a").isalnum():
        raise ValueError(f"unusable element name {key!r}")
    return key


ROOT = "t.resource"

#: Longest SQL a one-item form may take (a body naming its variable many times, nested, grows).
_ONE_ITEM_MAX = 20_000
_QUOTED = re.compile(r"""('(?:[^']|'')*'|"(?:[^"]|"")*")""")


def _bind(body: str, var: str, value: str) -> str:
    """``body`` (a lambda's SQL over ``var``) with ``value`` in place of ``var``: every whole-word
    ``var`` outside quoted literals and identifiers. The compiler's lambda variables are fresh
    names (``v12``), so a word that spells one is that variable."""
    word = re.compile(rf"\b{re.escape(var)}\b")
    parts = _QUOTED.split(body)
    return "".join(p if i % 2 else word.sub(lambda _m: f"({value})", p) for i, p in enumerate(parts))


class DuckDB:
    """DuckDB spellings. One instance per compiled view: it records the top-level keys the view
    reads (:attr:`hoisted`) so the source query extracts them all in one JSON parse per resource
    (``json_extract(resource, [paths])``) instead of one parse per expression."""

    name = "duckdb"
    empty_list = "[]::JSON[]"
    null_json = "NULL::JSON"

    def __init__(self) -> None:
        self.hoisted: dict[str, str] = {}
        #: The lists this dialect made with a lambda: SQL -> (the list it maps or filters, the
        #: lambda's variable, its body, whether it filters). See :meth:`_only_item`.
        self._lambdas: dict[str, tuple[str, str, str, bool]] = {}

    def _hoist(self, key: str) -> str:
        alias = self.hoisted.setdefault(_key_path(key), f"h{len(self.hoisted)}")
        return f't."{alias}"'

    def source_wrapper(self, source: str) -> str:
        """``source`` with the hoisted top-level keys as columns (one parse per resource)."""
        if not self.hoisted:
            return source
        paths = ", ".join(f"'$.{k}'" for k in self.hoisted)
        cols = ", ".join(f'p[{i + 1}] AS "{a}"' for i, a in enumerate(self.hoisted.values()))
        return f"(SELECT resource, {cols} FROM (SELECT resource, json_extract(resource, [{paths}]) AS p FROM {source}))"

    def contains(self, text: str, needle: str) -> str:
        return f"contains({text}, {self.lit_str(needle)})"

    def lit_str(self, s: str) -> str:
        return "'" + s.replace("'", "''") + "'"

    def lam(self, var: str, body: str) -> str:
        return f"lambda {var}: {body}"

    def child_one(self, x: str, key: str) -> str:
        if x == ROOT:
            return self._hoist(key)
        return f"json_extract({x}, '$.{_key_path(key)}')"

    def child_many(self, x: str, key: str) -> str:
        if x == ROOT:
            return f"coalesce(json_extract({self._hoist(key)}, '$[*]'), {self.empty_list})"
        return f"coalesce(json_extract({x}, '$.{_key_path(key)}[*]'), {self.empty_list})"

    def child_any(self, x: str, key: str) -> str:
        if x == ROOT:
            h = self._hoist(key)
            t = f"json_type({h})"
            return (
                f"(CASE WHEN {t} = 'ARRAY' THEN json_extract({h}, '$[*]') "
                f"WHEN {t} IS NULL OR {t} = 'NULL' THEN {self.empty_list} ELSE [{h}] END)"
            )
        k = _key_path(key)
        t = f"json_type({x}, '$.{k}')"
        return (
            f"(CASE WHEN {t} = 'ARRAY' THEN json_extract({x}, '$.{k}[*]') "
            f"WHEN {t} IS NULL OR {t} = 'NULL' THEN {self.empty_list} ELSE [json_extract({x}, '$.{k}')] END)"
        )

    def transform(self, lst: str, var: str, body: str) -> str:
        sql = f"list_transform({lst}, {self.lam(var, body)})"
        self._lambdas[sql] = (lst, var, body, False)
        return sql

    def transform_indexed(self, lst: str, var: str, ivar: str, body: str) -> str:
        """``transform`` whose body also sees the item's position as ``ivar`` (see :meth:`index0`)."""
        return f"list_transform({lst}, lambda {var}, {ivar}: {body})"

    def index0(self, ivar: str) -> str:
        """The 0-based position held by ``ivar`` of :meth:`transform_indexed` (DuckDB counts from 1)."""
        return f"({ivar} - 1)"

    def filter(self, lst: str, var: str, cond: str) -> str:
        sql = f"list_filter({lst}, {self.lam(var, cond)})"
        self._lambdas[sql] = (lst, var, cond, True)
        return sql

    def _only_item(self, lst: str) -> tuple[str, str | None, str]:
        """For ``lst`` made from a list ``base`` by transforms and filters: (``base``, the
        condition under which ``lst`` keeps base's item when base has exactly one (None: always),
        that item as it is in ``lst``), all without a lambda.

        Nearly every list in FHIR data has one item (one coding, one performer, one extension),
        and a DuckDB lambda costs far more per row than the plain expression (measured on 4M
        Observations: the episode extension's ``list_any_value(list_transform(list_filter(...)))``
        1.0 CPU-s; its one-item form 0.25), so :meth:`first_non_null` and :meth:`nonempty`
        take that case first."""
        made = self._lambdas.get(lst)
        if made is None:
            return lst, None, f"({lst})[1]"
        items, var, body, filters = made
        base, cond, item = self._only_item(items)
        if not filters:
            return base, cond, _bind(body, var, item)
        test = _bind(body, var, item)
        return base, (test if cond is None else f"({cond}) AND ({test})"), item

    def flatten(self, lst: str) -> str:
        return f"flatten({lst})"

    def concat(self, *lists: str) -> str:
        out = lists[0]
        for other in lists[1:]:
            out = f"list_concat({out}, {other})"
        return out

    def size(self, lst: str) -> str:
        return f"len({lst})"

    def elem(self, lst: str, index0: str) -> str:
        return f"({lst})[({index0}) + 1]"

    def last(self, lst: str) -> str:
        return f"({lst})[-1]"

    def single(self, x: str) -> str:
        return f"[{x}]"

    def non_null_list(self, lst: str) -> str:
        """``lst``, or an empty list where it is NULL (a collection column's value)."""
        return lst

    def first_non_null(self, lst: str) -> str | None:
        """The first non-NULL item of ``lst`` (None: not available, filter then index); a list
        made by lambdas from a one-item list is read without them (:meth:`_only_item`)."""
        base, cond, item = self._only_item(lst)
        if base == lst or len(item) + len(cond or "") > _ONE_ITEM_MAX:
            return f"list_any_value({lst})"
        one = item if cond is None else f"(CASE WHEN {cond} THEN {item} END)"
        return f"(CASE WHEN len({base}) = 1 THEN {one} ELSE list_any_value({lst}) END)"

    def nonempty(self, lst: str) -> str:
        """Whether ``lst`` has an item; one filtered from a one-item list is tested without a
        lambda (:meth:`_only_item`)."""
        base, cond, _item = self._only_item(lst)
        if cond is None or len(cond) > _ONE_ITEM_MAX:
            return f"({self.size(lst)} > 0)"
        return f"(CASE WHEN len({base}) = 1 THEN coalesce({cond}, FALSE) ELSE {self.size(lst)} > 0 END)"

    def count_non_null(self, lst: str) -> str | None:
        """How many items of ``lst`` are not NULL (None: not available)."""
        return f"list_count({lst})"

    def reference_key(self, ref: str, prefix: str) -> str | None:
        """``getReferenceKey(Type)`` of the reference text ``ref``: ``prefix`` ("Type/") + id when
        ``ref`` is "Type/id" or "Type/id/_history/v", else NULL. Same value as the compiler's
        portable spelling; the common "Type/id" is tested first with a prefix test and one LIKE
        (no substrings made), the history form only for what is left."""
        n = len(prefix)
        lit = self.lit_str(prefix)
        like = self.lit_str(prefix + "%/%")
        rest = f"substr({ref}, {n + 1})"
        slash = f"instr({rest}, '/')"
        return (
            f"(CASE WHEN NOT starts_with({ref}, {lit}) THEN NULL "
            f"WHEN NOT ({ref} LIKE {like}) THEN (CASE WHEN length({ref}) > {n} THEN {ref} END) "
            f"WHEN substr({rest}, {slash}, 10) = '/_history/' "
            f"THEN {lit} || substr({rest}, 1, {slash} - 1) END)"
        )

    def text(self, x: str, tk: str | None = None) -> str:
        return f"json_extract_string({x}, '$')"

    def json_of_text(self, s: str) -> str:
        return f"to_json({s})"

    def json_of_num(self, n: str) -> str:
        return f"to_json({n})"

    def json_of_bool(self, b: str) -> str:
        return f"to_json({b})"

    def is_bool_json(self, x: str, tk: str | None = None) -> str:
        return f"(json_type({x}) = 'BOOLEAN')"

    def fail(self, message: str) -> str:
        """An expression that stops the query with ``message`` when it is evaluated."""
        return f"error({self.lit_str(message)})"

    def try_cast(self, x: str, t: str) -> str:
        return f"TRY_CAST({x} AS {self.sql_type(t)})"

    def sql_type(self, t: str) -> str:
        if t == "string":
            return "VARCHAR"
        return {"BOOLEAN": "BOOLEAN", "BIGINT": "BIGINT", "DOUBLE": "DOUBLE"}.get(t, "VARCHAR")

    def struct(self, fields: list[tuple[str, str]]) -> str:
        return "struct_pack(" + ", ".join(f'"{n}" := {e}' for n, e in fields) + ")"

    def field(self, var: str, name: str) -> str:
        return f'{var}."{name}"'

    def quote_ident(self, name: str) -> str:
        return f'"{name}"'

    def regex_match(self, s: str, pattern: str) -> str:
        return f"regexp_full_match({s}, {self.lit_str(pattern)})"

    def regex_extract(self, s: str, pattern: str) -> str:
        return f"regexp_extract({s}, {self.lit_str(pattern)}, 1)"

    def regex_group(self, s: str, pattern: str, group: int) -> str:
        """Group ``group`` of the first match ('' or NULL where that group took no part)."""
        return f"regexp_extract({s}, {self.lit_str(pattern)}, {group})"

    def join(self, lst: str, sep: str) -> str:
        return f"array_to_string({lst}, {sep})"

    def explode_rows(self, rows: str, columns: list[str]) -> str:
        cols = ", ".join(f'r."{c}"' for c in columns)
        return f"SELECT {cols} FROM (SELECT unnest({rows}) AS r FROM __SOURCE__ __WHERE__)"

    def typed_null(self, t: str) -> str:
        return f"CAST(NULL AS {t})"

    def list_type_null(self, t: str) -> str:
        return f"CAST(NULL AS {t}[])"


class Spark(DuckDB):
    name = "spark"
    empty_list = "CAST(array() AS ARRAY<STRING>)"
    null_json = "CAST(NULL AS STRING)"

    def source_wrapper(self, source: str) -> str:
        return source

    def first_non_null(self, lst: str) -> str | None:
        return None

    def count_non_null(self, lst: str) -> str | None:
        return None

    def reference_key(self, ref: str, prefix: str) -> str | None:
        return None

    def contains(self, text: str, needle: str) -> str:
        return f"(instr({text}, {self.lit_str(needle)}) > 0)"

    def lit_str(self, s: str) -> str:
        return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"

    def lam(self, var: str, body: str) -> str:
        return f"{var} -> {body}"

    def child_one(self, x: str, key: str) -> str:
        return f"get_json_object({x}, '$.{_key_path(key)}')"

    def child_many(self, x: str, key: str) -> str:
        return f"coalesce(from_json(get_json_object({x}, '$.{_key_path(key)}'), 'ARRAY<STRING>'), {self.empty_list})"

    def child_any(self, x: str, key: str) -> str:
        v = self.child_one(x, key)
        return (
            f"(CASE WHEN {v} IS NULL THEN {self.empty_list} WHEN ltrim({v}) LIKE '[%' "
            f"THEN coalesce(from_json({v}, 'ARRAY<STRING>'), {self.empty_list}) ELSE array({v}) END)"
        )

    def transform(self, lst: str, var: str, body: str) -> str:
        return f"transform({lst}, {self.lam(var, body)})"

    def transform_indexed(self, lst: str, var: str, ivar: str, body: str) -> str:
        return f"transform({lst}, ({var}, {ivar}) -> {body})"

    def index0(self, ivar: str) -> str:
        return ivar  # Spark counts from 0

    def filter(self, lst: str, var: str, cond: str) -> str:
        return f"filter({lst}, {self.lam(var, f'coalesce({cond}, false)')})"

    def nonempty(self, lst: str) -> str:
        return f"({self.size(lst)} > 0)"

    def flatten(self, lst: str) -> str:
        return f"flatten({lst})"

    def concat(self, *lists: str) -> str:
        return "concat(" + ", ".join(lists) + ")"

    def size(self, lst: str) -> str:
        return f"size({lst})"

    def elem(self, lst: str, index0: str) -> str:
        return f"try_element_at({lst}, CAST(({index0}) + 1 AS INT))"

    def last(self, lst: str) -> str:
        return f"try_element_at({lst}, -1)"

    def single(self, x: str) -> str:
        return f"array({x})"

    def text(self, x: str, tk: str | None = None) -> str:
        return x

    def json_of_text(self, s: str) -> str:
        return s

    def json_of_num(self, n: str) -> str:
        return f"CAST({n} AS STRING)"

    def json_of_bool(self, b: str) -> str:
        return f"CAST({b} AS STRING)"

    def is_bool_json(self, x: str, tk: str | None = None) -> str:
        return f"({x} IN ('true', 'false'))"

    def fail(self, message: str) -> str:
        return f"raise_error({self.lit_str(message)})"

    def try_cast(self, x: str, t: str) -> str:
        return f"try_cast({x} AS {self.sql_type(t)})"

    def sql_type(self, t: str) -> str:
        return {"BOOLEAN": "BOOLEAN", "BIGINT": "BIGINT", "DOUBLE": "DOUBLE"}.get(t, "STRING")

    def struct(self, fields: list[tuple[str, str]]) -> str:
        return "named_struct(" + ", ".join(f"'{n}', {e}" for n, e in fields) + ")"

    def field(self, var: str, name: str) -> str:
        return f"{var}.`{name}`"

    def quote_ident(self, name: str) -> str:
        return f"`{name}`"

    def regex_match(self, s: str, pattern: str) -> str:
        return f"({s} RLIKE {self.lit_str('^' + pattern + '$')})"

    def join(self, lst: str, sep: str) -> str:
        return f"array_join({lst}, {sep})"

    def explode_rows(self, rows: str, columns: list[str]) -> str:
        cols = ", ".join(f"r.`{c}`" for c in columns)
        return f"SELECT {cols} FROM (SELECT explode({rows}) AS r FROM __SOURCE__ __WHERE__)"

    def typed_null(self, t: str) -> str:
        return f"CAST(NULL AS {self.sql_type(t)})"

    def list_type_null(self, t: str) -> str:
        return f"CAST(NULL AS ARRAY<{self.sql_type(t)}>)"


class DuckTyped(DuckDB):
    """DuckDB over typed structs: ``from_json(resource, structure)`` once per resource, then
    struct field access and list functions. A leaf the structure keeps as JSON (a complex value
    used whole) falls back to the JSON spellings (``tk`` None)."""

    empty_list = "[]"
    null_json = "NULL"

    def __init__(self, structure: dict):
        super().__init__()
        self.structure = structure

    def source_wrapper(self, files: str) -> str:
        """``files`` is a DuckDB list of NDJSON paths: read_json parses each line straight into
        the typed columns (measured ~3x faster than a JSON function per expression)."""
        from .compiler import read_json_columns

        return (
            f"(SELECT * FROM read_json({files}, format = 'newline_delimited', "
            f"columns = {read_json_columns(self.structure)}))"
        )

    def _field(self, x: str, key: str) -> str:
        if x == "t.__root__":
            return f't."{_key_path(key)}"'
        return f'({x})."{_key_path(key)}"'

    def child_one(self, x: str, key: str) -> str:
        return self._field(x, key)

    # A missing array is a NULL list here, not coalesced to [] at every step (measured ~25% of a
    # list column's cost): every list function gives NULL for NULL, list_any_value and unnest
    # treat it as empty, and the few places where empty and NULL differ say so below.
    def child_many(self, x: str, key: str) -> str:
        return self._field(x, key)

    def size(self, lst: str) -> str:
        return f"coalesce(len({lst}), 0)"

    def count_non_null(self, lst: str) -> str | None:
        return f"coalesce(list_count({lst}), 0)"

    def non_null_list(self, lst: str) -> str:
        return f"coalesce({lst}, [])"

    def text(self, x: str, tk: str | None = None) -> str:
        if tk is None:
            return f"json_extract_string({x}, '$')"
        if tk == "struct":
            return f"CAST(to_json({x}) AS VARCHAR)"
        return x  # VARCHAR / BOOL: read as the value's JSON text

    def is_bool_json(self, x: str, tk: str | None = None) -> str:
        if tk is None:
            return f"(json_type({x}) = 'BOOLEAN')"
        return "TRUE" if tk == "BOOL" else "FALSE"

    def json_of_text(self, s: str) -> str:
        return s

    def json_of_num(self, n: str) -> str:
        return n

    def json_of_bool(self, b: str) -> str:
        return b


DIALECTS = {"duckdb": DuckDB, "spark": Spark}
