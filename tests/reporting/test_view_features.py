"""ViewDefinition features, written from the SQL on FHIR v2 specification's text.

Each case is a handful of invented resources, a view, and the rows the specification says it
gives. The same cases run on DuckDB (always) and on Spark (``slow``; one shared session), and the
two engines must agree with the expected rows and so with each other. The Spark run is in
test_spark_parity.py, beside the other Spark test, so that one worker of a parallel run starts
one JVM for both.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from thrive_fhir.reporting.compiler import ViewError, compile_view
from thrive_fhir.reporting.engine import DuckEngine
from thrive_fhir.reporting.sources import NdjsonFolder

PATIENTS = [
    {
        "resourceType": "Patient",
        "id": "p1",
        "active": True,
        "gender": "female",
        "birthDate": "2010-04-01",
        "name": [
            {"use": "official", "family": "Amber", "given": ["Ada", "Bea"]},
            {"use": "nickname", "given": ["Addy"]},
        ],
        "telecom": [{"system": "phone", "value": "0111"}, {"system": "email", "value": "a@example.org"}],
        "contact": [{"telecom": [{"system": "phone", "value": "0222"}]}],
        "managingOrganization": {"reference": "Organization/o1"},
        "generalPractitioner": [
            {"reference": "Practitioner/g1"},
            {"reference": "Organization/o2/_history/3"},
            {"reference": "http://elsewhere.example/Practitioner/x"},
        ],
        "extension": [
            {"url": "http://example.org/ext/pet", "valueString": "cat"},
            {"url": "http://example.org/ext/score", "valueInteger": 7},
        ],
    },
    {"resourceType": "Patient", "id": "p2", "active": False, "gender": "male", "name": [{"family": "Birch"}]},
    {"resourceType": "Patient", "id": "p3"},
]
OBSERVATIONS = [
    {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "code": {"coding": [{"system": "s", "code": "a"}]},
        "subject": {"reference": "Patient/p1"},
        "valueQuantity": {"value": 12.5, "unit": "kg"},
        "component": [
            {"code": {"coding": [{"code": "c1"}]}, "valueInteger": 3},
            {"code": {"coding": [{"code": "c2"}]}, "valueString": "x"},
        ],
    },
    {
        "resourceType": "Observation",
        "id": "o2",
        "status": "final",
        "code": {"coding": [{"system": "s", "code": "b"}]},
        "subject": {"reference": "Patient/p2"},
        "valueString": "high",
        "effectiveDateTime": "2024-01-02T10:00:00Z",
    },
]
QUESTIONNAIRES = [
    {
        "resourceType": "QuestionnaireResponse",
        "id": "q1",
        "status": "completed",
        "item": [
            {"linkId": "1", "item": [{"linkId": "1.1", "item": [{"linkId": "1.1.1"}]}]},
            {"linkId": "2", "answer": [{"valueString": "yes", "item": [{"linkId": "2.a"}]}]},
        ],
    },
]

#: Values written to a lower precision than their type allows, for lowBoundary()/highBoundary().
RISKS = [
    {
        "resourceType": "RiskAssessment",
        "id": "r1",
        "status": "final",
        "subject": {"reference": "Patient/p1"},
        "occurrenceDateTime": "2024-02",
        "prediction": [{"probabilityDecimal": 0.25}, {"probabilityDecimal": 0.5}],
    },
    {
        "resourceType": "RiskAssessment",
        "id": "r2",
        "status": "final",
        "subject": {"reference": "Patient/p2"},
        "occurrenceDateTime": "2023-05-06T07:08:09.5+01:00",
        "prediction": [{"probabilityDecimal": -3}],
    },
    {"resourceType": "RiskAssessment", "id": "r3", "status": "final", "subject": {"reference": "Patient/p3"}},
]


def _p(*columns, **extra):
    return {"column": [dict(zip(("name", "path"), c[:2]), **(c[2] if len(c) > 2 else {})) for c in columns], **extra}


CASES = {
    "columns and getResourceKey": (
        {"resource": "Patient", "select": [_p(("key", "getResourceKey()"), ("gender", "gender"))]},
        [("Patient/p1", "female"), ("Patient/p2", "male"), ("Patient/p3", None)],
    ),
    "type name prefix": (
        {"resource": "Patient", "select": [_p(("id", "Patient.id"))]},
        [("p1",), ("p2",), ("p3",)],
    ),
    "forEach unnests, no row when empty": (
        {
            "resource": "Patient",
            "select": [_p(("id", "id")), {"forEach": "name", "column": [{"name": "family", "path": "family"}]}],
        },
        [("p1", "Amber"), ("p1", None), ("p2", "Birch")],
    ),
    "forEachOrNull keeps a row of nulls": (
        {
            "resource": "Patient",
            "select": [_p(("id", "id")), {"forEachOrNull": "name", "column": [{"name": "use", "path": "use"}]}],
        },
        [("p1", "official"), ("p1", "nickname"), ("p2", None), ("p3", None)],
    ),
    "nested forEach": (
        {
            "resource": "Patient",
            "select": [
                _p(("id", "id")),
                {"forEach": "name", "select": [{"forEach": "given", "column": [{"name": "given", "path": "$this"}]}]},
            ],
        },
        [("p1", "Ada"), ("p1", "Bea"), ("p1", "Addy")],
    ),
    "sibling selects are a cross product": (
        {
            "resource": "Patient",
            "select": [
                _p(("id", "id")),
                {"forEach": "name", "column": [{"name": "use", "path": "use"}]},
                {"forEach": "telecom", "column": [{"name": "tel", "path": "value"}]},
            ],
        },
        [
            ("p1", "official", "0111"),
            ("p1", "official", "a@example.org"),
            ("p1", "nickname", "0111"),
            ("p1", "nickname", "a@example.org"),
        ],
    ),
    "unionAll": (
        {
            "resource": "Patient",
            "select": [
                _p(("id", "id")),
                {
                    "unionAll": [
                        {
                            "forEach": "telecom",
                            "column": [{"name": "tel", "path": "value"}, {"name": "kind", "path": "'own'"}],
                        },
                        {
                            "forEach": "contact.telecom",
                            "column": [{"name": "tel", "path": "value"}, {"name": "kind", "path": "'contact'"}],
                        },
                    ]
                },
            ],
        },
        [("p1", "0111", "own"), ("p1", "a@example.org", "own"), ("p1", "0222", "contact")],
    ),
    "repeat follows nested items": (
        {
            "resource": "QuestionnaireResponse",
            "select": [_p(("id", "id")), {"repeat": ["item"], "column": [{"name": "link", "path": "linkId"}]}],
        },
        [("q1", "1"), ("q1", "2"), ("q1", "1.1"), ("q1", "1.1.1")],
    ),
    # Several repeat paths are each followed from every item reached; answer.item does not exist
    # on the resource itself, which was a compile error instead of no items there.
    "repeat over item and answer.item": (
        {
            "resource": "QuestionnaireResponse",
            "select": [{"repeat": ["item", "answer.item"], "column": [{"name": "link", "path": "linkId"}]}],
        },
        [("1",), ("2",), ("1.1",), ("1.1.1",), ("2.a",)],
    ),
    # repeat yields items in pre-order (each item, then its descendants), which %rowIndex counts:
    # the items came level by level before (1, 2, 1.1, 1.1.1).
    "repeat in pre-order with %rowIndex": (
        {
            "resource": "QuestionnaireResponse",
            "select": [
                {
                    "repeat": ["item"],
                    "column": [{"name": "i", "path": "%rowIndex"}, {"name": "link", "path": "linkId"}],
                }
            ],
        },
        [(0, "1"), (1, "1.1"), (2, "1.1.1"), (3, "2")],
    ),
    "where filters resources": (
        {"resource": "Patient", "where": [{"path": "active = true"}], "select": [_p(("id", "id"))]},
        [("p1",)],
    ),
    "where with exists and not": (
        {"resource": "Patient", "where": [{"path": "name.exists() and active.not()"}], "select": [_p(("id", "id"))]},
        [("p2",)],
    ),
    "constants": (
        {
            "resource": "Patient",
            "constant": [{"name": "use", "valueCode": "official"}, {"name": "n", "valueInteger": 1}],
            "select": [
                _p(("id", "id"), ("family", "name.where(use = %use).family"), ("n", "%n + 1", {"type": "integer"}))
            ],
        },
        [("p1", "Amber", 2), ("p2", None, 2), ("p3", None, 2)],
    ),
    "column types and collection": (
        {
            "resource": "Patient",
            "select": [
                _p(
                    ("id", "id"),
                    ("active", "active", {"type": "boolean"}),
                    ("given", "name.given", {"collection": True}),
                )
            ],
        },
        [("p1", True, ["Ada", "Bea", "Addy"]), ("p2", False, []), ("p3", None, [])],
    ),
    "getReferenceKey with and without a type": (
        {
            "resource": "Patient",
            "select": [
                _p(
                    ("id", "id"),
                    ("org", "managingOrganization.getReferenceKey(Organization)"),
                    ("not_pract", "managingOrganization.getReferenceKey(Practitioner)"),
                    ("gps", "generalPractitioner.getReferenceKey()", {"collection": True}),
                    ("gp_orgs", "generalPractitioner.getReferenceKey(Organization)", {"collection": True}),
                    ("gp_people", "generalPractitioner.getReferenceKey(Practitioner)", {"collection": True}),
                )
            ],
        },
        [
            (
                "p1",
                "Organization/o1",
                None,
                ["Practitioner/g1", "Organization/o2"],
                ["Organization/o2"],
                ["Practitioner/g1"],
            ),
            ("p2", None, None, [], [], []),
            ("p3", None, None, [], [], []),
        ],
    ),
    "ofType on a choice element": (
        {
            "resource": "Observation",
            "select": [
                _p(
                    ("id", "id"),
                    ("kg", "value.ofType(Quantity).value", {"type": "decimal"}),
                    ("text", "value.ofType(string)"),
                    ("when", "effective.ofType(dateTime)"),
                )
            ],
        },
        [("o1", 12.5, None, None), ("o2", None, "high", "2024-01-02T10:00:00Z")],
    ),
    "extension()": (
        {
            "resource": "Patient",
            "select": [
                _p(
                    ("id", "id"),
                    ("pet", "extension('http://example.org/ext/pet').value.ofType(string)"),
                    ("score", "extension('http://example.org/ext/score').value.ofType(integer)", {"type": "integer"}),
                )
            ],
        },
        [("p1", "cat", 7), ("p2", None, None), ("p3", None, None)],
    ),
    "first, join, indexer, empty": (
        {
            "resource": "Patient",
            "select": [
                _p(
                    ("id", "id"),
                    ("first", "name.given.first()"),
                    ("joined", "name.given.join('|')"),
                    ("second", "name.given[1]"),
                    ("no_name", "name.empty()", {"type": "boolean"}),
                )
            ],
        },
        # join() of no names is '' (the SQL on FHIR tests' "string join"); it was NULL.
        [("p1", "Ada", "Ada|Bea|Addy", "Bea", False), ("p2", None, "", None, False), ("p3", None, "", None, True)],
    ),
    "operators": (
        {
            "resource": "Observation",
            "select": [
                _p(
                    ("id", "id"),
                    ("double", "value.ofType(Quantity).value * 2", {"type": "decimal"}),
                    ("heavy", "value.ofType(Quantity).value > 10", {"type": "boolean"}),
                    ("c1", "component.where(code.coding.code = 'c1').value.ofType(integer) - 1", {"type": "integer"}),
                    ("either", "code.coding.code = 'a' or code.coding.code = 'b'", {"type": "boolean"}),
                )
            ],
        },
        [("o1", 25.0, True, 2, True), ("o2", None, None, None, True)],
    ),
    # where() at the start of a path works on the resource itself; the typed plan named a column
    # that does not exist (t.__root__) and DuckDB refused the query.
    "where() on the resource": (
        {
            "resource": "Observation",
            "select": [_p(("id", "id"))],
            "where": [{"path": "where(value.ofType(Quantity).value > 10).exists()"}],
        },
        [("o1",)],
    ),
    # %rowIndex: the item's 0-based position in the innermost forEach/forEachOrNull, 0 at the
    # resource and for forEachOrNull's row of nulls (it was an unknown constant).
    "%rowIndex numbers the items": (
        {
            "resource": "Patient",
            "select": [
                _p(("id", "id"), ("top", "%rowIndex")),
                {
                    "forEachOrNull": "name",
                    "column": [{"name": "i", "path": "%rowIndex"}, {"name": "use", "path": "use"}],
                    "select": [{"forEachOrNull": "given", "column": [{"name": "j", "path": "%rowIndex"}]}],
                },
            ],
        },
        [
            ("p1", 0, 0, "official", 0),
            ("p1", 0, 0, "official", 1),
            ("p1", 0, 1, "nickname", 0),
            ("p2", 0, 0, None, 0),
            ("p3", 0, 0, None, 0),
        ],
    ),
    # A JSON true given as valueInteger (the conformance suite's "boolean constant") is a boolean:
    # it was compiled as the integer 1, which equals no boolean.
    "a JSON boolean constant is a boolean": (
        {
            "constant": [{"name": "yes", "valueInteger": True}],
            "resource": "Patient",
            "select": [_p(("id", "id"))],
            "where": [{"path": "active = %yes"}],
        },
        [("p1",)],
    ),
    # lowBoundary()/highBoundary() were a compile error ("not supported by this engine"). A decimal
    # spans half a unit of its last digit either side; a partial dateTime is filled out to the
    # millisecond, in the earliest (+14:00) or latest (-12:00) zone when it has none (February
    # 2024 has 29 days); ".5" seconds span .500 to .599.
    "decimal and dateTime boundaries": (
        {
            "resource": "RiskAssessment",
            "select": [
                _p(
                    ("id", "id"),
                    ("p_low", "prediction.first().probability.ofType(decimal).lowBoundary()"),
                    ("p_high", "prediction.first().probability.ofType(decimal).highBoundary()"),
                    ("t_low", "occurrence.ofType(dateTime).lowBoundary()"),
                    ("t_high", "occurrence.ofType(dateTime).highBoundary()"),
                )
            ],
        },
        [
            ("r1", 0.245, 0.255, "2024-02-01T00:00:00.000+14:00", "2024-02-29T23:59:59.999-12:00"),
            ("r2", -3.5, -2.5, "2023-05-06T07:08:09.500+01:00", "2023-05-06T07:08:09.599+01:00"),
            ("r3", None, None, None, None),
        ],
    ),
    # With a precision: outward rounding of a decimal, a dateTime cut to the month or the hour,
    # each item of a collection, and date and time literals.
    "boundaries to a precision": (
        {
            "resource": "RiskAssessment",
            "select": [
                _p(
                    ("id", "id"),
                    ("p_low0", "prediction.first().probability.ofType(decimal).lowBoundary(0)"),
                    ("p_high1", "prediction.first().probability.ofType(decimal).highBoundary(1)"),
                    ("t_month", "occurrence.ofType(dateTime).highBoundary(6)"),
                    ("t_hour", "occurrence.ofType(dateTime).lowBoundary(10)"),
                    ("all_low", "prediction.probability.ofType(decimal).lowBoundary()", {"collection": True}),
                    ("d_high", "@2023-02.highBoundary()"),
                    ("tm_high", "@T10:30.highBoundary()"),
                    # A dateTime literal ending in minutes took the '.' of the call into itself,
                    # and a negated number had no type to take a boundary of.
                    ("dt_high", "@2010-10-10T15:21.highBoundary()"),
                    ("neg_low", "(-1.587).lowBoundary()"),
                )
            ],
            "where": [{"path": "id != 'r3'"}],
        },
        [
            (
                "r1",
                0.0,
                0.3,
                "2024-02",
                "2024-02-01T00+14:00",
                [0.245, 0.45],
                "2023-02-28",
                "10:30:59.999",
                "2010-10-10T15:21:59.999-12:00",
                -1.5875,
            ),
            (
                "r2",
                -4.0,
                -2.5,
                "2023-05",
                "2023-05-06T07+01:00",
                [-3.5],
                "2023-02-28",
                "10:30:59.999",
                "2010-10-10T15:21:59.999-12:00",
                -1.5875,
            ),
        ],
    ),
}


def write_feature_data(tmp: Path) -> NdjsonFolder:
    for name, items in (
        ("Patient", PATIENTS),
        ("Observation", OBSERVATIONS),
        ("QuestionnaireResponse", QUESTIONNAIRES),
        ("RiskAssessment", RISKS),
    ):
        (tmp / f"{name}.ndjson").write_text("".join(json.dumps(r) + "\n" for r in items))
    return NdjsonFolder.open(tmp)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_feature_data(tmp_path_factory.mktemp("features"))


def _norm(rows):
    return sorted((tuple(list(v) if isinstance(v, (list, tuple)) else v for v in r) for r in rows), key=repr)


@pytest.mark.parametrize("case", list(CASES))
def test_duckdb(folder, case):
    view, expected = CASES[case]
    engine = DuckEngine(folder)
    _, sql = engine.query_for({"resourceType": "ViewDefinition", "name": "v", **view})
    assert _norm(engine.con.execute(sql).fetchall()) == _norm(expected)


BAD = [
    (
        {"resource": "Patient", "select": [_p(("x", "name.family.frobnicate()"))]},
        ["'x'", "name.family.frobnicate()", "unknown function frobnicate()"],
    ),
    (
        {"resource": "Patient", "select": [_p(("x", "name.surname"))]},
        ["'x'", "name.surname", "'surname' is not an element of HumanName"],
    ),
    ({"resource": "Patient", "select": [_p(("x", "name.("))]}, ["'x'", "name.(", "cannot read the FHIRPath"]),
    ({"resource": "Pateint", "select": [_p(("x", "id"))]}, ["'Pateint' is not a FHIR R4 resource type"]),
    (
        {
            "resource": "Patient",
            "select": [_p(("id", "id")), {"forEach": "name", "column": [{"name": "id", "path": "family"}]}],
        },
        ["column 'id' appears more than once"],
    ),
    ({"resource": "Patient", "select": [_p(("1bad", "id"))]}, ["column '1bad'"]),
    ({"resource": "Patient", "select": [_p(("x", "%nope"))]}, ["'x'", "unknown constant %nope"]),
    (
        {"resource": "Observation", "select": [_p(("x", "value.ofType(Banana)"))]},
        ["'x'", "value cannot be of type Banana"],
    ),
    # lowBoundary()/highBoundary() of something without a range, of a Quantity (out of scope here),
    # of a choice whose type is not chosen, or to a precision the type does not have.
    (
        {"resource": "Patient", "select": [_p(("g", "gender.lowBoundary()"))]},
        ["'g'", "gender.lowBoundary()", "needs a decimal, integer, date, dateTime or time, not a code value"],
    ),
    (
        {"resource": "Observation", "select": [_p(("q", "value.ofType(Quantity).highBoundary()"))]},
        ["'q'", "value.ofType(Quantity).highBoundary()", "not a Quantity (take it of its value"],
    ),
    (
        {"resource": "Observation", "select": [_p(("v", "value.lowBoundary()"))]},
        ["'v'", "value.lowBoundary()", "a value of unknown type (use ofType())"],
    ),
    (
        {"resource": "Patient", "select": [_p(("b", "birthDate.lowBoundary(5)"))]},
        ["'b'", "birthDate.lowBoundary(5)", "the precision must be one of 4, 6, 8"],
    ),
    # A where giving a string is not a filter (the specification wants a boolean); it used to
    # keep every resource with a family name.
    (
        {"resource": "Patient", "where": [{"path": "name.family"}], "select": [_p(("id", "id"))]},
        ["where 'name.family'", "not a boolean"],
    ),
    # A column 'type' that is not a string was a TypeError (unhashable list) out of the compiler:
    # a stack trace from the CLI instead of one line.
    (
        {"resource": "Patient", "select": [{"column": [{"name": "x", "path": "id", "type": ["string"]}]}]},
        ["'x'", "'type' must be a FHIR type name"],
    ),
]


@pytest.mark.parametrize("view,expected", BAD, ids=[b[1][-1][:40] for b in BAD])
def test_bad_views_say_which_column_and_expression(view, expected):
    with pytest.raises(ViewError) as err:
        compile_view(view)
    for part in expected:
        assert part in str(err.value)


def test_cli_view_run_bad_view_is_one_line(tmp_path, folder):
    from click.testing import CliRunner

    from thrive_fhir.cli import cli

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"resource": "Patient", "select": [_p(("x", "name.surname"))]}))
    result = CliRunner().invoke(
        cli, ["view", "run", str(bad), "--source", str(folder.folder), "--out", str(tmp_path / "o.csv")]
    )
    assert result.exit_code == 1
    assert (
        result.output.strip().count("\n") == 0 and "name.surname" in result.output and "Traceback" not in result.output
    )


def test_several_values_without_collection_is_an_error(tmp_path, folder):
    """The specification: a column path giving more than one value without ``collection: true``
    is an error (it used to take the first silently). One row with two given names is enough; the
    CLI says so in one line, naming the column."""
    from click.testing import CliRunner

    from thrive_fhir.cli import cli

    view = {"resource": "Patient", "select": [_p(("id", "id"), ("given", "name.given"))]}
    engine = DuckEngine(folder)
    _, sql = engine.query_for({"resourceType": "ViewDefinition", "name": "v", **view})
    with pytest.raises(engine.duckdb.Error, match="several values"):
        engine.con.execute(sql).fetchall()
    ok = {"resource": "Patient", "select": [_p(("id", "id"), ("given", "name.given.first()"))]}
    _, sql = engine.query_for({"resourceType": "ViewDefinition", "name": "v", **ok})
    assert len(engine.con.execute(sql).fetchall()) == 3
    path = tmp_path / "v.json"
    path.write_text(json.dumps({"resourceType": "ViewDefinition", "name": "v", **view}))
    result = CliRunner().invoke(
        cli, ["view", "run", str(path), "--source", str(folder.folder), "--out", str(tmp_path / "o.csv")]
    )
    assert result.exit_code == 1 and result.output.strip().count("\n") == 0, result.output
    assert "'given'" in result.output and "several values" in result.output and "Traceback" not in result.output


def test_cli_view_run_cluster_engine_error_is_one_line(tmp_path, folder, monkeypatch):
    """A Spark job that fails (the same several-values check, raised by raise_error()) was a Python
    traceback from ``thrive view run --engine spark``. Unit test of that error branch: a stand-in
    engine raises what PySpark raises, so no Spark session is started."""
    from click.testing import CliRunner

    from thrive_fhir.cli import cli

    PySparkException = pytest.importorskip("pyspark.errors").PySparkException
    from thrive_fhir.reporting import spark as spark_module

    class FailingSpark:
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

        def write_view(self, view, out):
            raise PySparkException(message="[USER_RAISED_EXCEPTION] column 'given': several values\n\tat org.x")

    monkeypatch.setattr(spark_module, "SparkEngine", FailingSpark)
    path = tmp_path / "v.json"
    path.write_text(
        json.dumps({"resourceType": "ViewDefinition", "name": "v", "resource": "Patient", "select": [_p(("id", "id"))]})
    )
    result = CliRunner().invoke(
        cli,
        [
            "view",
            "run",
            str(path),
            "--source",
            str(folder.folder),
            "--out",
            str(tmp_path / "o.csv"),
            "--engine",
            "spark",
        ],
    )
    assert result.exit_code == 1 and result.output.strip().count("\n") == 0, result.output
    assert "several values" in result.output and "Traceback" not in result.output and "org.x" not in result.output


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".duckdb"])
def test_cli_view_run_writes_each_format(tmp_path, folder, suffix):
    import duckdb
    from click.testing import CliRunner

    from thrive_fhir.cli import cli

    view = tmp_path / "v.json"
    view.write_text(
        json.dumps({"resourceType": "ViewDefinition", "name": "pats", **CASES["forEachOrNull keeps a row of nulls"][0]})
    )
    out = tmp_path / f"out{suffix}"
    result = CliRunner().invoke(cli, ["view", "run", str(view), "--source", str(folder.folder), "--out", str(out)])
    assert result.exit_code == 0, result.output
    con = duckdb.connect(str(out) if suffix == ".duckdb" else ":memory:")
    src = "pats" if suffix == ".duckdb" else f"'{out}'"
    assert con.execute(f"SELECT count(*) FROM {src}").fetchone()[0] == 4


@pytest.mark.parametrize("case", list(CASES))
def test_duckdb_json_plan_gives_the_same_rows(folder, case):
    """The JSON-function plan (used for unknown paths and incremental folders) agrees with the typed one."""
    from thrive_fhir.reporting.engine import _sql_list

    view, expected = CASES[case]
    compiled = compile_view({"resourceType": "ViewDefinition", "name": "v", **view}, typed=False)
    assert not compiled.typed
    src = f"(SELECT json AS resource FROM read_ndjson_objects({_sql_list(folder.files_for(compiled.resource))}))"
    engine = DuckEngine(folder)
    assert _norm(engine.con.execute(compiled.sql(src)).fetchall()) == _norm(expected)


def test_shipped_views_compile_to_the_typed_plan():
    from thrive_fhir.reporting.engine import load_shipped_view, shipped_view_names

    for name in shipped_view_names():
        assert compile_view(load_shipped_view(name)).typed, name


def test_shipped_views_take_the_first_episode_of_several(tmp_path):
    """A CarePlan with two episode extensions: the shipped view takes the first (``.first()``),
    as it did before several values in a one-value column became an error; without it the whole
    report would stop."""
    from thrive_fhir.reporting.engine import load_shipped_view

    ext = "http://hl7.org/fhir/StructureDefinition/workflow-episodeOfCare"
    plan = {
        "resourceType": "CarePlan",
        "id": "cp1",
        "status": "active",
        "intent": "plan",
        "subject": {"reference": "Patient/p1"},
        "category": [{"coding": [{"code": "safety-plan"}]}],
        "extension": [
            {"url": ext, "valueReference": {"reference": "EpisodeOfCare/e1"}},
            {"url": ext, "valueReference": {"reference": "EpisodeOfCare/e2"}},
        ],
    }
    (tmp_path / "CarePlan.ndjson").write_text(json.dumps(plan) + "\n")
    engine = DuckEngine(NdjsonFolder.open(tmp_path))
    _, sql = engine.query_for(load_shipped_view("safety_plans"))
    cur = engine.con.execute(sql)
    names = [d[0] for d in cur.description]
    rows = cur.fetchall()
    assert [r[names.index("episode")] for r in rows] == ["EpisodeOfCare/e1"]
