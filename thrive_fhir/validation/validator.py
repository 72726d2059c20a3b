"""The public validator: structure, datatypes, cardinality, fixed/pattern values, required
bindings, invariants, and the app rules, with OperationOutcome as the only output.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime

from . import app_rules, fhirpath
from .build import build_tables
from .cache import Sources, load_or_build
from .invariants import InvariantRunner
from .outcome import has_errors, outcome
from .walker import Walk

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
#: Rule name (start of ``details.text``) of an issue that means "the validator itself failed".
INTERNAL_RULE = "internal-error"

log = logging.getLogger(__name__)


class ValidationError(Exception):
    """Raised by :meth:`Validator.check` when a resource is invalid; carries the OperationOutcome."""

    def __init__(self, oo: dict):
        self.outcome = oo
        first = next((i for i in oo.get("issue", []) if i.get("severity") in ("error", "fatal")), None)
        msg = "invalid FHIR resource"
        if first:
            msg = f"{(first.get('expression') or ['?'])[0]}: {first['details']['text']}"
        super().__init__(msg)


class Validator:
    """Validate FHIR R4 JSON against R4 and the THRIVE profiles. Thread-safe for validation."""

    _default = None
    _default_lock = threading.Lock()

    def __init__(self, tables, clock=None):
        self.tables = tables
        self.runner = InvariantRunner(tables.type_index, set(tables.resources))
        self.clock = clock or (lambda: datetime.now(UTC))
        self.startup_seconds = None
        self.loaded_from_cache = None

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def default(cls) -> Validator:
        """The shared validator for this repository's profiles (built or unpickled once)."""
        if cls._default is None:
            with cls._default_lock:
                if cls._default is None:
                    cls._default = cls.from_sources(Sources.default())
        return cls._default

    @classmethod
    def from_sources(cls, sources: Sources, clock=None) -> Validator:
        t0 = time.perf_counter()

        def build():
            tables = build_tables(sources.core_dir, sources.profile_files, sources.term_files, sources.expansion_files)
            for inv in tables.invariants:
                try:
                    inv.ast = fhirpath.parse(inv.expression)
                except Exception:
                    inv.ast = None
            return tables

        tables, cached = load_or_build(sources, build)
        v = cls(tables, clock)
        v.startup_seconds = time.perf_counter() - t0
        v.loaded_from_cache = cached
        return v

    # -- introspection ----------------------------------------------------------------------------
    @property
    def known_profiles(self) -> set[str]:
        return set(self.tables.profiles)

    @property
    def own_profiles(self) -> set[str]:
        return set(self.tables.own_profiles)

    @property
    def skipped_bindings(self) -> dict[str, str]:
        """Required-binding ValueSets that cannot be expanded offline (not checked), with why."""
        return dict(self.tables.skipped_bindings)

    @property
    def skipped_invariants(self) -> dict[str, str]:
        out = dict(self.tables.skipped_invariants)
        out.update(self.runner.skipped)
        return out

    # -- validation -----------------------------------------------------------------------------
    def issues(self, resource, path: str | None = None) -> list[tuple]:
        """Issue tuples for one resource, including single-resource app rules and, for a Bundle,
        the cross-resource rules between its entries."""
        w = Walk(self.tables, self.runner)
        try:
            w.resource(resource, path)
            if type(resource) is dict and resource.get("resourceType") in self.tables.resources:
                prefix = path or resource["resourceType"]
                now = self.clock()
                w.issues.extend(app_rules.single(resource, prefix, now))
                if resource["resourceType"] == "Bundle":
                    w.issues.extend(self._bundle_rules(resource, prefix, now))
        except RecursionError:
            w.err("structure", path, "structure: the resource is nested too deeply to validate", "fatal")
        except Exception as exc:
            # A defect of ours, not of the resource: reported as a problem with this resource
            # (so a store refuses it rather than answering 500, and a folder run goes on), with a
            # rule name of its own so callers can tell it from "invalid" (thrive validate exits 3).
            # the message only at error level (no traceback reaches a user's terminal or a log
            # reader); the traceback at debug level for whoever debugs it
            log.error("validator failed on a %s: %s", _rt(resource), type(exc).__name__)
            log.debug("validator failure", exc_info=True)
            w.err(
                "exception",
                path or _rt(resource),
                f"{INTERNAL_RULE}: the validator failed on this resource ({type(exc).__name__}); "
                "it was not validated. This is a defect in THRIVE-FHIR: please report it",
                "fatal",
            )
        return w.issues

    def _bundle_rules(self, bundle, prefix, now):
        items = []
        for i, e in enumerate(bundle.get("entry") or ()):
            if type(e) is dict and type(e.get("resource")) is dict:
                p = f"{prefix}.entry[{i}].resource"
                items.append((e["resource"], p, e.get("fullUrl") if type(e.get("fullUrl")) is str else None))
        out = []
        for res, p, _f in items:
            out.extend(app_rules.single(res, p, now))
        out.extend(issue for _i, issue in app_rules.cross(items))
        return out

    def validate(self, resource) -> dict:
        """OperationOutcome for one resource (a Bundle is validated with its entries)."""
        return outcome(self.issues(resource))

    def is_valid(self, resource) -> bool:
        return not any(i[0] in ("error", "fatal") for i in self.issues(resource))

    def check(self, resource) -> None:
        """Raise :class:`ValidationError` (carrying the OperationOutcome) unless valid."""
        oo = self.validate(resource)
        if has_errors(oo):
            raise ValidationError(oo)

    def validate_set(self, resources: list) -> dict[str, dict]:
        """OperationOutcome per resource (key ``Type/id``, else the list index as a string), with
        the cross-resource app rules applied between all of them (and Bundle entries within)."""
        keys, per, owner = [], {}, []
        items: list[tuple[dict, str, str | None]] = []
        for i, res in enumerate(resources):
            key = _key(res, i)
            if key in per:
                key = f"{key}#{i}"
            keys.append(key)
            per[key] = self.issues(res)
            if type(res) is dict:
                items.append((res, res.get("resourceType") or "Resource", None))
                owner.append(key)
                if res.get("resourceType") == "Bundle":
                    for j, e in enumerate(res.get("entry") or ()):
                        if type(e) is dict and type(e.get("resource")) is dict:
                            items.append(
                                (
                                    e["resource"],
                                    f"Bundle.entry[{j}].resource",
                                    e.get("fullUrl") if type(e.get("fullUrl")) is str else None,
                                )
                            )
                            owner.append(key)
        try:
            for idx, issue in app_rules.cross(items):
                per[owner[idx]].append(issue)
        except Exception as exc:
            log.error("cross-resource rules failed: %s", type(exc).__name__)
            log.debug("validator failure", exc_info=True)
            for k in keys:
                per[k].append(
                    (
                        "fatal",
                        "exception",
                        None,
                        f"{INTERNAL_RULE}: the cross-resource rules failed "
                        f"({type(exc).__name__}); they were not checked. This is a defect in THRIVE-FHIR",
                    )
                )
        return {k: outcome(per[k]) for k in keys}

    def validate_bytes(self, data: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> dict:
        """Validate raw request/file content; never raises, whatever the bytes."""
        from .raw import parse_json_bytes

        try:
            res, issue = parse_json_bytes(data, max_bytes)
        except Exception as exc:
            log.error("validator failed parsing content: %s", type(exc).__name__)
            log.debug("validator failure", exc_info=True)
            issue = (
                "fatal",
                "exception",
                None,
                f"{INTERNAL_RULE}: the validator failed reading this content ({type(exc).__name__})",
            )
        if issue is not None:
            return outcome([issue])
        return self.validate(res)


def _rt(res) -> str:
    rt = res.get("resourceType") if type(res) is dict else None
    return rt if type(rt) is str and len(rt) < 64 else "resource"


def is_internal(issue: tuple) -> bool:
    """Whether an issue tuple reports a failure of the validator rather than of the resource."""
    return issue[1] == "exception" and str(issue[3]).startswith(INTERNAL_RULE + ":")


def _key(res, i) -> str:
    if type(res) is dict and type(res.get("resourceType")) is str and type(res.get("id")) is str:
        return f"{res['resourceType']}/{res['id']}"
    return str(i)


def dumps(oo: dict) -> str:
    return json.dumps(oo, indent=2, ensure_ascii=False)
