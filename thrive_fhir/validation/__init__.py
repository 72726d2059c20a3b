"""FHIR R4 validation against the THRIVE profiles, offline and fast.

    from thrive_fhir.validation import Validator, ValidationError, errors
    v = Validator.default()
    oo = v.validate(resource)          # OperationOutcome dict
    v.is_valid(resource)               # no error/fatal issues
    v.validate_set([r1, r2, ...])      # {"Type/id": OperationOutcome} + cross-resource app rules
    v.validate_bytes(body)             # raw bytes: size, UTF-8, JSON checked first; never raises
    errors(oo)                         # [(severity, code, expression, text)]

How it works: :mod:`.build` compiles StructureDefinition snapshots into rule tables (cached on
disk by :mod:`.cache`); :mod:`.walker` walks plain JSON dicts against them; :mod:`.fhirpath`
compiles invariants to closures; :mod:`.app_rules` holds the cross-resource rules.

Choices made against the HL7 reference validator (the Java ``InstanceValidator``):

- Extensions are checked against their definition's ``context`` (element paths such as
  ``HumanName.family``, types, ``Element``, ``extension`` contexts; FHIRPath contexts are accepted
  unchecked). An unknown extension URL is an **error** in namespaces whose definitions we hold (R4
  core's ``http://hl7.org/fhir/StructureDefinition/`` and our own canonical base): there it can only
  be a misspelling or an extension that does not exist. Elsewhere it is a **warning**, which is what
  the reference validator reports with unknown extensions allowed for a domain; it reports an error
  by default, but we cannot hold every IG's definitions offline. UK Core's namespace is accepted
  without a warning (its package is not available offline; the reference validator's
  ``extensionDomains`` setting does the same).
- An invariant that cannot be evaluated (a FHIRPath error, e.g. ``in`` over two values) is a
  warning naming it, not an error: the reference validator passes such resources.
- dom-3 is applied over the whole resource: a ``#id`` anywhere (Reference, canonical, uri; also in
  another contained resource) counts.
- A failure inside the validator is reported as a ``fatal`` issue whose text starts with
  ``internal-error:`` (see :func:`is_internal`); nothing raises.
"""

from .outcome import errors, has_errors, rule_of
from .validator import DEFAULT_MAX_BYTES, INTERNAL_RULE, ValidationError, Validator, is_internal

__all__ = [
    "DEFAULT_MAX_BYTES",
    "INTERNAL_RULE",
    "ValidationError",
    "Validator",
    "errors",
    "has_errors",
    "is_internal",
    "rule_of",
]
