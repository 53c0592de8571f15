"""Issue 15's quality bar at 3 % biased selection on the generator, against its untuned baselines.

One backtest repeat (respondents as the base, 3 % of them kept with selection skewed towards
satisfied customers, the rest silent): cxpredict's ensemble must beat default LightGBM on silent
log loss and be no worse than the equal-weight average of regularised LightGBM, CatBoost and the
spline logistic regression by more than noise, nor than the best single baseline. Its AUC of
P(bottom band) is held to default LightGBM's only: against the average of three it is behind on
biased selection (bench/README.md, "Not met"), which this test must not hide by asserting it.
bench/quality.py measures the same over repeats, seeds and rates.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from cxpredict.features.config import load_config
from cxpredict.features.load import load_dataset
from cxpredict.features.synthetic import generate_company, write_company
from cxpredict.training.backtest import backtest

pytestmark = [pytest.mark.model, pytest.mark.slow]
NOISE = 0.01  # about one standard error of a log loss / AUC over ~5,000 silent customers (measured: 0.006–0.01)


def test_ensemble_beats_untuned_lightgbm_and_matches_the_average_of_three(tmp_path: Path) -> None:
    write_company(generate_company(10_000, 0.5, seed=3), tmp_path, name="bar")
    config = load_config(tmp_path / "cxpredict.yaml")
    config = config.model_copy(update={"training": config.training.model_copy(
        update={"ensemble": True, "ensemble_targets": ["score"], "small_sample_respondents": 2000})})
    dataset = replace(load_dataset(config), outcomes=None)  # churn is not part of this bar
    report = backtest(config, dataset, 0.03, repeats=1, seed=0, selection="biased", tune_trials=2,
                      log_to_mlflow=False)
    m = report.per_repeat[0]
    ours, default, average = "silent_{}", "baseline_default_lightgbm_{}", "baseline_average_of_three_{}"
    singles = ("default_lightgbm", "regularised_lightgbm", "catboost", "spline_logistic")
    assert m[ours.format("log_loss")] < m[default.format("log_loss")]
    assert m[ours.format("log_loss")] <= m[average.format("log_loss")] + NOISE
    assert m[ours.format("log_loss")] <= min(m[f"baseline_{b}_log_loss"] for b in singles) + NOISE
    assert m[ours.format("bottom_auc")] >= m[default.format("bottom_auc")] - NOISE
