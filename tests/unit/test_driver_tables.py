"""Driver tables: stratified sampling and its standard error, segment checks, directions, value text."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cxpredict.features.build import BOOLEAN, CATEGORICAL, DATE, NUMERIC
from cxpredict.models.explain import ExplainError, format_values
from cxpredict.training.drivers import (
    _stratified_mean_se,
    describe_direction,
    highlight_rank_differences,
    segment_labels,
    stratified_sample,
)

pytestmark = pytest.mark.unit


def test_stratified_sample_states_allocation_and_weights() -> None:
    strata = pd.Series(["a"] * 9000 + ["b"] * 900 + ["c"] * 100)
    sample = stratified_sample(strata, size=1000, seed=0, min_per_stratum=200)
    counts = sample.strata_table.set_index("stratum")
    assert counts.loc["a", "sampled"] == 900 and counts.loc["b", "sampled"] == 200
    assert counts.loc["c", "sampled"] == 100  # a stratum smaller than the minimum is taken whole
    assert len(np.unique(sample.positions)) == len(sample.positions)
    assert sample.weights.sum() == pytest.approx(10_000)
    assert "stratified random sample of 1,200 of 10,000" in sample.describe()
    again = stratified_sample(strata, size=1000, seed=0, min_per_stratum=200)
    np.testing.assert_array_equal(sample.positions, again.positions)


def test_census_has_no_sampling_error() -> None:
    strata = pd.Series(["a", "b"] * 50)
    sample = stratified_sample(strata, size=1000, seed=0)
    assert sample.is_census and "census" in sample.describe()
    values = np.random.default_rng(0).normal(size=(100, 3))
    mean, se = _stratified_mean_se(values, sample.strata, sample.weights)
    np.testing.assert_allclose(mean, values[sample.positions].mean(axis=0))
    np.testing.assert_allclose(se, 0.0)


def test_standard_error_matches_the_spread_of_repeated_samples() -> None:
    rng = np.random.default_rng(1)
    population = np.concatenate([rng.exponential(1.0, 20_000), rng.exponential(3.0, 5_000)])[:, None]
    strata = pd.Series(["x"] * 20_000 + ["y"] * 5_000)
    estimates, errors = [], []
    for seed in range(60):
        sample = stratified_sample(strata, size=1_000, seed=seed, min_per_stratum=100)
        mean, se = _stratified_mean_se(population[sample.positions], sample.strata, sample.weights)
        estimates.append(mean[0])
        errors.append(se[0])
    assert np.mean(estimates) == pytest.approx(population.mean(), rel=0.02)
    assert np.std(estimates) == pytest.approx(np.mean(errors), rel=0.3)


def test_segment_checks_name_the_problem() -> None:
    customers = pd.DataFrame({"segment": ["a"] * 50 + ["b"] * 5, "id": [str(i) for i in range(55)]})
    with pytest.raises(ExplainError, match="segment column 'region' not found"):
        segment_labels(customers, "region", 10, "customers.csv")
    with pytest.raises(ExplainError, match="segment 'b' has 5 customers, below the minimum of 10"):
        segment_labels(customers, "segment", 10, "customers.csv")
    with pytest.raises(ExplainError, match="55 distinct values"):
        segment_labels(customers, "id", 1, "customers.csv")
    assert segment_labels(customers, "segment", 5).value_counts().to_dict() == {"a": 50, "b": 5}


def test_directions_in_words() -> None:
    x = np.linspace(0, 1, 200)
    w = np.ones(200)
    assert describe_direction(x, 2 * x, w, NUMERIC)[0] == "higher raises"
    assert describe_direction(x, -x, w, NUMERIC)[0] == "higher lowers"
    assert describe_direction((x > 0.5).astype(float), -(x > 0.5).astype(float), w, BOOLEAN)[0] == "yes lowers"
    codes = np.repeat([0.0, 1.0, 2.0], [50, 50, 100])
    shap = np.repeat([0.8, 0.0, -0.5], [50, 50, 100])
    text, corr = describe_direction(codes, shap, np.ones(200), CATEGORICAL, ("month", "year", "two_year"))
    assert text == "raises: month; lowers: two_year" and np.isnan(corr)


def test_rank_differences_are_highlighted() -> None:
    rows = []
    for segment, order in {"a": ["f1", "f2", "f3", "f4"], "b": ["f4", "f2", "f3", "f1"]}.items():
        rows += [{"target": "churn", "segment": segment, "feature": f, "rank": r + 1} for r, f in enumerate(order)]
    table = highlight_rank_differences(pd.DataFrame(rows))
    assert set(table.loc[table["highlight"], "feature"]) == {"f1", "f4"}
    assert table.set_index(["segment", "feature"]).loc[("a", "f1"), "rank_spread"] == 3


def test_values_are_readable_text() -> None:
    assert list(format_values(np.array([0.0, 2.0, np.nan, 7.0]), CATEGORICAL, ("a", "b", "c"))) == \
        ["a", "c", "missing", "unknown"]
    assert list(format_values(np.array([1.0, 0.0]), BOOLEAN)) == ["yes", "no"]
    assert list(format_values(np.array([20_000.0]), DATE)) == ["2024-10-04"]
    assert list(format_values(np.array([12.345678, 3.0]), NUMERIC)) == ["12.3457", "3"]
