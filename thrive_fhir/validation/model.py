"""Rule tables: what :mod:`.build` compiles from StructureDefinition snapshots and the walker reads.

Plain ``__slots__`` classes so they pickle small and attribute access in the hot path is cheap.
One :class:`Node` per structure (a resource type, a datatype, a backbone element, or a profile's
constrained version of one of these); one :class:`Elem` per element of a node; a :class:`Slot`
per JSON key an element can appear under (``valueQuantity``, ``valueString``... for ``value[x]``).
Datatype nodes are shared between every element of that type, which makes the graph cyclic
(Identifier -> Reference -> Identifier); pickle copes with that.
"""

from __future__ import annotations

# Slot kinds
PRIMITIVE, COMPLEX, RESOURCE = 1, 2, 3


class Invariant:
    """One FHIRPath constraint (an R4 base one or one of our profiles' ``obeys``).

    ``ast`` is fhirpathpy's parse of ``expression`` (parsing is the slow part, so the parse is
    cached with the tables); the executable closure is rebuilt from it on first use in each
    process, because closures cannot be pickled.
    """

    __slots__ = ("_fn", "ast", "compiled", "expression", "human", "key", "severity", "source", "type_path")

    def __init__(self, key, severity, human, expression, type_path, source=None):
        self.key = key
        self.severity = severity
        self.human = human
        self.expression = expression
        self.type_path = type_path  # FHIRPath type context, e.g. "Observation" or "Observation.referenceRange"
        self.source = source
        self.ast = None
        self._fn = None
        self.compiled = None  # True: native closure; False: fhirpathpy fallback

    def __getstate__(self):
        return (self.key, self.severity, self.human, self.expression, self.type_path, self.ast, self.source)

    def __setstate__(self, state):
        (self.key, self.severity, self.human, self.expression, self.type_path, self.ast, self.source) = state
        self._fn = None
        self.compiled = None


class Slot:
    """How one JSON key of an element is checked."""

    __slots__ = ("checker", "code", "kind", "link", "node")

    def __init__(self, kind, code, checker=None, node=None, link=None):
        self.kind = kind  # PRIMITIVE / COMPLEX / RESOURCE
        self.code = code  # FHIR type code: "string", "CodeableConcept", "Resource"...
        self.checker = checker  # primitives.make_checker tuple
        self.node = node  # Node for complex types (after linking)
        self.link = link  # unresolved reference to a Node, resolved by build.link()


class Elem:
    __slots__ = (
        "array",
        "binding",
        "choice",
        "constraints",
        "elem_id",
        "fixed",
        "is_ext",
        "keys",
        "max",
        "max_length",
        "min",
        "name",
        "path",
        "pattern",
        "plain",
        "slicing",
        "targets",
    )

    def __init__(self, name, path):
        self.name = name
        self.path = path
        self.min = 0
        self.max = None  # None: unbounded
        self.array = False  # JSON array form (from base.max, not the profile's max)
        self.choice = False
        self.keys = {}  # json key -> Slot
        self.fixed = None
        self.pattern = None
        self.binding = None  # (valueset url, frozenset[(system, code)], frozenset[code])
        self.targets = None  # frozenset of allowed Reference target types, None = any
        self.slicing = None
        self.constraints = ()
        self.max_length = None
        self.is_ext = False  # extension / modifierExtension: look up the extension's own definition
        self.elem_id = None
        self.plain = False  # no binding/fixed/pattern/maxLength/invariants: a well-formed primitive needs nothing more


class Slice:
    __slots__ = ("elem", "match", "max", "min", "name")

    def __init__(self, name, min_, max_, elem, match):
        self.name = name
        self.min = min_
        self.max = max_
        self.elem = elem
        self.match = match  # tuple of (how, path tuple, expected); all must hold


class Slicing:
    __slots__ = ("description", "rules", "slices")

    def __init__(self, rules, slices, description):
        self.rules = rules
        self.slices = slices
        self.description = description


class Node:
    """A structure: allowed keys, required elements and structure-level invariants."""

    __slots__ = (
        "base_link",
        "choice_elems",
        "constraints",
        "elems",
        "is_resource",
        "keys",
        "path",
        "required",
        "type_name",
        "url",
    )

    def __init__(self, type_name, path, url=None):
        self.type_name = type_name
        self.path = path
        self.url = url
        self.keys = {}  # json key -> (Elem, Slot | None); "_x" keys map to (Elem, None)
        self.elems = []
        self.required = ()  # Elems with min > 0
        self.constraints = ()  # Invariants on the structure itself (resource- or datatype-level)
        self.is_resource = False
        self.choice_elems = ()  # Elems with more than one key: at most one may be present
        self.base_link = None  # datatype whose structure-level invariants also apply
