"""What a data scientist reads in MLflow: the experiment's kind, every model's settings, the inputs, the trials."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pytest

from cxpredict.models.estimators import BINARY, base_params
from cxpredict.models.registry import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG, TAG_TRIAL_STATE
from cxpredict.training.train import model_params, tuning_folds
from cxpredict.training.tune import TUNED_PARAMS, tune_model
from tests.conftest import TrainedCompany

pytestmark = pytest.mark.model


def test_pruned_trials_end_killed_with_their_params_and_intermediate_losses(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(1000, 6))
    y = (X[:, 0] + X[:, 1] * X[:, 2] + rng.normal(size=1000) > 0).astype(int)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        # Its own experiment: earlier tests leave another store's experiment active in this process
        # (trial runs, nested, go to the active experiment, as under `train`).
        mlflow.set_experiment("pruning")
        with mlflow.start_run() as parent:
            tune_model("toy", base_params(BINARY, 1, 0, 1), X, y, None, tuning_folds(len(y), y, 1), [],
                       n_trials=10, timeout_s=None, seed=0)
        client = mlflow.MlflowClient()
        trials = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    finally:
        mlflow.set_tracking_uri(None)
    assert len(trials) == 10
    pruned = [r for r in trials if r.data.tags[TAG_TRIAL_STATE] == "pruned"]
    complete = [r for r in trials if r.data.tags[TAG_TRIAL_STATE] == "complete"]
    assert pruned and complete and len(pruned) + len(complete) == 10  # this search prunes (measured: 6 of 10)
    assert {r.info.status for r in pruned} == {"KILLED"}  # stopped on purpose, not FAILED
    assert {r.info.status for r in complete} == {"FINISHED"}
    for run in pruned:
        assert set(TUNED_PARAMS) <= set(run.data.params) and run.data.params["model"] == "toy"
        history = client.get_metric_history(run.info.run_id, "intermediate_binary_logloss")
        assert history and all(m.step % 10 == 0 for m in history)  # the curve it was stopped on
        assert "val_binary_logloss" not in run.data.metrics
    for run in complete:
        assert "val_binary_logloss" in run.data.metrics and "num_boost_round" in run.data.params


def test_training_run_carries_kind_settings_inputs_and_a_described_version(small_training: TrainedCompany) -> None:
    config, result = small_training.config, small_training.result
    client = mlflow.MlflowClient(tracking_uri=config.tracking_uri, registry_uri=config.tracking_uri)
    run = client.get_run(result.run_id)

    # the MLflow 3 UI opens the experiment on its runs, not on the GenAI overview
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND == "custom_model_development"

    # the chosen settings of every model, prefixed by target
    models = result.models
    assert models is not None
    for fit in models.target_fits():
        for key in TUNED_PARAMS:
            assert run.data.params[f"{fit.name}.{key}"] == str(fit.hyperparameters[key]), (fit.name, key)
        assert int(run.data.params[f"{fit.name}.num_boost_round"]) == fit.booster.num_trees() // max(
            1, fit.booster.num_model_per_iteration())
    assert {"score.num_leaves", "expected_score.learning_rate", "churn.num_leaves", "propensity.lambda_l2"} <= set(
        run.data.params)
    assert set(model_params(models)) <= set(run.data.params)
    assert any(key.startswith("cause_") for key in run.data.params)

    # the tables it read, with digest and source
    inputs = {d.dataset.name: d for d in run.inputs.dataset_inputs}
    assert {"small-customers", "small-survey", "small-outcomes"} <= set(inputs)
    survey = inputs["small-survey"]
    assert json.loads(survey.dataset.source)["uri"].endswith("survey.csv")
    assert survey.dataset.digest and json.loads(survey.dataset.profile)["num_rows"] == int(
        result.metrics["n_respondents"])
    assert [t.value for t in survey.tags if t.key == "mlflow.data.context"] == ["training"]

    # the SHAP summary is an artifact; a handful of SHAP metrics remain
    assert not [k for k in run.data.metrics if k.startswith("shap_mean_abs_")]
    shap_metrics = sorted(k for k in run.data.metrics if k.startswith("shap_"))
    assert "shap_additivity_error_max" in shap_metrics and len(shap_metrics) <= 4, shap_metrics
    summary_path = client.download_artifacts(run.info.run_id, "drivers/shap_summary.json")
    summary = json.loads(Path(summary_path).read_text())
    churn = summary["mean_abs_shap"]["churn"]
    assert len(churn) >= 5 and list(churn.values()) == sorted(churn.values(), reverse=True)

    # the registered version says what it is
    version = client.get_model_version(result.model_name, result.model_version)
    assert result.run_id in version.description
    assert f"{int(result.metrics['n_customers']):,} customers" in version.description
    assert f"held-out churn ROC AUC {result.metrics['test_churn_roc_auc']:.3f}" in version.description
    assert f"{result.metrics['population_index']:+.1f}" in version.description
