"""The shape of the code base that docs/architecture.md promises: dependencies run one way, the app's
commands reach ``thrive`` through the entry-point group, test helpers stay under tests/, and tests
are marked postgres / browser / slow from what they use."""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from tests import conftest as root_conftest
from thrive_fhir.cli import cli

REPO = Path(__file__).resolve().parents[2]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize(
    "package, forbidden",
    [
        ("thrive_fhir", ("smart_app", "thrive_demo", "tests")),
        ("smart_app", ("thrive_demo", "tests")),
    ],
)
def test_dependencies_run_one_way(package, forbidden):
    offenders = sorted(
        f"{path.relative_to(REPO)} imports {name}"
        for path in (REPO / package).rglob("*.py")
        for name in imported_modules(path)
        if name.split(".")[0] in forbidden
    )
    assert offenders == []


def test_thrive_lists_the_app_and_demo_commands_from_the_entry_point_group():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0, result.output
    commands = result.output.split("Commands:")[1]
    for name in ("app", "demo", "store", "sync", "validate"):
        assert f"\n  {name} " in commands, commands
    assert "cannot be loaded" not in commands


def test_unknown_command_is_a_usage_error():
    result = CliRunner().invoke(cli, ["no-such-command"])
    assert result.exit_code == 2 and "No such command" in result.output


def test_no_sys_path_hacks_in_tests_or_benchmarks():
    hacks = [
        str(p.relative_to(REPO))
        for folder in ("tests", "benchmarks")
        for p in (REPO / folder).rglob("*.py")
        if "sys.path.insert" in p.read_text(encoding="utf-8") and p != Path(__file__).resolve()
    ]
    assert hacks == []


def fake_item(
    name: str,
    fixtures: tuple[str, ...] = (),
    param_id: str | None = None,
    folder: str = "store",
    module: str = "test_x.py",
):
    item = SimpleNamespace(
        fixturenames=list(fixtures), originalname=name, markers=[], path=REPO / "tests" / folder / module
    )
    if param_id is not None:
        item.callspec = SimpleNamespace(id=param_id)
    item.add_marker = lambda mark: item.markers.append(mark.name)
    item.iter_markers = lambda: [SimpleNamespace(name=m) for m in item.markers]
    return item


def test_modules_with_slow_then_browser_tests_come_first_each_in_its_own_order():
    """``make test`` hands modules to its workers in collection order (tests/conftest.py)."""
    items = [
        fake_item("test_quick_1", module="test_quick.py"),
        fake_item("test_page", ("browser_page",), module="test_pages.py"),
        fake_item("test_quick_2", module="test_quick.py"),
        fake_item("test_plain_before", module="test_mixed.py"),
        fake_item("test_long", ("start_thrive",), module="test_mixed.py"),
        fake_item("test_plain_after", module="test_mixed.py"),
    ]
    root_conftest.pytest_collection_modifyitems(None, items)
    assert [i.originalname for i in items] == [
        "test_plain_before",
        "test_long",
        "test_plain_after",
        "test_page",
        "test_quick_1",
        "test_quick_2",
    ]


def test_markers_follow_fixtures_parameters_and_folders():
    items = {
        "plain": fake_item("test_plain", ("tmp_path",)),
        "pg_fixture": fake_item("test_a", ("fresh_postgres_url",)),
        "pg_param": fake_item("test_b", ("server",), param_id="ours-postgres"),
        "sqlite_param": fake_item("test_c", ("server",), param_id="ours-sqlite"),
        "browser": fake_item("test_d", ("browser_page", "live")),
        "process": fake_item("test_e", ("start_thrive",)),
        "demo": fake_item("test_f", folder="demo"),
    }
    root_conftest.pytest_collection_modifyitems(None, list(items.values()))
    assert {k: sorted(v.markers) for k, v in items.items()} == {
        "plain": [],
        "pg_fixture": ["postgres"],
        "pg_param": ["postgres"],
        "sqlite_param": [],
        "browser": ["browser"],
        "process": ["slow"],
        "demo": ["slow"],
    }
