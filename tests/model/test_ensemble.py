"""The ensemble as the bundle's model: trained, stored as data, scored and explained exactly (issue 15)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cxpredict.features.config import load_config
from cxpredict.features.load import load_dataset
from cxpredict.features.synthetic import generate_company, write_company
from cxpredict.models.bundle import band_column, load_bundle, save_bundle
from cxpredict.models.ensemble import CatBoostMember, Ensemble, LightGBMMember, LinearMember
from cxpredict.models.estimators import predict_raw
from cxpredict.models.explain import CHURN, DriverExplainer, resolve_targets
from cxpredict.models.scoring import CustomerScorer, ScoringOptions
from cxpredict.training.train import TrainedModels, fit_models

pytestmark = [pytest.mark.model, pytest.mark.slow]


@pytest.fixture(scope="module")
def ensemble_models(tmp_path_factory: pytest.TempPathFactory) -> TrainedModels:
    """About 280 respondents of an 800-customer company; score, churn and causes fitted as ensembles."""
    out = tmp_path_factory.mktemp("ensemble_company")
    write_company(generate_company(800, 0.35, seed=5), out, name="ens")
    config = load_config(out / "cxpredict.yaml")
    training = config.training.model_copy(update={"ensemble": True, "ensemble_targets": ["score", "churn", "causes"]})
    config = config.model_copy(update={"training": training})
    return fit_models(config, load_dataset(config), tune_trials=2, log_trials=False)


def test_score_and_churn_are_ensembles_of_four_diverse_members(ensemble_models: TrainedModels) -> None:
    bundle = ensemble_models.bundle
    for model in (bundle.score_booster, bundle.churn_booster, *bundle.cause_boosters.values()):
        assert isinstance(model, Ensemble)
        kinds = [type(m) for m in model.members]
        assert kinds == [LightGBMMember, LightGBMMember, CatBoostMember, LinearMember]
        assert np.all(model.weights >= 0) and abs(model.weights.sum() - 1) < 1e-9
    assert bundle.score_temperature == 1.0  # the ensemble's own temperature is inside it
    m = ensemble_models.metrics
    assert {"score_ensemble_weight_catboost", "churn_ensemble_temperature", "test_log_loss"} <= set(m)
    assert np.isfinite(m["test_log_loss"]) and 0.5 < m["test_churn_roc_auc"] <= 1.0
    assert not isinstance(bundle.expected_score_booster, Ensemble)  # not in training.ensemble_targets


def test_ensemble_contributions_add_up_to_its_raw_output(ensemble_models: TrainedModels) -> None:
    bundle = ensemble_models.bundle
    X = ensemble_models.data.X[:300]
    for model in (bundle.score_booster, *bundle.cause_boosters.values()):
        shap = model.explainer().shap_values(X)
        raw = predict_raw(model, X).reshape(len(X), -1)
        np.testing.assert_allclose(shap.sum(axis=2), raw, atol=1e-6)
        assert np.ptp(shap[:, :, -1], axis=0).max() == 0.0  # one base value for every row


def test_explanations_add_up_to_the_scored_probabilities(ensemble_models: TrainedModels) -> None:
    bundle = ensemble_models.bundle
    customers = ensemble_models.data.dataset.customers.head(300)
    predicted = bundle.predict(customers)
    targets = resolve_targets(bundle, [bundle.bottom_band, CHURN])
    explained = DriverExplainer(bundle).explain_matrix(bundle.pipeline.transform(customers), targets)
    for target in targets:
        e = explained[target.name]
        assert e.additivity_error < 1e-6
        p = predicted[target.output_column].to_numpy()
        np.testing.assert_allclose(e.output, np.log(p) - np.log1p(-p), atol=1e-6)


def test_the_ensemble_bundle_round_trips_as_data_files(ensemble_models: TrainedModels, tmp_path: Path) -> None:
    bundle = ensemble_models.bundle
    files = save_bundle(bundle, tmp_path / "bundle")
    stored = sorted(p.name for p in (tmp_path / "bundle" / "boosters").iterdir())
    assert any(name.endswith(".cbm") for name in stored) and not list((tmp_path / "bundle").rglob("*.pkl"))
    loaded = load_bundle(tmp_path / "bundle", files.sha256)
    customers = ensemble_models.data.dataset.customers.head(500)
    options = ScoringOptions(explain=3, explain_targets=(bundle.bottom_band, CHURN))
    before = CustomerScorer(bundle, options).score(customers)
    after = CustomerScorer(loaded, options).score(customers)
    assert list(before.columns) == list(after.columns)
    for column in [band_column(bundle.bottom_band), "churn_probability", f"driver1_{CHURN}_contribution"]:
        np.testing.assert_allclose(after[column].to_numpy(float), before[column].to_numpy(float), atol=1e-12)
