"""The score targets' combination rules: band log-odds from per-band logits, the clipped expected score."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax

from cxpredict.models.explain import clip_contributions, combine_bands

pytestmark = pytest.mark.unit


def test_band_log_odds_add_up_to_the_bottom_band_log_odds() -> None:
    rng = np.random.default_rng(0)
    n, bands, features, temperature = 200, 3, 6, 1.3
    shap = rng.normal(0, 0.8, (n, bands, features + 1))
    shap[:, :, -1] = [0.2, -0.1, 0.4]  # the bias (expected logit) is the same for every row
    values, base, output = combine_bands(shap, temperature, band=0)
    p = softmax(shap.sum(axis=2) / temperature, axis=1)[:, 0]
    np.testing.assert_allclose(output, np.log(p) - np.log1p(-p), atol=1e-12)
    np.testing.assert_allclose(base + values.sum(axis=1), output, atol=1e-9)
    # A feature that raises only the bottom band's logit raises its log-odds.
    bump = np.zeros_like(shap)
    bump[:, 0, 0] = 1.0
    assert (combine_bands(bump, temperature, band=0)[0][:, 0] > 0).all()
    assert combine_bands(shap[:0], temperature, band=0)[0].shape == (0, features)


def test_clipped_expected_score_stays_additive_and_keeps_signs() -> None:
    shap = np.array([
        [1.0, 2.0, -0.5, 5.0],   # raw 7.5: inside 0–10, untouched
        [4.0, 3.0, 1.0, 5.0],    # raw 13: clipped to 10, contributions shrunk by 5/8
        [-6.0, -1.0, 1.0, 5.0],  # raw -1: clipped to 0, shrunk by 5/6
    ])
    values, base, output = clip_contributions(shap, 0.0, 10.0)
    assert base == 5.0
    np.testing.assert_allclose(output, [7.5, 10.0, 0.0])
    np.testing.assert_allclose(base + values.sum(axis=1), output, atol=1e-12)
    np.testing.assert_array_equal(values[0], shap[0, :-1])
    np.testing.assert_allclose(values[1], shap[1, :-1] * 5 / 8)
    assert (np.sign(values) == np.sign(shap[:, :-1])).all()
