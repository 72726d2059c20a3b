"""FHIRPath invariants compiled to Python closures.

fhirpathpy walks its AST for every evaluation (~130 µs per invariant), which alone would cap the
validator far below its throughput target. Invariants use a small, typed subset of FHIRPath, so we
compile that subset once into nested closures over plain JSON values, using fhirpathpy's own parser
for the AST and the R4 StructureDefinitions for types. Anything outside the subset raises
:class:`Unsupported` at compile time and the invariant falls back to ``fhirpathpy.compile`` (correct,
slow). A hypothesis test checks that compiled and fhirpathpy results agree for every invariant we
ship.

Typing is what makes this cheap and faithful: ``value.ofType(integer)`` on an Observation becomes a
direct lookup of the JSON key ``valueInteger``. Each compiled sub-expression is a list of
*alternatives* ``(TypeRef, fn)``: one per possible FHIR type of its result, each with a function
``fn(focus, env) -> list`` evaluated from the expression's original focus. ``ofType``/``is``/``as``
select alternatives at compile time, so values never carry type tags at run time.

Semantics follow the FHIRPath N1 spec where fhirpathpy does, and fhirpathpy where the two differ
on something our invariants could hit (``all()`` needs exactly ``[true]``; ``extension(url)``
returns the first match per element; ``not()`` of a non-boolean singleton is ``false``).
Primitive extensions without a value (``_status`` alone) are not visible to compiled paths.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from fhirpathpy.parser import parse as _fp_parse

DATE_TYPES = frozenset({"date", "dateTime", "instant", "System.Date", "System.DateTime"})
STRING_TYPES = frozenset(
    {
        "string",
        "code",
        "id",
        "uri",
        "url",
        "canonical",
        "markdown",
        "oid",
        "uuid",
        "base64Binary",
        "xhtml",
        "System.String",
    }
)
NUMBER_TYPES = frozenset({"integer", "decimal", "unsignedInt", "positiveInt", "System.Integer", "System.Decimal"})
BOOL = ("System.Boolean", None)
INT = ("System.Integer", None)
STR = ("System.String", None)

#: Functions fhirpathpy 2.2.4 does not implement: an invariant using one cannot fall back.
FHIRPATHPY_MISSING = frozenset(
    {"hasValue", "memberOf", "resolve", "conformsTo", "htmlChecks", "getValue", "subsumes", "subsumedBy", "htmlchecks"}
)


class Unsupported(Exception):
    """The expression uses something outside the compiled subset."""


class EvalError(Exception):
    """Evaluation failed (e.g. a singleton was expected but a collection found)."""


def parse(expression: str) -> dict:
    return _fp_parse(expression)


def functions_used(ast: dict) -> set[str]:
    out = set()

    def visit(n):
        if n.get("type") == "Functn":
            out.add(n["children"][0]["text"])
        for c in n.get("children", []):
            visit(c)

    visit(ast)
    return out


def _ident(focus, env):
    return focus


def _nav(items, key):
    out = []
    for it in items:
        if type(it) is dict:
            v = it.get(key)
            if v is None:
                continue
            if type(v) is list:
                for x in v:
                    if x is not None:
                        out.append(x)
            else:
                out.append(v)
    return out


def _concat(fns):
    if len(fns) == 1:
        return fns[0]

    def run(focus, env):
        out = []
        for f in fns:
            out.extend(f(focus, env))
        return out

    return run


def to_bool(coll):
    """Singleton evaluation of a collection as Boolean: None = empty."""
    n = len(coll)
    if n == 0:
        return None
    if n > 1:
        raise EvalError("expected a single boolean, found a collection")
    v = coll[0]
    if v is True or v is False:
        return v
    return True


def verdict(coll) -> bool:
    """Pass/fail of an invariant's result, as the HL7 validator reads it (empty = fail)."""
    b = to_bool(coll)
    return b is True


# ---- date comparison with FHIRPath precision semantics ---------------------------------------
_DT_RX = re.compile(
    r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?"
    r"(Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


def _date_parts(s):
    m = _DT_RX.match(s.lstrip("@"))
    if not m:
        raise EvalError(f"'{s}' is not a date/time")
    y, mo, d, h, mi, sec, frac, tz = m.groups()
    if h is None:
        return tuple(int(x) for x in (y, mo, d) if x is not None)
    dt = datetime(int(y), int(mo), int(d), int(h), int(mi), int(sec or 0), int((frac or "0")[:6].ljust(6, "0")))
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        dt -= sign * timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6]))
    prec = 5 if sec is None else 6
    parts = (dt.year, dt.month, dt.day, dt.hour, dt.minute) + ((dt.second, dt.microsecond) if prec == 6 else ())
    return parts


def compare_dates(a: str, b: str):
    """-1/0/1, or None when precision differs and the common part is equal."""
    pa, pb = _date_parts(a), _date_parts(b)
    n = min(len(pa), len(pb))
    if pa[:n] != pb[:n]:
        return -1 if pa[:n] < pb[:n] else 1
    if len(pa) != len(pb) and not (min(len(pa), len(pb)) >= 6):
        return None
    return (pa > pb) - (pa < pb)


# ---- the compiler ----------------------------------------------------------------------------
class Compiler:
    def __init__(self, type_index: dict, resource_types: set[str]):
        self.idx = type_index
        self.resource_types = resource_types

    def compile(self, ast: dict, type_path: str, resource_type: str | None = None):
        """Closure ``fn(focus_list, env) -> list`` for the whole expression.

        ``env`` is ``(resource, root_resource)`` for ``%resource`` and ``%rootResource``.
        """
        self.resource_type = resource_type
        root = self._root_type(type_path)
        alts = self.expr(ast["children"][0], [(root, _ident)], this=[(root, _ident)])
        return _concat([f for _t, f in alts])

    def _root_type(self, type_path: str):
        if "." in type_path:
            return ("BackboneElement", type_path)
        if type_path in self.idx:
            return (type_path, type_path)
        return (type_path, None)

    # every method returns a list of (typeref, fn)
    def expr(self, n, inputs, this):
        t = n["type"]
        m = getattr(self, "x_" + t, None)
        if m is None:
            raise Unsupported(t)
        return m(n, inputs, this)

    def x_TermExpression(self, n, inputs, this):
        return self.expr(n["children"][0], inputs, this)

    def x_ParenthesizedTerm(self, n, inputs, this):
        return self.expr(n["children"][0], inputs, this)

    def x_InvocationTerm(self, n, inputs, this):
        return self.expr(n["children"][0], inputs, this)

    def x_InvocationExpression(self, n, inputs, this):
        left = self.expr(n["children"][0], inputs, this)
        return self.expr(n["children"][1], left, this)

    def x_ThisInvocation(self, n, inputs, this):
        return this

    def x_MemberInvocation(self, n, inputs, this):
        name = n["children"][0]["text"].strip("`")
        out = []
        for tr, fn in inputs:
            code, path = tr
            if name[0].isupper() and (name == code or name == path):
                out.append((tr, fn))  # "Observation.status": type name as the first step
                continue
            if path is None:
                raise Unsupported(f"navigation '{name}' into {code}")
            children = self.idx.get(path)
            if children is None or name not in children:
                raise Unsupported(f"{path} has no element '{name}'")
            for key, ccode, cpath in children[name]:
                if ccode == "Resource" or ccode in self.resource_types:
                    # a resource of unknown type: only existence and type tests are compiled
                    out.append((("Resource", None), _member(fn, key)))
                    continue
                out.append(((ccode, cpath), _member(fn, key)))
        if not out:
            raise Unsupported(f"'{name}' matches nothing")
        return out

    def x_LiteralTerm(self, n, inputs, this):
        lit = n["children"][0]
        lt = lit["type"]
        text = lit.get("text", "")
        if lt == "StringLiteral":
            val, tr = unescape_literal(text[1:-1]), STR
        elif lt == "BooleanLiteral":
            val, tr = text == "true", BOOL
        elif lt == "NumberLiteral":
            if "." in text:
                val, tr = Decimal(text), ("System.Decimal", None)
            else:
                val, tr = int(text), INT
        elif lt == "NullLiteral":
            return [(STR, lambda f, e: [])]
        elif lt == "DateTimeLiteral" or lt == "DateLiteral":
            val, tr = text.lstrip("@"), ("System.DateTime", None)
        else:
            raise Unsupported(lt)
        const = [val]
        return [(tr, lambda f, e: const)]

    def x_PolarityExpression(self, n, inputs, this):
        inner = self.expr(n["children"][0], inputs, this)
        if n["terminalNodeText"][0] != "-":
            return inner
        if len(inner) != 1 or inner[0][0][0] not in NUMBER_TYPES:
            raise Unsupported("polarity of non-number")
        f = inner[0][1]
        return [(inner[0][0], lambda fo, e: [-x for x in f(fo, e)])]

    def x_ExternalConstantTerm(self, n, inputs, this):
        name = n["children"][0]["children"][0]["text"].strip("`")
        if name in ("resource", "rootResource"):
            rt = self.resource_type if name == "resource" else None
            if rt is None:
                raise Unsupported(f"%{name}: type unknown at compile time")
            i = 0 if name == "resource" else 1
            return [((rt, rt), lambda f, e: [e[i]])]
        if name == "ucum":
            c = ["http://unitsofmeasure.org"]
            return [(STR, lambda f, e: c)]
        raise Unsupported(f"%{name}")

    def x_IndexerExpression(self, n, inputs, this):
        left = self.expr(n["children"][0], inputs, this)
        idx = self.expr(n["children"][1], inputs, this)
        if len(idx) != 1 or idx[0][0] != INT:
            raise Unsupported("non-integer index")
        fl, fi = _concat([f for _t, f in left]), idx[0][1]

        def run(f, e):
            i = fi(f, e)
            if not i:
                return []
            coll = fl(f, e)
            k = i[0]
            return coll[k : k + 1] if k >= 0 else []

        return [(left[0][0] if len(left) == 1 else ("?", None), run)]

    # -- operators ----------------------------------------------------------------------------
    def _both(self, n, inputs, this):
        a = self.expr(n["children"][0], inputs, this)
        b = self.expr(n["children"][1], inputs, this)
        return a, b, _concat([f for _t, f in a]), _concat([f for _t, f in b])

    def x_EqualityExpression(self, n, inputs, this):
        op = n["terminalNodeText"][0]
        a, b, fa, fb = self._both(n, inputs, this)
        if op not in ("=", "!="):
            raise Unsupported(op)
        for tr, _ in a + b:
            if tr[0] in DATE_TYPES and any(t[0] == "System.DateTime" for t, _ in a + b):
                raise Unsupported("date literal equality")
        neg = op == "!="

        def run(f, e):
            x, y = fa(f, e), fb(f, e)
            if not x or not y:
                return []
            if len(x) != len(y):
                return [neg]
            for i, j in zip(x, y):
                if not _eq(i, j):
                    return [neg]
            return [not neg]

        return [(BOOL, run)]

    def x_InequalityExpression(self, n, inputs, this):
        op = n["terminalNodeText"][0]
        a, b, fa, fb = self._both(n, inputs, this)
        ta = {t[0] for t, _ in a}
        tb = {t[0] for t, _ in b}
        if ta <= DATE_TYPES and tb <= DATE_TYPES:
            kind = "date"
        elif ta <= NUMBER_TYPES and tb <= NUMBER_TYPES:
            kind = "num"
        elif ta <= STRING_TYPES and tb <= STRING_TYPES:
            kind = "str"
        else:
            raise Unsupported(f"comparison of {ta} with {tb}")
        test = {"<": lambda c: c < 0, "<=": lambda c: c <= 0, ">": lambda c: c > 0, ">=": lambda c: c >= 0}[op]

        def run(f, e):
            x, y = fa(f, e), fb(f, e)
            if not x or not y:
                return []
            if len(x) > 1 or len(y) > 1:
                raise EvalError("comparison needs single values")
            p, q = x[0], y[0]
            if kind == "date":
                if type(p) is not str or type(q) is not str:
                    raise EvalError("date comparison of non-dates")
                c = compare_dates(p, q)
                if c is None:
                    return []
            elif kind == "num":
                if (
                    type(p) is bool
                    or type(q) is bool
                    or not isinstance(p, (int, float, Decimal))
                    or not isinstance(q, (int, float, Decimal))
                ):
                    raise EvalError("numeric comparison of non-numbers")
                c = (p > q) - (p < q)
            else:
                if type(p) is not str or type(q) is not str:
                    raise EvalError("string comparison of non-strings")
                c = (p > q) - (p < q)
            return [test(c)]

        return [(BOOL, run)]

    def _logic(self, n, inputs, this, op):
        _a, _b, fa, fb = self._both(n, inputs, this)
        # Short-circuit where the left side decides the result (false and X, false implies X,
        # true or X), as the FHIRPath spec allows and the HL7 validator does: tim-9's
        # ``offset.empty() or (when in (...))`` must not fail on two ``when`` values when there is
        # no offset. fhirpathpy evaluates both sides, so it differs only when the right side raises.
        stop = {_and: False, _implies: False, _or: True}.get(op, None)
        result_on_stop = [False] if op is _and else [True]

        def run(f, e):
            x = to_bool(fa(f, e))
            if x is stop and stop is not None:
                return result_on_stop
            y = to_bool(fb(f, e))
            r = op(x, y)
            return [] if r is None else [r]

        return [(BOOL, run)]

    def x_AndExpression(self, n, inputs, this):
        return self._logic(n, inputs, this, _and)

    def x_OrExpression(self, n, inputs, this):
        op = n["terminalNodeText"][0]
        return self._logic(n, inputs, this, _or if op == "or" else _xor)

    def x_ImpliesExpression(self, n, inputs, this):
        return self._logic(n, inputs, this, _implies)

    def x_UnionExpression(self, n, inputs, this):
        a, b, fa, fb = self._both(n, inputs, this)

        def run(f, e):
            out = []
            for v in fa(f, e) + fb(f, e):
                if not any(_eq(v, w) for w in out):
                    out.append(v)
            return out

        types = {t for t, _ in a + b}
        return [(types.pop() if len(types) == 1 else ("?", None), run)]

    def x_MembershipExpression(self, n, inputs, this):
        op = n["terminalNodeText"][0]
        _a, _b, fa, fb = self._both(n, inputs, this)
        if op == "contains":
            fa, fb = fb, fa

        def run(f, e):
            x, coll = fa(f, e), fb(f, e)
            if not x:
                return []
            if len(x) > 1:
                raise EvalError("'in' needs a single value on the left")
            return [any(_eq(x[0], w) for w in coll)]

        return [(BOOL, run)]

    def x_AdditiveExpression(self, n, inputs, this):
        op = n["terminalNodeText"][0]
        a, b, fa, fb = self._both(n, inputs, this)
        ta = {t[0] for t, _ in a}
        tb = {t[0] for t, _ in b}
        if op == "&":
            if not (ta <= STRING_TYPES and tb <= STRING_TYPES):
                raise Unsupported("& of non-strings")

            def amp(f, e):
                x, y = fa(f, e), fb(f, e)
                if len(x) > 1 or len(y) > 1:
                    raise EvalError("& needs single values")
                return [(x[0] if x else "") + (y[0] if y else "")]

            return [(STR, amp)]
        if ta <= NUMBER_TYPES and tb <= NUMBER_TYPES:
            kind = NUMBER_TYPES
        elif op == "+" and ta <= STRING_TYPES and tb <= STRING_TYPES:
            kind = STRING_TYPES
        else:
            raise Unsupported(f"{op} on {ta}, {tb}")
        sign = 1 if op == "+" else -1

        def run(f, e):
            x, y = fa(f, e), fb(f, e)
            if not x or not y:
                return []
            if len(x) > 1 or len(y) > 1:
                raise EvalError(f"{op} needs single values")
            if kind is STRING_TYPES:
                return [x[0] + y[0]]
            return [x[0] + sign * y[0]]

        return [((INT if kind is NUMBER_TYPES else STR), run)]

    def x_TypeExpression(self, n, inputs, this):
        op = n["terminalNodeText"][0]
        left = self.expr(n["children"][0], inputs, this)
        tname = n["children"][1]["text"].split(".")[-1]
        if any(t[0] == "Resource" for t, _ in left):
            return self._resource_is(left, tname, op)
        if op == "as":
            return [(t, f) for t, f in left if _type_is(t, tname)] or [(("?", None), lambda f, e: [])]
        return self._type_test(left, tname, "'is'")

    def _type_test(self, inputs, tname, label):
        """``x is T`` and ``x.is(T)``: true/false for a single value, empty for none, an error for more."""
        chosen = [(t, f) for t, f in inputs if _type_is(t, tname)]
        fs = _concat([f for _t, f in chosen]) if chosen else None
        fall = self._all_in(inputs)

        def run(f, e):
            coll = fall(f, e)
            if not coll:
                return []
            if len(coll) > 1:
                raise EvalError(f"{label} needs a single value")
            return [bool(fs is not None and fs(f, e))]

        return [(BOOL, run)]

    # -- functions -----------------------------------------------------------------------------
    def x_FunctionInvocation(self, n, inputs, this):
        fn = n["children"][0]
        name = fn["children"][0]["text"]
        params = fn["children"][1]["children"] if len(fn["children"]) > 1 else []
        m = getattr(self, "f_" + name, None)
        if m is None:
            raise Unsupported(f"function {name}()")
        return m(inputs, params, this)

    def _all_in(self, inputs):
        return _concat([f for _t, f in inputs])

    def _crit(self, inputs, param):
        """A criteria expression evaluated per item; one compiled version per input type."""
        return [(tr, f, _concat([g for _t, g in self.expr(param, [(tr, _ident)], [(tr, _ident)])])) for tr, f in inputs]

    def f_exists(self, inputs, params, this):
        if params:
            filtered = self.f_where(inputs, params, this)
            fin = self._all_in(filtered)
        else:
            fin = self._all_in(inputs)
        return [(BOOL, lambda f, e: [bool(fin(f, e))])]

    def f_empty(self, inputs, params, this):
        fin = self._all_in(inputs)
        return [(BOOL, lambda f, e: [not fin(f, e)])]

    def f_count(self, inputs, params, this):
        fin = self._all_in(inputs)
        return [(INT, lambda f, e: [len(fin(f, e))])]

    def f_hasValue(self, inputs, params, this):
        fin = self._all_in(inputs)

        def run(f, e):
            c = fin(f, e)
            return [len(c) == 1 and type(c[0]) is not dict]

        return [(BOOL, run)]

    def f_not(self, inputs, params, this):
        fin = self._all_in(inputs)

        def run(f, e):
            c = fin(f, e)
            if len(c) != 1:
                return []
            v = c[0]
            return [not v] if (v is True or v is False) else [False]

        return [(BOOL, run)]

    def f_where(self, inputs, params, this):
        if len(params) != 1:
            raise Unsupported("where() arity")
        out = []
        for tr, f, crit in self._crit(inputs, params[0]):
            out.append((tr, _where(f, crit)))
        return out

    def f_select(self, inputs, params, this):
        if len(params) != 1:
            raise Unsupported("select() arity")
        out = []
        for tr, f in inputs:
            for tr2, g in self.expr(params[0], [(tr, _ident)], [(tr, _ident)]):
                out.append((tr2, _select(f, g)))
        return out

    def f_all(self, inputs, params, this):
        if len(params) != 1:
            raise Unsupported("all() arity")
        parts = self._crit(inputs, params[0])

        def run(f, e):
            for _tr, g, crit in parts:
                for item in g(f, e):
                    r = crit([item], e)
                    if not (len(r) == 1 and r[0] == True):  # noqa: E712  (fhirpathpy's is_true)
                        return [False]
            return [True]

        return [(BOOL, run)]

    def f_first(self, inputs, params, this):
        fin = self._all_in(inputs)
        return [(_one_type(inputs), lambda f, e: fin(f, e)[:1])]

    def f_last(self, inputs, params, this):
        fin = self._all_in(inputs)
        return [(_one_type(inputs), lambda f, e: fin(f, e)[-1:])]

    def f_ofType(self, inputs, params, this):
        tname = _type_param(params)
        chosen = [(t, f) for t, f in inputs if _type_is(t, tname)]
        if not chosen:
            return [((tname, None), lambda f, e: [])]
        return chosen

    def f_as(self, inputs, params, this):
        return self.f_ofType(inputs, params, this)

    def f_is(self, inputs, params, this):
        tname = _type_param(params)
        if any(t[0] == "Resource" for t, _ in inputs):
            return self._resource_is(inputs, tname, "is")
        return self._type_test(inputs, tname, "is()")

    def _resource_is(self, inputs, tname, op):
        if any(t[0] != "Resource" for t, _ in inputs) or op != "is":
            raise Unsupported("type test mixing resources and other values")
        fall = self._all_in(inputs)

        def run(f, e):
            coll = fall(f, e)
            if not coll:
                return []
            if len(coll) > 1:
                raise EvalError("is() needs a single value")
            return [type(coll[0]) is dict and coll[0].get("resourceType") == tname]

        return [(BOOL, run)]

    def f_intersect(self, inputs, params, this):
        if len(params) != 1:
            raise Unsupported("intersect() arity")
        fin = self._all_in(inputs)
        other = _concat([f for _t, f in self.expr(params[0], this, this)])

        def run(f, e):
            b = other(f, e)
            out = []
            for v in fin(f, e):
                if any(_eq(v, w) for w in b) and not any(_eq(v, w) for w in out):
                    out.append(v)
            return out

        return [(_one_type(inputs), run)]

    def f_distinct(self, inputs, params, this):
        fin = self._all_in(inputs)

        def run(f, e):
            out = []
            for v in fin(f, e):
                if not any(_eq(v, w) for w in out):
                    out.append(v)
            return out

        return [(_one_type(inputs), run)]

    def f_isDistinct(self, inputs, params, this):
        fd = self.f_distinct(inputs, params, this)[0][1]
        fin = self._all_in(inputs)
        return [(BOOL, lambda f, e: [len(fd(f, e)) == len(fin(f, e))])]

    def f_contains(self, inputs, params, this):
        # The HL7 validator's FHIRPath engine (org.hl7.fhir.r4 FHIRPathEngine.funcContains)
        # answers false, not empty, for an empty focus; R4's bdl-8
        # ``fullUrl.contains('/_history/').not()`` relies on it, or every Bundle entry without a
        # fullUrl (transaction DELETE/GET entries, search outcomes) would fail.
        return self._string_fn(inputs, params, this, lambda s, a: a in s, empty_focus=[False])

    def f_toString(self, inputs, params, this):
        fin = self._all_in(inputs)
        if not all(t[0] in STRING_TYPES or t[0] in DATE_TYPES for t, _ in inputs):
            raise Unsupported("toString() of non-strings")

        def run(f, e):
            c = fin(f, e)
            if len(c) > 1:
                raise EvalError("toString() needs a single value")
            return c

        return [(STR, run)]

    def _string_fn(self, inputs, params, this, op, empty_focus=()):
        fin = self._all_in(inputs)
        if len(params) != 1:
            raise Unsupported("string function arity")
        arg = self.expr(params[0], this, this)
        farg = _concat([f for _t, f in arg])

        def run(f, e):
            a = farg(f, e)
            if not a:
                return []
            c = fin(f, e)
            if not c:
                return list(empty_focus)
            if len(c) > 1 or type(c[0]) is not str:
                raise EvalError("expected a single string")
            s = c[0]
            if not s or type(a[0]) is not str:
                return [False]
            return [op(s, a[0])]

        return [(BOOL, run)]

    def f_startsWith(self, inputs, params, this):
        return self._string_fn(inputs, params, this, str.startswith)

    def f_endsWith(self, inputs, params, this):
        return self._string_fn(inputs, params, this, str.endswith)

    def f_matches(self, inputs, params, this):
        fin = self._all_in(inputs)
        if len(params) != 1 or params[0]["type"] != "TermExpression":
            raise Unsupported("matches() with a non-literal regex")
        arg = self.expr(params[0], this, this)
        if arg[0][0] != STR:
            raise Unsupported("matches() regex must be a string literal")
        rx = re.compile(arg[0][1]([], None)[0], re.DOTALL)

        def run(f, e):
            c = fin(f, e)
            if not c:
                return []
            if len(c) > 1 or type(c[0]) is not str:
                raise EvalError("expected a single string")
            return [rx.search(c[0]) is not None]

        return [(BOOL, run)]

    def f_length(self, inputs, params, this):
        fin = self._all_in(inputs)

        def run(f, e):
            c = fin(f, e)
            if not c:
                return []
            if len(c) > 1 or type(c[0]) is not str:
                raise EvalError("expected a single string")
            return [len(c[0])]

        return [(INT, run)]

    def f_extension(self, inputs, params, this):
        if len(params) != 1:
            raise Unsupported("extension() arity")
        arg = self.expr(params[0], this, this)
        if arg[0][0] != STR:
            raise Unsupported("extension() url must be a string")
        url = arg[0][1]([], None)[0]
        fin = self._all_in(inputs)

        def run(f, e):
            out = []
            for it in fin(f, e):
                if type(it) is dict:
                    for x in it.get("extension") or ():
                        if type(x) is dict and x.get("url") == url:
                            out.append(x)
                            break  # fhirpathpy returns the first match per element
            return out

        return [(("Extension", "Extension"), run)]

    def f_iif(self, inputs, params, this):
        if len(params) not in (2, 3):
            raise Unsupported("iif() arity")
        cond = _concat([f for _t, f in self.expr(params[0], this, this)])
        yes = self.expr(params[1], this, this)
        no = self.expr(params[2], this, this) if len(params) == 3 else [(STR, lambda f, e: [])]
        fy, fn_ = _concat([f for _t, f in yes]), _concat([f for _t, f in no])

        def run(f, e):
            return fy(f, e) if to_bool(cond(f, e)) is True else fn_(f, e)

        types = {t for t, _ in yes + no}
        return [(types.pop() if len(types) == 1 else ("?", None), run)]


def _member(fn, key):
    if fn is _ident:
        return lambda focus, env: _nav(focus, key)
    return lambda focus, env: _nav(fn(focus, env), key)


def _where(f, crit):
    def run(focus, env):
        out = []
        for item in f(focus, env):
            r = crit([item], env)
            if r:
                v = r[0]
                if v is not False and v is not None:
                    out.append(item)
        return out

    return run


def _select(f, g):
    def run(focus, env):
        out = []
        for item in f(focus, env):
            out.extend(g([item], env))
        return out

    return run


def _one_type(inputs):
    types = {t for t, _ in inputs}
    return types.pop() if len(types) == 1 else ("?", None)


def _type_param(params):
    if len(params) != 1:
        raise Unsupported("type parameter")
    return params[0]["text"].split(".")[-1].strip("`")


def _type_is(tr, tname):
    code = tr[0]
    if code == "?":
        raise Unsupported("type test on a value of unknown type")
    if code.startswith("System."):
        return code[7:].lower() == tname.lower()
    return code == tname


def _eq(a, b):
    if type(a) is bool or type(b) is bool:
        return type(a) is type(b) and a == b
    return a == b


def _and(x, y):
    if x is False or y is False:
        return False
    if x is None or y is None:
        return None
    return True


def _or(x, y):
    if x is True or y is True:
        return True
    if x is None or y is None:
        return None
    return False


def _xor(x, y):
    if x is None or y is None:
        return None
    return x != y


def _implies(x, y):
    if x is False:
        return True
    if x is None:
        return True if y is True else None
    return y  # x is True


_ESCAPES = {"'": "'", '"': '"', "`": "`", "r": "\r", "n": "\n", "t": "\t", "f": "\f", "\\": "\\", "/": "/"}


def unescape_literal(s: str) -> str:
    """The text of a FHIRPath string literal (between its quotes) with its escapes applied (FHIRPath
    N1 "String": \\' \\" \\` \\r \\n \\t \\f \\\\ \\/ and \\uXXXX). Shared by the validator's FHIRPath compiler
    and the reporting compiler (thrive_fhir/reporting/fhirpath.py)."""
    if "\\" not in s:
        return s
    out, i = [], 0
    while i < len(s):
        ch = s[i]
        if ch == "\\" and i + 1 < len(s):
            nxt = s[i + 1]
            if nxt == "u" and i + 5 < len(s) + 0:
                out.append(chr(int(s[i + 2 : i + 6], 16)))
                i += 6
                continue
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


_UTC = UTC
