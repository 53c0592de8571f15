"""Drift: PSI per feature and unseen categories between training and scored customers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cxpredict.features.build import FeaturePipeline
from cxpredict.features.synthetic import generate_company
from cxpredict.models.drift import DriftReference, drift_report, drift_warnings, population_stability_index

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def customers() -> pd.DataFrame:
    return generate_company(3000, 0.1, seed=4).customers


def _reference(customers: pd.DataFrame) -> tuple[FeaturePipeline, DriftReference]:
    pipeline = FeaturePipeline("customer_id", exclude=["clv"]).fit(customers)
    return pipeline, DriftReference.fit(pipeline, pipeline.transform(customers))


def test_psi_is_zero_for_identical_shares_and_grows_with_shift() -> None:
    r = np.array([0.25, 0.25, 0.25, 0.25, 0.0])
    assert population_stability_index(r, r) == pytest.approx(0.0)
    assert population_stability_index(r, np.array([0.4, 0.3, 0.2, 0.1, 0.0])) > 0.1


def test_same_customers_do_not_drift(customers: pd.DataFrame) -> None:
    pipeline, reference = _reference(customers)
    report = drift_report(reference, pipeline, customers)
    assert report["psi"].max() < 1e-6 and report["unseen_share"].max() == 0.0
    assert drift_warnings(report, 0.2, 0.05) == []


def test_fresh_sample_of_same_population_stays_under_threshold(customers: pd.DataFrame) -> None:
    pipeline, reference = _reference(customers)
    other = generate_company(3000, 0.1, seed=5).customers
    report = drift_report(reference, pipeline, other)
    # Sampling noise alone: 10 bins, 3,000 rows each side; measured max PSI 0.011, far under 0.2.
    assert report["psi"].max() < 0.05
    assert drift_warnings(report, 0.2, 0.05) == []


def test_shifted_numeric_and_unseen_category_warn(customers: pd.DataFrame) -> None:
    pipeline, reference = _reference(customers)
    shifted = customers.copy()
    shifted["monthly_charge"] = shifted["monthly_charge"] * 1.6
    rows = np.random.default_rng(0).random(len(shifted)) < 0.2
    shifted.loc[rows, "plan"] = "brand_new_plan"
    report = drift_report(reference, pipeline, shifted).set_index("feature")
    assert report.loc["monthly_charge", "psi"] > 0.2
    assert report.loc["plan", "unseen_share"] == pytest.approx(rows.mean())
    warnings = drift_warnings(report.reset_index(), 0.2, 0.05)
    assert any("monthly_charge" in w for w in warnings) and any("never seen" in w for w in warnings)
    assert report.drop(index=["monthly_charge", "plan"])["psi"].max() < 0.05  # the rest did not move
