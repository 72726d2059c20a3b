"""Hypothesis properties for the validator over primitive extensions and contained resources.

- never an exception, never an ``internal-error`` issue, whatever JSON sits in a ``_x`` element
  or in ``contained``;
- valid base-R4 resources built from these shapes are accepted (no error);
- dom-3 reports exactly the contained resources nothing in the resource refers to.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.validation_helpers import validator
from thrive_fhir.validation import errors, is_internal, rule_of

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DAR = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
IDS = st.from_regex(r"[A-Za-z0-9\-.]{1,20}", fullmatch=True)


def _issues(res):
    return errors(validator().validate(res))


def _errors(res):
    return [e for e in _issues(res) if e[0] in ("error", "fatal")]


# -- primitive extensions -------------------------------------------------------------------------
ext_content = st.fixed_dictionaries(
    {},
    optional={
        "id": IDS,
        "extension": st.lists(
            st.sampled_from(
                [
                    {"url": DAR, "valueCode": "unknown"},
                    {"url": DAR, "valueCode": "asked-declined"},
                    {"url": "http://hl7.org/fhir/StructureDefinition/iso21090-nullFlavor", "valueCode": "UNK"},
                ]
            ),
            min_size=1,
            max_size=2,
        ),
    },
).filter(bool)


@st.composite
def patient_with_primitive_extensions(draw):
    """A valid base-R4 Patient whose primitives may carry ids/extensions (``_x``), including
    array primitives with ``null`` values standing in for an absent value with an extension."""
    p = {"resourceType": "Patient", "id": draw(IDS)}
    for key, value in (("birthDate", "2014-05-06"), ("gender", "unknown"), ("active", True)):
        how = draw(st.sampled_from(["value", "value+ext", "ext-only", "absent"]))
        if how in ("value", "value+ext"):
            p[key] = value
        if how in ("value+ext", "ext-only"):
            p["_" + key] = draw(ext_content)
    name = {}
    n = draw(st.integers(0, 3))
    if n:
        given, ext = [], []
        for _ in range(n):
            kind = draw(st.sampled_from(["value", "value+ext", "null+ext"]))
            given.append(None if kind == "null+ext" else draw(st.sampled_from(["Ann", "Bo", "Cy"])))
            ext.append(draw(ext_content) if kind != "value" else None)
        name["given"] = given
        if any(e is not None for e in ext):
            name["_given"] = ext
    if draw(st.booleans()):
        name["family"] = "Tester"
        if draw(st.booleans()):
            name["_family"] = draw(ext_content)
    if name:
        p["name"] = [name]
    return p


@SETTINGS
@given(patient_with_primitive_extensions())
def test_valid_primitive_extensions_are_accepted(patient):
    assert _errors(patient) == []


json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8)
)
junk = st.recursive(
    json_leaf,
    lambda c: st.one_of(
        st.lists(c, max_size=3),
        st.dictionaries(
            st.sampled_from(["id", "extension", "url", "valueCode", "valueString", "x", "_x"]), c, max_size=3
        ),
    ),
    max_leaves=12,
)


@SETTINGS
@given(
    patient_with_primitive_extensions(), st.sampled_from(["_birthDate", "_gender", "_active", "_deceasedBoolean"]), junk
)
def test_any_json_in_a_primitive_extension_is_never_an_internal_error(patient, key, value):
    patient[key] = value
    issues = _issues(patient)
    assert not any(is_internal(e) for e in issues), issues


@SETTINGS
@given(patient_with_primitive_extensions(), junk)
def test_any_json_in_given_extensions_is_never_an_internal_error(patient, value):
    patient.setdefault("name", [{}])[0]["_given"] = value
    assert not any(is_internal(e) for e in _issues(patient))


# -- contained resources --------------------------------------------------------------------------
@st.composite
def observation_with_contained(draw):
    """An Observation with 0-4 contained resources; each is referenced from the container, from
    another contained resource, through a canonical, or (``orphans``) from nowhere."""
    n = draw(st.integers(0, 4))
    ids = [f"c{i}" for i in range(n)]
    contained = [{"resourceType": "Organization", "id": i, "name": f"Org {i}"} for i in ids]
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}
    performers, orphans = [], set()
    for k, cid in enumerate(ids):
        how = draw(st.sampled_from(["container", "from-contained", "canonical", "nowhere"]))
        if how == "from-contained" and k > 0:
            holder = contained[draw(st.integers(0, k - 1))]
            holder.setdefault("extension", []).append(
                {
                    "url": "http://example.org/fhir/StructureDefinition/related",
                    "valueReference": {"reference": "#" + cid},
                }
            )
            # the holder itself may be an orphan; the reference still counts (R4 dom-3)
        elif how == "canonical":
            obs.setdefault("extension", []).append(
                {"url": "http://example.org/fhir/StructureDefinition/source", "valueCanonical": "#" + cid}
            )
        elif how == "nowhere":
            orphans.add(cid)
        else:
            performers.append({"reference": "#" + cid})
    if performers:
        obs["performer"] = performers
    if contained:
        obs["contained"] = contained
    return obs, orphans


@SETTINGS
@given(observation_with_contained())
def test_dom3_reports_exactly_the_unreferenced(case):
    obs, orphans = case
    issues = _issues(obs)
    assert not any(is_internal(e) for e in issues)
    dom3 = {e[2] for e in issues if rule_of(e[3]) == "dom-3"}
    expected = {f"Observation.contained[{int(c[1:])}]" for c in orphans}
    assert dom3 == expected
    # example.org extensions are unknown here: warnings, never errors
    others = [e for e in issues if e[0] in ("error", "fatal") and rule_of(e[3]) != "dom-3"]
    assert others == []


@SETTINGS
@given(st.lists(junk, min_size=1, max_size=3))
def test_any_json_in_contained_is_never_an_internal_error(items):
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "contained": items}
    assert not any(is_internal(e) for e in _issues(obs))


# -- any primitive of a valid resource may carry an id/extension ----------------------------------
import copy  # noqa: E402
import json  # noqa: E402

from tests.support.validation_helpers import ROOT  # noqa: E402

_FIXTURES = [
    json.loads(p.read_text(encoding="utf-8")) for p in sorted((ROOT / "tests" / "fixtures" / "r4").glob("*.json"))
]
#: Not elements that may carry extensions in JSON: resourceType, Resource.id and Element.id and
#: Extension.url (XML attributes in R4), and the narrative's XHTML div.
_NOT_EXTENSIBLE = {"resourceType", "id", "url", "div"}


def _primitive_slots(node, out):
    """(parent object, key) for every primitive or primitive array in ``node``."""
    if type(node) is dict:
        for k, v in node.items():
            if k.startswith("_") or k in _NOT_EXTENSIBLE or ("_" + k) in node:
                continue
            if type(v) in (str, bool, int, float) or (
                type(v) is list and v and all(type(x) in (str, bool, int, float) for x in v)
            ):
                out.append((node, k))
            else:
                _primitive_slots(v, out)
    elif type(node) is list:
        for x in node:
            _primitive_slots(x, out)
    return out


@SETTINGS
@given(
    st.sampled_from(range(len(_FIXTURES))),
    st.integers(min_value=0),
    st.lists(st.integers(min_value=0), max_size=3),
    ext_content,
)
def test_a_primitive_extension_anywhere_keeps_a_valid_resource_valid(which, pick, more, ext):
    res = copy.deepcopy(_FIXTURES[which])
    slots = _primitive_slots(res, [])
    for n in [pick, *more]:
        parent, key = slots[n % len(slots)]
        if ("_" + key) in parent:
            continue
        value = parent[key]
        parent["_" + key] = [copy.deepcopy(ext) for _ in value] if type(value) is list else copy.deepcopy(ext)
    assert _errors(res) == [], [k for _p, k in slots]
