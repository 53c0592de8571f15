"""Optuna studies shared across processes: deterministic names, margins rebuilt from another process's trial."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest

from cxpredict.features.synthetic import generate_company, write_company
from cxpredict.training.train import base_params, tuning_folds
from cxpredict.training.tune import study_name_for, tune_model


@pytest.mark.unit
def test_tune_model_rebuilds_best_margins_of_a_trial_run_elsewhere(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 4))
    y = (X[:, 0] + rng.normal(scale=0.5, size=400) > 0).astype(float)
    folds = tuning_folds(len(y), y.astype(int), seed=1)
    base = base_params("binary", 1, 42, 1)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    name = study_name_for("unit", "m", y, X.shape[1])
    first = tune_model("m", base, X, y, None, folds, [], n_trials=3, timeout_s=None, seed=42, log_trials=False,
                       storage=storage, study_name=name)
    # A second process that runs no trial of its own still gets the study's best margins, rebuilt.
    joined = tune_model("m", base, X, y, None, folds, [], n_trials=0, timeout_s=None, seed=42, log_trials=False,
                        storage=storage, study_name=name)
    assert joined.n_trials == 3 and joined.params == first.params
    np.testing.assert_allclose(joined.valid_raw, first.valid_raw, rtol=0, atol=1e-12)


@pytest.mark.unit
def test_study_name_depends_on_dataset_model_and_target_rows() -> None:
    y = np.array([0, 1, 0, 1, 0, 1.0])
    assert study_name_for("d", "churn", y, 2) == study_name_for("d", "churn", y.copy().astype(int), 2)
    assert study_name_for("d", "churn", y, 2) != study_name_for("d", "score", y, 2)
    assert study_name_for("d", "churn", y, 2) != study_name_for("d", "churn", y[:5], 2)
    assert study_name_for("d", "churn", y, 2) != study_name_for("e", "churn", y, 2)


@pytest.mark.postgres
@pytest.mark.e2e
@pytest.mark.slow
def test_two_train_processes_share_one_postgres_study_per_model(postgres_database: str, tmp_path: Path) -> None:
    first = tmp_path / "one"
    config = write_company(generate_company(1500, 0.3, seed=5), first, name="shared")
    text = config.read_text().replace("bias_correction: true}", "bias_correction: true, threads: 1}")
    config.write_text(text)
    second = tmp_path / "two"
    shutil.copytree(first, second)  # same data, separate MLflow stores
    env = {"PYTHONWARNINGS": "ignore", "PATH": "/usr/bin:/bin"}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "cxpredict.cli", "train", "--config", str(folder / "cxpredict.yaml"),
             "--tune-trials", "2", "--study-storage", postgres_database],
            cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for folder in (first, second)
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, stderr

    summaries = optuna.get_all_study_summaries(storage=postgres_database)
    names = sorted(s.study_name for s in summaries)
    assert names and all(n.startswith("cxpredict-shared-") for n in names)
    models = {n.rsplit("-", 1)[0] for n in names}
    assert len(models) == len(names)  # one study per model: both processes joined it
    assert {"cxpredict-shared-score", "cxpredict-shared-churn"} <= models
    pids = set()
    for summary in summaries:
        study = optuna.load_study(study_name=summary.study_name, storage=postgres_database)
        finished = [t for t in study.trials if t.state.is_finished()]
        assert len(finished) == 4, summary.study_name  # 2 trials from each process
        pids |= {t.user_attrs.get("pid") for t in finished}
    assert len(pids - {None}) == 2
