"""Compile a SQL on FHIR v2 ViewDefinition to one SQL query (DuckDB or Spark SQL).

The FHIRPath of every column, ``where``, ``forEach``... is translated into SQL over the JSON text
of the resources; nothing is evaluated row by row in Python. A FHIRPath value is held as one of:

- ``j1``: one JSON value or SQL NULL (empty): what a path to a ``0..1`` element gives;
- ``jn``: an array of JSON values (a collection; never NULL);
- ``b`` / ``s`` / ``n``: a native SQL boolean / string / number (NULL = empty).

Element cardinalities come from the R4 core package (:mod:`.schema`), so ``subject.reference``
is one ``json_extract`` instead of list operations, and a path that does not exist is an error
before any data is read. A view's rows are built per resource as an array of structs (``forEach``
maps over a collection, nested ``select`` is a cross product, ``unionAll`` concatenates) and then
unnested; a view without ``forEach``/``repeat``/``unionAll`` is a plain ``SELECT`` of columns.
"""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from . import boundary, schema
from . import fhirpath as fp
from .dialects import DIALECTS, SQL_TYPES

#: How deep ``repeat`` follows its paths (nested Questionnaire items, etc.): SQL has no recursion
#: over JSON, so the recursion is unrolled this many levels.
REPEAT_DEPTH = 8
_COLUMN_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
#: ``getReferenceKey``: a relative literal reference ``Type/id`` (optionally ``/_history/v``).
_REF_PATTERN = r"([A-Za-z]+/[A-Za-z0-9.\-]{1,64})(/_history/[A-Za-z0-9.\-]{1,64})?"
SUPPORTED_FUNCTIONS = (
    "where",
    "exists",
    "empty",
    "first",
    "last",
    "not",
    "extension",
    "join",
    "ofType",
    "getResourceKey",
    "getReferenceKey",
    "count",
    "iif",
    "lowBoundary",
    "highBoundary",
)


class ViewError(ValueError):
    """A ViewDefinition that cannot be compiled; the message names the column and expression."""


class _ExprError(Exception):
    """Raised inside expression compilation; turned into a ViewError with context."""


@dataclass(frozen=True)
class Val:
    sql: str
    kind: str  # j1 | jn | b | s | n
    ftype: str | None = None  # FHIR type (or backbone path) for navigation; None = unknown
    choice: tuple | None = None  # (base Val, schema.Element) when this is a bare choice element
    jpath: tuple | None = None  # JSON keys from the resource root (typed DuckDB mode), None if computed
    tk: str | None = None  # typed mode: "struct" or a SQL type; None = a JSON value
    #: When ``sql`` is ``list_filter(X, v IS NOT NULL)``: X. A step that maps NULL to NULL (or to
    #: nothing) and drops NULLs afterwards can read X instead, and ``first()`` can take X's first
    #: non-NULL item: one list operation less per step (measured ~30% of a view's CPU).
    nn_of: str | None = None


@dataclass
class Column:
    name: str
    sql_type: str  # BOOLEAN | BIGINT | DOUBLE | VARCHAR (portable names)
    collection: bool


@dataclass
class _Part:
    columns: list[Column]
    flat: dict[str, str] | None = None  # name -> SQL (exactly one row)
    rows: str | None = None  # SQL array of structs


def _same_source(source: str) -> str:
    return source


@dataclass
class CompiledView:
    name: str
    resource: str
    columns: list[Column]
    sql_template: str  # contains __SOURCE__ (a relation with a ``resource`` column) and __WHERE__
    dialect: str

    def sql(self, source: str) -> str:
        """The query over ``source``: a table or subquery with the JSON text in ``resource``."""
        if self._prefilter and not self.typed:
            source = f"(SELECT * FROM {source} WHERE {' AND '.join(self._prefilter)})"
        source = self._wrap(source)
        return self.sql_template.replace("__SOURCE__", f"{source} AS t").replace("__WHERE__", self._where)

    _where: str = ""
    _prefilter: tuple = ()
    #: Typed DuckDB plan: ``sql()`` takes a DuckDB list of NDJSON file paths, not a relation.
    typed: bool = False
    #: How ``sql()`` turns its source into the relation read (the dialect's ``source_wrapper``).
    _wrap: Callable[[str], str] = _same_source
    #: The parts of the query, for :func:`shared_scan_sql` (several views in one scan): the
    #: ``where`` conditions (resource type first), and either the columns (name, SQL) of a view
    #: with one row per resource or the SQL list of row structs of one with forEach/unionAll.
    conditions: tuple = ()
    flat: tuple | None = None
    rows: str | None = None
    structure: dict | None = None


class _Compiler:
    def __init__(self, view: dict, dialect: str, structure: dict | None = None):
        if dialect not in DIALECTS:
            raise ViewError(f"unknown engine {dialect!r}")
        self.d = DIALECTS[dialect]()
        #: Typed DuckDB mode: the resource is parsed once with ``from_json`` into this structure.
        self.structure = structure
        if structure is not None:
            from .dialects import DuckTyped

            self.d = DuckTyped(structure)
        #: Pass 1 records every path navigated from the root (to build the structure).
        self.tree: dict = {"children": {}, "array": False, "ftype": None}
        self.untyped_reasons: list[str] = []
        self._bare_choices = 0
        self.view = view
        self.vars = itertools.count(1)
        self.constants: dict[str, Val] = {}
        self.view_constants: dict[str, object] = {}
        self.context = ""
        #: ``%rowIndex``: the 0-based position of the current item in the innermost forEach /
        #: forEachOrNull / repeat (0 at the resource). Items are numbered only in views that ask.
        self.row_index = "0"
        self.wants_row_index = "%rowIndex" in repr(view)

    # --- typed-mode bookkeeping ----------------------------------------------------------------
    def _node(self, jpath: tuple) -> dict:
        node = self.tree
        for k in jpath:
            node = node["children"][k]
        return node

    def _record(self, base: Val, key: str, array: bool, ftype: str | None) -> tuple | None:
        if base.jpath is None:
            return None
        node = self._node(base.jpath)
        child = node["children"].setdefault(key, {"children": {}, "array": array, "ftype": ftype})
        child["array"] = child["array"] or array
        return (*base.jpath, key)

    def _leaf_tk(self, jpath: tuple | None) -> str | None:
        if self.structure is None or jpath is None:
            return None
        node = self.structure
        for k in jpath:
            node = node["children"][k]
        return _node_tk(node)

    def _whole(self, v: Val) -> None:
        """A value read as a whole (text, boolean): a typed struct there would lose its fields."""
        if v.jpath is not None and self.structure is None:
            self._node(v.jpath)["whole"] = True

    # --- helpers ------------------------------------------------------------------------------
    def fresh(self) -> str:
        return f"v{next(self.vars)}"

    def as_list(self, v: Val) -> str:
        d = self.d
        if v.kind == "jn":
            return v.sql
        j = self.as_json1(v)
        return f"(CASE WHEN {j} IS NULL THEN {d.empty_list} ELSE {d.single(j)} END)"

    def as_json1(self, v: Val) -> str:
        d = self.d
        if v.kind == "j1":
            return v.sql
        if v.kind == "jn":
            return (d.first_non_null(v.nn_of) if v.nn_of else None) or d.elem(v.sql, "0")
        if v.kind == "s":
            return d.json_of_text(v.sql)
        if v.kind == "n":
            return d.json_of_num(v.sql)
        return d.json_of_bool(v.sql)

    def as_text(self, v: Val) -> str:
        self._whole(v)
        if v.kind in ("j1", "jn"):
            return self.d.text(self.as_json1(v), v.tk)
        if v.kind == "s":
            return v.sql
        return f"CAST({v.sql} AS {self.d.sql_type('VARCHAR')})"

    def as_num(self, v: Val) -> str:
        if v.kind == "n":
            return v.sql
        return self.d.try_cast(self.as_text(v), "DOUBLE")

    def as_bool(self, v: Val) -> str:
        if v.kind == "b":
            return v.sql
        if v.kind in ("s", "n"):
            return f"(CASE WHEN {v.sql} IS NULL THEN NULL ELSE TRUE END)"
        self._whole(v)
        j = self.as_json1(v)
        return (
            f"(CASE WHEN {j} IS NULL THEN NULL WHEN {self.d.is_bool_json(j, v.tk)} "
            f"THEN {self.d.text(j, v.tk)} = 'true' ELSE TRUE END)"
        )

    def exists(self, v: Val) -> str:
        if v.kind == "jn":
            return self.d.nonempty(v.sql)
        return f"({v.sql} IS NOT NULL)"

    # --- expressions --------------------------------------------------------------------------
    def expr(self, text: str, focus: Val) -> Val:
        try:
            node = fp.parse(text)
        except fp.FhirPathSyntaxError as exc:
            raise _ExprError(f"cannot read the FHIRPath: {exc}") from None
        return self.node(node, focus, focus)

    def node(self, n, focus: Val, this: Val) -> Val:
        d = self.d
        if isinstance(n, fp.This):
            return this
        if isinstance(n, fp.Name):
            return self.member(focus, n.name, top=True)
        if isinstance(n, fp.Member):
            return self.member(self.node(n.base, focus, this), n.name)
        if isinstance(n, fp.Const):
            if n.name == "rowIndex" and n.name not in self.constants:
                return Val(f"CAST({self.row_index} AS BIGINT)", "n", "integer")
            if n.name not in self.constants:
                raise _ExprError(f"unknown constant %{n.name}")
            return self.constants[n.name]
        if isinstance(n, fp.Literal):
            return self.literal(n)
        if isinstance(n, fp.Index):
            base = self.node(n.base, focus, this)
            idx = self.node(n.index, this, this)
            if base.kind in ("b", "s", "n"):
                return base if idx.sql == "0" else Val("NULL", base.kind)
            return Val(
                d.elem(self.as_list(base), self.as_num(idx) if idx.kind != "n" else idx.sql),
                "j1",
                base.ftype,
                jpath=base.jpath,
                tk=base.tk,
            )
        if isinstance(n, fp.Neg):
            v = self.node(n.operand, focus, this)
            return Val(f"(- {self.as_num(v)})", "n", v.ftype if v.ftype in ("integer", "decimal") else None)
        if isinstance(n, fp.BinOp):
            return self.binop(n, focus, this)
        if isinstance(n, fp.Call):
            base = this if n.base is None else self.node(n.base, focus, this)
            if n.base is None and n.fn not in ("getResourceKey", "extension", "iif"):
                base = focus
            return self.call(n.fn, base, n.args, focus)
        raise _ExprError(f"unsupported expression {n!r}")

    def literal(self, n: fp.Literal) -> Val:
        d = self.d
        if n.kind in ("string", "date", "datetime", "time"):
            ftype = {"datetime": "dateTime"}.get(n.kind, n.kind)
            return Val(d.lit_str(str(n.value)), "s", ftype)
        if n.kind == "integer":
            return Val(str(n.value), "n", "integer")
        if n.kind == "decimal":
            return Val(f"CAST({n.value} AS DOUBLE)", "n", "decimal")
        if n.kind == "boolean":
            return Val("TRUE" if n.value else "FALSE", "b", "boolean")
        return Val(d.empty_list, "jn")

    def member(self, base: Val, name: str, top: bool = False) -> Val:
        d = self.d
        if top and base.ftype is not None and name == base.ftype and "." not in name:
            return base  # ``Patient.name`` in a Patient view: the type name is the resource itself
        if base.kind in ("b", "s", "n"):
            raise _ExprError(f"cannot take '{name}' of a {base.ftype or 'literal'} value")
        elem = schema.lookup(base.ftype, name)
        if elem is False:
            raise _ExprError(f"'{name}' is not an element of {base.ftype}")
        if elem is None:  # unknown type: check the JSON shape at run time
            self.untyped_reasons.append(f"'{name}' of an unknown type")
            if base.kind == "j1":
                return Val(d.child_any(base.sql, name), "jn")
            var = self.fresh()
            return Val(d.flatten(d.transform(base.sql, var, d.child_any(var, name))), "jn")
        if elem.choice:
            self._bare_choices += 1
            keys = [elem.json_key(t) for t in elem.types]
            one = lambda x: "coalesce(" + ", ".join(d.child_one(x, k) for k in keys) + ")"  # noqa: E731
            if base.kind == "j1":
                return Val(one(base.sql), "j1", None, (base, elem))
            var = self.fresh()
            return Val(
                d.filter(d.transform(base.sql, var, one(var)), var + "n", f"{var}n IS NOT NULL"),
                "jn",
                None,
                (base, elem),
            )
        return self.navigate(base, elem.name, elem.array, schema.next_type(elem))

    def navigate(self, base: Val, key: str, array: bool, ftype: str | None) -> Val:
        d = self.d
        jpath = self._record(base, key, array, ftype)
        tk = self._leaf_tk(jpath)
        if base.kind == "j1":
            if array:
                return Val(d.child_many(base.sql, key), "jn", ftype, jpath=jpath, tk=tk)
            return Val(d.child_one(base.sql, key), "j1", ftype, jpath=jpath, tk=tk)
        var = self.fresh()
        # A NULL item has no child: reading the list before its NULLs were dropped is the same.
        items = base.nn_of or base.sql
        if array:
            return Val(d.flatten(d.transform(items, var, d.child_many(var, key))), "jn", ftype, jpath=jpath, tk=tk)
        mapped = d.transform(items, var, d.child_one(var, key))
        var2 = self.fresh()
        return Val(d.filter(mapped, var2, f"{var2} IS NOT NULL"), "jn", ftype, jpath=jpath, tk=tk, nn_of=mapped)

    def binop(self, n: fp.BinOp, focus: Val, this: Val) -> Val:
        d = self.d
        left = self.node(n.left, focus, this)
        right = self.node(n.right, focus, this)
        op = n.op
        if op in ("and", "or"):
            return Val(f"({self.as_bool(left)} {op.upper()} {self.as_bool(right)})", "b")
        if op == "xor":
            return Val(f"({self.as_bool(left)} <> {self.as_bool(right)})", "b")
        if op == "implies":
            return Val(f"((NOT {self.as_bool(left)}) OR {self.as_bool(right)})", "b")
        if op == "|":
            self.untyped_reasons.append("union (|)")
            return Val(
                d.concat(self.as_list(left), self.as_list(right)),
                "jn",
                left.ftype if left.ftype == right.ftype else None,
            )
        if op == "&":
            return Val(f"(coalesce({self.as_text(left)}, '') || coalesce({self.as_text(right)}, ''))", "s", "string")
        if op in ("=", "!=", "~", "!~", "<", ">", "<=", ">="):
            sqlop = {"=": "=", "~": "=", "!=": "<>", "!~": "<>"}.get(op, op)
            if "b" in (left.kind, right.kind):
                lhs, rhs = self.as_bool(left), self.as_bool(right)
            elif "n" in (left.kind, right.kind) or {left.ftype, right.ftype} & {
                "integer",
                "decimal",
                "positiveInt",
                "unsignedInt",
            }:
                lhs, rhs = self.as_num(left), self.as_num(right)
            else:
                lhs, rhs = self.as_text(left), self.as_text(right)
                if op in ("~", "!~"):
                    lhs, rhs = f"lower({lhs})", f"lower({rhs})"
            cmp = f"({lhs} {sqlop} {rhs})"
            # FHIRPath: a collection of more than one item is never equal to a single value.
            for side in (left, right):
                if side.kind == "jn" and sqlop in ("=", "<>"):
                    size = (d.count_non_null(side.nn_of) if side.nn_of else None) or d.size(side.sql)
                    cmp = f"(CASE WHEN {size} > 1 THEN {'FALSE' if sqlop == '=' else 'TRUE'} ELSE {cmp} END)"
            return Val(cmp, "b")
        if op in ("+", "-", "*", "/", "div", "mod"):
            if op == "+" and "s" in (left.kind, right.kind) and "n" not in (left.kind, right.kind):
                return Val(f"({self.as_text(left)} || {self.as_text(right)})", "s", "string")
            sqlop = {"div": "//", "mod": "%"}.get(op, op)
            lhs, rhs = self.as_num(left), self.as_num(right)
            if op == "/":
                return Val(f"(CAST({lhs} AS DOUBLE) / NULLIF({rhs}, 0))", "n", "decimal")
            if op == "div":
                return Val(f"CAST(floor({lhs} / NULLIF({rhs}, 0)) AS BIGINT)", "n", "integer")
            if op == "mod":
                return Val(f"({lhs} % NULLIF({rhs}, 0))", "n")
            ftype = "integer" if left.ftype == right.ftype == "integer" else "decimal"
            return Val(f"({lhs} {sqlop} {rhs})", "n", ftype)
        raise _ExprError(f"unsupported operator {op!r}")

    def call(self, fn: str, base: Val, args: tuple, focus: Val) -> Val:
        d = self.d

        def nargs(*allowed: int) -> None:
            if len(args) not in allowed:
                raise _ExprError(f"{fn}() takes {' or '.join(map(str, allowed))} argument(s), not {len(args)}")

        if fn == "where":
            nargs(1)
            if base.jpath == ():
                # ``where()`` on the resource itself: the typed plan has no value for the whole
                # resource (only its fields), so such a view reads the JSON instead.
                self.untyped_reasons.append("where() on the resource")
            if base.kind == "j1":
                cond = self.as_bool(self.node(args[0], base, base))
                return Val(f"(CASE WHEN {cond} THEN {base.sql} END)", "j1", base.ftype, jpath=base.jpath, tk=base.tk)
            var = self.fresh()
            item = Val(var, "j1", base.ftype, jpath=base.jpath, tk=base.tk)
            cond = self.as_bool(self.node(args[0], item, item))
            return Val(d.filter(self.as_list(base), var, cond), "jn", base.ftype, jpath=base.jpath, tk=base.tk)
        if fn in ("exists", "empty"):
            nargs(0, 1)
            if args:
                base = self.call("where", base, args, focus)
            ex = self.exists(base) if base.kind in ("j1", "jn") else f"({base.sql} IS NOT NULL)"
            return Val(ex if fn == "exists" else f"(NOT {ex})", "b")
        if fn == "count":
            nargs(0)
            return Val(f"CAST({d.size(self.as_list(base))} AS BIGINT)", "n", "integer")
        if fn == "first":
            nargs(0)
            if base.kind == "jn":
                sql = d.first_non_null(base.nn_of) if base.nn_of else None
                return Val(sql or d.elem(base.sql, "0"), "j1", base.ftype, jpath=base.jpath, tk=base.tk)
            return base
        if fn == "last":
            nargs(0)
            if base.kind == "jn":
                return Val(d.last(base.sql), "j1", base.ftype, jpath=base.jpath, tk=base.tk)
            return base
        if fn == "not":
            nargs(0)
            return Val(f"(NOT {self.as_bool(base)})", "b")
        if fn == "iif":
            nargs(2, 3)
            self.untyped_reasons.append("iif()")
            cond = self.as_bool(self.node(args[0], focus, base))
            yes = self.node(args[1], focus, base)
            no = self.node(args[2], focus, base) if len(args) == 3 else Val(d.null_json, "j1")
            return Val(
                f"(CASE WHEN {cond} THEN {self.as_json1(yes)} ELSE {self.as_json1(no)} END)",
                "j1",
                yes.ftype if yes.ftype == no.ftype else None,
            )
        if fn == "extension":
            nargs(1)
            url = self.node(args[0], focus, focus)
            if url.kind != "s":
                raise _ExprError("extension() needs a url string")
            ext = self.member(base, "extension")
            if ext.ftype is None:
                ext = Val(ext.sql, ext.kind, "Extension", jpath=ext.jpath, tk=ext.tk)
            var = self.fresh()
            item = Val(var, "j1", "Extension", jpath=ext.jpath, tk=ext.tk)
            cond = f"({self.as_text(self.member(item, 'url'))} = {url.sql})"
            return Val(d.filter(self.as_list(ext), var, cond), "jn", "Extension", jpath=ext.jpath, tk=ext.tk)
        if fn == "join":
            nargs(0, 1)
            sep = self.as_text(self.node(args[0], focus, focus)) if args else d.lit_str("")
            var = self.fresh()
            items = self.as_list(base)
            self._whole(base)
            texts = d.transform(items, var, d.text(var, base.tk))
            # The SQL on FHIR test suite (fhirpath.json "string join") wants '' for an empty
            # collection, so a missing list joins to '' too (DuckDB gives NULL for a NULL list).
            return Val(f"coalesce({d.join(texts, sep)}, '')", "s", "string")
        if fn == "ofType":
            nargs(1)
            if not isinstance(args[0], (fp.Name, fp.Member)):
                raise _ExprError("ofType() needs a type name")
            tname = args[0].name
            if base.choice is not None:
                self._bare_choices -= 1
                parent, elem = base.choice
                match = [
                    t for t in elem.types if t.lower() == tname.lower() or t.lower() == tname.rsplit(".", 1)[-1].lower()
                ]
                if not match:
                    raise _ExprError(f"{elem.name} cannot be of type {tname} (it can be {', '.join(elem.types)})")
                t = match[0]
                return self.navigate(parent, elem.json_key(t), False, t)
            if base.ftype is not None and base.ftype.lower() == tname.lower():
                return base
            if base.ftype in ("Resource", None) and tname[:1].isupper():
                self.untyped_reasons.append("ofType() on resources")
                var = self.fresh()
                cond = f"({d.text(d.child_one(var, 'resourceType'), None)} = {d.lit_str(tname)})"
                return Val(d.filter(self.as_list(base), var, cond), "jn", tname)
            return Val(d.empty_list, "jn")
        if fn == "getResourceKey":
            nargs(0)
            root = focus
            if root.jpath is None:
                j = self.as_json1(root)
                key = f"({d.text(d.child_one(j, 'resourceType'), None)} || '/' || {d.text(d.child_one(j, 'id'), None)})"
                return Val(key, "s", "string")
            rt = self.navigate(root, "resourceType", False, "string")
            rid = self.navigate(root, "id", False, "string")
            return Val(f"({self.as_text(rt)} || '/' || {self.as_text(rid)})", "s", "string")
        if fn == "getReferenceKey":
            nargs(0, 1)
            want = None
            if args:
                if not isinstance(args[0], fp.Name):
                    raise _ExprError("getReferenceKey() takes a resource type name")
                want = args[0].name
            return self._reference_key(base, want)
        if fn in ("lowBoundary", "highBoundary"):
            return self._boundary(fn, base, args)
        raise _ExprError(f"unknown function {fn}() (supported: {', '.join(SUPPORTED_FUNCTIONS)})")

    def _boundary(self, fn: str, base: Val, args: tuple) -> Val:
        d = self.d
        if len(args) > 1:
            raise _ExprError(f"{fn}() takes 0 or 1 argument(s), not {len(args)}")
        kind = boundary.kind_of(base.ftype)
        if kind is None:
            what = "a Quantity (take it of its value: value.lowBoundary())" if base.ftype == "Quantity" else None
            what = what or (f"a {base.ftype} value" if base.ftype else "a value of unknown type (use ofType())")
            raise _ExprError(f"{fn}() needs a decimal, integer, date, dateTime or time, not {what}")
        default, allowed = boundary.PRECISIONS[kind]
        precision = default
        if args:
            arg = args[0]
            if not (isinstance(arg, fp.Literal) and arg.kind == "integer" and arg.value in allowed):
                raise _ExprError(f"{fn}() of a {kind}: the precision must be one of {', '.join(map(str, allowed))}")
            precision = int(arg.value)
        if kind == "decimal" and base.kind != "n":
            # The digits as written decide the boundary (1.0 is not 1): a typed read would hold a
            # DOUBLE, so the view reads the JSON text.
            self.untyped_reasons.append(f"{fn}() of a decimal")
        high = fn == "highBoundary"
        out_kind = "n" if kind == "decimal" else "s"
        ftype = "decimal" if kind == "decimal" else kind
        if base.kind != "jn":
            return Val(boundary.boundary_sql(d, self.as_text(base), kind, high, precision), out_kind, ftype)
        var, var2 = self.fresh(), self.fresh()
        self._whole(base)
        value = boundary.boundary_sql(d, d.text(var, base.tk), kind, high, precision)
        as_json = d.json_of_num(value) if kind == "decimal" else d.json_of_text(value)
        mapped = d.transform(base.nn_of or base.sql, var, as_json)
        return Val(d.filter(mapped, var2, f"{var2} IS NOT NULL"), "jn", ftype, nn_of=mapped)

    def _reference_key(self, base: Val, want: str | None) -> Val:
        d = self.d
        pattern = (
            _REF_PATTERN
            if want is None
            else f"({re.escape(want)}/[A-Za-z0-9.\\-]{{1,64}})(/_history/[A-Za-z0-9.\\-]{{1,64}})?"
        )

        def key_of(x: Val) -> str:
            ref = self.as_text(self.navigate(x, "reference", False, "string"))
            if want is None:
                return f"(CASE WHEN {d.regex_match(ref, pattern)} THEN {d.regex_extract(ref, pattern)} END)"
            # With the type known, plain string functions (several times faster than a regex per
            # row): "Type/id" or "Type/id/_history/v"; anything else (absolute, contained, urn:) no key.
            prefix = f"{want}/"
            n = len(prefix)
            fast = d.reference_key(ref, prefix)
            if fast:
                return fast
            rest = f"substr({ref}, {n + 1})"
            slash = f"instr({rest}, '/')"
            return (
                f"(CASE WHEN substr({ref}, 1, {n}) = {d.lit_str(prefix)} AND length({rest}) > 0 "
                f"AND ({slash} = 0 OR substr({rest}, {slash}, 10) = '/_history/') "
                f"THEN {d.lit_str(prefix)} || (CASE WHEN {slash} = 0 THEN {rest} ELSE substr({rest}, 1, {slash} - 1) END) END)"
            )

        if base.kind == "j1":
            return Val(key_of(base), "s", "string")
        var = self.fresh()
        var2 = self.fresh()
        # key_of(NULL) is NULL and NULL keys are dropped: the base's NULLs need no dropping first.
        keys = d.transform(
            base.nn_of or base.sql,
            var,
            d.json_of_text(key_of(Val(var, "j1", base.ftype, jpath=base.jpath, tk=base.tk))),
        )
        return Val(
            d.filter(keys, var2, f"{var2} IS NOT NULL"),
            "jn",
            "string",
            tk="VARCHAR" if self.structure is not None else None,
            nn_of=keys,
        )

    # --- select tree --------------------------------------------------------------------------
    def column(self, col: dict, focus: Val) -> tuple[Column, str]:
        d = self.d
        name = col.get("name")
        path = col.get("path")
        if not isinstance(name, str) or not _COLUMN_NAME.match(name):
            raise ViewError(
                f"column {name!r}: a column name must start with a letter and hold only letters, digits and _"
            )
        if not isinstance(path, str):
            raise ViewError(f"column {name!r}: no FHIRPath 'path'")
        try:
            v = self.expr(path, focus)
        except _ExprError as exc:
            raise ViewError(f"column {name!r}, expression {path!r}: {exc}") from None
        declared = col.get("type")
        if declared is not None and not isinstance(declared, str):
            raise ViewError(f"column {name!r}: 'type' must be a FHIR type name (a string), not {declared!r}")
        ftype = declared or v.ftype
        if ftype is None:
            ftype = {"b": "boolean", "n": "decimal"}.get(v.kind)
        sql_type = SQL_TYPES[ftype][0] if ftype in SQL_TYPES else "VARCHAR"
        if v.kind == "n" and ftype == "integer":
            sql_type = "BIGINT"
        collection = bool(col.get("collection"))
        if collection:
            var = self.fresh()
            expr = d.non_null_list(
                d.transform(self.as_list(v), var, self.cast_text(Val(var, "j1", jpath=v.jpath, tk=v.tk), sql_type))
            )
        else:
            expr = self.cast_text(v, sql_type)
            if v.kind == "jn":
                # The specification makes several values in a column without ``collection: true``
                # an error, not a silent choice of one: checked per row, as a path that can give
                # many values (``name.family``) gives one for most resources.
                msg = f"column {name!r}, expression {path!r}: several values; use first() or collection: true"
                expr = f"(CASE WHEN {d.size(self.as_list(v))} > 1 THEN {d.fail(msg)} ELSE {expr} END)"
        return Column(name, sql_type, collection), expr

    def cast_text(self, v: Val, sql_type: str) -> str:
        d = self.d
        if sql_type == "BOOLEAN":
            if v.kind == "b":
                return v.sql
            return d.try_cast(self.as_text(v), "BOOLEAN")
        if sql_type in ("BIGINT", "DOUBLE"):
            if v.kind == "n":
                return f"CAST({v.sql} AS {sql_type})"
            return d.try_cast(self.as_text(v), sql_type)
        return f"CAST({self.as_text(v)} AS {d.sql_type('VARCHAR')})"

    def select(self, node: dict, focus: Val) -> _Part:
        d = self.d
        iterators = [k for k in ("forEach", "forEachOrNull", "repeat") if k in node]
        if len(iterators) > 1:
            raise ViewError(
                f"a select may have only one of forEach, forEachOrNull, repeat (found {', '.join(iterators)})"
            )
        if not iterators:
            return self.body(node, focus)
        kind = iterators[0]
        try:
            if kind == "repeat":
                paths = node["repeat"]
                if not isinstance(paths, list) or not paths:
                    raise _ExprError("repeat needs a list of paths")
                coll = self.repeat(paths, focus)
                expr_text = ", ".join(paths)
            else:
                expr_text = node[kind]
                coll = self.expr(expr_text, focus)
        except _ExprError as exc:
            raise ViewError(f"{kind} {node[kind]!r}: {exc}") from None
        var = self.fresh()
        ivar = self.fresh()
        outer_index, self.row_index = self.row_index, d.index0(ivar)
        try:
            inner = self.body(node, Val(var, "j1", coll.ftype, jpath=coll.jpath, tk=coll.tk))
        finally:
            self.row_index = outer_index
        items = self.as_list(coll)
        if kind == "forEachOrNull":
            items = f"(CASE WHEN {d.size(items)} = 0 THEN {d.single(d.null_json)} ELSE {items} END)"
        if self.wants_row_index:
            return _Part(inner.columns, rows=d.flatten(d.transform_indexed(items, var, ivar, self.rows_of(inner))))
        return _Part(inner.columns, rows=d.flatten(d.transform(items, var, self.rows_of(inner))))

    def repeat(self, paths: list[str], focus: Val) -> Val:
        """The items reached by following ``paths`` again and again from ``focus``, in pre-order
        (an item, then its descendants, then its next sibling: the order ``%rowIndex`` counts in).

        SQL has no recursion over JSON, so the traversal is unrolled :data:`REPEAT_DEPTH` levels as
        nested transforms: each level maps an item to [item] + its children's subtrees. Each path is
        followed from every item, so with several paths one may not exist on some items
        (``answer.item`` on the resource in ``repeat: [item, answer.item]``): there it gives nothing.
        A path that exists nowhere is still an error."""
        d = self.d
        errors: dict[str, _ExprError] = {}
        resolved: set[str] = set()
        ftypes: set[str | None] = set()

        def children(item: Val) -> tuple[str, Val]:
            found, kinds, last = [], set(), None
            for p in paths:
                try:
                    v = self.expr(p, item)
                except _ExprError as exc:
                    if len(paths) == 1:
                        raise
                    errors.setdefault(p, exc)
                    continue
                resolved.add(p)
                kinds.add(v.ftype)
                found.append(self.as_list(v))
                last = v
            ftypes.update(kinds)
            like = Val(
                "",
                "jn",
                next(iter(kinds)) if len(kinds) == 1 else None,
                jpath=last.jpath if last is not None and len(paths) == 1 else None,
                tk=last.tk if last is not None and len(paths) == 1 else None,
            )
            return (d.concat(*found) if found else d.empty_list), like

        def subtree(level: int, items: str, like: Val) -> str:
            if level == REPEAT_DEPTH:
                return items
            var = self.fresh()
            kids, kids_like = children(Val(var, "j1", like.ftype, jpath=like.jpath, tk=like.tk))
            return d.flatten(d.transform(items, var, d.concat(d.single(var), subtree(level + 1, kids, kids_like))))

        top, like = children(focus)
        result = subtree(1, top, like)
        for p in paths:
            if p not in resolved:
                raise errors[p]
        if len(paths) > 1:
            self.untyped_reasons.append("repeat over several paths")
        if self.structure is None and len(paths) == 1:
            self.untyped_reasons.append("repeat")  # levels have different structures: keep JSON
        return Val(result, "jn", next(iter(ftypes)) if len(ftypes) == 1 else None)

    def body(self, node: dict, focus: Val) -> _Part:
        d = self.d
        parts: list[_Part] = []
        for key in node:
            if key == "column":
                cols, flat = [], {}
                for col in node["column"] or []:
                    c, expr = self.column(col, focus)
                    cols.append(c)
                    flat[c.name] = expr
                parts.append(_Part(cols, flat=flat))
            elif key == "select":
                for sub in node["select"] or []:
                    parts.append(self.select(sub, focus))
            elif key == "unionAll":
                branches = [self.select(b, focus) for b in node["unionAll"] or []]
                if not branches:
                    continue
                names = [c.name for c in branches[0].columns]
                for b in branches[1:]:
                    if [c.name for c in b.columns] != names:
                        raise ViewError(
                            f"unionAll branches must have the same columns in the same order: "
                            f"{names} and {[c.name for c in b.columns]}"
                        )
                    for c0, c1 in zip(branches[0].columns, b.columns):
                        if c0.sql_type != c1.sql_type or c0.collection != c1.collection:
                            raise ViewError(f"unionAll column {c0.name!r} has different types in its branches")
                parts.append(_Part(branches[0].columns, rows=d.concat(*[self.rows_of(b) for b in branches])))
            elif key not in ("forEach", "forEachOrNull", "repeat", "description"):
                raise ViewError(f"unknown select key {key!r}")
        columns = [c for p in parts for c in p.columns]
        flats = [p.flat for p in parts if p.flat is not None]
        if len(flats) == len(parts):
            return _Part(columns, flat={k: v for flat in flats for k, v in flat.items()})
        # Cross product of the parts: nested transforms, innermost builds the struct.
        fields: list[tuple[str, str]] = []
        loops: list[tuple[str, str]] = []
        for p in parts:
            if p.flat is not None:
                fields += list(p.flat.items())
            else:
                var = self.fresh()
                loops.append((var, self.rows_of(p)))
                fields += [(c.name, d.field(var, c.name)) for c in p.columns]
        order = [c.name for c in columns]
        by_name = dict(fields)
        expr = d.single(d.struct([(n, by_name[n]) for n in order]))
        for var, rows in reversed(loops):
            expr = d.flatten(d.transform(rows, var, expr))
        return _Part(columns, rows=expr)

    def rows_of(self, part: _Part) -> str:
        if part.rows is not None:
            return part.rows
        if part.flat is None:
            raise ValueError("a _Part holds either flat columns or rows, not neither")
        return self.d.single(self.d.struct(list(part.flat.items())))

    # --- the view -----------------------------------------------------------------------------
    def compile(self) -> CompiledView:
        d = self.d
        view = self.view
        if not isinstance(view, dict):
            raise ViewError("a ViewDefinition must be a JSON object")
        if view.get("resourceType") not in (None, "ViewDefinition"):
            raise ViewError(f"expected a ViewDefinition, got a {view.get('resourceType')}")
        resource = view.get("resource")
        if not isinstance(resource, str) or not resource:
            raise ViewError("the ViewDefinition has no 'resource' (the FHIR resource type it reads)")
        known = schema.is_resource_type(resource)
        if known is False:
            raise ViewError(f"'resource': {resource!r} is not a FHIR R4 resource type")
        for c in view.get("constant") or []:
            name = c.get("name")
            values = [(k, v) for k, v in c.items() if k.startswith("value")]
            if not name or len(values) != 1:
                raise ViewError(f"constant {name!r} needs a name and exactly one value[x]")
            key, value = values[0]
            self.view_constants[name] = value
            t = key[5:6].lower() + key[6:]
            if t == "boolean" or isinstance(value, bool):  # a JSON true/false is a boolean whatever value[x] says
                self.constants[name] = Val("TRUE" if value else "FALSE", "b", t)
            elif t in ("integer", "positiveInt", "unsignedInt", "integer64"):
                self.constants[name] = Val(str(int(value)), "n", "integer")
            elif t == "decimal":
                self.constants[name] = Val(f"CAST({float(value)!r} AS DOUBLE)", "n", "decimal")
            else:
                self.constants[name] = Val(d.lit_str(str(value)), "s", "string")
        selects = view.get("select")
        if not isinstance(selects, list) or not selects:
            raise ViewError("the ViewDefinition has no 'select'")
        root = Val(
            "t.resource" if self.structure is None else "t.__root__",
            "j1",
            resource if known else None,
            jpath=() if known else None,
            tk="struct" if self.structure is not None else None,
        )
        part = self.body({"select": selects}, root)
        seen: set[str] = set()
        for c in part.columns:
            if c.name in seen:
                raise ViewError(f"column {c.name!r} appears more than once in the view")
            seen.add(c.name)
        if known:
            conditions = [
                f"{self.as_text(self.navigate(root, 'resourceType', False, 'string'))} = {d.lit_str(resource)}"
            ]
        else:
            conditions = [f"{d.text(d.child_one('t.resource', 'resourceType'), None)} = {d.lit_str(resource)}"]
        for w in view.get("where") or []:
            path = w.get("path")
            try:
                if not isinstance(path, str):
                    raise _ExprError("no FHIRPath 'path'")
                cond = self.expr(path, root)
                # A where must give a boolean (the specification's validate tests): a primitive of
                # another type (``name.family``) is an error, not "exists". An element of a
                # complex type still counts as existence, as FHIRPath's singleton rule has it.
                # (FHIR primitive type names start with a lower-case letter; complex ones do not.)
                primitive = cond.ftype is not None and cond.ftype[:1].islower() and "." not in cond.ftype
                if cond.kind in ("s", "n") or (cond.kind in ("j1", "jn") and primitive and cond.ftype != "boolean"):
                    raise _ExprError(f"gives a {cond.ftype or 'non-boolean'} value, not a boolean")
                conditions.append(f"coalesce({self.as_bool(cond)}, FALSE)")
            except _ExprError as exc:
                raise ViewError(f"where {path!r}: {exc}") from None
        where = "WHERE " + " AND ".join(conditions)
        if part.flat is not None:
            cols = ", ".join(f"{expr} AS {d.quote_ident(n)}" for n, expr in part.flat.items())
            template = f"SELECT {cols} FROM __SOURCE__ __WHERE__"
        else:
            template = d.explode_rows(self.rows_of(part), [c.name for c in part.columns])
        cv = CompiledView(view.get("name") or resource.lower(), resource, part.columns, template, d.name)
        cv._where = where
        cv._wrap = d.source_wrapper
        cv.conditions = tuple(conditions)
        cv.flat = tuple(part.flat.items()) if part.flat is not None else None
        cv.rows = part.rows
        cv.structure = self.structure
        prefilter = []
        for w in view.get("where") or []:
            for alternatives in required_literals(self._substituted(fp.parse(w["path"]))):
                prefilter.append(
                    "(" + " OR ".join(d.contains("resource", f'"{lit}"') for lit in sorted(alternatives)) + ")"
                )
        cv._prefilter = tuple(prefilter)
        if self._bare_choices:
            self.untyped_reasons.append("a choice element without ofType()")
        return cv

    def _substituted(self, node):
        """``node`` with string constants (%name) replaced by their literal (for the prefilter)."""
        if isinstance(node, fp.Const):
            c = self.view_constants.get(node.name)
            return fp.Literal("string", c) if isinstance(c, str) else node
        if isinstance(node, fp.BinOp):
            return fp.BinOp(node.op, self._substituted(node.left), self._substituted(node.right))
        if isinstance(node, fp.Call):
            return fp.Call(
                node.base if node.base is None else self._substituted(node.base),
                node.fn,
                tuple(self._substituted(a) for a in node.args),
            )
        if isinstance(node, fp.Member):
            return fp.Member(self._substituted(node.base), node.name)
        return node


_PLAIN_LITERAL = re.compile(r"^[A-Za-z0-9 :/._\-]{3,200}$")


def required_literals(node) -> list[set[str]]:
    """Strings that must appear in a resource's JSON text for ``node`` (a where path) to be true.

    A conjunction of alternatives: each set holds strings of which at least one must occur. Only
    ``=`` against a plain string literal (letters, digits, ``:/._-`` and space, which JSON writes
    as they are) counts, under ``and``, ``or`` (both sides), ``where()``, ``exists()`` and member
    access; anything else requires nothing. Used to skip resources without parsing their JSON.
    """
    if isinstance(node, fp.BinOp):
        if node.op == "and":
            return required_literals(node.left) + required_literals(node.right)
        if node.op == "or":
            left, right = required_literals(node.left), required_literals(node.right)
            if left and right:
                return (
                    [set().union(*left[:1], *right[:1])]
                    if len(left) == 1 and len(right) == 1
                    else [set().union(left[0], right[0])]
                )
            return []
        if node.op == "=":
            for side in (node.left, node.right):
                if isinstance(side, fp.Literal) and side.kind == "string" and _PLAIN_LITERAL.match(str(side.value)):
                    return [{str(side.value)}]
        return []
    if isinstance(node, fp.Call) and node.fn in ("where", "exists") and node.args:
        return required_literals(node.args[0]) + (required_literals(node.base) if node.base is not None else [])
    if isinstance(node, fp.Call) and node.fn == "exists" and node.base is not None:
        return required_literals(node.base)
    if isinstance(node, fp.Member):
        return required_literals(node.base)
    return []


def _node_tk(node: dict) -> str | None:
    """How a typed value is held: "struct", "VARCHAR" (every primitive is read as its JSON text,
    so a malformed number is NULL on conversion instead of failing the scan), "BOOL" (a boolean's
    text), or None: a complex value used whole, kept as JSON."""
    if node["children"]:
        return "struct"
    ft = node.get("ftype")
    if ft in schema.PRIMITIVES:
        return "BOOL" if ft == "boolean" else "VARCHAR"
    return None


def _duck_type(node: dict) -> str:
    if node["children"]:
        inner = "STRUCT(" + ", ".join(f'"{k}" {_duck_type(c)}' for k, c in node["children"].items()) + ")"
    else:
        inner = "JSON" if _node_tk(node) is None else "VARCHAR"
    return inner + "[]" if node.get("array") else inner


def read_json_columns(structure: dict) -> str:
    """The ``columns`` argument of DuckDB's ``read_json`` for a typed view: the top-level keys."""
    return "{" + ", ".join(f"'{k}': '{_duck_type(c)}'" for k, c in structure["children"].items()) + "}"


def _typed_ok(node: dict) -> bool:
    if node.get("whole") and node["children"]:
        return False
    return all(_typed_ok(c) for c in node["children"].values())


def _merge_tree(into: dict, other: dict) -> None:
    into["array"] = into["array"] or other["array"]
    if other.get("whole"):
        into["whole"] = True
    if into.get("ftype") is None:
        into["ftype"] = other.get("ftype")
    for k, child in other["children"].items():
        if k in into["children"]:
            _merge_tree(into["children"][k], child)
        else:
            into["children"][k] = copy.deepcopy(child)


def compile_shared(views: list[dict]) -> list[CompiledView] | None:
    """Compile views of one resource type to read one typed structure (the union of the paths
    they all read), so a single ``read_json`` scan can feed them all (:func:`shared_scan_sql`).

    Parsing the JSON is most of a view's cost, and the reports read several views of the same
    resource (groupings and GBO scores are both Observations): one parse instead of one per view.
    None when any of them cannot run typed, or they read different resource types.
    """
    firsts = [_Compiler(v, "duckdb") for v in views]
    compiled = [c.compile() for c in firsts]
    if len({c.resource for c in compiled}) != 1:
        return None
    merged: dict = {"children": {}, "array": False, "ftype": None}
    for c in firsts:
        if c.untyped_reasons or not c.tree["children"]:
            return None
        _merge_tree(merged, c.tree)
    if not _typed_ok(merged):
        return None
    out = []
    for v in views:
        cv = _Compiler(v, "duckdb", structure=merged).compile()
        cv.typed = True
        out.append(cv)
    return out


def _shared_layout(views: list[CompiledView]) -> tuple[list[tuple[str, str, list[int]]], list[dict[str, str]]]:
    """The columns of a shared scan table: (alias, SQL, views using it) for each distinct column
    expression, and per view {column name: alias}. A row-list (forEach/unionAll) view gets one
    column ``r<i>`` holding its list of row structs (name ``""`` in its mapping)."""
    exprs: dict[str, tuple[str, list[int]]] = {}
    mapping: list[dict[str, str]] = []
    for i, v in enumerate(views):
        if v.flat is not None:
            m = {}
            for name, sql in v.flat:
                alias, users = exprs.setdefault(sql, (f"c{len(exprs)}", []))
                users.append(i)
                m[name] = alias
            mapping.append(m)
        elif v.rows is not None:
            alias, users = exprs.setdefault(v.rows, (f"r{i}", []))
            users.append(i)
            mapping.append({"": alias})
        else:
            raise ValueError(f"view {v.name!r} holds neither columns nor rows: not from compile_shared")
    return [(alias, sql, users) for sql, (alias, users) in exprs.items()], mapping


def shared_scan_sql(views: list[CompiledView], files: str) -> str:
    """One query over ``files`` (a DuckDB list of NDJSON paths) giving, per resource that any of
    ``views`` (from :func:`compile_shared`) keeps, a flag ``__w<i>`` per view (does view i keep
    it) and one column per distinct column expression of the views (:func:`_shared_layout`).

    Each expression is computed once per row, for the rows of the views that use it (DuckDB
    evaluates a CASE branch only for the rows it selects), and a column two views share (the
    episode or time of an Observation) is computed and stored once: no row holds empty slots
    for every column of every other view."""
    from .dialects import DuckTyped

    structure = views[0].structure
    if structure is None:
        raise ValueError("shared_scan_sql takes the views compile_shared gives (they hold the typed structure)")
    layout, _mapping = _shared_layout(views)
    flags = [f'coalesce({" AND ".join(v.conditions)}, FALSE) AS "__w{i}"' for i, v in enumerate(views)]
    cols = [f'"__w{i}"' for i in range(len(views))]
    for alias, sql, users in layout:
        if len(set(users)) == len(views):
            cols.append(f'{sql} AS "{alias}"')
        else:
            when = " OR ".join(f't."__w{i}"' for i in sorted(set(users)))
            cols.append(f'(CASE WHEN {when} THEN {sql} END) AS "{alias}"')
    source = DuckTyped(structure).source_wrapper(files)
    flagged = f"(SELECT *, {', '.join(flags)} FROM {source} AS t)"
    keep = " OR ".join(f't."__w{i}"' for i in range(len(views)))
    return f"SELECT {', '.join(cols)} FROM {flagged} AS t WHERE {keep}"


def shared_view_sql(views: list[CompiledView], i: int, table: str) -> str:
    """View i's rows from the table :func:`shared_scan_sql` made for ``views``."""
    view = views[i]
    names = [c.name for c in view.columns]
    mapping = _shared_layout(views)[1][i]
    if view.flat is not None:
        cols = ", ".join(f'"{mapping[n]}" AS "{n}"' for n in names)
        return f'SELECT {cols} FROM "{table}" WHERE "__w{i}"'
    cols = ", ".join(f'r."{n}" AS "{n}"' for n in names)
    return f'SELECT {cols} FROM (SELECT unnest("{mapping[""]}") AS r FROM "{table}" WHERE "__w{i}")'


_ITERATORS = ("forEach", "forEachOrNull", "repeat", "unionAll")


def _plain(node: object) -> bool:
    """A select of plain columns and selects only: it gives exactly one row per resource."""
    if not isinstance(node, dict) or any(k in node for k in _ITERATORS):
        return False
    subs = node.get("select") or []
    return isinstance(subs, list) and all(_plain(s) for s in subs)


def only_columns(view: dict, names: Iterable[str]) -> dict:
    """``view`` computing only the columns ``names``: the same rows, fewer columns.

    A report reads a few columns of a view, and every column computed costs time and memory for
    every resource, so reports compile just what they read. Only a view whose selects are plain
    column lists (no forEach, forEachOrNull, repeat or unionAll) is cut: each of its selects gives
    one row per resource whatever columns it keeps, so the rows cannot change. Any other view,
    or a cut that would keep no column, gives ``view`` unchanged. Names the view lacks are ignored
    (the SQL that reads them then fails, naming the column).
    """
    selects = view.get("select") if isinstance(view, dict) else None
    if not isinstance(selects, list) or not all(_plain(s) for s in selects):
        return view
    keep = set(names)

    def cut(node: dict) -> dict | None:
        out: dict = {}
        for key, value in node.items():
            if key == "column":
                cols = [c for c in value or [] if isinstance(c, dict) and c.get("name") in keep]
                if cols:
                    out[key] = cols
            elif key == "select":
                subs = [x for x in (cut(s) for s in value or []) if x is not None]
                if subs:
                    out[key] = subs
            else:
                out[key] = value
        return out if ("column" in out or "select" in out) else None

    kept = [x for x in (cut(s) for s in selects) if x is not None]
    return {**view, "select": kept} if kept else view


def compile_view(view: dict, engine: str = "duckdb", typed: bool = True) -> CompiledView:
    """Compile ``view`` for ``engine`` ("duckdb" or "spark"); raises :class:`ViewError`.

    On DuckDB, when every path the view reads is known from the R4 schema, a second pass compiles
    it in *typed* mode: each resource is parsed once by ``from_json`` into a struct holding just
    those paths, and FHIRPath becomes struct and list operations (about ten times faster than a
    JSON function call per step). Otherwise the JSON-function plan of the first pass is used.
    """
    first = _Compiler(view, engine)
    compiled = first.compile()
    if (
        engine != "duckdb"
        or not typed
        or first.untyped_reasons
        or not first.tree["children"]
        or not _typed_ok(first.tree)
    ):
        return compiled
    structure = first.tree
    second = _Compiler(view, engine, structure=structure).compile()
    second.typed = True
    return second
