"""Optuna tuning of one LightGBM model: TPE search, pruning, time budget, a nested MLflow run per trial."""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Literal

import lightgbm as lgb
import mlflow
import numpy as np
import optuna
import sqlalchemy.exc

from cxpredict.models.estimators import fit_booster
from cxpredict.models.registry import TAG_TRIAL_NUMBER, TAG_TRIAL_STATE

EARLY_STOPPING_ROUNDS = 40
MAX_BOOST_ROUNDS = 1000
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TuneResult:
    """The best trial of one search: its settings, rounds and validation margins."""

    params: dict[str, Any]
    num_boost_round: int
    best_value: float
    n_trials: int
    valid_raw: np.ndarray  # the best trial's raw margins on `valid_rows` (out-of-fold under CV)
    valid_rows: np.ndarray
    study_name: str | None = None  # the study's name in a shared storage (None: in memory)


Fold = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class ProgressEvent:
    """What a progress display is told: a model starts, a trial ends, a model is fitted.

    Attributes:
        model: the model's name (`score`, `cause_price`, ...).
        stage: `start` (before its search), `trial` (a trial ended), `done` (refit on all rows).
        trial: the trial's number within this search (1-based; `trial` only).
        trials: the search's trial budget (`start`, `trial`) or trials in the study (`done`).
        state: the trial's end: `complete` or `pruned` (`trial` only).
        value: the trial's (or the best) validation loss, when there is one.
    """

    model: str
    stage: Literal["start", "trial", "done"]
    trial: int = 0
    trials: int = 0
    state: str = ""
    value: float | None = None


# Passed down from the command to every search; no global display state.
TrainingProgress = Callable[[ProgressEvent], None]

# The LightGBM settings the search chooses (the rest of a model's parameters are fixed).
TUNED_PARAMS = ("learning_rate", "num_leaves", "min_data_in_leaf", "feature_fraction", "bagging_fraction",
                "lambda_l2", "cat_smooth")
# MLflow's status for a run stopped on purpose; a pruned trial is not a failure.
PRUNED_RUN_STATUS = "KILLED"

LARGE_TARGET_ROWS = 20_000
LARGE_TARGET_MIN_LEARNING_RATE = 0.05  # big tables need no tiny steps, and tiny steps cost thousands of rounds


def suggest_params(trial: optuna.Trial, n_rows: int = 0) -> dict[str, Any]:
    min_rate = LARGE_TARGET_MIN_LEARNING_RATE if n_rows > LARGE_TARGET_ROWS else 0.02
    return {
        "learning_rate": trial.suggest_float("learning_rate", min_rate, 0.2, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 4, 63, log=True),
        "min_data_in_leaf": trial.suggest_int("min_data_in_leaf", 5, 120, log=True),
        "feature_fraction": trial.suggest_float("feature_fraction", 0.4, 1.0),
        "bagging_fraction": trial.suggest_float("bagging_fraction", 0.5, 1.0),
        "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 30.0, log=True),
        "cat_smooth": trial.suggest_float("cat_smooth", 1.0, 50.0, log=True),
    }


# Small samples (issue 15): the CV criterion of a few hundred rows barely ranks settings, so the search
# stays among regularised ones, starts from the fixed regularised set that did best on held-out silent
# customers, and never prunes (early curves of small folds are mostly noise).
SMALL_SAMPLE_FIRST_TRIAL = {"learning_rate": 0.03, "num_leaves": 7, "min_data_in_leaf": 10, "feature_fraction": 0.8,
                            "bagging_fraction": 0.8, "lambda_l2": 5.0, "cat_smooth": 10.0}
LIGHTGBM_MAX_CAT_TO_ONEHOT = 4  # categoricals with at most this many levels are split one-vs-rest: no smoothing


def suggest_small_sample_params(trial: optuna.Trial, tune_cat_smooth: bool = True) -> dict[str, Any]:
    """The narrowed search of small samples: low learning rates, few leaves, strong L2."""
    params = {
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.06, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 4, 15, log=True),
        "min_data_in_leaf": trial.suggest_int("min_data_in_leaf", 8, 60, log=True),
        "feature_fraction": trial.suggest_float("feature_fraction", 0.6, 0.95),
        "bagging_fraction": trial.suggest_float("bagging_fraction", 0.6, 0.95),
        "lambda_l2": trial.suggest_float("lambda_l2", 1.0, 30.0, log=True),
    }
    if tune_cat_smooth:
        params["cat_smooth"] = trial.suggest_float("cat_smooth", 1.0, 50.0, log=True)
    return params


def cat_smooth_acts(X: np.ndarray, categorical: list[int]) -> bool:
    """Whether LightGBM's `cat_smooth` can change a split: some categorical has more levels than one-hot splits take."""
    for j in categorical:
        column = X[:, j]
        if len(np.unique(column[np.isfinite(column)])) > LIGHTGBM_MAX_CAT_TO_ONEHOT:
            return True
    return False


def _pruning_callback(trial: optuna.Trial, every: int = 10, log_to_mlflow: bool = False):
    """Report the validation loss to Optuna as boosting goes, and stop hopeless trials early.

    With `log_to_mlflow` each reported value is also a step of the trial run's
    `intermediate_<metric>` metric, so a pruned trial shows the curve it was stopped on.
    """

    def callback(env: lgb.callback.CallbackEnv) -> None:
        if not env.evaluation_result_list or env.iteration % every:
            return
        _, metric, value, _ = env.evaluation_result_list[0][:4]
        trial.report(value, env.iteration)
        if log_to_mlflow:
            mlflow.log_metric(f"intermediate_{metric}", value, step=env.iteration)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned at iteration {env.iteration}")

    return callback


@lru_cache(maxsize=8)
def open_storage(url: str, attempts: int = 6) -> optuna.storages.RDBStorage:
    """An Optuna RDB storage, opened once per process and URL.

    Several processes starting on an empty database race to create Optuna's tables; the loser
    sees a duplicate-table error, so it retries once the winner has created them.
    """
    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url)
        except sqlalchemy.exc.SQLAlchemyError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def tune_model(
    name: str,
    base: dict[str, Any],
    X: np.ndarray,
    y: np.ndarray,
    weight: np.ndarray | None,
    folds: list[Fold],
    categorical: list[int],
    n_trials: int,
    timeout_s: float | None,
    seed: int,
    log_trials: bool = True,
    storage: str | None = None,
    study_name: str | None = None,
    progress: TrainingProgress | None = None,
    small_sample: bool = False,
) -> TuneResult:
    """Tune one model over validation folds; every trial is a nested MLflow run.

    Small targets are tuned by cross-validation (several folds), large ones on one split: a
    single split of a few hundred respondents picks settings by noise.

    Args:
        name: the model's name, used for the study and run names.
        base: fixed parameters (objective, seed, threads); trials override the tuned ones.
        X, y, weight: the training rows.
        folds: (fit rows, validation rows) index pairs; the loss is averaged over them.
        categorical: indices of categorical columns in X.
        n_trials, timeout_s: the search budget (trials, and an optional wall-time limit).
        seed: sampler seed, so the same data gives the same search.
        log_trials: log each trial as a nested run of the active MLflow run.
        storage: an Optuna storage URL shared by several processes (e.g. PostgreSQL).
        study_name: the study to create or join (default: `name`); processes tuning the same
            data must pass the same name (see `study_name_for`). With a storage an existing study
            is resumed: its trials count towards the best, and `n_trials` more are run.
        progress: told after every trial (its number, state and loss).
        small_sample: search the regularised region only (`suggest_small_sample_params`), the
            fixed regularised set queued as the first trial, no pruning, and no `cat_smooth`
            where no categorical has more than 4 levels (issue 15).
    Returns:
        The best parameters, boosting rounds, validation loss and validation raw margins.
    """
    tune_cat_smooth = cat_smooth_acts(X, categorical) if small_sample else True
    valid_rows = np.concatenate([valid for _, valid in folds])
    best_raw: dict[int, np.ndarray] = {}

    def objective(trial: optuna.Trial) -> float:
        suggested = (suggest_small_sample_params(trial, tune_cat_smooth) if small_sample
                     else suggest_params(trial, len(y)))
        params = {**base, **suggested, "metric": _metric(base)}
        if not log_trials:
            return run_trial(trial, params)
        # The trial's settings are logged before boosting, so a pruned trial keeps them; a pruned
        # trial ends KILLED (stopped on purpose), only an error ends FAILED.
        mlflow.start_run(run_name=f"{name}-trial-{trial.number}", nested=True)
        try:
            mlflow.log_params({**trial.params, "model": name, "folds": len(folds)})
            mlflow.set_tag(TAG_TRIAL_NUMBER, str(trial.number))
            value = run_trial(trial, params)
        except optuna.TrialPruned:
            mlflow.set_tag(TAG_TRIAL_STATE, "pruned")
            mlflow.end_run(status=PRUNED_RUN_STATUS)
            raise
        except BaseException:
            mlflow.end_run(status="FAILED")
            raise
        mlflow.log_params({"num_boost_round": trial.user_attrs["num_boost_round"]})
        mlflow.log_metric(f"val_{params['metric']}", value)
        mlflow.set_tag(TAG_TRIAL_STATE, "complete")
        mlflow.end_run()
        return value

    def run_trial(trial: optuna.Trial, params: dict[str, Any]) -> float:
        losses, rounds, raws = [], [], []
        for k, (fit_rows, valid) in enumerate(folds):
            booster = fit_booster(
                X[fit_rows], y[fit_rows], params, categorical, MAX_BOOST_ROUNDS,
                weight=None if weight is None else weight[fit_rows],
                valid=(X[valid], y[valid], None if weight is None else weight[valid]),
                callbacks=[_pruning_callback(trial, log_to_mlflow=log_trials)] if k == 0 and not small_sample else None,
                early_stopping_rounds=EARLY_STOPPING_ROUNDS,
            )
            losses.append(float(booster.best_score["valid_0"][params["metric"]]))
            best = max(int(booster.best_iteration or booster.current_iteration()), 1)
            rounds.append(best)
            raws.append(booster.predict(X[valid], raw_score=True, num_iteration=best))
        value = float(np.mean(losses))
        trial.set_user_attr("num_boost_round", max(int(round(np.mean(rounds))), 1))
        trial.set_user_attr("fold_rounds", rounds)  # lets another process rebuild this trial's margins
        trial.set_user_attr("pid", os.getpid())
        best_raw[trial.number] = np.concatenate(raws)
        return value

    started_with = 0

    def report(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if progress is None:
            return
        state = "pruned" if trial.state == optuna.trial.TrialState.PRUNED else "complete"
        progress(ProgressEvent(model=name, stage="trial", trial=len(study.trials) - started_with, trials=n_trials,
                               state=state, value=trial.value))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Processes sharing a study must not replay one another's seeded suggestions: mix in the pid.
    sampler_seed = seed if storage is None else (seed * 1_000_003 + os.getpid()) % 2**32
    study = optuna.create_study(
        study_name=study_name or name,
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=sampler_seed),
        pruner=optuna.pruners.NopPruner() if small_sample else optuna.pruners.MedianPruner(n_startup_trials=3,
                                                                                         n_warmup_steps=20),
        storage=None if storage is None else open_storage(storage),
        load_if_exists=storage is not None,
    )
    started_with = len(study.trials)
    if small_sample and started_with == 0:
        first = dict(SMALL_SAMPLE_FIRST_TRIAL)
        if not tune_cat_smooth:
            first.pop("cat_smooth")
        study.enqueue_trial(first)
    study.optimize(objective, n_trials=n_trials, timeout=timeout_s, catch=(), callbacks=[report])
    best = study.best_trial
    logger.info("tuned %s: %d trials, best %.4f", name, len(study.trials), best.value)
    params = {**base, **best.params}
    num_boost_round = int(best.user_attrs["num_boost_round"])
    valid_raw = best_raw.get(best.number)
    if valid_raw is None:  # the best trial ran in another process sharing the storage: refit its folds
        rounds = best.user_attrs.get("fold_rounds", [num_boost_round] * len(folds))
        valid_raw = fold_margins(X, y, weight, folds, categorical, params, rounds)
    return TuneResult(
        params=params,
        num_boost_round=num_boost_round,
        best_value=float(best.value),
        n_trials=len(study.trials),
        valid_raw=valid_raw,
        valid_rows=valid_rows,
        study_name=None if storage is None else study.study_name,
    )


def settle_rounds(
    tuned: TuneResult, X: np.ndarray, y: np.ndarray, weight: np.ndarray | None, fold: Fold, categorical: list[int],
) -> TuneResult:
    """Re-decide the boosting rounds of tuned parameters by early stopping on all rows' validation fold.

    Parameters tuned on a sample carry the sample's rounds; more rows support more rounds, so the
    rounds (and the validation margins calibration uses) come from one fit on the whole fold.
    """
    fit_rows, valid = fold
    booster = fit_booster(
        X[fit_rows], y[fit_rows], tuned.params, categorical, MAX_BOOST_ROUNDS,
        weight=None if weight is None else weight[fit_rows],
        valid=(X[valid], y[valid], None if weight is None else weight[valid]),
        early_stopping_rounds=EARLY_STOPPING_ROUNDS,
    )
    rounds = max(int(booster.best_iteration or booster.current_iteration()), 1)
    return replace(tuned, num_boost_round=rounds, valid_rows=valid,
                   valid_raw=booster.predict(X[valid], raw_score=True, num_iteration=rounds))


def fold_margins(
    X: np.ndarray, y: np.ndarray, weight: np.ndarray | None, folds: list[Fold], categorical: list[int],
    params: dict[str, Any], rounds: list[int],
) -> np.ndarray:
    """Validation raw margins of fixed parameters over the folds (each fold its own rounds), in fold order.

    Boosting is deterministic, so this equals the margins the trial itself computed.
    """
    raws = []
    for (fit_rows, valid), num_rounds in zip(folds, rounds, strict=True):
        booster = fit_booster(X[fit_rows], y[fit_rows], params, categorical, int(num_rounds),
                              weight=None if weight is None else weight[fit_rows])
        raws.append(booster.predict(X[valid], raw_score=True))
    return np.concatenate(raws)


def study_name_for(dataset: str, model: str, y: np.ndarray, n_features: int) -> str:
    """A study name fixed by the dataset, the model and its target rows.

    Two processes (or machines) tuning the same model on the same data get the same name, so they
    join one study in a shared storage, while another dataset or target never mixes into it. The
    features are left out on purpose: inputs derived from upstream models (propensity weights,
    predicted experience for churn) differ slightly between processes sharing studies, and their
    trials still belong together; each process rebuilds the best trial's margins on its own rows.
    """
    target = np.ascontiguousarray(y, dtype=np.float64)
    digest = hashlib.sha256(f"{target.shape}|{n_features}".encode())
    digest.update(target.tobytes())
    return f"cxpredict-{dataset}-{model}-{digest.hexdigest()[:12]}"


def _metric(base: dict[str, Any]) -> str:
    return {"multiclass": "multi_logloss", "binary": "binary_logloss", "regression": "l2"}[base["objective"]]
