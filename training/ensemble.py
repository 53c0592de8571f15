"""Fitting one target as an averaged ensemble of diverse learners (models/ensemble.py).

On a few hundred respondents a tuned model's pick is mostly noise (issue 15); averaging diverse
learners is better and steadier. Members: the tuned LightGBM, a fixed strongly regularised
LightGBM, CatBoost with its defaults and native categoricals, and a regularised linear model
(logistic / multinomial / ridge, its strength chosen by inner CV) on spline and one-hot
features. Everything chosen here is chosen on cross-fitted out-of-fold predictions of the
training rows only (never the holdout the `test_*` metrics use):

- weights: equal by default; non-negative weights summing to one, fitted on the out-of-fold
  predictions, only where they beat equal weights on repeated 2-fold CV over those predictions
  (an unconstrained stacker swings on small samples);
- calibration: one temperature on the ensemble's output, kept only where it lowers the
  out-of-fold log loss on repeated 2-fold CV (temperature keeps the ranking and exact SHAP;
  isotonic would break both).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax, softmax
from sklearn.model_selection import KFold, StratifiedKFold

from cxpredict.models.ensemble import (
    NUMERIC,
    ONE_HOT,
    SPLINE,
    BasisColumn,
    CatBoostMember,
    Ensemble,
    LightGBMMember,
    LinearMember,
    combine_margins,
)
from cxpredict.models.estimators import BINARY, MULTICLASS, REGRESSION, fit_booster, fit_temperature

# The fixed configuration of issue 15's table: 2nd of 100 on silent customers where CV ranked it 39th–82nd.
REGULARISED_LGBM = {"num_leaves": 7, "min_data_in_leaf": 10, "learning_rate": 0.03, "bagging_fraction": 0.8,
                    "bagging_freq": 1, "feature_fraction": 0.8, "lambda_l2": 5.0}
REGULARISED_ROUNDS = 300
# CatBoost's defaults but for the trees: 300 instead of 1,000 (its automatic learning rate follows
# the count), which keeps an ensemble target within about twice the single model's training time.
CATBOOST_ITERATIONS = 300
ENSEMBLE_FOLDS = 3
CHOICE_REPEATS = 5  # repeats of 2-fold CV deciding weights and calibration
SPLINE_KNOTS = 5
MIN_SPLINE_VALUES = 8  # numeric columns with fewer distinct values are one-hot encoded
MAX_ONE_HOT_LEVELS = 64
LINEAR_CS = (0.01, 0.03, 0.1, 0.3, 1.0)
RIDGE_ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0)
MEMBER_NAMES = ("lgbm_tuned", "lgbm_regularised", "catboost", "linear")

MemberFit = Callable[[np.ndarray, np.ndarray, np.ndarray | None], Any]


@dataclass(frozen=True)
class EnsembleFit:
    """One target's ensemble as a value.

    Attributes:
        model: the ensemble refit on all rows (weights and temperature chosen out of fold).
        test_raw: the holdout rows' output from members that never saw them.
        out_of_fold: output for every row from members that did not see it, calibrated like the model.
        metrics: weights, temperature and the out-of-fold losses behind the choices.
    """

    model: Ensemble
    test_raw: np.ndarray
    out_of_fold: np.ndarray
    metrics: dict[str, float] = field(default_factory=dict)


def lgbm_member(params: dict[str, Any], rounds: int, categorical: list[int]) -> MemberFit:
    def fit(X: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> LightGBMMember:
        return LightGBMMember(fit_booster(X, y, params, categorical, rounds, weight=w))
    return fit


def catboost_member(task: str, num_class: int, categorical: list[int], seed: int, threads: int) -> MemberFit:
    def fit(X: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> CatBoostMember:
        from catboost import CatBoost

        params: dict[str, Any] = {
            "loss_function": {MULTICLASS: "MultiClass", BINARY: "Logloss", REGRESSION: "RMSE"}[task],
            "random_seed": seed, "thread_count": threads, "verbose": False, "allow_writing_files": False,
            "iterations": CATBOOST_ITERATIONS,
        }
        if task == MULTICLASS:
            params["classes_count"] = num_class
        member = CatBoostMember(None, list(categorical), X.shape[1])
        pool = member.pool(X, y, None if w is None else np.asarray(w, float))
        model = CatBoost(params)
        model.fit(pool)
        member.model = model
        return member
    return fit


def basis_columns(X: np.ndarray, categorical: list[int]) -> list[BasisColumn]:
    """The linear model's encoding of each column: splines (knots by SplineTransformer), one-hot or the value."""
    from sklearn.preprocessing import SplineTransformer

    columns = []
    for j in range(X.shape[1]):
        values = np.asarray(X[:, j], float)
        finite = np.isfinite(values)
        if not finite.any():
            continue
        missing = bool((~finite).any())
        distinct, counts = np.unique(values[finite], return_counts=True)
        fill = float(np.median(values[finite]))
        if len(distinct) < 2:
            if missing:
                columns.append(BasisColumn(j, ONE_HOT, levels=np.zeros(0), missing_column=True))
            continue
        if j in categorical or len(distinct) < MIN_SPLINE_VALUES:
            levels = distinct[np.argsort(-counts, kind="stable")[:MAX_ONE_HOT_LEVELS]]
            columns.append(BasisColumn(j, ONE_HOT, levels=np.sort(levels), missing_column=missing))
            continue
        spline = None
        for knots in ("quantile", "uniform"):  # quantile knots collide on heavily tied columns
            try:
                spline = SplineTransformer(n_knots=SPLINE_KNOTS, degree=3, knots=knots, extrapolation="constant")
                spline.fit(values[finite].reshape(-1, 1))
                break
            except ValueError:
                spline = None
        if spline is None:
            columns.append(BasisColumn(j, NUMERIC, fill=fill, missing_column=missing))
        else:
            columns.append(BasisColumn(j, SPLINE, knots=np.asarray(spline.bsplines_[0].t, float), degree=3,
                                       fill=fill, missing_column=missing))
    return columns


def linear_member(task: str, num_class: int, categorical: list[int], seed: int) -> MemberFit:
    def fit(X: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> LinearMember:
        from sklearn.linear_model import LogisticRegressionCV, RidgeCV

        columns = basis_columns(X, categorical)
        parts = [c.encode(np.asarray(X[:, c.feature], float)) for c in columns]
        basis = np.column_stack(parts) if parts else np.zeros((len(X), 0))
        mean = basis.mean(axis=0)
        scale = basis.std(axis=0)
        scale[scale == 0] = 1.0
        Z = (basis - mean) / scale
        outputs = num_class if task == MULTICLASS else 1
        if task == REGRESSION:
            model = RidgeCV(alphas=RIDGE_ALPHAS).fit(Z, y, sample_weight=w)
            coef, intercept = np.atleast_2d(model.coef_), np.atleast_1d(float(model.intercept_))
        else:
            y_int = np.asarray(y, int)
            counts = np.bincount(y_int, minlength=outputs if task == MULTICLASS else 2)
            folds = int(min(3, counts[counts > 0].min()))
            if folds >= 2:
                model = LogisticRegressionCV(Cs=list(LINEAR_CS), cv=StratifiedKFold(folds, shuffle=True,
                                             random_state=seed), scoring="neg_log_loss", max_iter=2000)
            else:
                from sklearn.linear_model import LogisticRegression
                model = LogisticRegression(C=0.1, max_iter=2000)
            with warnings.catch_warnings():  # scikit-learn 1.8's notices about 1.10's defaults
                warnings.simplefilter("ignore", FutureWarning)
                model.fit(Z, y_int, sample_weight=w)
            coef, intercept = _class_coefficients(model, task, outputs, Z.shape[1])
        return LinearMember(columns, mean, scale, coef, intercept, Z.mean(axis=0), X.shape[1])
    return fit


def _class_coefficients(model: Any, task: str, outputs: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients per output, classes absent from the rows getting a very low margin."""
    classes = [int(c) for c in model.classes_]
    if task == BINARY:
        if len(classes) == 1:
            return np.zeros((1, width)), np.array([30.0 if classes[0] == 1 else -30.0])
        return np.asarray(model.coef_, float), np.asarray(model.intercept_, float)
    coef, intercept = np.zeros((outputs, width)), np.full(outputs, -30.0)
    if len(classes) == 2:  # sklearn fits a binary model: softmax over (0, z) is its sigmoid
        intercept[classes[0]] = 0.0
        coef[classes[1]], intercept[classes[1]] = model.coef_[0], model.intercept_[0]
    else:
        for row, c in enumerate(classes):
            coef[c], intercept[c] = model.coef_[row], model.intercept_[row]
    return coef, intercept


def member_fits(task: str, num_class: int, tuned_params: dict[str, Any], tuned_rounds: int,
                categorical: list[int], seed: int, threads: int) -> list[MemberFit]:
    """The four members' fitting functions, in `MEMBER_NAMES` order."""
    regularised = {**tuned_params, **REGULARISED_LGBM}
    return [
        lgbm_member(tuned_params, tuned_rounds, categorical),
        lgbm_member(regularised, REGULARISED_ROUNDS, categorical),
        catboost_member(task, num_class, categorical, seed, threads),
        linear_member(task, num_class, categorical, seed),
    ]


def ensemble_loss(task: str, raw: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> float:
    """Weighted log loss of an ensemble output (log p / logit p), squared error for regression."""
    weight = np.ones(len(y)) if w is None else np.asarray(w, float)
    if task == REGRESSION:
        losses = (raw[:, 0] - y) ** 2
    elif task == MULTICLASS:
        losses = -log_softmax(raw, axis=1)[np.arange(len(y)), np.asarray(y, int)]
    else:
        z = raw[:, 0]
        losses = np.where(np.asarray(y, int) == 1, np.logaddexp(0, -z), np.logaddexp(0, z))
    return float((weight * losses).sum() / weight.sum())


def simplex_weights(task: str, margins: list[np.ndarray], y: np.ndarray, w: np.ndarray | None) -> np.ndarray:
    """Non-negative weights summing to one that minimise the out-of-fold loss (softmax parametrisation)."""
    def loss(a: np.ndarray) -> float:
        return ensemble_loss(task, combine_margins(task, margins, softmax(a)), y, w)

    result = minimize(loss, np.zeros(len(margins)), method="L-BFGS-B", bounds=[(-8.0, 8.0)] * len(margins))
    return softmax(result.x)


def _repeated_halves(n: int, y: np.ndarray, task: str, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    splits = []
    for r in range(CHOICE_REPEATS):
        stratify = task != REGRESSION and np.bincount(np.asarray(y, int)).min(initial=n) >= 2
        splitter = (StratifiedKFold if stratify else KFold)(n_splits=2, shuffle=True, random_state=seed + r)
        splits += list(splitter.split(np.zeros(n), y if stratify else None))
    return splits


def _clearly_lower(candidate: list[float], reference: list[float]) -> bool:
    """The candidate's held-out loss is lower by more than one standard error of the paired differences.

    Repeated splits of a few hundred rows move a loss by about as much as real differences, so a
    mean that is merely lower would pick noise about half of the time.
    """
    gain = np.asarray(reference) - np.asarray(candidate)
    return bool(gain.mean() > gain.std(ddof=1) / np.sqrt(len(gain)))


def choose_weights(task: str, margins: list[np.ndarray], y: np.ndarray, w: np.ndarray | None,
                   seed: int) -> tuple[np.ndarray, dict[str, float]]:
    """Equal weights unless fitted simplex weights beat them on repeated 2-fold CV of the out-of-fold margins."""
    equal = np.full(len(margins), 1.0 / len(margins))
    fitted_loss, equal_loss = [], []
    for fit_rows, eval_rows in _repeated_halves(len(y), y, task, seed):
        sub = [m[fit_rows] for m in margins]
        weights = simplex_weights(task, sub, y[fit_rows], None if w is None else w[fit_rows])
        held = [m[eval_rows] for m in margins]
        we = None if w is None else w[eval_rows]
        fitted_loss.append(ensemble_loss(task, combine_margins(task, held, weights), y[eval_rows], we))
        equal_loss.append(ensemble_loss(task, combine_margins(task, held, equal), y[eval_rows], we))
    metrics = {"ensemble_cv_loss_equal": float(np.mean(equal_loss)),
               "ensemble_cv_loss_fitted": float(np.mean(fitted_loss))}
    if _clearly_lower(fitted_loss, equal_loss):
        return simplex_weights(task, margins, y, w), {**metrics, "ensemble_fitted_weights": 1.0}
    return equal, {**metrics, "ensemble_fitted_weights": 0.0}


def choose_temperature(task: str, raw: np.ndarray, y: np.ndarray, w: np.ndarray | None,
                       seed: int) -> tuple[float, dict[str, float]]:
    """A temperature on the ensemble output, kept only where it lowers the log loss on repeated 2-fold CV."""
    if task == REGRESSION:
        return 1.0, {}
    flat = raw if task == MULTICLASS else raw[:, 0]
    scaled_loss, plain_loss = [], []
    for fit_rows, eval_rows in _repeated_halves(len(y), y, task, seed + 100):
        t = fit_temperature(flat[fit_rows], y[fit_rows], None if w is None else w[fit_rows])
        we = None if w is None else w[eval_rows]
        scaled_loss.append(ensemble_loss(task, raw[eval_rows] / t, y[eval_rows], we))
        plain_loss.append(ensemble_loss(task, raw[eval_rows], y[eval_rows], we))
    metrics = {"ensemble_oof_log_loss": float(np.mean(plain_loss)),
               "ensemble_oof_log_loss_calibrated": float(np.mean(scaled_loss))}
    if _clearly_lower(scaled_loss, plain_loss):
        return fit_temperature(flat, y, w), metrics
    return 1.0, metrics


def cross_fitted_margins(fits: list[MemberFit], X: np.ndarray, y: np.ndarray, w: np.ndarray | None,
                         task: str, seed: int, threads: int) -> list[np.ndarray]:
    """Each member's margins for every row from its fits on the other folds."""
    stratify = task != REGRESSION and np.bincount(np.asarray(y, int)).min(initial=len(y)) >= ENSEMBLE_FOLDS
    splitter = (StratifiedKFold if stratify else KFold)(n_splits=ENSEMBLE_FOLDS, shuffle=True, random_state=seed)
    out: list[np.ndarray | None] = [None] * len(fits)
    for fit_rows, pred_rows in splitter.split(X, y if stratify else None):
        wf = None if w is None else w[fit_rows]
        for i, fit in enumerate(fits):
            z = fit(X[fit_rows], y[fit_rows], wf).margins(X[pred_rows], threads)
            if out[i] is None:
                out[i] = np.zeros((len(X), z.shape[1]))
            out[i][pred_rows] = z
    return [z for z in out if z is not None]


def fit_ensemble(task: str, X: np.ndarray, y: np.ndarray, weight: np.ndarray | None, holdout: np.ndarray,
                 categorical: list[int], tuned_params: dict[str, Any], tuned_rounds: int, seed: int, threads: int,
                 num_class: int = 1, prefix: str = "") -> EnsembleFit:
    """Fit one target's ensemble: cross-fitted margins, choices on the training rows' ones, refit on all.

    Every row (holdout included) gets its members' margins from fits on the other folds; the
    weights and the temperature are chosen on the training rows' margins only, and the holdout
    rows' margins, from members that never saw them, give the `test_*` output. Four fits per
    member in all (three folds and the final one), where a separate holdout twin would need five.

    Args:
        task: multiclass | binary | regression.
        X, y, weight: every row of the target.
        holdout: rows whose labels no choice reads (may be all False).
        categorical: categorical column indices.
        tuned_params, tuned_rounds: the tuned LightGBM's settings (its member; the regularised one
            shares its objective, seed and threads).
        seed, threads: reproducibility and LightGBM / CatBoost threads.
        num_class: classes for multiclass.
        prefix: metric name prefix (`score_`, `churn_`).
    Returns:
        The final ensemble, the holdout output, the out-of-fold output and the choice metrics.
    """
    fits = member_fits(task, num_class, tuned_params, tuned_rounds, categorical, seed, threads)
    margins = cross_fitted_margins(fits, X, y, weight, task, seed + 11, threads)
    train_rows = np.flatnonzero(~holdout)
    w_train = None if weight is None else weight[train_rows]
    train_margins = [m[train_rows] for m in margins]
    weights, metrics = choose_weights(task, train_margins, y[train_rows], w_train, seed)
    temperature, calibration = choose_temperature(task, combine_margins(task, train_margins, weights),
                                                  y[train_rows], w_train, seed)
    metrics.update(calibration)
    out_of_fold = combine_margins(task, margins, weights) / temperature
    model = Ensemble(task, num_class, list(MEMBER_NAMES), [f(X, y, weight) for f in fits], weights, temperature)
    metrics["temperature"] = temperature
    metrics.update({f"weight_{name}": float(v) for name, v in zip(MEMBER_NAMES, weights, strict=True)})
    if task != MULTICLASS:
        out_of_fold = out_of_fold[:, 0]
    return EnsembleFit(model, out_of_fold[holdout], out_of_fold,
                       {f"{prefix}ensemble_{key.removeprefix('ensemble_')}": v for key, v in metrics.items()})


def ensemble_covers(training: Any, target: str, rows: int) -> bool:
    """Whether `training` (the config's `training` section) fits `target` as an ensemble for `rows` rows."""
    return bool(training.ensemble) and target in training.ensemble_targets and rows <= training.ensemble_max_rows
