"""Small-number suppression: 1-7 masked, and a lone masked cell cannot be recovered from the total."""

from __future__ import annotations

from thrive_fhir.reporting.reports import wilson
from thrive_fhir.reporting.suppression import MASK, Table, suppress


def _table(rows, group_by=()):
    return Table(
        ["by", "cat", "n", "pct"] if group_by else ["cat", "n", "pct"],
        rows,
        ["n"],
        ["n"],
        {"pct": "n"},
        list(group_by),
        ("cat", "total"),
    )


def test_primary_masks_one_to_seven_not_zero_or_eight():
    rows = [{"cat": c, "n": n, "pct": 1.0} for c, n in (("a", 0), ("b", 1), ("c", 7), ("d", 8), ("e", 20))]
    out = suppress(_table([*rows, {"cat": "total", "n": 36, "pct": 100.0}]))
    got = {r["cat"]: r["n"] for r in out.rows}
    assert got["a"] == 0 and got["b"] == MASK and got["c"] == MASK and got["d"] == 8 and got["e"] == 20
    assert {r["cat"]: r["pct"] for r in out.rows}["b"] == MASK


def test_secondary_masks_the_next_smallest_when_one_cell_is_hidden():
    rows = [
        {"cat": "a", "n": 3, "pct": 0},
        {"cat": "b", "n": 12, "pct": 0},
        {"cat": "c", "n": 40, "pct": 0},
        {"cat": "total", "n": 55, "pct": 100},
    ]
    out = {r["cat"]: r["n"] for r in suppress(_table(rows)).rows}
    assert out == {"a": MASK, "b": MASK, "c": 40, "total": 55}


def test_secondary_works_per_group_and_masks_total_when_only_zeros_remain():
    rows = [
        {"by": "x", "cat": "a", "n": 5, "pct": 0},
        {"by": "x", "cat": "b", "n": 0, "pct": 0},
        {"by": "x", "cat": "total", "n": 5, "pct": 0},
        {"by": "y", "cat": "a", "n": 9, "pct": 0},
        {"by": "y", "cat": "b", "n": 10, "pct": 0},
        {"by": "y", "cat": "total", "n": 19, "pct": 0},
    ]
    out = {(r["by"], r["cat"]): r["n"] for r in suppress(_table(rows, ["by"])).rows}
    assert out[("x", "a")] == MASK and out[("x", "total")] == MASK
    assert out[("y", "a")] == 9 and out[("y", "total")] == 19


def test_no_group_has_exactly_one_masked_cell_after_suppression():
    import random

    rng = random.Random(5)
    for _ in range(200):
        counts = [rng.choice([0, 1, 3, 6, 8, 9, 15, 40]) for _ in range(5)]
        rows = [{"cat": str(i), "n": n, "pct": 0} for i, n in enumerate(counts)] + [
            {"cat": "total", "n": sum(counts), "pct": 0}
        ]
        out = suppress(_table(rows)).rows
        masked = [r for r in out if r["n"] == MASK and r["cat"] != "total"]
        total_masked = out[-1]["n"] == MASK
        assert len(masked) != 1 or total_masked


def test_wilson_interval_matches_published_shape():
    lo, hi = wilson(3056, 5879)  # a published CYP outcome figure: 52% (51-53%)
    assert round(lo * 100) == 51 and round(hi * 100) == 53
    assert wilson(0, 10)[0] == 0.0


def test_cli_report_suppresses_by_default(tmp_path, population):
    from click.testing import CliRunner

    from thrive_fhir.cli import cli

    folder, truth = population(40, 1)
    out = tmp_path / "g.csv"
    r1 = CliRunner().invoke(cli, ["report", "groupings", "--source", str(folder), "--out", str(out)])
    assert r1.exit_code == 0, r1.output
    masked = out.read_text()
    r2 = CliRunner().invoke(
        cli, ["report", "groupings", "--source", str(folder), "--out", str(out), "--no-suppression"]
    )
    assert r2.exit_code == 0
    plain = out.read_text()
    small = [v for g, v in truth["groupings"]["decisions"].items() if 1 <= v <= 7]
    assert small and "*" in masked and "*" not in plain
