"""Which search parameters the store implements, and how their values are pulled out of resources.

This table is the single source for three things that must agree: the index rows written with each
version, the SQL a search runs, and the CapabilityStatement (which therefore cannot advertise a
parameter the store does not implement). Names and element paths follow the R4 SearchParameter
definitions; only the ones the THRIVE app, the sync worker and agencies' plan views use are here.

Paths are dotted element names; a trailing ``[x]`` matches any choice type (``effective[x]``).
Reference parameters may name the target type (``patient`` only indexes ``Patient/...``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

from .fhirdates import MAX, MIN, date_range


@dataclass(frozen=True)
class SearchParam:
    name: str
    type: str  # token | reference | date | string
    paths: tuple[str, ...]
    target: str | None = None  # reference params: only references to this type

    @property
    def documentation(self) -> str:
        return " | ".join(self.paths)


def _p(name: str, type_: str, *paths: str, target: str | None = None) -> SearchParam:
    return SearchParam(name, type_, paths, target)


def _subject_pair(path: str = "subject") -> list[SearchParam]:
    return [_p("patient", "reference", path, target="Patient"), _p("subject", "reference", path)]


_IDENT = _p("identifier", "token", "identifier")

#: resource type -> {param name -> SearchParam}; ``_id`` and ``_lastUpdated`` work on every type.
PARAMS: dict[str, dict[str, SearchParam]] = {}


def _define(rtype: str, *params: SearchParam | list[SearchParam]) -> None:
    flat: list[SearchParam] = []
    for p in params:
        flat.extend(p if isinstance(p, list) else [p])
    PARAMS[rtype] = {p.name: p for p in flat}


_define(
    "Patient",
    _IDENT,
    _p("name", "string", "name"),
    _p("family", "string", "name.family"),
    _p("given", "string", "name.given"),
    _p("birthdate", "date", "birthDate"),
    _p("gender", "token", "gender"),
    _p("active", "token", "active"),
    _p("organization", "reference", "managingOrganization"),
    _p("general-practitioner", "reference", "generalPractitioner"),
)
_define(
    "Observation",
    _IDENT,
    _subject_pair(),
    _p("code", "token", "code"),
    _p("status", "token", "status"),
    _p("category", "token", "category"),
    _p("date", "date", "effective[x]"),
    _p("focus", "reference", "focus"),
    _p("performer", "reference", "performer"),
    _p("encounter", "reference", "encounter"),
    _p("based-on", "reference", "basedOn"),
    _p("derived-from", "reference", "derivedFrom"),
    _p("value-concept", "token", "valueCodeableConcept"),
)
_define(
    "Goal",
    _IDENT,
    _subject_pair(),
    _p("lifecycle-status", "token", "lifecycleStatus"),
    _p("achievement-status", "token", "achievementStatus"),
    _p("category", "token", "category"),
    _p("target-date", "date", "target.dueDate"),
    _p("start-date", "date", "startDate"),
)
_define(
    "CarePlan",
    _IDENT,
    _subject_pair(),
    _p("status", "token", "status"),
    _p("intent", "token", "intent"),
    _p("category", "token", "category"),
    _p("date", "date", "period"),
    _p("goal", "reference", "goal"),
    _p("care-team", "reference", "careTeam"),
    _p("encounter", "reference", "encounter"),
    _p("based-on", "reference", "basedOn"),
    _p("replaces", "reference", "replaces"),
    _p("part-of", "reference", "partOf"),
)
_define(
    "CareTeam",
    _IDENT,
    _subject_pair(),
    _p("status", "token", "status"),
    _p("category", "token", "category"),
    _p("date", "date", "period"),
    _p("participant", "reference", "participant.member"),
    _p("encounter", "reference", "encounter"),
)
_define(
    "Consent",
    _IDENT,
    _p("patient", "reference", "patient", target="Patient"),
    _p("status", "token", "status"),
    _p("category", "token", "category"),
    _p("scope", "token", "scope"),
    _p("date", "date", "dateTime"),
    _p("period", "date", "provision.period"),
    _p("actor", "reference", "provision.actor.reference"),
    _p("organization", "reference", "organization"),
    _p("consentor", "reference", "performer"),
    _p("source-reference", "reference", "sourceReference"),
)
_define(
    "Provenance",
    _p("target", "reference", "target"),
    _p("patient", "reference", "target", target="Patient"),
    _p("agent", "reference", "agent.who"),
    _p("recorded", "date", "recorded"),
    _p("when", "date", "occurred[x]"),
    _p("entity", "reference", "entity.what"),
)
_define(
    "EpisodeOfCare",
    _IDENT,
    _p("patient", "reference", "patient", target="Patient"),
    _p("status", "token", "status"),
    _p("type", "token", "type"),
    _p("date", "date", "period"),
    _p("organization", "reference", "managingOrganization"),
    _p("care-manager", "reference", "careManager"),
    _p("incoming-referral", "reference", "referralRequest"),
)
_define(
    "Flag",
    _IDENT,
    _subject_pair(),
    _p("date", "date", "period"),
    _p("author", "reference", "author"),
    _p("encounter", "reference", "encounter"),
)
_define(
    "ServiceRequest",
    _IDENT,
    _subject_pair(),
    _p("status", "token", "status"),
    _p("intent", "token", "intent"),
    _p("category", "token", "category"),
    _p("code", "token", "code"),
    _p("authored", "date", "authoredOn"),
    _p("occurrence", "date", "occurrence[x]"),
    _p("performer", "reference", "performer"),
    _p("requester", "reference", "requester"),
    _p("encounter", "reference", "encounter"),
    _p("based-on", "reference", "basedOn"),
    _p("replaces", "reference", "replaces"),
)
_define(
    "Task",
    _IDENT,
    _subject_pair("for"),
    _p("status", "token", "status"),
    _p("intent", "token", "intent"),
    _p("code", "token", "code"),
    _p("business-status", "token", "businessStatus"),
    _p("authored-on", "date", "authoredOn"),
    _p("period", "date", "executionPeriod"),
    _p("owner", "reference", "owner"),
    _p("requester", "reference", "requester"),
    _p("focus", "reference", "focus"),
    _p("based-on", "reference", "basedOn"),
    _p("part-of", "reference", "partOf"),
    _p("encounter", "reference", "encounter"),
)
_define(
    "Encounter",
    _IDENT,
    _subject_pair(),
    _p("status", "token", "status"),
    _p("class", "token", "class"),
    _p("type", "token", "type"),
    _p("date", "date", "period"),
    _p("episode-of-care", "reference", "episodeOfCare"),
    _p("service-provider", "reference", "serviceProvider"),
)
_define(
    "Condition",
    _IDENT,
    _subject_pair(),
    _p("code", "token", "code"),
    _p("category", "token", "category"),
    _p("clinical-status", "token", "clinicalStatus"),
    _p("verification-status", "token", "verificationStatus"),
    _p("onset-date", "date", "onset[x]"),
    _p("recorded-date", "date", "recordedDate"),
    _p("encounter", "reference", "encounter"),
)
_define(
    "QuestionnaireResponse",
    _IDENT,
    _subject_pair(),
    _p("status", "token", "status"),
    _p("authored", "date", "authored"),
    _p("questionnaire", "reference", "questionnaire"),
    _p("encounter", "reference", "encounter"),
)
_define(
    "DocumentReference",
    _IDENT,
    _subject_pair(),
    _p("status", "token", "status"),
    _p("type", "token", "type"),
    _p("category", "token", "category"),
    _p("date", "date", "date"),
)
_define(
    "RelatedPerson",
    _IDENT,
    _p("patient", "reference", "patient", target="Patient"),
    _p("name", "string", "name"),
    _p("relationship", "token", "relationship"),
)
_define(
    "Organization",
    _IDENT,
    _p("name", "string", "name", "alias"),
    _p("type", "token", "type"),
    _p("active", "token", "active"),
    _p("partof", "reference", "partOf"),
)
_define(
    "Practitioner",
    _IDENT,
    _p("name", "string", "name"),
    _p("family", "string", "name.family"),
    _p("given", "string", "name.given"),
    _p("active", "token", "active"),
)
_define(
    "PractitionerRole",
    _IDENT,
    _p("practitioner", "reference", "practitioner"),
    _p("organization", "reference", "organization"),
    _p("role", "token", "code"),
    _p("specialty", "token", "specialty"),
    _p("active", "token", "active"),
)
_define(
    "HealthcareService",
    _IDENT,
    _p("name", "string", "name"),
    _p("organization", "reference", "providedBy"),
    _p("service-category", "token", "category"),
    _p("service-type", "token", "type"),
    _p("specialty", "token", "specialty"),
    _p("active", "token", "active"),
)
_define(
    "Location", _IDENT, _p("name", "string", "name", "alias"), _p("organization", "reference", "managingOrganization")
)
_define("Device", _IDENT, _p("type", "token", "type"), _p("organization", "reference", "owner"))
_define(
    "AuditEvent",
    _p("date", "date", "recorded"),
    _p("type", "token", "type"),
    _p("subtype", "token", "subtype"),
    _p("action", "token", "action"),
    _p("outcome", "token", "outcome"),
    _p("agent", "reference", "agent.who"),
    _p("entity", "reference", "entity.what"),
    _p("patient", "reference", "entity.what", target="Patient"),
    _p("source", "reference", "source.observer"),
)
for _canonical_type in ("Questionnaire", "CodeSystem", "ValueSet", "ConceptMap", "StructureDefinition"):
    _define(
        _canonical_type,
        _p("url", "token", "url"),
        _p("version", "token", "version"),
        _p("name", "string", "name"),
        _p("status", "token", "status"),
    )

#: Which reference parameter puts a resource in a patient's compartment (the first match wins).
COMPARTMENT_PARAM = {rtype: "patient" for rtype, params in PARAMS.items() if "patient" in params}

#: ``Type:param`` pairs usable in ``_include`` / ``_revinclude`` (every reference parameter).
INCLUDES = sorted(f"{t}:{n}" for t, ps in PARAMS.items() for n, p in ps.items() if p.type == "reference")


def params_for(rtype: str) -> dict[str, SearchParam]:
    return PARAMS.get(rtype, {})


# --- extraction ----------------------------------------------------------------------------------


def reference_key(ref: str | None, base: str | None) -> str | None:
    """``Type/id`` for a literal reference to this server (relative, or absolute with our base)."""
    if not isinstance(ref, str) or not ref or ref.startswith("#") or ref.startswith("urn:"):
        return None
    if "://" in ref:
        if not base or not ref.startswith(base.rstrip("/") + "/"):
            return ref  # foreign absolute reference: indexed as-is
        ref = ref[len(base.rstrip("/")) + 1 :]
    parts = ref.split("/")
    if len(parts) >= 4 and parts[2] == "_history":
        parts = parts[:2]
    if len(parts) != 2 or not parts[0][:1].isupper():
        return None
    return f"{parts[0]}/{parts[1]}"


_COMPILED: dict[str, list[tuple[str, SearchParam, list[list[str]]]]] = {}


def _compiled(rtype: str) -> list[tuple[str, SearchParam, list[list[str]]]]:
    plan = _COMPILED.get(rtype)
    if plan is None:
        plan = [(name, sp, [path.split(".") for path in sp.paths]) for name, sp in params_for(rtype).items()]
        _COMPILED[rtype] = plan
    return plan


def extract(
    rtype: str, resource: dict, base: str | None = None
) -> list[tuple[str, str | None, str | None, object, object]]:
    """Index rows ``(param, system, value, date_low, date_high)`` for one resource.

    Built with plain lists rather than nested generators: this runs for every resource written,
    and generator set-up was most of its cost."""
    rows: list[tuple] = []
    for name, sp, paths in _compiled(rtype):
        if paths[0][0] not in resource and len(paths) == 1 and not paths[0][0].endswith("[x]"):
            continue  # the common case: element absent
        values: list = []
        for parts in paths:
            _collect(resource, parts, 0, values)
        found: list[tuple] = []
        for value in values:
            _index_values(sp, value, base, found)
        seen = set()
        for row in found:
            if row not in seen:
                seen.add(row)
                rows.append((name, *row))
    return rows


def _collect(node, parts: list[str], i: int, out: list) -> None:
    """Append to ``out`` the values at ``parts[i:]`` under ``node``: list items one by one, and a
    choice element (``effective[x]``) as ``(type name, value)`` — a dateTime string and a Period
    need different handling."""
    if i == len(parts):
        if isinstance(node, list):
            out.extend(node)
        else:
            out.append(node)
        return
    if isinstance(node, list):
        for item in node:
            _collect(item, parts, i, out)
        return
    if not isinstance(node, dict):
        return
    head = parts[i]
    if head.endswith("[x]"):
        stem = head[:-3]
        for key, value in node.items():
            if key.startswith(stem) and key[len(stem) : len(stem) + 1].isupper():
                if i + 1 < len(parts):
                    _collect(value, parts, i + 1, out)
                else:
                    out.append((key[len(stem) :], value))  # keep the choice type with the value
        return
    if head in node:
        _collect(node[head], parts, i + 1, out)


# Index rows hold only strings (or None): a store running without validation still takes any
# JSON, and a list where a code belongs must give no row rather than crash the write.
def _items(value) -> list:
    return value if isinstance(value, list) else []


def _text(value) -> str | None:
    return value if isinstance(value, str) else None


def _scalar(value) -> str | None:
    """A code or identifier value as index text: strings as they are, numbers and booleans as text."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, Decimal)):
        return str(value)  # a fhirjson.JsonDecimal: its literal
    return None


def _index_values(sp: SearchParam, value, base, out: list) -> None:
    """Append the ``(system, value, date_low, date_high)`` rows of one element value to ``out``."""
    choice = None
    if isinstance(value, tuple):
        choice, value = value
    if sp.type == "token":
        if isinstance(value, bool):
            out.append((None, "true" if value else "false", None, None))
        elif isinstance(value, str):
            out.append((None, value, None, None))
        elif isinstance(value, dict):
            if "coding" in value:
                for c in _items(value.get("coding")):
                    if isinstance(c, dict) and _scalar(c.get("code")) is not None:
                        out.append((_text(c.get("system")), _scalar(c["code"]), None, None))
            elif _scalar(value.get("code")) is not None:  # a Coding
                out.append((_text(value.get("system")), _scalar(value["code"]), None, None))
            elif _scalar(value.get("value")) is not None:  # an Identifier
                out.append((_text(value.get("system")), _scalar(value["value"]), None, None))
    elif sp.type == "reference":
        ref = _text(value.get("reference")) if isinstance(value, dict) else None
        key = reference_key(ref, base)
        if key and (sp.target is None or key.startswith(sp.target + "/")):
            out.append((None, key, None, None))
    elif sp.type == "date":
        if isinstance(value, str):
            rng = date_range(value)
            if rng:
                out.append((None, None, rng[0], rng[1]))
        elif isinstance(value, dict) and (choice in (None, "Period")):
            start = date_range(value["start"]) if _text(value.get("start")) else None
            end = date_range(value["end"]) if _text(value.get("end")) else None
            if start or end:
                out.append((None, None, start[0] if start else MIN, end[1] if end else MAX))
    elif sp.type == "string":
        for text in _strings(value):
            out.append((None, text.lower(), None, None))


def _strings(value) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):  # HumanName / Address: every text part is searchable
        for key in ("text", "family"):
            if isinstance(value.get(key), str):
                yield value[key]
        for part in ("given", "prefix", "suffix"):
            for item in _items(value.get(part)):
                if isinstance(item, str):
                    yield item


def compartment_patient(rtype: str, rid: str, index_rows: list[tuple]) -> str | None:
    """The id of the patient whose compartment this resource is in (None when in none)."""
    if rtype == "Patient":
        return rid
    param = COMPARTMENT_PARAM.get(rtype)
    if not param:
        return None
    for name, _system, value, _lo, _hi in index_rows:
        if name == param and value and value.startswith("Patient/"):
            return value[len("Patient/") :]
    return None
