"""A list made from a one-item list is read without a lambda; the rows must not change.

``first()``, ``exists()`` and the columns and conditions built on them take a shortcut on DuckDB
when the list they start from has one item (:meth:`DuckDB._only_item`). These tests run random
resources through views of ``where()``, ``ofType()``, ``extension()`` and ``getReferenceKey()``
chains with and without the shortcut, on the typed plan and the JSON plan, and demand the same
rows: lists of none, one and several items, items that fail the filter, items without the
element, and missing lists.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thrive_fhir.reporting import dialects
from thrive_fhir.reporting.compiler import compile_view
from thrive_fhir.reporting.engine import DuckEngine
from thrive_fhir.reporting.sources import NdjsonFolder

VIEW = {
    "resourceType": "ViewDefinition",
    "name": "one_item",
    "resource": "Observation",
    "select": [
        {
            "column": [
                {"name": "id", "path": "getResourceKey()", "type": "string"},
                {"name": "s1_code", "path": "code.coding.where(system = 's1').code.first()", "type": "string"},
                {"name": "any_code", "path": "code.coding.code.first()", "type": "string"},
                {"name": "has_a", "path": "code.coding.where(code = 'a').exists()", "type": "boolean"},
                {"name": "has_s1_a", "path": "code.coding.where(system = 's1' and code = 'a').exists()"},
                {"name": "role", "path": "performer.getReferenceKey(PractitionerRole).first()", "type": "string"},
                {"name": "who", "path": "performer.reference.first()", "type": "string"},
                {"name": "pet", "path": "extension('u1').value.ofType(string).first()", "type": "string"},
                {
                    "name": "episode",
                    "path": "extension('u2').value.ofType(Reference).getReferenceKey(EpisodeOfCare).first()",
                    "type": "string",
                },
            ]
        }
    ],
}
#: The same rows, kept by a ``where`` built on exists() (a shared scan's flag).
FILTERED = {**VIEW, "name": "filtered", "where": [{"path": "code.coding.where(system = 's1' and code = 'a').exists()"}]}

_maybe = lambda values: st.sampled_from([*values, None])  # noqa: E731
CODING = st.fixed_dictionaries({}, optional={"system": _maybe(["s1", "s2"]), "code": _maybe(["a", "b"])})
REFERENCE = st.fixed_dictionaries(
    {},
    optional={
        "reference": _maybe(
            ["PractitionerRole/r1", "Practitioner/p9", "PractitionerRole/r2/_history/4", "EpisodeOfCare/e1"]
        )
    },
)
EXTENSION = st.one_of(
    st.fixed_dictionaries({"url": st.just("u1"), "valueString": st.sampled_from(["cat", "dog"])}),
    st.fixed_dictionaries({"url": st.just("u2"), "valueReference": REFERENCE}),
    st.fixed_dictionaries({"url": st.just("u1"), "valueInteger": st.just(3)}),
)
LISTS = lambda items: st.one_of(st.none(), st.lists(items, max_size=3))  # noqa: E731
RESOURCE = st.fixed_dictionaries(
    {},
    optional={
        "code": st.one_of(st.fixed_dictionaries({}), st.fixed_dictionaries({"coding": LISTS(CODING)})),
        "performer": LISTS(REFERENCE),
        "extension": LISTS(EXTENSION),
    },
)


def _clean(value):
    """JSON as FHIR writes it: no nulls, no empty objects or lists."""
    if isinstance(value, dict):
        out = {k: _clean(v) for k, v in value.items() if v is not None}
        return {k: v for k, v in out.items() if v not in ({}, [])}
    if isinstance(value, list):
        return [c for c in (_clean(v) for v in value) if c not in ({}, [])]
    return value


def _rows(folder: Path, view: dict, typed: bool) -> list[tuple]:
    engine = DuckEngine(NdjsonFolder.open(folder))
    try:
        compiled = compile_view(view, "duckdb", typed=typed)
        assert compiled.typed is typed
        files = engine.source.files_for("Observation")
        source = f"[{', '.join(repr(str(f)) for f in files)}]" if typed else engine.source_sql("Observation")
        return sorted(engine.con.execute(compiled.sql(source)).fetchall(), key=repr)
    finally:
        engine.close()


def _without_shortcut(monkeypatch):
    monkeypatch.setattr(dialects.DuckDB, "_only_item", lambda self, lst: (lst, None, f"({lst})[1]"))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(resources=st.lists(RESOURCE, min_size=1, max_size=40))
@pytest.mark.parametrize("typed", [True, False], ids=["typed", "json"])
@pytest.mark.parametrize("view", [VIEW, FILTERED], ids=["columns", "where"])
def test_one_item_shortcut_gives_the_rows_of_the_lambdas(tmp_path_factory, monkeypatch, resources, typed, view):
    folder = tmp_path_factory.mktemp("one-item")
    lines = [
        json.dumps({"resourceType": "Observation", "id": f"o{i}", "status": "final", **_clean(r)})
        for i, r in enumerate(resources)
    ]
    (folder / "Observation.ndjson").write_text("\n".join(lines) + "\n")
    fast = _rows(folder, view, typed)
    with monkeypatch.context() as m:
        _without_shortcut(m)
        slow = _rows(folder, view, typed)
    assert fast == slow


def test_the_shortcut_is_taken_and_the_lambdas_stay_for_longer_lists(tmp_path):
    """The one-item form is in the SQL (else this file tests nothing), and both kinds of list
    give what the specification says."""
    sql = compile_view(VIEW, "duckdb").sql("['x.ndjson']")
    assert 'len(t."performer") = 1' in sql and 'list_any_value(list_transform(t."performer"' in sql
    resources = [
        {
            "id": "one",
            "code": {"coding": [{"system": "s1", "code": "a"}]},
            "performer": [{"reference": "PractitionerRole/r1"}],
        },
        {
            "id": "two",
            "code": {"coding": [{"system": "s2", "code": "b"}, {"system": "s1", "code": "a"}]},
            "performer": [{"reference": "Practitioner/p9"}, {"reference": "PractitionerRole/r2/_history/4"}],
            "extension": [{"url": "u1", "valueInteger": 3}, {"url": "u1", "valueString": "dog"}],
        },
        {
            "id": "miss",
            "code": {"coding": [{"system": "s2", "code": "a"}]},
            "performer": [{"reference": "Practitioner/p9"}],
        },
    ]
    (tmp_path / "Observation.ndjson").write_text(
        "".join(json.dumps({"resourceType": "Observation", "status": "final", **r}) + "\n" for r in resources)
    )
    for typed in (True, False):
        rows = {r[0]: r[1:] for r in _rows(tmp_path, VIEW, typed)}
        assert rows["Observation/one"] == (
            "a",
            "a",
            True,
            True,
            "PractitionerRole/r1",
            "PractitionerRole/r1",
            None,
            None,
        )
        assert rows["Observation/two"] == ("a", "b", True, True, "PractitionerRole/r2", "Practitioner/p9", "dog", None)
        assert rows["Observation/miss"] == (None, "a", True, False, None, "Practitioner/p9", None, None)
