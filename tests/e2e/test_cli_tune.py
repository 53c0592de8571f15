"""`cxpredict tune`: the searches alone in one MLflow run, in Optuna studies a second run resumes."""

from __future__ import annotations

from pathlib import Path

import mlflow
import optuna
import pytest

from cxpredict.features.synthetic import generate_company, write_company
from tests.conftest import run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_tune_runs_the_searches_alone_and_resumes_a_named_study(tmp_path: Path) -> None:
    config = write_company(generate_company(1500, 0.3, seed=5), tmp_path / "company", name="tuned")
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    args = ("tune", "--config", str(config), "--tune-trials", "2", "--study-storage", storage,
            "--study-name", "nightly")

    first = run_cli(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "nightly-score" in first.stdout and "studies in" in first.stdout
    studies = {s.study_name: s for s in optuna.get_all_study_summaries(storage)}
    assert {"nightly-propensity", "nightly-score", "nightly-expected_score", "nightly-churn"} <= set(studies)
    assert studies["nightly-score"].n_trials == 2

    second = run_cli(*args, cwd=tmp_path)  # the same storage and name: the studies are resumed
    assert second.returncode == 0, second.stderr
    studies = {s.study_name: s for s in optuna.get_all_study_summaries(storage)}
    assert studies["nightly-score"].n_trials == 4 and studies["nightly-churn"].n_trials == 4
    assert studies["nightly-propensity"].n_trials == 4  # the response model's searches stay small (2 + 2)

    store = f"sqlite:///{tmp_path / 'company' / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=store, registry_uri=store)
    experiment = client.get_experiment_by_name("cxpredict-tuned")
    runs = client.search_runs([experiment.experiment_id], "attributes.run_name = 'tune-tuned'",
                              order_by=["attributes.start_time ASC"])
    assert len(runs) == 2
    latest = runs[-1]
    assert latest.data.metrics["n_trials_score"] == 4  # the resumed study's trials, both runs'
    assert {"score.num_leaves", "churn.learning_rate", "expected_score.num_boost_round"} <= set(latest.data.params)
    trials = client.search_runs([experiment.experiment_id], f"tags.mlflow.parentRunId = '{latest.info.run_id}'")
    assert len(trials) >= 2 * 4  # this run's own trials, nested under it
    assert client.search_registered_models() == []  # tuning registers nothing

    # train joins the same studies and starts from their best trials
    done = run_cli("train", "--config", str(config), "--tune-trials", "1", "--study-storage", storage,
                   "--study-name", "nightly", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    studies = {s.study_name: s for s in optuna.get_all_study_summaries(storage)}
    assert studies["nightly-score"].n_trials == 5
