"""Key-driver analysis: Shapley shares of R² against a direct all-subsets computation, and on the generator's truth."""

from __future__ import annotations

from itertools import permutations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from cxpredict.features.synthetic import DRIVERS, Mechanism, driver_qualities, generate_company
from cxpredict.models.key_drivers import (
    FIX_FIRST,
    KeyDriverError,
    key_drivers,
)


def _r2(frame: pd.DataFrame, score: str, columns: list[str]) -> float:
    if not columns:
        return 0.0
    fit = LinearRegression().fit(frame[columns], frame[score])
    return float(fit.score(frame[columns], frame[score]))


def _shapley_by_permutations(frame: pd.DataFrame, score: str, attributes: list[str]) -> dict[str, float]:
    """The textbook definition: average over every order of entry of each attribute's R² gain (real regressions)."""
    gains = dict.fromkeys(attributes, 0.0)
    orders = list(permutations(attributes))
    for order in orders:
        entered: list[str] = []
        for attribute in order:
            before = _r2(frame, score, entered)
            entered.append(attribute)
            gains[attribute] += _r2(frame, score, entered) - before
    return {a: g / len(orders) for a, g in gains.items()}


@pytest.fixture()
def correlated_ratings() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 400
    halo = rng.normal(size=n)
    ratings = {f"r{j}": np.round(5 + 1.5 * rng.normal(size=n) + 0.8 * halo) for j in range(4)}
    score = 0.9 * ratings["r0"] + 0.5 * ratings["r1"] + 0.1 * ratings["r2"] + rng.normal(0, 2, n)
    return pd.DataFrame({"score": score, **ratings})


@pytest.mark.unit
def test_key_drivers_equal_all_subsets_regressions(correlated_ratings: pd.DataFrame) -> None:
    attributes = ["r0", "r1", "r2", "r3"]
    result = key_drivers(correlated_ratings, "score", attributes, bootstrap=0)
    table = result.of_segment().set_index("attribute")
    direct = _shapley_by_permutations(correlated_ratings, "score", attributes)
    full = _r2(correlated_ratings, "score", attributes)
    for attribute in attributes:
        assert table.loc[attribute, "r2_contribution"] == pytest.approx(direct[attribute], abs=1e-10)
        assert table.loc[attribute, "importance"] == pytest.approx(direct[attribute] / full, abs=1e-9)
    assert table["r2"].iloc[0] == pytest.approx(full, abs=1e-10)
    assert table["importance"].sum() == pytest.approx(1.0)
    assert list(result.of_segment()["attribute"][:2]) == ["r0", "r1"]


@pytest.mark.unit
def test_key_drivers_bootstrap_interval_and_quadrants(correlated_ratings: pd.DataFrame) -> None:
    frame = correlated_ratings.copy()
    frame["r0"] = np.clip(frame["r0"] - 2, 1, None)  # the most important attribute is also the worst rated
    table = key_drivers(frame, "score", ["r0", "r1", "r2", "r3"], bootstrap=100, seed=1).of_segment()
    top = table.iloc[0]
    assert top["attribute"] == "r0" and top["quadrant"] == FIX_FIRST
    assert top["importance_low"] < top["importance"] < top["importance_high"]
    assert top["performance_low"] < top["performance"] < top["performance_high"]
    assert set(table["quadrant"]) <= {"fix first", "maintain", "lower priority", "over-invested"}


@pytest.mark.unit
def test_key_drivers_per_segment_and_missing_ratings(correlated_ratings: pd.DataFrame) -> None:
    frame = correlated_ratings.copy()
    frame.loc[::10, "r3"] = np.nan  # a respondent who skipped a rating is left out, and counted
    segments = pd.Series(np.where(np.arange(len(frame)) % 2 == 0, "a", "b"), name="plan")
    segments.iloc[:380:2] = "a"
    segments.iloc[-10:] = "tiny"
    result = key_drivers(frame, "score", ["r0", "r1", "r2", "r3"], segments=segments, bootstrap=20)
    assert result.segment_column == "plan"
    assert result.of_segment()["respondents"].iloc[0] == len(frame) - 40
    assert set(result.table["segment"]) == {"all", "a", "b"}
    assert [s for s, _ in result.skipped] == ["tiny"] and "below the minimum" in result.skipped[0][1]


@pytest.mark.unit
@pytest.mark.parametrize(("attributes", "message"), [
    (["r0"], "2 to 12"), (["r0", "nope"], "column 'nope' not found"),
])
def test_key_drivers_refuse_bad_input(correlated_ratings: pd.DataFrame, attributes: list[str], message: str) -> None:
    with pytest.raises(KeyDriverError, match=message):
        key_drivers(correlated_ratings, "score", attributes)


@pytest.mark.unit
def test_key_drivers_constant_rating_is_refused(correlated_ratings: pd.DataFrame) -> None:
    frame = correlated_ratings.assign(r2=5.0)
    with pytest.raises(KeyDriverError, match="rating 'r2' has a single value"):
        key_drivers(frame, "score", ["r0", "r1", "r2"])


@pytest.mark.model
def test_key_drivers_rank_the_true_strongest_driver_first() -> None:
    """On the generator, in each segment with a clear winner, the rated attribute whose true quality moves
    the experience most (segment weight × quality spread, the truth) ranks first."""
    company = generate_company(8000, 0.5, seed=5)
    survey = company.survey
    customers = company.customers.set_index("customer_id").loc[survey["customer_id"]].reset_index()
    mechanism = Mechanism()
    qualities = driver_qualities(customers, mechanism)
    weights = np.column_stack([customers["segment"].map({s: w[d] for s, w in mechanism.weights.items()})
                               for d in range(len(DRIVERS))])
    result = key_drivers(survey, "nps", [f"rating_{d}" for d in DRIVERS], segments=customers["segment"],
                         bootstrap=50, seed=2)
    checked = []
    for segment in sorted(customers["segment"].unique()):
        rows = (customers["segment"] == segment).to_numpy()
        true_effect = (weights[rows] * qualities[rows]).std(axis=0)
        first, second = np.sort(true_effect)[::-1][:2]
        if first < 1.15 * second:  # too close to call from a few hundred answers
            continue
        table = result.of_segment(segment)
        assert table.iloc[0]["attribute"] == f"rating_{DRIVERS[int(np.argmax(true_effect))]}", segment
        checked.append(segment)
    assert checked == ["consumer", "enterprise"]  # the generator's segments with a clear strongest driver
