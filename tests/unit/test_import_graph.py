"""The import graph of cxpredict.*, read from the source: no circle, and imports flow one way."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit

PACKAGES = ("features", "models", "training", "serving")


def module_files(root: Path) -> dict[str, Path]:
    """cxpredict module name -> source file, for the CLI and every module of the package folders."""
    files = {"cxpredict.cli": root / "cli.py"}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            files[".".join(["cxpredict", *parts])] = path
    return files


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """Every cxpredict module `name` imports anywhere in its source (top level, functions, TYPE_CHECKING)."""
    found: set[str] = set()
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            for alias in node.names:
                candidate = f"{module}.{alias.name}"  # `from cxpredict.training import evaluate`
                found.add(candidate if candidate in known else module)
    return {m for m in found if m in known and m != name}


def import_graph(root: Path) -> dict[str, set[str]]:
    files = module_files(root)
    known = set(files)
    return {name: imported_modules(name, path, known) for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a path that starts and ends at the same module, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                return [*path[path.index(target):], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)):
            return cycle
    return None


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph(REPO_ROOT)


def test_import_graph_sees_the_whole_package(graph: dict[str, set[str]]) -> None:
    assert {"cxpredict.cli", "cxpredict.training.train", "cxpredict.models.bundle",
            "cxpredict.serving.api.app", "cxpredict.features.load"} <= set(graph)
    assert "cxpredict.training.population" in graph["cxpredict.training.train"]
    assert "cxpredict.training.evaluate" in graph["cxpredict.training.population"]  # `from ... import evaluate`


def test_find_cycle_finds_a_circle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_circle(graph: dict[str, set[str]]) -> None:
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


@pytest.mark.parametrize(("importer", "forbidden"), [
    ("cxpredict.serving", ("cxpredict.training", "cxpredict.cli")),
    ("cxpredict.models", ("cxpredict.training", "cxpredict.serving", "cxpredict.cli")),
    ("cxpredict.features", ("cxpredict.models", "cxpredict.training", "cxpredict.serving", "cxpredict.cli")),
    ("cxpredict.training", ("cxpredict.serving", "cxpredict.cli")),
])
def test_imports_flow_one_way(graph: dict[str, set[str]], importer: str, forbidden: tuple[str, ...]) -> None:
    wrong = sorted(f"{module} -> {target}" for module, targets in graph.items() if module.startswith(importer + ".")
                   or module == importer for target in targets if target.startswith(forbidden))
    assert not wrong, wrong
