"""The population score under unobserved selection, judged against the generator's truth over repeats.

Companies of 10,000 customers with 20 % answering (`generate_selected_company`, seeds 1700+);
the nuisance models are small scikit-learn logistic regressions on the operational columns (the
estimators are what is under test, and the repeats must stay fast), each fitted out-of-fold for
the respondents as in training.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict

from cxpredict.features.synthetic import HiddenTrait, generate_selected_company, population_nps
from cxpredict.training.evaluate import bootstrap_mean_interval, doubly_robust_contributions
from cxpredict.training.nonresponse import (
    churn_gap,
    headline_interval,
    sensitivity_band,
    shadow_variable_estimate,
)

pytestmark = [pytest.mark.model, pytest.mark.slow]  # 60 small companies: about 4 min on 2 busy cores
N_CUSTOMERS, SURVEY_RATE, REPS = 10_000, 0.20, 50
SEEDS = tuple(range(1700, 1720))
STRONG = HiddenTrait(strength=1.0, satisfaction_weight=0.8, churn_per_score_point=-0.5)
UNINFORMATIVE = HiddenTrait(strength=1.0, satisfaction_weight=0.8, churn_per_score_point=0.0)
OFF = HiddenTrait(strength=0.0, satisfaction_weight=0.8, churn_per_score_point=-0.35)


def _columns(customers: pd.DataFrame) -> np.ndarray:
    numeric = customers[["tenure_months", "monthly_charge", "data_usage_gb", "dropped_calls_per_month",
                         "network_quality", "support_tickets_90d", "unresolved_tickets", "age"]].astype(float)
    numeric = numeric.fillna(numeric.median())
    numeric["log_tenure"] = np.log1p(numeric["tenure_months"])
    numeric["log_unresolved"] = np.log1p(numeric["unresolved_tickets"])
    categorical = pd.get_dummies(customers[["segment", "region", "plan", "contract", "internet_type",
                                            "phone_service", "payment_method", "paperless_billing", "app_user"]]
                                 .astype(str), drop_first=True)
    x = np.column_stack([numeric.to_numpy(), categorical.to_numpy(float)])
    return (x - x.mean(axis=0)) / np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0)


@cache
def _estimates(trait: HiddenTrait, seed: int) -> dict[str, object]:
    company = generate_selected_company(N_CUSTOMERS, SURVEY_RATE, seed, trait)
    x = _columns(company.customers)
    ids = company.customers["customer_id"].astype(str)
    positions = np.flatnonzero(ids.isin(company.survey["customer_id"].astype(str)).to_numpy())
    nps = company.survey.set_index(company.survey["customer_id"].astype(str)).loc[ids.iloc[positions], "nps"]
    nps = nps.to_numpy(int)
    band = np.select([nps <= 6, nps <= 8], [0, 1], 2)
    responded = np.zeros(len(x), int)
    responded[positions] = 1
    propensity = cross_val_predict(LogisticRegression(max_iter=500), x, responded, cv=3,
                                   method="predict_proba")[:, 1]
    weight = 1.0 / propensity[positions]
    bands = LogisticRegression(max_iter=500).fit(x[positions], band, sample_weight=weight)
    probabilities = bands.predict_proba(x)
    probabilities[positions] = cross_val_predict(LogisticRegression(max_iter=500), x[positions], band, cv=3,
                                                 method="predict_proba", params={"sample_weight": weight})
    predicted = probabilities[:, 2] - probabilities[:, 0]
    observed = (band == 2).astype(float) - (band == 0).astype(float)
    churned = company.outcomes["churned"].to_numpy(float)
    churn_x = LogisticRegression(max_iter=500).fit(x, churned).predict_proba(x)[:, 1]
    design = np.column_stack([np.log(propensity / (1 - propensity)), predicted, churn_x])
    contributions = doubly_robust_contributions(predicted, observed, positions, propensity[positions])
    sampling = tuple(100 * v for v in bootstrap_mean_interval(contributions, seed))
    shadow = shadow_variable_estimate(band, nps, positions, design, churned, 3, 2, 0, seed, REPS, contributions)
    band_range = sensitivity_band(predicted, observed, positions, propensity[positions], seed, reps=REPS)
    return {
        "truth": population_nps(company.truth["true_nps"]),
        "dr": 100 * contributions.mean(),
        "sampling": sampling,
        "shadow": shadow,
        "band": band_range,
        "headline": headline_interval(sampling, shadow, band_range),
        "gap": churn_gap(churned, positions, observed, predicted, design, seed, REPS, score=nps),
    }


def _covers(interval: tuple[float, float], truth: float) -> bool:
    return interval[0] <= truth <= interval[1]


def _strong_figures() -> dict[str, float]:
    runs = [_estimates(STRONG, seed) for seed in SEEDS]
    return {
        "dr_error": float(np.mean([abs(r["dr"] - r["truth"]) for r in runs])),
        "shadow_error": float(np.mean([abs(r["shadow"].population_score - r["truth"]) for r in runs])),
        "shadow_coverage": float(np.mean([_covers((r["shadow"].ci_low, r["shadow"].ci_high), r["truth"])
                                          for r in runs])),
        "headline_coverage": float(np.mean([_covers((r["headline"].low, r["headline"].high), r["truth"])
                                            for r in runs])),
        "sampling_coverage": float(np.mean([_covers(r["sampling"], r["truth"]) for r in runs])),
    }


def test_shadow_estimate_halves_the_doubly_robust_error_when_churn_is_informative() -> None:
    """Measured: mean |DR − truth| 19.0 points, mean |shadow − truth| 4.6; coverage 80 % (see the xfail below)."""
    figures = _strong_figures()
    print(figures)
    assert figures["shadow_error"] <= 0.5 * figures["dr_error"]
    assert figures["shadow_coverage"] >= 0.75


def test_headline_interval_covers_far_more_often_than_the_sampling_interval() -> None:
    """Measured: headline 80 %, sampling-only 0 % (the doubly robust figure is 19 points off)."""
    figures = _strong_figures()
    assert figures["headline_coverage"] >= 0.75
    assert figures["sampling_coverage"] <= 0.1


@pytest.mark.xfail(strict=True, reason="issue 17's 90 % coverage is not reached: the shadow estimate keeps a "
                   "+2.3-point bias on this generator (response odds only approximately linear in the score), "
                   "measured coverage 80 % of 20 repeats")
def test_shadow_and_headline_intervals_cover_the_truth_in_nine_repeats_of_ten() -> None:
    figures = _strong_figures()
    assert figures["shadow_coverage"] >= 0.9 and figures["headline_coverage"] >= 0.9


def test_churn_gap_says_respondents_look_happier_under_unobserved_selection() -> None:
    runs = [_estimates(STRONG, seed) for seed in SEEDS]
    fired = [r["gap"].significant and r["gap"].implied_bias > 0 for r in runs]
    assert np.mean(fired) >= 0.9
    assert "respondents appear happier" in runs[0]["gap"].sentence


def test_weak_identification_fires_when_churn_is_uninformative() -> None:
    runs = [_estimates(UNINFORMATIVE, seed) for seed in SEEDS]
    fired = np.mean([not r["shadow"].identified for r in runs])
    print(f"weak-identification diagnostic fired in {fired:.0%} of repeats")
    assert fired >= 0.9
    assert "too weak to trust" in next(r["shadow"].verdict for r in runs if not r["shadow"].identified)
    assert all(r["headline"].basis == "sensitivity" for r in runs if not r["shadow"].identified)


def test_without_the_trait_estimators_agree_and_the_headline_stays_narrow() -> None:
    runs = [_estimates(OFF, seed) for seed in SEEDS]
    agree = np.mean([not r["shadow"].disagrees for r in runs])
    ratio = [(r["headline"].high - r["headline"].low) / (r["sampling"][1] - r["sampling"][0]) for r in runs]
    print(f"agree in {agree:.0%}, headline/sampling width ratio max {max(ratio):.2f}, median {np.median(ratio):.2f}")
    assert agree >= 0.9
    assert np.mean(np.array(ratio) <= 1.5) >= 0.9
    dr_covers = np.mean([_covers(r["sampling"], r["truth"]) for r in runs])
    assert dr_covers >= 0.85


def test_sensitivity_band_widens_with_lambda_and_contains_the_estimate() -> None:
    r = _estimates(STRONG, SEEDS[0])
    band = r["band"]
    widths = [d.high - d.low for d in band.doubly_robust]
    assert widths == sorted(widths) and widths[0] > 0
    for d in band.doubly_robust:
        assert d.low <= r["dr"] <= d.high and d.ci_low <= d.low and d.ci_high >= d.high
    if band.sign_flip_lambda is not None:
        assert band.sign_flip_lambda >= 1.0
