"""The logged MLflow model leaves the venv: real requirements, its own code, an input example, no pickle.

`mlflow models serve -m models:/NAME@champion --env-manager virtualenv` building a fresh
environment from these files was checked by hand (README, "The model format"); these tests pin
what that relies on.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import cloudpickle
import joblib
import mlflow
import pandas as pd
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from cxpredict.features.load import load_dataset
from cxpredict.models.registry import BUNDLE_ARTIFACT, TAG_BUNDLE_SHA256, load_registered_bundle, tracking_client
from cxpredict.training.registry import MODEL_DEPENDENCIES, model_requirements
from tests.conftest import TrainedCompany

pytestmark = pytest.mark.model

PICKLE_SUFFIXES = {".pkl", ".pickle", ".joblib", ".cloudpickle"}


@pytest.fixture(scope="module")
def model_dir(small_training: TrainedCompany, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The champion's MLflow model folder, downloaded as `mlflow models serve` would."""
    client = tracking_client(small_training.config.tracking_uri)
    uri = client.get_model_version_download_uri(small_training.config.registered_model_name, "1")
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(tmp_path_factory.mktemp("model")),
                                                    tracking_uri=small_training.config.tracking_uri))


def test_model_requirements_are_the_real_dependencies_with_ranges(model_dir: Path) -> None:
    lines = [line for line in (model_dir / "requirements.txt").read_text().splitlines() if line.strip()]
    assert lines == model_requirements()
    requirements = {canonicalize_name(Requirement(line).name): Requirement(line) for line in lines}
    assert "cxpredict" not in requirements  # not published: its code travels with the model
    assert {"lightgbm", "numba", "numpy", "pandas", "pyarrow", "scikit-learn", "mlflow"} <= set(requirements)
    for name, requirement in requirements.items():
        operators = {spec.operator for spec in requirement.specifier}
        assert operators == {">=", "<"}, f"{name}: a compatible range, not {requirement.specifier}"
        installed = importlib.metadata.version(name)
        assert requirement.specifier.contains(installed), f"{name} {installed} outside {requirement.specifier}"
    python_env = yaml.safe_load((model_dir / "python_env.yaml").read_text())
    assert python_env["dependencies"] == ["-r requirements.txt"]
    assert python_env["python"] == ".".join(map(str, sys.version_info[:3]))


def _closure(names: list[str]) -> set[str]:
    """The distributions pip installs for `names`: them and their dependencies, recursively (as installed here)."""
    seen: set[str] = set()
    todo = [canonicalize_name(n) for n in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for line in importlib.metadata.requires(name) or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                try:
                    importlib.metadata.distribution(requirement.name)
                except importlib.metadata.PackageNotFoundError:
                    continue
                todo.append(canonicalize_name(requirement.name))
    return seen


def code_imports(root: Path) -> set[str]:
    """Top-level modules the model's code imports anywhere (module level or inside functions)."""
    names: set[str] = set()
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"__future__", "cxpredict"}


def test_model_requirements_cover_every_library_its_code_imports(model_dir: Path) -> None:
    """Every library the shipped code (and pyfunc.py) imports is a requirement or comes with one."""
    modules = code_imports(model_dir / "code") | code_imports(model_dir) - {"tests"}
    owners = importlib.metadata.packages_distributions()
    unknown = sorted(m for m in modules if m not in owners)
    assert unknown == [], f"imported modules of no installed distribution: {unknown}"
    imported = {canonicalize_name(d) for m in modules for d in owners[m]}
    assert {"lightgbm", "numba", "pyarrow", "scikit-learn", "scipy"} <= imported  # the old requirements forgot some
    missing = imported - _closure(list(MODEL_DEPENDENCIES))
    assert missing == set(), f"imported by the model's code but not in its requirements: {sorted(missing)}"


def test_logged_model_holds_no_pickle_and_ships_its_code(model_dir: Path) -> None:
    files = [p.relative_to(model_dir).as_posix() for p in model_dir.rglob("*") if p.is_file()]
    assert not [f for f in files if Path(f).suffix in PICKLE_SUFFIXES or "pickle" in f]
    mlmodel = yaml.safe_load((model_dir / "MLmodel").read_text())
    flavor = mlmodel["flavors"]["python_function"]
    assert flavor["loader_module"] == "mlflow.pyfunc.loaders.code_model" and "python_model" not in flavor
    assert "pyfunc.py" in files and flavor["code"] == "code"
    assert {"code/cxpredict/models/bundle.py", "code/cxpredict/models/bundle_files.py",
            "code/cxpredict/features/build.py"} <= set(files)
    assert not [f for f in files if f.startswith(("code/cxpredict/training", "code/cxpredict/serving"))]
    bundle_files = {Path(f).suffix for f in files if f.startswith(f"artifacts/{BUNDLE_ARTIFACT}/")}
    assert bundle_files == {".json", ".txt", ".parquet"}
    assert mlmodel["saved_input_example_info"]["serving_input_path"] == "serving_input_example.json"


def test_loading_the_model_unpickles_nothing(
    small_training: TrainedCompany, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model file was unpickled")

    for module in (pickle, cloudpickle):
        monkeypatch.setattr(module, "load", refuse)
        monkeypatch.setattr(module, "loads", refuse)
    monkeypatch.setattr(joblib, "load", refuse)
    customers = load_dataset(small_training.config).customers.head(50)
    loaded = load_registered_bundle(small_training.config.tracking_uri, small_training.config.registered_model_name)
    pyfunc = mlflow.pyfunc.load_model(str(model_dir))
    expected = small_training.bundle.predict(customers)
    pd.testing.assert_frame_equal(loaded.bundle.predict(customers), expected)
    pd.testing.assert_frame_equal(pyfunc.predict(customers), expected)


def test_training_run_records_the_bundle_digest(small_training: TrainedCompany, model_dir: Path) -> None:
    run = tracking_client(small_training.config.tracking_uri).get_run(small_training.result.run_id)
    mlmodel = yaml.safe_load((model_dir / "MLmodel").read_text())
    recorded = run.data.tags[TAG_BUNDLE_SHA256]
    assert mlmodel["flavors"]["python_function"]["config"]["bundle_sha256"] == recorded
    manifest = model_dir / "artifacts" / BUNDLE_ARTIFACT / "manifest.json"
    assert hashlib.sha256(manifest.read_bytes()).hexdigest() == recorded


ISOLATED = """
import sys
# No installed cxpredict: drop the editable install's finders and the checkout from the path.
sys.meta_path = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
sys.path = [p for p in sys.path if p not in ("", sys.argv[3]) and "__editable__" not in p]
import mlflow, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
scores = model.predict(pd.read_json(sys.argv[2], orient="split"), params={"uncertainty": True, "explain": 2})
import cxpredict.models.bundle
print(cxpredict.models.bundle.__file__)
print(len(scores), " ".join(scores.columns))
"""


def test_model_scores_with_its_shipped_code_only(model_dir: Path, tmp_path: Path) -> None:
    """With cxpredict not importable from the environment, the model runs on the code it carries."""
    example = json.loads((model_dir / "serving_input_example.json").read_text())["dataframe_split"]
    (tmp_path / "rows.json").write_text(json.dumps(example))
    repo = str(Path(__file__).resolve().parents[2])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", ISOLATED, str(model_dir), str(tmp_path / "rows.json"), repo],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    origin, shape = done.stdout.strip().splitlines()[-2:]
    assert origin.startswith(str(model_dir / "code" / "cxpredict")), origin
    assert shape.startswith(f"{len(example['data'])} customer_id p_")
    assert "prediction_set" in shape and "driver2_churn_contribution" in shape
