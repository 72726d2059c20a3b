"""Turn :class:`.model.Invariant` entries into callables ``check(item, env) -> bool``.

Compiled closures (:mod:`.fhirpath`) where the expression is in the subset; otherwise
``fhirpathpy.compile`` with the R4 model (correct but ~100x slower); otherwise (the expression
needs a function fhirpathpy lacks, such as ``hasValue`` or ``memberOf``) the invariant is skipped
and listed in ``Validator.skipped_invariants``.
"""

from __future__ import annotations

import threading

from . import fhirpath
from .model import Invariant


def _no_trace(_label, _value):
    """R4's sdf-16, sdf-17 and que-1 call ``trace()``; fhirpathpy prints each call to stdout
    (``TRACE:[...]``) unless given a ``traceFn``, which corrupted ``thrive validate`` output."""


QUIET = {"traceFn": _no_trace}


class InvariantRunner:
    def __init__(self, type_index: dict, resource_types: set[str]):
        self.compiler = fhirpath.Compiler(type_index, resource_types)
        self.resource_types = resource_types
        self._cache: dict[tuple, object] = {}
        self._lock = threading.Lock()
        self.skipped: dict[str, str] = {}
        self._model = None

    def prepare(self, inv: Invariant):
        """The check function for ``inv`` (cached on the invariant), or ``False`` if skipped."""
        fn = inv._fn
        if fn is not None:
            return fn
        with self._lock:
            if inv._fn is not None:
                return inv._fn
            key = (inv.expression, inv.type_path)
            fn = self._cache.get(key)
            if fn is None:
                fn, compiled = self._make(inv)
                self._cache[key] = fn
                inv.compiled = compiled
            inv._fn = fn
            return fn

    def _make(self, inv: Invariant):
        ast = inv.ast
        if ast is None:
            try:
                ast = fhirpath.parse(inv.expression)
            except Exception as exc:
                self.skipped[inv.key] = f"expression does not parse: {exc}"
                return False, None
        rt = inv.type_path.split(".")[0]
        rt = rt if rt in self.resource_types else None
        try:
            cf = self.compiler.compile(ast, inv.type_path, rt)
        except fhirpath.Unsupported:
            cf = None
        if cf is not None:
            verdict = fhirpath.verdict

            def check(item, env, cf=cf, verdict=verdict):
                return verdict(cf([item], env))

            return check, True
        missing = fhirpath.functions_used(ast) & fhirpath.FHIRPATHPY_MISSING
        if missing:
            self.skipped[inv.key] = (
                f"uses {', '.join(sorted(missing))}(), which neither our compiler nor fhirpathpy implements"
            )
            return False, None
        return self.fallback(inv.expression, inv.type_path), False

    def fallback(self, expression: str, type_path: str):
        import fhirpathpy
        from fhirpathpy.models import models

        fp = fhirpathpy.compile(expression, models["r4"], options=QUIET)
        verdict = fhirpath.verdict
        typed = _typed_node(type_path)

        def check(item, env):
            item, res, root = (_without_value_extensions(x) for x in (item, env[0], env[1]))
            return verdict(fp(typed(item), {"resource": res, "rootResource": root}))

        return check

    def evaluate_reference(self, expression: str, type_path: str, item, env):
        """fhirpathpy's raw result, for the agreement tests."""
        import fhirpathpy
        from fhirpathpy.models import models

        fp = fhirpathpy.compile(expression, models["r4"], options=QUIET)
        return fp(_typed_node(type_path)(item), {"resource": env[0], "rootResource": env[1]})


def _without_value_extensions(node):
    """``node`` without the ``_x`` sibling of every primitive ``x`` that has a value (copy on write).

    fhirpathpy 2.2.4 returns a primitive's ``_x`` (its id and extensions) as a second, separate
    item beside the value instead of one node carrying both, as the FHIRPath JSON mapping and
    fhirpath.js do, so ``item.linkId`` with an extension on two linkIds counts four, and que-2
    (linkIds unique) fails a valid Questionnaire. No R4 invariant reads a primitive's extensions
    (the walker checks those itself), so the fallback evaluates without them. A ``_x`` with no value
    beside it stays: there fhirpathpy's one node is the element.
    """
    if type(node) is dict:
        out = None
        for k, v in node.items():
            if k[:1] == "_" and k[1:] in node:
                if out is None:
                    out = dict(node)
                del out[k]
                continue
            w = _without_value_extensions(v)
            if w is not v:
                if out is None:
                    out = dict(node)
                out[k] = w
        return node if out is None else out
    if type(node) is list:
        new = [_without_value_extensions(x) for x in node]
        return node if all(a is b for a, b in zip(new, node)) else new
    return node


def _typed_node(type_path: str):
    """fhirpathpy needs the FHIR type of a non-resource focus to resolve choice types."""
    from fhirpathpy.engine.nodes import ResourceNode

    if "." not in type_path and type_path[:1].isupper():
        # a resource (typed by its resourceType) or a datatype
        def wrap(item):
            if isinstance(item, dict) and "resourceType" in item:
                return item
            return ResourceNode.create_node(item, type_path)

        return wrap
    return lambda item: ResourceNode.create_node(item, type_path)
