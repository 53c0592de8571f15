"""The TreeSHAP engine gives LightGBM's pred_contrib numbers (to 1e-6) and adds up to the raw margin."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from cxpredict.models.treeshap import TreeShap, parse_model

pytestmark = pytest.mark.unit


def _data(n: int = 1500, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Numeric columns with NaN and zeros, and two categorical code columns (one with NaN)."""
    rng = np.random.default_rng(seed)
    X = np.column_stack([
        rng.normal(size=n),
        np.where(rng.random(n) < 0.15, np.nan, rng.normal(size=n)),
        np.where(rng.random(n) < 0.3, 0.0, rng.exponential(size=n)),
        rng.integers(0, 6, n).astype(float),
        np.where(rng.random(n) < 0.1, np.nan, rng.integers(0, 40, n).astype(float)),
        rng.normal(size=n),
    ])
    signal = X[:, 0] + np.nan_to_num(X[:, 1]) * 0.8 - 0.5 * X[:, 2] + (X[:, 3] % 3 == 0) + 0.05 * np.nan_to_num(X[:, 4])
    return X, signal + rng.normal(scale=0.5, size=n)


def _fit(params: dict, X: np.ndarray, y: np.ndarray, rounds: int = 40) -> lgb.Booster:
    base = {"verbosity": -1, "seed": 1, "deterministic": True, "num_threads": 1, "min_data_per_group": 5,
            "cat_smooth": 1.0, "max_cat_to_onehot": 4}
    train = lgb.Dataset(X, label=y, categorical_feature=[3, 4], params={"verbosity": -1})
    return lgb.train({**base, **params}, train, num_boost_round=rounds)


def _check(booster: lgb.Booster, X: np.ndarray, **engine: int) -> None:
    explainer = TreeShap(**engine).fit(booster)
    ours = explainer.shap_values(X, threads=2)
    reference = booster.predict(X, pred_contrib=True).reshape(ours.shape)
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-6)
    raw = booster.predict(X, raw_score=True).reshape(len(X), -1)
    np.testing.assert_allclose(ours.sum(axis=2), raw, rtol=0, atol=1e-9)


def test_binary_with_categorical_and_missing_values_matches_pred_contrib() -> None:
    X, signal = _data()
    booster = _fit({"objective": "binary", "num_leaves": 31, "min_data_in_leaf": 5}, X, (signal > 0.3).astype(int))
    assert parse_model(booster)[1][0].cat_threshold.size > 0  # the model really has categorical splits
    _check(booster, X)


@pytest.mark.parametrize("leaves", [4, 11, 15])
def test_multiclass_matches_pred_contrib(leaves: int) -> None:
    """4 and 11 leaves use decision-pattern tables (≤ 10 splits), 15 the per-leaf mask tables."""
    X, signal = _data(seed=1)
    y = np.digitize(signal, [-1.0, 0.0, 1.0, 2.0])
    booster = _fit({"objective": "multiclass", "num_class": 5, "num_leaves": leaves, "min_data_in_leaf": 10}, X, y,
                   20)
    _check(booster, X)
    _check(booster, X, pattern_nodes=0)


def test_regression_with_zero_as_missing_matches_pred_contrib() -> None:
    X, signal = _data(seed=2)
    booster = _fit({"objective": "regression", "num_leaves": 63, "min_data_in_leaf": 3, "zero_as_missing": True},
                   X, signal, 30)
    _check(booster, X)


def test_deep_leaves_without_tables_match_pred_contrib() -> None:
    """table_depth 0 sends every leaf down the extend/unwind fallback; 3 mixes both paths."""
    X, signal = _data(seed=3)
    booster = _fit({"objective": "regression", "num_leaves": 63, "min_data_in_leaf": 2, "max_cat_to_onehot": 64},
                   X, signal, 15)
    _check(booster, X, table_depth=0)
    _check(booster, X, table_depth=3)


def test_single_leaf_trees_only_move_the_bias() -> None:
    X, _ = _data(n=200, seed=4)
    y = np.full(len(X), 3.0)
    booster = _fit({"objective": "regression", "min_data_in_leaf": 500}, X, y, 5)
    explainer = TreeShap().fit(booster)
    ours = explainer.shap_values(X)
    assert np.all(ours[:, :, :-1] == 0)
    np.testing.assert_allclose(ours[:, 0, -1], booster.predict(X, raw_score=True), atol=1e-12)


def test_unseen_and_negative_categories_follow_lightgbm() -> None:
    X, signal = _data(seed=5)
    booster = _fit({"objective": "binary", "num_leaves": 15}, X, (signal > 0).astype(int))
    odd = X[:50].copy()
    odd[:10, 3] = 99.0  # unseen category
    odd[10:20, 3] = -1.0  # negative code
    odd[20:30, 4] = np.nan
    odd[30:40, 0] = np.inf
    _check(booster, odd)


def test_wrong_width_is_an_error() -> None:
    X, signal = _data(n=300)
    explainer = TreeShap().fit(_fit({"objective": "regression"}, X, signal, 3))
    with pytest.raises(ValueError, match="6 columns"):
        explainer.shap_values(X[:, :4])


def test_concurrent_calls_give_the_same_values() -> None:
    """The API explains from a thread pool: calls from several threads must not interfere."""
    from concurrent.futures import ThreadPoolExecutor

    X, signal = _data(seed=6)
    explainer = TreeShap().fit(_fit({"objective": "binary", "num_leaves": 31}, X, (signal > 0).astype(int)))
    expected = explainer.shap_values(X)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: explainer.shap_values(X, threads=2), range(8)))
    for result in results:
        np.testing.assert_array_equal(result, expected)
