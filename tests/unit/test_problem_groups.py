"""Problem groups (lift over each cause's base rate), eligibility rules on predictions, the stratified holdout."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cxpredict.features.strategies import StrategyError, as_strategy, validate_strategies
from cxpredict.models.campaigns import CampaignPlanError, draw_holdout, standardised_differences
from cxpredict.models.problems import cause_base_rates, problem_arrays
from cxpredict.models.uplift import average_treatment_effect, stratified_effect

pytestmark = pytest.mark.unit

PREDICTED = {"p_cause_price": ("numeric", ()), "churn_probability": ("numeric", ()),
             "problem_group": ("categorical", ("network", "none", "price"))}


def test_problem_group_is_the_cause_most_raised_over_its_base_rate() -> None:
    rates = cause_base_rates(pd.DataFrame({"price": [1, 1, 1, 0], "network": [1, 0, 0, 0], "never": [0, 0, 0, 0]}))
    assert rates == {"price": 0.75, "network": 0.25}  # a cause nobody named has no lift
    probabilities = {"price": np.array([0.9, 0.6, 0.8]), "network": np.array([0.3, 0.5, 0.2])}
    group, lift = problem_arrays(probabilities, rates, min_lift=1.5)
    # Row 0: price is the most likely cause (0.9) but only 1.2x its base rate, as is network: group none;
    # row 1: network at 2x its base rate wins over the likelier price at 0.8x; row 2: nothing >= 1.5x.
    assert list(group) == ["none", "network", "none"]
    assert lift == pytest.approx([1.2, 2.0, 1.0666667])
    group, _ = problem_arrays(probabilities, rates, min_lift=1.1)
    assert group[0] == "price" and group[1] == "network"  # a tie goes to the first cause


def test_eligibility_may_use_predictions_checked_like_any_rule() -> None:
    customers = pd.DataFrame({"customer_id": ["a"], "monthly_charge": [50.0]})
    ok = as_strategy({"id": "s", "eligible": [{"column": "p_cause_price", "op": ">=", "value": 0.3},
                                               {"column": "problem_group", "op": "==", "value": "price"}],
                      "apply": {"monthly_charge": {"multiply": 0.9}}})
    validate_strategies([ok], customers, predicted=PREDICTED)
    unknown_group = ok.model_copy(update={"eligible": [
        ok.eligible[0], ok.eligible[1].model_copy(update={"value": "prize"})]})
    with pytest.raises(StrategyError, match=r"key 'eligible.1.value': column 'problem_group': value 'prize' is not"):
        validate_strategies([unknown_group], customers, predicted=PREDICTED)
    with pytest.raises(StrategyError, match=r"key 'eligible.0.value'.*needs a number"):
        validate_strategies([as_strategy({"id": "t", "eligible": [{"column": "churn_probability", "op": ">",
                                                                   "value": "high"}],
                                          "apply": {"monthly_charge": {"add": 1}}})], customers, predicted=PREDICTED)
    with pytest.raises(StrategyError, match=r"'churn_probability' is a prediction"):
        validate_strategies([as_strategy({"id": "u", "apply": {"churn_probability": {"set": 0.1}}})], customers,
                            predicted=PREDICTED)
    with pytest.raises(StrategyError, match="not found in the customers table"):  # without the model's columns
        validate_strategies([ok], customers)


def test_holdout_is_stratified_seeded_and_balanced() -> None:
    rng = np.random.default_rng(0)
    strata = np.repeat(["a|price", "a|none", "b|network"], [300, 200, 40])
    features = pd.DataFrame({"x": rng.normal(size=540), "y": rng.exponential(size=540)})
    control, balance = draw_holdout(strata, 0.2, seed=5, features=features, max_smd=0.1)
    again, _ = draw_holdout(strata, 0.2, seed=5, features=features, max_smd=0.1)
    assert (control == again).all()  # seeded: the same plan twice
    for label, n in (("a|price", 300), ("a|none", 200), ("b|network", 40)):
        assert control[strata == label].sum() == round(0.2 * n)
    assert balance["max_smd"] < 0.1 and balance["balanced"]
    assert max(standardised_differences(features, ~control).values()) == pytest.approx(balance["max_smd"])
    assert not draw_holdout(strata, 0.0, seed=5)[0].any()
    with pytest.raises(CampaignPlanError, match=r"--holdout must be between 0 and 0.9"):
        draw_holdout(strata, 0.95, seed=5)


def test_stratified_effect_pools_waves_and_matches_the_plain_ate_in_one() -> None:
    rng = np.random.default_rng(1)
    treated = rng.integers(0, 2, 2000)
    y = (rng.random(2000) < np.where(treated == 1, 0.2, 0.3)).astype(int)
    plain, pooled = average_treatment_effect(treated, y), stratified_effect(treated, y)
    assert pooled.ate == pytest.approx(plain.ate) and pooled.se == pytest.approx(plain.se)
    # Two waves with different base rates and shares treated: the pooled effect is each wave's, weighted.
    wave = np.repeat([1, 2], 1000)
    y2 = y.copy()
    y2[wave == 2] = (rng.random(1000) < np.where(treated[wave == 2] == 1, 0.5, 0.6)).astype(int)
    effect = stratified_effect(treated, y2, wave)
    first = average_treatment_effect(treated[wave == 1], y2[wave == 1]).ate
    second = average_treatment_effect(treated[wave == 2], y2[wave == 2]).ate
    assert effect.ate == pytest.approx((first + second) / 2)
    score = np.where(treated == 1, 7.5, 7.0) + rng.normal(0, 2, 2000)
    continuous = stratified_effect(treated, score, binary=False)
    assert continuous.ci_low < 0.5 < continuous.ci_high and continuous.ci_low > 0
