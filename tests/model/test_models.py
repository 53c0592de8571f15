"""Behavioural model tests on a small generated company (4,000 customers, 1,000 respondents).

The session fixture `small_training` trains once with `train()` (tune_trials=2) after hiding a
fifth of the respondents and of the churn outcomes; everything here is measured through the
public `ScoringBundle.predict` on those hidden rows, which no part of the training run saw.
Thresholds are baselines a useless model cannot beat (majority class, the training mean, 0.5 AUC).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from cxpredict.features.load import load_dataset
from cxpredict.models.bundle import ScoringBundle, cause_column
from cxpredict.training.train import fit_models
from tests.conftest import TrainedCompany

pytestmark = pytest.mark.model

BANDS = ["detractor", "passive", "promoter"]


@pytest.fixture(scope="module")
def customers(small_training: TrainedCompany) -> pd.DataFrame:
    return load_dataset(small_training.config).customers


@pytest.fixture(scope="module")
def scores(small_training: TrainedCompany, customers: pd.DataFrame) -> pd.DataFrame:
    return small_training.bundle.predict(customers).set_index("customer_id")


@pytest.fixture(scope="module")
def training_survey(small_training: TrainedCompany) -> pd.DataFrame:
    return load_dataset(small_training.config).survey


def band_of(nps: pd.Series) -> np.ndarray:
    return np.select([nps <= 6, nps <= 8], [0, 1], 2)


# --- minimum functionality: better than a baseline on hidden truth ---------------------------


def test_band_macro_f1_beats_the_majority_class(
    small_training: TrainedCompany, scores: pd.DataFrame, training_survey: pd.DataFrame
) -> None:
    hidden = small_training.hidden_survey
    truth = band_of(hidden["nps"])
    probs = scores.loc[hidden["customer_id"], [f"p_{b}" for b in BANDS]].to_numpy()
    model_f1 = f1_score(truth, probs.argmax(axis=1), average="macro", labels=[0, 1, 2], zero_division=0)
    majority = np.bincount(band_of(training_survey["nps"]), minlength=3).argmax()
    baseline_f1 = f1_score(truth, np.full(len(truth), majority), average="macro", labels=[0, 1, 2], zero_division=0)
    assert model_f1 > baseline_f1 + 0.1, (model_f1, baseline_f1)


def test_expected_score_mae_beats_the_training_mean(
    small_training: TrainedCompany, scores: pd.DataFrame, training_survey: pd.DataFrame
) -> None:
    hidden = small_training.hidden_survey
    observed = hidden["nps"].to_numpy(float)
    model_mae = np.abs(scores.loc[hidden["customer_id"], "expected_score"].to_numpy() - observed).mean()
    baseline_mae = np.abs(training_survey["nps"].mean() - observed).mean()
    assert model_mae < baseline_mae, (model_mae, baseline_mae)


def test_churn_roc_auc_on_hidden_outcomes(small_training: TrainedCompany, scores: pd.DataFrame) -> None:
    hidden = small_training.hidden_outcomes
    auc = roc_auc_score(hidden["churned"], scores.loc[hidden["customer_id"], "churn_probability"])
    assert auc > 0.7, auc


def test_cause_auc_mean_on_hidden_respondents(small_training: TrainedCompany, scores: pd.DataFrame) -> None:
    hidden = small_training.hidden_survey
    named = hidden["causes"].fillna("").str.split(";")
    aucs = {}
    for code in small_training.bundle.cause_boosters:
        y = named.map(lambda codes, c=code: c in codes).to_numpy(int)
        if 0 < y.sum() < len(y):
            aucs[code] = roc_auc_score(y, scores.loc[hidden["customer_id"], cause_column(code)])
    assert len(aucs) == 5, aucs
    assert np.mean(list(aucs.values())) > 0.6, aucs


def test_training_reports_the_same_kind_of_metrics(small_training: TrainedCompany) -> None:
    metrics = small_training.result.metrics
    for key in ("test_macro_f1", "test_expected_score_mae", "test_churn_roc_auc", "test_cause_auc_mean"):
        assert np.isfinite(metrics[key]), key
    assert metrics["test_churn_roc_auc"] > 0.7 and metrics["test_cause_auc_mean"] > 0.55


def test_training_run_carries_the_models_key_drivers(small_training: TrainedCompany) -> None:
    """Runs can be compared by the drivers their models lean on: tables and mean |SHAP| per feature."""
    import json

    import mlflow

    client = mlflow.MlflowClient(tracking_uri=small_training.config.tracking_uri)
    run = client.get_run(small_training.result.run_id)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "drivers")}
    assert {"drivers/drivers_global.csv", "drivers/summary.json", "drivers/sample.csv",
            "drivers/shap_summary.json"} <= artifacts
    # mean |SHAP| per feature is an artifact of the run (not hundreds of metrics)
    summary = json.loads(Path(client.download_artifacts(run.info.run_id, "drivers/shap_summary.json")).read_text())
    churn = summary["mean_abs_shap"]["churn"]
    assert len(churn) >= 5 and all(v >= 0 for v in churn.values())
    # Synthetic churn is driven by the contract more than by the signup date's day of week.
    assert max(churn, key=churn.get) in {"contract", "predicted_expected_score", "tenure_months"}
    assert run.data.metrics["shap_additivity_error_churn"] < 1e-6


# --- directional ----------------------------------------------------------------------------


def test_more_unresolved_tickets_do_not_lower_churn_risk(
    small_training: TrainedCompany, customers: pd.DataFrame
) -> None:
    bundle = small_training.bundle
    means = [
        bundle.predict(customers.assign(unresolved_tickets=customers["unresolved_tickets"] + extra))[
            "churn_probability"
        ].mean()
        for extra in range(4)
    ]
    assert all(later >= earlier for earlier, later in zip(means, means[1:], strict=False)), means
    assert means[-1] > means[0], means  # and the model does use the tickets


# --- invariance -----------------------------------------------------------------------------


def test_scores_do_not_depend_on_row_order(small_training: TrainedCompany, customers: pd.DataFrame,
                                           scores: pd.DataFrame) -> None:
    shuffled = customers.sample(frac=1.0, random_state=3)
    again = small_training.bundle.predict(shuffled).set_index("customer_id").loc[scores.index]
    pd.testing.assert_frame_equal(again, scores, check_exact=False, rtol=0, atol=1e-12)


def test_scores_do_not_depend_on_batch_size(small_training: TrainedCompany, customers: pd.DataFrame,
                                            scores: pd.DataFrame) -> None:
    bundle = small_training.bundle
    rows = customers.iloc[::97]  # ~40 customers spread over the table, each scored alone
    alone = pd.concat([bundle.predict(rows.iloc[[i]]) for i in range(len(rows))]).set_index("customer_id")
    together = bundle.predict(rows).set_index("customer_id")
    pd.testing.assert_frame_equal(alone, together, check_exact=False, rtol=0, atol=1e-12)
    pd.testing.assert_frame_equal(together, scores.loc[together.index], check_exact=False, rtol=0, atol=1e-12)


# --- determinism ----------------------------------------------------------------------------


@pytest.mark.slow
def test_same_seed_trains_the_same_models(small_training: TrainedCompany, customers: pd.DataFrame,
                                          scores: pd.DataFrame) -> None:
    config = small_training.config
    bundle: ScoringBundle = fit_models(config, load_dataset(config), tune_trials=2, log_trials=False).bundle
    again = bundle.predict(customers).set_index("customer_id")
    pd.testing.assert_frame_equal(again, scores, check_exact=False, rtol=0, atol=1e-12)
