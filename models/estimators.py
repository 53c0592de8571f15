"""LightGBM estimators shared by training and serving: fitting, prediction and calibration.

Every model here is a bare `lightgbm.Booster` fed a float matrix from `FeaturePipeline`, with
native categorical handling through `categorical_feature` indices; predictions come from arrays,
never per-request DataFrames, which keeps serving fast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

from cxpredict.models.compiled import predict as compiled_predict

MULTICLASS, BINARY, REGRESSION = "multiclass", "binary", "regression"


@dataclass
class ModelSpec:
    """What one model predicts and how it is fitted."""

    name: str
    task: str  # multiclass | binary | regression
    num_class: int = 1
    params: dict[str, Any] = field(default_factory=dict)
    num_boost_round: int = 200


def base_params(task: str, num_class: int, seed: int, threads: int) -> dict[str, Any]:
    """Deterministic LightGBM parameters for one task; tuned values are merged over these."""
    objective = {MULTICLASS: "multiclass", BINARY: "binary", REGRESSION: "regression"}[task]
    params: dict[str, Any] = {
        "objective": objective,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": threads,
        "verbosity": -1,
        "learning_rate": 0.05,
        "num_leaves": 15,
        "min_data_in_leaf": 20,
        "feature_fraction": 0.9,
        "bagging_fraction": 0.9,
        "bagging_freq": 1,
        "lambda_l2": 1.0,
        "cat_smooth": 10.0,
        "min_data_per_group": 20,
    }
    if task == MULTICLASS:
        params["num_class"] = num_class
    return params


def fit_booster(
    X: np.ndarray,
    y: np.ndarray,
    params: dict[str, Any],
    categorical: list[int],
    num_boost_round: int,
    weight: np.ndarray | None = None,
    valid: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None = None,
    callbacks: list[Callable] | None = None,
    early_stopping_rounds: int | None = None,
) -> lgb.Booster:
    """Fit one booster; with `valid` and `early_stopping_rounds` it stops at the best round."""
    train_set = lgb.Dataset(
        X, label=y, weight=weight, categorical_feature=categorical, free_raw_data=True,
        params={"verbosity": -1},
    )
    valid_sets, cbs = [], list(callbacks or [])
    if valid is not None:
        Xv, yv, wv = valid
        valid_sets = [lgb.Dataset(Xv, label=yv, weight=wv, reference=train_set, categorical_feature=categorical)]
        if early_stopping_rounds:
            cbs.append(lgb.early_stopping(early_stopping_rounds, verbose=False))
    return lgb.train(params, train_set, num_boost_round=num_boost_round, valid_sets=valid_sets, callbacks=cbs)


def predict_raw(booster: lgb.Booster, X: np.ndarray, threads: int | None = None) -> np.ndarray:
    """Raw margins (logits for classifiers), the space SHAP values add up in.

    A `models.ensemble.Ensemble` in a booster's place gives its own output (log p, logit p or
    the averaged value, models/ensemble.py), so every caller serves it unchanged.
    """
    if not isinstance(booster, lgb.Booster):
        return booster.predict_raw(X, threads)
    compiled = compiled_predict(booster, X, threads)  # native code once verified (models/compiled.py)
    if compiled is not None:
        return compiled
    kwargs = {"num_threads": threads} if threads else {}
    return booster.predict(X, raw_score=True, **kwargs)


def multiclass_probabilities(raw: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    return softmax(raw / temperature, axis=1)


def binary_probability(raw: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-raw / temperature))


def fit_temperature(raw: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None) -> float:
    """Temperature scaling on held-out logits: one scalar, so ranking and SHAP stay unchanged.

    Args:
        raw: out-of-fold raw margins, (n, k) for multiclass or (n,) for binary.
        y: class indices (multiclass) or 0/1 labels (binary).
        weight: optional sample weights (inverse response propensities).
    Returns:
        The temperature T > 0 minimising the (weighted) log loss of softmax(raw / T).
    """
    w = np.ones(len(y)) if weight is None else np.asarray(weight, float)
    y = np.asarray(y, int)

    def loss(log_t: float) -> float:
        t = np.exp(log_t)
        if raw.ndim == 2:
            logp = log_softmax(raw / t, axis=1)[np.arange(len(y)), y]
        else:
            z = raw / t
            logp = np.where(y == 1, -np.logaddexp(0, -z), -np.logaddexp(0, z))
        return float(-(w * logp).sum() / w.sum())

    result = minimize_scalar(loss, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(result.x))
