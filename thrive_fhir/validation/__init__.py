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
"""

from .outcome import errors, has_errors, rule_of
from .validator import DEFAULT_MAX_BYTES, INTERNAL_RULE, ValidationError, Validator, is_internal

__all__ = ["Validator", "ValidationError", "errors", "has_errors", "rule_of", "DEFAULT_MAX_BYTES",
           "INTERNAL_RULE", "is_internal"]
