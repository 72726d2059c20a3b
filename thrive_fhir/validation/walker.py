"""The hot path: walk one resource's JSON dict against compiled rule tables.

No models are built and nothing is copied: every key of every object is looked up once in the
node's key table, primitives are checked in place, and issues are appended as plain tuples
``(severity, code, expression, text)``. Expressions use JSON names and zero-based indexes
(``Observation.component[1].valueCodeableConcept.coding[0].code``), as the HL7 validator does.
The text of every issue starts with the rule that failed (an invariant key such as ``thr-gbo-1``,
or one of the structural rule names below) so people and tests can tell the rules apart.

Structural rule names used in ``details.text``:
``unknown-element``, ``unknown-resource-type``, ``type`` (wrong JSON type), ``format`` (bad
primitive value), ``cardinality``, ``fixed``, ``pattern``, ``binding``, ``slice``, ``reference-type``,
``ele-1``, ``ext-1``, ``ref-1``, ``dom-2``..``dom-5``, ``too-long``, ``profile``.
"""

from __future__ import annotations

from ..canonical import BASE
from . import primitives
from .model import COMPLEX, PRIMITIVE

_check_primitive = primitives.check_primitive
_clip = primitives.clip
_json_name = primitives.json_name


class Walk:
    """State for validating one top-level resource (not shared between threads)."""

    __slots__ = ("ext_generic", "issues", "res_path", "res_type", "runner", "t")

    def __init__(self, tables, runner):
        self.t = tables
        self.runner = runner
        self.issues = []
        self.ext_generic = tables.datatypes.get("Extension")
        self.res_type = None  # type and path of the resource being walked (for extension contexts)
        self.res_path = None

    def err(self, code, path, text, severity="error"):
        self.issues.append((severity, code, path, text))

    # -- resources -------------------------------------------------------------------------------
    def resource(self, res, path, root=None, contained=False):
        """Validate a resource (top level, contained, or a Bundle entry)."""
        if type(res) is not dict:
            self.err("structure", path, f"type: a resource must be a JSON object, not {_json_name(res)}")
            return
        rt = res.get("resourceType")
        where = (path + "." if path else "") + "resourceType"
        if type(rt) is not str:
            self.err("required", where, "unknown-resource-type: the resource has no resourceType")
            return
        base = self.t.resources.get(rt)
        if base is None:
            self.err("not-supported", where, f"unknown-resource-type: '{_clip(rt)}' is not an R4 resource type")
            return
        if path is None or path == "":
            path = rt
        nodes = self.profile_nodes(res, rt, path)
        env = (res, root if root is not None else res)
        saved = self.res_type, self.res_path
        self.res_type, self.res_path = rt, path
        for node in nodes:
            self.node(node, res, path, env)
        self.res_type, self.res_path = saved
        if contained:
            self.check_contained_rules(res, path)
        cont = res.get("contained")
        if type(cont) is list and cont:
            self.check_dom3(res, cont, path)

    def profile_nodes(self, res, rt, path):
        meta = res.get("meta")
        profiles = meta.get("profile") if type(meta) is dict else None
        if not profiles or type(profiles) is not list:
            return (self.t.resources[rt],)
        nodes = []
        for i, url in enumerate(profiles):
            if type(url) is not str:
                continue  # the walk reports the bad type
            canon = url.split("|", 1)[0]
            node = self.t.profiles.get(canon)
            if node is None:
                self.err(
                    "not-supported",
                    f"{path}.meta.profile[{i}]",
                    f"profile: profile '{_clip(url, 120)}' is not known here; checked against base R4 {rt} only",
                    severity="warning",
                )
                continue
            ptype = self.t.profile_types.get(canon)
            if ptype != rt:
                self.err("invalid", f"{path}.meta.profile[{i}]", f"profile: profile '{canon}' is for {ptype}, not {rt}")
                continue
            nodes.append(node)
        return nodes or (self.t.resources[rt],)

    def check_contained_rules(self, res, path):
        if res.get("contained"):
            self.err("invariant", path + ".contained", "dom-2: a contained resource SHALL NOT contain nested resources")
        meta = res.get("meta")
        if type(meta) is dict:
            if "versionId" in meta or "lastUpdated" in meta:
                self.err(
                    "invariant",
                    path + ".meta",
                    "dom-4: a contained resource SHALL NOT have meta.versionId or meta.lastUpdated",
                )
            if "security" in meta:
                self.err("invariant", path + ".meta", "dom-5: a contained resource SHALL NOT have a security label")

    def check_dom3(self, res, cont, path):
        """dom-3 as R4 states it, over the whole resource: a contained resource must be referenced
        as ``#id`` from anywhere in the containing resource (including from another contained
        resource), by a Reference or by a canonical/uri (``answerValueSet: "#vs1"``,
        ``QuestionnaireResponse.questionnaire: "#q1"``), unless something refers to the container
        itself as ``#``. Runs only when ``contained`` is present, so a scan of the JSON is cheap."""
        refs = _local_refs(res)
        if "#" in refs:
            return
        for i, c in enumerate(cont):
            if type(c) is dict and c.get("id") is not None and ("#" + str(c.get("id"))) not in refs:
                self.err(
                    "invariant",
                    f"{path}.contained[{i}]",
                    f"dom-3: contained resource '{c.get('id')}' is not referenced from the containing resource",
                )

    # -- structures --------------------------------------------------------------------------------
    def node(self, node, obj, path, env):
        keys = node.keys
        seen_choice = None
        for key, val in obj.items():
            ent = keys.get(key)
            if ent is None:
                if key == "resourceType" and node.is_resource:
                    continue
                self.unknown(node, obj, key, path)
                continue
            elem, slot = ent
            if slot is None:
                self.primitive_extension(elem, key, val, obj, path, env)
                continue
            if elem.choice:
                if seen_choice is None:
                    seen_choice = {}
                other = seen_choice.get(elem.name)
                if other is not None:
                    self.err(
                        "structure",
                        path + "." + key,
                        f"cardinality: only one of {elem.name}[x] may be present, found {other} and {key}",
                    )
                seen_choice[elem.name] = key
            if elem.max == 0:
                self.err(
                    "structure", path + "." + key, f"cardinality: {elem.path} is not allowed by the profile (max 0)"
                )
                continue
            if elem.array:
                if type(val) is not list:
                    self.err("structure", path + "." + key, f"type: {key} must be a JSON array, not {_json_name(val)}")
                    continue
                n = len(val)
                if n == 0:
                    self.err("structure", path + "." + key, "ele-1: arrays must not be empty")
                    continue
                mx = elem.max
                if mx is not None and n > mx:
                    self.err("structure", path + "." + key, f"cardinality: {elem.path} allows at most {mx}, found {n}")
                if elem.slicing is not None:
                    assigned = self.slices(elem, val, path + "." + key, env)
                    for i, item in enumerate(val):
                        e2 = assigned[i]
                        self.item(e2, e2.keys.get(key, slot), item, f"{path}.{key}[{i}]", env, obj, key, i)
                else:
                    p = path + "." + key
                    fast = slot.kind == PRIMITIVE and elem.plain
                    for i, item in enumerate(val):
                        if fast and _fast_ok(slot.checker, item):
                            continue
                        self.item(elem, slot, item, f"{p}[{i}]", env, obj, key, i)
            else:
                if type(val) is list:
                    self.err("structure", path + "." + key, f"type: {key} must be a single value, not an array")
                    continue
                if slot.kind == PRIMITIVE and elem.plain and _fast_ok(slot.checker, val):
                    continue
                self.item(elem, slot, val, path + "." + key, env, obj, key, None)
        for elem in node.required:
            name = elem.name
            if elem.choice:
                if not any(k in obj for k in elem.keys) and not _has_choice_key(obj, name):
                    self.err(
                        "required",
                        f"{path}.{name}[x]",
                        f"cardinality: {elem.path} is required (min {elem.min}) but missing",
                    )
            elif name not in obj and ("_" + name) not in obj:
                self.missing(elem, path)
            elif elem.min > 1:
                v = obj.get(name)
                if type(v) is list and len(v) < elem.min:
                    self.err(
                        "required",
                        path + "." + name,
                        f"cardinality: {elem.path} needs at least {elem.min}, found {len(v)}",
                    )
        if node.constraints:
            self.invariants(node.constraints, obj, path, env)

    def missing(self, elem, path):
        """A required element is absent: name the required slices when slicing explains it."""
        sl = elem.slicing
        if sl is not None:
            needed = [s for s in sl.slices if s.min > 0]
            if needed:
                for s in needed:
                    self.err(
                        "required",
                        f"{path}.{elem.name}:{s.name}",
                        f"cardinality: {elem.path}:{s.name} is required (min {s.min}) but missing",
                    )
                return
        self.err(
            "required", f"{path}.{elem.name}", f"cardinality: {elem.path} is required (min {elem.min}) but missing"
        )

    def unknown(self, node, obj, key, path):
        for elem in node.elems:
            if elem.choice and key.startswith(elem.name) and key[len(elem.name) : len(elem.name) + 1].isupper():
                tname = key[len(elem.name) :]
                if tname[0].lower() + tname[1:] in self.t.primitive_types or tname in self.t.datatypes:
                    allowed = ", ".join(s.code for s in elem.keys.values())
                    self.err(
                        "structure",
                        path + "." + key,
                        f"type: {elem.path} may not be a {tname} here; allowed: {allowed}",
                    )
                    return
        if key.startswith("_") and key[1:] in node.keys:
            self.err("structure", path + "." + key, f"unknown-element: '{key}' is only allowed for primitive elements")
        else:
            self.err("structure", path + "." + key, f"unknown-element: '{_clip(key)}' is not an element of {node.path}")

    def primitive_extension(self, elem, key, val, obj, path, env):
        """``_status``: the id/extensions of a primitive (one object, or an array parallel to the values)."""
        base = key[1:]
        generic = self.t.datatypes.get("Element")
        p = path + "." + key
        if elem.array:
            if type(val) is not list:
                self.err("structure", p, f"type: {key} must be an array parallel to {base}")
                return
            vals = obj.get(base)
            if type(vals) is list and len(vals) != len(val):
                self.err("structure", p, f"type: {key} must have as many entries as {base}")
            for i, x in enumerate(val):
                if x is None:
                    continue
                if type(x) is not dict or not x:
                    self.err("structure", f"{p}[{i}]", "ele-1: primitive extension entries must be non-empty objects")
                    continue
                self.node(generic, x, f"{p}[{i}]", env)
        else:
            if type(val) is not dict or not val:
                self.err("structure", p, "ele-1: a primitive's extension object must be a non-empty object")
                return
            self.node(generic, val, p, env)

    def item(self, elem, slot, item, p, env, parent, key, index):
        kind = slot.kind
        if kind == PRIMITIVE:
            if item is None:
                ext = parent.get("_" + key)
                if index is None or type(ext) is not list or index >= len(ext) or ext[index] is None:
                    self.err("structure", p, "ele-1: null is only allowed where the primitive has an extension")
                return
            chk = slot.checker
            # fast path for the common case: a well-formed string; anything else gets the full check
            if (
                chk[0] == "str"
                and type(item) is str
                and item
                and chk[2] is None
                and len(item) < 4096
                and ((chk[1] is None and not item.isspace()) or (chk[1] is not None and chk[1].fullmatch(item)))
            ):
                prob = None
            else:
                prob = _check_primitive(chk, item)
            if prob is not None:
                code, reason = prob
                rule = "type" if code == "structure" else ("too-long" if code == "too-long" else "invalid-value")
                self.err(code, p, f"{rule}: {slot.code} {reason}")
                return
            ml = elem.max_length
            if ml is not None and type(item) is str and len(item) > ml:
                self.err("too-long", p, f"too-long: at most {ml} characters allowed, found {len(item)}")
            b = elem.binding
            if b is not None and type(item) is str and item not in b[2]:
                self.err("code-invalid", p, f"binding: '{_clip(item)}' is not in the required value set {b[0]}")
            if elem.fixed is not None and item != elem.fixed:
                self.err("value", p, f"fixed: must be exactly '{elem.fixed}', found '{_clip(str(item))}'")
            elif elem.pattern is not None and item != elem.pattern:
                self.err("value", p, f"fixed: must be '{elem.pattern}', found '{_clip(str(item))}'")
        elif kind == COMPLEX:
            if type(item) is not dict:
                self.err("structure", p, f"type: {slot.code} must be a JSON object, not {_json_name(item)}")
                return
            if not item:
                self.err("structure", p, "ele-1: elements must have a value or children (empty object)")
                return
            node = slot.node
            if elem.is_ext:
                url = item.get("url")
                if node is self.ext_generic and type(url) is str:
                    known = self.t.extensions.get(url)
                    if known is not None:
                        node = known
                        ctx = self.t.extension_contexts.get(url)
                        if ctx:
                            self.extension_context(url, ctx, parent, p)
                    elif ":" in url:
                        self.unknown_extension(url, p, modifier=(key == "modifierExtension"))
                has_value = False
                for k in item:
                    if k.startswith("value"):
                        has_value = True
                        break
                if has_value == ("extension" in item):
                    self.err(
                        "invariant",
                        p,
                        "ext-1: an extension must have either extensions or value[x], not both"
                        if has_value
                        else "ext-1: an extension must have either extensions or value[x]",
                    )
            elif len(item) == 1 and "id" in item:
                self.err("structure", p, "ele-1: elements must have a value or children other than id")
            self.node(node, item, p, env)
            code = slot.code
            if code == "Reference":
                self.reference(elem, item, p)
            b = elem.binding
            if b is not None:
                self.binding_complex(code, b, item, p)
            if elem.fixed is not None:
                if item != elem.fixed:
                    self.err("value", p, f"fixed: must equal {_short(elem.fixed)}")
            elif elem.pattern is not None and not pattern_match(item, elem.pattern):
                self.err("value", p, f"fixed: must contain {_short(elem.pattern)}")
        else:  # RESOURCE
            self.resource(item, p, root=env[1], contained=(key == "contained"))
            return
        if elem.constraints:
            self.invariants(elem.constraints, item, p, env)

    def binding_complex(self, code, b, item, p):
        vs, pairs = b[0], b[1]
        if code == "CodeableConcept":
            codings = item.get("coding")
            if type(codings) is not list or not codings:
                self.err("code-invalid", p, f"binding: a code from the required value set {vs} is needed (no coding)")
                return
            for c in codings:
                if type(c) is dict and _in_expansion(c, pairs):
                    return
            shown = ", ".join(f"{c.get('system')}#{c.get('code')}" for c in codings if type(c) is dict)
            where = p + ".coding[0].code" if type(codings[0]) is dict and "code" in codings[0] else p + ".coding"
            self.err(
                "code-invalid",
                where,
                f"binding: none of the codings ({_clip(shown, 160)}) is in the required value set {vs}",
            )
        elif code in ("Coding", "Quantity") or (code in self.t.datatypes and "code" in item):
            if code != "Coding" and "code" not in item:
                return
            if not _in_expansion(item, pairs):
                self.err(
                    "code-invalid",
                    p + ".code",
                    f"binding: {item.get('system')}#{_clip(str(item.get('code')))} is not in the required value set {vs}",
                )

    # -- extensions ------------------------------------------------------------------------------
    def unknown_extension(self, url, p, modifier=False):
        """An absolute extension URL with no definition here (relative URLs name the parts of a
        complex extension). Like the HL7 validator, unknown extensions in a namespace whose
        definitions we hold (R4 core's, and our own) are errors: the URL is misspelt or the
        extension does not exist. Elsewhere they are a warning: we cannot know every IG. An unknown
        modifierExtension is always an error: it may change the meaning of the data, so data we
        cannot understand must not pass as valid (R4 "Extensibility": modifier extensions SHALL NOT
        be ignored)."""
        if url.startswith(EXTENSION_DOMAINS) or url in LATER_CORE_EXTENSIONS:
            return
        own = url.startswith(CORE_EXT) or url.startswith(OWN_EXT)
        why = (
            "; no such extension is defined in that namespace"
            if own
            else "; a modifier extension that is not understood may change the meaning of the data"
            if modifier
            else "; its content is not checked"
        )
        self.err(
            "structure",
            p + ".url",
            f"extension: unknown extension '{_clip(url, 120)}'{why}",
            severity="error" if own or modifier else "warning",
        )

    def extension_context(self, url, ctx, parent, p):
        """Check where an extension is used against its StructureDefinition's ``context``."""
        places = self.context_names(parent, p)
        if places is None:
            return
        for ctype, expr in ctx:
            if ctype != "element":
                if ctype == "extension" and expr in places:
                    return
                if ctype == "fhirpath":
                    return  # a FHIRPath context is not evaluated: accept rather than guess
                continue
            if expr in places or expr == "Element":
                return
        allowed = ", ".join(e for _t, e in ctx)
        where = p.rsplit(".", 1)[0]
        self.err(
            "structure",
            p,
            f"extension: '{_clip(url, 120)}' is not allowed on {_clip(where, 120)}; "
            f"its definition allows it on {_clip(allowed, 160)}",
        )

    def context_names(self, parent, p):
        """Every name an extension context could use for the element holding ``p``: its
        definition path from the resource (``Patient.name``), its path within its datatype
        (``HumanName.family``, ``Dosage.timing``) and its type (``HumanName``, ``date``)."""
        names = set()
        rt = self.res_type
        rel = p.rsplit(".", 1)[0]
        if rt is None or not rel.startswith(self.res_path):
            return None
        rel = rel[len(self.res_path) :].lstrip(".")
        if type(parent) is dict and type(parent.get("url")) is str:
            names.add(parent["url"])  # context type "extension": used inside that extension
        if not rel:
            names.update((rt, "Resource"))
            if rt not in ("Bundle", "Binary", "Parameters"):
                names.add("DomainResource")
            return names
        ti = self.t.type_index
        type_path, def_path, code = rt, rt, rt
        for seg in rel.split("."):
            key = seg.split("[", 1)[0]
            if key.startswith("_"):
                key = key[1:]
            entry = None
            for name, entries in (ti.get(type_path) or {}).items():
                for jk, c, child in entries:
                    if jk == key:
                        entry = (name, c, child, jk != name)
                        break
                if entry:
                    break
            if entry is None:
                return None  # a path the base types do not describe: cannot judge, so accept
            name, code, child, choice = entry
            shown = name + "[x]" if choice else name
            names.update((def_path + "." + shown, type_path + "." + shown))
            def_path = def_path + "." + shown
            if child is None:
                break
            type_path = child
        names.add(code)
        if code == "BackboneElement":
            names.add("BackboneElement")
        return names

    def reference(self, elem, item, p):
        ref = item.get("reference")
        if type(ref) is not str:
            return
        if ref.startswith("#"):
            return  # dom-3 checks local references over the whole resource
        if ref.startswith("urn:"):
            return
        parts = ref.split("/")
        if len(parts) >= 4 and parts[-2] == "_history":
            parts = parts[:-2]
        if len(parts) < 2:
            self.err("structure", p, f"type: reference '{_clip(ref)}' is not of the form Type/id")
            return
        rtype = parts[-2]
        if rtype not in self.t.resources:
            self.err("structure", p, f"type: reference '{_clip(ref)}' does not name an R4 resource type")
            return
        targets = elem.targets
        if targets is not None and rtype not in targets and "Resource" not in targets:
            allowed = ", ".join(sorted(targets))
            self.err(
                "structure", p, f"type: a reference to a {rtype} is not allowed here; {elem.path} refers to {allowed}"
            )
        t = item.get("type")
        if type(t) is str and t != rtype:
            self.err("invalid", p + ".type", f"type: Reference.type '{t}' disagrees with reference '{_clip(ref)}'")

    # -- slicing ---------------------------------------------------------------------------------
    def slices(self, elem, items, p, env):
        sl = elem.slicing
        counts = [0] * len(sl.slices)
        assigned = []
        for i, item in enumerate(items):
            chosen = elem
            for si, s in enumerate(sl.slices):
                if slice_matches(s.match, item):
                    counts[si] += 1
                    chosen = s.elem
                    break
            else:
                if sl.rules == "closed":
                    self.err(
                        "structure",
                        f"{p}[{i}]",
                        f"cardinality: this entry matches none of the slices defined for {elem.path} (closed slicing)",
                    )
            assigned.append(chosen)
        for si, s in enumerate(sl.slices):
            n = counts[si]
            if n < s.min:
                self.err(
                    "required",
                    p,
                    f"cardinality: {elem.path}:{s.name} needs at least {s.min} entr"
                    f"{'y' if s.min == 1 else 'ies'}, found {n}",
                )
            elif s.max is not None and n > s.max:
                self.err("structure", p, f"cardinality: {elem.path}:{s.name} allows at most {s.max}, found {n}")
        return assigned

    # -- invariants ------------------------------------------------------------------------------
    def invariants(self, invs, item, path, env):
        prepare = self.runner.prepare
        for inv in invs:
            fn = inv._fn
            if fn is None:
                fn = prepare(inv)
            if fn is False:
                continue
            try:
                ok = fn(item, env)
            except Exception as exc:
                # Not evaluable is not the same as false: the HL7 validator passes such resources
                # (e.g. tim-9 over two Timing.repeat.when values), so this is a warning that
                # names the invariant, never an error.
                self.err(
                    "processing",
                    path,
                    f"{inv.key}: could not be evaluated ({_clip(str(exc), 120)}); not checked: {inv.human}",
                    severity="warning",
                )
                continue
            if not ok:
                self.err(
                    "invariant",
                    path,
                    f"{inv.key}: {inv.human}",
                    severity="error" if inv.severity == "error" else "warning",
                )


CORE_EXT = "http://hl7.org/fhir/StructureDefinition/"
OWN_EXT = BASE + "/StructureDefinition/"
#: Namespaces whose extensions are accepted unchecked: like the HL7 validator's
#: ``extensionDomains`` setting. UK Core (which the profiles build on) is not available offline,
#: so its extensions (e.g. Extension-UKCore-NHSNumberVerificationStatus) cannot be checked here.
EXTENSION_DOMAINS = ("https://fhir.hl7.org.uk/StructureDefinition/",)
#: Extensions in the R4 core namespace that R4 core 4.0.1 does not define: HL7 published them
#: later in the extensions pack (hl7.fhir.uv.extensions), which SUSHI adds automatically but which
#: is not available offline. Accepted unchecked, like EXTENSION_DOMAINS; every other unknown URL in
#: that namespace is an error. Our own profiles use imposeProfile to name their UK Core parent;
#: an agency's confirmation of a safety plan item uses targetElement on Provenance.target
#: (thrive_fhir.entry_confirmation), as US Core does on R4 for element-level Provenance.
LATER_CORE_EXTENSIONS = frozenset(
    {
        "http://hl7.org/fhir/StructureDefinition/structuredefinition-imposeProfile",
        "http://hl7.org/fhir/StructureDefinition/targetElement",
    }
)


def _local_refs(res) -> set:
    """Every string beginning with ``#`` anywhere in ``res`` (iterative: no recursion limit).

    Slightly generous against dom-3 as written (any element, not only Reference/canonical/uri
    ones); a false acceptance needs an id that some other string happens to spell as ``#id``."""
    out = set()
    stack = [res]
    while stack:
        x = stack.pop()
        if type(x) is dict:
            stack.extend(x.values())
        elif type(x) is list:
            stack.extend(x)
        elif type(x) is str and x[:1] == "#":
            out.add(x)
    return out


def _fast_ok(chk, val) -> bool:
    """True for the overwhelmingly common well-formed primitive; False means "do the full check"."""
    kind = chk[0]
    if kind == "str":
        return (
            type(val) is str
            and val != ""
            and chk[2] is None
            and len(val) < 4096
            and (chk[1].fullmatch(val) is not None if chk[1] is not None else not val.isspace())
        )
    if kind == "bool":
        return type(val) is bool
    return False


def _has_choice_key(obj, name) -> bool:
    """A value[x] of a type the profile forbids is reported as a type error, not as missing."""
    n = len(name)
    for k in obj:
        if len(k) > n and k.startswith(name) and k[n].isupper():
            return True
    return False


def _in_expansion(item: dict, pairs: frozenset) -> bool:
    """Whether ``(system, code)`` of a Coding is in an expansion.

    A list or object where a code belongs is reported by the datatype check; here it must just
    fail the lookup, not raise (lists are unhashable). try/except keeps the valid path free.
    """
    try:
        return (item.get("system"), item.get("code")) in pairs
    except TypeError:
        return False


def _short(value) -> str:
    import json

    return _clip(json.dumps(value, separators=(",", ":")), 160)


def pattern_match(value, pattern) -> bool:
    """FHIR pattern[x] semantics: everything in the pattern is present in the value."""
    if type(pattern) is dict:
        if type(value) is not dict:
            return False
        for k, pv in pattern.items():
            if k not in value or not pattern_match(value[k], pv):
                return False
        return True
    if type(pattern) is list:
        if type(value) is not list:
            return False
        return all(any(pattern_match(v, pv) for v in value) for pv in pattern)
    return value == pattern


def _values_at(item, path):
    cur = [item]
    for key in path:
        nxt = []
        for c in cur:
            if type(c) is dict:
                v = c.get(key)
                if type(v) is list:
                    nxt.extend(v)
                elif v is not None:
                    nxt.append(v)
        cur = nxt
    return cur


def slice_matches(match, item) -> bool:
    for how, path, expected in match:
        if how == "type":
            continue  # type slices of choice elements are resolved by key, not here
        vals = _values_at(item, path) if path else [item]
        if how == "fixed":
            if not any(v == expected for v in vals):
                return False
        elif how == "pattern":
            if not any(pattern_match(v, expected) for v in vals):
                return False
        elif how == "codes":
            ok = False
            for v in vals:
                if type(v) is dict:
                    if (v.get("system"), v.get("code")) in expected:
                        ok = True
                        break
                    for c in v.get("coding") or ():
                        if type(c) is dict and (c.get("system"), c.get("code")) in expected:
                            ok = True
                            break
                    if ok:
                        break
            if not ok:
                return False
        elif how == "exists":
            if bool(vals) != expected:
                return False
    return True
