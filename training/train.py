"""Training pipeline: response propensity, score, causes, driver ratings and churn in one MLflow run.

Every model is tuned with Optuna on part of its rows, evaluated on held-out rows it never saw
(`test_*` metrics), then refit on all rows with the tuned settings; the fitted set is logged and
registered as one pyfunc model with the alias `champion`.

Each step is a function that returns a frozen value (`TargetFit`: model, out-of-fold
predictions, calibration, metrics); conformal calibration, the population score, the backtest
and the drivers read those values, so no step reaches into another's state.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

from cxpredict.features.build import FeaturePipeline
from cxpredict.features.config import CxConfig
from cxpredict.features.load import DataError, Dataset, check_respondents, load_dataset
from cxpredict.features.text_features import with_text_features
from cxpredict.features.validation import check_training_customers
from cxpredict.models.bundle import ScoringBundle, band_column
from cxpredict.models.drift import DriftReference
from cxpredict.models.estimators import (
    BINARY,
    MULTICLASS,
    REGRESSION,
    base_params,
    binary_probability,
    fit_booster,
    fit_temperature,
    multiclass_probabilities,
    predict_raw,
)
from cxpredict.models.problems import cause_base_rates
from cxpredict.models.registry import NOTES_ARTIFACT, STUDIES_ARTIFACT, LoadedBundle
from cxpredict.training import evaluate
from cxpredict.training.conformal import calibrate_conformal, respondent_oof_frame
from cxpredict.training.drivers import log_training_drivers
from cxpredict.training.ensemble import EnsembleFit, ensemble_covers, fit_ensemble
from cxpredict.training.population import NonresponseInputs, PopulationScore, population_score
from cxpredict.training.project import link_project_run
from cxpredict.training.registry import (
    configure_mlflow,
    describe_model_version,
    log_bundle,
    log_training_inputs,
    model_version_description,
)
from cxpredict.training.tune import (
    TUNED_PARAMS,
    ProgressEvent,
    TrainingProgress,
    TuneResult,
    settle_rounds,
    study_name_for,
    tune_model,
)
from cxpredict.training.uplift import fit_strategy_loop

logger = logging.getLogger(__name__)
OOF_FOLDS = 3
CONFORMAL_OOF_SEED_OFFSET = 7  # the expected score's out-of-fold refit when churn does not need one
INNER_VALID_FRACTION = 0.2
CV_TUNING_MAX_ROWS = 20_000  # below this, tune by 3-fold cross-validation instead of one split
TUNE_SAMPLE_ROWS = 200_000  # above this, tuning trials run on a sample of this many rows
PROPENSITY_MAX_TRIALS = 5
MULTITHREAD_MIN_ROWS = 20_000  # smaller fits run faster on one thread (OpenMP start-up dominates)
MIN_CAUSE_POSITIVES = 5


def _frozen_array(values: np.ndarray | None) -> np.ndarray | None:
    """A read-only array: a result handed to other steps cannot be changed under them."""
    if values is None:
        return None
    values = np.asarray(values)
    values.flags.writeable = False
    return values


def _frozen_mapping(values: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(values))


@dataclass(frozen=True)
class FittedModel:
    """A booster refit on all rows, and the raw margins of its twin that never saw the holdout."""

    booster: lgb.Booster
    test_raw: np.ndarray
    tuned: TuneResult


@dataclass(frozen=True)
class TargetFit:
    """One target's fitted model as a value: what conformal, population figures, backtest and drivers read.

    Attributes:
        name: the model's name (`score`, `expected_score`, `cause_<code>`, `driver_<name>`,
            `churn`, `propensity`): study, trial runs and the prefix of its logged parameters.
        task: multiclass | binary | regression.
        booster: the model refit on all rows with the chosen settings.
        hyperparameters: the chosen (tuned) settings and boosting rounds.
        out_of_fold: predictions for the target's rows from models that did not see them, where
            the run needs them (band probabilities, expected score, response propensity); else None.
        calibration: the score model's temperature (None for the others).
        metrics: this target's figures (held-out `test_*`, calibration, rates).
        n_trials: trials in its Optuna study (earlier runs' included when a study is resumed).
        validation_loss: the best trial's validation loss.
        study_name: the study's name in a shared storage (None: an in-memory study).
    """

    name: str
    task: str
    booster: lgb.Booster
    hyperparameters: Mapping[str, Any]
    out_of_fold: np.ndarray | None = None
    calibration: float | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    n_trials: int = 0
    validation_loss: float | None = None
    study_name: str | None = None
    # The response model's out-of-fold P(responded) for every customer (the shadow-variable
    # estimate balances it); None for the other targets.
    all_out_of_fold: np.ndarray | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "hyperparameters", _frozen_mapping(self.hyperparameters))
        object.__setattr__(self, "metrics", _frozen_mapping(self.metrics))
        object.__setattr__(self, "out_of_fold", _frozen_array(self.out_of_fold))


@dataclass(frozen=True)
class RespondentTargets:
    """Targets of the surveyed customers, aligned row by row with `positions` in the customers table."""

    positions: np.ndarray
    level_index: np.ndarray
    band_index: np.ndarray
    causes: pd.DataFrame | None
    drivers: pd.DataFrame


@dataclass(frozen=True)
class TrainingData:
    """What every fit step reads: the config, the tables, the encoded features and the respondents' targets.

    Attributes:
        config: the dataset config.
        dataset: the loaded tables.
        pipeline: the feature pipeline fitted on every customer.
        X: every customer's encoded features.
        categorical: categorical column indices of `X`.
        targets: the respondents' targets and rows in `X`.
        respondent_holdout: mask over respondents kept out of fitting for `test_*` metrics.
        holdout_fraction: the share held out (0 trains on every row).
    """

    config: CxConfig
    dataset: Dataset
    pipeline: FeaturePipeline
    X: np.ndarray
    categorical: tuple[int, ...]
    targets: RespondentTargets
    respondent_holdout: np.ndarray
    holdout_fraction: float

    @property
    def X_respondents(self) -> np.ndarray:
        return self.X[self.targets.positions]


@dataclass(frozen=True)
class FitOptions:
    """How much to search and what to report while fitting (not part of the config: per call).

    Attributes:
        tune_trials: override of `training.tune_trials` (tests and the backtest use small budgets).
        log_trials: log Optuna trials as nested MLflow runs.
        study_name: prefix of the Optuna study names (default: named by dataset, model and rows).
        progress: called as models start, trials end and models finish (the CLI's display).
    """

    tune_trials: int | None = None
    log_trials: bool = True
    study_name: str | None = None
    progress: TrainingProgress | None = None


@dataclass(frozen=True)
class TrainedModels:
    """Every fitted model of one dataset, as values, and the bundle built from them.

    Attributes:
        data: the training data the models were fitted on.
        propensity: the response model (None when every customer responded).
        respondent_weight: the clipped inverse-propensity weights the respondent models used
            (None without bias correction).
        score, expected_score, causes, drivers, churn: one `TargetFit` per model.
        population: the population score and its interval.
        bundle: the scoring bundle (what is logged and served).
        metrics: every figure of the fit (what the run logs).
        notes: what was skipped and why.
    """

    data: TrainingData
    propensity: TargetFit | None
    respondent_weight: np.ndarray | None
    score: TargetFit
    expected_score: TargetFit
    causes: Mapping[str, TargetFit]
    drivers: Mapping[str, TargetFit]
    churn: TargetFit | None
    population: PopulationScore
    bundle: ScoringBundle
    metrics: Mapping[str, float]
    notes: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "respondent_weight", _frozen_array(self.respondent_weight))
        object.__setattr__(self, "causes", _frozen_mapping(self.causes))
        object.__setattr__(self, "drivers", _frozen_mapping(self.drivers))
        object.__setattr__(self, "metrics", _frozen_mapping(self.metrics))

    def target_fits(self) -> list[TargetFit]:
        """Every fitted model, upstream first."""
        fits = [self.propensity, self.score, self.expected_score, *self.causes.values(), *self.drivers.values(),
                self.churn]
        return [f for f in fits if f is not None]


@dataclass(frozen=True)
class TrainResult:
    """One `train()` run: where it was logged, what was registered and every figure."""

    run_id: str
    model_name: str
    model_version: str | None
    metrics: Mapping[str, float]
    bundle: ScoringBundle
    notes: tuple[str, ...] = ()
    models: TrainedModels | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "metrics", _frozen_mapping(self.metrics))
        object.__setattr__(self, "notes", tuple(self.notes))


def respondent_targets(config: CxConfig, dataset: Dataset) -> RespondentTargets:
    """Line survey rows up with customer rows and turn scores into class indices."""
    position_of = pd.Series(np.arange(len(dataset.customers)), index=dataset.customers[config.id_column])
    positions = position_of.loc[dataset.survey[config.id_column]].to_numpy()
    scores = dataset.survey[config.score.column].to_numpy(int)
    band_names = config.score.band_names
    band_index = np.array([band_names.index(config.score.band_of(int(s))) for s in scores])
    return RespondentTargets(
        positions=positions,
        level_index=scores - config.score.scale[0],
        band_index=band_index,
        causes=dataset.causes,
        drivers=dataset.survey[config.drivers] if config.drivers else pd.DataFrame(index=dataset.survey.index),
    )


def split_holdout(n: int, fraction: float, seed: int, stratify: np.ndarray | None = None) -> np.ndarray:
    """A boolean mask of held-out rows, stratified when every class has enough rows."""
    if fraction <= 0:
        return np.zeros(n, bool)
    can_stratify = stratify is not None and np.bincount(stratify).min(initial=n) >= 2
    _, test = train_test_split(
        np.arange(n), test_size=fraction, random_state=seed, stratify=stratify if can_stratify else None
    )
    mask = np.zeros(n, bool)
    mask[test] = True
    return mask


def fit_target(
    name: str,
    task: str,
    X: np.ndarray,
    y: np.ndarray,
    weight: np.ndarray | None,
    holdout: np.ndarray,
    categorical: list[int],
    config: CxConfig,
    num_class: int = 1,
    tune_trials: int | None = None,
    log_trials: bool = True,
    study_storage: str | None = None,
    study_name: str | None = None,
    progress: TrainingProgress | None = None,
) -> FittedModel:
    """Tune on the non-held-out rows, score the holdout with a model that never saw it, refit on all.

    Args:
        name: model name (study and run names).
        task: multiclass | binary | regression.
        X, y, weight: all rows of this target.
        holdout: mask of rows kept out of tuning and fitting for test metrics (may be all False).
        categorical: categorical column indices.
        config: the dataset config (seed, threads, budget).
        num_class: classes for multiclass.
        tune_trials: override of `training.tune_trials`.
        log_trials: log Optuna trials as nested MLflow runs.
        study_storage: Optuna storage shared by processes (default: `training.study_storage`);
            the study is named by dataset, model and rows, so processes on the same data share it.
        study_name: prefix of the study name instead (`<study_name>-<name>`): a study to resume
            by name in the storage.
        progress: told when the model starts, after every trial and when it is fitted.
    Returns:
        The final booster, the holdout raw margins and the tuning result.
    """
    t = config.training
    base = base_params(task, num_class, t.seed, t.threads if len(y) >= MULTITHREAD_MIN_ROWS else 1)
    train_rows = np.flatnonzero(~holdout)
    stratify = y[train_rows].astype(int) if task != REGRESSION else None
    folds = tuning_folds(len(train_rows), stratify, t.seed + 1)
    w = None if weight is None else weight[train_rows]
    storage = study_storage or t.study_storage
    study = None
    if storage:
        study = f"{study_name}-{name}" if study_name else study_name_for(config.name, name, y[train_rows], X.shape[1])
    # Trials on a large target run on a fixed sample of its rows: settings found on 200,000 rows
    # carry over, while the trials' cost stops growing with the data. The rounds are then
    # re-decided on all rows (more rows support more rounds).
    sample = np.arange(len(train_rows))
    if len(train_rows) > TUNE_SAMPLE_ROWS:
        share = TUNE_SAMPLE_ROWS / len(train_rows)
        sample = np.flatnonzero(split_holdout(len(train_rows), share, t.seed + 2, stratify))
    sampled = len(sample) < len(train_rows)
    X_fit, y_fit = X[train_rows], y[train_rows]
    n_trials = tune_trials or t.tune_trials
    if progress is not None:
        progress(ProgressEvent(model=name, stage="start", trials=n_trials))
    tuned = tune_model(
        name, base, X_fit[sample], y_fit[sample], None if w is None else w[sample],
        tuning_folds(len(sample), None if stratify is None else stratify[sample], t.seed + 1) if sampled else folds,
        categorical, n_trials=n_trials, timeout_s=t.tune_timeout_s, seed=t.seed,
        log_trials=log_trials, storage=storage, study_name=study, progress=progress,
        small_sample=len(train_rows) < t.small_sample_respondents,
    )
    if sampled:
        tuned = settle_rounds(tuned, X_fit, y_fit, w, folds[0], categorical)
    test_raw = np.empty((0,) if task != MULTICLASS else (0, num_class))
    if holdout.any():
        twin = fit_booster(X[train_rows], y[train_rows], tuned.params, categorical, tuned.num_boost_round, weight=w)
        test_raw = predict_raw(twin, X[holdout], t.threads)
    final = fit_booster(X, y, tuned.params, categorical, tuned.num_boost_round, weight=weight)
    if progress is not None:
        progress(ProgressEvent(model=name, stage="done", trials=tuned.n_trials, value=tuned.best_value))
    return FittedModel(final, test_raw, tuned)


def tuning_folds(n: int, stratify: np.ndarray | None, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Validation folds for tuning: 3-fold CV for small targets, one 80/20 split for large ones."""
    rows = np.arange(n)
    if n <= CV_TUNING_MAX_ROWS:
        can_stratify = stratify is not None and np.bincount(stratify).min(initial=n) >= OOF_FOLDS
        splitter = (StratifiedKFold if can_stratify else KFold)(n_splits=OOF_FOLDS, shuffle=True, random_state=seed)
        return list(splitter.split(rows, stratify if can_stratify else None))
    valid = split_holdout(n, INNER_VALID_FRACTION, seed, stratify)
    return [(rows[~valid], rows[valid])]


def out_of_fold_raw(
    X: np.ndarray, y: np.ndarray, weight: np.ndarray | None, tuned: TuneResult, categorical: list[int],
    seed: int, threads: int, stratify: bool,
) -> np.ndarray:
    """Raw margins for every row from models that did not see it (cross-fitting)."""
    splitter = (StratifiedKFold if stratify else KFold)(n_splits=OOF_FOLDS, shuffle=True, random_state=seed)
    out: np.ndarray | None = None
    for fit_rows, pred_rows in splitter.split(X, y if stratify else None):
        w = None if weight is None else weight[fit_rows]
        booster = fit_booster(X[fit_rows], y[fit_rows], tuned.params, categorical, tuned.num_boost_round, weight=w)
        raw = predict_raw(booster, X[pred_rows], threads)
        if out is None:
            out = np.zeros((len(X), *raw.shape[1:]))
        out[pred_rows] = raw
    assert out is not None
    return out


def inverse_propensity_weights(propensity: np.ndarray, max_weight: float) -> np.ndarray:
    """Weights 1/p normalised to mean 1, clipped at `max_weight` so a few rows cannot dominate."""
    w = 1.0 / np.clip(propensity, 1e-6, 1.0)
    w = w / w.mean()
    w = np.minimum(w, max_weight)
    return w / w.mean()


def _finite(metrics: Mapping[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if v is not None and np.isfinite(v)}


def _target_fit(name: str, task: str, fitted: FittedModel, **values: Any) -> TargetFit:
    tuned = fitted.tuned
    return TargetFit(name, task, fitted.booster, chosen_hyperparameters(tuned), n_trials=tuned.n_trials,
                     validation_loss=tuned.best_value, study_name=tuned.study_name, **values)


def _ensemble(data: TrainingData, target: str, task: str, X: np.ndarray, y: np.ndarray, weight: np.ndarray | None,
              holdout: np.ndarray, fitted: FittedModel, num_class: int = 1, prefix: str = "") -> EnsembleFit | None:
    """The target's ensemble around its tuned LightGBM when `training.ensemble` covers it (training/ensemble.py)."""
    t = data.config.training
    if not ensemble_covers(t, target, len(y)):
        return None
    return fit_ensemble(task, X, y, weight, holdout, list(data.categorical), fitted.tuned.params,
                        fitted.tuned.num_boost_round, t.seed, t.threads, num_class=num_class, prefix=prefix)


def _ensemble_fit(name: str, task: str, fitted: FittedModel, ensemble: EnsembleFit, **values: Any) -> TargetFit:
    """A TargetFit whose model is the ensemble (its hyper-parameters: the tuned member's, and the weights)."""
    tuned = fitted.tuned
    hyper = {**chosen_hyperparameters(tuned), **{f"ensemble_weight_{n}": float(w)
                                                for n, w in zip(ensemble.model.names, ensemble.model.weights,
                                                                strict=True)}}
    metrics = {**ensemble.metrics, **values.pop("metrics", {})}
    return TargetFit(name, task, ensemble.model, hyper, n_trials=tuned.n_trials, validation_loss=tuned.best_value,
                     study_name=tuned.study_name, metrics=metrics, **values)


def chosen_hyperparameters(tuned: TuneResult) -> dict[str, Any]:
    """The settings the search chose (not the fixed objective, seed, threads) and the boosting rounds."""
    return {**{k: tuned.params[k] for k in TUNED_PARAMS if k in tuned.params},
            "num_boost_round": tuned.num_boost_round}


def prepare_training(config: CxConfig, dataset: Dataset, holdout_fraction: float | None = None) -> TrainingData:
    """Fit the feature pipeline on every customer, encode them, and split the respondents' holdout.

    Args:
        config: the dataset config.
        dataset: the loaded tables.
        holdout_fraction: override of `training.holdout_fraction`; 0 trains on every row.
    Returns:
        The training data every fit step reads.
    """
    fraction = config.training.holdout_fraction if holdout_fraction is None else holdout_fraction
    check_training_customers(config, dataset.customers, dataset.sources.get("customers", "customers"))
    pipeline = FeaturePipeline(
        config.id_column,
        exclude=[*config.features.exclude, *([config.value_column] if config.value_column else [])],
        categorical=config.features.categorical,
    ).fit(dataset.customers)
    targets = respondent_targets(config, dataset)
    holdout = split_holdout(len(targets.positions), fraction, config.training.seed, targets.band_index)
    return TrainingData(
        config=config, dataset=dataset, pipeline=pipeline, X=pipeline.transform(dataset.customers),
        categorical=tuple(pipeline.categorical_indices_), targets=targets, respondent_holdout=holdout,
        holdout_fraction=fraction,
    )


def _fit(data: TrainingData, options: FitOptions, name: str, task: str, X: np.ndarray, y: np.ndarray,
         weight: np.ndarray | None, holdout: np.ndarray, num_class: int = 1,
         tune_trials: int | None = None) -> FittedModel:
    return fit_target(
        name, task, X, y, weight, holdout, list(data.categorical), data.config, num_class=num_class,
        tune_trials=options.tune_trials if tune_trials is None else tune_trials, log_trials=options.log_trials,
        study_name=options.study_name, progress=options.progress,
    )


def fit_propensity(data: TrainingData, options: FitOptions) -> tuple[TargetFit | None, list[str]]:
    """P(responded | operational data): how different respondents are, and the weights that fix it.

    Returns:
        The response model, whose `out_of_fold` holds the respondents' out-of-fold P(responded),
        with `survey_response_rate` and the adversarial AUC among its metrics (None when every
        customer responded), and the notes.
    """
    c = data.config
    n = len(data.X)
    responded = np.zeros(n, int)
    responded[data.targets.positions] = 1
    metrics = {"survey_response_rate": float(responded.mean())}
    if responded.all():
        return None, ["every customer responded: no response bias to correct"]
    # A nuisance model: a small search is enough, and its out-of-fold predictions give both
    # the adversarial AUC and the weights, so no rows are held out for it.
    trials = min(options.tune_trials or c.training.tune_trials, PROPENSITY_MAX_TRIALS)
    fitted = _fit(data, options, "propensity", BINARY, data.X, responded, None, np.zeros(n, bool), tune_trials=trials)
    oof = binary_probability(out_of_fold_raw(
        data.X, responded, None, fitted.tuned, list(data.categorical), c.training.seed, c.training.threads,
        stratify=True,
    ))
    metrics["propensity_adversarial_auc"] = evaluate.safe_auc(responded, oof)
    respondent_propensity = oof[data.targets.positions]
    weight = inverse_propensity_weights(respondent_propensity, c.training.max_weight)
    metrics["propensity_effective_sample_size"] = evaluate.effective_sample_size(weight)
    metrics["propensity_max_weight"] = float(weight.max())
    fit = _target_fit("propensity", BINARY, fitted, out_of_fold=respondent_propensity, metrics=metrics,
                      all_out_of_fold=oof)
    return fit, []


def respondent_weights(config: CxConfig, propensity: TargetFit | None) -> np.ndarray | None:
    """The clipped inverse-propensity weights respondent models train with (None without bias correction)."""
    if propensity is None or not config.training.bias_correction:
        return None
    return inverse_propensity_weights(np.asarray(propensity.out_of_fold), config.training.max_weight)


def fit_score(data: TrainingData, weight: np.ndarray | None, options: FitOptions) -> TargetFit:
    """Band probabilities: multiclass over the bands, temperature-scaled on validation folds.

    Modelling the few bands directly beats summing an 11-level model's probabilities on a
    few thousand respondents (held-out macro-F1 0.41 vs 0.36 on the demo company).

    Returns:
        The score model; `calibration` is its temperature and `out_of_fold` the respondents'
        out-of-fold band probabilities (churn's experience inputs and the doubly robust
        population figure need predictions from models that did not see the respondent).
    """
    c, tg, holdout = data.config, data.targets, data.respondent_holdout
    X = data.X_respondents
    fitted = _fit(data, options, "score", MULTICLASS, X, tg.band_index, weight, holdout,
                  num_class=len(c.score.band_names))
    ensemble = _ensemble(data, "score", MULTICLASS, X, tg.band_index, weight, holdout, fitted,
                         num_class=len(c.score.band_names), prefix="score_")
    if ensemble is not None:  # its temperature is inside the ensemble: the bundle's stays 1
        metrics = {"score_temperature": ensemble.model.temperature}
        if holdout.any():
            metrics.update(evaluate.band_metrics(multiclass_probabilities(ensemble.test_raw), tg.band_index[holdout],
                                                 "test_"))
        return _ensemble_fit("score", MULTICLASS, fitted, ensemble, metrics=metrics, calibration=1.0,
                             out_of_fold=multiclass_probabilities(ensemble.out_of_fold))
    train_rows = np.flatnonzero(~holdout)
    valid_rows = train_rows[fitted.tuned.valid_rows]
    valid_weight = None if weight is None else weight[valid_rows]
    temperature = fit_temperature(fitted.tuned.valid_raw, tg.band_index[valid_rows], valid_weight)
    metrics = {"score_temperature": temperature}
    if holdout.any():
        band_probs = multiclass_probabilities(fitted.test_raw, temperature)
        metrics.update(evaluate.band_metrics(band_probs, tg.band_index[holdout], "test_"))
    oof_bands = multiclass_probabilities(out_of_fold_raw(
        X, tg.band_index, weight, fitted.tuned, list(data.categorical), c.training.seed, c.training.threads,
        stratify=True,
    ), temperature)
    return _target_fit("score", MULTICLASS, fitted, out_of_fold=oof_bands, calibration=temperature, metrics=metrics)


def fit_expected_score(data: TrainingData, weight: np.ndarray | None, options: FitOptions) -> TargetFit:
    """The expected score: a regression of the observed score (its conditional mean).

    Returns:
        The model; `out_of_fold` holds the respondents' out-of-fold expected score, clipped to
        the scale (churn's experience input and the conformal intervals' calibration).
    """
    c, tg, holdout = data.config, data.targets, data.respondent_holdout
    X = data.X_respondents
    score = np.asarray(c.score.levels, float)[tg.level_index]
    fitted = _fit(data, options, "expected_score", REGRESSION, X, score, weight, holdout)
    metrics: dict[str, float] = {}
    ensemble = _ensemble(data, "expected_score", REGRESSION, X, score, weight, holdout, fitted,
                         prefix="expected_score_")
    if ensemble is not None:
        if holdout.any():
            predicted = np.clip(ensemble.test_raw, c.score.scale[0], c.score.scale[1])
            metrics["test_expected_score_mae"] = evaluate.expected_score_mae(predicted, score[holdout])
        oof = np.clip(ensemble.out_of_fold, c.score.scale[0], c.score.scale[1])
        return _ensemble_fit("expected_score", REGRESSION, fitted, ensemble, metrics=metrics, out_of_fold=oof)
    if holdout.any():
        predicted = np.clip(fitted.test_raw, c.score.scale[0], c.score.scale[1])
        metrics["test_expected_score_mae"] = evaluate.expected_score_mae(predicted, score[holdout])
    if c.churn is not None and c.churn.use_experience:
        raw = out_of_fold_raw(X, score, weight, fitted.tuned, list(data.categorical), c.training.seed,
                              c.training.threads, stratify=False)
    else:
        raw = refit_out_of_fold(X, score, weight, list(data.categorical), fitted.booster, c)
    oof = np.clip(raw, c.score.scale[0], c.score.scale[1])
    return _target_fit("expected_score", REGRESSION, fitted, out_of_fold=oof, metrics=metrics)


def refit_out_of_fold(X: np.ndarray, y: np.ndarray, weight: np.ndarray | None, categorical: list[int],
                      booster: lgb.Booster, config: CxConfig) -> np.ndarray:
    """Raw out-of-fold predictions from folds refit with a final booster's own settings and rounds."""
    params = {k: v for k, v in booster.params.items() if k not in ("num_iterations", "num_boost_round")}
    rounds = max(booster.current_iteration(), 1)
    out = np.zeros(len(y))
    splitter = KFold(n_splits=OOF_FOLDS, shuffle=True, random_state=config.training.seed + CONFORMAL_OOF_SEED_OFFSET)
    for fit_rows, pred_rows in splitter.split(X):
        w = None if weight is None else weight[fit_rows]
        fold = fit_booster(X[fit_rows], y[fit_rows], params, categorical, rounds, weight=w)
        out[pred_rows] = predict_raw(fold, X[pred_rows], config.training.threads)
    return out


def _model_key(name: str) -> str:
    """A target name usable in MLflow keys (letters, digits, `_`, `-`, `.`)."""
    return re.sub(r"[^0-9A-Za-z_.\-]", "_", name)


def fit_causes(data: TrainingData, weight: np.ndarray | None,
               options: FitOptions) -> tuple[dict[str, TargetFit], dict[str, float], list[str]]:
    """One binary model per cause code named by enough respondents.

    Returns:
        Cause code -> model, the cause metrics (per-cause and mean held-out AUC) and notes.
    """
    fits: dict[str, TargetFit] = {}
    metrics: dict[str, float] = {}
    notes: list[str] = []
    causes, holdout = data.targets.causes, data.respondent_holdout
    if causes is None:
        return fits, metrics, notes
    X = data.X_respondents
    for code in causes.columns:
        y = causes[code].to_numpy(int)
        if y[~holdout].sum() < MIN_CAUSE_POSITIVES:
            notes.append(f"cause '{code}' named by fewer than {MIN_CAUSE_POSITIVES} respondents: not modelled")
            continue
        fitted = _fit(data, options, f"cause_{code}", BINARY, X, y, weight, holdout)
        ensemble = _ensemble(data, "causes", BINARY, X, y, weight, holdout, fitted, prefix=f"cause_{code}_")
        test_raw = fitted.test_raw if ensemble is None else ensemble.test_raw
        own: dict[str, float] = {}
        if holdout.any():
            own[f"test_cause_auc_{code}"] = evaluate.safe_auc(y[holdout], binary_probability(test_raw))
        metrics.update(own)
        fits[code] = (_target_fit(f"cause_{code}", BINARY, fitted, metrics=own) if ensemble is None
                      else _ensemble_fit(f"cause_{code}", BINARY, fitted, ensemble, metrics=own))
    aucs = [v for k, v in metrics.items() if k.startswith("test_cause_auc_") and np.isfinite(v)]
    if aucs:
        metrics["test_cause_auc_mean"] = float(np.mean(aucs))
    return fits, metrics, notes


def fit_drivers(data: TrainingData, weight: np.ndarray | None,
                options: FitOptions) -> tuple[dict[str, TargetFit], list[str]]:
    """One regression per driver rating rated by enough respondents."""
    fits: dict[str, TargetFit] = {}
    notes: list[str] = []
    X_all = data.X_respondents
    for driver in data.config.drivers:
        values = data.targets.drivers[driver].to_numpy(float)
        rated = np.isfinite(values)
        if rated.sum() < data.config.training.min_respondents:
            notes.append(f"driver '{driver}' rated by {int(rated.sum())} respondents: not modelled")
            continue
        w = None if weight is None else weight[rated]
        holdout = data.respondent_holdout[rated]
        fitted = _fit(data, options, f"driver_{driver}", REGRESSION, X_all[rated], values[rated], w, holdout)
        ensemble = _ensemble(data, "drivers", REGRESSION, X_all[rated], values[rated], w, holdout, fitted,
                             prefix=f"driver_{driver}_")
        test_raw = fitted.test_raw if ensemble is None else ensemble.test_raw
        own: dict[str, float] = {}
        if holdout.any():
            own[f"test_driver_mae_{driver}"] = float(np.abs(test_raw - values[rated][holdout]).mean())
        fits[driver] = (_target_fit(f"driver_{driver}", REGRESSION, fitted, metrics=own) if ensemble is None
                        else _ensemble_fit(f"driver_{driver}", REGRESSION, fitted, ensemble, metrics=own))
    return fits, notes


def experience_features(data: TrainingData, experience: Mapping[str, np.ndarray], score: TargetFit,
                        expected_score: TargetFit) -> tuple[np.ndarray, np.ndarray]:
    """Expected score and P(bottom band) per customer, out-of-fold for respondents (no leakage)."""
    c, positions = data.config, data.targets.positions
    expected = np.array(experience["expected_score"], copy=True)
    p_bottom = np.array(experience[band_column(c.score.bottom_band)], copy=True)
    expected[positions] = expected_score.out_of_fold
    p_bottom[positions] = np.asarray(score.out_of_fold)[:, c.score.band_names.index(c.score.bottom_band)]
    return expected, p_bottom


def fit_churn(data: TrainingData, options: FitOptions, expected: np.ndarray | None,
              p_bottom: np.ndarray | None) -> TargetFit | None:
    """Churn on every customer with an outcome, with predicted experience as inputs when configured."""
    c, outcomes = data.config, data.dataset.outcomes
    if outcomes is None or c.churn is None:
        return None
    position_of = pd.Series(np.arange(len(data.dataset.customers)), index=data.dataset.customers[c.id_column])
    positions = position_of.loc[outcomes[c.id_column]].to_numpy()
    y = outcomes[c.churn.column].to_numpy(int)
    X = data.X[positions]
    if c.churn.use_experience:
        X = np.column_stack([X, expected[positions], p_bottom[positions]])
    holdout = split_holdout(len(y), data.holdout_fraction, c.training.seed, y)
    fitted = _fit(data, options, "churn", BINARY, X, y, None, holdout)
    ensemble = _ensemble(data, "churn", BINARY, X, y, None, holdout, fitted, prefix="churn_")
    metrics: dict[str, float] = {}
    if holdout.any():
        p = binary_probability(fitted.test_raw if ensemble is None else ensemble.test_raw)
        metrics["test_churn_roc_auc"] = evaluate.safe_auc(y[holdout], p)
        metrics["test_churn_pr_auc"] = evaluate.safe_pr_auc(y[holdout], p)
    metrics["churn_rate"] = float(y.mean())
    if ensemble is not None:
        return _ensemble_fit("churn", BINARY, fitted, ensemble, metrics=metrics)
    return _target_fit("churn", BINARY, fitted, metrics=metrics)


def shadow_outcomes(data: TrainingData) -> np.ndarray | None:
    """The configured shadow outcomes for every customer (customers × k); None when some customer lacks one."""
    c, outcomes = data.config, data.dataset.outcomes
    columns = c.shadow_outcome_columns
    if outcomes is None or not columns or any(col not in outcomes.columns for col in columns):
        return None
    ids = data.dataset.customers[c.id_column].astype(str)
    values = outcomes.set_index(outcomes[c.id_column].astype(str))[columns].reindex(ids)
    values = values.apply(pd.to_numeric, errors="coerce").to_numpy(float)
    return values if np.isfinite(values).all() else None


def nonresponse_inputs(data: TrainingData, propensity: TargetFit | None,
                       expected: np.ndarray | None = None) -> NonresponseInputs | None:
    """The missing-not-at-random figures' inputs (None: no response model; no shadow estimate without
    a shadow outcome for every customer)."""
    if propensity is None or propensity.all_out_of_fold is None:
        return None
    columns = data.config.shadow_outcome_columns
    return NonresponseInputs(shadow=shadow_outcomes(data), shadow_name=columns[0] if columns else "",
                             propensity=np.asarray(propensity.all_out_of_fold),
                             score=np.asarray(data.targets.level_index, float), extra_design=expected)


def score_population(data: TrainingData, bundle: ScoringBundle, score: TargetFit,
                     propensity: TargetFit | None, experience: Mapping[str, np.ndarray] | None = None,
                     nonresponse: NonresponseInputs | None = None) -> PopulationScore:
    """The population score of a bundle's score model over the training customers (see `population_score`)."""
    if experience is None:
        experience = bundle.predict_matrix(data.X, data.config.training.threads, causes=False, drivers=False,
                                           churn=False)
    band_probabilities = np.column_stack([experience[band_column(b)] for b in data.config.score.band_names])
    return population_score(
        data.config, band_probabilities, np.asarray(score.out_of_fold), data.targets.band_index,
        data.targets.positions, None if propensity is None else np.asarray(propensity.out_of_fold), nonresponse,
    )


@contextmanager
def _timed(stage: str, seconds: dict[str, float]) -> Iterator[None]:
    """Record a stage's wall time as `train_seconds_<stage>`: where training time goes at scale."""
    started = time.perf_counter()
    yield
    seconds[f"train_seconds_{stage}"] = time.perf_counter() - started


def fit_models(config: CxConfig, dataset: Dataset, tune_trials: int | None = None,
               holdout_fraction: float | None = None, log_trials: bool = True, include_churn: bool = True,
               study_name: str | None = None, progress: TrainingProgress | None = None) -> TrainedModels:
    """Fit every model of one dataset and build the scoring bundle from them.

    Args:
        config: the dataset config.
        dataset: the loaded tables.
        tune_trials: override of `training.tune_trials` (tests and the backtest use small budgets).
        holdout_fraction: override of `training.holdout_fraction`; 0 trains on every row.
        log_trials: log Optuna trials as nested MLflow runs (of the active run).
        include_churn: fit the churn model too (the backtest has no outcomes).
        study_name: prefix of the Optuna study names in the storage (see `fit_target`).
        progress: told as models start, trials end and models finish.
    Returns:
        Every fitted model as a value, the population score, the bundle, metrics and notes.
    """
    dataset = with_text_features(config, dataset)  # texts as customer columns (a no-op without texts)
    data = prepare_training(config, dataset, holdout_fraction)
    if len(data.targets.positions) < config.training.min_respondents:
        raise DataError(
            f"{dataset.sources.get('survey', 'survey')}: {len(data.targets.positions)} respondents; "
            f"the score model needs at least {config.training.min_respondents} (training.min_respondents)"
        )
    options = FitOptions(tune_trials=tune_trials, log_trials=log_trials, study_name=study_name, progress=progress)
    seconds: dict[str, float] = {}
    notes: list[str] = []
    with _timed("propensity", seconds):
        propensity, propensity_notes = fit_propensity(data, options)
        notes += propensity_notes
        weight = respondent_weights(config, propensity)
    with _timed("score", seconds):
        score = fit_score(data, weight, options)
    with _timed("expected_score", seconds):
        expected_score = fit_expected_score(data, weight, options)
    with _timed("causes", seconds):
        causes, cause_metrics, cause_notes = fit_causes(data, weight, options)
        notes += cause_notes
    with _timed("drivers", seconds):
        drivers, driver_notes = fit_drivers(data, weight, options)
        notes += driver_notes
    scoring = ScoringBundle(
        name=config.name,
        id_column=config.id_column,
        pipeline=data.pipeline,
        levels=config.score.levels,
        bands={k: tuple(v) for k, v in config.score.bands.items()},
        top_band=config.score.top_band,
        bottom_band=config.score.bottom_band,
        score_booster=score.booster,
        expected_score_booster=expected_score.booster,
        score_temperature=float(score.calibration),
        cause_boosters={code: fit.booster for code, fit in causes.items()},
        driver_boosters={driver: fit.booster for driver, fit in drivers.items()},
        propensity_booster=None if propensity is None else propensity.booster,
        cause_base_rates=cause_base_rates(data.targets.causes) if causes else {},
        problem_min_lift=float(config.problem_groups.min_lift),
    )
    # Band probabilities and expected score of every customer, from the score models only,
    # computed once (churn's inputs and the population figures both need them).
    experience = scoring.predict_matrix(data.X, config.training.threads, causes=False, drivers=False, churn=False)
    churn, uses_experience = None, False
    if include_churn and dataset.outcomes is not None and config.churn is not None:
        with _timed("churn", seconds):
            uses_experience = config.churn.use_experience
            expected, p_bottom = (experience_features(data, experience, score, expected_score) if uses_experience
                                  else (None, None))
            churn = fit_churn(data, options, expected, p_bottom)
    with _timed("population", seconds):
        expected_all = experience_features(data, experience, score, expected_score)[0]
        population = score_population(data, scoring, score, propensity, experience,
                                      nonresponse_inputs(data, propensity, expected_all))
        notes += population.sentences()
    respondent_propensity = None if propensity is None else np.asarray(propensity.out_of_fold)
    with _timed("conformal", seconds):
        tg = data.targets
        conformal = calibrate_conformal(
            config, np.asarray(score.out_of_fold), tg.band_index, np.asarray(expected_score.out_of_fold),
            tg.level_index, respondent_propensity, len(tg.positions) / len(data.X),
        )
        ids = dataset.customers[config.id_column].astype(str).to_numpy()[tg.positions]
        respondent_oof = respondent_oof_frame(config, ids, np.asarray(score.out_of_fold), respondent_propensity)
    metrics: dict[str, float] = dict(dataset.text_metrics)
    notes += dataset.text_notes
    for fit in [propensity, score, expected_score]:
        if fit is not None:
            metrics.update(fit.metrics)
    if propensity is None:
        metrics["survey_response_rate"] = 1.0
    metrics.update(cause_metrics)
    for fit in drivers.values():
        metrics.update(fit.metrics)
    if churn is not None:
        metrics.update(churn.metrics)
    metrics.update(population.metrics())
    metrics.update(seconds)
    metrics["n_customers"] = float(len(data.X))
    metrics["n_respondents"] = float(len(data.targets.positions))
    bundle = replace(
        scoring, churn_booster=None if churn is None else churn.booster, churn_uses_experience=uses_experience,
        conformal=conformal, respondent_oof=respondent_oof, drift_reference=DriftReference.fit(data.pipeline, data.X),
        metadata={"metrics": _finite(metrics), "notes": list(notes), "population_notes": population.sentences()},
    )
    return TrainedModels(
        data=data, propensity=propensity, respondent_weight=weight, score=score, expected_score=expected_score,
        causes=causes, drivers=drivers, churn=churn, population=population, bundle=bundle, metrics=metrics,
        notes=tuple(notes),
    )


def model_params(models: TrainedModels) -> dict[str, Any]:
    """The chosen hyper-parameters of every model, prefixed by target (`score.num_leaves`, `churn.learning_rate`)."""
    return {f"{_model_key(fit.name)}.{key}": value for fit in models.target_fits()
            for key, value in fit.hyperparameters.items()}


def train(
    config: CxConfig, dataset: Dataset | None = None, tune_trials: int | None = None, register: bool = True,
    study_storage: str | None = None, study_name: str | None = None, progress: TrainingProgress | None = None,
) -> TrainResult:
    """Train every model of a dataset in one MLflow run and register the bundle as `champion`.

    Args:
        config: the dataset config.
        dataset: already loaded tables (loaded from the config when omitted).
        tune_trials: override of `training.tune_trials`.
        register: register the model and move the `champion` alias to it.
        study_storage: override of `training.study_storage`: an Optuna storage URL several
            processes share, so they tune one study per model together.
        study_name: prefix of the study names in that storage (resume studies `cxpredict tune` ran).
        progress: told as models start, trials end and models finish (the CLI's display).
    Returns:
        The run id, registered version, test metrics, the bundle and every fitted model.
    """
    if study_storage is not None:
        config = config.model_copy(
            update={"training": config.training.model_copy(update={"study_storage": study_storage})}
        )
    dataset = with_text_features(config, dataset or load_dataset(config))
    check_respondents(config, dataset)  # before any MLflow run is opened
    check_training_customers(config, dataset.customers, dataset.sources.get("customers", "customers"))
    configure_mlflow(config)
    seconds: dict[str, float] = {}
    with mlflow.start_run(run_name=f"train-{config.name}") as run:
        mlflow.log_params(_run_params(config, dataset, tune_trials))
        log_training_inputs(config, dataset)
        models = fit_models(config, dataset, tune_trials=tune_trials, study_name=study_name, progress=progress)
        mlflow.log_params(model_params(models))
        bundle = models.bundle
        metrics, notes = dict(models.metrics), list(models.notes)
        with _timed("uplift", seconds):
            fit_strategy_loop(config, dataset, bundle, metrics, notes)
        metrics.update(seconds)
        bundle.metadata.update({"run_id": run.info.run_id, "model_name": config.registered_model_name})
        mlflow.log_metrics(_finite(metrics))
        mlflow.log_dict({"notes": notes}, NOTES_ARTIFACT)
        sample = dataset.customers.head(500)
        with _timed("log_model", seconds):
            version = log_bundle(config, bundle, sample, register)
        if config.training.driver_sample:
            with _timed("drivers_explained", seconds):
                loaded = LoadedBundle(bundle, config.registered_model_name, version or "", run.info.run_id)
                log_training_drivers(config, loaded, dataset)
        late = {k: seconds[k] for k in ("train_seconds_log_model", "train_seconds_drivers_explained") if k in seconds}
        metrics.update(late)
        mlflow.log_metrics(late)
        if version is not None:
            describe_model_version(config, version, model_version_description(
                config, run.info.run_id, metrics, n_customers=len(dataset.customers),
                n_respondents=len(dataset.survey), sources=dataset.sources,
            ))
        link_project_run(run.info.run_id, config.tracking_uri)
    return TrainResult(run.info.run_id, config.registered_model_name, version, metrics, bundle, tuple(notes), models)


def _run_params(config: CxConfig, dataset: Dataset, tune_trials: int | None) -> dict[str, Any]:
    return {
        "dataset": config.name,
        "n_customers": len(dataset.customers),
        "n_respondents": len(dataset.survey),
        "seed": config.training.seed,
        "tune_trials": tune_trials or config.training.tune_trials,
        "bias_correction": config.training.bias_correction,
        "max_weight": config.training.max_weight,
        "causes": json.dumps(dataset.cause_codes),
        "drivers": json.dumps(config.drivers),
    }


@dataclass(frozen=True)
class SummaryRow:
    """One line of the end-of-training table: a model, its headline held-out figure and the value."""

    model: str
    figure: str
    value: str


def _with_interval(value: float, low: float | None, high: float | None, fmt: str) -> str:
    if low is None or high is None:
        return format(value, fmt)
    return f"{value:{fmt}} [{low:{fmt}}, {high:{fmt}}]"


def training_summary(result: TrainResult) -> list[SummaryRow]:
    """The short table `cxpredict train` ends with: per target its main held-out metric, the population score.

    Every other figure is in the MLflow run; this is what a data scientist checks first.
    """
    m = result.metrics
    rows: list[SummaryRow] = []

    def add(model: str, key: str, fmt: str = ".3f", low: str | None = None, high: str | None = None) -> None:
        if key in m and np.isfinite(m[key]):
            rows.append(SummaryRow(model, key, _with_interval(m[key], m.get(low or ""), m.get(high or ""), fmt)))

    add("response propensity", "propensity_adversarial_auc")
    add("score bands", "test_macro_f1")
    add("score bands", "test_log_loss")
    add("expected score", "test_expected_score_mae")
    add("causes", "test_cause_auc_mean")
    for key in sorted(k for k in m if k.startswith("test_driver_mae_")):
        add(f"driver {key.removeprefix('test_driver_mae_')}", key)
    add("churn", "test_churn_roc_auc")
    add("population score (doubly robust, 95% CI)", "population_index", "+.1f",
        "population_index_ci_low", "population_index_ci_high")
    add("population score (headline: sampling + shared error)", "population_index", "+.1f",
        "population_index_headline_low", "population_index_headline_high")
    add("population score (shadow variable)", "population_index_shadow", "+.1f",
        "population_index_shadow_ci_low", "population_index_shadow_ci_high")
    for lam in ("1_25", "1_5", "2"):
        add(f"population score range (odds ratio {lam.replace('_', '.')})", "population_index", "+.1f",
            f"population_index_dr_lambda_{lam}_low", f"population_index_dr_lambda_{lam}_high")
    add("population score (sign flips at odds ratio)", "population_index_sign_flip_lambda", ".2f")
    add("population score (respondents only)", "population_index_respondents", "+.1f")
    for key in sorted(k for k in m if k.startswith("campaign_ate_") and "_ci_" not in k):
        sid = key.removeprefix("campaign_ate_")
        add(f"campaign {sid}", key, "+.3f", f"campaign_ate_ci_low_{sid}", f"campaign_ate_ci_high_{sid}")
    for column, why in sorted(getattr(result.bundle.pipeline, "skipped_", {}).items()):
        rows.append(SummaryRow("dropped column", column, why))  # also the run's tag TAG_DROPPED_COLUMNS
    if result.model_version is not None:
        rows.append(SummaryRow("registered model", result.model_name, f"version {result.model_version} (champion)"))
    return rows



@dataclass(frozen=True)
class StudySummary:
    """One model's Optuna study after `tune`: where it lives, how many trials, the best settings."""

    model: str
    study_name: str | None
    n_trials: int
    validation_loss: float | None
    hyperparameters: Mapping[str, Any]


@dataclass(frozen=True)
class TuneReport:
    """A `tune` run: its MLflow run, the storage holding the studies, and one summary per model."""

    run_id: str
    storage: str
    studies: tuple[StudySummary, ...]


def default_study_storage(config: CxConfig) -> str:
    """Where `tune` keeps its studies unless told: `training.study_storage`, else optuna.db beside the config."""
    if config.training.study_storage:
        return config.training.study_storage
    return f"sqlite:///{config.resolve('optuna.db')}"


def tune(
    config: CxConfig, dataset: Dataset | None = None, tune_trials: int | None = None,
    study_storage: str | None = None, study_name: str | None = None, progress: TrainingProgress | None = None,
) -> TuneReport:
    """Run the hyper-parameter searches alone, in Optuna studies that a later run resumes.

    Every model is searched on the same rows and inputs as `train` (the response weights and
    predicted experience its downstream models need come from fits of the models upstream), each
    trial a nested MLflow run of a `tune-<name>` run that logs the chosen settings per model.
    Nothing is logged as a model or registered. The studies live in `study_storage`: running
    `tune` again with the same storage (and `study_name`) adds trials to them, and `train` with
    the same storage starts from their best trials.

    Args:
        config: the dataset config.
        dataset: already loaded tables (loaded from the config when omitted).
        tune_trials: trials per model this time (default: `training.tune_trials`).
        study_storage: the Optuna storage URL (default: `default_study_storage`).
        study_name: prefix of the study names (default: named by dataset, model and rows).
        progress: told as models start, trials end and models finish.
    Returns:
        The run, the storage and each model's study summary.
    """
    storage = study_storage or default_study_storage(config)
    config = config.model_copy(update={"training": config.training.model_copy(update={"study_storage": storage})})
    dataset = dataset or load_dataset(config)
    check_respondents(config, dataset)
    configure_mlflow(config)
    with mlflow.start_run(run_name=f"tune-{config.name}") as run:
        mlflow.log_params({**_run_params(config, dataset, tune_trials), "study_name": study_name or ""})
        log_training_inputs(config, dataset)
        models = fit_models(config, dataset, tune_trials=tune_trials, study_name=study_name, progress=progress)
        mlflow.log_params(model_params(models))
        studies = tuple(
            StudySummary(fit.name, fit.study_name, fit.n_trials, fit.validation_loss, fit.hyperparameters)
            for fit in models.target_fits()
        )
        mlflow.log_metrics({f"val_loss_{_model_key(s.model)}": s.validation_loss for s in studies
                            if s.validation_loss is not None and np.isfinite(s.validation_loss)})
        mlflow.log_metrics({f"n_trials_{_model_key(s.model)}": float(s.n_trials) for s in studies})
        mlflow.log_dict({"studies": [
            {"target": s.model, "study_name": s.study_name, "n_trials": s.n_trials,
             "validation_loss": s.validation_loss, "hyperparameters": dict(s.hyperparameters)} for s in studies
        ]}, STUDIES_ARTIFACT)
        link_project_run(run.info.run_id, config.tracking_uri)
    return TuneReport(run.info.run_id, _redact_url(storage), studies)


def _redact_url(url: str) -> str:
    """A storage URL fit to print: the password of a database URL replaced by ***."""
    return re.sub(r"(://[^:/@]+:)[^@]+@", r"\1***@", url)
