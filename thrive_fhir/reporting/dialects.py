"""The SQL spellings the view compiler needs, once for DuckDB and once for Spark SQL.

Both engines see a FHIR resource as JSON text and a FHIRPath collection as an array of JSON
values, so one compiler (:mod:`.compiler`) emits the same plan for both; only these spellings
differ. Spark's ``get_json_object`` returns a string primitive without its quotes while DuckDB
keeps JSON, so "the text of a value" (:meth:`Dialect.text`) is where the two meet.
"""

from __future__ import annotations

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


class DuckDB:
    name = "duckdb"
    empty_list = "[]::JSON[]"
    null_json = "NULL::JSON"

    def lit_str(self, s: str) -> str:
        return "'" + s.replace("'", "''") + "'"

    def lam(self, var: str, body: str) -> str:
        return f"lambda {var}: {body}"

    def child_one(self, x: str, key: str) -> str:
        return f"json_extract({x}, '$.{_key_path(key)}')"

    def child_many(self, x: str, key: str) -> str:
        return f"coalesce(json_extract({x}, '$.{_key_path(key)}[*]'), {self.empty_list})"

    def child_any(self, x: str, key: str) -> str:
        k = _key_path(key)
        t = f"json_type({x}, '$.{k}')"
        return (f"(CASE WHEN {t} = 'ARRAY' THEN json_extract({x}, '$.{k}[*]') "
                f"WHEN {t} IS NULL OR {t} = 'NULL' THEN {self.empty_list} ELSE [json_extract({x}, '$.{k}')] END)")

    def transform(self, lst: str, var: str, body: str) -> str:
        return f"list_transform({lst}, {self.lam(var, body)})"

    def filter(self, lst: str, var: str, cond: str) -> str:
        return f"list_filter({lst}, {self.lam(var, cond)})"

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

    def text(self, x: str) -> str:
        return f"json_extract_string({x}, '$')"

    def json_of_text(self, s: str) -> str:
        return f"to_json({s})"

    def json_of_num(self, n: str) -> str:
        return f"to_json({n})"

    def json_of_bool(self, b: str) -> str:
        return f"to_json({b})"

    def is_bool_json(self, x: str) -> str:
        return f"(json_type({x}) = 'BOOLEAN')"

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
        return (f"(CASE WHEN {v} IS NULL THEN {self.empty_list} WHEN ltrim({v}) LIKE '[%' "
                f"THEN coalesce(from_json({v}, 'ARRAY<STRING>'), {self.empty_list}) ELSE array({v}) END)")

    def transform(self, lst: str, var: str, body: str) -> str:
        return f"transform({lst}, {self.lam(var, body)})"

    def filter(self, lst: str, var: str, cond: str) -> str:
        return f"filter({lst}, {self.lam(var, f'coalesce({cond}, false)')})"

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

    def text(self, x: str) -> str:
        return x

    def json_of_text(self, s: str) -> str:
        return s

    def json_of_num(self, n: str) -> str:
        return f"CAST({n} AS STRING)"

    def json_of_bool(self, b: str) -> str:
        return f"CAST({b} AS STRING)"

    def is_bool_json(self, x: str) -> str:
        return f"({x} IN ('true', 'false'))"

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


DIALECTS = {"duckdb": DuckDB(), "spark": Spark()}
