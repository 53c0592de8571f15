"""Explanations of a trained bundle: additive in raw output space, against the user's columns, sensible."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cxpredict.models.estimators import predict_raw
from cxpredict.models.explain import (
    CHURN,
    EXPECTED_SCORE,
    DriverExplainer,
    ExplainError,
    available_targets,
    explain_top_k,
    resolve_targets,
)
from cxpredict.models.registry import LoadedBundle
from cxpredict.models.treeshap import TreeShap

# Fits every model of the small company once (about 40 s of CPU; minutes on a loaded machine).
pytestmark = [pytest.mark.model, pytest.mark.slow]


@pytest.fixture(scope="module")
def champion(small_bundle: tuple) -> tuple[LoadedBundle, pd.DataFrame]:
    bundle, dataset = small_bundle
    return LoadedBundle(bundle, "cxpredict-small", "1", ""), dataset.customers.head(1500)


def test_every_booster_adds_up_in_raw_output_space(champion: tuple[LoadedBundle, pd.DataFrame]) -> None:
    loaded, customers = champion
    bundle = loaded.bundle
    X = bundle.pipeline.transform(customers)
    boosters = {"score": bundle.score_booster, **bundle.cause_boosters, **bundle.driver_boosters}
    for name, booster in boosters.items():
        shap = TreeShap().fit(booster).shap_values(X)
        raw = predict_raw(booster, X).reshape(len(X), -1)
        np.testing.assert_allclose(shap.sum(axis=2), raw, atol=1e-9, err_msg=name)
        reference = booster.predict(X, pred_contrib=True).reshape(shap.shape)
        np.testing.assert_allclose(shap, reference, atol=1e-6, err_msg=name)


def test_targets_add_up_to_the_predictions(champion: tuple[LoadedBundle, pd.DataFrame]) -> None:
    loaded, customers = champion
    bundle = loaded.bundle
    predicted = bundle.predict(customers)
    explained = DriverExplainer(bundle).explain(customers)
    assert set(explained) == {t.name for t in available_targets(bundle)}
    for name, e in explained.items():
        assert e.additivity_error < 1e-6, name
        column = predicted[e.target.output_column].to_numpy()
        model = np.log(column) - np.log1p(-column) if e.target.space == "log-odds" else column
        np.testing.assert_allclose(e.output, model, atol=1e-6, err_msg=name)


def test_contributions_belong_to_the_columns_users_know(champion: tuple[LoadedBundle, pd.DataFrame]) -> None:
    loaded, customers = champion
    bundle = loaded.bundle
    explained = DriverExplainer(bundle).explain(customers.head(50), [bundle.bottom_band, CHURN])
    assert explained[bundle.bottom_band].feature_names == bundle.pipeline.feature_names_
    assert "contract" in explained[CHURN].feature_names
    assert not any("__" in f for f in explained[CHURN].feature_names)
    assert explained[CHURN].feature_names[-2:] == ["predicted_expected_score", "predicted_p_detractor"]


def test_month_to_month_contract_raises_churn(champion: tuple[LoadedBundle, pd.DataFrame]) -> None:
    """Behavioural: the synthetic truth makes month-to-month customers churn more."""
    loaded, customers = champion
    e = DriverExplainer(loaded.bundle).explain(customers, [CHURN])[CHURN]
    contract = e.values[:, e.feature_names.index("contract")]
    monthly = customers["contract"].to_numpy() == "month_to_month"
    assert contract[monthly].mean() > 0 > contract[~monthly].mean()


def test_top_drivers_are_flat_readable_columns(champion: tuple[LoadedBundle, pd.DataFrame]) -> None:
    loaded, customers = champion
    top = explain_top_k(loaded.bundle, customers.head(200), 2, chunk_rows=64)
    assert len(top) == 200 and list(top.index) == list(customers.head(200).index)
    assert list(top.columns[:3]) == ["driver1_detractor_feature", "driver1_detractor_value",
                                     "driver1_detractor_contribution"]
    assert {f"driver2_{EXPECTED_SCORE}_contribution", "driver2_churn_value"} <= set(top.columns)
    first, second = top["driver1_churn_contribution"].abs(), top["driver2_churn_contribution"].abs()
    assert (first >= second).all()
    row = top.iloc[0]
    assert row["driver1_churn_feature"] in loaded.bundle.pipeline.feature_names_ + ["predicted_expected_score",
                                                                                    "predicted_p_detractor"]
    contract_rows = top["driver1_churn_feature"] == "contract"
    assert set(top.loc[contract_rows, "driver1_churn_value"]) <= {"month_to_month", "one_year", "two_year"}


def test_unknown_target_is_a_clear_error(champion: tuple[LoadedBundle, pd.DataFrame]) -> None:
    loaded, _ = champion
    with pytest.raises(ExplainError, match="target 'nps_drop' is not explained by model 'small'; targets are"):
        resolve_targets(loaded.bundle, ["nps_drop"])
    with pytest.raises(ExplainError, match="at least 1"):
        explain_top_k(loaded.bundle, pd.DataFrame(), 0)
