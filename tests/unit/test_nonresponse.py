"""The missing-not-at-random estimators' exact properties on small arrays (training/nonresponse.py)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from cxpredict.training.evaluate import doubly_robust_contributions
from cxpredict.training.nonresponse import (
    HeadlineInterval,
    _extreme_weighted_mean,
    headline_interval,
    sensitivity_band,
    shadow_variable_estimate,
)

pytestmark = pytest.mark.unit


def test_extreme_weighted_mean_matches_every_corner_of_the_box() -> None:
    rng = np.random.default_rng(3)
    values, low = rng.normal(size=8), rng.uniform(1, 2, 8)
    high = low * rng.uniform(1, 3, 8)
    corners = [np.where(np.array(c), high, low) for c in itertools.product([0, 1], repeat=8)]
    means = [float(w @ values / w.sum()) for w in corners]
    assert _extreme_weighted_mean(values, low, high, upper=True) == pytest.approx(max(means))
    assert _extreme_weighted_mean(values, low, high, upper=False) == pytest.approx(min(means))


def test_sensitivity_band_at_lambda_one_is_the_doubly_robust_figure() -> None:
    rng = np.random.default_rng(4)
    n = 2000
    predicted = rng.uniform(-0.5, 0.5, n)
    positions = np.sort(rng.choice(n, 300, replace=False))
    propensity = rng.uniform(0.05, 0.4, 300)
    observed = rng.choice([-1.0, 0.0, 1.0], 300)
    band = sensitivity_band(predicted, observed, positions, propensity, seed=0, lambdas=(1.0, 1.5, 2.0), reps=20)
    dr = 100 * doubly_robust_contributions(predicted, observed, positions, propensity).mean()
    assert band.doubly_robust[0].low == pytest.approx(dr) and band.doubly_robust[0].high == pytest.approx(dr)
    assert band.doubly_robust[1].low < dr < band.doubly_robust[1].high
    widths = [r.high - r.low for r in band.doubly_robust]
    assert widths[2] > widths[1]


def test_shadow_estimate_recovers_a_known_score_dependent_response() -> None:
    """Response odds linear in the score, churn a valid shadow: the respondents' +45-point bias is removed."""
    rng = np.random.default_rng(0)
    n = 20_000
    x = rng.normal(size=n)
    score = np.clip(np.round(7 + 1.5 * x + 2 * rng.normal(size=n)), 0, 10).astype(int)
    answered = rng.random(n) < 1 / (1 + np.exp(-(-1.6 + 0.5 * x + 0.4 * (score - 7))))
    churn = (rng.random(n) < 1 / (1 + np.exp(-(-1.5 + 0.3 * x - 0.5 * (score - 7))))).astype(float)
    band = np.select([score <= 6, score <= 8], [0, 1], 2)
    truth = 100 * ((band == 2).mean() - (band == 0).mean())
    positions = np.flatnonzero(answered)
    naive = 100 * ((band[positions] == 2).mean() - (band[positions] == 0).mean())
    est = shadow_variable_estimate(band[positions], score[positions], positions, x[:, None], churn, 3, 2, 0,
                                   seed=0, reps=30)
    assert naive - truth > 30
    assert abs(est.population_score - truth) < 6 and est.identified
    weak = shadow_variable_estimate(band[positions], score[positions], positions, x[:, None],
                                    rng.random(n) < 0.2, 3, 2, 0, seed=0, reps=10)
    assert not weak.identified and "too weak to trust" in weak.verdict


def test_headline_without_a_shadow_estimate_is_the_sampling_interval() -> None:
    assert headline_interval((1.0, 3.0), None, None) == HeadlineInterval(1.0, 3.0, "sampling", 1.0, 3.0)
