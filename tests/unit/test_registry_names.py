"""Every MLflow name (tag, artifact, alias, shared param) is spelled once, in models/registry.py.

The source of features/, models/, training/, serving/ and cli.py is parsed and searched for the
registry's string values. Names that are also ordinary words of the code (`model` is a FastAPI
response key, `model_version` an API field and a score column) are only searched inside MLflow
calls; every other name anywhere. Pointing MLflow at a store happens only in the registry too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import cxpredict.models.registry as registry
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit

SOURCES = ["features", "models", "training", "serving", "cli.py"]
REGISTRY = REPO_ROOT / "models" / "registry.py"
# Registry names that are also plain words of the code: checked inside MLflow calls only.
PLAIN_WORDS = {registry.MODEL_ARTIFACT, registry.BUNDLE_ARTIFACT, registry.DRIVERS_DIR, registry.KIND_EXPLAIN,
               registry.TAG_MODEL_VERSION, registry.TAG_RETRAIN_ADVISED, registry.PARAM_SEGMENT,
               registry.BUNDLE_SHA256_CONFIG}
# MLflow calls whose string arguments are tag names, artifact paths, model names or aliases
# (params and metrics are the run's own vocabulary, not a contract between modules).
MLFLOW_CALLS = {"set_tag", "set_tags", "log_dict", "log_text", "log_artifact", "log_artifacts", "log_figure",
                "log_image", "log_table", "log_model", "download_artifacts", "load_dict", "load_text",
                "list_artifacts", "search_runs", "start_run", "set_registered_model_alias",
                "get_model_version_by_alias", "delete_registered_model_alias", "set_experiment_tag"}


def registry_names() -> dict[str, str]:
    """Every public text constant of models/registry.py: value -> constant name."""
    return {value: name for name, value in vars(registry).items()
            if name.isupper() and not name.startswith("_") and isinstance(value, str)}


def source_files() -> list[Path]:
    files: list[Path] = []
    for entry in SOURCES:
        path = REPO_ROOT / entry
        files += [path] if path.is_file() else sorted(path.rglob("*.py"))
    return [f for f in files if f != REGISTRY]


def _strings(node: ast.AST) -> list[ast.Constant]:
    return [n for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def stray_names(path: Path, names: dict[str, str]) -> list[str]:
    """`file:line: 'value' (CONSTANT)` for each registry name spelled out in `path`."""
    tree = ast.parse(path.read_text(), str(path))
    docstrings = _docstrings(tree)
    in_calls: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in MLFLOW_CALLS:
            in_calls |= {id(c) for arg in [*node.args, *(k.value for k in node.keywords)] for c in _strings(arg)}
    found = []
    for constant in _strings(tree):
        if id(constant) in docstrings:
            continue
        for value, name in names.items():
            hit = (value in constant.value if ("." in value or "/" in value) else constant.value == value)
            if hit and (value not in PLAIN_WORDS or id(constant) in in_calls):
                found.append(f"{path.relative_to(REPO_ROOT)}:{constant.lineno}: {constant.value!r} ({name})")
    return found


def test_mlflow_names_are_spelled_only_in_the_registry() -> None:
    names = registry_names()
    assert {"feature_schema.json", "drivers/drivers_global.csv", "cxpredict.kind", "drift_warning", "champion",
            "model"} <= set(names)
    stray = [line for path in source_files() for line in stray_names(path, names)]
    assert stray == [], "use the constants of models/registry.py:\n" + "\n".join(stray)


def test_the_check_finds_a_retyped_name(tmp_path: Path) -> None:
    """The search itself: a tag retyped in an MLflow call and an artifact path anywhere are both found."""
    probe = REPO_ROOT / "training" / "_probe_registry_names.py"
    probe.write_text('import mlflow\n\nPATH = "drivers/drivers_segments.csv"\n'
                     'mlflow.set_tags({"model_version": "3"})\nROW = {"model_version": 3}\n')
    try:
        found = stray_names(probe, registry_names())
    finally:
        probe.unlink()
    assert [line.split(": ", 1)[0].rsplit(":", 1)[1] for line in found] == ["3", "4"]


def test_tracking_store_is_set_only_by_the_registry() -> None:
    stray = []
    for path in source_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in {"set_tracking_uri", "set_registry_uri"}):
                stray.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}")
    assert stray == [], "use models.registry.use_tracking_store:\n" + "\n".join(stray)
