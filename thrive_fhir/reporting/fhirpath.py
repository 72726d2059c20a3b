"""A parser for the FHIRPath subset SQL on FHIR v2 views use; it yields a small AST, never values.

The AST is compiled to SQL by :mod:`.compiler`: expressions are translated, not evaluated here.
Grammar (lowest to highest precedence): ``implies``, ``or``/``xor``, ``and``, ``=``/``!=``,
``<``/``>``/``<=``/``>=``, ``|``, ``+``/``-``/``&``, ``*``/``/``/``div``/``mod``, unary ``-``,
then invocation chains (``a.b``, ``a.f(x)``, ``a[0]``) over terms (names, ``$this``,
``%constant``, literals, ``(expr)``, ``{}``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..validation.fhirpath import unescape_literal


class FhirPathSyntaxError(ValueError):
    """The expression is not FHIRPath we can read."""


@dataclass(frozen=True)
class Name:  # a member name: ``code``
    name: str


@dataclass(frozen=True)
class This:  # ``$this``
    pass


@dataclass(frozen=True)
class Const:  # ``%name``
    name: str


@dataclass(frozen=True)
class Literal:  # kind: string | integer | decimal | boolean | date | datetime | time | empty
    kind: str
    value: object


@dataclass(frozen=True)
class Member:  # ``base.name``
    base: object
    name: str


@dataclass(frozen=True)
class Call:  # ``base.fn(args)``; base None for a function at the start of a path
    base: object
    fn: str
    args: tuple


@dataclass(frozen=True)
class Index:  # ``base[i]``
    base: object
    index: object


@dataclass(frozen=True)
class BinOp:
    op: str
    left: object
    right: object


@dataclass(frozen=True)
class Neg:
    operand: object


_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<datetime>@\d{4}(?:-\d{2}(?:-\d{2})?)?(?:T(?:\d{2}(?::\d{2}(?::\d{2}(?:\.\d+)?)?)?)?(?:Z|[+-]\d{2}:\d{2})?)?)
  | (?P<time>@T\d{2}(?::\d{2}(?::\d{2}(?:\.\d+)?)?)?)
  | (?P<number>\d+(?:\.\d+)?)
  | (?P<dollar>\$(?:this|index|total))
  | (?P<const>%(?:[A-Za-z_][A-Za-z0-9_]*|`[^`]*`))
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*|`[^`]*`)
  | (?P<op><=|>=|!=|!~|[=<>~|&+\-*/.,()\[\]{}])
""",
    re.VERBOSE,
)


def _tokens(text: str) -> list[tuple[str, str]]:
    pos, out = 0, []
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        # Every alternative of _TOKEN is a named group, so a match always names one.
        if not m or m.lastgroup is None:
            raise FhirPathSyntaxError(f"unexpected character {text[pos]!r} at position {pos + 1}")
        pos = m.end()
        kind = m.lastgroup
        if kind != "ws":
            out.append((kind, m.group()))
    out.append(("eof", ""))
    return out


_BINARY = [
    ("implies",),
    ("or", "xor"),
    ("and",),
    ("=", "!=", "~", "!~"),
    ("<", ">", "<=", ">="),
    ("|",),
    ("+", "-", "&"),
    ("*", "/", "div", "mod"),
]


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str]:
        return self.toks[self.i]

    def take(self) -> tuple[str, str]:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def expect(self, value: str) -> None:
        _kind, val = self.take()
        if val != value:
            raise FhirPathSyntaxError(f"expected {value!r} but found {val or 'the end'!r}")

    def parse(self):
        node = self.binary(0)
        if self.peek()[0] != "eof":
            raise FhirPathSyntaxError(f"unexpected {self.peek()[1]!r}")
        return node

    def binary(self, level: int):
        if level == len(_BINARY):
            return self.unary()
        left = self.binary(level + 1)
        while True:
            kind, val = self.peek()
            if kind in ("op", "ident") and val in _BINARY[level]:
                self.take()
                left = BinOp(val, left, self.binary(level + 1))
            else:
                return left

    def unary(self):
        kind, val = self.peek()
        if kind == "op" and val in "+-" and val:
            self.take()
            operand = self.unary()
            return Neg(operand) if val == "-" else operand
        return self.postfix(self.term())

    def args(self) -> tuple:
        self.expect("(")
        out = []
        if self.peek()[1] != ")":
            out.append(self.binary(0))
            while self.peek()[1] == ",":
                self.take()
                out.append(self.binary(0))
        self.expect(")")
        return tuple(out)

    def term(self):
        kind, val = self.take()
        if kind == "string":
            return Literal("string", unescape_literal(val[1:-1]))
        if kind == "number":
            return Literal("decimal", val) if "." in val else Literal("integer", int(val))
        if kind == "datetime":
            return Literal("datetime" if "T" in val else "date", val[1:])
        if kind == "time":
            return Literal("time", val[2:])
        if kind == "dollar":
            if val != "$this":
                raise FhirPathSyntaxError(f"{val} is not supported")
            return This()
        if kind == "const":
            return Const(val[1:].strip("`"))
        if kind == "ident":
            name = val.strip("`")
            if name in ("true", "false") and not val.startswith("`"):
                return Literal("boolean", name == "true")
            if self.peek()[1] == "(":
                return Call(None, name, self.args())
            return Name(name)
        if val == "(":
            node = self.binary(0)
            self.expect(")")
            return node
        if val == "{":
            self.expect("}")
            return Literal("empty", None)
        raise FhirPathSyntaxError(f"unexpected {val or 'end of expression'!r}")

    def postfix(self, node):
        while True:
            _kind, val = self.peek()
            if val == ".":
                self.take()
                k2, name = self.take()
                if k2 != "ident":
                    raise FhirPathSyntaxError(f"expected a name after '.', found {name or 'the end'!r}")
                name = name.strip("`")
                if self.peek()[1] == "(":
                    node = Call(node, name, self.args())
                else:
                    node = Member(node, name)
            elif val == "[":
                self.take()
                idx = self.binary(0)
                self.expect("]")
                node = Index(node, idx)
            else:
                return node


def parse(text: str):
    """Parse one FHIRPath expression; raises :class:`FhirPathSyntaxError` with a readable message."""
    if not isinstance(text, str) or not text.strip():
        raise FhirPathSyntaxError("empty expression")
    return _Parser(text).parse()
