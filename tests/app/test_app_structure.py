"""The app's module structure (issue 17 item 3): the launch context, the launch routes, the EHR
client, token refresh and the security hooks import each other one way only, so none of them needs
an import inside a function; the app state lives in a leaf module; the scope policy lives in the app."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ONE_WAY = [
    "smart_app/context.py",
    "smart_app/launch/routes.py",
    "smart_app/launch/ehr_client.py",
    "smart_app/launch/tokens.py",
    "smart_app/launch/identity.py",
    "smart_app/security.py",
    "smart_app/errors.py",
    "smart_app/state.py",
    "smart_app/scopes.py",
]


@pytest.mark.parametrize("path", ONE_WAY)
def test_no_imports_inside_functions(path):
    tree = ast.parse((REPO / path).read_text(), path)
    inside = [
        f"{path}:{node.lineno}"
        for func in ast.walk(tree)
        if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef))
        for node in ast.walk(func)
        if isinstance(node, (ast.Import, ast.ImportFrom))
    ]
    assert inside == []


def _runtime_imports(tree: ast.Module) -> list[ast.ImportFrom | ast.Import]:
    """Module-level imports, leaving out ``if TYPE_CHECKING:`` blocks."""
    out = []
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.append(node)
    return out


def test_app_state_module_is_a_leaf():
    tree = ast.parse((REPO / "smart_app/state.py").read_text())
    for node in _runtime_imports(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0 and not (node.module or "").startswith("smart_app"), ast.unparse(node)
    from smart_app import AppState
    from smart_app.state import AppState as LeafAppState
    from smart_app.state import state

    assert AppState is LeafAppState and callable(state)


def test_the_app_scope_policy_lives_in_the_app_and_the_client_library_names_no_app():
    assert not (REPO / "thrive_fhir/client/smart_scopes.py").exists()
    assert (REPO / "smart_app/scopes.py").exists()
    for path in (REPO / "thrive_fhir/client").glob("*.py"):
        assert "smart_app" not in path.read_text(), path
