"""Shared pieces of every builder: the error type, input checks and the FHIR fragments all resources share.

Builders check their input themselves instead of emitting a resource and asking the validator
afterwards: a clinician's form needs to know *which field* is wrong, in words it can show next to
that field, and a sync outbox must never hold a resource the store will reject.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal, overload

from .. import canonical
from ..ids import resource_id

#: Reference id: FHIR ``id`` datatype (1-64 of letters, digits, '-' and '.').
_ID = r"[A-Za-z0-9\-.]{1,64}"
_REF_RE = re.compile(rf"^([A-Z][A-Za-z]+)/({_ID})$")
_ODS_RE = re.compile(r"^[A-Z0-9]{3,10}$")


class BuildError(ValueError):
    """Input that would make an invalid resource.

    ``field`` is the input attribute at fault (``items[2].text`` for a part of a list), ``message`` a
    plain sentence a form can show next to it. ``str(err)`` is ``"<field>: <message>"``.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, kw_only=True)
class Record:
    """What every record the app creates carries.

    ``local_id`` is the UUIDv4 minted once when the local record is first saved (the business
    identifier value; the FHIR id is derived from it). ``source_ods`` is the deploying
    organisation's ODS code: it becomes ``meta.source`` (with ``#source_fragment``, e.g. the outbox
    row id, when given). ``assigner_ods`` adds the identifier's assigner.
    """

    local_id: str
    source_ods: str | None = None
    source_fragment: str | None = None
    assigner_ods: str | None = None


# --- checks ----------------------------------------------------------------------------------
def check_local_id(value: object, field: str = "local_id") -> str:
    """A local record id must be a UUIDv4 string (docs/design/fhir-model.md section 4)."""
    if not isinstance(value, str):
        raise BuildError(field, "The record id is missing.")
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        raise BuildError(field, "The record id is not a valid UUID.") from None
    if parsed.version != 4 or str(parsed) != value.lower():
        raise BuildError(field, "The record id must be a version 4 UUID in its usual written form.")
    return str(parsed)


def check_ods(value: object, field: str) -> str:
    """ODS codes are short upper-case letters and digits (e.g. RXX, 8HK47)."""
    if not isinstance(value, str) or not _ODS_RE.match(value):
        raise BuildError(field, "Enter a valid ODS code (3 to 10 capital letters or digits).")
    return value


#: FHIR strings may not hold control characters other than tab, CR and LF.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
MAX_TEXT = 100_000


@overload
def check_text(value: object, field: str, what: str, *, required: Literal[True] = True) -> str: ...
@overload
def check_text(value: object, field: str, what: str, *, required: bool) -> str | None: ...
def check_text(value: object, field: str, what: str, *, required: bool = True) -> str | None:
    """Free text: kept exactly as entered, but it must say something and be storable."""
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        if not required and value == "":
            return None
        raise BuildError(field, f"Enter {what}.")
    if _CONTROL_RE.search(value):
        raise BuildError(field, "Remove the hidden control characters from this text.")
    if len(value) > MAX_TEXT:
        raise BuildError(field, f"This text is too long (at most {MAX_TEXT:,} characters).")
    return value


def check_ref(value: object, field: str, allowed: Iterable[str], what: str) -> str:
    """A literal reference ``Type/id`` whose type is one of ``allowed``."""
    allowed = tuple(allowed)
    if not isinstance(value, str) or not value:
        raise BuildError(field, f"Choose {what}.")
    m = _REF_RE.match(value)
    if not m:
        raise BuildError(field, f"The reference to {what} is not in the form Type/id.")
    if m.group(1) not in allowed:
        raise BuildError(field, f"{what[0].upper()}{what[1:]} must be a {_or(allowed)}, not a {m.group(1)}.")
    return value


def check_refs(values: object, field: str, allowed: Iterable[str], what: str, *, min_items: int = 0) -> list[str]:
    """A list of references; duplicates are dropped, order kept."""
    if values is None:
        values = ()
    if isinstance(values, str) or not isinstance(values, (list, tuple)):
        raise BuildError(field, f"Give {what} as a list.")
    out: list[str] = []
    for i, v in enumerate(values):
        ref = check_ref(v, f"{field}[{i}]", allowed, what)
        if ref not in out:
            out.append(ref)
    if len(out) < min_items:
        raise BuildError(field, f"Add at least {min_items} {what}." if min_items > 1 else f"Add {what}.")
    return out


def check_code(value: object, field: str, allowed: Iterable[str], what: str) -> str:
    """A code from a fixed list."""
    allowed = tuple(allowed)
    if not isinstance(value, str) or value not in allowed:
        raise BuildError(field, f"Choose {what}: one of {', '.join(allowed)}.")
    return value


def check_datetime(value: object, field: str, what: str, *, not_after: datetime | None = None) -> datetime:
    """A timezone-aware datetime, not in the future (when ``not_after`` is given)."""
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise BuildError(field, f"Enter {what} as a date and time with a time zone.")
    if not_after is not None and value > not_after:
        raise BuildError(field, f"{what[0].upper()}{what[1:]} cannot be in the future.")
    return value


def check_date(value: object, field: str, what: str) -> date:
    """A calendar date (a ``datetime`` is refused: it would silently lose its time)."""
    if not isinstance(value, date) or isinstance(value, datetime):
        raise BuildError(field, f"Enter {what} as a date.")
    return value


def now_utc() -> datetime:
    return datetime.now(UTC)


def _or(types: tuple[str, ...]) -> str:
    return types[0] if len(types) == 1 else ", ".join(types[:-1]) + " or " + types[-1]


# --- fragments -------------------------------------------------------------------------------
def fhir_datetime(value: datetime) -> str:
    """ISO 8601 as FHIR wants it; UTC written with ``Z`` like the documented examples."""
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def fhir_instant(value: datetime) -> str:
    return fhir_datetime(value)


def fhir_date(value: date) -> str:
    return value.isoformat()


def ref(value: str) -> dict:
    return {"reference": value}


def coding(system: str, code: str, display: str | None = None) -> dict:
    c = {"system": system, "code": code}
    if display:
        c["display"] = display
    return c


def concept(system: str, code: str, display: str | None = None, text: str | None = None) -> dict:
    cc: dict = {"coding": [coding(system, code, display)]}
    if text:
        cc["text"] = text
    return cc


def episode_extension(episode_ref: str) -> dict:
    return {"url": canonical.EXT_EPISODE, "valueReference": ref(episode_ref)}


def business_identifier(kind: str, local_id: str, record: Record) -> dict:
    """``{BASE}/Id/<kind>|<local id>``, with the assigning organisation when ``assigner_ods`` is set."""
    identifier: dict = {"system": canonical.id_system(kind), "value": local_id}
    if record.assigner_ods is not None:
        identifier["assigner"] = {
            "identifier": {"system": canonical.ODS_ORG, "value": check_ods(record.assigner_ods, "assigner_ods")}
        }
    return identifier


def start_resource(resource_type: str, kind: str, record: Record, profile: str) -> dict:
    """``resourceType``, deterministic ``id``, ``meta`` (profile, source) and business identifier.

    Key order follows the documented examples so that NDJSON diffs stay readable.
    """
    local_id = check_local_id(record.local_id)
    meta: dict = {"profile": [profile]}
    if record.source_ods is not None:
        meta["source"] = canonical.source_uri(check_ods(record.source_ods, "source_ods"))
        if record.source_fragment:
            meta["source"] += "#" + record.source_fragment
    return {
        "resourceType": resource_type,
        "id": resource_id(kind, local_id),
        "meta": meta,
        "identifier": [business_identifier(kind, local_id, record)],
    }


def reorder(resource: dict, first: Iterable[str]) -> dict:
    """Put ``extension`` (and other named keys) right after meta, as FHIR JSON examples do."""
    head = ("resourceType", "id", "meta", *first)
    out = {k: resource[k] for k in head if k in resource}
    out.update((k, v) for k, v in resource.items() if k not in out)
    return out


def display_for(system: str, code: str) -> str | None:
    """Display of one of our codes, from the terminology module (the one home for displays)."""
    from .. import terminology  # local import: terminology loads the CodeSystems on first use

    return terminology.display(system, code)


@dataclass(frozen=True)
class Coded:
    """A code with its system (and display when the caller has it), e.g. one local-offer service."""

    system: str
    code: str
    display: str | None = None


def check_local_offer(value: object, field: str) -> Coded:
    """A local offer service: a code from one of the site ``local-offer-*`` CodeSystems (or SNOMED CT)."""
    if not isinstance(value, Coded) or not isinstance(value.code, str) or not value.code.strip():
        raise BuildError(field, "Choose a service from the local offer.")
    if not (value.system.startswith(canonical.local_offer_cs("")) or value.system == canonical.SNOMED):
        raise BuildError(field, "The service must come from the local offer.")
    return value
