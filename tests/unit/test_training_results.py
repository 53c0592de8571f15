"""Training results are values: frozen, read-only, and the population score is a function of them."""

from __future__ import annotations

import io
from dataclasses import FrozenInstanceError

import numpy as np
import pytest
from rich.console import Console

from cxpredict.features.config import CxConfig
from cxpredict.models.estimators import BINARY, base_params, fit_booster
from cxpredict.training.population import population_score
from cxpredict.training.progress import training_progress
from cxpredict.training.train import TargetFit, fit_target, split_holdout
from cxpredict.training.tune import ProgressEvent

pytestmark = pytest.mark.unit


def config_with_bands() -> CxConfig:
    return CxConfig.model_validate({
        "name": "toy", "id_column": "id", "data": {"customers": "c.csv", "survey": "s.csv"},
        "score": {"column": "nps", "scale": [0, 10],
                  "bands": {"detractor": [0, 6], "passive": [7, 8], "promoter": [9, 10]}},
    })


def toy_fit() -> TargetFit:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = (X[:, 0] > 0).astype(int)
    booster = fit_booster(X, y, base_params(BINARY, 1, 0, 1), [], 5)
    return TargetFit("cause_price", BINARY, booster, {"num_leaves": 7}, out_of_fold=np.full(200, 0.5),
                     metrics={"test_cause_auc_price": 0.7})


def test_target_fit_is_frozen() -> None:
    fit = toy_fit()
    with pytest.raises(FrozenInstanceError):
        fit.booster = None  # type: ignore[misc]
    with pytest.raises(TypeError):
        fit.metrics["test_cause_auc_price"] = 1.0  # type: ignore[index]
    with pytest.raises(TypeError):
        fit.hyperparameters["num_leaves"] = 63  # type: ignore[index]
    with pytest.raises(ValueError, match="read-only"):
        fit.out_of_fold[0] = 1.0  # type: ignore[index]
    assert fit.metrics["test_cause_auc_price"] == 0.7 and fit.hyperparameters["num_leaves"] == 7


def test_population_score_four_ways_by_hand() -> None:
    """Four customers, two respondents (a promoter and a detractor); the figures computed by hand."""
    config = config_with_bands()
    # bands in order detractor, passive, promoter
    final = np.array([[0.2, 0.3, 0.5], [0.5, 0.3, 0.2], [0.1, 0.2, 0.7], [0.6, 0.2, 0.2]])
    oof = np.array([[0.3, 0.3, 0.4], [0.4, 0.4, 0.2]])  # respondents' out-of-fold rows (customers 0 and 1)
    observed_bands = np.array([2, 0])  # customer 0 promoter, customer 1 detractor
    positions = np.array([0, 1])
    propensity = np.array([0.5, 0.25])
    score = population_score(config, final, oof, observed_bands, positions, propensity)
    assert score.respondents == pytest.approx(0.0)  # (+1 − 1) / 2
    # observed for respondents, predicted net for the silent (0.7 − 0.1, 0.2 − 0.6)
    assert score.model == pytest.approx(100 * (1 - 1 + 0.6 - 0.4) / 4)
    assert score.silent == pytest.approx(100 * (0.6 - 0.4) / 2)
    assert score.ipw == pytest.approx(100 * (2 * 1 + 4 * -1) / 6)
    # AIPW: predictions (oof for respondents) + weights scaled to sum to 4 times the residuals
    net = np.array([0.4 - 0.3, 0.2 - 0.4, 0.6, -0.4])
    scaled = np.array([2, 4]) * 4 / 6
    contributions = net.copy()
    contributions[:2] += scaled * (np.array([1, -1]) - net[:2])
    assert score.doubly_robust == pytest.approx(100 * contributions.mean())
    assert score.ci_low <= score.doubly_robust <= score.ci_high
    assert set(score.metrics()) == {
        "population_index_respondents", "population_index_model", "population_index_silent",
        "population_index_ipw", "population_index", "population_index_ci_low", "population_index_ci_high",
    }
    with pytest.raises(FrozenInstanceError):
        score.doubly_robust = 0.0  # type: ignore[misc]


def test_population_score_when_everyone_answered_is_the_observed_mix() -> None:
    config = config_with_bands()
    final = np.full((3, 3), 1 / 3)
    score = population_score(config, final, final, np.array([2, 2, 1]), np.arange(3), None)
    assert score.doubly_robust == pytest.approx(100 * 2 / 3) and score.ipw is None and score.silent is None
    assert "population_index_ipw" not in score.metrics()


def test_fit_target_tells_progress_per_model_and_trial() -> None:
    config = config_with_bands()
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 4))
    y = (X[:, 0] + rng.normal(scale=0.5, size=300) > 0).astype(int)
    events: list[ProgressEvent] = []
    fit_target("toy", BINARY, X, y, None, split_holdout(300, 0.2, 0, y), [], config, tune_trials=3,
               log_trials=False, progress=events.append)
    assert [e.stage for e in events] == ["start", "trial", "trial", "trial", "done"]
    assert events[0].trials == 3 and [e.trial for e in events[1:4]] == [1, 2, 3]
    assert all(e.model == "toy" for e in events) and events[-1].value is not None


def test_training_progress_draws_on_a_terminal_and_is_quiet_off_one() -> None:
    off = io.StringIO()
    with training_progress(Console(file=off)) as progress:
        assert progress is None  # not a terminal: nothing to draw, nothing drawn
    assert off.getvalue() == ""
    on = io.StringIO()
    with training_progress(Console(file=on, force_terminal=True, width=100)) as progress:
        assert progress is not None
        progress(ProgressEvent("score", "start", trials=2))
        progress(ProgressEvent("score", "trial", trial=1, trials=2, state="complete", value=0.91))
        progress(ProgressEvent("score", "trial", trial=2, trials=2, state="pruned"))
        progress(ProgressEvent("score", "done", trials=2, value=0.91))
    drawn = on.getvalue()
    assert "score" in drawn and "2/2" in drawn and "best loss 0.9100" in drawn
