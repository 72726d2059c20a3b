"""Identifiers: deterministic resource ids and NHS number checks.

Every resource the app creates carries a business identifier ``{BASE}/Id/<kind>|<uuid4>`` minted
once when the local record is first saved; its FHIR id is ``uuid5(ID_NAMESPACE, system|value)``.
A retried PUT therefore lands on the same resource in any store, including stores that insist on
UUID ids (docs/design/fhir-model.md section 4).

NHS numbers are never used to derive ids: an unkeyed hash of a ten-digit number is reversible by
trying all ten billion numbers.
"""

from __future__ import annotations

import uuid

from .canonical import ID_NAMESPACE, id_system


def new_local_id() -> str:
    """A fresh UUIDv4 for a new local record (the business identifier value)."""
    return str(uuid.uuid4())


def deterministic_id(system: str, value: str) -> str:
    """The FHIR resource id for business identifier ``system|value``."""
    return str(uuid.uuid5(ID_NAMESPACE, f"{system}|{value}"))


def resource_id(kind: str, local_id: str) -> str:
    """Shorthand for :func:`deterministic_id` with one of our identifier systems."""
    return deterministic_id(id_system(kind), local_id)


def nhs_number_check_digit(first_nine: str) -> int | None:
    """Modulus-11 check digit for the first nine digits, or None when no valid number exists.

    Weights 10..2; check = 11 - (sum mod 11); 11 becomes 0; 10 means the nine digits can never
    form a valid NHS number.
    """
    if len(first_nine) != 9 or not first_nine.isdigit():
        raise ValueError("need exactly nine digits")
    total = sum(int(d) * w for d, w in zip(first_nine, range(10, 1, -1)))
    check = 11 - (total % 11)
    if check == 11:
        return 0
    if check == 10:
        return None
    return check


def is_valid_nhs_number(value: str) -> bool:
    """True for ten digits with a correct modulus-11 check digit."""
    if len(value) != 10 or not value.isdigit():
        return False
    return nhs_number_check_digit(value[:9]) == int(value[9])


def is_test_nhs_number(value: str) -> bool:
    """True for a valid NHS number in the range reserved for testing (starting 999)."""
    return value.startswith("999") and is_valid_nhs_number(value)
