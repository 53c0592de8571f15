"""The simple references cxpredict's band model must beat on held-out silent customers (issue 15's table).

Each is fitted on the kept respondents without tuning or response weights: default LightGBM, the
fixed regularised LightGBM, CatBoost (defaults, 300 trees), logistic regression on spline and
one-hot features, and the equal-weight average of the last three. The backtest and
bench/quality.py report them beside cxpredict with the same figures.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from cxpredict.models.ensemble import combine_margins
from cxpredict.models.estimators import MULTICLASS, base_params
from cxpredict.training import evaluate
from cxpredict.training.ensemble import (
    REGULARISED_LGBM,
    REGULARISED_ROUNDS,
    catboost_member,
    lgbm_member,
    linear_member,
)

BASELINES = ("default_lightgbm", "regularised_lightgbm", "catboost", "spline_logistic", "average_of_three")
# LightGBM's own defaults (what "nobody tuned" means), 100 rounds.
DEFAULT_LGBM = {"learning_rate": 0.1, "num_leaves": 31, "min_data_in_leaf": 20, "feature_fraction": 1.0,
                "bagging_fraction": 1.0, "bagging_freq": 0, "lambda_l2": 0.0}
DEFAULT_ROUNDS = 100


def baseline_band_probabilities(X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray, categorical: list[int],
                                num_class: int, seed: int, threads: int) -> dict[str, np.ndarray]:
    """Band probabilities of the silent rows from every baseline, by name (`BASELINES`)."""
    base = base_params(MULTICLASS, num_class, seed, threads)
    fits = {
        "default_lightgbm": lgbm_member({**base, **DEFAULT_LGBM}, DEFAULT_ROUNDS, categorical),
        "regularised_lightgbm": lgbm_member({**base, **REGULARISED_LGBM}, REGULARISED_ROUNDS, categorical),
        "catboost": catboost_member(MULTICLASS, num_class, categorical, seed, threads),
        "spline_logistic": linear_member(MULTICLASS, num_class, categorical, seed),
    }
    margins = {name: fit(X_train, y_train, None).margins(X_test, threads) for name, fit in fits.items()}
    three = [margins[n] for n in ("regularised_lightgbm", "catboost", "spline_logistic")]
    margins["average_of_three"] = combine_margins(MULTICLASS, three, np.full(3, 1 / 3))
    return {name: np.exp(combine_margins(MULTICLASS, [z], np.ones(1))) for name, z in margins.items()}


def silent_figures(band_probs: np.ndarray, y_silent: np.ndarray, y_kept: np.ndarray, top: int, bottom: int,
                   true_index: float) -> dict[str, float]:
    """Accuracy, log loss, AUC of P(bottom band) and the population error of one model's silent predictions.

    The population estimate is every respondent's observed band where kept, the predicted
    probabilities where silent (the same rule for every model), against the true index.
    """
    m = evaluate.band_metrics(band_probs, y_silent, "")
    n = len(y_silent) + len(y_kept)
    estimate = 100.0 * ((band_probs[:, top].sum() + (y_kept == top).sum())
                        - (band_probs[:, bottom].sum() + (y_kept == bottom).sum())) / n
    return {"accuracy": m["band_accuracy"], "log_loss": m["log_loss"], "macro_f1": m["macro_f1"],
            "bottom_auc": evaluate.safe_auc((y_silent == bottom).astype(int), band_probs[:, bottom]),
            "population_error": abs(estimate - true_index)}


def baseline_metrics(figures: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """`baseline_<name>_<figure>` metrics of the backtest."""
    return {f"baseline_{name}_{key}": value for name, f in figures.items() for key, value in f.items()}
