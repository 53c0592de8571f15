"""The Λ at which a segment ranking could change under unobserved selection (issue 17, item 2)."""

from __future__ import annotations

import numpy as np
import pytest

from cxpredict.training.nonresponse import dr_range, ranking_flip_lambda

pytestmark = pytest.mark.unit


def _segment(rng: np.random.Generator, net_mean: float, n: int = 2_000, respondents: int = 300):
    predicted = np.clip(rng.normal(net_mean, 0.2, n), -1, 1)
    positions = rng.choice(n, respondents, replace=False)
    observed = np.sign(predicted[positions] + rng.normal(0, 0.5, respondents))
    propensity = rng.uniform(0.05, 0.3, respondents)
    return predicted, observed, positions, propensity


def test_far_apart_segments_withstand_more_selection_than_close_ones() -> None:
    rng = np.random.default_rng(3)
    low, middle, high = _segment(rng, -0.4), _segment(rng, 0.0), _segment(rng, 0.4)
    near = _segment(rng, 0.02)
    far_apart = ranking_flip_lambda([low, high])
    close = ranking_flip_lambda([middle, near])
    assert far_apart is not None and close is not None
    assert 1.0 <= close < far_apart
    # At the returned Λ the two ranges touch; clearly below it they do not.
    order = sorted([low, high], key=lambda s: -dr_range(*s, 1.0)[0])
    top, bottom = (dr_range(*s, far_apart) for s in order)
    assert top[0] <= bottom[1] + 1e-6
    top, bottom = (dr_range(*s, 1 + 0.9 * (far_apart - 1)) for s in order)
    assert top[0] > bottom[1]
    assert ranking_flip_lambda([low]) is None  # one segment has no ranking


def test_ranges_contain_the_doubly_robust_figure_and_widen_with_lambda() -> None:
    segment = _segment(np.random.default_rng(5), 0.1)
    point_low, point_high = dr_range(*segment, 1.0)
    assert point_low == pytest.approx(point_high)
    previous = (point_low, point_high)
    for lam in (1.25, 1.5, 2.0, 4.0):
        current = dr_range(*segment, lam)
        assert current[0] <= previous[0] + 1e-12 and current[1] >= previous[1] - 1e-12
        previous = current
