"""generate → train → score (in memory and streamed) → backtest through `mlflow run` (MLproject).

`mlflow run` keeps its own run in its own store (here MLFLOW_TRACKING_URI = project.db); the
training and backtest runs land in the dataset config's store and both sides are linked by tags.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from cxpredict.training.project import TAG_PROJECT_RUN, TAG_PROJECT_STORE, TAG_RUN, TAG_STORE
from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def mlflow_run(entry_point: str, params: dict[str, str], cwd: Path, project_store: str) -> str:
    """`mlflow run <repo> -e ENTRY -P k=v ... --env-manager local`; returns its output."""
    # MLFLOW_* variables left by in-process tests (mlflow.set_experiment exports one) would steer
    # the launcher to another store or experiment; `mlflow run` gets only the store chosen here.
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
        "PYTHONWARNINGS": "ignore",
        "MLFLOW_TRACKING_URI": project_store,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    command = [sys.executable, "-m", "mlflow", "run", str(REPO_ROOT), "-e", entry_point, "--env-manager", "local"]
    for key, value in params.items():
        command += ["-P", f"{key}={value}"]
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{entry_point}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr
    return done.stdout + done.stderr


def test_mlflow_run_generate_train_score_backtest(tmp_path: Path) -> None:
    project_store = f"sqlite:///{tmp_path / 'project.db'}"
    data_store = f"sqlite:///{tmp_path / 'company' / 'mlflow.db'}"

    mlflow_run("generate", {"out": str(tmp_path / "company"), "customers": "1000", "survey_rate": "0.3",
                            "seed": "4", "name": "proj"}, tmp_path, project_store)
    assert (tmp_path / "company" / "cxpredict.yaml").is_file()

    # `config` is a path parameter: relative to where `mlflow run` is called, not the project folder.
    mlflow_run("train", {"config": "company/cxpredict.yaml", "tune_trials": "2"}, tmp_path, project_store)
    scores_path = tmp_path / "out" / "scores.parquet"
    mlflow_run("score", {"config": "company/cxpredict.yaml", "out": str(scores_path)}, tmp_path, project_store)
    stream_path = tmp_path / "out" / "stream"
    mlflow_run("score_stream", {"config": "company/cxpredict.yaml", "input": "company/customers.parquet",
                                "out": str(stream_path), "chunk_rows": "300", "explain": "2"}, tmp_path, project_store)
    report_path = tmp_path / "out" / "backtest.json"
    mlflow_run("backtest", {"config": "company/cxpredict.yaml", "survey_rate": "0.4", "repeats": "1",
                            "selection": "random", "tune_trials": "2", "out": str(report_path)},
               tmp_path, project_store)

    launcher = mlflow.MlflowClient(tracking_uri=project_store)
    project_runs = {
        r.data.tags["mlflow.project.entryPoint"]: r for r in launcher.search_runs(["0"])
    }
    assert set(project_runs) == {"generate", "train", "score", "score_stream", "backtest"}
    assert all(r.info.status == "FINISHED" for r in project_runs.values())
    assert project_runs["train"].data.params == {"config": "company/cxpredict.yaml", "tune_trials": "2"}

    # The training run is in the config's store, where the champion lives, linked both ways.
    store = mlflow.MlflowClient(tracking_uri=data_store, registry_uri=data_store)
    champion = store.get_model_version_by_alias("cxpredict-proj", "champion")
    training_run = store.get_run(champion.run_id)
    assert training_run.data.tags[TAG_PROJECT_RUN] == project_runs["train"].info.run_id
    assert training_run.data.tags[TAG_PROJECT_STORE] == project_store
    assert project_runs["train"].data.tags[TAG_RUN] == champion.run_id
    assert project_runs["train"].data.tags[TAG_STORE] == data_store
    assert training_run.data.params["tune_trials"] == "2"

    scores = pd.read_parquet(scores_path)
    assert len(scores) == 1000 and set(scores["model_version"]) == {str(champion.version)}

    streamed = pd.read_parquet(stream_path)
    assert len(streamed) == 1000 and len(list(stream_path.glob("part-*.parquet"))) == 4
    assert "driver2_churn_contribution" in streamed.columns
    assert json.loads((stream_path / "_manifest.json").read_text())["complete"]

    report = json.loads(report_path.read_text())
    assert report["selection"] == "random" and report["repeats"] == 1
    assert project_runs["backtest"].data.tags[TAG_RUN] == report["run_id"]
    assert store.get_run(report["run_id"]).data.tags[TAG_PROJECT_RUN] == project_runs["backtest"].info.run_id


def test_mlproject_declares_a_python_env_that_installs_cxpredict() -> None:
    """Plain `mlflow run .` (no --env-manager) builds this environment: pyenv's Python plus this checkout."""
    import yaml

    project = yaml.safe_load((REPO_ROOT / "MLproject").read_text())
    assert project["python_env"] == "python_env.yaml"
    env = yaml.safe_load((REPO_ROOT / project["python_env"]).read_text())
    assert env["python"].count(".") == 2  # a full version: pyenv installs exactly that one
    assert env["dependencies"] == ["."]
    assert all(entry["command"].startswith("python -m cxpredict.cli ") for entry in project["entry_points"].values())
