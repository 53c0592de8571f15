"""The doubly robust (AIPW) contributions shared by the population figure and the segment figures."""

from __future__ import annotations

import numpy as np
import pytest

from cxpredict.training import evaluate
from cxpredict.training.evaluate import doubly_robust_contributions

pytestmark = pytest.mark.unit


def test_everyone_answered_uses_observed() -> None:
    out = doubly_robust_contributions(np.zeros(3), np.array([1.0, -1.0, 0.0]), np.arange(3), None)
    assert out.tolist() == [1.0, -1.0, 0.0]


def test_right_outcome_model_needs_no_correction() -> None:
    predicted = np.array([0.2, 0.4, -0.1, 0.5])
    out = doubly_robust_contributions(predicted, predicted[[1, 3]], np.array([1, 3]), np.array([0.1, 0.9]))
    assert out == pytest.approx(predicted)


def test_wrong_outcome_model_is_corrected_by_right_propensity() -> None:
    """Outcome model predicts 0 for everyone; response depends on x and the outcome on x too.

    With the true propensity the estimate recovers the true mean (measured −0.386 vs −0.391, the
    respondents alone −0.197) within sampling error (about 44,000 respondents: standard error
    about 0.006, bound 0.02).
    """
    rng = np.random.default_rng(0)
    x = rng.random(200_000)
    y = (rng.random(len(x)) < 0.3 + 0.4 * (x - 0.5) * 2).astype(float) * 2 - 1  # net score in {−1, +1}
    p = 0.05 + 0.3 * x
    answered = np.flatnonzero(rng.random(len(x)) < p)
    estimate = doubly_robust_contributions(np.zeros(len(x)), y[answered], answered, p[answered]).mean()
    naive = y[answered].mean()
    assert abs(estimate - y.mean()) <= 0.02
    assert abs(naive - y.mean()) > 0.1  # the respondents alone are clearly biased


def test_population_interval_on_large_bases_is_the_normal_limit_of_the_bootstrap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(5)
    contributions = rng.choice([-1.0, 0.0, 1.0], size=250_000, p=[0.3, 0.4, 0.3]) + rng.normal(0, 0.5, 250_000)
    low, high = evaluate.bootstrap_mean_interval(contributions, seed=0)
    se = contributions.std(ddof=1) / np.sqrt(len(contributions))
    assert low == pytest.approx(contributions.mean() - 1.959964 * se, abs=1e-9)
    assert high == pytest.approx(contributions.mean() + 1.959964 * se, abs=1e-9)
    monkeypatch.setattr(evaluate, "BOOTSTRAP_MAX_ROWS", len(contributions))  # force the resampling
    boot_low, boot_high = evaluate.bootstrap_mean_interval(contributions, seed=0)
    assert abs(boot_low - low) < 0.15 * se and abs(boot_high - high) < 0.15 * se
