"""Training pipeline: response propensity, score, causes, driver ratings and churn in one MLflow run.

Every model is tuned with Optuna on part of its rows, evaluated on held-out rows it never saw
(`test_*` metrics), then refit on all rows with the tuned settings; the fitted set is logged and
registered as one pyfunc model with the alias `champion`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

from cxpredict.features.build import FeaturePipeline
from cxpredict.features.config import CxConfig
from cxpredict.features.load import DataError, Dataset, check_respondents, load_dataset
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
from cxpredict.models.registry import NOTES_ARTIFACT, LoadedBundle
from cxpredict.training import evaluate
from cxpredict.training.conformal import calibrate_conformal, respondent_oof_frame
from cxpredict.training.project import link_project_run
from cxpredict.training.registry import configure_mlflow, log_bundle
from cxpredict.training.tune import TuneResult, settle_rounds, study_name_for, tune_model
from cxpredict.training.uplift import fit_campaign_uplift

logger = logging.getLogger(__name__)
OOF_FOLDS = 3
INNER_VALID_FRACTION = 0.2
CV_TUNING_MAX_ROWS = 20_000  # below this, tune by 3-fold cross-validation instead of one split
TUNE_SAMPLE_ROWS = 200_000  # above this, tuning trials run on a sample of this many rows
PROPENSITY_MAX_TRIALS = 5
MULTITHREAD_MIN_ROWS = 20_000  # smaller fits run faster on one thread (OpenMP start-up dominates)
MIN_CAUSE_POSITIVES = 5


@dataclass
class FittedModel:
    """A booster refit on all rows, and the raw margins of its twin that never saw the holdout."""

    booster: lgb.Booster
    test_raw: np.ndarray
    tuned: TuneResult


@dataclass
class TrainResult:
    run_id: str
    model_name: str
    model_version: str | None
    metrics: dict[str, float]
    bundle: ScoringBundle
    notes: list[str] = field(default_factory=list)


@dataclass
class RespondentTargets:
    """Targets of the surveyed customers, aligned row by row with `positions` in the customers table."""

    positions: np.ndarray
    level_index: np.ndarray
    band_index: np.ndarray
    causes: pd.DataFrame | None
    drivers: pd.DataFrame


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
    study_name = study_name_for(config.name, name, y[train_rows], X.shape[1]) if storage else None
    # Trials on a large target run on a fixed sample of its rows: settings found on 200,000 rows
    # carry over, while the trials' cost stops growing with the data. The rounds are then
    # re-decided on all rows (more rows support more rounds).
    sample = np.arange(len(train_rows))
    if len(train_rows) > TUNE_SAMPLE_ROWS:
        share = TUNE_SAMPLE_ROWS / len(train_rows)
        sample = np.flatnonzero(split_holdout(len(train_rows), share, t.seed + 2, stratify))
    sampled = len(sample) < len(train_rows)
    X_fit, y_fit = X[train_rows], y[train_rows]
    tuned = tune_model(
        name, base, X_fit[sample], y_fit[sample], None if w is None else w[sample],
        tuning_folds(len(sample), None if stratify is None else stratify[sample], t.seed + 1) if sampled else folds,
        categorical, n_trials=tune_trials or t.tune_trials, timeout_s=t.tune_timeout_s, seed=t.seed,
        log_trials=log_trials, storage=storage, study_name=study_name,
    )
    if sampled:
        tuned = settle_rounds(tuned, X_fit, y_fit, w, folds[0], categorical)
    test_raw = np.empty((0,) if task != MULTICLASS else (0, num_class))
    if holdout.any():
        twin = fit_booster(X[train_rows], y[train_rows], tuned.params, categorical, tuned.num_boost_round, weight=w)
        test_raw = predict_raw(twin, X[holdout], t.threads)
    final = fit_booster(X, y, tuned.params, categorical, tuned.num_boost_round, weight=weight)
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


def _finite(metrics: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if v is not None and np.isfinite(v)}


class Trainer:
    """Fits every model of one dataset; each `fit_*` step adds boosters to the bundle and metrics.

    Args:
        config: the dataset config.
        dataset: the loaded tables.
        tune_trials: override of `training.tune_trials` (tests and the backtest use small budgets).
        holdout_fraction: override of `training.holdout_fraction`; 0 trains on every row.
        log_trials: log Optuna trials as nested MLflow runs.
    """

    def __init__(
        self, config: CxConfig, dataset: Dataset, tune_trials: int | None = None,
        holdout_fraction: float | None = None, log_trials: bool = True,
    ):
        self.config = config
        self.dataset = dataset
        self.tune_trials = tune_trials
        self.holdout_fraction = config.training.holdout_fraction if holdout_fraction is None else holdout_fraction
        self.log_trials = log_trials
        self.metrics: dict[str, float] = {}
        self.notes: list[str] = []
        self.pipeline = FeaturePipeline(
            config.id_column,
            exclude=[*config.features.exclude, *([config.value_column] if config.value_column else [])],
            categorical=config.features.categorical,
        ).fit(dataset.customers)
        self.X = self.pipeline.transform(dataset.customers)
        self.categorical = self.pipeline.categorical_indices_
        self.targets = respondent_targets(config, dataset)
        self.respondent_holdout = split_holdout(
            len(self.targets.positions), self.holdout_fraction, config.training.seed, self.targets.band_index
        )
        self.propensity_booster: lgb.Booster | None = None
        self.respondent_propensity: np.ndarray | None = None
        self.respondent_weight: np.ndarray | None = None
        self._experience: dict[str, np.ndarray] | None = None

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Record a stage's wall time as `train_seconds_<stage>`: where training time goes at scale."""
        started = time.perf_counter()
        yield
        self.metrics[f"train_seconds_{stage}"] = time.perf_counter() - started

    def _fit(self, name: str, task: str, X: np.ndarray, y: np.ndarray, weight: np.ndarray | None,
             holdout: np.ndarray, categorical: list[int] | None = None, num_class: int = 1) -> FittedModel:
        return fit_target(
            name, task, X, y, weight, holdout, self.categorical if categorical is None else categorical,
            self.config, num_class=num_class, tune_trials=self.tune_trials, log_trials=self.log_trials,
        )

    def fit_propensity(self) -> None:
        """P(responded | operational data): how different respondents are, and the weights that fix it."""
        n = len(self.X)
        responded = np.zeros(n, int)
        responded[self.targets.positions] = 1
        self.metrics["survey_response_rate"] = float(responded.mean())
        if responded.all():
            self.notes.append("every customer responded: no response bias to correct")
            return
        # A nuisance model: a small search is enough, and its out-of-fold predictions give both
        # the adversarial AUC and the weights, so no rows are held out for it.
        trials = min(self.tune_trials or self.config.training.tune_trials, PROPENSITY_MAX_TRIALS)
        fitted = fit_target(
            "propensity", BINARY, self.X, responded, None, np.zeros(n, bool), self.categorical, self.config,
            tune_trials=trials, log_trials=self.log_trials,
        )
        oof = binary_probability(out_of_fold_raw(
            self.X, responded, None, fitted.tuned, self.categorical, self.config.training.seed,
            self.config.training.threads, stratify=True,
        ))
        self.metrics["propensity_adversarial_auc"] = evaluate.safe_auc(responded, oof)
        self.propensity_booster = fitted.booster
        self.respondent_propensity = oof[self.targets.positions]
        weight = inverse_propensity_weights(self.respondent_propensity, self.config.training.max_weight)
        self.metrics["propensity_effective_sample_size"] = evaluate.effective_sample_size(weight)
        self.metrics["propensity_max_weight"] = float(weight.max())
        if self.config.training.bias_correction:
            self.respondent_weight = weight

    def fit_score(self) -> tuple[lgb.Booster, float]:
        """Band probabilities: multiclass over the bands, temperature-scaled on validation folds.

        Modelling the few bands directly beats summing an 11-level model's probabilities on a
        few thousand respondents (held-out macro-F1 0.41 vs 0.36 on the demo company).
        """
        c, tg = self.config, self.targets
        X = self.X[tg.positions]
        fitted = self._fit(
            "score", MULTICLASS, X, tg.band_index, self.respondent_weight, self.respondent_holdout,
            num_class=len(c.score.band_names),
        )
        train_rows = np.flatnonzero(~self.respondent_holdout)
        valid_rows = train_rows[fitted.tuned.valid_rows]
        valid_weight = None if self.respondent_weight is None else self.respondent_weight[valid_rows]
        temperature = fit_temperature(fitted.tuned.valid_raw, tg.band_index[valid_rows], valid_weight)
        self.metrics["score_temperature"] = temperature
        if self.respondent_holdout.any():
            band_probs = multiclass_probabilities(fitted.test_raw, temperature)
            self.metrics.update(evaluate.band_metrics(band_probs, tg.band_index[self.respondent_holdout], "test_"))
        # Out-of-fold band probabilities: churn's experience inputs and the doubly robust
        # population figure need respondents' predictions from models that did not see them.
        self.respondent_oof_bands = multiclass_probabilities(out_of_fold_raw(
            X, tg.band_index, self.respondent_weight, fitted.tuned, self.categorical,
            c.training.seed, c.training.threads, stratify=True,
        ), temperature)
        return fitted.booster, temperature

    def fit_expected_score(self) -> lgb.Booster:
        """The expected score: a regression of the observed score (its conditional mean)."""
        c, tg = self.config, self.targets
        X = self.X[tg.positions]
        score = np.asarray(c.score.levels, float)[tg.level_index]
        fitted = self._fit("expected_score", REGRESSION, X, score, self.respondent_weight, self.respondent_holdout)
        if self.respondent_holdout.any():
            predicted = np.clip(fitted.test_raw, c.score.scale[0], c.score.scale[1])
            self.metrics["test_expected_score_mae"] = evaluate.expected_score_mae(
                predicted, score[self.respondent_holdout]
            )
        if c.churn is not None and c.churn.use_experience:
            self.respondent_oof_expected = np.clip(out_of_fold_raw(
                X, score, self.respondent_weight, fitted.tuned, self.categorical,
                c.training.seed, c.training.threads, stratify=False,
            ), c.score.scale[0], c.score.scale[1])
        return fitted.booster

    def fit_causes(self) -> dict[str, lgb.Booster]:
        boosters: dict[str, lgb.Booster] = {}
        causes = self.targets.causes
        if causes is None:
            return boosters
        X = self.X[self.targets.positions]
        for code in causes.columns:
            y = causes[code].to_numpy(int)
            if y[~self.respondent_holdout].sum() < MIN_CAUSE_POSITIVES:
                self.notes.append(f"cause '{code}' named by fewer than {MIN_CAUSE_POSITIVES} respondents: not modelled")
                continue
            fitted = self._fit(f"cause_{code}", BINARY, X, y, self.respondent_weight, self.respondent_holdout)
            if self.respondent_holdout.any():
                self.metrics[f"test_cause_auc_{code}"] = evaluate.safe_auc(
                    y[self.respondent_holdout], binary_probability(fitted.test_raw)
                )
            boosters[code] = fitted.booster
        aucs = [v for k, v in self.metrics.items() if k.startswith("test_cause_auc_") and np.isfinite(v)]
        if aucs:
            self.metrics["test_cause_auc_mean"] = float(np.mean(aucs))
        return boosters

    def fit_drivers(self) -> dict[str, lgb.Booster]:
        boosters: dict[str, lgb.Booster] = {}
        X_all = self.X[self.targets.positions]
        for driver in self.config.drivers:
            values = self.targets.drivers[driver].to_numpy(float)
            rated = np.isfinite(values)
            if rated.sum() < self.config.training.min_respondents:
                self.notes.append(f"driver '{driver}' rated by {int(rated.sum())} respondents: not modelled")
                continue
            weight = None if self.respondent_weight is None else self.respondent_weight[rated]
            holdout = self.respondent_holdout[rated]
            fitted = self._fit(f"driver_{driver}", REGRESSION, X_all[rated], values[rated], weight, holdout)
            if holdout.any():
                errors = np.abs(fitted.test_raw - values[rated][holdout])
                self.metrics[f"test_driver_mae_{driver}"] = float(errors.mean())
            boosters[driver] = fitted.booster
        return boosters

    def experience_predictions(self, bundle: ScoringBundle) -> dict[str, np.ndarray]:
        """Band probabilities and expected score of every customer, from the score models only,
        computed once (churn's inputs and the population figures both need them)."""
        if self._experience is None:
            self._experience = bundle.predict_matrix(
                self.X, self.config.training.threads, causes=False, drivers=False, churn=False
            )
        return self._experience

    def experience_features(self, bundle: ScoringBundle) -> tuple[np.ndarray, np.ndarray]:
        """Expected score and P(bottom band) per customer, out-of-fold for respondents (no leakage)."""
        c, tg = self.config, self.targets
        predicted = self.experience_predictions(bundle)
        expected = predicted["expected_score"].copy()
        p_bottom = predicted[band_column(c.score.bottom_band)].copy()
        expected[tg.positions] = self.respondent_oof_expected
        p_bottom[tg.positions] = self.respondent_oof_bands[:, c.score.band_names.index(c.score.bottom_band)]
        return expected, p_bottom

    def fit_churn(self, expected: np.ndarray, p_bottom: np.ndarray) -> lgb.Booster | None:
        c, outcomes = self.config, self.dataset.outcomes
        if outcomes is None or c.churn is None:
            return None
        position_of = pd.Series(np.arange(len(self.dataset.customers)), index=self.dataset.customers[c.id_column])
        positions = position_of.loc[outcomes[c.id_column]].to_numpy()
        y = outcomes[c.churn.column].to_numpy(int)
        X = self.X[positions]
        categorical = list(self.categorical)
        if c.churn.use_experience:
            X = np.column_stack([X, expected[positions], p_bottom[positions]])
        holdout = split_holdout(len(y), self.holdout_fraction, c.training.seed, y)
        fitted = self._fit("churn", BINARY, X, y, None, holdout, categorical=categorical)
        if holdout.any():
            p = binary_probability(fitted.test_raw)
            self.metrics["test_churn_roc_auc"] = evaluate.safe_auc(y[holdout], p)
            self.metrics["test_churn_pr_auc"] = evaluate.safe_pr_auc(y[holdout], p)
        self.metrics["churn_rate"] = float(y.mean())
        return fitted.booster

    def population_figures(self, bundle: ScoringBundle) -> None:
        """Population score four ways: respondents only, propensity-weighted, model-completed, doubly robust.

        The doubly robust (AIPW) figure adds to the model's prediction for every customer the
        propensity-weighted mean residual of the respondents (out-of-fold), so it stays right
        when either the score model or the response model is right.
        """
        c, tg = self.config, self.targets
        names = c.score.band_names
        top, bottom = names.index(c.score.top_band), names.index(c.score.bottom_band)
        observed = (tg.band_index == top).astype(float) - (tg.band_index == bottom).astype(float)
        self.metrics["population_index_respondents"] = float(100 * observed.mean())
        predicted = self.experience_predictions(bundle)
        net = predicted[band_column(c.score.top_band)] - predicted[band_column(c.score.bottom_band)]
        oof_bands = self.respondent_oof_bands
        net[tg.positions] = oof_bands[:, top] - oof_bands[:, bottom]
        silent = np.ones(len(self.X), bool)
        silent[tg.positions] = False
        completed = net.copy()
        completed[tg.positions] = observed
        self.metrics["population_index_model"] = float(100 * completed.mean())
        if silent.any():
            self.metrics["population_index_silent"] = float(100 * net[silent].mean())
        if self.respondent_propensity is not None:
            inverse_p = 1.0 / np.clip(self.respondent_propensity, 1e-3, 1.0)
            self.metrics["population_index_ipw"] = float(100 * (inverse_p * observed).sum() / inverse_p.sum())
        # Without a response model everyone answered: the observed mix is the population's.
        contributions = evaluate.doubly_robust_contributions(net, observed, tg.positions, self.respondent_propensity)
        self.metrics["population_index"] = float(100 * contributions.mean())
        low, high = evaluate.bootstrap_mean_interval(contributions, c.training.seed)
        self.metrics["population_index_ci_low"], self.metrics["population_index_ci_high"] = 100 * low, 100 * high

    def fit(self, include_churn: bool = True) -> ScoringBundle:
        """Fit every model; returns the bundle (metrics and notes are on the trainer)."""
        c = self.config
        if len(self.targets.positions) < c.training.min_respondents:
            raise DataError(
                f"{self.dataset.sources.get('survey', 'survey')}: {len(self.targets.positions)} respondents; "
                f"the score model needs at least {c.training.min_respondents} (training.min_respondents)"
            )
        with self.timed("propensity"):
            self.fit_propensity()
        with self.timed("score"):
            score_booster, temperature = self.fit_score()
        with self.timed("expected_score"):
            expected_score_booster = self.fit_expected_score()
        with self.timed("causes"):
            cause_boosters = self.fit_causes()
        with self.timed("drivers"):
            driver_boosters = self.fit_drivers()
        bundle = ScoringBundle(
            name=c.name,
            id_column=c.id_column,
            pipeline=self.pipeline,
            levels=c.score.levels,
            bands={k: tuple(v) for k, v in c.score.bands.items()},
            top_band=c.score.top_band,
            bottom_band=c.score.bottom_band,
            score_booster=score_booster,
            expected_score_booster=expected_score_booster,
            score_temperature=temperature,
            cause_boosters=cause_boosters,
            driver_boosters=driver_boosters,
            propensity_booster=self.propensity_booster,
        )
        if include_churn and self.dataset.outcomes is not None and c.churn is not None:
            with self.timed("churn"):
                uses_experience = c.churn.use_experience
                expected, p_bottom = self.experience_features(bundle) if uses_experience else (None, None)
                bundle.churn_booster = self.fit_churn(expected, p_bottom)
                bundle.churn_uses_experience = uses_experience
        with self.timed("population"):
            self.population_figures(bundle)
        with self.timed("conformal"):
            bundle.conformal, bundle.respondent_oof = calibrate_conformal(self, bundle), respondent_oof_frame(self)
        bundle.drift_reference = DriftReference.fit(self.pipeline, self.X)
        self.metrics["n_customers"] = float(len(self.X))
        self.metrics["n_respondents"] = float(len(self.targets.positions))
        bundle.metadata = {"metrics": _finite(self.metrics), "notes": list(self.notes)}
        return bundle


def train(
    config: CxConfig, dataset: Dataset | None = None, tune_trials: int | None = None, register: bool = True,
    study_storage: str | None = None,
) -> TrainResult:
    """Train every model of a dataset in one MLflow run and register the bundle as `champion`.

    Args:
        config: the dataset config.
        dataset: already loaded tables (loaded from the config when omitted).
        tune_trials: override of `training.tune_trials`.
        register: register the model and move the `champion` alias to it.
        study_storage: override of `training.study_storage`: an Optuna storage URL several
            processes share, so they tune one study per model together.
    Returns:
        The run id, registered version, test metrics and the bundle.
    """
    if study_storage is not None:
        config = config.model_copy(
            update={"training": config.training.model_copy(update={"study_storage": study_storage})}
        )
    dataset = dataset or load_dataset(config)
    check_respondents(config, dataset)  # before any MLflow run is opened
    configure_mlflow(config)
    with mlflow.start_run(run_name=f"train-{config.name}") as run:
        mlflow.log_params(_run_params(config, dataset, tune_trials))
        trainer = Trainer(config, dataset, tune_trials=tune_trials)
        bundle = trainer.fit()
        with trainer.timed("uplift"):
            bundle.uplift = fit_campaign_uplift(config, dataset, bundle.pipeline, trainer.metrics, trainer.notes)
        bundle.metadata.update({"run_id": run.info.run_id, "model_name": config.registered_model_name})
        mlflow.log_metrics(_finite(trainer.metrics))
        mlflow.log_dict({"notes": trainer.notes}, NOTES_ARTIFACT)
        sample = dataset.customers.head(500)
        with trainer.timed("log_model"):
            version = log_bundle(config, bundle, sample, register)
        if config.training.driver_sample:
            from cxpredict.training.drivers import log_training_drivers  # drivers imports this module

            with trainer.timed("drivers_explained"):
                loaded = LoadedBundle(bundle, config.registered_model_name, version or "", run.info.run_id)
                log_training_drivers(config, loaded, dataset)
        mlflow.log_metrics({k: v for k, v in trainer.metrics.items()
                            if k in ("train_seconds_log_model", "train_seconds_drivers_explained")})
        link_project_run(run.info.run_id, config.tracking_uri)
    return TrainResult(run.info.run_id, config.registered_model_name, version, trainer.metrics, bundle, trainer.notes)


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
