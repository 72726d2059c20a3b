"""The columnar cache of flattened views (:mod:`thrive_fhir.reporting.cache`): a later run over the
same files reads the Parquet and gives the same report rows; any change to the input is seen (never
stale rows); the cache is private and never written into the source folder."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from click.testing import CliRunner

from thrive_fhir.cli import cli
from thrive_fhir.reporting import cache as cache_mod
from thrive_fhir.reporting.cache import ViewCache
from thrive_fhir.reporting.engine import DuckEngine
from thrive_fhir.reporting.reports import Options, prepare, run_report
from thrive_fhir.reporting.sources import NdjsonFolder

from .conftest import POPULATIONS

REPORTS = ("groupings", "outcomes")
OPTION_SETS = (Options(), Options(by="agency"), Options(closed_only=True))


def _reports(folder: Path, cache: ViewCache | None) -> dict:
    out = {}
    for i, opts in enumerate(OPTION_SETS):
        engine = DuckEngine(NdjsonFolder.open(folder), cache=cache)
        try:
            prepare(engine, list(REPORTS), options=opts)
            for name in REPORTS:
                out[f"{name}/{i}"] = run_report(engine, name, opts).rows
        finally:
            engine.close()
    return out


def _copy(population, tmp_path: Path) -> Path:
    src, _truth = population(*POPULATIONS[0])
    folder = tmp_path / "ndjson"
    shutil.copytree(src, folder)
    return folder


def test_a_warm_run_reads_the_cache_and_gives_the_same_rows(population, tmp_path: Path):
    folder = _copy(population, tmp_path)
    plain = _reports(folder, None)
    cold_cache = ViewCache(tmp_path / "cache")
    cold = _reports(folder, cold_cache)
    assert {e for e, _ in cold_cache.events} == {"built", "hit"}  # later option sets reuse entries
    warm_cache = ViewCache(tmp_path / "cache")
    warm = _reports(folder, warm_cache)
    assert warm_cache.events and {e for e, _ in warm_cache.events} == {"hit"}
    assert plain == cold == warm
    assert plain["groupings/0"] and plain["outcomes/0"]
    # Private: the folder and every entry are the user's alone.
    assert stat.S_IMODE((tmp_path / "cache").stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "cache").iterdir()} == {0o600}


def test_a_changed_input_is_parsed_again_and_its_old_entries_removed(population, tmp_path: Path):
    folder = _copy(population, tmp_path)
    cache = tmp_path / "cache"
    before = _reports(folder, ViewCache(cache))
    entries = set(cache.glob("*.parquet"))
    # Change one grouping decision in the middle of the file, in place, same size, and put the
    # modification time back: only the inode change time (and the content) tells.
    obs = folder / "Observation.ndjson"
    st = obs.stat()
    data = obs.read_bytes()
    hits = [i for i in range(len(data)) if data.startswith(b'"code":"thriving"', i)]
    at = hits[len(hits) // 2]
    assert 64 * 1024 < at < len(data) - 64 * 1024  # outside the sampled head and tail
    with open(obs, "r+b") as f:
        f.seek(at)
        f.write(b'"code":"thrivinX"')  # same length: one thriving decision is no longer one
    os.utime(obs, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert obs.stat().st_size == st.st_size and obs.stat().st_mtime_ns == st.st_mtime_ns
    again = ViewCache(cache)
    after = _reports(folder, again)
    assert "built" in {e for e, _ in again.events}
    assert after == _reports(folder, None)  # what a run without a cache gives on the new data
    assert after["groupings/0"] != before["groupings/0"]  # new numbers, not the cached ones
    # The entries made from the old Observation file are gone; the unchanged files' entries stay.
    left = set(cache.glob("*.parquet"))
    assert left & entries and not all(p in left for p in entries)
    assert len(left) == len(entries)


def test_an_added_file_changes_the_key(population, tmp_path: Path):
    folder = _copy(population, tmp_path)
    cache = tmp_path / "cache"
    before = _reports(folder, ViewCache(cache))
    lines = (folder / "Observation.ndjson").read_text().splitlines(keepends=True)
    grouping = next(line for line in lines if "thrive-grouping-observation" in line)
    (folder / "more").mkdir()
    (folder / "more" / "Observation.extra.ndjson").write_text(
        grouping.replace('"id":"', '"id":"x', 1)  # another decision, another id
    )
    after = _reports(folder, ViewCache(cache))
    assert after == _reports(folder, None) and after != before


def test_a_file_changing_while_read_is_used_but_not_kept(population, tmp_path: Path, monkeypatch):
    folder = _copy(population, tmp_path)
    calls = {"n": 0}
    real = cache_mod.fingerprint

    def moving(path):  # the second look at each file sees another version (a writer mid-run)
        calls["n"] += 1
        fp = real(path)
        return [*fp, calls["n"]]

    monkeypatch.setattr(cache_mod, "fingerprint", moving)
    c = ViewCache(tmp_path / "cache")
    got = _reports(folder, c)
    monkeypatch.undo()
    assert {e for e, _ in c.events} == {"not kept"}
    assert not list((tmp_path / "cache").glob("*.parquet")) and not list((tmp_path / "cache").glob(".*.tmp"))
    assert got == _reports(folder, None)


def test_cli_cache_dir_writes_only_there(population, tmp_path: Path):
    folder = _copy(population, tmp_path)
    listing = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    cache = tmp_path / "cache"
    args = ["report", "groupings", "--source", str(folder), "--cache-dir", str(cache)]
    r1 = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "a.csv")])
    assert r1.exit_code == 0, r1.output
    assert f"flattened views cached in {cache}" in r1.output
    r2 = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "b.csv")])
    assert r2.exit_code == 0, r2.output
    assert "cached in" not in r2.output  # nothing built: read from the cache
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()
    assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == listing
    assert list(cache.glob("*.parquet"))


def test_cli_without_cache_writes_no_cache(population, tmp_path: Path, monkeypatch):
    folder = _copy(population, tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    r = CliRunner().invoke(cli, ["report", "outcomes", "--source", str(folder), "--out", str(tmp_path / "o.csv")])
    assert r.exit_code == 0, r.output
    assert not (tmp_path / "xdg").exists()
    r = CliRunner().invoke(
        cli, ["report", "outcomes", "--source", str(folder), "--out", str(tmp_path / "o2.csv"), "--cache"]
    )
    assert r.exit_code == 0, r.output
    assert list((tmp_path / "xdg" / "thrive-fhir" / "views").glob("*.parquet"))
    assert (tmp_path / "o.csv").read_text() == (tmp_path / "o2.csv").read_text()


def test_an_unwritable_cache_folder_is_one_line(population, tmp_path: Path):
    folder = _copy(population, tmp_path)
    (tmp_path / "file").write_text("not a folder")
    r = CliRunner().invoke(
        cli,
        [
            "report",
            "groupings",
            "--source",
            str(folder),
            "--out",
            str(tmp_path / "g.csv"),
            "--cache-dir",
            str(tmp_path / "file" / "sub"),
        ],
    )
    assert r.exit_code == 1 and "cache" in r.output and "Traceback" not in r.output, r.output


def test_cli_view_run_with_cache_dir_reads_the_cache_the_second_time(population, tmp_path: Path):
    """``thrive view run --cache-dir``: a user's own view is cached like a report's; the second run
    builds nothing and writes the same rows, as CSV and as a .duckdb file (its table read from the
    cached Parquet); a changed input is read again."""
    import json

    import duckdb

    from thrive_fhir.reporting.engine import load_shipped_view

    folder = _copy(population, tmp_path)
    view = tmp_path / "groupings.json"
    view.write_text(json.dumps(load_shipped_view("groupings")))
    cache = tmp_path / "cache"

    def run(out: str):
        return CliRunner().invoke(
            cli,
            [
                "view",
                "run",
                str(view),
                "--source",
                str(folder),
                "--out",
                str(tmp_path / out),
                "--cache-dir",
                str(cache),
            ],
        )

    first, second = run("a.csv"), run("b.csv")
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    assert f"flattened views cached in {cache}" in first.output and "cached in" not in second.output
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()
    rows = len((tmp_path / "a.csv").read_text().splitlines()) - 1
    assert rows > 0

    as_db = run("c.duckdb")
    assert as_db.exit_code == 0 and "cached in" not in as_db.output, as_db.output
    with duckdb.connect(str(tmp_path / "c.duckdb"), read_only=True) as con:
        (tables,) = con.execute("SELECT count(*) FROM information_schema.tables").fetchone()
        (n,) = con.execute("SELECT count(*) FROM report").fetchone()
    assert tables >= 1 and n == rows

    observations = folder / "Observation.ndjson"
    lines = observations.read_text().splitlines(keepends=True)
    observations.write_text("".join(lines[:-5]))  # five fewer Observations
    changed = run("d.csv")
    assert changed.exit_code == 0 and "cached in" in changed.output, changed.output


def test_a_plain_run_caches_what_a_later_breakdown_reads(population, tmp_path: Path):
    """A plain run computes only the columns it reads, but with a cache it keeps the columns any
    options read: a later --by agency (the clinician) or --closed-only (the scores' episode)
    then reads the Observations from the cache instead of parsing them again."""
    import duckdb

    folder = _copy(population, tmp_path)
    cache = ViewCache(tmp_path / "cache")
    rows = {}
    for i, opts in enumerate(OPTION_SETS):
        engine = DuckEngine(NdjsonFolder.open(folder), cache=cache)
        try:
            before = len(cache.events)
            prepare(engine, list(REPORTS), options=opts)  # the two reports' views in one scan
            for name in REPORTS:
                rows[f"{name}/{i}"] = run_report(engine, name, opts).rows
            built = [p for e, p in cache.events[before:] if e == "built"]
        finally:
            engine.close()
        # The Observations' shared scan (groupings and GBO scores) is the entry with view flags.
        scans = [p for p in built if "__w0" in {r[0] for r in duckdb.sql(f"DESCRIBE SELECT * FROM '{p}'").fetchall()}]
        assert len(scans) == (1 if i == 0 else 0), (opts, built)
    assert rows == _reports(folder, None)


def test_a_run_keeps_reading_its_entry_when_another_run_evicts_it(population, tmp_path: Path):
    """Run A reads the cache; the export is then refreshed and run B builds the new entry,
    evicting A's. A's later report queries still read the rows A started with (before, the file
    went from under A's views and its next query failed), and A's hold goes when A closes."""
    folder = _copy(population, tmp_path)
    expected = _reports(folder, None)["outcomes/0"]
    cache_dir = tmp_path / "cache"
    _reports(folder, ViewCache(cache_dir))  # build the entries
    a = DuckEngine(NdjsonFolder.open(folder), cache=ViewCache(cache_dir))
    try:
        prepare(a, list(REPORTS), options=OPTION_SETS[0])
        assert {e for e, _ in a.cache.events} == {"hit"}
        obs = folder / "Observation.ndjson"
        lines = obs.read_text().splitlines(keepends=True)
        obs.write_text("".join(lines[: len(lines) // 2]))  # a new export: half the Observations
        b_cache = ViewCache(cache_dir)
        _reports(folder, b_cache)
        assert "built" in {e for e, _ in b_cache.events}
        left = {p.name for p in cache_dir.glob("[!.]*.parquet")}
        assert {p.name for _e, p in a.cache.events} - left, "B evicted none of A's entries"
        assert run_report(a, "outcomes", OPTION_SETS[0]).rows == expected
    finally:
        a.close()
    assert not list(cache_dir.glob(".*.held.parquet"))


def test_holds_of_runs_that_died_are_removed_by_the_next_build(population, tmp_path: Path):
    folder = _copy(population, tmp_path)
    cache_dir = tmp_path / "cache"
    _reports(folder, ViewCache(cache_dir))
    entry = next(cache_dir.glob("*.parquet"))
    dead = subprocess_pid_that_exited()
    orphan = cache_dir / f".{entry.stem}.{dead}.1{cache_mod._HELD}"
    os.link(entry, orphan)
    alive = cache_dir / f".{entry.stem}.{os.getppid()}.1{cache_mod._HELD}"  # a running process's hold
    os.link(entry, alive)
    (folder / "Observation.ndjson").write_text("")  # a change: the next run builds
    _reports(folder, ViewCache(cache_dir))
    assert not orphan.exists() and alive.exists()


def subprocess_pid_that_exited() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_process_that_never_closes_its_engine_leaves_no_hold(population, tmp_path: Path):
    import subprocess
    import sys

    folder = _copy(population, tmp_path)
    cache_dir = tmp_path / "cache"
    script = (
        "from thrive_fhir.reporting.cache import ViewCache\n"
        "from thrive_fhir.reporting.engine import DuckEngine\n"
        "from thrive_fhir.reporting.reports import Options, run_report\n"
        "from thrive_fhir.reporting.sources import NdjsonFolder\n"
        f"e = DuckEngine(NdjsonFolder.open({str(folder)!r}), cache=ViewCache({str(cache_dir)!r}))\n"
        "run_report(e, 'outcomes', Options())\n"
        "import glob; print(len(glob.glob(" + repr(str(cache_dir / ".*.held.parquet")) + ")))\n"
    )
    for _ in range(2):  # built, then read from the cache: each run held its entries, none closed
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
        assert int(out.stdout.strip()) > 0
    assert list(cache_dir.glob("[!.]*.parquet")) and not list(cache_dir.glob(".*.held.parquet"))
