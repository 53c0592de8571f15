"""Ensemble parts without training a whole company: the linear basis, the choices, the combination."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit, softmax
from sklearn.preprocessing import SplineTransformer

from cxpredict.models.ensemble import SPLINE, combine_margins
from cxpredict.training.ensemble import basis_columns, choose_temperature, choose_weights

pytestmark = pytest.mark.unit


def test_spline_basis_is_scikit_learns_inside_the_range_and_constant_outside() -> None:
    rng = np.random.default_rng(0)
    x = rng.gamma(2.0, 3.0, 500)
    column = basis_columns(x[:, None], [])[0]
    assert column.kind == SPLINE
    reference = SplineTransformer(n_knots=5, degree=3, knots="quantile", extrapolation="constant").fit(x[:, None])
    probe = np.concatenate([x[:50], [x.min() - 5.0, x.max() + 50.0]])
    np.testing.assert_allclose(column.encode(probe), reference.transform(probe[:, None]), atol=1e-12)


def test_missing_values_and_categories_get_their_own_columns() -> None:
    x = np.array([0.0, 1.0, 2.0, np.nan, 1.0, 0.0])
    column = basis_columns(x[:, None], [0])[0]
    encoded = column.encode(np.array([1.0, np.nan, 7.0]))
    # levels 0, 1, 2 then the missing indicator; an unseen level has no column set
    np.testing.assert_array_equal(encoded, [[0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]])


def test_averaging_is_in_probability_space() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(20, 3)), rng.normal(size=(20, 3))
    out = combine_margins("multiclass", [a, b], np.array([0.25, 0.75]))
    np.testing.assert_allclose(softmax(out, axis=1), 0.25 * softmax(a, axis=1) + 0.75 * softmax(b, axis=1))
    za, zb = a[:, :1], b[:, :1]
    out = combine_margins("binary", [za, zb], np.array([0.5, 0.5]))
    np.testing.assert_allclose(expit(out), 0.5 * expit(za) + 0.5 * expit(zb))


def test_equal_weights_unless_fitted_ones_win_out_of_sample() -> None:
    rng = np.random.default_rng(2)
    n = 400
    signal = rng.normal(size=n)
    y = (rng.random(n) < expit(2 * signal)).astype(int)
    # two equally good members with their own noise: equal weights are what generalises
    peers = [(2 * signal + rng.normal(0, 1, n))[:, None], (2 * signal + rng.normal(0, 1, n))[:, None]]
    weights, metrics = choose_weights("binary", peers, y, None, seed=0)
    np.testing.assert_allclose(weights, [0.5, 0.5])
    assert metrics["ensemble_fitted_weights"] == 0.0
    useless = [(2 * signal)[:, None], rng.normal(0, 3, n)[:, None]]
    weights, metrics = choose_weights("binary", useless, y, None, seed=0)
    assert metrics["ensemble_fitted_weights"] == 1.0 and weights[0] > 0.9
    assert np.all(weights >= 0) and abs(weights.sum() - 1) < 1e-9


def test_temperature_is_kept_only_where_it_lowers_held_out_log_loss() -> None:
    rng = np.random.default_rng(3)
    z = rng.normal(0, 2, 600)
    y = (rng.random(600) < expit(z)).astype(int)
    t, _ = choose_temperature("binary", z[:, None], y, None, seed=0)
    assert t == 1.0  # calibrated already
    t, metrics = choose_temperature("binary", 3 * z[:, None], y, None, seed=0)
    assert t > 2.0 and metrics["ensemble_oof_log_loss_calibrated"] < metrics["ensemble_oof_log_loss"]
