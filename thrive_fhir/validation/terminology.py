"""ValueSet expansion for required bindings, done once at build time, offline.

Required bindings are checked by set membership, so every bound ValueSet is turned into a
frozenset of ``(system, code)`` here. Sources, in order of preference:

1. the project's pre-computed expansions (``terminology/expansions/ValueSet-<id>.json``, written
   by the terminology part from our FSH);
2. an ``expansion`` already inside the ValueSet resource;
3. the ValueSet's ``compose``, computed from the CodeSystems we hold (R4 core + ours): whole
   systems, explicit concept lists, ``is-a``/``descendent-of``/``=`` filters on systems we have,
   nested ``valueSet`` imports and ``exclude``.

Anything else (a filter over SNOMED CT, BCP-47 languages, MIME types, UCUM, ISO 4217 currencies,
a CodeSystem with ``content`` other than complete...) cannot be expanded without a terminology
server. Those bindings are *skipped*, and the reason is kept in :attr:`Expander.unexpandable`
so the validator can list them (``Validator.skipped_bindings``); we do not guess.
"""

from __future__ import annotations


class CannotExpand(Exception):
    """The ValueSet needs content we do not hold offline."""


def strip_version(url: str) -> str:
    return url.split("|", 1)[0] if url else url


class Expander:
    def __init__(
        self, valuesets: dict[str, dict], codesystems: dict[str, dict], precomputed: dict[str, dict] | None = None
    ):
        self.valuesets = valuesets
        self.codesystems = codesystems
        self.precomputed = precomputed or {}
        self._cache: dict[str, frozenset] = {}
        self.unexpandable: dict[str, str] = {}

    def expand(self, url: str) -> frozenset | None:
        """``frozenset`` of (system, code), or ``None`` when the ValueSet cannot be expanded."""
        url = strip_version(url)
        if url in self._cache:
            return self._cache[url]
        if url in self.unexpandable:
            return None
        try:
            result = self._expand(url, depth=0)
        except CannotExpand as exc:
            self.unexpandable[url] = str(exc)
            return None
        self._cache[url] = result
        return result

    # -- internals -------------------------------------------------------------------------
    def _expand(self, url: str, depth: int) -> frozenset:
        if depth > 20:
            raise CannotExpand("ValueSet imports nest too deeply (cycle?)")
        pre = self.precomputed.get(url)
        if pre is not None and pre.get("expansion"):
            return frozenset(_walk_contains(pre["expansion"].get("contains", [])))
        vs = self.valuesets.get(url)
        if vs is None:
            raise CannotExpand(f"ValueSet {url} is not available offline")
        if vs.get("expansion", {}).get("contains"):
            return frozenset(_walk_contains(vs["expansion"]["contains"]))
        compose = vs.get("compose")
        if not compose:
            raise CannotExpand(f"ValueSet {url} has neither compose nor expansion")
        included: set = set()
        for inc in compose.get("include", []):
            included |= self._include(inc, depth)
        for exc in compose.get("exclude", []):
            included -= self._include(exc, depth)
        return frozenset(included)

    def _include(self, inc: dict, depth: int) -> set:
        system = inc.get("system")
        result: set | None = None
        if system:
            if inc.get("concept"):
                result = {(system, c["code"]) for c in inc["concept"]}
            elif inc.get("filter"):
                result = self._filter(system, inc["filter"])
            else:
                result = {(system, code) for code in self._all_codes(system)}
        for vs_url in inc.get("valueSet", []):
            sub = set(self._expand(strip_version(vs_url), depth + 1))
            result = sub if result is None else result & sub
        if result is None:
            raise CannotExpand("include names neither a system nor a ValueSet")
        return result

    def _codesystem(self, system: str) -> dict:
        cs = self.codesystems.get(system)
        if cs is None:
            raise CannotExpand(f"CodeSystem {system} is not held offline")
        if cs.get("content") not in ("complete", None):
            raise CannotExpand(f"CodeSystem {system} content is '{cs.get('content')}', not complete")
        return cs

    def _all_codes(self, system: str) -> list[str]:
        cs = self._codesystem(system)
        return [c["code"] for c in _walk_concepts(cs.get("concept", []))]

    def _filter(self, system: str, filters: list[dict]) -> set:
        cs = self._codesystem(system)
        codes: set | None = None
        for f in filters:
            op, prop, value = f.get("op"), f.get("property"), f.get("value")
            if op in ("is-a", "descendent-of") and prop == "concept":
                if not isinstance(value, str):
                    raise CannotExpand(f"filter {prop} {op}: the value must be a code")
                node = _find_concept(cs.get("concept", []), value)
                if node is None:
                    raise CannotExpand(f"filter {prop} {op} {value}: code not in {system}")
                found = {c["code"] for c in _walk_concepts(node.get("concept", []))}
                if op == "is-a":
                    found.add(value)
                found |= _descendants_by_parent_property(cs, value)
            elif op == "=":
                found = {
                    c["code"]
                    for c in _walk_concepts(cs.get("concept", []))
                    if any(p.get("code") == prop and _prop_value(p) == value for p in c.get("property", []))
                }
            else:
                raise CannotExpand(f"filter op '{op}' on {system} is not supported offline")
            codes = found if codes is None else codes & found
        return {(system, c) for c in (codes or set())}


def _prop_value(p: dict):
    for k, v in p.items():
        if k.startswith("value"):
            return str(v).lower() if isinstance(v, bool) else v
    return None


def _walk_concepts(concepts: list[dict]):
    for c in concepts:
        yield c
        if c.get("concept"):
            yield from _walk_concepts(c["concept"])


def _find_concept(concepts: list[dict], code: str) -> dict | None:
    for c in _walk_concepts(concepts):
        if c.get("code") == code:
            return c
    return None


def _descendants_by_parent_property(cs: dict, root: str) -> set:
    """Some CodeSystems state hierarchy with a ``parent`` property instead of nesting."""
    children: dict[str, list[str]] = {}
    for c in _walk_concepts(cs.get("concept", [])):
        for p in c.get("property", []):
            if p.get("code") in ("parent", "subsumedBy") and p.get("valueCode"):
                children.setdefault(p["valueCode"], []).append(c["code"])
    out: set = set()
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in out:
                out.add(child)
                stack.append(child)
    return out


def _walk_contains(contains: list[dict]):
    for c in contains:
        if c.get("code") and not c.get("abstract"):
            yield (c.get("system"), c["code"])
        if c.get("contains"):
            yield from _walk_contains(c["contains"])
