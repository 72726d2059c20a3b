"""Every report recovers the synthetic population's ground truth exactly (several seeds and sizes)."""

from __future__ import annotations

from datetime import date

import pytest

from thrive_fhir import canonical
from thrive_fhir.reporting.engine import DuckEngine
from thrive_fhir.reporting.reports import REPORTS, Options, prepare, run_report
from thrive_fhir.reporting.sources import NdjsonFolder

from .conftest import POPULATIONS

AS_OF = date(2026, 1, 1)


@pytest.fixture(
    scope="module",
    params=[(p, shared) for p in POPULATIONS for shared in (False, True)],
    ids=lambda p: f"n{p[0][0]}-seed{p[0][1]}-{'shared' if p[1] else 'alone'}",
)
def case(request, population):
    """An engine per population; "shared": every report's views made up front, so the views of
    one resource type share one scan (as ``thrive report html`` and the benchmark do)."""
    (size, seed), shared = request.param
    folder, truth = population(size, seed)
    engine = DuckEngine(NdjsonFolder.open(folder))
    if shared:
        prepare(engine, list(REPORTS))
    return engine, truth


def _rows(table, key):
    return {r[key]: r for r in table.rows}


def test_groupings_current_ever_decisions(case):
    engine, truth = case
    rows = _rows(run_report(engine, "groupings", Options(end=AS_OF)), "grouping")
    for g in canonical.GROUPINGS:
        assert rows[g]["current"] == truth["groupings"]["current"][g]
        assert rows[g]["ever"] == truth["groupings"]["ever"][g]
        assert rows[g]["decisions"] == truth["groupings"]["decisions"][g]
    assert rows["total"]["ever"] == truth["patients"]


def test_transitions_and_reasons(case):
    engine, truth = case
    table = run_report(engine, "transitions", Options())
    got = {
        (r["from_grouping"], r["to_grouping"]): r["transitions"] for r in table.rows if r["from_grouping"] != "total"
    }
    for f, row in truth["transitions"].items():
        for t, n in row.items():
            assert got.get((f, t), 0) == n, (f, t)
    assert all(r["mean_days_in_previous"] > 0 for r in table.rows if r["from_grouping"] != "total")
    reasons = {
        r["reason"]: r["changes"]
        for r in run_report(engine, "change-reasons", Options()).rows
        if r["reason"] != "total"
    }
    assert reasons == truth["change_reasons"]


def test_first_contact_to_first_grouping(case):
    engine, truth = case
    (row,) = run_report(engine, "first-grouping", Options()).rows
    expected = truth["first_contact_to_first_grouping_days"]
    assert row["episodes"] == expected["episodes"]
    assert row["total_days"] == expected["total_days"]


@pytest.mark.parametrize("closed_only", [False, True])
def test_outcomes_table(case, closed_only):
    engine, truth = case
    rows = _rows(run_report(engine, "outcomes", Options(closed_only=closed_only)), "indicator")
    expected = truth["gbo"]["paired_closed_episodes" if closed_only else "paired"]
    for ind in ("reliable_improvement", "no_reliable_change", "reliable_deterioration"):
        assert rows[ind]["n"] == expected[ind]
        assert rows[ind]["ci_low"] <= rows[ind]["percent"] <= rows[ind]["ci_high"]
    assert rows["total"]["n"] == expected["goals"]


def test_involvement(case):
    engine, truth = case
    table = run_report(engine, "involvement", Options())
    for who in ("young-person", "family"):
        got = {r["involvement"]: r["decisions"] for r in table.rows if r["who"] == who and r["involvement"] != "total"}
        assert got == truth["involvement"][who]


def test_risk_support_shared_in_date_plans(case):
    engine, truth = case
    (row,) = run_report(engine, "risk-support", Options(end=AS_OF)).rows
    for k, v in truth["risk_support"].items():
        assert row[k] == v


def test_referral_task_status(case):
    engine, truth = case
    table = run_report(engine, "referral-tasks", Options())
    by_status: dict[str, int] = {}
    for r in table.rows:
        if r["status"] != "total":
            by_status[r["status"]] = by_status.get(r["status"], 0) + r["tasks"]
    assert by_status == truth["referral_tasks"]
    assert len({r["receiving_organisation"] for r in table.rows}) > 1


def test_by_breakdowns_add_up_to_totals(case):
    engine, truth = case
    for by in ("agency", "team", "month"):
        rows = run_report(engine, "groupings", Options(by=by, end=AS_OF)).rows
        decisions = sum(r["decisions"] for r in rows if r["grouping"] != "total")
        assert decisions == sum(truth["groupings"]["decisions"].values())
        rows = run_report(engine, "outcomes", Options(by=by)).rows
        assert sum(r["n"] for r in rows if r["indicator"] == "total") == truth["gbo"]["paired"]["goals"]


def test_threshold_is_configurable(case):
    engine, truth = case
    strict = _rows(run_report(engine, "outcomes", Options(threshold=6)), "indicator")
    assert strict["reliable_improvement"]["n"] <= truth["gbo"]["paired"]["reliable_improvement"]
    assert strict["total"]["n"] == truth["gbo"]["paired"]["goals"]


def test_period_filter_counts_only_decisions_in_the_period(population):
    import json

    folder, _ = population(160, 7)
    engine = DuckEngine(NdjsonFolder.open(folder))
    start, end = date(2024, 3, 1), date(2024, 11, 30)
    expected: dict[str, int] = {}
    patients: dict[str, set] = {}
    for line in (folder / "Observation.ndjson").read_text().splitlines():
        o = json.loads(line)
        if o["code"]["coding"][0]["code"] != "thrive-grouping":
            continue
        if start.isoformat() <= o["effectiveDateTime"][:10] <= end.isoformat():
            g = o["valueCodeableConcept"]["coding"][0]["code"]
            expected[g] = expected.get(g, 0) + 1
            patients.setdefault(g, set()).add(o["subject"]["reference"])
    rows = _rows(run_report(engine, "groupings", Options(start=start, end=end)), "grouping")
    assert {g: rows[g]["decisions"] for g in expected} == expected
    assert {g: rows[g]["ever"] for g in patients} == {g: len(p) for g, p in patients.items()}
    assert sum(rows[g]["decisions"] for g in canonical.GROUPINGS) == sum(expected.values())
