"""generate → train → score → backtest through the real `cxpredict` command and a real MLflow store."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from tests.conftest import assert_no_progress, run_cli

pytestmark = pytest.mark.e2e


def test_generate_train_score_backtest(tmp_path: Path) -> None:
    data = tmp_path / "company"
    done = run_cli("generate", "--customers", "3000", "--survey-rate", "0.25", "--seed", "3", "--out", str(data),
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    config = data / "cxpredict.yaml"
    assert (data / "truth.parquet").is_file()

    done = run_cli("train", "--config", str(config), "--tune-trials", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "as champion" in done.stdout

    store = f"sqlite:///{data / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=store, registry_uri=store)
    champion = client.get_model_version_by_alias("cxpredict-synthetic", "champion")
    run = client.get_run(champion.run_id)
    assert run.data.metrics["test_macro_f1"] > 0.0
    trial_runs = client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'")
    assert len(trial_runs) >= 2 * 5  # two trials for each of at least five models

    scores_path = tmp_path / "scores.parquet"
    done = run_cli("score", "--config", str(config), "--out", str(scores_path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    scores = pd.read_parquet(scores_path)
    customers = pd.read_parquet(data / "customers.parquet")
    assert len(scores) == len(customers) and scores["customer_id"].is_unique
    bands = scores[["p_detractor", "p_passive", "p_promoter"]].sum(axis=1)
    assert bands.between(1 - 1e-9, 1 + 1e-9).all()
    assert scores["expected_score"].between(0, 10).all()
    assert scores["churn_probability"].between(0, 1).all()
    assert set(scores["model_version"]) == {str(champion.version)}
    surveyed = pd.read_csv(data / "survey.csv")
    assert scores["surveyed"].sum() == len(surveyed)

    again = tmp_path / "again.parquet"
    run_cli("score", "--config", str(config), "--out", str(again), cwd=tmp_path)
    pd.testing.assert_frame_equal(scores, pd.read_parquet(again))  # same input, same output

    report = tmp_path / "backtest.json"
    done = run_cli("backtest", "--config", str(config), "--survey-rate", "0.1", "--repeats", "1",
                   "--tune-trials", "2", "--out", str(report), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert_no_progress(done)
    metrics = json.loads(report.read_text())["metrics"]
    for key in ("band_accuracy", "macro_f1", "log_loss", "ece", "expected_score_mae", "cause_auc_mean",
                "population_error_model", "population_error_respondents_only", "churn_cv_roc_auc_tuned"):
        assert key in metrics


def test_cli_bad_config_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "cxpredict.yaml"
    config.write_text("name: x\nid_column: id\ndata: {customers: c.csv, survey: s.csv}\n"
                      "score: {column: nps, scale: [0, 10], bands: {low: [0, 6], high: [8, 10]}}\n")
    done = run_cli("train", "--config", str(config), cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "do not cover the scale" in lines[0] and "[7]" in lines[0]
    assert "Traceback" not in done.stderr
