"""``as_of``: the synthetic timeline is placed relative to a given day, never to the clock.

The default (2026-01-01) keeps existing seeds reproducible; a later day (the demo passes today)
moves every date with it, keeps everything that happened before that day, and leaves recent safety
plans and sharing consents in date on it.
"""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from thrive_fhir.cli import cli
from thrive_fhir.synth import DEFAULT_AS_OF, GROUND_TRUTH, SynthError, generate
from thrive_fhir.validation import Validator, errors

N = 120
SEED = 20250304
AS_OF = date(2026, 11, 23)  # "today" for this project; the validator's real clock is at or after it
#: The only fields that may lie on or after as_of: dates agreed for the future, not events.
FUTURE_FIELDS = {"CarePlan.period.end", "Consent.provision.period.end"}
_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})(.*)$", re.S)


def read_all(out: Path) -> dict[str, list[dict]]:
    return {p.stem: [json.loads(line) for line in p.open(encoding="utf-8")] for p in sorted(out.glob("*.ndjson"))}


def _files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def dated_values(node, path: str):
    """(path, value) for every string in ``node`` that starts with an ISO date."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from dated_values(v, f"{path}.{k}")
    elif isinstance(node, list):
        for v in node:
            yield from dated_values(v, path)
    elif isinstance(node, str) and _DATE.match(node):
        yield path, node


def shifted(node, days: int):
    """``node`` with every ISO date (and the date part of every dateTime) moved by ``days``."""
    if isinstance(node, dict):
        return {k: shifted(v, days) for k, v in node.items()}
    if isinstance(node, list):
        return [shifted(v, days) for v in node]
    if isinstance(node, str) and (m := _DATE.match(node)):
        return (date.fromisoformat(m[1]) + timedelta(days=days)).isoformat() + m[2]
    return node


@pytest.fixture(scope="module")
def today_population(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("as_of")
    return out, generate(N, SEED, out, provenance=True, as_of=AS_OF)


def test_default_as_of_is_2026_01_01_and_same_bytes_as_passing_it(tmp_path):
    generate(40, 7, tmp_path / "default", provenance=True)
    generate(40, 7, tmp_path / "explicit", provenance=True, as_of=date(2026, 1, 1))
    assert DEFAULT_AS_OF == date(2026, 1, 1)
    assert _files(tmp_path / "default") == _files(tmp_path / "explicit")
    truth = json.loads((tmp_path / "default" / GROUND_TRUTH).read_text())
    assert truth["generator"]["as_of"] == truth["generator"]["cutoff"] == "2026-01-01"


def test_same_as_of_same_bytes_other_as_of_other_bytes(today_population, tmp_path):
    out, _ = today_population
    generate(N, SEED, tmp_path / "again", provenance=True, as_of=AS_OF)
    assert _files(tmp_path / "again") == _files(out)
    generate(N, SEED, tmp_path / "default", provenance=True)
    assert _files(tmp_path / "default")["EpisodeOfCare.ndjson"] != _files(out)["EpisodeOfCare.ndjson"]


def test_a_whole_number_of_weeks_later_moves_every_date_and_nothing_else(tmp_path):
    """Contacts avoid weekends, so a shift of whole weeks keeps every story identical, only later."""
    days = 7 * 46
    generate(60, 5, tmp_path / "a", provenance=True)
    generate(60, 5, tmp_path / "b", provenance=True, as_of=DEFAULT_AS_OF + timedelta(days=days))
    a, b = read_all(tmp_path / "a"), read_all(tmp_path / "b")
    assert a.keys() == b.keys()
    moved = 0
    for rt in a:
        assert len(a[rt]) == len(b[rt]), rt
        for x, y in zip(a[rt], b[rt]):
            assert shifted(x, days) == y, (rt, x["id"])
            moved += sum(1 for _ in dated_values(x, rt))
    assert moved > 1000


def test_any_other_shift_moves_dates_by_roughly_the_same(today_population, tmp_path):
    """2026-01-01 -> 2026-11-23 (326 days, not whole weeks): birth dates move exactly, first contacts
    within a weekend of it, and the overall span of events moves by about the same."""
    out, _ = today_population
    generate(N, SEED, tmp_path / "default", provenance=True)
    before, after = read_all(tmp_path / "default"), read_all(out)
    days = (AS_OF - DEFAULT_AS_OF).days
    for x, y in zip(before["Patient"], after["Patient"]):
        assert (date.fromisoformat(y["birthDate"]) - date.fromisoformat(x["birthDate"])).days == days
    starts = [
        (date.fromisoformat(y["period"]["start"]) - date.fromisoformat(x["period"]["start"])).days
        for x, y in zip(before["EpisodeOfCare"], after["EpisodeOfCare"])
    ]
    assert len(starts) == N and all(days - 2 <= s <= days + 2 for s in starts), sorted(set(starts))

    def span(data):
        values = [
            date.fromisoformat(v[:10])
            for rs in data.values()
            for r in rs
            for p, v in dated_values(r, r["resourceType"])
            if p not in FUTURE_FIELDS
        ]
        return min(values), max(values)

    (lo0, hi0), (lo1, hi1) = span(before), span(after)
    assert abs((lo1 - lo0).days - days) <= 2 and abs((hi1 - hi0).days - days) <= 7


def test_nothing_happens_on_or_after_as_of(today_population):
    out, _ = today_population
    last_day = (AS_OF - timedelta(days=1)).isoformat()
    latest = ""
    for rs in read_all(out).values():
        for r in rs:
            for path, value in dated_values(r, r["resourceType"]):
                if path in FUTURE_FIELDS:
                    continue
                assert value[:10] <= last_day, (path, value)
                latest = max(latest, value[:10])
    # The timeline runs right up to the day before: the population looks current.
    assert latest >= (AS_OF - timedelta(days=14)).isoformat()


def _in_date(period: dict, day: str) -> bool:
    return period.get("start", "")[:10] <= day <= period.get("end", "9999")[:10]


def test_recent_safety_plans_and_consents_are_in_date_and_counted(today_population):
    out, truth = today_population
    data = read_all(out)
    day = AS_OF.isoformat()
    plans = [p for p in data["CarePlan"] if p["status"] == "active" and _in_date(p["period"], day)]
    consents = [
        c
        for c in data["Consent"]
        if c["status"] == "active" and c["provision"]["type"] == "permit" and _in_date(c["provision"]["period"], day)
    ]
    assert truth["in_date"] == {"as_of": day, "safety_plans": len(plans), "consents": len(consents)}
    assert plans and consents
    # An in-date plan is a recent one: reviewed within 90 days of being agreed, review still to come.
    for p in plans:
        assert p["period"]["end"] >= day > p["period"]["start"] >= (AS_OF - timedelta(days=90)).isoformat()
    # Older agreements have ended and older plans are past review: not all of them are in date.
    assert len(consents) < len(data["Consent"]) and len(plans) < truth["safety_plans"]["active"]
    assert json.loads((out / GROUND_TRUTH).read_text()) == truth


def test_every_resource_validates_against_todays_clock(today_population):
    """Validator.default() uses the real clock (2026-11-23 or later): app-future-date included."""
    out, _ = today_population
    resources = [r for rs in read_all(out).values() for r in rs]
    outcomes = Validator.default().validate_set(resources)
    assert len(outcomes) == len(resources)
    problems = {k: e for k, oo in outcomes.items() for e in errors(oo) if e[0] in ("error", "fatal", "warning")}
    assert not problems, list(problems.items())[:5]


@pytest.mark.parametrize("bad", ["2026-11-23", None, date(1999, 12, 31), date(9999, 12, 31)])
def test_generate_refuses_a_bad_as_of(tmp_path, bad):
    with pytest.raises(SynthError, match="as-of"):
        generate(3, 1, tmp_path, as_of=bad)
    assert not any(tmp_path.iterdir())


# --- CLI -------------------------------------------------------------------------------------
def _run(*args: str):
    return CliRunner().invoke(cli, ["synth", *args])


def test_cli_as_of(tmp_path):
    result = _run("-n", "5", "-s", "3", "-o", str(tmp_path / "pop"), "--as-of", "2026-06-30", "-q")
    assert result.exit_code == 0, result.output
    truth = json.loads((tmp_path / "pop" / GROUND_TRUTH).read_text())
    assert truth["generator"]["as_of"] == "2026-06-30" and truth["in_date"]["as_of"] == "2026-06-30"
    generate(5, 3, tmp_path / "api", as_of=date(2026, 6, 30))
    assert _files(tmp_path / "pop") == _files(tmp_path / "api")


@pytest.mark.parametrize(
    "value, words",
    [
        ("2026-13-01", "does not match the format"),
        ("yesterday", "does not match the format"),
        ((date.today() + timedelta(days=1)).isoformat(), "is after today"),
        ("1999-12-31", "between 2000-01-01"),
    ],
)
def test_cli_bad_as_of_one_line_exit_2(tmp_path, value, words):
    result = _run("-n", "2", "-o", str(tmp_path / "o"), "--as-of", value)
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and words in lines[0], result.output
    assert not (tmp_path / "o").exists()
