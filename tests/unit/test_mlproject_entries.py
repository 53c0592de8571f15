"""MLproject: every entry point uses each of its parameters; `tune` runs the tune command."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from mlflow.projects._project_spec import load_project

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit


def test_every_parameter_is_used_in_its_command() -> None:
    project = load_project(str(REPO_ROOT))
    for name, entry in project._entry_points.items():
        used = set(re.findall(r"\{(\w+)\}", entry.command))
        assert used == set(entry.parameters), name


def test_tune_entry_runs_the_tune_command(tmp_path: Path) -> None:
    config = tmp_path / "cxpredict.yaml"
    config.write_text("name: x\n")
    entry = load_project(str(REPO_ROOT)).get_entry_point("tune")
    command = entry.compute_command({"config": str(config), "tune_trials": "5"}, str(tmp_path))
    assert command == f"python -m cxpredict.cli tune --config {config} --tune-trials 5 --study-storage ''"
    shared = entry.compute_command({"config": str(config), "study_storage": "sqlite:///a b.db"}, str(tmp_path))
    assert shared.endswith("--study-storage 'sqlite:///a b.db'")
